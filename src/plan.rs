//! The skip decision: for each step, run or skip, and why.

use crate::fingerprint::{describe, Fingerprint};
use crate::state::{State, Status};
use crate::step::StepSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Will run.
    Run,
    /// Completed and unchanged.
    Skip,
    /// Changed, but `--resume` runs only failed, interrupted and new steps.
    Pending,
    /// Not selected (`--only`).
    Excluded,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Skip => "skip",
            Action::Pending => "pending",
            Action::Excluded => "excluded",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Decision {
    pub step: String,
    pub action: Action,
    /// Why, in words the user reads (at least one).
    pub reasons: Vec<String>,
    pub fingerprint: Fingerprint,
    /// Forced (`--force-all`, `--force-step`): also rebuilds images whose inputs did not change.
    pub forced: bool,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub force_all: bool,
    pub force_steps: Vec<String>,
    pub resume: bool,
    /// Empty: every step.
    pub only: Vec<String>,
}

/// Decides every step, in the order of `steps`. `fingerprints[i]` belongs to `steps.steps[i]`.
pub fn decide(
    steps: &StepSet,
    state: &State,
    fingerprints: Vec<Fingerprint>,
    opts: &PlanOptions,
) -> Vec<Decision> {
    steps
        .steps
        .iter()
        .zip(fingerprints)
        .map(|(step, fp)| {
            let (action, reasons) = decide_one(&step.name, state, &fp, opts);
            Decision {
                step: step.name.clone(),
                action,
                reasons,
                fingerprint: fp,
                forced: opts.force_all || opts.force_steps.iter().any(|s| s == &step.name),
            }
        })
        .collect()
}

fn decide_one(
    name: &str,
    state: &State,
    fp: &Fingerprint,
    opts: &PlanOptions,
) -> (Action, Vec<String>) {
    let record = state.steps.get(name);
    let changes = match record {
        Some(r) if r.status == Status::Completed => changes(r, fp),
        _ => Vec::new(),
    };
    let (action, reasons) = if opts.force_all {
        (Action::Run, vec!["forced (--force-all)".to_string()])
    } else if opts.force_steps.iter().any(|s| s == name) {
        (Action::Run, vec!["forced (--force-step)".to_string()])
    } else {
        match record {
            None => (Action::Run, vec!["never ran".to_string()]),
            Some(r) if r.status == Status::Failed => {
                (Action::Run, vec!["failed before".to_string()])
            }
            Some(r) if r.status == Status::Interrupted => {
                (Action::Run, vec!["interrupted".to_string()])
            }
            Some(_) if !changes.is_empty() => {
                if opts.resume {
                    let mut c = changes;
                    c.push("pending: --resume runs only failed, interrupted and new steps".into());
                    (Action::Pending, c)
                } else {
                    (Action::Run, changes)
                }
            }
            Some(_) => (Action::Skip, vec!["up to date".to_string()]),
        }
    };
    if !opts.only.is_empty() && !opts.only.iter().any(|s| s == name) {
        let mut r = vec!["not selected (--only)".to_string()];
        if action != Action::Skip {
            r.extend(reasons);
        }
        return (Action::Excluded, r);
    }
    (action, reasons)
}

/// What changed between a completed record and a new fingerprint, one reason per dependency.
pub fn changes(record: &crate::state::StepRecord, fp: &Fingerprint) -> Vec<String> {
    let mut out = Vec::new();
    if record.dependencies.is_empty() {
        if record.dependency_hash.as_deref() != Some(fp.combined.as_str()) {
            out.push("dependencies changed".to_string());
        }
        return out;
    }
    for (k, v) in &fp.dependencies {
        match record.dependencies.get(k) {
            None => out.push(format!("new dependency {}", describe(k))),
            Some(old) if old != v => out.push(format!("{} changed", describe(k))),
            _ => {}
        }
    }
    for k in record.dependencies.keys() {
        if !fp.dependencies.contains_key(k) {
            out.push(format!("dependency {} removed", describe(k)));
        }
    }
    if out.is_empty() && record.dependency_hash.as_deref() != Some(fp.combined.as_str()) {
        out.push("dependencies changed".to_string());
    }
    out
}
