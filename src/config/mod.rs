//! The deployment config (YAML): loading with located errors, dotted-key lookup, canonical
//! JSON for fingerprints, the settings stepwise itself reads, and which values are secret.

pub(crate) mod environment;
pub(crate) mod new_overlay;
pub(crate) mod overlay;
pub(crate) mod own_keys;
pub(crate) mod settings;
pub(crate) mod yaml;

use settings::check_notify;
pub use settings::{
    json_schema, AdvancedSettings, DeploymentSettings, DockerSettings, NotifyEvent, NotifyFormat,
    NotifySettings, Settings, StateSettings,
};
use yaml::apply_merge_keys;
pub use yaml::type_name;

use crate::util::error::{Failure, Kind};
use crate::util::secrets::Masker;
use anyhow::Result;
use serde_json::Value;
use std::path::{Path, PathBuf};

/// A loaded config file.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it was read from (as given, for messages).
    pub path: PathBuf,
    /// The environment's overlay merged over it (`config.NAME.yaml`), if any.
    pub overlay: Option<PathBuf>,
    /// The whole document.
    pub root: Value,
    /// The settings stepwise reads itself, type-checked.
    pub settings: Settings,
    /// Keys under stepwise's own sections that stepwise does not read (refused unless a step
    /// declares them: [`Config::check_own_keys`]).
    pub foreign: Vec<own_keys::ForeignKey>,
}

/// Why a config key holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretBy {
    /// It is under `secrets:`.
    Section,
    /// Its name ends with a secret word (`password`, `*_token`, `api_key`, ...): strings only.
    Name,
    /// `deployment.secret_keys` lists it (or a key above it).
    Listed,
}

impl SecretBy {
    pub fn describe(self) -> &'static str {
        match self {
            SecretBy::Section => "under `secrets:`",
            SecretBy::Name => "by its name",
            SecretBy::Listed => "listed in deployment.secret_keys",
        }
    }
}

/// Key names whose values are secret: a name is secret when its last whole segments (split at
/// `_`, `-` and lower-to-upper case changes) are one of these. `max_tokens`, `password_policy`,
/// `token_ttl`, `secret_name` are not.
pub const SECRET_NAME_ENDINGS: &[&[&str]] = &[
    &["password"],
    &["passwd"],
    &["passphrase"],
    &["secret"],
    &["token"],
    &["apikey"],
    &["api", "key"],
    &["access", "key"],
    &["account", "key"],
    &["private", "key"],
    &["shared", "key"],
    &["primary", "key"],
    &["secondary", "key"],
    &["connection", "string"],
    &["connection", "url"],
    &["credentials"],
];

/// The lower-case segments of a key name: `adminPassword` and `admin-password` give
/// `[admin, password]`.
pub fn name_segments(name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut prev_lower = false;
    for c in name.chars() {
        if c == '_' || c == '-' || c == ' ' || c == '.' {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            prev_lower = false;
            continue;
        }
        if c.is_uppercase() && prev_lower && !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
        prev_lower = c.is_lowercase() || c.is_ascii_digit();
        cur.extend(c.to_lowercase());
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Does a name end with one of `endings` (whole segments)?
pub fn name_ends_with(name: &str, endings: &[&[&str]]) -> bool {
    let segs = name_segments(name);
    endings.iter().any(|e| {
        segs.len() >= e.len()
            && segs[segs.len() - e.len()..]
                .iter()
                .zip(e.iter())
                .all(|(a, b)| a == b)
    })
}

/// Does a dotted key match a pattern (`*` matches one segment) or lie under one?
fn key_matches(pattern: &str, key: &str) -> bool {
    let p: Vec<&str> = pattern.split('.').collect();
    let k: Vec<&str> = key.split('.').collect();
    k.len() >= p.len() && p.iter().zip(&k).all(|(p, k)| *p == "*" || p == k)
}

impl Config {
    /// Reads and parses `path`. Errors name the file, line and column.
    pub fn load(path: &Path) -> Result<Config> {
        Self::parse(path, &read(path)?)
    }

    /// Reads `path` and, when given, deep-merges the environment overlay `overlay` over it
    /// (see `overlay`). A missing overlay is an error naming the path expected.
    pub fn load_with_overlay(path: &Path, overlay: Option<&Path>, env: &str) -> Result<Config> {
        let Some(overlay) = overlay else {
            return Self::load(path);
        };
        let base_text = read(path)?;
        let mut config = Self::parse(path, &base_text)?;
        let overlay_text = match std::fs::read_to_string(overlay) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Kind::Config.error(format!(
                    "{}: environment `{env}` has no overlay: {} not found (an environment is deliberate: create that file with what differs from {}, even if it is empty)",
                    overlay.display(),
                    overlay.display(),
                    path.display()
                )))
            }
            Err(e) => {
                return Err(Kind::Config.error(format!(
                    "cannot read overlay {}: {e}",
                    overlay.display()
                )))
            }
        };
        config.root = overlay::merge(&config.root, path, &base_text, overlay, &overlay_text)?;
        // Type errors in stepwise's own settings are located in the file that has them; the
        // merged settings are read from the merged document.
        if !overlay_text.trim().is_empty() {
            serde_norway::from_str::<Option<Settings>>(&overlay_text)
                .map_err(|e| located(overlay, e))?;
            if let Ok(root) = serde_norway::from_str::<Value>(&overlay_text) {
                config
                    .foreign
                    .extend(own_keys::foreign(overlay, &overlay_text, &root));
            }
        }
        config.settings = serde_json::from_value(config.root.clone()).map_err(|e| {
            Kind::Config.error(format!(
                "{} merged over {}: {e}",
                overlay.display(),
                path.display()
            ))
        })?;
        check_notify(&config.settings, overlay)?;
        config.overlay = Some(overlay.to_path_buf());
        Ok(config)
    }

    /// The files this config was read from: the config, then its overlay.
    pub fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.path.clone())
            .chain(self.overlay.clone())
            .collect()
    }

    /// Parses config text; `path` is used in messages.
    pub fn parse(path: &Path, text: &str) -> Result<Config> {
        let located = |e| located(path, e);
        let (root, merged): (Value, bool) = if text.trim().is_empty() {
            (Value::Object(Default::default()), false)
        } else {
            // YAML's own value type refuses duplicate keys (a JSON value would keep the last
            // one silently).
            let mut yaml = serde_norway::from_str::<serde_norway::Value>(text).map_err(located)?;
            // Merge keys (`<<: *base`, `<<: [*a, *b]`) are resolved here, once: every reader
            // (read_config, fingerprints, settings) sees the merged mapping.
            let merged = apply_merge_keys(&mut yaml, "")
                .map_err(|e| Kind::Config.error(format!("{}: {e}", path.display())))?;
            let root = if merged {
                serde_norway::from_value(yaml)
                    .map_err(|e| Kind::Config.error(format!("{}: {e}", path.display())))?
            } else {
                serde_norway::from_str(text).map_err(located)?
            };
            (root, merged)
        };
        if !root.is_object() {
            return Err(Kind::Config.error(format!(
                "{}: the config must be a mapping of keys to values, found {}",
                path.display(),
                type_name(&root)
            )));
        }
        // Parsed from the text first for located errors; from the merged document when it
        // had merge keys (a setting may come from an anchor).
        let mut settings: Settings = serde_norway::from_str(text).map_err(located)?;
        if merged {
            settings = serde_json::from_value(root.clone()).map_err(|e| {
                Kind::Config.error(format!("{}: a merged setting: {e}", path.display()))
            })?;
        }
        check_notify(&settings, path)?;
        let foreign = own_keys::foreign(path, text, &root);
        Ok(Config {
            path: path.to_path_buf(),
            overlay: None,
            root,
            settings,
            foreign,
        })
    }

    /// An empty config (for commands that need none).
    pub fn empty(path: &Path) -> Config {
        Config {
            path: path.to_path_buf(),
            overlay: None,
            root: Value::Object(Default::default()),
            settings: Settings::default(),
            foreign: Vec::new(),
        }
    }

    /// Refuses a key under stepwise's own sections that stepwise does not read and no step
    /// declares (`declarations`: the steps' `config:` entries), located, with a "did you
    /// mean" (exit 2).
    pub fn check_own_keys(&self, declarations: &[String]) -> Result<()> {
        own_keys::check(&self.foreign, declarations)
    }

    /// The value at a dotted key (`a.b.c`; a numeric segment indexes an array).
    pub fn get(&self, key: &str) -> Option<&Value> {
        lookup(&self.root, key)
    }

    /// The canonical JSON of a key's value (`null` when missing): object keys sorted.
    pub fn canonical(&self, key: &str) -> String {
        canonical_json(self.get(key).unwrap_or(&Value::Null))
    }

    /// `pattern` with each `${key}` / `${config.key}` replaced by that config value (a string
    /// or a number). The error says what is wrong, without saying where.
    pub fn interpolate(&self, pattern: &str) -> std::result::Result<String, String> {
        let mut out = String::new();
        let mut rest = pattern;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("{pattern:?} has an unclosed `${{`"))?;
            let key = after[..end].trim();
            let key = key.strip_prefix("config.").unwrap_or(key);
            match self.get(key) {
                Some(Value::String(s)) => out.push_str(s),
                Some(v @ Value::Number(_)) => out.push_str(&v.to_string()),
                other => {
                    return Err(format!(
                        "{pattern:?} uses config key `{key}`, which {} in {}",
                        if other.is_some() {
                            "is not a string"
                        } else {
                            "is missing"
                        },
                        self.path.display()
                    ))
                }
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// Why the value at `key` is secret, if it is: the key itself or a key above it is under
    /// `secrets:`, is listed in `deployment.secret_keys`, or has a secret name; unless
    /// `deployment.not_secret_keys` lists it (or a key above it). `deployment.*` settings
    /// themselves are never secret.
    pub fn secret_by(&self, key: &str) -> Option<SecretBy> {
        let d = &self.settings.deployment;
        if key.is_empty() || key == "deployment" || key.starts_with("deployment.") {
            return None;
        }
        if d.not_secret_keys.iter().any(|p| key_matches(p, key)) {
            return None;
        }
        // A webhook URL carries its credential (`notify[].url`).
        if key_matches("notify.*.url", key) {
            return Some(SecretBy::Name);
        }
        if key == "secrets" || key.starts_with("secrets.") {
            return Some(SecretBy::Section);
        }
        if d.secret_keys.iter().any(|p| key_matches(p, key)) {
            return Some(SecretBy::Listed);
        }
        // The key or any key above it (array indices are not names).
        let mut prefix = String::new();
        for seg in key.split('.') {
            if !prefix.is_empty() {
                prefix.push('.');
            }
            prefix.push_str(seg);
            if seg.parse::<usize>().is_err()
                && name_ends_with(seg, SECRET_NAME_ENDINGS)
                && !d.not_secret_keys.iter().any(|p| key_matches(p, &prefix))
            {
                return Some(SecretBy::Name);
            }
        }
        None
    }

    /// Is this value, found at `key`, secret? Strings (not empty) are when the key is secret;
    /// numbers only when the key is secret by section or list, never by name (`max_tokens:
    /// 4096` is a limit, not a secret); booleans and null never.
    pub fn value_is_secret(&self, key: &str, v: &Value) -> bool {
        match (v, self.secret_by(key)) {
            (Value::String(s), Some(_)) => !s.is_empty(),
            (Value::Number(_), Some(SecretBy::Section | SecretBy::Listed)) => true,
            _ => false,
        }
    }

    /// Every secret value in the config: (dotted key, why, the value as text).
    pub fn secret_values(&self) -> Vec<(String, SecretBy, String)> {
        fn walk(c: &Config, v: &Value, key: &str, out: &mut Vec<(String, SecretBy, String)>) {
            match v {
                Value::Object(m) => {
                    for (k, child) in m {
                        let sub = if key.is_empty() {
                            k.clone()
                        } else {
                            format!("{key}.{k}")
                        };
                        walk(c, child, &sub, out);
                    }
                }
                Value::Array(a) => {
                    for (i, child) in a.iter().enumerate() {
                        walk(c, child, &format!("{key}.{i}"), out);
                    }
                }
                leaf if c.value_is_secret(key, leaf) => {
                    let text = match leaf {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    if let Some(by) = c.secret_by(key) {
                        out.push((key.to_string(), by, text));
                    }
                }
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &self.root, "", &mut out);
        out
    }

    /// Does the value at `key` hold a secret (the key itself is secret, or a key under it;
    /// `""`, the whole config, holds every secret)?
    pub fn has_secret(&self, key: &str) -> bool {
        let prefix = format!("{key}.");
        self.secret_values()
            .iter()
            .any(|(k, _, _)| key.is_empty() || k == key || k.starts_with(&prefix))
    }

    /// Registers every secret value in the config with `masker`, named by its key.
    pub fn register_secrets(&self, masker: &Masker) {
        for (key, _, value) in self.secret_values() {
            masker.add_named(&value, &format!("config {key}"));
        }
        // Webhook URLs kept in environment variables are just as secret.
        for hook in &self.settings.notify {
            if let Some(url) = hook.url_env.as_deref().and_then(|v| std::env::var(v).ok()) {
                masker.add_named(
                    &url,
                    &format!("webhook URL ${}", hook.url_env.as_deref().unwrap_or("")),
                );
            }
        }
    }
}

/// The text of a config file; a missing one is an error that says how to pass one.
fn read(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Ok(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let example = example_of(path);
            let hint = if example.is_file() {
                format!(
                    "; {} is a commented example to start from",
                    example.display()
                )
            } else {
                String::new()
            };
            Err(Kind::Config.error(format!(
                "config file {} not found (pass --config PATH{hint})",
                path.display()
            )))
        }
        Err(e) => Err(Failure::caused_by(
            Kind::Config,
            format!("cannot read config {}", path.display()),
            e,
        )
        .into()),
    }
}

/// The commented example beside a config: `config.yaml` → `config.example.yaml`.
fn example_of(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let example = match name.rfind('.') {
        Some(i) if i > 0 => format!("{}.example{}", &name[..i], &name[i..]),
        _ => format!("{name}.example"),
    };
    path.with_file_name(example)
}

/// A YAML error as `file:line:col: message` (exit 2).
fn located(path: &Path, e: serde_norway::Error) -> anyhow::Error {
    let loc = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    Kind::Config.error(format!("{}{loc}: {e}", path.display()))
}

/// Looks up a dotted key in a JSON value.
pub fn lookup<'a>(root: &'a Value, key: &str) -> Option<&'a Value> {
    if key.is_empty() {
        return Some(root);
    }
    let mut cur = root;
    for seg in key.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// JSON with object keys sorted and no insignificant white space.
pub fn canonical_json(v: &Value) -> String {
    // serde_json's map is ordered by key (no `preserve_order` feature), so this is canonical.
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<Config> {
        Config::parse(Path::new("c.yaml"), text)
    }

    #[test]
    fn lookup_nested_and_missing() {
        let c = cfg("a:\n  b: [1, {c: x}]\n").unwrap();
        assert_eq!(c.get("a.b.1.c"), Some(&Value::String("x".into())));
        assert_eq!(c.get("a.z"), None);
        assert_eq!(c.canonical("a.z"), "null");
        assert_eq!(c.canonical("a"), r#"{"b":[1,{"c":"x"}]}"#);
    }

    #[test]
    fn yaml_error_is_located() {
        let err = cfg("a: 1\nb: [unclosed\n").unwrap_err().to_string();
        assert!(err.starts_with("c.yaml:"), "{err}");
        assert!(
            err.split(':').nth(1).unwrap().parse::<u32>().is_ok(),
            "{err}"
        );
    }

    #[test]
    fn wrong_setting_type_is_located() {
        let err = cfg("advanced:\n  retry_attempts: three\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("c.yaml:2:"), "{err}");
        assert!(err.contains("retry_attempts"), "{err}");
    }

    #[test]
    fn merge_keys_single_and_list_forms_are_resolved() {
        let c = cfg(
            "base: &base {sku: big, tier: gp}\nextra: &extra {sku: other, zone: 2}\n\
db: {<<: *base, name: x}\ncache:\n  <<: [*extra, *base]\n  name: y\n\
nested: &nested {<<: *base, tier: bc}\nlast: {<<: *nested}\n\
deployment: {<<: {resume: true}}\n",
        )
        .unwrap();
        assert_eq!(c.get("db.sku"), Some(&Value::String("big".into())));
        assert_eq!(c.get("db.name"), Some(&Value::String("x".into())));
        assert_eq!(c.get("db.<<"), None);
        // list form: the first mapping wins, explicit keys win over both
        assert_eq!(c.get("cache.sku"), Some(&Value::String("other".into())));
        assert_eq!(c.get("cache.tier"), Some(&Value::String("gp".into())));
        assert_eq!(c.get("cache.zone"), Some(&Value::from(2)));
        assert_eq!(c.get("cache.name"), Some(&Value::String("y".into())));
        // a merged mapping's own merge key is resolved too
        assert_eq!(c.canonical("last"), r#"{"sku":"big","tier":"bc"}"#);
        assert!(c.settings.deployment.resume, "a merged setting is read");
        let err = cfg("a: {<<: 3}\n").unwrap_err().to_string();
        assert!(err.contains("c.yaml") && err.contains("`<<` at a"), "{err}");
    }

    #[test]
    fn key_names_match_whole_segments() {
        let c = cfg("a: 1\n").unwrap();
        for k in [
            "postgresql.admin_password",
            "secrets.x",
            "app.jwt_secret",
            "api_key",
            "x.access_token",
            "mongodb.connection_url",
            "adminPassword",
            "x.apiKey",
            "storage.connection_string",
            "db.password.0",
        ] {
            assert!(c.secret_by(k).is_some(), "{k}");
        }
        for k in [
            "llm.max_tokens",
            "password_policy",
            "auth.token_ttl",
            "x.secret_name",
            "keyvault.name",
            "tokens",
            "deployment.strict_secrets",
            "passwords_expire",
        ] {
            assert_eq!(c.secret_by(k), None, "{k}");
        }
    }

    #[test]
    fn numbers_and_booleans_are_never_secret_by_name_and_lists_add_and_except() {
        let c = cfg("llm:\n  max_tokens: 4096\n  token: 123456789\n  api_key: sk-abcdef\nsecrets:\n  pin: 987654\n  on: true\nmongodb:\n  uri: mongodb://u:pw@h\nauth:\n  password_policy: strict\n  reset_token: not-a-secret-really\ndeployment:\n  secret_keys: [mongodb.uri]\n  not_secret_keys: [auth.reset_token]\n").unwrap();
        let keys: Vec<String> = c.secret_values().into_iter().map(|(k, _, _)| k).collect();
        assert_eq!(keys, ["llm.api_key", "mongodb.uri", "secrets.pin"]);
        assert!(c.has_secret("llm"));
        assert!(!c.has_secret("auth"));
        // The whole config holds every secret; a list item holds the secrets under it.
        assert!(c.has_secret(""));
        assert!(!cfg("a: 1\n").unwrap().has_secret(""));
        let l = cfg("dbs:\n  - name: a\n    password: pw-123456\n  - name: b\n").unwrap();
        assert!(l.has_secret("dbs") && l.has_secret("dbs.0"));
        assert!(!l.has_secret("dbs.1") && !l.has_secret("dbs.0.name"));
    }

    #[test]
    fn secrets_registered() {
        let c = cfg(
            "secrets:\n  k: s3cr3t-value\npostgresql:\n  admin_password: pw-123456\n  sku: B1\n",
        )
        .unwrap();
        let m = Masker::new();
        c.register_secrets(&m);
        assert_eq!(m.mask("s3cr3t-value pw-123456 B1"), "*** *** B1");
    }
}
