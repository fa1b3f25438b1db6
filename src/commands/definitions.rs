//! `stepwise definitions [DIR]`: Rhai definition files (`*.d.rhai`) for the Rhai language
//! server. The host functions and Rhai's standard library come from rhai's own
//! `Engine::definitions()` (the metadata each host function is registered with: parameters,
//! types, doc comment); the prelude's helpers, written in the same format, from the prelude's
//! parsed functions and their `///` doc comments.

use crate::cli::Cli;
use crate::decide::script;
use crate::util::error::{exit, usage};
use anyhow::{Context, Result};
use std::path::Path;

/// The file of the prelude's helpers.
pub const PRELUDE_FILE: &str = "prelude.d.rhai";

pub fn run(cli: &Cli, dir: &Path) -> Result<i32> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if same(dir, &cli.global.steps) {
        return Err(usage(format!(
            "{}: is the steps folder; definition files there would be read as steps (pick another folder)",
            dir.display()
        )));
    }
    let engine = crate::run::host::engine();
    let defs = engine.definitions().with_headers(true);
    defs.write_to_dir(dir)
        .with_context(|| format!("cannot write definitions to {}", dir.display()))?;
    let mut files: Vec<String> = defs.iter_files().map(|(name, _)| name).collect();
    let prelude_path = cli.global.prelude_path();
    match std::fs::read_to_string(&prelude_path) {
        Ok(text) => {
            let file = prelude_path.display().to_string();
            let ast = engine
                .compile(&text)
                .map_err(|e| usage(script::parse_error(&file, &e)))?;
            let target = dir.join(PRELUDE_FILE);
            std::fs::write(&target, prelude_definitions(&ast, &file))
                .with_context(|| format!("cannot write {}", target.display()))?;
            files.push(PRELUDE_FILE.to_string());
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(usage(format!(
                "cannot read {}: {e}",
                prelude_path.display()
            )))
        }
    }
    files.sort();
    println!(
        "wrote {} definition files to {}: {}",
        files.len(),
        dir.display(),
        files.join(", ")
    );
    Ok(exit::OK)
}

/// The prelude's public functions as definitions: doc comments, then `fn name(a: ?) -> ?;`.
fn prelude_definitions(ast: &rhai::AST, file: &str) -> String {
    let mut out =
        format!("module static;\n\n// The helpers of {file}, callable from every step.\n");
    let mut fns: Vec<_> = ast
        .iter_functions()
        .filter(|f| f.access != rhai::FnAccess::Private)
        .collect();
    fns.sort_by(|a, b| (a.name, a.params.len()).cmp(&(b.name, b.params.len())));
    for f in fns {
        out.push('\n');
        for c in &f.comments {
            out.push_str(c);
            out.push('\n');
        }
        let params: Vec<String> = f.params.iter().map(|p| format!("{p}: ?")).collect();
        out.push_str(&format!("fn {}({}) -> ?;\n", f.name, params.join(", ")));
    }
    out
}
