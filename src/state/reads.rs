//! Recorded reads: every value a step obtained through a host function while it ran (config
//! keys, environment variables, other steps' outputs), each kept with the digest of the value
//! read (secret values only as the salted slow digest), so that the next decision follows what
//! the step really read, not only what it declared.

use crate::config::{canonical_json, Config};
use crate::util::digest::secret_digest;
use crate::util::digest::sha256_hex;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// The key of an output read that used the whole map of a step's outputs.
pub const WHOLE: &str = "*";

/// What one run of a step read. Stored in the step's state record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reads {
    /// Config key → digest of its canonical JSON value (`null` when missing).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Environment variable → digest of its value (or of "unset").
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Step → output key (or `*` for the whole map) → digest of the value read.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<String, BTreeMap<String, String>>,
    /// Where each undeclared config key / env var was read (`file:line:col`), for `check`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub undeclared: BTreeMap<String, String>,
}

impl Reads {
    pub fn is_empty(&self) -> bool {
        self.config.is_empty() && self.env.is_empty() && self.outputs.is_empty()
    }
}

/// The digest of a config value as read: the same digest the fingerprint of a declared key
/// uses, so that declared and recorded reads compare alike.
pub fn config_digest(config: &Config, key: &str, salt: &str) -> String {
    let canonical = config.canonical(key);
    if config.has_secret(key) {
        secret_digest(salt, &canonical)
    } else {
        sha256_hex(canonical.as_bytes())
    }
}

/// The digest of an environment variable's value (`None`: unset). Environment variables
/// often carry credentials that stepwise cannot tell from other values, so every value gets
/// the salted slow digest of secrets (computed once per run and variable).
pub fn env_digest(value: Option<&str>, salt: &str) -> String {
    match value {
        None => sha256_hex(b"unset"),
        Some(v) => secret_digest(salt, &format!("set:{v}")),
    }
}

/// The current value of an environment variable for a digest (non-UTF-8 counts as set).
pub fn env_value(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The digest of an output value (`null` when the key is missing).
pub fn output_digest(value: Option<&Value>) -> String {
    sha256_hex(canonical_json(value.unwrap_or(&Value::Null)).as_bytes())
}

/// The digest of an output read (`key`, or [`WHOLE`]) against a step's outputs.
pub fn output_read_digest(outputs: &serde_json::Map<String, Value>, key: &str) -> String {
    if key == WHOLE {
        output_digest(Some(&Value::Object(outputs.clone())))
    } else {
        output_digest(outputs.get(key))
    }
}

/// How a config read is named in messages and in `Reads::undeclared`: `config KEY`, or
/// `the whole config` (`read_config("")`).
pub fn config_read(key: &str) -> String {
    if key.is_empty() {
        WHOLE_CONFIG.to_string()
    } else {
        format!("config {key}")
    }
}

/// What [`config_read`] calls `read_config("")`.
pub const WHOLE_CONFIG: &str = "the whole config";

/// The config key of a read named by [`config_read`].
pub fn config_key_of_read(read: &str) -> Option<&str> {
    if read == WHOLE_CONFIG {
        Some("")
    } else {
        read.strip_prefix("config ")
    }
}

/// What to do about an undeclared config read: (the fix, said before the declaration's
/// location; what follows it).
pub fn config_fix(key: &str) -> (String, &'static str) {
    if key.is_empty() {
        (
            "declare the keys it uses in `config:`".to_string(),
            " and read those instead; reading the whole config is discouraged: any change anywhere in it re-runs the step",
        )
    } else {
        (format!("add \"{key}\" to `config:`"), "")
    }
}

/// Is `key` covered by a declared config key (the key itself, or a declared parent)?
pub fn covers(declared: &[String], key: &str) -> bool {
    declared.iter().any(|d| {
        key == d
            || key
                .strip_prefix(d.as_str())
                .is_some_and(|rest| rest.starts_with('.'))
    })
}

/// Digests of config values for one decision pass, each computed once (secret values use a
/// slow digest).
#[derive(Default)]
pub struct DigestMemo {
    config: Mutex<HashMap<String, String>>,
    env: Mutex<HashMap<String, String>>,
}

impl DigestMemo {
    pub fn config(&self, config: &Config, key: &str, salt: &str) -> String {
        let mut m = self.config.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(key.to_string())
            .or_insert_with(|| config_digest(config, key, salt))
            .clone()
    }

    pub fn env(&self, name: &str, salt: &str) -> String {
        let mut m = self.env.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(name.to_string())
            .or_insert_with(|| env_digest(env_value(name).as_deref(), salt))
            .clone()
    }
}

/// Reasons a step must run because a config key or environment variable it read (and
/// recorded) without declaring it changed. Declared ones are compared by the fingerprint.
pub fn changed_inputs(
    reads: &Reads,
    declared_config: &[String],
    declared_env: &[String],
    config: &Config,
    memo: &DigestMemo,
    salt: &str,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, digest) in &reads.config {
        // A declared key (or a key under a declared parent) is compared by the fingerprint.
        if covers(declared_config, key) {
            continue;
        }
        if &memo.config(config, key, salt) != digest {
            out.push(format!(
                "{} changed (read by the step, not declared)",
                config_read(key)
            ));
        }
    }
    for (name, digest) in &reads.env {
        if declared_env.iter().any(|d| d == name) {
            continue;
        }
        if &memo.env(name, salt) != digest {
            out.push(format!("env {name} changed"));
        }
    }
    out
}

/// Reasons a step must run because outputs of `step` that it read changed (`current`: that
/// step's outputs now).
pub fn changed_outputs(
    reads: &Reads,
    step: &str,
    current: &serde_json::Map<String, Value>,
) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(keys) = reads.outputs.get(step) {
        for (key, digest) in keys {
            if &output_read_digest(current, key) != digest {
                out.push(if key == WHOLE {
                    format!("outputs of {step} changed")
                } else {
                    format!("output {step}.{key} changed")
                });
            }
        }
    }
    out
}
