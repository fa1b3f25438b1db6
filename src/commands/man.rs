//! `stepwise man [DIR]`: man pages generated from the command line definition (clap_mangen):
//! `stepwise.1` and one page per subcommand (`stepwise-plan.1`, `stepwise-state-reset.1`, ...),
//! each with the command's EXAMPLES and the EXIT STATUS of every code.

use crate::cli::examples;
use crate::util::error::exit;
use anyhow::{Context, Result};
use roff::{bold, roman, Roff};
use std::path::{Path, PathBuf};

pub fn run(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut cmd = crate::cli::command().disable_help_subcommand(true);
    cmd.build();
    let mut written = Vec::new();
    write_pages(&cmd, "", dir, &mut written)
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

/// The page of `cmd` (at `path`: `""`, `plan`, `state reset`) and, recursively, of each
/// visible subcommand.
fn write_pages(cmd: &clap::Command, path: &str, dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_path = format!("{path} {}", sub.get_name());
        write_pages(sub, sub_path.trim_start(), dir, out)?;
    }
    // The examples and exit codes get sections of their own, not clap's "EXTRA".
    let man = clap_mangen::Man::new(cmd.clone().after_help(None::<&str>));
    let file = dir.join(man.get_filename());
    let mut page = Vec::new();
    man.render_title(&mut page)?;
    man.render_name_section(&mut page)?;
    man.render_synopsis_section(&mut page)?;
    man.render_description_section(&mut page)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut page)?;
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut page)?;
    }
    page.extend(sections(path).as_bytes());
    if cmd.get_version().is_some() {
        man.render_version_section(&mut page)?;
    }
    std::fs::write(&file, page)?;
    out.push(file);
    Ok(())
}

/// EXAMPLES (the command's, as in its `--help`) and EXIT STATUS (every code).
fn sections(path: &str) -> String {
    let mut roff = Roff::new();
    roff.control("SH", ["EXAMPLES"]);
    for (line, what) in examples::of(path) {
        roff.control("TP", [])
            .text([bold(*line)])
            .text([roman(*what)]);
    }
    roff.control("SH", ["EXIT STATUS"]);
    for (code, what) in exit::TABLE {
        roff.control("TP", [])
            .text([bold(code.to_string())])
            .text([roman(*what)]);
    }
    if path == "plan" {
        roff.control("TP", [])
            .text([bold("--detailed-exitcode")])
            .text([roman(exit::DETAILED_PLAN)]);
    }
    roff.to_roff()
}
