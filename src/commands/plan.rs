//! `stepwise plan`: what a deployment would run, and why; the plan as printed before a run.

use crate::app::deploy::planned;
use crate::app::project::{Project, StateTarget};
use crate::app::show::{print_gone, print_not_checked, print_plan};
use crate::cli::{Cli, OutputFormat};
use crate::decide::plan::{self, Decision};
use crate::util::console::{self};
use anyhow::Result;

/// `plan`, and with `--detailed-exitcode` its code as a pipeline reads it: 0 nothing would
/// run, 2 something would, 1 blocked, refused or failed.
pub fn run_detailed(cli: &Cli, cost: bool, detailed: bool) -> Result<i32> {
    if !detailed {
        return plan(cli, cost).map(|(code, _)| code);
    }
    match plan(cli, cost) {
        Ok((code, _)) if code != crate::util::error::exit::OK => Ok(1),
        Ok((_, true)) => Ok(2),
        Ok((code, false)) => Ok(code),
        Err(e) => Err(crate::util::error::Failure::caused_by(
            crate::util::error::Kind::Refused,
            "plan --detailed-exitcode: no plan (exit 1)",
            e,
        )
        .into()),
    }
}

/// Prints the plan; returns the code the deployment would end with if every step that runs
/// succeeds, and whether it would run anything.
fn plan(cli: &Cli, cost: bool) -> Result<(i32, bool)> {
    let p = Project::load(&cli.load_options(), true)?;
    let (state, decisions) = planned(&p, &p.deploy)?;
    let refresh = p.deploy.refresh;
    // The code the deployment would end with, if every step that runs succeeds.
    let mut code = plan::expected_exit(&decisions);
    let would_run = decisions
        .iter()
        .any(|d| matches!(d.action, plan::Action::Run | plan::Action::Maybe));
    // The estimate (`--cost`, `deployment.show_cost`), and the budget a deployment checks.
    let show_cost = cost || p.deploy.show_cost;
    let estimate = (show_cost || p.config.settings.cost.budget_monthly.is_some())
        .then(|| -> Result<_> {
            let store = p.store()?;
            Ok(crate::app::cost::estimate(
                &p,
                &p.deploy,
                store.as_ref(),
                &state,
            ))
        })
        .transpose()?;
    if let Some(doc) = &estimate {
        if let Err(e) = crate::app::cost::check_budget(&p, &p.deploy, doc) {
            p.console
                .warn(&format!("a deployment would be refused: {e}"));
            code = code.max(crate::util::error::exit::STEP_FAILED);
        }
    }
    let estimate = estimate.filter(|_| show_cost);
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
            "cost": estimate,
            "exit_code": code,
        });
        console::print_json(&doc);
        return Ok((code, would_run));
    }
    print_plan(&p.console, &decisions);
    if refresh {
        print_not_checked(&p, &decisions);
    }
    print_gone(&p.console, &p, &state);
    if let Some(doc) = &estimate {
        crate::app::cost::print(&p.console, doc);
    }
    if cli.global.output == OutputFormat::Markdown {
        print!(
            "{}",
            p.masker.mask(&crate::present::markdown::plan(&decisions))
        );
        if let Some(doc) = &estimate {
            print!("\n{}", p.masker.mask(&crate::app::cost::markdown(doc)));
        }
    }
    Ok((code, would_run))
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
        "images": d.images.iter().map(|i| serde_json::json!({
            "tag": i.tag, "rebuild": i.rebuild, "why": i.why,
        })).collect::<Vec<_>>(),
        "dependency_hash": d.fingerprint.combined,
    })
}
