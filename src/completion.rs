//! Shell completion: the scripts (clap_complete) and the dynamic part, step names for
//! `--force-step`, `--only` and `state reset`, read from the steps folder when the shell asks.
//!
//! The completion scripts call `STEPWISE_COMPLETE=SHELL stepwise -- WORDS...`; [`complete_env`]
//! answers such a call before anything else runs and exits.

use crate::cli::Cli;
use crate::step;
use clap::CommandFactory;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};
use clap_complete::{ArgValueCompleter, CompletionCandidate, Shell};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

/// The environment variable that turns a call of stepwise into a completion request.
pub const VAR: &str = "STEPWISE_COMPLETE";

/// Answers a completion request (`STEPWISE_COMPLETE=SHELL stepwise -- WORDS`) and exits; does
/// nothing otherwise. Called first thing in `main`.
pub fn complete_env() {
    clap_complete::CompleteEnv::with_factory(Cli::command)
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
        let mut cmd = Cli::command();
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

/// The completer of arguments that name steps.
pub fn step_name_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(complete_step_names)
}

/// Step names starting with `current`, from the steps folder (`--steps` on the command line
/// being completed, or `steps`). Reads file names only: no script is compiled.
fn complete_step_names(current: &OsStr) -> Vec<CompletionCandidate> {
    let Some(current) = current.to_str() else {
        return Vec::new();
    };
    let words: Vec<String> = std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    step_names_in(&steps_dir_of(&words))
        .into_iter()
        .filter(|n| n.starts_with(current))
        .map(CompletionCandidate::new)
        .collect()
}

/// The `--steps DIR` (or `--steps=DIR`) of a command line, else `steps`.
fn steps_dir_of(words: &[String]) -> PathBuf {
    let mut dir = PathBuf::from("steps");
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == "--steps" {
            if let Some(d) = it.next() {
                dir = PathBuf::from(d);
            }
        } else if let Some(d) = w.strip_prefix("--steps=") {
            dir = PathBuf::from(d);
        }
    }
    dir
}

/// The step names in `dir`, in step order (by number, then name).
pub fn step_names_in(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut steps: Vec<(u32, String)> = entries
        .flatten()
        .filter_map(|e| step::parse_file_name(&e.file_name().to_string_lossy()))
        .collect();
    steps.sort();
    steps.into_iter().map(|(_, name)| name).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_dir_from_the_words_being_completed() {
        let w = |s: &str| s.split(' ').map(String::from).collect::<Vec<_>>();
        assert_eq!(
            steps_dir_of(&w("stepwise --force-step x")),
            Path::new("steps")
        );
        assert_eq!(
            steps_dir_of(&w("stepwise --steps infra/steps --only ")),
            Path::new("infra/steps")
        );
        assert_eq!(
            steps_dir_of(&w("stepwise --steps=other state reset")),
            Path::new("other")
        );
    }

    #[test]
    fn step_names_in_step_order_ignoring_other_files() {
        let d = tempfile::tempdir().unwrap();
        for f in ["10_deploy.rhai", "02_build.rhai", "notes.md", "x.rhai"] {
            std::fs::write(d.path().join(f), "").unwrap();
        }
        assert_eq!(step_names_in(d.path()), ["build", "deploy"]);
    }
}
