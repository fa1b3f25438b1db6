//! What `stepwise rollback` does with each step: roll it back to the target run's outputs,
//! leave it (same outputs), or say it cannot (no `fn rollback(target)`), and which steps are
//! gone or new since that run.

use crate::decide::step::StepSet;
use crate::state::State;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RollbackAction {
    /// The outputs differ and the step has `fn rollback(target)`.
    RollBack,
    /// The step's outputs are the target's.
    Unchanged,
    /// The outputs differ and the step has no `fn rollback(target)` (e.g. migrations).
    CannotRollBack,
    /// The step did not exist (or never deployed) in the target run.
    New,
    /// The step deployed in the target run but no longer exists.
    Gone,
}

impl RollbackAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RollbackAction::RollBack => "rollback",
            RollbackAction::Unchanged => "unchanged",
            RollbackAction::CannotRollBack => "cannot roll back",
            RollbackAction::New => "new",
            RollbackAction::Gone => "gone",
        }
    }
}

/// One step's part in a rollback, with the reason shown in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackDecision {
    pub step: String,
    pub action: RollbackAction,
    pub reason: String,
}

/// Each step of `steps` (in order), then each step the target deployed that no longer exists.
pub fn plan(steps: &StepSet, current: &State, target: &State, run: &str) -> Vec<RollbackDecision> {
    let mut out: Vec<RollbackDecision> = steps
        .steps
        .iter()
        .map(|s| {
            let deployed_then = target
                .steps
                .get(&s.name)
                .is_some_and(|r| r.status.deployed());
            let (action, reason) = if !deployed_then {
                (
                    RollbackAction::New,
                    format!("not deployed in {run}: left as it is"),
                )
            } else if current.outputs(&s.name) == target.outputs(&s.name) {
                (RollbackAction::Unchanged, format!("outputs as in {run}"))
            } else if s.has_rollback {
                (
                    RollbackAction::RollBack,
                    format!("outputs differ from {run}"),
                )
            } else {
                (
                    RollbackAction::CannotRollBack,
                    format!("outputs differ from {run}, and the step has no fn rollback(target)"),
                )
            };
            RollbackDecision {
                step: s.name.clone(),
                action,
                reason,
            }
        })
        .collect();
    for (name, r) in &target.steps {
        if steps.index(name).is_none() && r.status.deployed() {
            out.push(RollbackDecision {
                step: name.clone(),
                action: RollbackAction::Gone,
                reason: format!("deployed in {run}, no longer a step: left as it is"),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn steps(defs: &[(&str, bool)]) -> StepSet {
        let scripts: Vec<(&str, &str, &str)> = defs
            .iter()
            .map(|(name, rollback)| {
                let more = if *rollback {
                    "fn rollback(target) { }"
                } else {
                    ""
                };
                (*name, "", more)
            })
            .collect();
        StepSet::of_scripts(&scripts)
    }

    fn state(records: serde_json::Value) -> State {
        serde_json::from_value(json!({ "version": "3.0", "steps": records })).unwrap()
    }

    #[test]
    fn each_step_is_rolled_back_left_refused_new_or_gone() {
        let set = steps(&[
            ("apps", true),
            ("migrations", false),
            ("network", true),
            ("added", true),
            ("failed_then", true),
        ]);
        let done = |v: &str| json!({ "status": "completed", "outputs": { "v": v } });
        let current = state(json!({
            "apps": done("B"), "migrations": done("2"), "network": done("n"),
            "added": done("x"), "failed_then": done("y"),
        }));
        let target = state(json!({
            "apps": done("A"), "migrations": done("1"), "network": done("n"),
            "failed_then": { "status": "failed", "outputs": { "v": "z" } },
            "removed": done("r"),
        }));
        let got: Vec<(String, &str)> = plan(&set, &current, &target, "R1")
            .into_iter()
            .map(|d| (d.step, d.action.as_str()))
            .collect();
        let want = [
            ("apps", "rollback"),
            ("migrations", "cannot roll back"),
            ("network", "unchanged"),
            ("added", "new"),
            ("failed_then", "new"),
            ("removed", "gone"),
        ];
        let want: Vec<(String, &str)> = want.iter().map(|(s, a)| (s.to_string(), *a)).collect();
        assert_eq!(got, want);
    }
}
