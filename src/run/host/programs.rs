//! The host functions that run programs: `az`/`az_try` (JSON answers; only reads while
//! `verify()` runs), `exec`/`exec_try`, `http_get`; the maps the `*_try` forms return.

use super::command::{
    failure, log_name, returned_text, run_cached, run_command, show_command, to_argv,
    CommandOptions, Expect, RETURN_LIMIT,
};
use super::context::{current, err, json_to_dynamic, HostResult, StepContext};
use crate::sys::process;
use rhai::{Array, Dynamic, Map as RMap};
use serde_json::Value;
use std::ops::ControlFlow;

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

/// The map `az_try`/`exec_try` return.
fn try_map(
    code: i64,
    stdout: String,
    stderr: String,
    json: Dynamic,
    truncated: bool,
    log: String,
) -> Dynamic {
    let mut m = RMap::new();
    m.insert("ok".into(), Dynamic::from(code == 0));
    m.insert("code".into(), Dynamic::from(code));
    m.insert("stdout".into(), Dynamic::from(stdout));
    m.insert("stderr".into(), Dynamic::from(stderr));
    m.insert("json".into(), json);
    m.insert("truncated".into(), Dynamic::from(truncated));
    m.insert("log".into(), Dynamic::from(log));
    Dynamic::from(m)
}

/// String bytes of a `*_try` map kept for the text fields (and the truncation markers) when
/// the parsed JSON is large.
const TEXT_RESERVE: usize = 64 * 1024;

/// How `room` bytes of text are shared by two outputs of `a` and `b` bytes: each whole if
/// both fit, else the smaller whole if it fits in half, the rest to the other.
fn share(room: usize, a: usize, b: usize) -> (usize, usize) {
    let half = room / 2;
    if a + b <= room {
        (a, b)
    } else if a <= half {
        (a, room - a)
    } else if b <= half {
        (room - b, b)
    } else {
        (half, room - half)
    }
}

/// `az_try`/`exec_try`'s map for a finished command. The map as a whole stays within the
/// script's limits (strings, array items, map entries, counted over everything in it): JSON
/// too large for them is left out (`json: ()`), stdout and stderr share what is left of the
/// string limit and come back as their start and end around a marker. Then `truncated` is
/// true; `log` names the step's log, which has all of it.
fn result_of(ctx: &StepContext, out: &process::Output) -> Dynamic {
    use crate::decide::script::{data_sizes, MAX_ARRAY_SIZE, MAX_MAP_SIZE, MAX_STRING_SIZE};
    let log = log_name(ctx);
    let code = i64::from(out.code);
    let mut json_left_out = false;
    // JSON that stayed within its read limit is parsed; it is kept when it fits the limits
    // with room for the rest of the map.
    let json = match out.stdout.whole_text().map(|t| parse_stdout(&t)) {
        Some((json, true)) => {
            let (a, m, s) = data_sizes(&json);
            if a <= MAX_ARRAY_SIZE
                && m + 16 <= MAX_MAP_SIZE
                && s + TEXT_RESERVE + log.len() <= MAX_STRING_SIZE
            {
                json
            } else {
                json_left_out = true;
                Dynamic::UNIT
            }
        }
        _ => Dynamic::UNIT,
    };
    let len = |c: &crate::util::capture::Captured| match &c.whole {
        Some(b) => b.len(),
        None => usize::try_from(c.total).unwrap_or(usize::MAX),
    };
    // Markers and the log's name come out of the same budget.
    let room = MAX_STRING_SIZE
        .saturating_sub(data_sizes(&json).2)
        .saturating_sub(2 * log.len() + 4096);
    let (mut out_room, mut err_room) = share(room, len(&out.stdout), len(&out.stderr));
    for _ in 0..32 {
        let cut = |c: &crate::util::capture::Captured, limit: usize| {
            let whole = c.whole.as_ref().is_some_and(|b| b.len() <= limit);
            (c.text(limit, &log).trim().to_string(), !whole)
        };
        let (stdout, stdout_cut) = cut(&out.stdout, out_room);
        let (stderr, stderr_cut) = cut(&out.stderr, err_room);
        let map = try_map(
            code,
            stdout,
            stderr,
            json.clone(),
            json_left_out || stdout_cut || stderr_cut,
            log.clone(),
        );
        if crate::decide::script::fits_limits(&map) {
            return map;
        }
        // Text that grew when decoded (bytes that are not UTF-8): less of it.
        out_room /= 2;
        err_room /= 2;
    }
    try_map(code, String::new(), String::new(), Dynamic::UNIT, true, log)
}

fn dry_run_try() -> Dynamic {
    try_map(
        -1,
        String::new(),
        "dry run".into(),
        Dynamic::UNIT,
        false,
        String::new(),
    )
}

pub(super) fn az(args: Array, opts: RMap, try_mode: bool) -> HostResult<Dynamic> {
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
    let ran = run_cached(&ctx, &argv, attempts, opts.stdin.as_deref())?;
    let out = match succeeded(&ctx, &argv, ran, try_mode, Dynamic::from(RMap::new()))? {
        ControlFlow::Continue(out) => out,
        ControlFlow::Break(answer) => return Ok(answer),
    };
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
    if text.is_empty() {
        return Ok(Dynamic::from(String::new()));
    }
    if text.len() > RETURN_LIMIT && serde_json::from_str::<Value>(text).is_err() {
        // Text too long for a script string (`--output tsv` of a long list).
        return Ok(Dynamic::from(returned_text(&ctx, &out.stdout)));
    }
    let value = parse_stdout(&stdout).0;
    if !crate::decide::script::fits_limits(&value) {
        return Err(err(ctx.masker.mask(&format!(
            "{} answered {:.1} MiB, too large for a script value (limits: {}): narrow it with --query, or use az_try (its `stdout` comes back truncated, all of it is in {})",
            show_command(&argv),
            text.len() as f64 / (1024.0 * 1024.0),
            crate::decide::script::limits_text(),
            log_name(&ctx)
        ))));
    }
    Ok(value)
}

pub(super) fn exec(args: Array, opts: RMap, try_mode: bool) -> HostResult<Dynamic> {
    let func = if try_mode { "exec_try" } else { "exec" };
    let ctx = current(func)?;
    ctx.refuse_in_verify(&format!("{func}()"))?;
    let opts = CommandOptions::parse(func, &opts)?;
    let argv = to_argv(func, &args, ctx.dry_run)?;
    if argv.is_empty() {
        return Err(err(format!("{func}(): the argv array is empty")));
    }
    let ran = run_command(&ctx, &argv, 1, opts.stdin.as_deref(), Expect::Text)?;
    let out = match succeeded(&ctx, &argv, ran, try_mode, Dynamic::from(String::new()))? {
        ControlFlow::Continue(out) => out,
        ControlFlow::Break(answer) => return Ok(answer),
    };
    Ok(Dynamic::from(returned_text(&ctx, &out.stdout)))
}

/// What `az` and `exec` (and their `_try` forms) answer for a command that ran (`out`; none
/// in a dry run, where they answer `dry_run`, or the `*_try` map of a dry run): a `*_try`
/// form its result map, a failed command an error; the output of a command that succeeded
/// is for the caller to read.
fn succeeded(
    ctx: &StepContext,
    argv: &[String],
    out: Option<process::Output>,
    try_mode: bool,
    dry_run: Dynamic,
) -> HostResult<ControlFlow<Dynamic, process::Output>> {
    let Some(out) = out else {
        return Ok(ControlFlow::Break(if try_mode {
            dry_run_try()
        } else {
            dry_run
        }));
    };
    if try_mode {
        return Ok(ControlFlow::Break(result_of(ctx, &out)));
    }
    if out.code != 0 {
        return Err(failure(ctx, argv, &out));
    }
    Ok(ControlFlow::Continue(out))
}

/// `http_get(url)`: an HTTP GET with `curl -fsS` (argv, a 10 s limit): `#{ ok, code, body,
/// error }`. Only reads, so `verify()` may use it (e.g. a health endpoint).
pub(super) fn http_get(url: &str) -> HostResult<Dynamic> {
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
    let stderr = out.stderr.last(8192);
    let error = if out.code == 0 {
        String::new()
    } else if stderr.trim().is_empty() {
        format!("curl exited {}", out.code)
    } else {
        stderr.trim().to_string()
    };
    // Body and error together within a script's string limit.
    let log = log_name(&ctx);
    let body = out
        .stdout
        .text(RETURN_LIMIT.saturating_sub(error.len() + log.len()), &log);
    m.insert("body".into(), Dynamic::from(body.trim().to_string()));
    m.insert("error".into(), Dynamic::from(error));
    Ok(Dynamic::from(m))
}
