//! The host functions that run programs: `az`/`az_try` (JSON answers; only reads while
//! `verify()` runs), `exec`/`exec_try`, `http_get`; the maps the `*_try` forms return.

use super::command::{
    failure, returned_text, run_cached, run_command, show_command, to_argv, CommandOptions, Expect,
    RETURN_LIMIT,
};
use super::{current, err, json_to_dynamic, HostResult, StepContext};
use crate::process;
use rhai::{Array, Dynamic, Map as RMap};
use serde_json::Value;

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

pub(super) fn exec(args: Array, opts: RMap, try_mode: bool) -> HostResult<Dynamic> {
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
