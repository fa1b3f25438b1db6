//! `state import-legacy`: converts the original deployment tool's state file (format "1.x").
//!
//! What it does:
//! - each step the old file records as completed (in `steps` or in `completed_steps`) is
//!   recorded completed with TODAY's dependency digests, computed exactly as a deployment
//!   computes them, so that the next deployment skips it;
//! - a failed step stays failed (it runs next time); a step that was running is recorded
//!   `interrupted`; a step name this project does not have is ignored;
//! - non-secret resource values become the outputs that the steps themselves produce and read
//!   (`create_container_registry.login_server`, `create_container_apps_env.default_domain`,
//!   ...); every non-secret value is also kept under `imported_from.resources` in the state;
//! - passwords, keys, tokens and connection strings (anything that looks secret, or is
//!   masked like `***REDACTED***`) are dropped;
//! - a step whose resource has another name in the old file than in today's config is not
//!   imported as completed (it runs: its steps check what exists before creating); a
//!   different resource group means nothing is imported as completed.
//!
//! It writes wherever a deployment keeps its state (a local file or blob storage, resolved as
//! a deployment resolves it), under the state lock. It refuses (exit 2) to overwrite a state
//! that already records steps: `stepwise state reset` first (it keeps a backup). A local state
//! file that is itself an old-format file (importing in place) is backed up and replaced.

use crate::app::options::LoadOptions;
use crate::app::project::{Project, StateTarget};
use crate::decide::fingerprint::Fingerprint;
use crate::state::{State, StateStore, StepRecord};
use crate::util::error::{exit, Kind, OrFail};
use anyhow::{Context, Result};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// A value of the old file that becomes an output of one of our steps:
/// (resource, field names to try in order, step, output key).
const OUTPUTS: &[(&str, &[&str], &str, &str)] = &[
    (
        "container_registry",
        &["login_server", "loginServer"],
        "create_container_registry",
        "login_server",
    ),
    (
        "log_analytics",
        &["customer_id", "customerId", "workspace_id"],
        "create_monitoring",
        "workspace_customer_id",
    ),
    (
        "log_analytics",
        &["id"],
        "create_monitoring",
        "workspace_id",
    ),
    (
        "key_vault",
        &["vault_uri", "vaultUri"],
        "create_key_vault",
        "vault_uri",
    ),
    (
        "postgresql",
        &["server_name", "name"],
        "create_databases",
        "postgres_server",
    ),
    (
        "postgresql",
        &["fqdn", "fully_qualified_domain_name", "host", "hostname"],
        "create_databases",
        "postgres_fqdn",
    ),
    (
        "postgresql",
        &["database_name"],
        "create_databases",
        "postgres_database",
    ),
    (
        "redis",
        &["hostname", "host_name", "hostName", "host"],
        "create_databases",
        "redis_host",
    ),
    (
        "redis",
        &["ssl_port", "sslPort"],
        "create_databases",
        "redis_ssl_port",
    ),
    (
        "container_apps_env",
        &["default_domain", "defaultDomain"],
        "create_container_apps_env",
        "default_domain",
    ),
];

/// A resource name of the old file that must equal today's config for its step to count as
/// done: (resource, field, config key, step; "*" = every step).
const NAMES: &[(&str, &str, &str, &str)] = &[
    ("resource_group", "name", "azure.resource_group", "*"),
    (
        "log_analytics",
        "name",
        "monitoring.log_workspace",
        "create_monitoring",
    ),
    (
        "app_insights",
        "name",
        "monitoring.app_insights",
        "create_monitoring",
    ),
    (
        "container_registry",
        "name",
        "container_registry.name",
        "create_container_registry",
    ),
    ("key_vault", "name", "key_vault.name", "create_key_vault"),
    (
        "postgresql",
        "server_name",
        "postgresql.server_name",
        "create_databases",
    ),
    (
        "postgresql",
        "database_name",
        "postgresql.database_name",
        "create_databases",
    ),
    ("redis", "name", "redis.name", "create_databases"),
    (
        "container_apps_env",
        "name",
        "container_apps.environment_name",
        "create_container_apps_env",
    ),
];

pub fn import(o: &LoadOptions, file: &Path) -> Result<i32> {
    let legacy = read_legacy(file)?;
    let project = Project::load(o, true)?;
    let location = project.state_location.clone();
    let store = project.store()?;
    let _lock = store.lock(o.lock_timeout)?;
    let mut report = Report {
        backup: make_room(&*store, &location)?,
        ..Report::default()
    };

    let mut state = State::default();
    let masker = &project.masker;
    let resources = resources(&legacy);
    let kept = sanitize(
        &Value::Object(resources.clone()),
        "",
        masker,
        &mut report.dropped,
    );

    // Each step of the old file: its status.
    let legacy_steps = statuses(&legacy);

    let now = crate::util::clock::now();
    import_steps(
        o,
        &project,
        &legacy_steps,
        &resources,
        &now,
        &mut state,
        &mut report,
    )?;
    let absent: Vec<&str> = project
        .steps
        .names()
        .into_iter()
        .filter(|n| !legacy_steps.contains_key(*n))
        .collect();

    state.last_updated = now.clone();
    state.extra.insert(
        "imported_from".into(),
        json!({
            "file": file.display().to_string(),
            "version": legacy.get("version").cloned().unwrap_or(Value::Null),
            "last_updated": legacy.get("last_updated").cloned().unwrap_or(Value::Null),
            "imported_at": now,
            "resources": kept,
        }),
    );
    // Last line of defence: nothing secret (from the config) reaches the state.
    let text = state.to_json();
    if masker.contains_secret(&text) {
        return Err(Kind::State
            .error("the imported state would contain a secret from the config: nothing written"));
    }
    store.save(&state)?;

    println!(
        "Imported {} (format {}) into {}:",
        file.display(),
        legacy
            .get("version")
            .map(plain)
            .unwrap_or_else(|| "?".into()),
        store.location()
    );
    report.print(&absent);
    Ok(exit::OK)
}

/// What an import did, for the lines it prints.
#[derive(Default)]
struct Report {
    /// Where the old-format file that was in place is backed up.
    backup: Option<String>,
    /// One line per step of the old file.
    lines: Vec<String>,
    /// completed, failed/interrupted, not imported, unknown
    counts: (usize, usize, usize, usize),
    /// The secrets left out.
    dropped: Vec<String>,
}

impl Report {
    /// After the `Imported …` line: the backup, each step's line, the steps not in the old
    /// file (`absent`), the secrets dropped and the counts.
    fn print(mut self, absent: &[&str]) {
        let (lines, counts) = (&self.lines, self.counts);
        if let Some(b) = &self.backup {
            println!("  (the old-format file that was there is backed up to {b})");
        }
        for l in lines {
            println!("{l}");
        }
        if !absent.is_empty() {
            println!(
                "  not in the old file (they run on the next deployment): {}",
                absent.join(", ")
            );
        }
        let dropped = &mut self.dropped;
        dropped.sort();
        dropped.dedup();
        if dropped.is_empty() {
            println!("Secrets dropped: none found");
        } else {
            println!(
                "Secrets dropped (never written to stepwise's state): {}",
                dropped.join(", ")
            );
        }
        println!(
            "{} completed, {} to run again (failed or interrupted), {} not imported, {} unknown ignored. Next: `stepwise plan`.",
            counts.0, counts.1, counts.2, counts.3
        );
    }
}

/// Refuses to overwrite a state that records steps; an old-format local file in place is
/// replaced (after a backup: where it went).
fn make_room(store: &dyn StateStore, location: &str) -> Result<Option<String>> {
    let mut backup = None;
    if !crate::state::backend::is_blob(location) && is_legacy_file(Path::new(location)) {
        backup = store.backup()?;
    } else {
        let current = store.load()?;
        if !current.steps.is_empty() {
            return Err(Kind::State.error(format!(
                "state {} already records {} step(s) ({}): import-legacy only fills an empty state. Run `stepwise state reset` first (it keeps a backup), or import into another file with --state PATH",
                store.location(),
                current.steps.len(),
                current.steps.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    Ok(backup)
}

/// Each step of the old file (`legacy_steps`), in the project's step order (unknown names
/// last): its record in `state` and its line in the `report`.
fn import_steps(
    o: &LoadOptions,
    project: &Project,
    legacy_steps: &BTreeMap<String, Value>,
    resources: &Map<String, Value>,
    now: &str,
    state: &mut State,
    report: &mut Report,
) -> Result<()> {
    let salt = state.secret_salt();
    let fingerprints = project.fingerprints(Some(&salt))?;
    let masker = &project.masker;
    // Steps whose resources have other names today.
    let mismatches = renamed(resources, &project.config);
    let everything_moved = mismatches.get("*").cloned();
    let Report {
        lines,
        counts,
        dropped,
        ..
    } = report;
    // In the project's step order; unknown names last.
    let mut ordered: Vec<(&String, &Value)> = legacy_steps.iter().collect();
    ordered.sort_by_key(|(n, _)| (project.steps.index(n).unwrap_or(usize::MAX), n.to_string()));
    for (name, old) in ordered {
        let Some(index) = project.steps.index(name) else {
            lines.push(format!(
                "  ignored      {name}: no such step in {}",
                o.steps.display()
            ));
            counts.3 += 1;
            continue;
        };
        let mut legacy_info = Map::new();
        for k in ["timestamp", "dependency_hash", "metadata"] {
            if let Some(v) = old.get(k) {
                legacy_info.insert(k.to_string(), v.clone());
            }
        }
        let legacy_info = sanitize(&Value::Object(legacy_info), name, masker, dropped);
        let moved = everything_moved
            .clone()
            .or_else(|| mismatches.get(name.as_str()).cloned());
        let fp: &Fingerprint = &fingerprints[index];
        let (line, record, bucket) = import_step(
            name,
            old,
            legacy_info,
            moved,
            fp,
            resources,
            masker,
            now,
            dropped,
        );
        lines.push(line);
        if let Some(record) = record {
            state.steps.insert(name.clone(), record_from(record)?);
        }
        match bucket {
            0 => counts.0 += 1,
            1 => counts.1 += 1,
            _ => counts.2 += 1,
        }
    }
    Ok(())
}

/// One completed, failed or interrupted step of the old file: the line to print, the record to
/// keep (none when it is not imported) and its tally (0 completed, 1 failed or interrupted,
/// 2 not imported).
#[allow(clippy::too_many_arguments)]
fn import_step(
    name: &str,
    old: &Value,
    legacy_info: Value,
    moved: Option<Vec<String>>,
    fp: &Fingerprint,
    resources: &Map<String, Value>,
    masker: &crate::util::secrets::Masker,
    now: &str,
    dropped: &mut Vec<String>,
) -> (String, Option<Value>, usize) {
    let status = old.get("status").and_then(Value::as_str).unwrap_or("");
    match status {
        "completed" | "success" | "succeeded" | "done" => {
            if let Some(why) = moved {
                let line = format!(
                    "  not imported {name}: {} (it runs on the next deployment)",
                    why.join("; ")
                );
                return (line, None, 2);
            }
            let outputs = outputs_for(name, resources, masker);
            let record = json!({
                "status": "completed",
                "timestamp": now,
                "dependency_hash": fp.combined,
                "dependencies": fp.dependencies,
                "outputs": outputs,
                "imported_from_legacy": legacy_info,
            });
            let kept_outputs: Vec<String> = outputs
                .iter()
                .map(|(k, v)| format!("{k}={}", plain(v)))
                .collect();
            let line = format!(
                "  completed    {name}{}",
                if kept_outputs.is_empty() {
                    String::new()
                } else {
                    format!(" (outputs: {})", kept_outputs.join(", "))
                }
            );
            (line, Some(record), 0)
        }
        "failed" | "error" => {
            let error = old
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("failed in the original tool");
            let error = if looks_secret_value(error) || masker.contains_secret(error) {
                dropped.push(format!("steps.{name}.error"));
                "failed in the original tool (its message looked secret and was dropped)"
                    .to_string()
            } else {
                format!("original tool: {error}")
            };
            let record = json!({
                "status": "failed",
                "timestamp": now,
                "error": error,
                "imported_from_legacy": legacy_info,
            });
            let line = format!("  failed       {name}: {error} (it runs on the next deployment)");
            (line, Some(record), 1)
        }
        "running" | "in_progress" | "started" | "interrupted" => {
            let record = json!({
                "status": "interrupted",
                "timestamp": now,
                "error": format!("was `{status}` in the original tool's state"),
                "imported_from_legacy": legacy_info,
            });
            let line =
                format!("  interrupted {name}: was {status:?} (it runs on the next deployment)");
            (line, Some(record), 1)
        }
        other => {
            let line =
                format!("  not imported {name}: status {other:?} (it runs on the next deployment)");
            (line, None, 2)
        }
    }
}

/// The steps whose resources have other names in the config today than in the old file
/// (`*`: every step), with why.
fn renamed(
    resources: &Map<String, Value>,
    config: &crate::config::Config,
) -> BTreeMap<String, Vec<String>> {
    let mut mismatches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (resource, field, key, step) in NAMES {
        let Some(old) = resources
            .get(*resource)
            .and_then(|r| r.get(*field))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let now = config.get(key).and_then(Value::as_str).unwrap_or("");
        if old != now {
            mismatches
                .entry(step.to_string())
                .or_default()
                .push(format!(
                    "the old file's {resource}.{field} is {old:?} but config {key} is {now:?}"
                ));
        }
    }
    mismatches
}

/// Each step the old file names, with its record (`completed_steps` entries as completed).
fn statuses(legacy: &Map<String, Value>) -> BTreeMap<String, Value> {
    let mut legacy_steps: BTreeMap<String, Value> = legacy
        .get("steps")
        .and_then(Value::as_object)
        .map(|m| m.clone().into_iter().collect())
        .unwrap_or_default();
    if let Some(list) = legacy.get("completed_steps").and_then(Value::as_array) {
        for name in list.iter().filter_map(Value::as_str) {
            legacy_steps
                .entry(name.to_string())
                .or_insert_with(|| json!({ "status": "completed" }));
        }
    }
    legacy_steps
}

/// Reads and checks the old file.
fn read_legacy(file: &Path) -> Result<Map<String, Value>> {
    let text = std::fs::read_to_string(file)
        .or_fail(Kind::State, || format!("cannot read {}", file.display()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        Kind::State.error(format!(
            "{}:{}:{}: not valid JSON: {e}",
            file.display(),
            e.line(),
            e.column()
        ))
    })?;
    let Value::Object(map) = value else {
        return Err(Kind::State.error(format!(
            "{}: not a state file (expected a JSON object)",
            file.display()
        )));
    };
    let version = map.get("version").map(plain).unwrap_or_default();
    match version.split('.').next() {
        Some("1") => Ok(map),
        Some("2") => Err(Kind::State.error(format!(
            "{}: version {version} is already stepwise's format: use it as it is (--state {})",
            file.display(),
            file.display()
        ))),
        _ => Err(Kind::State.error(format!(
            "{}: unknown state version {version:?}; import-legacy reads the original tool's format 1.x",
            file.display()
        ))),
    }
}

/// Is the file at `path` an old-format (1.x) state file?
fn is_legacy_file(path: &Path) -> bool {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v.get("version").map(plain))
        .is_some_and(|v| v.split('.').next() == Some("1"))
}

/// `resources` merged with `created_resources` (the old tool wrote both).
fn resources(legacy: &Map<String, Value>) -> Map<String, Value> {
    let mut out = Map::new();
    for key in ["created_resources", "resources"] {
        if let Some(Value::Object(m)) = legacy.get(key) {
            for (k, v) in m {
                match (out.get_mut(k), v) {
                    (Some(Value::Object(have)), Value::Object(more)) => {
                        for (f, x) in more {
                            have.insert(f.clone(), x.clone());
                        }
                    }
                    _ => {
                        out.insert(k.clone(), v.clone());
                    }
                }
            }
        }
    }
    out
}

/// The outputs of `step` taken from the old resources (non-secret values only).
fn outputs_for(
    step: &str,
    resources: &Map<String, Value>,
    masker: &crate::util::secrets::Masker,
) -> Map<String, Value> {
    let mut out = Map::new();
    for (resource, fields, s, key) in OUTPUTS {
        if *s != step || out.contains_key(*key) {
            continue;
        }
        let Some(r) = resources.get(*resource) else {
            continue;
        };
        for f in *fields {
            if let Some(v) = r.get(*f) {
                let text = plain(v);
                if v.is_null()
                    || text.is_empty()
                    || looks_secret_key(f)
                    || looks_secret_value(&text)
                    || masker.contains_secret(&text)
                {
                    continue;
                }
                out.insert(key.to_string(), v.clone());
                break;
            }
        }
    }
    out
}

/// `value` without anything secret; `dropped` gets the path of each value left out.
fn sanitize(
    value: &Value,
    path: &str,
    masker: &crate::util::secrets::Masker,
    dropped: &mut Vec<String>,
) -> Value {
    match value {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if looks_secret_key(k) {
                    dropped.push(p);
                    continue;
                }
                if let Some(text) = v.as_str() {
                    if looks_secret_value(text) || masker.contains_secret(text) {
                        dropped.push(p);
                        continue;
                    }
                }
                out.insert(k.clone(), sanitize(v, &p, masker, dropped));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(i, v)| {
                    let p = format!("{path}[{i}]");
                    if let Some(text) = v.as_str() {
                        if looks_secret_value(text) || masker.contains_secret(text) {
                            dropped.push(p);
                            return None;
                        }
                    }
                    Some(sanitize(v, &p, masker, dropped))
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// A field name that holds a secret: passwords, keys, secrets, tokens, connection strings,
/// credentials, SAS. (`key_vault` is a resource, not a field; `instrumentation_key` is a key.)
fn looks_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', ' '], "_");
    const WORDS: &[&str] = &[
        "password",
        "passwd",
        "pwd",
        "secret",
        "token",
        "connection_string",
        "connectionstring",
        "credential",
        "sas",
        "private",
    ];
    WORDS.iter().any(|w| k.contains(w))
        || k == "key"
        || k.ends_with("_key")
        || k.ends_with("key")
        || (k.starts_with("key_") && !k.starts_with("key_vault"))
        || k.contains("_key_")
        || k.ends_with("keys")
}

/// A value that is (or contains) a secret or a masked one: `***REDACTED***`, `***`, a URL with
/// a password (`scheme://user:pw@host`).
fn looks_secret_value(text: &str) -> bool {
    if text.contains("***") || text.to_ascii_uppercase().contains("REDACTED") {
        return true;
    }
    if let Some((_, rest)) = text.split_once("://") {
        let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
        if let Some((userinfo, _)) = authority.rsplit_once('@') {
            return userinfo.contains(':');
        }
    }
    let lower = text.to_ascii_lowercase();
    lower.contains("password=")
        || lower.contains("accountkey=")
        || lower.contains("sharedaccesskey")
}

/// A JSON value as plain text (strings without quotes).
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A step record from its JSON (so that fields added to the record later get their defaults).
fn record_from(value: Value) -> Result<StepRecord> {
    serde_json::from_value(value).context("building an imported step record")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_and_values() {
        for k in [
            "admin_password",
            "primary_key",
            "instrumentation_key",
            "connection_string",
            "sas_token",
            "client_secret",
            "accessKeys",
            "key",
        ] {
            assert!(looks_secret_key(k), "{k}");
        }
        for k in [
            "name",
            "login_server",
            "admin_username",
            "vault_uri",
            "hostname",
            "ssl_port",
            "default_domain",
            "id",
            "server_name",
            "key_vault",
        ] {
            assert!(!looks_secret_key(k), "{k}");
        }
        assert!(looks_secret_value("***REDACTED***"));
        assert!(looks_secret_value("rediss://:abc@host:6380"));
        assert!(looks_secret_value("postgresql://u:pw@h:5432/db"));
        assert!(!looks_secret_value(
            "https://draftgenie-kv.vault.azure.net/"
        ));
        assert!(!looks_secret_value("https://user@host/"));
    }

    #[test]
    fn sanitize_drops_secrets_and_keeps_the_rest() {
        let masker = crate::util::secrets::Masker::new();
        masker.add("cfg-secret-1");
        let v = json!({
            "redis": {"name": "r", "primary_key": "x", "hostname": "r.example", "ssl_port": 6380},
            "pg": {"admin_password": "***REDACTED***", "note": "has cfg-secret-1 inside", "list": ["a", "***"]},
        });
        let mut dropped = Vec::new();
        let out = sanitize(&v, "", &masker, &mut dropped);
        assert_eq!(
            out,
            json!({"redis": {"name": "r", "hostname": "r.example", "ssl_port": 6380}, "pg": {"list": ["a"]}})
        );
        dropped.sort();
        assert_eq!(
            dropped,
            [
                "pg.admin_password",
                "pg.list[1]",
                "pg.note",
                "redis.primary_key"
            ]
        );
    }
}
