//! The command-line guard: a secret on a command's argv (where any process on the machine
//! can read it) is warned about, or refused with `--strict`; the documented exceptions.

use super::context::{err, HostResult, StepContext};

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
pub(super) fn command_words(argv: &[String]) -> String {
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
pub(super) fn guard_argv(ctx: &StepContext, argv: &[String]) -> HostResult<()> {
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
