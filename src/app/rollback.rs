//! `stepwise rollback`: return what the steps deployed to an earlier run's outputs. The plan
//! (which steps roll back, which cannot), then a run of the steps' `fn rollback(target)` along
//! `needs`, through the same executor as a deployment (lock, dry run, failures blocking
//! dependents, interrupts, report, notifications).

use crate::app::project::Project;
use crate::decide::plan::{Action, Decision};
use crate::decide::rollback::{self, RollbackAction, RollbackDecision};
use crate::state::runs::{self, Target};
use crate::state::{State, StateStore};
use crate::util::console::Console;
use crate::util::error::Kind;
use anyhow::Result;
use std::sync::Arc;

/// What `stepwise rollback` was asked for.
#[derive(Debug, Clone, Default)]
pub struct RollbackOptions {
    /// The run to return to (`None`: the last successful one whose outputs differ).
    pub run: Option<String>,
    /// Refuse the whole rollback when a step that changed cannot roll back.
    pub all_or_nothing: bool,
}

/// A rollback, decided: the target, each step's part (gone steps included), and the
/// executor's decisions (one per step: run its `rollback()`, or leave it).
pub struct RollbackPlan {
    pub target: Arc<Target>,
    pub steps: Vec<RollbackDecision>,
    pub decisions: Vec<Decision>,
}

impl RollbackPlan {
    /// The steps that will roll back.
    pub fn to_roll_back(&self) -> usize {
        self.count(RollbackAction::RollBack)
    }

    pub fn count(&self, a: RollbackAction) -> usize {
        self.steps.iter().filter(|d| d.action == a).count()
    }

    /// The warning for steps whose outputs differ but that have no `fn rollback(target)`.
    pub fn cannot(&self) -> Vec<&RollbackDecision> {
        self.steps
            .iter()
            .filter(|d| d.action == RollbackAction::CannotRollBack)
            .collect()
    }
}

/// Decides a rollback of the current `state` (`None`: no earlier run to return to).
pub fn plan(
    p: &Project,
    store: &dyn StateStore,
    state: &State,
    o: &RollbackOptions,
) -> Result<Option<RollbackPlan>> {
    let Some(target) = runs::target(store, o.run.as_deref(), state)? else {
        return Ok(None);
    };
    let steps = rollback::plan(&p.steps, state, &target.state, &target.run);
    let decisions = p
        .steps
        .steps
        .iter()
        .zip(&steps)
        .map(|(s, d)| Decision {
            step: s.name.clone(),
            action: if d.action == RollbackAction::RollBack {
                Action::Run
            } else {
                Action::Skip
            },
            reasons: vec![d.reason.clone()],
            fingerprint: Default::default(),
            forced: false,
            waits_on: Vec::new(),
            refreshed: false,
            drift: Vec::new(),
            up_to_date: true,
            warnings: Vec::new(),
            images: Vec::new(),
        })
        .collect();
    let plan = RollbackPlan {
        target: Arc::new(target),
        steps,
        decisions,
    };
    if o.all_or_nothing && !plan.cannot().is_empty() {
        let names: Vec<&str> = plan.cannot().iter().map(|d| d.step.as_str()).collect();
        return Err(Kind::Refused.error(format!(
            "--all-or-nothing: {} cannot roll back to {} (no fn rollback(target)); nothing was done",
            names.join(", "),
            plan.target.run
        )));
    }
    Ok(Some(plan))
}

/// Prints the plan: the target, one line per step, the warning for steps that cannot roll
/// back.
pub fn print_plan(console: &Console, plan: &RollbackPlan) {
    use crate::util::console::{DIM, GREEN, YELLOW};
    console.line(&format!(
        "Rollback to run {} (ended {}):",
        plan.target.run, plan.target.time
    ));
    for d in &plan.steps {
        let (mark, colour) = match d.action {
            RollbackAction::RollBack => ("↩", GREEN),
            RollbackAction::CannotRollBack => ("!", YELLOW),
            _ => ("·", DIM),
        };
        console.line(&format!(
            "  {} {} {} ({})",
            console.paint(colour, mark),
            d.step,
            d.action.as_str(),
            d.reason
        ));
    }
    for d in plan.cannot() {
        console.warn(&format!(
            "{} cannot roll back: its outputs differ from {} and it has no fn rollback(target); it stays as deployed now",
            d.step, plan.target.run
        ));
    }
}

/// The plan as JSON (for `--output json` when nothing runs, and inside the run's document).
pub fn plan_json(plan: &RollbackPlan) -> serde_json::Value {
    serde_json::json!({
        "target": { "run": plan.target.run, "time": plan.target.time },
        "steps": plan.steps.iter().map(|d| serde_json::json!({
            "name": d.step,
            "action": d.action.as_str(),
            "reason": d.reason,
        })).collect::<Vec<_>>(),
    })
}
