//! The bookkeeping of a run: each step's result and what it did (`StepRun`), the decisions
//! made when a step became ready, and the `RunOutcome` they make at the end.

use super::outcome::{Outcome, RunOutcome, StepResult, StepRun};
use super::schedule::{Node, Schedule};
use crate::decide::plan::{Action, Decision};
use crate::decide::step::StepSet;
use crate::sys::process;
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What a step's thread reports when the step ended.
pub(super) struct StepRecordUpdate {
    /// When the step started, and its commands and warnings.
    pub started: Instant,
    pub run: StepRun,
    pub outcome: Outcome,
    pub reason: String,
    pub duration: Duration,
    pub save_error: Option<anyhow::Error>,
}

/// The results of a run so far.
pub(super) struct Tally {
    /// When the run started: what each step did is dated from here.
    started: Instant,
    results: Vec<Option<StepResult>>,
    runs: HashMap<String, StepRun>,
    /// Decisions made when a pending step became ready (it ran, or its outputs were
    /// unchanged).
    pub late: Vec<Option<Decision>>,
}

impl Tally {
    /// The results of a run started at `started`: a step that neither runs nor is checked
    /// again when it starts (`recheck`) has its result from its decision already.
    pub fn new(decisions: &[Decision], recheck: &[bool], started: Instant) -> Tally {
        let n = decisions.len();
        let mut results: Vec<Option<StepResult>> = vec![None; n];
        for (i, d) in decisions.iter().enumerate() {
            if !matches!(d.action, Action::Run | Action::Maybe) && !recheck[i] {
                results[i] = Some(StepResult::of_decision(d));
            }
        }
        Tally {
            started,
            results,
            runs: HashMap::new(),
            late: vec![None; n],
        }
    }

    /// Whether any of `steps` ran in this run.
    pub fn any_ran(&self, steps: &[usize]) -> bool {
        steps.iter().any(|&j| {
            self.results[j]
                .as_ref()
                .is_some_and(|r| r.outcome == Outcome::Ran)
        })
    }

    /// Step `i` (`name`) is blocked, now.
    pub fn blocked(&mut self, i: usize, name: &str, why: String) {
        self.results[i] = Some(StepResult::without_run(name, Outcome::Blocked, why));
        self.runs
            .insert(name.to_string(), StepRun::at(self.started.elapsed()));
    }

    /// Step `i` ends without running as `d` decided it (skipped; pending in a dry run): the
    /// steps after it may start.
    pub fn ended_unrun(&mut self, sched: &mut Schedule, i: usize, d: &Decision, outcome: Outcome) {
        sched.decided(i, Node::Satisfied);
        self.results[i] = Some(StepResult::without_run(
            d.step.clone(),
            outcome,
            d.reasons.join("; "),
        ));
    }

    /// Step `i` (`name`) failed before it started (its fingerprint could not be taken).
    pub fn failed_at_start(&mut self, sched: &mut Schedule, i: usize, name: &str, why: String) {
        sched.decided(i, Node::Failed);
        self.results[i] = Some(StepResult::without_run(name, Outcome::Failed, why));
    }

    /// Step `i` (`name`) ended on its thread: its result and what it did; the error of a
    /// result that could not be recorded in the state.
    pub fn finished(
        &mut self,
        i: usize,
        name: String,
        update: StepRecordUpdate,
    ) -> Option<anyhow::Error> {
        let start = update.started.saturating_duration_since(self.started);
        self.runs.insert(
            name.clone(),
            StepRun {
                start,
                end: start + update.duration,
                ..update.run
            },
        );
        self.results[i] = Some(StepResult {
            step: name,
            outcome: update.outcome,
            reason: update.reason,
            duration: update.duration,
        });
        update.save_error
    }

    /// The report of the run: steps never started (after a failure or an interrupt) are
    /// blocked, saying why.
    pub fn report(self, steps: &StepSet) -> RunOutcome {
        let Tally {
            started,
            mut results,
            mut runs,
            ..
        } = self;
        let interrupted = process::interrupted();
        let lock_lost = process::lock_lost();
        let wall = started.elapsed();
        for (i, slot) in results.iter_mut().enumerate() {
            if slot.is_none() {
                runs.insert(steps.steps[i].name.clone(), StepRun::at(wall));
                let why = if lock_lost.is_some() {
                    "not started: the run lost its state lock"
                } else if interrupted.is_some() {
                    "not started: the run was interrupted"
                } else {
                    "not started: an earlier step failed (use --keep-going to run independent steps)"
                };
                *slot = Some(StepResult::without_run(
                    steps.steps[i].name.clone(),
                    Outcome::Blocked,
                    why.to_string(),
                ));
            }
        }
        RunOutcome {
            results: results
                .into_iter()
                .map(|r| r.expect("every step has a result"))
                .collect(),
            wall,
            interrupted,
            lock_lost,
            runs,
            public_outputs: Vec::new(),
        }
    }
}
