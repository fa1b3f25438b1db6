//! Running a command for a step: argv from a script, the options map (`stdin`), the run
//! itself (guarded, logged, dry run, timeout, retries on exit 1, interrupts; output spilled to
//! the step's log, masked), the refresh's read cache, what a script gets back of the output.

use super::answers::register_output_secrets;
use super::context::{err, HostResult, StepContext};
use super::guard::guard_argv;
use crate::sys::process::{self, RunError};
use rhai::{Array, EvalAltResult, Map as RMap};
use std::time::Duration;

/// An argv array from a script: strings, numbers and booleans; anything else is an error.
pub(super) fn to_argv(func: &str, args: &Array, dry_run: bool) -> HostResult<Vec<String>> {
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

/// How much of a command's output a script gets back as a string: more is truncated with a
/// marker naming the step's log, which has all of it.
pub(super) const RETURN_LIMIT: usize = crate::decide::script::MAX_STRING_SIZE - 1024;

/// What a command's output is for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Expect {
    /// `az`: stdout is JSON, read whole up to `advanced.max_json_output_mb`.
    Json,
    /// Anything else: text.
    Text,
}

/// Streams the part of an output that is not kept in memory to the step's log, masked.
struct LogSpill(crate::util::secrets::MaskingWriter<std::fs::File>);

impl crate::util::capture::Spill for LogSpill {
    fn write(&mut self, bytes: &[u8]) {
        self.0.write(bytes);
    }
    fn finish(&mut self) {
        self.0.finish();
    }
}

/// Options of `az`, `az_try`, `exec` and `exec_try` (a map as the second argument).
#[derive(Debug, Default)]
pub(super) struct CommandOptions {
    /// What the program reads on standard input (never on its command line, never logged).
    pub(super) stdin: Option<String>,
}

impl CommandOptions {
    pub(super) fn parse(func: &str, opts: &RMap) -> HostResult<CommandOptions> {
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

/// Runs a command for a step: guards its argv, logs it, honours dry run, timeout, retries,
/// interrupts. `attempts`: how many attempts in all on exit code 1. `stdin`: the standard
/// input (a secret it holds is never shown).
pub(super) fn run_command(
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
    let result = loop {
        let opts = run_options(ctx, stdin, expect);
        match process::run(argv, opts) {
            Ok(out) => {
                log_output(ctx, argv, &out, expect);
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
                    ctx.retries
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
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

/// How a step's command runs: its timeout, how much of its output is kept in memory and the
/// rest spilled to the step's log (masked), its standard input.
fn run_options(ctx: &StepContext, stdin: Option<&str>, expect: Expect) -> process::RunOptions {
    let json_limit = ctx.settings.max_json_output();
    let spill = || -> Option<Box<dyn crate::util::capture::Spill>> {
        let file = ctx
            .log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()?
            .try_clone()
            .ok()?;
        Some(Box::new(LogSpill(
            crate::util::secrets::MaskingWriter::new(ctx.masker.clone(), file),
        )))
    };
    process::RunOptions {
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
    }
}

/// The output of a command that ran (what was kept in memory) in the step's log; secrets in
/// its answer are registered with the masker first.
fn log_output(ctx: &StepContext, argv: &[String], out: &process::Output, expect: Expect) {
    let json_limit = ctx.settings.max_json_output();
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
}

/// Where the whole output of a step's commands is, for truncation markers.
pub(super) fn log_name(ctx: &StepContext) -> String {
    ctx.log_path
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "the step's log".into())
}

/// A command's stdout as a script gets it: trimmed, truncated with a marker when too large.
pub(super) fn returned_text(ctx: &StepContext, c: &crate::util::capture::Captured) -> String {
    c.text(RETURN_LIMIT, &log_name(ctx)).trim().to_string()
}

/// `run_command`, answered from the refresh's read cache while `verify()` runs.
pub(super) fn run_cached(
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

/// The error of a command that exited non-zero: its error text first, the command after
/// (`util::failure::message`).
pub(super) fn failure(
    ctx: &StepContext,
    argv: &[String],
    out: &process::Output,
) -> Box<EvalAltResult> {
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
        .mask(&crate::util::failure::message(&shown, out.code, detail)))
}
