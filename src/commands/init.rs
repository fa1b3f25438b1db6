//! `stepwise init [DIR]`: a new project that runs at once, without Azure. Never overwrites a
//! file: existing ones are named and left alone (exit 1 if any was one of the files asked for).

use crate::util::error::exit;
use anyhow::{Context, Result};
use std::path::Path;

/// The files of a new project: (path, contents).
const FILES: &[(&str, &str)] = &[
    (
        "config.yaml",
        include_str!("../../templates/init/config.yaml"),
    ),
    (
        "steps/01_hello.rhai",
        include_str!("../../templates/init/steps/01_hello.rhai"),
    ),
    (
        "prelude.rhai",
        include_str!("../../templates/init/prelude.rhai"),
    ),
];

/// The line `.gitignore` needs.
const IGNORE: &str = ".stepwise/";

pub fn run(dir: &Path) -> Result<i32> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut created = Vec::new();
    let mut left_alone = Vec::new();
    for (rel, contents) in FILES {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        // create_new: an existing file (or one made meanwhile) is never replaced.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(mut f) => {
                use std::io::Write;
                f.write_all(contents.as_bytes())
                    .with_context(|| format!("cannot write {}", path.display()))?;
                created.push(rel.to_string());
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                left_alone.push(rel.to_string())
            }
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", path.display())),
        }
    }
    let gitignore = dir.join(".gitignore");
    let existing = match std::fs::read_to_string(&gitignore) {
        Ok(t) => Some(t),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", gitignore.display())),
    };
    let ignored = existing.as_deref().is_some_and(|t| {
        t.lines().any(|l| {
            matches!(
                l.trim(),
                ".stepwise" | ".stepwise/" | "/.stepwise" | "/.stepwise/"
            )
        })
    });
    if !ignored {
        // Appending a line adds to the file; nothing in it is replaced.
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&gitignore)
            .with_context(|| format!("cannot write {}", gitignore.display()))?;
        use std::io::Write;
        let sep = match &existing {
            Some(t) if !t.is_empty() && !t.ends_with('\n') => "\n",
            _ => "",
        };
        writeln!(
            f,
            "{sep}# stepwise: state, logs and hash cache of this machine\n{IGNORE}"
        )?;
        if existing.is_some() {
            println!("  added {IGNORE} to .gitignore");
        } else {
            created.push(".gitignore".to_string());
        }
    }
    for f in &created {
        println!("  created {f}");
    }
    for f in &left_alone {
        println!("  exists  {f} (left alone)");
    }
    if !left_alone.is_empty() {
        eprintln!(
            "error: {} already existed and {} not overwritten: {}",
            if left_alone.len() == 1 {
                "a file"
            } else {
                "files"
            },
            if left_alone.len() == 1 { "was" } else { "were" },
            left_alone.join(", ")
        );
        return Ok(exit::STEP_FAILED);
    }
    println!();
    println!("Next:");
    if dir != Path::new(".") {
        println!("  cd {}", dir.display());
    }
    println!("  stepwise plan    # what would run, and why");
    println!("  stepwise         # run it (asks first; --auto-approve to not ask)");
    println!("  stepwise         # again: nothing changed, so the step is skipped");
    Ok(exit::OK)
}
