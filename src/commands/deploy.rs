//! `stepwise` / `stepwise deploy`: plan, lock, approval, run the steps, summary.

use crate::app::deploy::{
    approved, decide, execute, finish, plan_options, publish, refresh_decisions, run_id, run_meta,
    summarize,
};
use crate::app::project::{Project, StateTarget};
use crate::app::show::{print_gone, print_not_checked, print_plan, print_summary};
use crate::cli::Cli;
use crate::decide::plan::{self, Action, Decision};
use crate::present::summary::RunSummary;
use crate::run::executor::Runner;
use crate::state::{State, StateStore};
use crate::util::error::exit;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(&cli.load_options(), true)?;
    let d = &p.deploy;
    let (dry_run, auto_approve) = (d.dry_run, d.auto_approve);
    // Bad names and flags fail before the lock is taken.
    plan_options(&p, d, d.resume)?;
    if !dry_run {
        if d.reset_state {
            p.confirm_protected(&cli.load_options(), "--reset-state clears its state")?;
        }
        if d.force_all {
            p.confirm_protected(&cli.load_options(), "--force-all runs every step")?;
        }
    }
    let store = p.store()?;

    // The lock is held for the whole run; a dry run writes nothing and takes none.
    let _lock = if dry_run {
        None
    } else {
        Some(store.lock(cli.global.lock_timeout)?)
    };
    let mut state = store.load()?;
    if d.reset_state {
        state = reset_state(&p, store.as_ref(), dry_run)?;
    }
    let salt = state.secret_salt();
    let (mut decisions, opts) = decide(&p, d, &state, Some(&salt))?;
    let refresh = d.refresh;
    if refresh {
        refresh_decisions(&p, d, store.as_ref(), &state, &mut decisions, &opts)?;
        if !dry_run {
            record_refreshed(store.as_ref(), &mut state, &decisions)?;
        }
    }
    print_plan(&p.console, &decisions);
    if refresh {
        print_not_checked(&p, &decisions);
    }
    print_gone(&p.console, &p, &state);
    let output = cli.global.output;
    if !decisions
        .iter()
        .any(|d| matches!(d.action, Action::Run | Action::Maybe))
    {
        p.hash_cache.save();
        let code = plan::expected_exit(&decisions);
        let report = Runner::nothing_ran(&decisions);
        if code == exit::OK {
            p.console.line("Nothing to do.");
        } else {
            print_summary(&p.console, &report, dry_run);
        }
        let now = crate::util::clock::now();
        let meta = run_meta(&p, run_id(), now.clone(), now);
        let mut summary = RunSummary::of_run(&p.steps, &decisions, &report, &meta, dry_run, code);
        finish(&p, &mut summary, &report, dry_run, output.into())?;
        return Ok(code);
    }
    // The cost estimate (`deployment.show_cost`) and the budget, before anything runs.
    let cost = (d.show_cost || p.config.settings.cost.budget_monthly.is_some())
        .then(|| crate::app::cost::estimate(&p, d, store.as_ref(), &state));
    if let Some(doc) = &cost {
        if d.show_cost {
            crate::app::cost::print(&p.console, doc);
        }
        crate::app::cost::check_budget(&p, d, doc)?;
    }
    if !dry_run && !auto_approve && !approved(&p, "Run these steps?")? {
        return Ok(exit::STEP_FAILED);
    }
    let executed = execute(&p, d, store.as_ref(), &decisions, state, dry_run)?;
    let (code, mut summary) = summarize(&p, &decisions, &executed, dry_run);
    let report = &executed.report;
    if let Some(doc) = &cost {
        summary.cost = Some(crate::present::summary::CostLine {
            currency: doc.currency.clone(),
            monthly_total: doc.monthly_total,
            delta_monthly: doc.delta_monthly,
        });
        // Recorded at a successful deployment: the next estimate's change is against it.
        if code == exit::OK && !dry_run {
            if let Err(e) = crate::app::cost::record(store.as_ref(), doc) {
                p.console
                    .warn(&format!("the cost estimate was not recorded: {e:#}"));
            }
        }
    }
    publish(&p, &mut summary, report, dry_run, output.into())?;
    Ok(code)
}

/// `--reset-state`: the state backed up and cleared (in a dry run, only said); the state the
/// deployment starts from.
fn reset_state(p: &Project, store: &dyn StateStore, dry_run: bool) -> Result<State> {
    if dry_run {
        p.console
            .line("dry run: the state would be backed up and cleared");
    } else {
        if let Some(b) = store.backup()? {
            p.console.line(&format!("state backed up to {b}"));
        }
        store.save(&State::default())?;
    }
    Ok(State::default())
}

/// `--refresh`: the last successful refresh of each step that was checked and found as
/// deployed, kept in its record.
fn record_refreshed(
    store: &dyn StateStore,
    state: &mut State,
    decisions: &[Decision],
) -> Result<()> {
    let now = crate::util::clock::now();
    let mut touched = false;
    for dec in decisions
        .iter()
        .filter(|x| x.refreshed && x.drift.is_empty())
    {
        if let Some(rec) = state.steps.get_mut(&dec.step) {
            rec.extra.insert(
                "refreshed_at".into(),
                serde_json::Value::String(now.clone()),
            );
            touched = true;
        }
    }
    if touched {
        state.last_updated = now;
        store.save(state)?;
    }
    Ok(())
}
