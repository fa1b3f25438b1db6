//! Environment names (`--env`, `--confirm-env`, `diff`) and run ids (`report`) for completion:
//! read from the overlay files next to the config and from the reports folder (not the plan
//! report, `plan.html`) when the shell
//! asks; nothing is loaded.

use crate::config::environment;
use clap_complete::{ArgValueCompleter, CompletionCandidate};
use std::ffi::OsStr;
use std::path::PathBuf;

/// The completer of arguments that name an environment.
pub fn env_name_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let config = flag_of(&words(), "--config").unwrap_or_else(|| "config.yaml".into());
        let names = environment::overlays(&PathBuf::from(config))
            .into_iter()
            .map(|(name, _)| name);
        starting_with(current, names)
    })
}

/// The completer of a run id (`report`): the kept reports of the selected environment,
/// newest first, and `latest`.
pub fn run_id_completer() -> ArgValueCompleter {
    ArgValueCompleter::new(|current: &OsStr| {
        let env = flag_of(&words(), "--env").or_else(|| std::env::var("STEPWISE_ENV").ok());
        let dir = environment::local_dir(env.as_deref()).join("reports");
        let mut ids: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.flatten()
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()
                            .and_then(|n| n.strip_suffix(".html"))
                            .filter(|n| *n != "plan")
                            .map(str::to_string)
                    })
                    .collect()
            })
            .unwrap_or_default();
        ids.sort_by(|a, b| b.cmp(a));
        ids.insert(0, "latest".into());
        starting_with(current, ids.into_iter())
    })
}

fn words() -> Vec<String> {
    std::env::args_os()
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// The value of `--flag VALUE` or `--flag=VALUE` on the command line being completed.
fn flag_of(words: &[String], flag: &str) -> Option<String> {
    let mut found = None;
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if w == flag {
            found = it.next().cloned();
        } else if let Some(v) = w.strip_prefix(&format!("{flag}=")) {
            found = Some(v.to_string());
        }
    }
    found
}

fn starting_with(current: &OsStr, names: impl Iterator<Item = String>) -> Vec<CompletionCandidate> {
    let current = current.to_str().unwrap_or("");
    names
        .filter(|n| n.starts_with(current))
        .map(CompletionCandidate::new)
        .collect()
}
