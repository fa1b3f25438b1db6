//! What a run did: how each step ended (`Outcome`, `StepResult`), when it ran and what it ran
//! (`StepRun`), and the whole run (`RunOutcome`), for the summary, `--output json`, the run
//! report and notifications.

use crate::decide::plan::{Action, Decision};
use std::collections::HashMap;
use std::time::Duration;

/// How a step ended in this run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ran,
    Skipped,
    Failed,
    Blocked,
    Interrupted,
    /// Changed but not run (`--resume`) or not selected (`--only`).
    NotRun,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ran => "ran",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Blocked => "blocked",
            Outcome::Interrupted => "interrupted",
            Outcome::NotRun => "pending",
        }
    }
}

#[derive(Debug, Clone)]
pub struct StepResult {
    pub step: String,
    pub outcome: Outcome,
    pub reason: String,
    pub duration: Duration,
}

impl StepResult {
    /// A step that ended without running (skipped, pending, blocked, failed before it started).
    pub fn without_run(step: impl Into<String>, outcome: Outcome, reason: String) -> StepResult {
        StepResult {
            step: step.into(),
            outcome,
            reason,
            duration: Duration::ZERO,
        }
    }

    /// A step that ends as its decision says, without running: skipped, blocked by the plan,
    /// or not run (pending, excluded).
    pub fn of_decision(d: &Decision) -> StepResult {
        let outcome = match d.action {
            Action::Skip => Outcome::Skipped,
            Action::Blocked => Outcome::Blocked,
            _ => Outcome::NotRun,
        };
        StepResult::without_run(d.step.clone(), outcome, d.reasons.join("; "))
    }
}

pub struct RunOutcome {
    pub results: Vec<StepResult>,
    pub wall: Duration,
    /// The signal that interrupted the run.
    pub interrupted: Option<i32>,
    /// Why the run lost its state lock, if it did (it stopped like an interrupted run).
    pub lock_lost: Option<String>,
    /// What each step that started (or was blocked) did in this run, by step name.
    pub runs: HashMap<String, StepRun>,
    /// The outputs the steps mark public, as the state holds them at the end of the run
    /// (`StepSet::public_outputs`).
    pub public_outputs: Vec<crate::decide::step::PublicOutput>,
}

/// What a step did in this run: when it started and ended (offsets from the start of the
/// run; both are the moment it was blocked for a blocked step), the commands it ran and the
/// warnings it gave, masked as on the console.
#[derive(Debug, Clone, Default)]
pub struct StepRun {
    pub start: Duration,
    pub end: Duration,
    pub commands: Vec<String>,
    pub warnings: Vec<String>,
    /// How many times a command of the step was tried again (`advanced.retry_attempts`).
    pub retries: u32,
}

/// How many steps ended each way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub ran: usize,
    pub skipped: usize,
    pub failed: usize,
    pub blocked: usize,
    pub interrupted: usize,
    pub pending: usize,
}

impl RunOutcome {
    /// Every warning the steps gave in this run, `(step, message)`, in the steps' order.
    pub fn warnings(&self) -> Vec<(String, String)> {
        self.results
            .iter()
            .filter_map(|r| self.runs.get(&r.step).map(|run| (&r.step, run)))
            .flat_map(|(step, run)| run.warnings.iter().map(|w| (step.clone(), w.clone())))
            .collect()
    }

    pub fn counts(&self) -> Counts {
        let count = |o| self.results.iter().filter(|r| r.outcome == o).count();
        Counts {
            ran: count(Outcome::Ran),
            skipped: count(Outcome::Skipped),
            failed: count(Outcome::Failed),
            blocked: count(Outcome::Blocked),
            interrupted: count(Outcome::Interrupted),
            pending: count(Outcome::NotRun),
        }
    }

    pub fn failed(&self) -> bool {
        self.results
            .iter()
            .any(|r| matches!(r.outcome, Outcome::Failed | Outcome::Blocked))
    }
}

impl StepRun {
    /// A step that did not run, at `at` (blocked).
    pub(super) fn at(at: Duration) -> StepRun {
        StepRun {
            start: at,
            end: at,
            ..Default::default()
        }
    }
}
