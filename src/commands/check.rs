//! `stepwise check`: every read a step made in its last completed run that its declaration
//! does not cover (config keys, env vars, outputs of steps it does not need), from the
//! recorded reads in the state, judged against the declarations as they are now.

use crate::cli::{Cli, OutputFormat};
use crate::error::exit;
use crate::project::Project;
use crate::reads;
use crate::step::Step;
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

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, false)?;
    let state = p.store()?.load()?;
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
    let code = if found.is_empty() {
        exit::OK
    } else {
        exit::STEP_FAILED
    };
    if cli.global.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "command": "check",
            "undeclared": found,
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
    if !never_recorded.is_empty() {
        p.console.line(&format!(
            "not checked (no recorded reads yet; they are recorded when a step next runs): {}",
            never_recorded.join(", ")
        ));
    }
    p.console.line(&match found.len() {
        0 => "check: every recorded read is declared".to_string(),
        n => format!("check: {n} undeclared read(s)"),
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
