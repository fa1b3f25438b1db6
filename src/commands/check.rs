//! `stepwise check`: every read a step made in its last completed run that its declaration
//! does not cover (config keys, env vars, outputs of steps it does not need), from the
//! recorded reads in the state, judged against the declarations as they are now; and every
//! recorded `outputs()` read that closes a cycle (a step reading outputs of a step that needs
//! it), which no declaration can cover.

use crate::app::project::{Project, StateTarget};
use crate::cli::{Cli, OutputFormat};
use crate::decide::step::Step;
use crate::state::reads;
use crate::util::error::exit;
use anyhow::Result;

/// One undeclared read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Undeclared {
    pub step: String,
    /// `config app.b`, `env FOO`, `outputs of up`.
    pub read: String,
    /// Where the read happened (`file:line:col`).
    pub location: String,
    /// What to add to the declaration.
    pub fix: String,
}

/// A recorded `outputs()` read that closes a cycle ([`crate::decide::plan::CyclicRead`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Cycle {
    /// Always `cycle`.
    pub kind: &'static str,
    pub step: String,
    /// `outputs of b`.
    pub read: String,
    /// How the step read depends on the reader: `b needs a`.
    pub cycle: String,
    /// Where the read happened (`file:line:col`), when recorded.
    pub location: Option<String>,
    /// What the deployment does, and what to change.
    pub message: String,
}

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(&cli.load_options(), false)?;
    let state = p.store()?.load()?;
    let cyclic = crate::decide::plan::cyclic_reads(&p.steps, &state);
    let cycles: Vec<Cycle> = cyclic
        .iter()
        .map(|c| {
            let read = format!("outputs of {}", c.upstream);
            Cycle {
                kind: "cycle",
                location: state
                    .steps
                    .get(&c.step)
                    .and_then(|r| r.reads.as_ref())
                    .and_then(|r| r.undeclared.get(&read))
                    .cloned(),
                step: c.step.clone(),
                read,
                cycle: c.chain.clone(),
                message: format!(
                    "{}; read outputs of {} in a step that needs {} instead",
                    c.warning(),
                    c.upstream,
                    c.upstream
                ),
            }
        })
        .collect();
    let mut found = Vec::new();
    let mut never_recorded = Vec::new();
    for (i, step) in p.steps.steps.iter().enumerate() {
        let Some(reads) = state.steps.get(&step.name).and_then(|r| r.reads.as_ref()) else {
            never_recorded.push(step.name.clone());
            continue;
        };
        let ancestors: Vec<&str> = p
            .steps
            .ancestors(i)
            .into_iter()
            .map(|j| p.steps.steps[j].name.as_str())
            .collect();
        for (read, location) in &reads.undeclared {
            // A cycle is reported as such: adding the step to `needs:` would be refused.
            if cycles
                .iter()
                .any(|c| c.step == step.name && &c.read == read)
            {
                continue;
            }
            if let Some(fix) = still_undeclared(step, &ancestors, read) {
                found.push(Undeclared {
                    step: step.name.clone(),
                    read: read.clone(),
                    location: location.clone(),
                    fix,
                });
            }
        }
    }
    let code = if found.is_empty() && cycles.is_empty() {
        exit::OK
    } else {
        exit::STEP_FAILED
    };
    if cli.global.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "command": "check",
            "undeclared": found,
            "cycles": cycles,
            "not_recorded": never_recorded,
            "exit_code": code,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(code);
    }
    for u in &found {
        p.console.line(&format!(
            "{}: step `{}` reads {} without declaring it: {}",
            u.location, u.step, u.read, u.fix
        ));
    }
    for c in &cycles {
        let at = c.location.as_deref().unwrap_or("(location not recorded)");
        p.console.line(&format!("{at}: {}", c.message));
    }
    if !never_recorded.is_empty() {
        p.console.line(&format!(
            "not checked (no recorded reads yet; they are recorded when a step next runs): {}",
            never_recorded.join(", ")
        ));
    }
    p.console.line(&match (found.len(), cycles.len()) {
        (0, 0) => "check: every recorded read is declared".to_string(),
        (n, 0) => format!("check: {n} undeclared read(s)"),
        (0, c) => format!("check: {c} read(s) closing a cycle"),
        (n, c) => format!("check: {n} undeclared read(s), {c} read(s) closing a cycle"),
    });
    Ok(code)
}

/// The fix for a recorded undeclared read, unless the declaration covers it by now.
fn still_undeclared(step: &Step, ancestors: &[&str], read: &str) -> Option<String> {
    let at = format!("{}:{}", step.file, step.decl_line);
    if let Some(key) = reads::config_key_of_read(read) {
        (!reads::covers(&step.config, key)).then(|| {
            let (fix, then) = reads::config_fix(key);
            format!("{fix} ({at}){then}")
        })
    } else if let Some(name) = read.strip_prefix("env ") {
        (!step.env.iter().any(|e| e == name)).then(|| format!("add \"{name}\" to `env:` ({at})"))
    } else if let Some(other) = read.strip_prefix("outputs of ") {
        (!ancestors.contains(&other)).then(|| format!("add \"{other}\" to `needs:` ({at})"))
    } else {
        Some(format!("declare it ({at})"))
    }
}
