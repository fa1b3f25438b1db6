//! `stepwise plan`: what a deployment would run, and why; the plan as printed before a run.

use super::{decide, print_gone};
use crate::cli::{Cli, OutputFormat};
use crate::plan::{self, Action, Decision};
use crate::project::Project;
use crate::report::{self, Console};
use crate::state::State;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, true)?;
    let (state, decisions) = planned(&p, cli)?;
    let refresh = cli.deploy.refresh || p.config.settings.deployment.refresh;
    // The code the deployment would end with, if every step that runs succeeds.
    let code = plan::expected_exit(&decisions);
    if cli.global.output == OutputFormat::Json {
        let gone: Vec<serde_json::Value> = plan::gone(&p.steps, &state)
            .into_iter()
            .map(|(name, file)| serde_json::json!({ "name": name, "file": file }))
            .collect();
        let doc = serde_json::json!({
            "command": "plan",
            "env": p.env,
            "state": p.state_location,
            "steps": decisions.iter().map(decision_json).collect::<Vec<_>>(),
            "gone": gone,
            "exit_code": code,
        });
        report::print_json(&doc);
        return Ok(code);
    }
    print_plan(&p.console, &decisions);
    if refresh {
        print_not_checked(&p, &decisions);
    }
    print_gone(&p.console, &p, &state);
    if cli.global.output == OutputFormat::Markdown {
        print!("{}", p.masker.mask(&crate::markdown::plan(&decisions)));
    }
    Ok(code)
}

/// `--refresh`: which skipped steps have no `verify()` and were therefore not checked.
/// The state and the decisions of a deployment (with `--refresh`, after the checks), as `plan`
/// shows them; nothing runs and nothing is written but the hash cache.
pub(crate) fn planned(p: &Project, cli: &Cli) -> Result<(State, Vec<Decision>)> {
    let store = p.store()?;
    let state = if cli.deploy.reset_state {
        State::default()
    } else {
        store.load()?
    };
    let (mut decisions, opts) = decide(p, &cli.deploy, &state, state.salt())?;
    if cli.deploy.refresh || p.config.settings.deployment.refresh {
        super::deploy::refresh_decisions(
            p,
            &cli.deploy,
            store.as_ref(),
            &state,
            &mut decisions,
            &opts,
        )?;
    }
    p.hash_cache.save();
    Ok((state, decisions))
}

pub(crate) fn print_not_checked(p: &Project, decisions: &[Decision]) {
    let not: Vec<&str> = decisions
        .iter()
        .zip(&p.steps.steps)
        .filter(|(d, s)| d.action == Action::Skip && !s.has_verify)
        .map(|(d, _)| d.step.as_str())
        .collect();
    if !not.is_empty() {
        p.console.line(&format!(
            "Not checked by --refresh (no verify()): {}",
            not.join(", ")
        ));
    }
}

pub(crate) fn print_plan(console: &Console, decisions: &[Decision]) {
    let width = decisions.iter().map(|d| d.step.len()).max().unwrap_or(0);
    if let Some(env) = console.env() {
        console.line(&format!(
            "Environment {}:",
            console.paint(report::BOLD, env)
        ));
    }
    for d in decisions {
        let mark = match d.action {
            Action::Run => console.paint(report::GREEN, "run    "),
            Action::Skip => console.paint(report::DIM, "skip   "),
            Action::Pending => console.paint(report::YELLOW, "pending"),
            Action::Excluded => console.paint(report::DIM, "exclude"),
            Action::Maybe => console.paint(report::YELLOW, "maybe  "),
            Action::Blocked => console.paint(report::YELLOW, "blocked"),
        };
        console.line(&format!(
            "  {mark} {:width$}  {}",
            d.step,
            d.reasons.join("; ")
        ));
    }
    let count = |a| decisions.iter().filter(|d| d.action == a).count();
    console.line(&format!(
        "Plan: {} to run, {} up to date{}{}{}",
        count(Action::Run),
        count(Action::Skip),
        match count(Action::Pending) + count(Action::Maybe) {
            0 => String::new(),
            k => format!(", {k} pending"),
        },
        match count(Action::Excluded) {
            0 => String::new(),
            k => format!(", {k} not selected"),
        },
        match count(Action::Blocked) {
            0 => String::new(),
            k => format!(", {k} blocked (the deployment would exit 1)"),
        },
    ));
    for w in decisions.iter().flat_map(|d| &d.warnings) {
        console.warn(w);
    }
}

fn decision_json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "name": d.step,
        "decision": d.action.as_str(),
        "reasons": d.reasons,
        "waits_on": d.waits_on,
        "refreshed": d.refreshed,
        "drift": d.drift,
        "warnings": d.warnings,
        "dependency_hash": d.fingerprint.combined,
    })
}
