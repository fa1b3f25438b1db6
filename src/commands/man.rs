//! `stepwise man [DIR]`: man pages generated from the command line definition (clap_mangen):
//! `stepwise.1` and one page per subcommand (`stepwise-plan.1`, `stepwise-state-reset.1`, ...).

use crate::cli::Cli;
use crate::util::error::exit;
use anyhow::{Context, Result};
use clap::CommandFactory;
use std::path::{Path, PathBuf};

pub fn run(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, dir, &mut written)
        .with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    written.sort();
    let names: Vec<String> = written
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    println!(
        "wrote {} man pages to {}: {}",
        names.len(),
        dir.display(),
        names.join(", ")
    );
    println!("read one with: man -l {}", dir.join("stepwise.1").display());
    Ok(exit::OK)
}

/// The page of `cmd` and, recursively, of each visible subcommand.
fn write_pages(cmd: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub, dir, written)?;
    }
    written.push(clap_mangen::Man::new(cmd.clone()).generate_to(dir)?);
    Ok(())
}
