//! Step names for completion (`--force-step`, `--only`, `state reset`): read from the steps
//! folder's file names when the shell asks, no script compiled.

use crate::decide::step;
use clap_complete::{ArgValueCompleter, CompletionCandidate};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

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
