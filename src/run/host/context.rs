//! The step context: what a host function knows of the step it runs for (config, state,
//! declarations, reads, the console), bound to the running step through a thread-local; and
//! the helpers every host function shares (`current`, `err`, `def`, `call_site`).

use crate::config::{AdvancedSettings, Config};
use crate::state::reads::{self, Reads};
use crate::state::State;
use crate::sys::process;
use crate::util::console::Console;
use crate::util::secrets::Masker;
use rhai::{Dynamic, EvalAltResult, FuncRegistration, NativeCallContext};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};

pub(super) type HostResult<T> = Result<T, Box<EvalAltResult>>;

/// Everything a running step's host functions need.
pub struct StepContext {
    pub step: String,
    pub config: Arc<Config>,
    pub settings: AdvancedSettings,
    pub masker: Arc<Masker>,
    pub dry_run: bool,
    /// The run's state, for `outputs(step)`.
    pub state: Arc<Mutex<State>>,
    /// What this step saved with `output()`.
    pub outputs: Mutex<Map<String, Value>>,
    /// The step's log file (commands and their output, masked).
    pub log: Mutex<Option<std::fs::File>>,
    /// Its path (named when output too large to return is truncated).
    pub log_path: Option<std::path::PathBuf>,
    pub console: Arc<Console>,
    /// The command running now, for progress display.
    pub current_command: Mutex<Option<String>>,
    /// How many times a command was tried again (exit 1, `advanced.retry_attempts`).
    pub retries: std::sync::atomic::AtomicU32,
    /// Forced run: images are rebuilt even when unchanged.
    pub forced: bool,
    /// Image tag → fingerprint of the last successful build (from the state).
    pub previous_images: Map<String, Value>,
    /// Image tag → fingerprint of images built (or found up to date) in this run.
    pub images: Mutex<Map<String, Value>>,
    /// Image tag → what it is made of (`decide::images::source`), for the plan to tell which
    /// images a deployment would rebuild.
    pub image_sources: Mutex<Map<String, Value>>,
    /// The local hash cache, shared with fingerprinting.
    pub hash_cache: Option<Arc<crate::decide::hashcache::HashCache>>,
    /// What the step declares (config keys, env vars) and the steps it needs, directly or
    /// not: a read outside them is reported (and refused with `strict`).
    pub declared: Declared,
    /// Every read of this run, recorded with the digest of the value read.
    pub reads: Mutex<Reads>,
    /// The state's salt for digests of secret values.
    pub secret_salt: String,
    /// `--strict`: an undeclared read fails the step at the read.
    pub strict: bool,
    /// `--strict` / `deployment.strict_secrets`: a secret on a command line fails the step.
    pub strict_secrets: bool,
    /// Commands already warned about (a secret on the command line): once per step and command.
    pub warned: Mutex<std::collections::HashSet<String>>,
    /// Files made by `secret_file()`, removed when the step ends.
    pub secret_files: Mutex<crate::sys::secret_file::SecretFiles>,
    /// While the step's `verify()` runs: only reads are allowed (see [`is_read_verb`]).
    pub verifying: std::sync::atomic::AtomicBool,
    /// Answers of read-only commands already run by `verify()` functions in this refresh,
    /// keyed by argv: a repeated identical read is run once.
    pub read_cache: Option<Arc<ReadCache>>,
    /// The commands this step ran (masked, as shown on the console), for the run report.
    pub commands: Mutex<Vec<String>>,
    /// The warnings this step gave (masked), for the run report.
    pub warnings: Mutex<Vec<String>>,
    /// In `stepwise rollback`: the run rolled back to (for `target_outputs(step)`).
    pub rollback: Option<Arc<crate::state::runs::Target>>,
    /// While the step's `fn cost()` runs: the price source (`price()`), and the reasons of
    /// prices not found. Set only for a cost estimate.
    pub cost: Option<CostContext>,
}

/// What `fn cost()` sees: prices, and what it could not price.
pub struct CostContext {
    pub prices: Arc<crate::sys::prices::Prices>,
    pub misses: Mutex<Vec<String>>,
}

/// What `fn cost()` may call: reads only (no commands, no outputs, no files).
const COST_ALLOWED: &[&str] = &[
    "read_config",
    "outputs",
    "previous_outputs",
    "price",
    "log",
    "warn",
    "is_dry_run",
    "env",
];

/// See [`StepContext::read_cache`]: one slot per argv; a slot is locked while its command
/// runs, so concurrent checks wait for the first one's answer instead of asking again.
pub type ReadCache =
    Mutex<std::collections::HashMap<Vec<String>, Arc<Mutex<Option<process::Output>>>>>;

/// What a step declares, for telling declared reads from undeclared ones.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// `file:line` of the declaration, for messages.
    pub at: String,
    pub config: Vec<String>,
    pub env: Vec<String>,
    /// Every step it needs, directly or through any chain of `needs`.
    pub ancestors: Vec<String>,
    /// Every step that needs it, directly or through any chain of `needs`: reading their
    /// outputs is a cycle.
    pub descendants: Vec<String>,
}

impl StepContext {
    /// Records an image built (or found up to date) in this run: its fingerprint and what it
    /// is made of.
    pub fn built(&self, tag: &str, fingerprint: String, source: Value) {
        self.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag.to_string(), Value::String(fingerprint));
        self.image_sources
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tag.to_string(), source);
    }

    pub(super) fn is_verifying(&self) -> bool {
        self.verifying.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An error when `verify()` runs: `what` is not a read.
    pub(super) fn refuse_in_verify(&self, what: &str) -> HostResult<()> {
        if self.is_verifying() {
            return Err(err(format!(
                "step `{}`: verify() may only read: {what} is refused (verify() checks what the step made; it changes nothing)",
                self.step
            )));
        }
        Ok(())
    }

    /// Removes the files `secret_file()` made (the executor calls it when the step ends).
    pub fn remove_secret_files(&self) {
        self.secret_files
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove();
    }

    /// Writes a (masked) line to the step's log file.
    pub fn log_file(&self, text: &str) {
        if let Some(f) = self.log.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            let masked = self.masker.mask(text);
            let _ = writeln!(f, "{}", masked.trim_end());
        }
    }

    /// A line the user sees (and the log keeps), masked.
    pub fn say(&self, text: &str) {
        let masked = self.masker.mask(text);
        self.log_file(&masked);
        self.console.step_line(&self.step, &masked);
    }

    pub(super) fn warn(&self, text: &str) {
        let masked = self.masker.mask(text);
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(masked.clone());
        self.log_file(&format!("warning: {masked}"));
        self.console.step_warn(&self.step, &masked);
    }

    /// An undeclared read (`what` like `config app.b`): warned once per step and key per run,
    /// kept for `stepwise check`, an error with `strict`.
    /// The message says `{fix} in its declaration (FILE:LINE){then}`.
    pub(super) fn undeclared(&self, what: &str, at: &str, fix: &str, then: &str) -> HostResult<()> {
        let msg = format!(
            "step `{}` reads {what} at {at} but does not declare it: {fix} in its declaration ({}){then}",
            self.step, self.declared.at
        );
        self.report_undeclared(what, at, msg)
    }

    /// An undeclared read with its whole message: recorded (with where, for `check`), warned
    /// about once, or an error with `--strict`.
    pub(super) fn report_undeclared(&self, what: &str, at: &str, msg: String) -> HostResult<()> {
        if self.cost.is_some() {
            // fn cost() decides nothing about the deployment: its reads need no declaring.
            return Ok(());
        }
        let first = self
            .reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .undeclared
            .insert(what.to_string(), at.to_string())
            .is_none();
        if self.strict {
            return Err(err(format!(
                "{msg} (--strict: undeclared reads are errors)"
            )));
        }
        if first {
            self.warn(&msg);
        }
        Ok(())
    }

    pub(super) fn record_config(&self, key: &str) {
        let mut r = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if !r.config.contains_key(key) {
            let digest = reads::config_digest(&self.config, key, &self.secret_salt);
            r.config.insert(key.to_string(), digest);
        }
    }

    pub(super) fn record_output(&self, step: &str, key: &str, outputs: &Map<String, Value>) {
        let digest = reads::output_read_digest(outputs, key);
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .outputs
            .entry(step.to_string())
            .or_default()
            .insert(key.to_string(), digest);
    }
}

/// `file:line:col` of a host function's call site.
pub(super) fn call_site(ncx: &NativeCallContext) -> String {
    let pos = ncx.call_position();
    format!(
        "{}:{}:{}",
        ncx.call_source().unwrap_or("<script>"),
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    )
}

thread_local! {
    pub(super) static CURRENT: RefCell<Option<Arc<StepContext>>> = const { RefCell::new(None) };
}

/// Runs `f` with `ctx` as the current step of this thread.
pub fn with_context<R>(ctx: Arc<StepContext>, f: impl FnOnce() -> R) -> R {
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            CURRENT.with(|c| *c.borrow_mut() = None);
        }
    }
    CURRENT.with(|c| *c.borrow_mut() = Some(ctx));
    let _reset = Reset;
    f()
}

pub(super) fn current(func: &str) -> HostResult<Arc<StepContext>> {
    let ctx = CURRENT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| err(format!("{func}() can only be called while a step's run() executes, not at the top level of a script or the prelude")))?;
    if ctx.cost.is_some() && !COST_ALLOWED.contains(&func) {
        return Err(err(format!(
            "step `{}`: fn cost() is read-only: {func}() is refused (it may call {})",
            ctx.step,
            COST_ALLOWED.join(", ")
        )));
    }
    Ok(ctx)
}

pub(super) fn err(msg: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), rhai::Position::NONE).into()
}

/// `print`/`debug` from scripts.
pub fn print_line(text: &str) {
    match CURRENT.with(|c| c.borrow().clone()) {
        Some(ctx) => ctx.say(text),
        None => eprintln!("{}", crate::util::secrets::global().mask(text)),
    }
}

/// A host function's registration: parameters (`name: type`, then the return type) and its
/// doc comment (plain lines; each becomes a `///` line).
pub(super) fn def(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    let comment = doc
        .lines()
        .map(|l| format!("/// {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    FuncRegistration::new(name)
        .with_params_info(params)
        .with_comments([comment])
}

pub(super) fn display(v: &Dynamic) -> String {
    if v.is_string() {
        v.clone().into_string().unwrap_or_default()
    } else {
        v.to_string()
    }
}

pub fn json_to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}
