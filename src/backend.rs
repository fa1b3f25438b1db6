//! Where the state lives: resolving the location (flag, environment, config, the original
//! tool's blob settings) and opening the store for it.

use crate::blob::{BlobLocation, BlobStore};
use crate::config::Config;
use crate::error::usage;
use crate::state::{LocalStore, StateStore};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The default local state file.
pub const DEFAULT_STATE: &str = ".stepwise/state.json";

/// The state location: `--state`, then `STEPWISE_STATE`, then the config's `state.path`,
/// then the original tool's blob settings (`advanced.state_storage: blob` or
/// `AZURE_STATE_STORAGE=blob`, with `advanced.state_blob_account`/`_container`/`_name`),
/// then `.stepwise/state.json`.
pub fn location(flag: Option<&Path>, config: &Config) -> Result<String> {
    if let Some(p) = flag {
        return Ok(p.display().to_string());
    }
    if let Some(p) = std::env::var_os("STEPWISE_STATE").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p).display().to_string());
    }
    if let Some(v) = config.get("state.path") {
        return match v.as_str() {
            Some(s) if !s.is_empty() => Ok(s.to_string()),
            _ => Err(usage(format!(
                "{}: state.path must be a local path or az://ACCOUNT/CONTAINER/PATH",
                config.path.display()
            ))),
        };
    }
    let legacy_blob = config
        .get("advanced.state_storage")
        .and_then(|v| v.as_str())
        .is_some_and(|s| s.eq_ignore_ascii_case("blob"))
        || std::env::var("AZURE_STATE_STORAGE").is_ok_and(|s| s.eq_ignore_ascii_case("blob"));
    if legacy_blob {
        let get = |key: &str, env: &str, default: Option<&str>| -> Result<String> {
            if let Some(v) = config
                .get(&format!("advanced.{key}"))
                .and_then(|v| v.as_str())
            {
                if !v.is_empty() {
                    return Ok(v.to_string());
                }
            }
            if let Ok(v) = std::env::var(env) {
                if !v.is_empty() {
                    return Ok(v);
                }
            }
            default.map(str::to_string).ok_or_else(|| {
                usage(format!(
                    "blob state is selected (advanced.state_storage / AZURE_STATE_STORAGE) but advanced.{key} (or {env}) is not set"
                ))
            })
        };
        let account = get("state_blob_account", "AZURE_STATE_BLOB_ACCOUNT", None)?;
        let container = get(
            "state_blob_container",
            "AZURE_STATE_BLOB_CONTAINER",
            Some("deployment-state"),
        )?;
        let name = get(
            "state_blob_name",
            "AZURE_STATE_BLOB_NAME",
            Some("stepwise-state.json"),
        )?;
        return Ok(format!("az://{account}/{container}/{name}"));
    }
    Ok(DEFAULT_STATE.to_string())
}

pub fn is_blob(location: &str) -> bool {
    location.starts_with("az://")
}

/// Opens the store for a location.
pub fn open(location: &str) -> Result<Box<dyn StateStore>> {
    if is_blob(location) {
        Ok(Box::new(BlobStore::open(BlobLocation::parse(location)?)?))
    } else if location.contains("://") {
        Err(usage(format!(
            "{location}: unsupported state location (a local path or az://ACCOUNT/CONTAINER/PATH)"
        )))
    } else {
        Ok(Box::new(LocalStore::new(location)))
    }
}
