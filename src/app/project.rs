//! A loaded project: config, engine with prelude, steps, masker, console, state location and
//! hash cache; what every command starts from.

use crate::app::options::{LoadOptions, Output};
use crate::config::environment;
use crate::config::Config;
use crate::decide::fingerprint::{Fingerprint, Fingerprinter};
use crate::decide::hashcache::HashCache;
use crate::decide::step::{self, StepSet};
use crate::state::backend;
use crate::state::StateStore;
use crate::util::console::Console;
use crate::util::error::{usage, Kind};
use crate::util::paths::LOCAL_DIR;
use crate::util::secrets::Masker;
use anyhow::Result;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A loaded project: config, engine with prelude, steps.
pub struct Project {
    pub config: Arc<Config>,
    pub engine: rhai::Engine,
    pub steps: StepSet,
    pub masker: Arc<Masker>,
    pub console: Arc<Console>,
    /// The state location: a local path or az://ACCOUNT/CONTAINER/PATH.
    pub state_location: String,
    /// The local hash cache (`.stepwise/hashcache`).
    pub hash_cache: Arc<HashCache>,
    /// The environment (`--env`); `None`: the default environment.
    pub env: Option<String>,
    /// The deployment flags with the config's defaults merged in (`DeployOptions::resolve`).
    pub deploy: crate::app::options::DeployOptions,
}

impl Project {
    /// The project's name, for reports and notifications: the name of the folder that holds
    /// its config (the project root).
    pub fn name(&self) -> String {
        let dir = self
            .config
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(|| ".".into());
        std::fs::canonicalize(dir)
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
            .unwrap_or_default()
    }

    /// The project in the selected environment (`--env` / `STEPWISE_ENV`).
    pub fn load(o: &LoadOptions, need_config: bool) -> Result<Project> {
        let env = environment::selected(o.env.as_deref())?;
        Self::load_env(o, need_config, env.as_deref())
    }

    /// The project in environment `env` (`None`: the default environment).
    pub fn load_env(o: &LoadOptions, need_config: bool, env: Option<&str>) -> Result<Project> {
        let config = load_config(o, need_config, env)?;
        let deploy = o.deploy.clone().resolve(&config.settings.deployment);
        let verbose = o.verbose || config.settings.deployment.verbose;
        init_tracing(verbose);
        let mut console = match o.output {
            Output::Json => Console::quiet(verbose),
            Output::Markdown => Console::on_stderr(verbose),
            Output::Human => Console::new(verbose),
        };
        if !deploy.dry_run {
            console.enable_live();
        }
        console.set_env(env);
        let console = Arc::new(console);
        // One redactor per process: every sink (console, logs, errors printed by main) uses it.
        let masker: Arc<Masker> = crate::util::secrets::global();
        config.register_secrets(&masker);
        if config.overlay.is_some() {
            // Secrets of the base that the overlay replaced are masked too.
            if let Ok(base) = Config::load(&config.path) {
                base.register_secrets(&masker);
            }
        }
        let mut engine = crate::run::host::engine();
        let prelude = step::load_prelude(&mut engine, &o.prelude.clone())?;
        let steps = step::load_steps(&engine, &o.steps, prelude)?;
        tracing::debug!(steps = steps.steps.len(), "steps loaded");
        config.check_own_keys(&steps.declared_config())?;
        let state_location = state_location(o, &config, env)?;
        tracing::debug!(state = %state_location, env = ?env, "state location");
        Ok(Project {
            config: Arc::new(config),
            engine,
            steps,
            masker,
            console,
            state_location,
            hash_cache: Arc::new(HashCache::load(&Path::new(LOCAL_DIR).join("hashcache"))),
            env: env.map(str::to_string),
            deploy,
        })
    }

    /// Fingerprints of every step, in order; warnings printed. Uses and updates the local
    /// hash cache in memory: the command saves it once, when it ends.
    pub(crate) fn fingerprints(&self, secret_salt: Option<&str>) -> Result<Vec<Fingerprint>> {
        let started = std::time::Instant::now();
        let cache = &self.hash_cache;
        let fp = self.fingerprinter(secret_salt);
        let mut out = Vec::with_capacity(self.steps.steps.len());
        for s in &self.steps.steps {
            let f = fp.step(s)?;
            for w in &f.warnings {
                self.console.warn(w);
            }
            out.push(f);
        }
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            files_read = cache.misses.load(std::sync::atomic::Ordering::Relaxed),
            dirs_read = cache.dirs_read(),
            "fingerprints computed"
        );
        Ok(out)
    }

    /// A fingerprinter of this project's steps (with a memo of its own: make a new one when
    /// files may have changed since the last).
    pub fn fingerprinter<'a>(&'a self, secret_salt: Option<&'a str>) -> Fingerprinter<'a> {
        Fingerprinter {
            root: Path::new("."),
            config: &self.config,
            prelude_digest: &self.steps.prelude.digest,
            exclude: vec![PathBuf::from(LOCAL_DIR)],
            cache: Some(&self.hash_cache),
            secret_salt,
            memo: Default::default(),
        }
    }

    /// What decisions compare recorded reads against.
    pub fn read_context<'a>(
        &'a self,
        salt: Option<&'a str>,
    ) -> crate::decide::plan::ReadContext<'a> {
        crate::decide::plan::ReadContext {
            config: &self.config,
            salt: salt.unwrap_or(""),
        }
    }

    pub(crate) fn check_names(&self, flag: &str, names: &[String]) -> Result<()> {
        for n in names {
            if self.steps.index(n).is_none() {
                let names = self.steps.names();
                return Err(usage(format!(
                    "{flag} {n}: no such step{}; valid names: {}",
                    crate::util::suggest::did_you_mean(n, names.iter().copied()),
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The config of environment `env`: `--config` with the environment's overlay merged over
/// it. Without `need_config`, a missing config file gives an empty config.
pub(crate) fn load_config(o: &LoadOptions, need_config: bool, env: Option<&str>) -> Result<Config> {
    let path = &o.config;
    if !(need_config || path.exists()) {
        return Ok(Config::empty(path));
    }
    match env {
        None => Config::load(path),
        Some(e) => {
            let overlay = environment::overlay_path(path, e);
            if !overlay.exists() && path.exists() {
                // A typo of an environment that exists: say which one was meant.
                let known = environment::overlays(path);
                let hint =
                    crate::util::suggest::did_you_mean(e, known.iter().map(|(n, _)| n.as_str()));
                if !hint.is_empty() {
                    return Err(Kind::Config.error(format!(
                        "environment `{e}` has no overlay ({} not found){hint} (environments: {})",
                        overlay.display(),
                        known
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
            Config::load_with_overlay(path, Some(&overlay), e)
        }
    }
}

/// The state location of environment `env` with `config`, refused when another known
/// environment (an overlay next to the config, or the default environment) would keep its
/// state at the same place.
pub(crate) fn state_location(
    o: &LoadOptions,
    config: &Config,
    env: Option<&str>,
) -> Result<String> {
    let flag = o.state.as_deref();
    let location = backend::location_for(flag, config, env)?;
    let path = &o.config;
    if !path.exists() {
        return Ok(location);
    }
    let mine = environment::normalize(&location);
    for (other, their_config, theirs) in other_locations(o, env) {
        if environment::normalize(&theirs) == mine {
            let from = |c: &Config| {
                c.files()
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" + ")
            };
            return Err(Kind::Config.error(format!(
                "environments `{}` ({}) and `{}` ({}) would both keep their state at {location}: nothing ran. Give each its own location (put {} in state.path, or drop the overlay's state.path)",
                environment::display(env),
                from(config),
                environment::display(other.as_deref()),
                from(&their_config),
                environment::PLACEHOLDER,
            )));
        }
    }
    Ok(location)
}

/// The other known environments than `env` (the default environment, and every environment
/// with an overlay next to the config), each with its config and state location. An
/// environment whose config or location does not resolve is left out: it is reported when it
/// is used.
fn other_locations(o: &LoadOptions, env: Option<&str>) -> Vec<(Option<String>, Config, String)> {
    let flag = o.state.as_deref();
    std::iter::once(None)
        .chain(
            environment::overlays(&o.config)
                .into_iter()
                .map(|(name, _)| Some(name)),
        )
        .filter(|other| other.as_deref() != env)
        .filter_map(|other| {
            let config = load_config(o, false, other.as_deref()).ok()?;
            let location = backend::location_for(flag, &config, other.as_deref()).ok()?;
            Some((other, config, location))
        })
        .collect()
}

/// The known environment other than `env` whose state location is `location`, if any
/// (`Some(None)`: the default environment's).
pub(crate) fn owner_of(
    o: &LoadOptions,
    location: &str,
    env: Option<&str>,
) -> Option<Option<String>> {
    let wanted = environment::normalize(location);
    other_locations(o, env)
        .into_iter()
        .find(|(_, _, theirs)| environment::normalize(theirs) == wanted)
        .map(|(other, _, _)| other)
}

/// What `Project` and `Target` share: an environment's state location, with the
/// environment's config. Its store and the protected-environment check are written once, here.
pub(crate) trait StateTarget {
    /// The state location: a local path or az://ACCOUNT/CONTAINER/PATH.
    fn state_location(&self) -> &str;
    /// The environment (`None`: the default environment).
    fn env_name(&self) -> Option<&str>;
    /// The environment's config.
    fn env_config(&self) -> &Config;

    /// The state store at the location, for the environment.
    fn store(&self) -> Result<Box<dyn StateStore>> {
        backend::open_for(self.state_location(), self.env_name())
    }

    /// `what` on a protected environment: its name typed, or `--confirm-env` (exit 1
    /// otherwise).
    fn confirm_protected(&self, o: &LoadOptions, what: &str) -> Result<()> {
        environment::confirm_protected(
            self.env_name(),
            self.env_config().settings.deployment.protected,
            what,
            o.confirm_env.as_deref(),
        )
    }
}

impl StateTarget for Project {
    fn state_location(&self) -> &str {
        &self.state_location
    }
    fn env_name(&self) -> Option<&str> {
        self.env.as_deref()
    }
    fn env_config(&self) -> &Config {
        &self.config
    }
}

/// Where the state of the selected environment is, for commands that load no steps.
pub(crate) struct Target {
    pub env: Option<String>,
    pub config: Config,
    pub location: String,
}

impl StateTarget for Target {
    fn state_location(&self) -> &str {
        &self.location
    }
    fn env_name(&self) -> Option<&str> {
        self.env.as_deref()
    }
    fn env_config(&self) -> &Config {
        &self.config
    }
}

/// The selected environment's config (if its file exists: state commands work without one)
/// and state location.
pub(crate) fn target(o: &LoadOptions) -> Result<Target> {
    let env = environment::selected(o.env.as_deref())?;
    let config = load_config(o, false, env.as_deref())?;
    // A typo in stepwise's own settings (`deployment.protectd`) must not pass here either;
    // the keys the steps declare are theirs (steps that do not load are reported by the
    // commands that run them).
    if !config.foreign.is_empty() {
        if let Ok(declared) = declared_config(o) {
            config.check_own_keys(&declared)?;
        }
    }
    let location = state_location(o, &config, env.as_deref())?;
    Ok(Target {
        env,
        config,
        location,
    })
}

/// Every config key the steps declare (`config:`), read without running anything.
pub(crate) fn declared_config(o: &LoadOptions) -> Result<Vec<String>> {
    Ok(declared_config_by_step(o)?
        .into_iter()
        .map(|(k, _)| k)
        .collect())
}

/// Every config key the steps declare, with the step that declares it.
pub(crate) fn declared_config_by_step(o: &LoadOptions) -> Result<Vec<(String, String)>> {
    let mut engine = crate::run::host::engine();
    let prelude = step::load_prelude(&mut engine, &o.prelude.clone())?;
    let steps = step::load_steps(&engine, &o.steps, prelude)?;
    Ok(steps.declared_config_by_step())
}

/// The store of the current state location (for commands that load no steps).
pub(crate) fn current_store(o: &LoadOptions) -> Result<Box<dyn StateStore>> {
    target(o)?.store()
}

fn init_tracing(verbose: bool) {
    let level = if verbose {
        "stepwise=debug"
    } else {
        "stepwise=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(|| crate::util::console::MaskedStderr)
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .without_time()
        .try_init();
}
