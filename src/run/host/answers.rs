//! Secrets recognised in what commands print, before anything is logged: secret-looking
//! JSON fields of az answers, credential lists, `keyvault secret show`, and secrets by their
//! shape (SAS tokens, connection strings, URLs with a password).

use super::guard::command_words;
use crate::util::secrets::Masker;
use serde_json::Value;

/// Field names whose string values Azure returns as secrets, as whole name segments the field
/// ends with (`primaryKey`, `adminPassword`, `primarySharedKey`, `connectionString`,
/// `accessToken`, ...; not `keyName`, `tokenType`, `passwordPolicy`).
const SECRET_FIELD_ENDINGS: &[&[&str]] = &[
    &["key"],
    &["keys"],
    &["password"],
    &["passwords"],
    &["secret"],
    &["token"],
    &["sharedkey"],
    &["connection", "string"],
    &["connection", "strings"],
    &["connectionstring"],
    &["sas"],
    &["credentials"],
];

/// Fields that label a secret inside a secret container (`{"keyName": "key1", "value": ...}`,
/// `{"name": "password", "value": ...}`): never secret themselves.
const LABEL_FIELDS: &[&str] = &[
    "name",
    "keyname",
    "type",
    "permissions",
    "id",
    "username",
    "kind",
    "creationtime",
    "expiry",
];

fn is_secret_field(name: &str) -> bool {
    crate::config::name_ends_with(name, SECRET_FIELD_ENDINGS)
}

/// Marks what a command printed as secret when it is, before anything is logged: the values of
/// secret-looking JSON fields, credential lists (`{"keyName"|"name": ..., "value": ...}`), the
/// whole answer of `keyvault secret show`, SAS tokens and connection strings by their shape.
pub(super) fn register_output_secrets(masker: &Masker, argv: &[String], stdout: &str) {
    let is_secret_show = argv.iter().any(|a| a == "keyvault")
        && argv.iter().any(|a| a == "secret")
        && argv.iter().any(|a| a == "show");
    let text = stdout.trim();
    if text.is_empty() {
        return;
    }
    let source = format!("an answer of {}", command_words(argv));
    match serde_json::from_str::<Value>(text) {
        Ok(v) => {
            if is_secret_show {
                match &v {
                    Value::String(s) => masker.add_named(s, &source),
                    Value::Object(m) => {
                        if let Some(Value::String(s)) = m.get("value") {
                            masker.add_named(s, &source)
                        }
                    }
                    _ => {}
                }
            }
            walk_secret_fields(masker, &v, false, false, &source);
        }
        Err(_) if is_secret_show => masker.add_named(text, &source),
        Err(_) => register_by_shape(masker, text, &source),
    }
}

/// `secret`: the value stands under a secret field; `secret_list`: inside a `secrets` list
/// (Container Apps: `{"name": ..., "value": ...}` with `--show-values`, else only names and
/// Key Vault references, which are not secret).
fn walk_secret_fields(masker: &Masker, v: &Value, secret: bool, secret_list: bool, source: &str) {
    match v {
        Value::Object(m) => {
            // A credential entry: {"keyName": "key1", "value": "..."} (storage account keys),
            // {"name": "password", "value": "..."} inside a secret list (acr credential).
            let credential_entry = m.contains_key("keyName")
                || m.contains_key("KeyName")
                || ((secret || secret_list) && m.contains_key("value"));
            for (k, child) in m {
                let lower = k.to_ascii_lowercase();
                let child_secret = if LABEL_FIELDS.contains(&lower.as_str()) {
                    false
                } else if credential_entry && !secret {
                    lower == "value" || is_secret_field(k)
                } else {
                    secret || is_secret_field(k)
                };
                walk_secret_fields(masker, child, child_secret, lower == "secrets", source);
            }
        }
        Value::Array(a) => a
            .iter()
            .for_each(|c| walk_secret_fields(masker, c, secret, secret_list, source)),
        Value::String(s) => {
            if secret {
                masker.add_named(s, source);
            }
            // The key inside a connection string is secret on its own too.
            register_by_shape(masker, s, source);
        }
        _ => {}
    }
}

/// Connection-string keys whose values are secret (`AccountKey=...;`).
const SECRET_CONNECTION_PARTS: &[&str] = &[
    "accountkey",
    "sharedaccesskey",
    "sharedaccesssignature",
    "password",
    "pwd",
    "accesskey",
    "sig",
];

/// Secrets recognised by their shape in a text: a SAS token (`sv=...&sig=...`), a connection
/// string with a key or password (`...;AccountKey=...;`), a URL with a password
/// (`scheme://user:password@host`). The whole text and the secret part are registered.
fn register_by_shape(masker: &Masker, text: &str, source: &str) {
    let t = text.trim().trim_start_matches('?');
    if t.len() < crate::util::secrets::MIN_PATTERN_LEN {
        return;
    }
    let mut found = false;
    for sep in [';', '&'] {
        // Only texts made of several `key=value` parts (a connection string, a SAS token).
        if !t.contains(sep) {
            continue;
        }
        for part in t.split(sep) {
            if let Some((k, v)) = part.split_once('=') {
                let k = k.trim().to_ascii_lowercase();
                if SECRET_CONNECTION_PARTS.contains(&k.as_str()) && !v.trim().is_empty() {
                    masker.add_named(v.trim(), source);
                    found = true;
                }
            }
        }
    }
    // scheme://user:password@host
    if let Some((_, rest)) = t.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            if let Some((_, password)) = userinfo.split_once(':') {
                if !password.is_empty() {
                    masker.add_named(password, source);
                    found = true;
                }
            }
        }
    }
    if found {
        masker.add_named(t, source);
    }
}
