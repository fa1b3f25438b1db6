//! `stepwise rollback [RUN_ID]`: plan, lock, approval, each step's `fn rollback(target)`,
//! summary, report, notifications (`app::rollback`).

use crate::app::deploy::{approved, execute_as, publish, summarize};
use crate::app::project::{Project, StateTarget};
use crate::app::rollback::{plan, plan_json, print_plan, RollbackOptions};
use crate::cli::{Cli, OutputFormat};
use crate::util::error::exit;
use anyhow::Result;

pub fn run(cli: &Cli, o: RollbackOptions) -> Result<i32> {
    let p = Project::load(&cli.load_options(), true)?;
    let d = &p.deploy;
    let dry_run = d.dry_run;
    let store = p.store()?;
    let _lock = if dry_run {
        None
    } else {
        Some(store.lock(cli.global.lock_timeout)?)
    };
    let state = store.load()?;
    let Some(plan) = plan(&p, store.as_ref(), &state, &o)? else {
        return nothing(&p, cli, None, "no earlier successful run whose outputs differ from what is deployed now (see `stepwise state history`)");
    };
    print_plan(&p.console, &plan);
    if plan.to_roll_back() == 0 {
        let why = format!(
            "no step with fn rollback(target) deployed anything different from {}",
            plan.target.run
        );
        return nothing(&p, cli, Some(plan_json(&plan)), &why);
    }
    if !dry_run {
        let what = format!("a rollback to {} changes what is deployed", plan.target.run);
        p.confirm_protected(&cli.load_options(), &what)?;
        if !d.auto_approve && !approved(&p, "Roll these steps back?")? {
            return Ok(exit::STEP_FAILED);
        }
    }
    let decisions = plan.decisions.clone();
    let target = Some(plan.target.clone());
    let executed = execute_as(&p, d, store.as_ref(), &decisions, state, dry_run, target)?;
    let (code, mut summary) = summarize(&p, &decisions, &executed, dry_run);
    let report = &executed.report;
    // Each step's part in the rollback (rollback, unchanged, cannot roll back, new).
    for (s, d) in summary.steps.iter_mut().zip(&plan.steps) {
        s.decision = d.action.as_str().to_string();
    }
    publish(&p, &mut summary, report, dry_run, cli.global.output.into())?;
    Ok(code)
}

/// Nothing to roll back: said on the console (and as a document with `--output`), exit 0.
fn nothing(p: &Project, cli: &Cli, plan: Option<serde_json::Value>, why: &str) -> Result<i32> {
    p.console.line(&format!("Nothing to roll back: {why}."));
    match cli.global.output {
        OutputFormat::Json => crate::util::console::print_json(&serde_json::json!({
            "command": "rollback",
            "rollback": plan,
            "nothing_to_do": why,
            "exit_code": exit::OK,
        })),
        OutputFormat::Markdown => print!("### stepwise rollback: nothing to do\n\n{why}.\n"),
        OutputFormat::Human => {}
    }
    Ok(exit::OK)
}
