//! `stepwise plan`: what a deployment would run, and why; the plan as printed before a run.

use super::plan_options;
use crate::cli::{Cli, OutputFormat};
use crate::error::exit;
use crate::plan::{self, Action, Decision};
use crate::project::Project;
use crate::report::{self, Console};
use crate::state::State;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, true)?;
    let resume = cli.deploy.resume || p.config.settings.deployment.resume;
    let opts = plan_options(&p, &cli.deploy, resume)?;
    let state = if cli.deploy.reset_state {
        State::default()
    } else {
        p.store()?.load()?
    };
    let decisions = plan::decide(
        &p.steps,
        &state,
        p.fingerprints(state.salt())?,
        &opts,
        &p.read_context(state.salt()),
    );
    if cli.global.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "command": "plan",
            "state": p.state_location,
            "steps": decisions.iter().map(decision_json).collect::<Vec<_>>(),
            "exit_code": exit::OK,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(exit::OK);
    }
    print_plan(&p.console, &decisions);
    Ok(exit::OK)
}

pub(crate) fn print_plan(console: &Console, decisions: &[Decision]) {
    let width = decisions.iter().map(|d| d.step.len()).max().unwrap_or(0);
    for d in decisions {
        let mark = match d.action {
            Action::Run => console.paint(report::GREEN, "run    "),
            Action::Skip => console.paint(report::DIM, "skip   "),
            Action::Pending => console.paint(report::YELLOW, "pending"),
            Action::Excluded => console.paint(report::DIM, "exclude"),
            Action::Maybe => console.paint(report::YELLOW, "maybe  "),
        };
        console.line(&format!(
            "  {mark} {:width$}  {}",
            d.step,
            d.reasons.join("; ")
        ));
    }
    let count = |a| decisions.iter().filter(|d| d.action == a).count();
    console.line(&format!(
        "Plan: {} to run, {} up to date{}{}",
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
    ));
}

fn decision_json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "name": d.step,
        "decision": d.action.as_str(),
        "reasons": d.reasons,
        "waits_on": d.waits_on,
        "dependency_hash": d.fingerprint.combined,
    })
}
