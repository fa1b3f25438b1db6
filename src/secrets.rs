//! The secret masker: every value known to be secret is replaced by `***` in anything
//! stepwise prints or writes (log lines, errors, dry-run lines, logs on disk).

use std::sync::RwLock;

/// The mask that replaces a secret.
pub const MASK: &str = "***";

/// A set of secret values, shared by every step of a run.
#[derive(Default, Debug)]
pub struct Masker {
    /// Secret values and their encoded forms, longest first so that a longer secret that
    /// contains a shorter one is masked whole.
    needles: RwLock<Vec<String>>,
}

impl Masker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `value` as secret (and its base64 and URL-encoded forms). Empty values are ignored.
    pub fn add(&self, value: &str) {
        let value = value.trim();
        if value.is_empty() || value == MASK {
            return;
        }
        let mut forms = vec![
            value.to_string(),
            base64(value.as_bytes()),
            url_encode(value),
        ];
        forms.dedup();
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        for form in forms {
            if !needles.contains(&form) {
                needles.push(form);
            }
        }
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    /// Is `text` (or a part of it) secret?
    pub fn contains_secret(&self, text: &str) -> bool {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        needles.iter().any(|n| text.contains(n.as_str()))
    }

    /// `bytes` with every secret replaced by `***` (for output that may not be UTF-8).
    pub fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let mut cur: std::borrow::Cow<[u8]> = std::borrow::Cow::Borrowed(bytes);
        for n in needles.iter().map(|n| n.as_bytes()) {
            if memchr::memmem::find(&cur, n).is_none() {
                continue;
            }
            let mut out = Vec::with_capacity(cur.len());
            let mut last = 0;
            for i in memchr::memmem::find_iter(&cur, n) {
                if i < last {
                    continue;
                }
                out.extend_from_slice(&cur[last..i]);
                out.extend_from_slice(MASK.as_bytes());
                last = i + n.len();
            }
            out.extend_from_slice(&cur[last..]);
            cur = std::borrow::Cow::Owned(out);
        }
        cur.into_owned()
    }

    /// How much of the start of `buf` can be masked and written now without cutting through
    /// a secret: everything but the last bytes that could begin one, moved back before any
    /// secret that crosses the cut.
    pub fn safe_cut(&self, buf: &[u8]) -> usize {
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let longest = needles.iter().map(|n| n.len()).max().unwrap_or(0);
        if longest <= 1 {
            return buf.len();
        }
        if buf.len() < longest {
            return 0;
        }
        let mut cut = buf.len() - (longest - 1);
        loop {
            let mut moved = false;
            for n in needles.iter().map(|n| n.as_bytes()).filter(|n| n.len() > 1) {
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
        let needles = self.needles.read().unwrap_or_else(|e| e.into_inner());
        let mut out = text.to_string();
        for n in needles.iter() {
            if out.contains(n.as_str()) {
                out = out.replace(n.as_str(), MASK);
            }
        }
        out
    }
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

fn base64(bytes: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(TABLE[(n >> 18) as usize & 63] as char);
        out.push(TABLE[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            TABLE[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            TABLE[n as usize & 63] as char
        } else {
            '='
        });
    }
    // Without padding too, so that a secret inside a longer base64 text is still found
    // when it starts on a 3-byte boundary.
    out.trim_end_matches('=').to_string()
}

fn url_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_plain_base64_and_url_encoded_forms() {
        let m = Masker::new();
        m.add("p@ss word!");
        assert_eq!(m.mask("x=p@ss word! y"), "x=*** y");
        assert_eq!(m.mask("b=cEBzcyB3b3JkIQ"), "b=***");
        assert_eq!(m.mask("u=p%40ss%20word%21"), "u=***");
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
        m.add("abc");
        m.add("abcdef");
        assert_eq!(m.mask("abcdef abc"), "*** ***");
    }
}
