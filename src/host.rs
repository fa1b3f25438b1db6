//! Host functions: what step scripts may do to the world (`az`, `docker_build`, `exec`,
//! `read_config`, `output`, `secret`, ...). Each call finds the step it belongs to through a
//! thread-local context that the executor sets while the step's `run()` executes; outside
//! `run()` every host function is an error.

use crate::config::{AdvancedSettings, Config};
use crate::process::{self, RunError};
use crate::reads::{self, Reads};
use crate::report::Console;
use crate::secrets::Masker;
use crate::state::State;
use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FuncRegistration, Map as RMap, NativeCallContext,
};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type HostResult<T> = Result<T, Box<EvalAltResult>>;

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
    /// Forced run: images are rebuilt even when unchanged.
    pub forced: bool,
    /// Image tag → fingerprint of the last successful build (from the state).
    pub previous_images: Map<String, Value>,
    /// Image tag → fingerprint of images built (or found up to date) in this run.
    pub images: Mutex<Map<String, Value>>,
    /// The local hash cache, shared with fingerprinting.
    pub hash_cache: Option<Arc<crate::hashcache::HashCache>>,
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
    pub secret_files: Mutex<crate::secret_file::SecretFiles>,
    /// While the step's `verify()` runs: only reads are allowed (see [`is_read_verb`]).
    pub verifying: std::sync::atomic::AtomicBool,
    /// Answers of read-only commands already run by `verify()` functions in this refresh,
    /// keyed by argv: a repeated identical read is run once.
    pub read_cache: Option<Arc<ReadCache>>,
    /// The commands this step ran (masked, as shown on the console), for the run report.
    pub commands: Mutex<Vec<String>>,
    /// The warnings this step gave (masked), for the run report.
    pub warnings: Mutex<Vec<String>>,
}

/// See [`StepContext::read_cache`]: one slot per argv; a slot is locked while its command
/// runs, so concurrent checks wait for the first one's answer instead of asking again.
pub type ReadCache =
    Mutex<std::collections::HashMap<Vec<String>, Arc<Mutex<Option<process::Output>>>>>;

/// The verbs of `az` commands that only read: the last command word is one of these, or
/// starts with `list-`, `show-`, `get-` or `check-`.
pub const READ_VERBS: &[&str] = &["show", "list", "exists", "query", "version"];

/// Is `az ARGV` a read (its verb on the allow-list)?
pub fn is_read_verb(argv: &[String]) -> bool {
    let words: Vec<&str> = argv
        .iter()
        .skip(1)
        .take_while(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect();
    match words.last() {
        None => argv.iter().skip(1).any(|a| a == "--version"),
        Some(verb) => {
            READ_VERBS.contains(verb)
                || ["list-", "show-", "get-", "check-"]
                    .iter()
                    .any(|p| verb.starts_with(p))
        }
    }
}

/// What a step declares, for telling declared reads from undeclared ones.
#[derive(Debug, Clone, Default)]
pub struct Declared {
    /// `file:line` of the declaration, for messages.
    pub at: String,
    pub config: Vec<String>,
    pub env: Vec<String>,
    /// Every step it needs, directly or through any chain of `needs`.
    pub ancestors: Vec<String>,
}

impl StepContext {
    fn is_verifying(&self) -> bool {
        self.verifying.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// An error when `verify()` runs: `what` is not a read.
    fn refuse_in_verify(&self, what: &str) -> HostResult<()> {
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

    fn warn(&self, text: &str) {
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
    fn undeclared(&self, what: &str, at: &str, fix: &str) -> HostResult<()> {
        let first = self
            .reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .undeclared
            .insert(what.to_string(), at.to_string())
            .is_none();
        let msg = format!(
            "step `{}` reads {what} at {at} but does not declare it: {fix} in its declaration ({})",
            self.step, self.declared.at
        );
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

    fn record_config(&self, key: &str) {
        let mut r = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if !r.config.contains_key(key) {
            let digest = reads::config_digest(&self.config, key, &self.secret_salt);
            r.config.insert(key.to_string(), digest);
        }
    }

    fn record_output(&self, step: &str, key: &str, outputs: &Map<String, Value>) {
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
fn call_site(ncx: &NativeCallContext) -> String {
    let pos = ncx.call_position();
    format!(
        "{}:{}:{}",
        ncx.call_source().unwrap_or("<script>"),
        pos.line().unwrap_or(0),
        pos.position().unwrap_or(0)
    )
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<StepContext>>> = const { RefCell::new(None) };
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

fn current(func: &str) -> HostResult<Arc<StepContext>> {
    CURRENT
        .with(|c| c.borrow().clone())
        .ok_or_else(|| err(format!("{func}() can only be called while a step's run() executes, not at the top level of a script or the prelude")))
}

fn err(msg: impl Into<String>) -> Box<EvalAltResult> {
    EvalAltResult::ErrorRuntime(Dynamic::from(msg.into()), rhai::Position::NONE).into()
}

/// `print`/`debug` from scripts.
pub fn print_line(text: &str) {
    match CURRENT.with(|c| c.borrow().clone()) {
        Some(ctx) => ctx.say(text),
        None => eprintln!("{}", crate::secrets::global().mask(text)),
    }
}

/// Registers every host function on `engine`, each with its parameter names and types and a
/// doc comment (what `stepwise definitions` writes for editors).
pub fn register(engine: &mut Engine) {
    def(
        "az",
        &["args: array", "?"],
        "Runs the Azure CLI with an argv array (never a shell) and returns its parsed JSON\n\
         output (map, array, string, number or bool), the trimmed text when it is not JSON, or\n\
         \"\" when it printed nothing. Adds `--output json` unless the args choose an output.\n\
         A non-zero exit fails the step with az's stderr; exit code 1 is retried\n\
         `advanced.retry_attempts` times with a doubling pause from `advanced.retry_delay`.\n\
         Dry run: prints the command and returns #{}.\n\
         Example: `let rg = az([\"group\", \"show\", \"--name\", name]);`",
    )
    .register_into_engine(engine, |args: Array| az(args, RMap::new(), false));
    def(
        "az",
        &["args: array", "options: map", "?"],
        "`az(args)` with options: #{ stdin: value } gives the program `value` on its standard\n\
         input (never on its command line, never logged): the way to hand az a secret.",
    )
    .register_into_engine(engine, |args: Array, opts: RMap| az(args, opts, false));
    def(
        "az_try",
        &["args: array", "map"],
        "Like `az` but never fails the step and never retries: returns\n\
         #{ ok, code, stdout, stderr, json, truncated } (`json` is () when stdout is not JSON). Use it for\n\
         existence checks (`show` exits 3 when a resource is missing).",
    )
    .register_into_engine(engine, |args: Array| az(args, RMap::new(), true));
    def(
        "az_try",
        &["args: array", "options: map", "map"],
        "`az_try(args)` with options (#{ stdin: value }, as for `az`).",
    )
    .register_into_engine(engine, |args: Array, opts: RMap| az(args, opts, true));
    def(
        "exec",
        &["args: array", "string"],
        "Runs a program with an argv array (never a shell) and returns its trimmed stdout; a\n\
         non-zero exit fails the step. Killed after `advanced.operation_timeout` seconds.\n\
         Dry run: prints the command and returns \"\".",
    )
    .register_into_engine(engine, |args: Array| exec(args, RMap::new(), false));
    def(
        "exec",
        &["args: array", "options: map", "string"],
        "`exec(args)` with options: #{ stdin: value } gives the program `value` on its standard\n\
         input (never on its command line, never logged).",
    )
    .register_into_engine(engine, |args: Array, opts: RMap| exec(args, opts, false));
    def(
        "exec_try",
        &["args: array", "map"],
        "Like `exec` but never fails the step: returns #{ ok, code, stdout, stderr, json }.",
    )
    .register_into_engine(engine, |args: Array| exec(args, RMap::new(), true));
    def(
        "exec_try",
        &["args: array", "options: map", "map"],
        "`exec_try(args)` with options (#{ stdin: value }, as for `exec`).",
    )
    .register_into_engine(engine, |args: Array, opts: RMap| exec(args, opts, true));
    def(
        "secret_file",
        &["value: ?", "string"],
        "The path of a file holding `value` (mode 0600, in a private 0700 directory of the\n\
         step, removed when the step ends, also on failure and Ctrl+C): the way to hand a\n\
         program a secret it reads from a file (`--file`, `@path`). The value becomes secret.",
    )
    .register_into_engine(engine, secret_file);
    def(
        "http_get",
        &["url: string", "map"],
        "An HTTP GET with `curl -fsS` (argv, 10 s limit): #{ ok, code, body, error }. Only\n\
         reads, so `verify()` may use it (e.g. a health endpoint).",
    )
    .register_into_engine(engine, http_get);
    def(
        "docker_build",
        &["spec: map", "string"],
        "Builds an image: #{ dockerfile, context, tag, platform, build_args, push } (platform,\n\
         build_args and push are optional), then pushes it when `push` is true. Skipped when the\n\
         image's inputs (Dockerfile, the context files it copies, args, tag) are unchanged since\n\
         its last successful build. Returns the tag.",
    )
    .register_into_engine(engine, docker_build);
    def(
        "docker_build",
        &["specs: array", "array"],
        "Builds several images concurrently (`docker.parallel_builds` at a time, default 2);\n\
         returns their tags in order. The first failure fails the call after the running\n\
         builds end.",
    )
    .register_into_engine(engine, docker_build_many);
    def(
        "read_config",
        &["key: string", "?"],
        "The config value at a dotted key (`postgresql.sku`, `services.api.port`): string,\n\
         number, bool, map or array. A missing key fails the step, naming the key. Declare the\n\
         key in the step's `config` list: a change to it then re-runs the step.",
    )
    .register_into_engine(engine, |ncx: NativeCallContext, key: &str| {
        read_config(&ncx, key, None)
    });
    def(
        "read_config",
        &["key: string", "fallback: ?", "?"],
        "The config value at a dotted key, or `fallback` when the key is missing or null.",
    )
    .register_into_engine(
        engine,
        |ncx: NativeCallContext, key: &str, default: Dynamic| read_config(&ncx, key, Some(default)),
    );
    def(
        "output",
        &["key: string", "value: ?", "()"],
        "Saves a value in this step's state (`outputs`) for later steps and runs. A value that\n\
         contains a secret is refused. Discarded in a dry run.",
    )
    .register_into_engine(engine, output);
    def(
        "outputs",
        &["step: string", "map"],
        "Another step's saved outputs (an empty map when it has none). Reading them records\n\
         which keys this step used: when they change, this step runs again. Declare the step in\n\
         `needs`.",
    )
    .register_into_engine(engine, outputs);
    def(
        "previous_outputs",
        &["map"],
        "This step's own outputs from its last completed run (empty the first time), to leave\n\
         alone what it deployed before and that has not changed. In `verify()` right after\n\
         `run()`: the outputs of that run.",
    )
    .register_into_engine(engine, previous_outputs);
    def(
        "is_forced",
        &["bool"],
        "True when the step runs because of --force-all or --force-step.",
    )
    .register_into_engine(engine, || -> HostResult<bool> {
        Ok(current("is_forced")?.forced)
    });
    register_outputs_view(engine);
    def(
        "secret",
        &["value: ?", "?"],
        "Marks a value as secret and returns it: it is masked (***) in every log line, error\n\
         and dry-run line (also base64 and URL-encoded) and never written to the state.",
    )
    .register_into_engine(engine, |value: Dynamic| secret(value, None));
    def(
        "secret",
        &["value: ?", "name: string", "?"],
        "`secret(value)`, naming the secret for messages (`secret(key, \"storage key\")`): the\n\
         command-line guard names it so, never its value.",
    )
    .register_into_engine(engine, |value: Dynamic, name: &str| {
        secret(value, Some(name))
    });
    def(
        "env",
        &["name: string", "string"],
        "An environment variable; a missing one fails the step. Declare it in the step's `env`\n\
         list.",
    )
    .register_into_engine(engine, |ncx: NativeCallContext, name: &str| {
        env(&ncx, name, None, false)
    });
    def(
        "env",
        &["name: string", "fallback: string", "string"],
        "An environment variable, or `fallback` when it is not set.",
    )
    .register_into_engine(
        engine,
        |ncx: NativeCallContext, name: &str, default: &str| env(&ncx, name, Some(default), false),
    );
    def(
        "env_secret",
        &["name: string", "string"],
        "An environment variable that is secret (masked everywhere, never stored).",
    )
    .register_into_engine(engine, |ncx: NativeCallContext, name: &str| {
        env(&ncx, name, None, true)
    });
    def(
        "log",
        &["message: ?", "()"],
        "A line in the step's output and log (masked). `print` does the same.",
    )
    .register_into_engine(engine, |msg: Dynamic| -> HostResult<()> {
        current("log")?.say(&display(&msg));
        Ok(())
    });
    def(
        "warn",
        &["message: ?", "()"],
        "A warning line in the step's output and log (masked).",
    )
    .register_into_engine(engine, |msg: Dynamic| -> HostResult<()> {
        current("warn")?.warn(&display(&msg));
        Ok(())
    });
    def(
        "is_dry_run",
        &["bool"],
        "True under --dry-run: commands are printed, not run.",
    )
    .register_into_engine(engine, || -> HostResult<bool> {
        Ok(current("is_dry_run")?.dry_run)
    });
    def(
        "generate_password",
        &["length: int", "string"],
        "A random password of letters and digits (at least one of each class), already\n\
         marked secret.",
    )
    .register_into_engine(engine, generate_password);
    def(
        "to_json",
        &["value: ?", "string"],
        "The value as compact JSON text (maps, arrays, strings, numbers, bools, ()).",
    )
    .register_into_engine(
        engine,
        |_ctx: NativeCallContext, v: Dynamic| -> HostResult<String> {
            let value: Value = match v.clone().try_cast::<OutputsView>() {
                Some(view) => Value::Object(view.whole()),
                None => rhai::serde::from_dynamic(&v)?,
            };
            Ok(serde_json::to_string(&value).unwrap_or_default())
        },
    );
}

/// A host function's registration: parameters (`name: type`, then the return type) and its
/// doc comment (plain lines; each becomes a `///` line).
fn def(name: &str, params: &[&str], doc: &str) -> FuncRegistration {
    let comment = doc
        .lines()
        .map(|l| format!("/// {}", l.trim()))
        .collect::<Vec<_>>()
        .join("\n");
    FuncRegistration::new(name)
        .with_params_info(params)
        .with_comments([comment])
}

fn display(v: &Dynamic) -> String {
    if v.is_string() {
        v.clone().into_string().unwrap_or_default()
    } else {
        v.to_string()
    }
}

/// An argv array from a script: strings, numbers and booleans; anything else is an error.
fn to_argv(func: &str, args: &Array, dry_run: bool) -> HostResult<Vec<String>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            if a.is_unit() && dry_run {
                // In a dry run, values that earlier steps would produce are not known.
                Ok("<unknown>".to_string())
            } else if a.is_string() {
                Ok(a.clone().into_string().unwrap_or_default())
            } else if a.is_int() || a.is_float() || a.is_bool() || a.is_char() {
                Ok(a.to_string())
            } else {
                Err(err(format!(
                    "{func}(): argument {} is {} ({}); arguments must be strings",
                    i + 1,
                    a.type_name(),
                    a
                )))
            }
        })
        .collect()
}

/// Quotes an argv for display (never executed through a shell).
pub fn show_command(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@,+%^".contains(&b))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn json_to_dynamic(v: &Value) -> Dynamic {
    rhai::serde::to_dynamic(v).unwrap_or(Dynamic::UNIT)
}

fn parse_stdout(stdout: &str) -> (Dynamic, bool) {
    let t = stdout.trim();
    if t.is_empty() {
        return (Dynamic::UNIT, false);
    }
    match serde_json::from_str::<Value>(t) {
        Ok(v) => (json_to_dynamic(&v), true),
        Err(_) => (Dynamic::from(t.to_string()), false),
    }
}

fn result_map(code: i64, stdout: &str, stderr: &str) -> Dynamic {
    let (json, is_json) = parse_stdout(stdout);
    let mut m = RMap::new();
    m.insert("ok".into(), Dynamic::from(code == 0));
    m.insert("code".into(), Dynamic::from(code));
    m.insert("stdout".into(), Dynamic::from(stdout.trim().to_string()));
    m.insert("stderr".into(), Dynamic::from(stderr.trim().to_string()));
    m.insert("json".into(), if is_json { json } else { Dynamic::UNIT });
    m.insert("truncated".into(), Dynamic::from(false));
    Dynamic::from(m)
}

/// `az_try`/`exec_try`'s map for a finished command. Output too large for a script string
/// comes truncated with a marker (`truncated: true`, `json: ()`); the log has all of it.
fn result_of(ctx: &StepContext, out: &process::Output) -> Dynamic {
    let fits =
        |c: &crate::capture::Captured| c.whole.as_ref().is_some_and(|b| b.len() <= RETURN_LIMIT);
    if fits(&out.stdout) && fits(&out.stderr) {
        return result_map(
            i64::from(out.code),
            &out.stdout.whole_text().unwrap_or_default(),
            &out.stderr.whole_text().unwrap_or_default(),
        );
    }
    let stdout = returned_text(ctx, &out.stdout);
    let stderr = returned_text(ctx, &out.stderr);
    let mut m = RMap::new();
    m.insert("ok".into(), Dynamic::from(out.code == 0));
    m.insert("code".into(), Dynamic::from(i64::from(out.code)));
    // JSON that stayed within its limit is still parsed, even when too long to return as text.
    let json = out
        .stdout
        .whole_text()
        .map(|t| parse_stdout(&t))
        .filter(|(_, is_json)| *is_json)
        .map(|(j, _)| j)
        .unwrap_or(Dynamic::UNIT);
    m.insert("stdout".into(), Dynamic::from(stdout));
    m.insert("stderr".into(), Dynamic::from(stderr));
    m.insert("json".into(), json);
    m.insert("truncated".into(), Dynamic::from(true));
    Dynamic::from(m)
}

fn dry_run_try() -> Dynamic {
    result_map(-1, "", "dry run")
}

/// How much of a command's output a script gets back as a string: more is truncated with a
/// marker naming the step's log, which has all of it.
const RETURN_LIMIT: usize = crate::script::MAX_STRING_SIZE - 1024;

/// What a command's output is for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// `az`: stdout is JSON, read whole up to `advanced.max_json_output_mb`.
    Json,
    /// Anything else: text.
    Text,
}

/// Streams the part of an output that is not kept in memory to the step's log, masked.
struct LogSpill(crate::secrets::MaskingWriter<std::fs::File>);

impl crate::capture::Spill for LogSpill {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

/// Options of `az`, `az_try`, `exec` and `exec_try` (a map as the second argument).
#[derive(Debug, Default)]
struct CommandOptions {
    /// What the program reads on standard input (never on its command line, never logged).
    stdin: Option<String>,
}

impl CommandOptions {
    fn parse(func: &str, opts: &RMap) -> HostResult<CommandOptions> {
        let mut out = CommandOptions::default();
        for (k, v) in opts {
            match k.as_str() {
                "stdin" if v.is_string() => {
                    out.stdin = Some(v.clone().into_string().unwrap_or_default())
                }
                "stdin" => {
                    return Err(err(format!(
                        "{func}(): `stdin` must be a string, found {}",
                        v.type_name()
                    )))
                }
                other => {
                    return Err(err(format!(
                        "{func}(): unknown option `{other}` (options: stdin)"
                    )))
                }
            }
        }
        Ok(out)
    }
}

/// Secrets on a command line that the Azure CLI offers no other way to pass: (the command's
/// words, the flag the secret must directly follow). Allowed by the guard even with --strict;
/// listed in docs/reliability.md.
pub const ARGV_SECRET_EXCEPTIONS: &[(&[&str], &str)] = &[
    (
        &["az", "postgres", "flexible-server", "create"],
        "--admin-password",
    ),
    (
        &["az", "postgres", "flexible-server", "update"],
        "--admin-password",
    ),
];

/// The program and its command words (the items before the first option): `az keyvault
/// secret set`, `docker build`.
fn command_words(argv: &[String]) -> String {
    let mut words: Vec<&str> = argv.first().map(String::as_str).into_iter().collect();
    words.extend(
        argv.iter()
            .skip(1)
            .take_while(|a| !a.starts_with('-') && a.len() < 40 && !a.contains(['/', '=', ' ']))
            .take(4)
            .map(String::as_str),
    );
    words.join(" ")
}

/// Is argument `i` of `argv` a documented exception (the secret directly follows its flag)?
fn is_argv_exception(argv: &[String], i: usize) -> bool {
    ARGV_SECRET_EXCEPTIONS.iter().any(|(words, flag)| {
        argv.len() > words.len()
            && argv.iter().zip(words.iter()).all(|(a, w)| a == w)
            && i > 0
            && argv[i - 1] == *flag
    })
}

/// The guard: a command whose argv carries a secret (any encoding) is warned about once per
/// step and command, naming the step, the program and the secret (by name); with
/// `--strict` / `deployment.strict_secrets` it is refused before it starts.
fn guard_argv(ctx: &StepContext, argv: &[String]) -> HostResult<()> {
    let mut names: Vec<String> = Vec::new();
    for (i, a) in argv.iter().enumerate() {
        if is_argv_exception(argv, i) {
            continue;
        }
        for n in ctx.masker.secrets_in(a) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    if names.is_empty() {
        return Ok(());
    }
    let command = command_words(argv);
    let what = format!(
        "`{command}` would carry {} on its command line, where any process on this machine can read it (ps, /proc/PID/cmdline)",
        names.join(", ")
    );
    let how = "pass it on standard input (`#{ stdin: value }` as the command's options) or in a file (`secret_file(value)`); see docs/steps.md";
    if ctx.strict_secrets {
        return Err(err(ctx.masker.mask(&format!(
            "step `{}`: {what}: refused (--strict / deployment.strict_secrets); {how}",
            ctx.step
        ))));
    }
    let first = ctx
        .warned
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(command.clone());
    if first {
        ctx.warn(&format!(
            "step `{}`: {what}; {how} (--strict refuses such commands)",
            ctx.step
        ));
    }
    Ok(())
}

/// Runs a command for a step: guards its argv, logs it, honours dry run, timeout, retries,
/// interrupts. `attempts`: how many attempts in all on exit code 1. `stdin`: the standard
/// input (a secret it holds is never shown).
fn run_command(
    ctx: &StepContext,
    argv: &[String],
    attempts: u32,
    stdin: Option<&str>,
    expect: Expect,
) -> HostResult<Option<process::Output>> {
    guard_argv(ctx, argv)?;
    let mut shown = ctx.masker.mask(&show_command(argv));
    if stdin.is_some() {
        shown.push_str(" < (standard input)");
    }
    if ctx.dry_run {
        ctx.console
            .step_line(&ctx.step, &format!("would run: {shown}"));
        return Ok(None);
    }
    *ctx.current_command
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = Some(shown.clone());
    ctx.log_file(&format!("$ {shown}"));
    ctx.console.step_command(&ctx.step, &shown);
    ctx.commands
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(shown.clone());
    let attempts = attempts.max(1);
    let mut delay = ctx.settings.retry_delay();
    let mut attempt = 1;
    let json_limit = ctx.settings.max_json_output();
    let result = loop {
        let spill = || -> Option<Box<dyn crate::capture::Spill>> {
            let file = ctx
                .log
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()?
                .try_clone()
                .ok()?;
            Some(Box::new(LogSpill(crate::secrets::MaskingWriter::new(
                ctx.masker.clone(),
                file,
            ))))
        };
        let opts = process::RunOptions {
            timeout: ctx.settings.operation_timeout(),
            stdout_keep: if expect == Expect::Json {
                json_limit
            } else {
                1 << 20
            },
            stderr_keep: 1 << 20,
            // JSON too large to read is not logged either: the secret fields in it could not
            // be found and masked.
            stdout_spill: if expect == Expect::Json {
                None
            } else {
                spill()
            },
            stderr_spill: spill(),
            stdin: stdin.map(|s| s.as_bytes().to_vec()),
        };
        match process::run(argv, opts) {
            Ok(out) => {
                if let Some(text) = out.stdout.whole_text() {
                    register_output_secrets(&ctx.masker, argv, &text);
                    if !text.trim().is_empty() {
                        ctx.log_file(&text);
                    }
                } else if expect == Expect::Json {
                    ctx.log_file(&format!(
                        "[{} bytes of output, more than the {} MiB read as JSON: not logged]",
                        out.stdout.total,
                        json_limit >> 20
                    ));
                }
                if let Some(text) = out.stderr.whole_text() {
                    if !text.trim().is_empty() {
                        ctx.log_file(&text);
                    }
                }
                if let Some(n) = out.leftover {
                    ctx.warn(&format!(
                        "{shown} exited, but {n} process(es) it started were still running {:.1}s later: stopped them (their output after that is dropped)",
                        process::output_grace().as_secs_f64()
                    ));
                }
                if out.code == 1 && attempt < attempts {
                    ctx.warn(&format!(
                        "{shown} failed (exit 1), retrying in {:.1}s (attempt {}/{attempts})",
                        delay.as_secs_f64(),
                        attempt + 1
                    ));
                    if !sleep_interruptible(delay) {
                        break Err(err(format!(
                            "{shown}: {}",
                            process::stop_reason().unwrap_or_default()
                        )));
                    }
                    delay *= 2;
                    attempt += 1;
                    continue;
                }
                break Ok(Some(out));
            }
            Err(e @ (RunError::Interrupted(_) | RunError::LockLost)) => {
                ctx.log_file(&e.to_string());
                break Err(err(format!("{shown}: {e}")));
            }
            Err(e) => {
                let msg = ctx.masker.mask(&format!("{shown}: {e}"));
                ctx.log_file(&msg);
                break Err(err(msg));
            }
        }
    };
    *ctx.current_command
        .lock()
        .unwrap_or_else(|e| e.into_inner()) = None;
    result
}

/// Where the whole output of a step's commands is, for truncation markers.
fn log_name(ctx: &StepContext) -> String {
    ctx.log_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the step's log".into())
}

/// A command's stdout as a script gets it: trimmed, truncated with a marker when too large.
fn returned_text(ctx: &StepContext, c: &crate::capture::Captured) -> String {
    c.text(RETURN_LIMIT, &log_name(ctx)).trim().to_string()
}

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
fn register_output_secrets(masker: &Masker, argv: &[String], stdout: &str) {
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
    if t.len() < crate::secrets::MIN_PATTERN_LEN {
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

fn sleep_interruptible(d: Duration) -> bool {
    let end = std::time::Instant::now() + d;
    while std::time::Instant::now() < end {
        if process::stopping() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20).min(end - std::time::Instant::now()));
    }
    !process::stopping()
}

fn failure(ctx: &StepContext, argv: &[String], out: &process::Output) -> Box<EvalAltResult> {
    let shown = show_command(argv);
    let stderr = out.stderr.last(8192);
    let stdout = out.stdout.last(8192);
    let detail = if stderr.trim().is_empty() {
        stdout.trim()
    } else {
        stderr.trim()
    };
    err(ctx
        .masker
        .mask(&format!("{shown} failed (exit {}): {detail}", out.code)))
}

fn az(args: Array, opts: RMap, try_mode: bool) -> HostResult<Dynamic> {
    let func = if try_mode { "az_try" } else { "az" };
    let ctx = current(func)?;
    let opts = CommandOptions::parse(func, &opts)?;
    let mut argv = vec!["az".to_string()];
    argv.extend(to_argv(func, &args, ctx.dry_run)?);
    let chooses_output = argv
        .iter()
        .any(|a| a == "--output" || a == "-o" || a.starts_with("--output="));
    if !chooses_output {
        argv.push("--output".into());
        argv.push("json".into());
    }
    if ctx.is_verifying() && !is_read_verb(&argv) {
        return Err(err(format!(
            "step `{}`: verify() may only read: `{}` is refused (allowed verbs: {}, list-*, show-*, get-*, check-*)",
            ctx.step,
            ctx.masker.mask(&show_command(&argv)),
            READ_VERBS.join(", ")
        )));
    }
    let attempts = if try_mode {
        1
    } else {
        ctx.settings.retry_attempts
    };
    let Some(out) = run_cached(&ctx, &argv, attempts, opts.stdin.as_deref())? else {
        return Ok(if try_mode {
            dry_run_try()
        } else {
            Dynamic::from(RMap::new())
        });
    };
    if try_mode {
        return Ok(result_of(&ctx, &out));
    }
    if out.code != 0 {
        return Err(failure(&ctx, &argv, &out));
    }
    let Some(stdout) = out.stdout.whole_text() else {
        return Err(err(ctx.masker.mask(&format!(
            "{} printed {:.1} MiB of output, more than the {} MiB stepwise reads as JSON (advanced.max_json_output_mb): narrow it with --query, or raise the limit",
            show_command(&argv),
            out.stdout.total as f64 / (1024.0 * 1024.0),
            ctx.settings.max_json_output() >> 20
        ))));
    };
    // JSON was asked for and what came looks like JSON but is not: say so, quoting it.
    let text = stdout.trim();
    if !chooses_output
        && (text.starts_with('{') || text.starts_with('['))
        && serde_json::from_str::<Value>(text).is_err()
    {
        let quoted: String = text.chars().take(300).collect();
        return Err(err(ctx.masker.mask(&format!(
            "{} printed output that is not valid JSON{}: {quoted}",
            show_command(&argv),
            if text.chars().count() > 300 {
                " (first 300 characters)"
            } else {
                ""
            }
        ))));
    }
    // Empty output (`--output none`, `provider register`) is the empty string.
    Ok(if text.is_empty() {
        Dynamic::from(String::new())
    } else if text.len() > RETURN_LIMIT && serde_json::from_str::<Value>(text).is_err() {
        // Text too long for a script string (`--output tsv` of a long list).
        Dynamic::from(returned_text(&ctx, &out.stdout))
    } else {
        parse_stdout(&stdout).0
    })
}

/// `run_command`, answered from the refresh's read cache while `verify()` runs.
fn run_cached(
    ctx: &StepContext,
    argv: &[String],
    attempts: u32,
    stdin: Option<&str>,
) -> HostResult<Option<process::Output>> {
    let cache = match (&ctx.read_cache, ctx.is_verifying(), stdin) {
        (Some(c), true, None) => c,
        _ => return run_command(ctx, argv, attempts, stdin, Expect::Json),
    };
    let slot = cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(argv.to_vec())
        .or_default()
        .clone();
    let mut answer = slot.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(out) = answer.as_ref() {
        ctx.log_file(&format!(
            "$ {} (answered from this refresh's read cache)",
            ctx.masker.mask(&show_command(argv))
        ));
        return Ok(Some(out.clone()));
    }
    let out = run_command(ctx, argv, attempts, None, Expect::Json)?;
    if let Some(o) = &out {
        // Answers (found, or not found: exit 3); failures are not kept.
        if o.code == 0 || o.code == 3 {
            *answer = Some(o.clone());
        }
    }
    Ok(out)
}

fn exec(args: Array, opts: RMap, try_mode: bool) -> HostResult<Dynamic> {
    let func = if try_mode { "exec_try" } else { "exec" };
    let ctx = current(func)?;
    ctx.refuse_in_verify(&format!("{func}()"))?;
    let opts = CommandOptions::parse(func, &opts)?;
    let argv = to_argv(func, &args, ctx.dry_run)?;
    if argv.is_empty() {
        return Err(err(format!("{func}(): the argv array is empty")));
    }
    let Some(out) = run_command(&ctx, &argv, 1, opts.stdin.as_deref(), Expect::Text)? else {
        return Ok(if try_mode {
            dry_run_try()
        } else {
            Dynamic::from(String::new())
        });
    };
    if try_mode {
        return Ok(result_of(&ctx, &out));
    }
    if out.code != 0 {
        return Err(failure(&ctx, &argv, &out));
    }
    Ok(Dynamic::from(returned_text(&ctx, &out.stdout)))
}

/// `http_get(url)`: an HTTP GET with `curl -fsS` (argv, a 10 s limit): `#{ ok, code, body,
/// error }`. Only reads, so `verify()` may use it (e.g. a health endpoint).
fn http_get(url: &str) -> HostResult<Dynamic> {
    let ctx = current("http_get")?;
    let argv: Vec<String> = ["curl", "-fsS", "--max-time", "10", url]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let Some(out) = run_command(&ctx, &argv, 1, None, Expect::Text)? else {
        return Ok(dry_run_try());
    };
    let mut m = RMap::new();
    m.insert("ok".into(), Dynamic::from(out.code == 0));
    m.insert("code".into(), Dynamic::from(i64::from(out.code)));
    m.insert(
        "body".into(),
        Dynamic::from(returned_text(&ctx, &out.stdout)),
    );
    let stderr = out.stderr.last(8192);
    let error = if out.code == 0 {
        String::new()
    } else if stderr.trim().is_empty() {
        format!("curl exited {}", out.code)
    } else {
        stderr.trim().to_string()
    };
    m.insert("error".into(), Dynamic::from(error));
    Ok(Dynamic::from(m))
}

fn map_str(m: &RMap, key: &str, required: bool) -> HostResult<Option<String>> {
    match m.get(key) {
        None => {
            if required {
                Err(err(format!("docker_build(): missing `{key}`")))
            } else {
                Ok(None)
            }
        }
        Some(v) if v.is_unit() && !required => Ok(None),
        Some(v) if v.is_string() => Ok(Some(v.clone().into_string().unwrap_or_default())),
        Some(v) => Err(err(format!(
            "docker_build(): `{key}` must be a string, found {}",
            v.type_name()
        ))),
    }
}

/// One image build, as a script describes it.
#[derive(Debug, Clone)]
struct BuildSpec {
    dockerfile: String,
    context: String,
    tag: String,
    platform: Option<String>,
    build_args: Vec<(String, String)>,
    push: bool,
}

impl BuildSpec {
    fn parse(spec: &RMap) -> HostResult<BuildSpec> {
        const KEYS: &[&str] = &[
            "dockerfile",
            "context",
            "tag",
            "platform",
            "build_args",
            "push",
        ];
        if let Some(k) = spec.keys().find(|k| !KEYS.contains(&k.as_str())) {
            return Err(err(format!(
                "docker_build(): unknown key `{k}` (keys: {})",
                KEYS.join(", ")
            )));
        }
        let push = match spec.get("push") {
            None => false,
            Some(v) => v
                .as_bool()
                .map_err(|t| err(format!("docker_build(): `push` must be a bool, found {t}")))?,
        };
        let mut build_args = Vec::new();
        if let Some(args) = spec.get("build_args") {
            if !args.is_unit() {
                let m = args.clone().try_cast::<RMap>().ok_or_else(|| {
                    err("docker_build(): `build_args` must be a map of names to values")
                })?;
                build_args = m
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), display(&v)))
                    .collect();
                build_args.sort();
            }
        }
        Ok(BuildSpec {
            dockerfile: map_str(spec, "dockerfile", true)?.unwrap_or_default(),
            context: map_str(spec, "context", true)?.unwrap_or_default(),
            tag: map_str(spec, "tag", true)?.unwrap_or_default(),
            platform: map_str(spec, "platform", false)?,
            build_args,
            push,
        })
    }

    fn argv(&self) -> Vec<String> {
        let mut argv: Vec<String> = vec![
            "docker".into(),
            "build".into(),
            "-f".into(),
            self.dockerfile.clone(),
            "-t".into(),
            self.tag.clone(),
        ];
        if let Some(p) = &self.platform {
            argv.extend(["--platform".to_string(), p.clone()]);
        }
        for (k, v) in &self.build_args {
            argv.extend(["--build-arg".to_string(), format!("{k}={v}")]);
        }
        argv.push(self.context.clone());
        argv
    }

    /// What the image is made of: the Dockerfile, the build context exactly as Docker sends it
    /// (its `.dockerignore` or `<Dockerfile>.dockerignore`, with Docker's rules), build
    /// arguments, tag, platform and whether it is pushed.
    fn fingerprint(&self, ctx: &StepContext) -> Result<String, String> {
        use sha2::{Digest, Sha256};
        let fp = crate::fingerprint::Fingerprinter {
            root: std::path::Path::new("."),
            config: &ctx.config,
            prelude_digest: "",
            exclude: vec![std::path::PathBuf::from(crate::paths::LOCAL_DIR)],
            cache: ctx.hash_cache.as_deref(),
            secret_salt: None,
            memo: Default::default(),
        };
        let dockerfile = fp
            .file_digest(std::path::Path::new(&self.dockerfile))
            .map_err(|e| {
                format!(
                    "docker_build(): cannot read Dockerfile {}: {e}",
                    self.dockerfile
                )
            })?;
        let text = std::fs::read_to_string(&self.dockerfile).unwrap_or_default();
        let sources = crate::dockerfile::context_sources(&text);
        let context = fp
            .context_digest(
                std::path::Path::new(&self.context),
                Some(std::path::Path::new(&self.dockerfile)),
                sources.as_deref(),
            )
            .map_err(|e| format!("docker_build(): build context {}: {e}", self.context))?;
        let mut h = Sha256::new();
        for part in [
            dockerfile.as_str(),
            context.as_str(),
            self.tag.as_str(),
            self.platform.as_deref().unwrap_or(""),
            if self.push { "push" } else { "no-push" },
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for (k, v) in &self.build_args {
            h.update(format!("{k}={v}").as_bytes());
            h.update([0]);
        }
        Ok(hex::encode(h.finalize()))
    }
}

/// Builds (and pushes) one image unless the last successful build had the same fingerprint.
fn build_one(ctx: &StepContext, spec: &BuildSpec) -> HostResult<String> {
    let fingerprint = spec.fingerprint(ctx).map_err(err)?;
    let previous = ctx
        .previous_images
        .get(&spec.tag)
        .and_then(|v| v.as_str())
        .map(str::to_string);
    if !ctx.forced && previous.as_deref() == Some(fingerprint.as_str()) {
        ctx.say(&format!(
            "image {} is up to date (Dockerfile, context, build args, tag and platform unchanged): not rebuilt",
            spec.tag
        ));
        ctx.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.tag.clone(), Value::String(fingerprint));
        return Ok(spec.tag.clone());
    }
    let argv = spec.argv();
    if let Some(out) = run_command(ctx, &argv, 1, None, Expect::Text)? {
        if out.code != 0 {
            return Err(failure(ctx, &argv, &out));
        }
    }
    if spec.push {
        let push_argv = vec!["docker".to_string(), "push".to_string(), spec.tag.clone()];
        if let Some(out) = run_command(
            ctx,
            &push_argv,
            ctx.settings.retry_attempts,
            None,
            Expect::Text,
        )? {
            if out.code != 0 {
                return Err(failure(ctx, &push_argv, &out));
            }
        }
    }
    if !ctx.dry_run {
        ctx.images
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(spec.tag.clone(), Value::String(fingerprint));
    }
    Ok(spec.tag.clone())
}

/// How many image builds `docker_build([...])` runs at once (`docker.parallel_builds`).
fn parallel_builds(ctx: &StepContext) -> usize {
    ctx.config
        .get("docker.parallel_builds")
        .and_then(|v| v.as_u64())
        .map(|n| n.clamp(1, 16) as usize)
        .unwrap_or(2)
}

fn docker_build(spec: RMap) -> HostResult<String> {
    let ctx = current("docker_build")?;
    ctx.refuse_in_verify("docker_build()")?;
    build_one(&ctx, &BuildSpec::parse(&spec)?)
}

/// `docker_build([spec, spec, ...])`: builds concurrently (bounded), returns the references in
/// order; the first failure fails the call after the running builds end.
fn docker_build_many(specs: Array) -> HostResult<Array> {
    let ctx = current("docker_build")?;
    ctx.refuse_in_verify("docker_build()")?;
    let specs: Vec<BuildSpec> = specs
        .iter()
        .map(|d| {
            d.clone()
                .try_cast::<RMap>()
                .ok_or_else(|| err("docker_build([...]): each element must be a map"))
                .and_then(|m| BuildSpec::parse(&m))
        })
        .collect::<HostResult<_>>()?;
    let limit = if ctx.dry_run {
        1
    } else {
        parallel_builds(&ctx)
    };
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Mutex<Vec<Option<HostResult<String>>>> =
        Mutex::new((0..specs.len()).map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..limit.min(specs.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if i >= specs.len() {
                    break;
                }
                let r = build_one(&ctx, &specs[i]);
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(r);
            });
        }
    });
    let mut out = Array::new();
    for r in results.into_inner().unwrap_or_else(|e| e.into_inner()) {
        out.push(Dynamic::from(
            r.unwrap_or_else(|| Err(err("build not run")))?,
        ));
    }
    Ok(out)
}

fn read_config(
    ncx: &NativeCallContext,
    key: &str,
    default: Option<Dynamic>,
) -> HostResult<Dynamic> {
    let ctx = current("read_config")?;
    if !reads::covers(&ctx.declared.config, key) {
        ctx.undeclared(
            &format!("config {key}"),
            &call_site(ncx),
            &format!("add \"{key}\" to `config:`"),
        )?;
    }
    ctx.record_config(key);
    match ctx.config.get(key) {
        Some(Value::Null) if default.is_some() => Ok(default.unwrap_or(Dynamic::UNIT)),
        Some(v) => Ok(json_to_dynamic(v)),
        None => default.ok_or_else(|| {
            err(format!(
                "step `{}`: config key `{key}` not found in {} (add it, or call read_config(\"{key}\", default))",
                ctx.step,
                ctx.config.path.display()
            ))
        }),
    }
}

fn output(key: &str, value: Dynamic) -> HostResult<()> {
    let ctx = current("output")?;
    ctx.refuse_in_verify("output()")?;
    let json: Value = rhai::serde::from_dynamic(&value)?;
    // The value itself, not its serialised text (where escapes would hide a secret).
    fn holds_secret(m: &Masker, v: &Value) -> bool {
        match v {
            Value::String(s) => m.is_secret_value(s),
            Value::Number(n) => m.is_secret_value(&n.to_string()),
            Value::Array(a) => a.iter().any(|x| holds_secret(m, x)),
            Value::Object(o) => o
                .iter()
                .any(|(k, x)| m.is_secret_value(k) || holds_secret(m, x)),
            _ => false,
        }
    }
    if holds_secret(&ctx.masker, &json) {
        return Err(err(format!(
            "output(\"{key}\", ...): the value contains a secret; secrets are never written to state (keep it in Key Vault and read it when needed)"
        )));
    }
    ctx.outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), json);
    Ok(())
}

fn outputs(ncx: NativeCallContext, step: &str) -> HostResult<Dynamic> {
    let ctx = current("outputs")?;
    if step == ctx.step {
        let own = ctx
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        return Ok(json_to_dynamic(&Value::Object(own)));
    }
    if !ctx.declared.ancestors.iter().any(|a| a == step) {
        ctx.undeclared(
            &format!("outputs of {step}"),
            &call_site(&ncx),
            &format!("add \"{step}\" to `needs:` (directly or through a step it needs)"),
        )?;
    }
    let map = ctx
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .outputs(step);
    Ok(Dynamic::from(OutputsView {
        step: step.to_string(),
        map: Arc::new(map),
    }))
}

/// The outputs this step recorded when it last completed (empty the first time): lets a step
/// leave alone what it deployed before and that has not changed. In `verify()` right after
/// `run()`, the outputs of that run.
fn previous_outputs() -> HostResult<Dynamic> {
    let ctx = current("previous_outputs")?;
    if ctx.is_verifying() {
        let own = ctx
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !own.is_empty() {
            return Ok(json_to_dynamic(&Value::Object(own)));
        }
    }
    let map = ctx
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .steps
        .get(&ctx.step)
        .filter(|r| r.status == crate::state::Status::Completed)
        .map(|r| r.outputs.clone())
        .unwrap_or_default();
    Ok(json_to_dynamic(&Value::Object(map)))
}

/// What `outputs("x")` returns: a read-only map of step x's outputs that records which keys
/// the step uses (property access, indexing, `contains`), or the whole map when it is used
/// whole (`keys`, `values`, `len`, `to_json`, printing). Its `type_of` is `"map"`.
#[derive(Clone)]
pub struct OutputsView {
    step: String,
    map: Arc<Map<String, Value>>,
}

impl OutputsView {
    fn record(&self, key: &str) {
        if let Some(ctx) = CURRENT.with(|c| c.borrow().clone()) {
            ctx.record_output(&self.step, key, &self.map);
        }
    }

    fn get(&self, key: &str) -> Dynamic {
        self.record(key);
        self.map
            .get(key)
            .map(json_to_dynamic)
            .unwrap_or(Dynamic::UNIT)
    }

    fn whole(&self) -> Map<String, Value> {
        self.record(reads::WHOLE);
        (*self.map).clone()
    }
}

/// What `outputs(step)` returns: a read-only map that records which keys a step reads.
fn register_outputs_view(engine: &mut Engine) {
    engine.register_type_with_name::<OutputsView>("map");
    def(
        "index$get$",
        &["outputs: map", "key: string", "?"],
        "`outputs(step)[key]`: one output of another step (() when missing).",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| v.get(key));
    def(
        "contains",
        &["outputs: map", "key: string", "bool"],
        "Whether another step saved this output.",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| {
        v.record(key);
        v.map.contains_key(key)
    });
    def(
        "get",
        &["outputs: map", "key: string", "?"],
        "One output of another step (() when missing).",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| v.get(key));
    def(
        "keys",
        &["outputs: map", "array"],
        "The names of another step's outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| -> Array {
        v.whole().keys().map(|k| Dynamic::from(k.clone())).collect()
    });
    def(
        "values",
        &["outputs: map", "array"],
        "The values of another step's outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| -> Array {
        v.whole().values().map(json_to_dynamic).collect()
    });
    def(
        "len",
        &["outputs: map", "int"],
        "How many outputs another step saved.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| v.whole().len() as i64);
    def(
        "is_empty",
        &["outputs: map", "bool"],
        "Whether another step saved no outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| v.whole().is_empty());
    def(
        "to_map",
        &["outputs: map", "map"],
        "Another step's outputs as an ordinary map.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        json_to_dynamic(&Value::Object(v.whole()))
    });
    def(
        "to_string",
        &["outputs: map", "string"],
        "Another step's outputs as text.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        json_to_dynamic(&Value::Object(v.whole())).to_string()
    });
    def(
        "to_debug",
        &["outputs: map", "string"],
        "Another step's outputs as debug text.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        format!("{:?}", json_to_dynamic(&Value::Object(v.whole())))
    });
}

fn secret(value: Dynamic, name: Option<&str>) -> HostResult<Dynamic> {
    let ctx = current("secret")?;
    let name = match name {
        Some(n) => n.to_string(),
        None => format!("a value marked with secret() in step `{}`", ctx.step),
    };
    ctx.masker.add_named(&display(&value), &name);
    Ok(value)
}

/// `secret_file(value)`: the path of a 0600 file holding `value` in the step's private
/// temporary directory (removed when the step ends). The value becomes secret.
fn secret_file(value: Dynamic) -> HostResult<String> {
    let ctx = current("secret_file")?;
    let text = display(&value);
    ctx.masker.add_named(
        &text,
        &format!("a value given to secret_file() in step `{}`", ctx.step),
    );
    if ctx.dry_run {
        return Ok("<secret file>".to_string());
    }
    let path = ctx
        .secret_files
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .create(&ctx.step, text.as_bytes())
        .map_err(|e| {
            err(format!(
                "secret_file(): cannot write a private temporary file: {e}"
            ))
        })?;
    Ok(path.display().to_string())
}

fn env(
    ncx: &NativeCallContext,
    name: &str,
    default: Option<&str>,
    is_secret: bool,
) -> HostResult<String> {
    let func = if is_secret { "env_secret" } else { "env" };
    let ctx = current(func)?;
    if !ctx.declared.env.iter().any(|d| d == name) {
        ctx.undeclared(
            &format!("env {name}"),
            &call_site(ncx),
            &format!("add \"{name}\" to `env:`"),
        )?;
    }
    let current_value = reads::env_value(name);
    let digest = reads::env_digest(current_value.as_deref(), &ctx.secret_salt);
    ctx.reads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .env
        .insert(name.to_string(), digest);
    let value = match (current_value, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(err(format!(
                "step `{}`: environment variable {name} is not set",
                ctx.step
            )))
        }
    };
    if is_secret {
        ctx.masker
            .add_named(&value, &format!("env_secret(\"{name}\")"));
    }
    Ok(value)
}

fn generate_password(len: i64) -> HostResult<String> {
    use rand::Rng;
    let ctx = current("generate_password")?;
    if !(12..=256).contains(&len) {
        return Err(err(
            "generate_password(len): len must be between 12 and 256",
        ));
    }
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT].concat();
    let mut bytes: Vec<u8> = (0..len)
        .map(|_| all[rng.random_range(0..all.len())])
        .collect();
    bytes[0] = LOWER[rng.random_range(0..LOWER.len())];
    bytes[1] = UPPER[rng.random_range(0..UPPER.len())];
    bytes[2] = DIGIT[rng.random_range(0..DIGIT.len())];
    let pw = String::from_utf8(bytes).unwrap_or_default();
    ctx.masker.add_named(
        &pw,
        &format!(
            "a password generated by generate_password() in step `{}`",
            ctx.step
        ),
    );
    Ok(pw)
}
