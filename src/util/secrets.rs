//! The redactor: every value known to be secret is replaced by `***` in anything stepwise
//! writes (console, log files, state, reports, JSON documents, errors), in every encoding a
//! secret travels in. It also tells which secret (by name, never by value) a text carries, for
//! the command-line guard.
//!
//! A secret is searched in these forms: plain; shell-quoted (`'` written as `'\''`, as the
//! command lines stepwise shows are quoted); JSON-escaped (serde's escapes and Python's
//! `ensure_ascii` `\uXXXX` escapes, as az answers are written), also of the shell-quoted form;
//! URL-encoded (upper- and lower-case hex, `+` for space, and non-ASCII left as is); base64 and
//! base64url at all three byte alignments (only the characters that depend on the secret alone,
//! so a secret in the middle of an encoded text is found too).
//!
//! A value shorter than [`MIN_PATTERN_LEN`] characters, or one of a few words that label
//! secrets (`password`, `secret`, ...), is never used as a pattern: masking it would garble
//! every line. Such a value is still known: [`Masker::is_secret_value`] (which `output()` uses)
//! and [`Masker::secrets_in`] (the guard) recognise it when it stands alone.
//!
//! Patterns are matched with an Aho-Corasick automaton (leftmost-longest, so a longer secret
//! or form that contains a shorter one is masked whole), rebuilt when a secret is added.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use base64::Engine as _;
use std::sync::{Arc, OnceLock, RwLock};

/// The mask that replaces a secret.
pub const MASK: &str = "***";

/// Secrets shorter than this (in characters) are not masked inside other text (documented in
/// docs/reliability.md); they are still refused by `output()` and named by the guard when an
/// argument or a value is exactly the secret.
pub const MIN_PATTERN_LEN: usize = 6;

/// Words that name a secret rather than being one: never patterns, whatever answer they come
/// from (`acr credential show` lists `{"name": "password", ...}`).
const LABEL_WORDS: &[&str] = &[
    "password",
    "password2",
    "passwords",
    "secret",
    "secrets",
    "token",
    "apikey",
    "api_key",
    "primary",
    "secondary",
    "key1",
    "key2",
    "value",
    "username",
    "true",
    "false",
    "null",
];

#[derive(Debug, Clone)]
struct Secret {
    /// The value as given (trimmed).
    value: String,
    /// Where it came from, for messages (`config postgresql.admin_password`, ...).
    name: String,
}

#[derive(Default, Debug)]
struct Inner {
    secrets: Vec<Secret>,
    /// Pattern texts and the secret each belongs to.
    patterns: Vec<(String, usize)>,
    automaton: Option<AhoCorasick>,
}

/// The set of secret values of a run, shared by every step and every sink.
#[derive(Default, Debug)]
pub struct Masker {
    inner: RwLock<Inner>,
}

/// The process-wide redactor: what `main` prints on error, the console and the debug logs use.
pub fn global() -> Arc<Masker> {
    static GLOBAL: OnceLock<Arc<Masker>> = OnceLock::new();
    GLOBAL.get_or_init(|| Arc::new(Masker::new())).clone()
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `value` as secret (name: "a secret value").
    pub fn add(&self, value: &str) {
        self.add_named(value, "a value marked secret");
    }

    /// Marks `value` as secret, remembering `name` for messages (never the value). Empty values
    /// and the mask itself are ignored. A value that is already known keeps its first name.
    pub fn add_named(&self, value: &str, name: &str) {
        let value = value.trim();
        if value.is_empty() || value == MASK {
            return;
        }
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        if inner.secrets.iter().any(|s| s.value == value) {
            return;
        }
        let index = inner.secrets.len();
        inner.secrets.push(Secret {
            value: value.to_string(),
            name: name.to_string(),
        });
        if !usable_as_pattern(value) {
            return;
        }
        for form in forms(value) {
            if form.chars().count() >= MIN_PATTERN_LEN.min(value.chars().count())
                && !inner.patterns.iter().any(|(p, _)| *p == form)
            {
                inner.patterns.push((form, index));
            }
        }
        let texts: Vec<&str> = inner.patterns.iter().map(|(p, _)| p.as_str()).collect();
        inner.automaton = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .build(texts)
            .ok();
    }

    /// Does `text` carry a secret (in any form it is searched in)?
    pub fn contains_secret(&self, text: &str) -> bool {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner.automaton.as_ref().is_some_and(|a| a.is_match(text))
    }

    /// Is `text` secret: does it carry a secret, or is it exactly a (short) secret?
    pub fn is_secret_value(&self, text: &str) -> bool {
        if self.contains_secret(text) {
            return true;
        }
        let t = text.trim();
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        !t.is_empty() && inner.secrets.iter().any(|s| s.value == t)
    }

    /// The names of the secrets `text` carries (in any form, or exactly), in order of first
    /// appearance, without repeats.
    pub fn secrets_in(&self, text: &str) -> Vec<String> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut names: Vec<String> = Vec::new();
        let mut push = |n: &str| {
            if !names.iter().any(|x| x == n) {
                names.push(n.to_string());
            }
        };
        if let Some(a) = &inner.automaton {
            for m in a.find_iter(text) {
                let (_, i) = inner.patterns[m.pattern().as_usize()];
                push(&inner.secrets[i].name);
            }
        }
        let t = text.trim();
        if let Some(s) = inner.secrets.iter().find(|s| s.value == t) {
            push(&s.name);
        }
        names
    }

    /// `bytes` with every secret replaced by `***` (for output that may not be UTF-8).
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match &inner.automaton {
            Some(a) if a.is_match(bytes) => {
                a.replace_all_bytes(bytes, &vec![MASK.as_bytes(); inner.patterns.len()])
            }
            _ => bytes.to_vec(),
        }
    }

    /// How much of the start of `buf` can be masked and written now without cutting through
    /// a secret: everything but the last bytes that could begin one, moved back before any
    /// secret that crosses the cut.
    pub fn safe_cut(&self, buf: &[u8]) -> usize {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let longest = inner
            .patterns
            .iter()
            .map(|(p, _)| p.len())
            .max()
            .unwrap_or(0);
        if longest <= 1 {
            return buf.len();
        }
        if buf.len() < longest {
            return 0;
        }
        let mut cut = buf.len() - (longest - 1);
        loop {
            let mut moved = false;
            for n in inner
                .patterns
                .iter()
                .map(|(p, _)| p.as_bytes())
                .filter(|n| n.len() > 1)
            {
                let lo = cut.saturating_sub(n.len() - 1);
                let hi = (cut + n.len() - 1).min(buf.len());
                // The leftmost match in the window; one that starts before the cut crosses it.
                if let Some(i) = memchr::memmem::find(&buf[lo..hi], n) {
                    if lo + i < cut {
                        cut = lo + i;
                        moved = true;
                    }
                }
            }
            if !moved {
                return cut;
            }
        }
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match &inner.automaton {
            Some(a) if a.is_match(text) => a.replace_all(text, &vec![MASK; inner.patterns.len()]),
            _ => text.to_string(),
        }
    }

    /// A JSON value with every string (and object key) masked.
    pub fn mask_json(&self, v: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match v {
            Value::String(s) => Value::String(self.mask(s)),
            Value::Array(a) => Value::Array(a.iter().map(|x| self.mask_json(x)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (self.mask(k), self.mask_json(x)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// How many secrets are known (for debug logs).
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .secrets
            .len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// May `value` be searched for inside other text?
fn usable_as_pattern(value: &str) -> bool {
    value.chars().count() >= MIN_PATTERN_LEN
        && !LABEL_WORDS.iter().any(|w| value.eq_ignore_ascii_case(w))
}

/// Masks a stream on its way to `out`: bytes are held back only as long as they could be the
/// start of a secret, so memory stays bounded however long the stream is.
pub struct MaskingWriter<W: std::io::Write> {
    masker: std::sync::Arc<Masker>,
    out: W,
    pending: Vec<u8>,
}

impl<W: std::io::Write> MaskingWriter<W> {
    pub fn new(masker: std::sync::Arc<Masker>, out: W) -> Self {
        MaskingWriter {
            masker,
            out,
            pending: Vec::new(),
        }
    }

    pub fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let cut = self.masker.safe_cut(&self.pending);
        if cut > 0 {
            let masked = self.masker.mask_bytes(&self.pending[..cut]);
            let _ = self.out.write_all(&masked);
            self.pending.drain(..cut);
        }
    }

    /// Writes what was held back.
    pub fn finish(&mut self) {
        let masked = self.masker.mask_bytes(&self.pending);
        let _ = self.out.write_all(&masked);
        self.pending.clear();
        let _ = self.out.flush();
    }
}

/// Every form `value` is searched in.
pub fn forms(value: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut push = |s: String| {
        if !s.is_empty() && !out.contains(&s) {
            out.push(s);
        }
    };
    let shell = shell_quoted(value);
    for base in [value.to_string(), shell.clone()] {
        push(json_escaped(&base, false));
        push(json_escaped(&base, true));
        push(base);
    }
    push(shell_quoted(&json_escaped(value, false)));
    push(shell_quoted(&json_escaped(value, true)));
    for upper in [true, false] {
        for plus in [false, true] {
            push(url_encoded(value, upper, plus, true));
        }
    }
    push(url_encoded(value, true, false, false));
    for engine in [
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::URL_SAFE,
    ] {
        for align in 0..3 {
            push(base64_core(engine, value.as_bytes(), align));
            push(base64_at_end(engine, value.as_bytes(), align));
        }
    }
    out
}

/// Like [`base64_core`], for a secret that ends the encoded text: its last (partial)
/// character and the padding belong to it too.
fn base64_at_end(engine: &base64::engine::GeneralPurpose, bytes: &[u8], align: usize) -> String {
    let mut padded = vec![0u8; align];
    padded.extend_from_slice(bytes);
    let encoded = engine.encode(&padded);
    let start = (8 * align).div_ceil(6);
    encoded.get(start..).unwrap_or("").to_string()
}

/// The text inside single quotes that a shell-quoted argument holding `s` shows (`'` as `'\''`).
fn shell_quoted(s: &str) -> String {
    s.replace('\'', "'\\''")
}

/// `s` as it stands inside a JSON string; `ascii`: non-ASCII as `\uXXXX` (lower-case hex,
/// surrogate pairs), as Python's `json.dumps` writes by default.
fn json_escaped(s: &str, ascii: bool) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if ascii && !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Percent-encoding of `s`: unreserved characters kept; `plus`: space as `+`; `non_ascii`:
/// whether bytes of non-ASCII characters are encoded (some encoders leave them).
fn url_encoded(s: &str, upper: bool, plus: bool, non_ascii: bool) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if !c.is_ascii() && !non_ascii {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                    out.push(b as char)
                }
                b' ' if plus => out.push('+'),
                _ if upper => out.push_str(&format!("%{b:02X}")),
                _ => out.push_str(&format!("%{b:02x}")),
            }
        }
    }
    out
}

/// The base64 characters that depend only on `bytes` when they stand at offset `align`
/// (0, 1 or 2) modulo 3 in a longer encoded text: found wherever the secret sits.
fn base64_core(engine: &base64::engine::GeneralPurpose, bytes: &[u8], align: usize) -> String {
    let mut padded = vec![0u8; align];
    padded.extend_from_slice(bytes);
    padded.extend_from_slice(&[0, 0]);
    let encoded = engine.encode(&padded);
    let first_bit = 8 * align;
    let end_bit = 8 * (align + bytes.len());
    let start = first_bit.div_ceil(6);
    let end = end_bit / 6;
    if end <= start {
        return String::new();
    }
    encoded[start..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};

    #[test]
    fn masks_plain_base64_and_url_encoded_forms() {
        let m = Masker::new();
        m.add("p@ss word!");
        assert_eq!(m.mask("x=p@ss word! y"), "x=*** y");
        assert_eq!(m.mask("b=cEBzcyB3b3JkIQ"), "b=***");
        assert_eq!(m.mask("u=p%40ss%20word%21"), "u=***");
        assert_eq!(m.mask("u=p%40ss+word%21"), "u=***");
        assert!(!m.contains_secret("nothing here"));
    }

    #[test]
    fn streamed_masking_equals_masking_the_whole_in_any_chunking() {
        let m = std::sync::Arc::new(Masker::new());
        m.add("s3cret-value");
        m.add("abc");
        let text = "x s3cret-value y abc s3cret-valu s3cret-value\nabcabc s3cret-value".repeat(50);
        let expected = m.mask(&text);
        for chunk in [1, 2, 3, 5, 7, 11, 64, 1000] {
            let mut w = MaskingWriter::new(m.clone(), Vec::new());
            for c in text.as_bytes().chunks(chunk) {
                w.write(c);
            }
            w.finish();
            assert_eq!(
                String::from_utf8(w.out.clone()).unwrap(),
                expected,
                "chunk {chunk}"
            );
        }
    }

    #[test]
    fn longer_secret_masked_whole() {
        let m = Masker::new();
        m.add("abcdefgh");
        m.add("abcdefghijkl");
        assert_eq!(m.mask("abcdefghijkl abcdefgh"), "*** ***");
    }

    #[test]
    fn base64_at_every_alignment_and_base64url() {
        let m = Masker::new();
        let secret = "Pa'ss\"w0rd-Xy?>";
        m.add(secret);
        for prefix in ["", "u", "us", "user:", "user:x"] {
            let plain = format!("{prefix}{secret} tail");
            for engine in [&STANDARD, &URL_SAFE] {
                let enc = engine.encode(plain.as_bytes());
                let masked = m.mask(&enc);
                assert!(masked.contains(MASK), "{prefix:?}: {enc} -> {masked}");
                let core = base64_core(
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    secret.as_bytes(),
                    prefix.len() % 3,
                );
                assert!(core.len() >= 16, "{core}");
            }
        }
    }

    #[test]
    fn shell_quoted_and_json_escaped_forms() {
        let m = Masker::new();
        let secret = "Pa'ss\"w0rd-Xy";
        m.add(secret);
        assert_eq!(
            m.mask("$ true --password 'Pa'\\''ss\"w0rd-Xy'"),
            "$ true --password '***'"
        );
        let json = serde_json::json!({ "v": secret }).to_string();
        assert_eq!(m.mask(&json), r#"{"v":"***"}"#);
        let m = Masker::new();
        m.add("gr\u{fc}n-\u{1f600}-geheim");
        assert_eq!(
            m.mask(r#"{"v": "gr\u00fcn-\ud83d\ude00-geheim"}"#),
            r#"{"v": "***"}"#
        );
    }

    #[test]
    fn short_values_and_label_words_are_not_patterns_but_still_known() {
        let m = Masker::new();
        m.add_named("abc", "short");
        m.add("password");
        assert_eq!(m.mask("abc password abcdef"), "abc password abcdef");
        assert!(m.is_secret_value("abc"));
        assert!(!m.is_secret_value("abcd"));
        assert_eq!(m.secrets_in("abc"), vec!["short".to_string()]);
    }

    /// Secrets with quotes, backslashes, unicode, `=`, spaces and URL/base64 characters.
    fn secret_strategy() -> impl proptest::strategy::Strategy<Value = String> {
        use proptest::strategy::Strategy;
        "[A-Za-z0-9'\"\\\\=\u{e9}\u{20ac}\u{1f600} %+/&:;!?-]{6,20}"
            .prop_filter("a secret has no surrounding space", |s| {
                s.trim() == s && s.chars().any(|c| c.is_alphanumeric())
            })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]
        /// Whatever a secret is and wherever it stands in a text, no encoding of the text shows
        /// the secret (or the part of an encoding that depends on the secret alone) after
        /// masking.
        #[test]
        fn no_encoding_of_a_secret_survives_masking(
            secret in secret_strategy(),
            prefix in "[a-z:=\"' ]{0,5}",
            suffix in "[a-z:=\"' ]{0,5}",
        ) {
            let m = Masker::new();
            m.add(&secret);
            let text = format!("{prefix}{secret}{suffix}");
            let shell = format!("'{}'", text.replace('\'', "'\\''"));
            let encoded = [
                text.clone(),
                shell.clone(),
                serde_json::to_string(&text).unwrap(),
                json_escaped(&text, true),
                serde_json::to_string(&shell).unwrap(),
                url_encoded(&text, true, false, true),
                url_encoded(&text, false, true, true),
                url_encoded(&text, true, false, false),
                STANDARD.encode(&text),
                URL_SAFE.encode(&text),
            ];
            let secret_forms: Vec<String> = forms(&secret)
                .into_iter()
                .filter(|f| f.chars().count() >= MIN_PATTERN_LEN)
                .collect();
            for e in &encoded {
                let masked = m.mask(e);
                for f in &secret_forms {
                    proptest::prop_assert!(
                        !masked.contains(f.as_str()),
                        "{:?} in {:?} masked to {:?}", f, e, masked
                    );
                }
                proptest::prop_assert!(!masked.contains(secret.as_str()));
            }
        }
    }

    #[test]
    fn secrets_in_names_each_secret_once() {
        let m = Masker::new();
        m.add_named("first-secret", "config a.password");
        m.add_named("second-secret", "env_secret(B)");
        assert_eq!(
            m.secrets_in("x first-secret y second-secret z first-secret"),
            vec!["config a.password".to_string(), "env_secret(B)".to_string()]
        );
    }
}
