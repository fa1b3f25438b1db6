//! Host functions: what step scripts may do to the world (`az`, `docker_build`, `exec`,
//! `read_config`, `output`, `secret`, ...). Each call finds the step it belongs to through a
//! thread-local context that the executor sets while the step's `run()` executes; outside
//! `run()` every host function is an error.
//!
//! This file: the step context, its thread-local binding and the registration of every host
//! function (`def`); the functions are in `command` (running a command), `guard` (secrets on a
//! command line), `answers` (secrets in what commands print), `programs` (`az`, `exec`,
//! `http_get`), `docker`, `data` (config, env and outputs reads, `output`) and `secret`.

mod answers;
mod command;
mod context;
mod data;
mod docker;
mod guard;
mod price;
mod programs;
mod secret;

pub use command::show_command;
use context::{current, def, display, HostResult};
pub use context::{
    json_to_dynamic, print_line, with_context, CostContext, Declared, ReadCache, StepContext,
};
pub use data::OutputsView;
pub use guard::ARGV_SECRET_EXCEPTIONS;
pub use programs::{is_read_verb, READ_VERBS};

/// The step engine: the sandbox (`script::sandbox`) with every host function registered and
/// `print`/`debug` going to the step's output.
pub fn engine() -> rhai::Engine {
    let mut engine = crate::decide::script::sandbox();
    engine.on_print(print_line);
    engine.on_debug(|s, _, _| print_line(s));
    register(&mut engine);
    engine
}

use data::{
    env, output, outputs, previous_outputs, read_config, register_outputs_view, target_outputs,
};
use docker::{docker_build, docker_build_many};
use programs::{az, exec, http_get};
use rhai::{Array, Dynamic, Engine, Map as RMap, NativeCallContext};
use secret::{generate_password, secret, secret_file};
use serde_json::Value;

/// Registers every host function on `engine`, each with its parameter names and types and a
/// doc comment (what `stepwise definitions` writes for editors).
pub fn register(engine: &mut Engine) {
    register_programs(engine);
    register_docker(engine);
    register_data(engine);
    register_secrets(engine);
    register_misc(engine);
}

/// Running programs: `az`, `az_try`, `exec`, `exec_try`, `http_get`.
fn register_programs(engine: &mut Engine) {
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
         #{ ok, code, stdout, stderr, json, truncated, log } (`json` is () when stdout is not JSON\n\
         or too large for a script value). Use it for existence checks (`show` exits 3 when a\n\
         resource is missing). The map fits the script's limits: what is left out (`truncated`)\n\
         is in the step's log (`log`).",
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
        "Like `exec` but never fails the step: returns #{ ok, code, stdout, stderr, json,\n\
         truncated, log }; large output comes back truncated (`truncated`), all of it is in the\n\
         step's log (`log`).",
    )
    .register_into_engine(engine, |args: Array| exec(args, RMap::new(), true));
    def(
        "exec_try",
        &["args: array", "options: map", "map"],
        "`exec_try(args)` with options (#{ stdin: value }, as for `exec`).",
    )
    .register_into_engine(engine, |args: Array, opts: RMap| exec(args, opts, true));
    def(
        "http_get",
        &["url: string", "map"],
        "An HTTP GET with `curl -fsS` (argv, 10 s limit): #{ ok, code, body, error }. Only\n\
         reads, so `verify()` may use it (e.g. a health endpoint).",
    )
    .register_into_engine(engine, http_get);
}

/// Building images: `docker_build`.
fn register_docker(engine: &mut Engine) {
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
}

/// Reading and writing data: config, environment variables, outputs; whether the step was
/// forced.
fn register_data(engine: &mut Engine) {
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
        "target_outputs",
        &["step: string", "map"],
        "In `fn rollback(target)` only: a step's outputs in the run being rolled back to (an\n\
         empty map when it had none). The step's own are its `target` parameter.",
    )
    .register_into_engine(engine, target_outputs);
    def(
        "price",
        &["query: map", "?"],
        "In `fn cost()` only: the consumption price matching `#{ service, product, sku, meter,\n\
         region, unit }` (the Azure Retail Prices API's serviceName, productName, skuName,\n\
         meterName, armRegionName and unitOfMeasure) as `#{ unit_price, unit, currency, product,\n\
         sku, meter }`, or `()` when none matches or prices cannot be had (the reason is\n\
         reported with the estimate). Several distinct matches are an error naming them.",
    )
    .register_into_engine(engine, price::price);
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
}

/// Secrets: `secret`, `secret_file`, `generate_password`.
fn register_secrets(engine: &mut Engine) {
    def(
        "secret_file",
        &["value: ?", "string"],
        "The path of a file holding `value` (mode 0600, in a private 0700 directory of the\n\
         step, removed when the step ends, also on failure and Ctrl+C): the way to hand a\n\
         program a secret it reads from a file (`--file`, `@path`). The value becomes secret.",
    )
    .register_into_engine(engine, secret_file);
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
        "generate_password",
        &["length: int", "string"],
        "A random password of letters and digits (at least one of each class), already\n\
         marked secret.",
    )
    .register_into_engine(engine, generate_password);
}

/// The step's own messages and facts: `log`, `warn`, `is_dry_run`, `to_json`.
fn register_misc(engine: &mut Engine) {
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
