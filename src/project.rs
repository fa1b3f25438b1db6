//! A loaded project: config, engine with prelude, steps, masker, console, state location and
//! hash cache; what every command starts from.

use crate::backend;
use crate::cli::{Cli, OutputFormat};
use crate::config::Config;
use crate::error::usage;
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::hashcache::HashCache;
use crate::paths::LOCAL_DIR;
use crate::report::Console;
use crate::script;
use crate::secrets::Masker;
use crate::state::StateStore;
use crate::step::{self, StepSet};
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
}

impl Project {
    pub fn load(cli: &Cli, need_config: bool) -> Result<Project> {
        let config = if need_config || cli.global.config.exists() {
            Config::load(&cli.global.config)?
        } else {
            Config::empty(&cli.global.config)
        };
        let verbose = cli.global.verbose || config.settings.deployment.verbose;
        init_tracing(verbose);
        let mut console = if cli.global.output == OutputFormat::Json {
            Console::quiet(verbose)
        } else {
            Console::new(verbose)
        };
        if !(cli.deploy.dry_run || config.settings.deployment.dry_run) {
            console.enable_live();
        }
        let console = Arc::new(console);
        let masker = Arc::new(Masker::new());
        config.register_secrets(&masker);
        let mut engine = script::engine();
        let prelude = step::load_prelude(&mut engine, &cli.global.prelude_path())?;
        let steps = step::load_steps(&engine, &cli.global.steps, prelude)?;
        tracing::debug!(steps = steps.steps.len(), "steps loaded");
        let state_location = backend::location(cli.global.state.as_deref(), &config)?;
        tracing::debug!(state = %state_location, "state location");
        Ok(Project {
            config: Arc::new(config),
            engine,
            steps,
            masker,
            console,
            state_location,
            hash_cache: Arc::new(HashCache::load(&Path::new(LOCAL_DIR).join("hashcache"))),
        })
    }

    pub(crate) fn store(&self) -> Result<Box<dyn StateStore>> {
        backend::open(&self.state_location)
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
    pub fn read_context<'a>(&'a self, salt: Option<&'a str>) -> crate::plan::ReadContext<'a> {
        crate::plan::ReadContext {
            config: &self.config,
            salt: salt.unwrap_or(""),
        }
    }

    pub(crate) fn check_names(&self, flag: &str, names: &[String]) -> Result<()> {
        for n in names {
            if self.steps.index(n).is_none() {
                return Err(usage(format!(
                    "{flag} {n}: no such step; valid names: {}",
                    self.steps.names().join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The config if its file exists (state commands work without one).
pub(crate) fn optional_config(cli: &Cli) -> Result<Config> {
    if cli.global.config.exists() {
        Config::load(&cli.global.config)
    } else {
        Ok(Config::empty(&cli.global.config))
    }
}

/// The store of the current state location (for commands that load no steps).
pub(crate) fn current_store(cli: &Cli) -> Result<Box<dyn StateStore>> {
    let config = optional_config(cli)?;
    backend::open(&backend::location(cli.global.state.as_deref(), &config)?)
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
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .without_time()
        .try_init();
}
