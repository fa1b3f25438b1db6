//! Shell completion: the scripts (clap_complete) and the dynamic part, step names for
//! `--force-step`, `--only` and `state reset`, read from the steps folder when the shell asks.
//!
//! The completion scripts call `STEPWISE_COMPLETE=SHELL stepwise -- WORDS...`; [`complete_env`]
//! answers such a call before anything else runs and exits.

use super::args::command;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use clap_complete::Shell;
use std::path::PathBuf;

/// The environment variable that turns a call of stepwise into a completion request.
pub const VAR: &str = "STEPWISE_COMPLETE";

/// Answers a completion request (`STEPWISE_COMPLETE=SHELL stepwise -- WORDS`) and exits; does
/// nothing otherwise. Called first thing in `main`.
pub fn complete_env() {
    clap_complete::CompleteEnv::with_factory(command)
        .var(VAR)
        .complete();
}

/// Writes the completion script for `shell`. The dynamic script calls `completer` (the path of
/// this program as it was started) to complete; the static one is fixed.
pub fn write_script(
    shell: Shell,
    static_script: bool,
    completer: &str,
    out: &mut dyn std::io::Write,
) -> std::io::Result<()> {
    if static_script {
        let mut cmd = command();
        clap_complete::generate(shell, &mut cmd, "stepwise", out);
        return Ok(());
    }
    let adapter: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::PowerShell => &Powershell,
        Shell::Elvish => &Elvish,
        _ => {
            return Err(std::io::Error::other(format!(
                "no completion script for {shell}"
            )))
        }
    };
    adapter.write_registration(VAR, "stepwise", "stepwise", completer, out)
}

/// The program to call back for completions: `argv[0]` as given when it is a bare name
/// (found on PATH), made absolute when it is a path.
pub fn completer_path() -> String {
    let argv0 = std::env::args_os()
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("stepwise"));
    if argv0.components().count() > 1 && argv0.is_relative() {
        if let Ok(cwd) = std::env::current_dir() {
            return cwd.join(argv0).display().to_string();
        }
    }
    argv0.display().to_string()
}
