//! Where the state lives: resolving the location (flag, environment, config, the original
//! tool's blob settings) and opening the store for it.

use crate::config::environment;
use crate::config::Config;
use crate::state::blob::{BlobLocation, BlobStore};
use crate::state::{LocalStore, Lock, State, StateStore, Version};
use crate::util::error::Kind;
use crate::util::paths::DEFAULT_STATE;
use anyhow::Result;
use std::path::{Path, PathBuf};

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
            _ => Err(Kind::Config.error(format!(
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
                Kind::Config.error(format!(
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
        Err(Kind::Config.error(format!(
            "{location}: unsupported state location (a local path or az://ACCOUNT/CONTAINER/PATH)"
        )))
    } else {
        Ok(Box::new(LocalStore::new(location)))
    }
}

/// The state location of environment `env` (`None`: the default environment, today's
/// location): see `environment::state_location`.
pub fn location_for(flag: Option<&Path>, config: &Config, env: Option<&str>) -> Result<String> {
    environment::state_location(&location(flag, config)?, env)
}

/// Opens the store of environment `env` at `location`: its own history, and a state that
/// records which environment it belongs to (a state of another environment is refused).
pub fn open_for(location: &str, env: Option<&str>) -> Result<Box<dyn StateStore>> {
    let inner: Box<dyn StateStore> = match env {
        Some(e) if !is_blob(location) && !location.contains("://") => {
            // History beside the file when the file has a folder of its own
            // (`.stepwise/envs/NAME/`), otherwise in `history/NAME/` beside it.
            let path = Path::new(location);
            let parent = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let history = if parent.file_name().is_some_and(|n| n == e) {
                parent.join("history")
            } else {
                parent.join("history").join(e)
            };
            Box::new(LocalStore::with_history(location, history))
        }
        _ => open(location)?,
    };
    Ok(Box::new(EnvStore {
        inner,
        env: env.map(str::to_string),
    }))
}

/// The environments whose state exists at the places `template` (a location with `{env}`)
/// describes.
pub fn environments_at(template: &str) -> Result<Vec<String>> {
    if !is_blob(template) {
        return Ok(environment::local_names(template));
    }
    let Some(root) = environment::listing_root(template) else {
        return Ok(Vec::new());
    };
    let loc = BlobLocation::parse(template)?;
    if loc.account.contains(environment::PLACEHOLDER)
        || loc.container.contains(environment::PLACEHOLDER)
    {
        // One container per environment: nothing to list.
        return Ok(Vec::new());
    }
    let base = format!("az://{}/{}", loc.account, loc.container);
    let dir = root
        .strip_prefix(&base)
        .unwrap_or("")
        .trim_start_matches('/');
    let store = BlobStore::open(loc)?;
    Ok(environment::names_in(template, &store.list_urls(dir)?))
}

/// The state key that says which environment a state belongs to (absent: the default one).
pub const ENV_KEY: &str = "environment";

/// The environment a state belongs to (`None`: the default environment).
pub fn state_env(state: &State) -> Option<&str> {
    state.extra.get(ENV_KEY).and_then(|v| v.as_str())
}

/// A store that keeps an environment's state: it refuses a state recorded by another
/// environment and records its own on every save (nothing for the default environment, whose
/// state stays as it was).
struct EnvStore {
    inner: Box<dyn StateStore>,
    env: Option<String>,
}

impl EnvStore {
    fn check(&self, state: State) -> Result<State> {
        let recorded = state_env(&state);
        // Nothing written yet: no one's state.
        let fresh = state.steps.is_empty() && state.last_updated.is_empty();
        if recorded != self.env.as_deref() && !(fresh && recorded.is_none()) {
            return Err(Kind::State.error(format!(
                "state {} belongs to environment `{}`, not `{}`: it is left untouched (select the environment it belongs to with --env, point --state elsewhere, or restore a kept version of `{}` with `state rollback VERSION`, which keeps it as a backup)",
                self.inner.location(),
                environment::display(recorded),
                environment::display(self.env.as_deref()),
                environment::display(self.env.as_deref()),
            )));
        }
        Ok(state)
    }
}

impl StateStore for EnvStore {
    fn location(&self) -> String {
        self.inner.location()
    }
    fn load(&self) -> Result<State> {
        self.check(self.inner.load()?)
    }
    fn save(&self, state: &State) -> Result<()> {
        match &self.env {
            Some(e) if state_env(state) != Some(e.as_str()) => {
                let mut stamped = state.clone();
                stamped
                    .extra
                    .insert(ENV_KEY.into(), serde_json::Value::String(e.clone()));
                self.inner.save(&stamped)
            }
            _ => self.inner.save(state),
        }
    }
    fn backup(&self) -> Result<Option<String>> {
        self.inner.backup()
    }
    fn lock(&self, timeout: std::time::Duration) -> Result<Box<dyn Lock>> {
        self.inner.lock(timeout)
    }
    fn unlock(&self, force: bool) -> Result<String> {
        self.inner.unlock(force)
    }
    fn history(&self) -> Result<Vec<Version>> {
        self.inner.history()
    }
    fn version(&self, id: &str) -> Result<State> {
        self.check(self.inner.version(id)?)
    }
}
