//! `stepwise completions SHELL`: prints the shell completion script.

use crate::cli::completion;
use crate::util::error::exit;
use anyhow::Result;
use clap_complete::Shell;

pub fn run(shell: Shell, static_script: bool) -> Result<i32> {
    let mut out = Vec::new();
    completion::write_script(
        shell,
        static_script,
        &completion::completer_path(),
        &mut out,
    )?;
    crate::util::console::print_stdout(&String::from_utf8_lossy(&out))?;
    Ok(exit::OK)
}
