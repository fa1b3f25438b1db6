//! The skip decision: for each step, run or skip, and why.

use crate::config::Config;
use crate::decide::fingerprint::{describe, Fingerprint};
use crate::decide::step::StepSet;
use crate::state::reads::{self, DigestMemo};
use crate::state::{State, Status};

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
    /// Up to date unless outputs it read change: decided when the steps it waits on (which
    /// run in this deployment) have finished ("known after apply").
    Maybe,
    /// Would run, but a step it needs will not be up to date (pending, not selected and not
    /// up to date, or itself blocked): the deployment blocks it (and exits 1).
    Blocked,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Run => "run",
            Action::Skip => "skip",
            Action::Pending => "pending",
            Action::Excluded => "excluded",
            Action::Maybe => "pending",
            Action::Blocked => "blocked",
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
    /// `Maybe`: the steps whose outputs decide it.
    pub waits_on: Vec<String>,
    /// `--refresh` ran its `verify()`.
    pub refreshed: bool,
    /// What `verify()` reported as drifted (it then runs).
    pub drift: Vec<String>,
    /// Up to date whatever the flags say: a step that is not selected (`--only`) satisfies the
    /// steps that need it only then.
    pub up_to_date: bool,
    /// What the user must hear about this decision (a cyclic read: [`CyclicRead::warning`]).
    pub warnings: Vec<String>,
    /// A `docker_build` step that would run: which of the images it built last time would be
    /// rebuilt (filled in by the application layer, which hashes their files).
    pub images: Vec<super::images::ImagePlan>,
}

#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    pub force_all: bool,
    pub force_steps: Vec<String>,
    pub resume: bool,
    /// Empty: every step.
    pub only: Vec<String>,
}

/// What decisions compare recorded reads against: the config and the state's salt.
pub struct ReadContext<'a> {
    pub config: &'a Config,
    pub salt: &'a str,
}

/// Decides every step, in the order of `steps`. `fingerprints[i]` belongs to `steps.steps[i]`.
/// A step is compared on what it declares (its fingerprint) and on what it read when it last
/// completed (recorded reads: config keys and env vars it did not declare, other steps'
/// outputs).
pub fn decide(
    steps: &StepSet,
    state: &State,
    fingerprints: Vec<Fingerprint>,
    opts: &PlanOptions,
    reads_ctx: &ReadContext,
) -> anyhow::Result<Vec<Decision>> {
    let memo = DigestMemo::default();
    let mut decisions: Vec<Decision> = steps
        .steps
        .iter()
        .zip(fingerprints)
        .map(|(step, fp)| {
            let input_changes = || match state.steps.get(&step.name).and_then(|r| r.reads.as_ref())
            {
                Some(r) => reads::changed_inputs(
                    r,
                    &step.config,
                    &step.env,
                    reads_ctx.config,
                    &memo,
                    reads_ctx.salt,
                ),
                None => Vec::new(),
            };
            // `--only`: a step that is not selected is never forced.
            let selected = opts.only.is_empty() || opts.only.iter().any(|s| s == &step.name);
            let (action, reasons) =
                decide_one(&step.name, state, &fp, opts, selected, &input_changes);
            Decision {
                step: step.name.clone(),
                action,
                reasons,
                fingerprint: fp,
                forced: selected
                    && (opts.force_all || opts.force_steps.iter().any(|s| s == &step.name)),
                waits_on: Vec::new(),
                refreshed: false,
                drift: Vec::new(),
                up_to_date: false,
                warnings: Vec::new(),
                images: Vec::new(),
            }
        })
        .collect();
    settle(steps, state, &mut decisions, opts)?;
    for c in cyclic_reads(steps, state) {
        if let Some(i) = steps.index(&c.step) {
            decisions[i].warnings.push(c.warning());
        }
    }
    for d in decisions.iter_mut() {
        d.up_to_date = d.action == Action::Skip;
    }
    // `--only`: what is not selected does not run.
    if !opts.only.is_empty() {
        for d in &mut decisions {
            if !opts.only.iter().any(|s| s == &d.step) {
                let mut r = vec![NOT_SELECTED.to_string()];
                if d.action != Action::Skip {
                    r.append(&mut d.reasons);
                }
                d.action = Action::Excluded;
                d.reasons = r;
                d.waits_on.clear();
            }
        }
    }
    block(steps, &mut decisions);
    Ok(decisions)
}

/// Settles decisions that depend on others: steps that read outputs of a step that (may) run
/// now are pending on it; declared files missing at plan time are decided at the step's start
/// when a step before it runs now (else an error). Called again after `--refresh` changed
/// decisions.
pub fn settle(
    steps: &StepSet,
    state: &State,
    decisions: &mut [Decision],
    opts: &PlanOptions,
) -> anyhow::Result<()> {
    // Outputs read from other steps: a step that would be skipped waits on the steps whose
    // outputs it read and that (may) run now; otherwise it compares them with the state.
    // Declared files that do not exist yet: decided when the step starts if an ancestor that
    // runs now may create them. Steps are few: iterate to a fixpoint.
    // A read against the direction of `needs` cannot be waited on (the step read would wait
    // on its reader): it is compared with the stored outputs.
    let cyclic = cyclic_reads(steps, state);
    loop {
        let mut changed = false;
        for i in 0..decisions.len() {
            if !decisions[i].fingerprint.missing.is_empty()
                && matches!(decisions[i].action, Action::Run | Action::Skip)
                && decisions[i].waits_on.is_empty()
            {
                changed |= wait_for_missing(steps, state, decisions, i);
                continue;
            }
            changed |= wait_for_outputs(steps, state, decisions, i, opts, &cyclic);
        }
        if !changed {
            break;
        }
    }
    // A declared file that does not exist and that no step running before it can create.
    for (i, d) in decisions.iter().enumerate() {
        if let Some(m) = d.fingerprint.missing.first() {
            if d.waits_on.is_empty() && d.action != Action::Excluded {
                let s = &steps.steps[i];
                return Err(crate::util::error::Kind::Script.error(format!(
                    "step `{}` ({}:{}): declared file {m} does not exist",
                    s.name, s.file, s.decl_line
                )));
            }
        }
    }
    Ok(())
}

/// The ancestors of step `i` that (may) run now, by name.
fn running_ancestors(steps: &StepSet, decisions: &[Decision], i: usize) -> Vec<String> {
    steps
        .ancestors(i)
        .into_iter()
        .filter(|&j| matches!(decisions[j].action, Action::Run | Action::Maybe))
        .map(|j| decisions[j].step.clone())
        .collect()
}

/// Step `i` declares files that do not exist: it waits on its ancestors that run now (they
/// may create them), and when only those files make it run it is decided at its start.
/// Whether the decision changed.
fn wait_for_missing(steps: &StepSet, state: &State, decisions: &mut [Decision], i: usize) -> bool {
    let waits = running_ancestors(steps, decisions, i);
    if waits.is_empty() {
        return false;
    }
    let d = &mut decisions[i];
    let missing = d.fingerprint.missing.join(", ");
    // Only the missing files make it run: whether it must is known at its start.
    let only_missing = d.reasons.iter().all(|r| {
        d.fingerprint
            .missing
            .iter()
            .any(|m| r.contains(m.trim_end_matches('/')))
    });
    let completed = state
        .steps
        .get(&d.step)
        .is_some_and(|r| r.status == Status::Completed);
    if completed && only_missing && !d.forced {
        d.action = Action::Maybe;
        d.reasons = vec![format!(
            "declared {missing} does not exist yet: decided when it starts, after {}",
            waits.join(", ")
        )];
    }
    d.waits_on = waits;
    true
}

/// Skipped step `i` read outputs of other steps: it waits on those that (may) run now (unless
/// the read is `cyclic`), and runs if an output read from the others changed. Whether the
/// decision changed.
fn wait_for_outputs(
    steps: &StepSet,
    state: &State,
    decisions: &mut [Decision],
    i: usize,
    opts: &PlanOptions,
    cyclic: &[CyclicRead],
) -> bool {
    let is_cyclic = |step: &str, upstream: &str| {
        cyclic
            .iter()
            .any(|c| c.step == step && c.upstream == upstream)
    };
    if decisions[i].action != Action::Skip {
        return false;
    }
    let Some(r) = state
        .steps
        .get(&decisions[i].step)
        .and_then(|r| r.reads.as_ref())
    else {
        return false;
    };
    let mut waits = Vec::new();
    let mut reasons = Vec::new();
    for upstream in r.outputs.keys() {
        let may_run = !is_cyclic(&decisions[i].step, upstream)
            && steps
                .index(upstream)
                .is_some_and(|j| matches!(decisions[j].action, Action::Run | Action::Maybe));
        if may_run {
            waits.push(upstream.clone());
        } else {
            reasons.extend(reads::changed_outputs(
                r,
                upstream,
                &state.outputs(upstream),
            ));
        }
    }
    if !reasons.is_empty() {
        let d = &mut decisions[i];
        if opts.resume {
            reasons.push("pending: --resume runs only failed, interrupted and new steps".into());
            d.action = Action::Pending;
        } else {
            d.action = Action::Run;
        }
        d.reasons = reasons;
        true
    } else if !waits.is_empty() {
        let d = &mut decisions[i];
        d.action = Action::Maybe;
        d.reasons = vec![format!("runs if outputs of {} change", waits.join(", "))];
        d.waits_on = waits;
        true
    } else {
        false
    }
}

/// A recorded `outputs()` read against the direction of `needs`: `step` read outputs of
/// `upstream`, and `upstream` depends on `step` (needs it, directly or through other steps, or
/// reads its outputs in turn). Nothing can wait for such a read (the step read would wait on
/// its reader): `step` is decided against the outputs of `upstream` stored now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CyclicRead {
    pub step: String,
    pub upstream: String,
    /// How `upstream` depends on `step`: `b needs a`, `b needs x, x reads outputs of a`.
    pub chain: String,
}

impl CyclicRead {
    /// The warning `plan`, the run and `check` give.
    pub fn warning(&self) -> String {
        format!(
            "{} reads outputs of {}, but {}: a cycle; {} is decided against {}'s stored outputs",
            self.step, self.upstream, self.chain, self.step, self.upstream
        )
    }
}

/// Every recorded `outputs()` read (in the state) that closes a cycle: a read by step `i` of
/// step `u` that `i` does not need (directly or not), where `i` can be reached from `u` along
/// `needs` and recorded output reads. In file order of the reader, then by name.
pub fn cyclic_reads(steps: &StepSet, state: &State) -> Vec<CyclicRead> {
    let n = steps.steps.len();
    let read_of = |k: usize| -> Vec<usize> {
        state
            .steps
            .get(&steps.steps[k].name)
            .and_then(|r| r.reads.as_ref())
            .map(|r| {
                r.outputs
                    .keys()
                    .filter_map(|u| steps.index(u))
                    .filter(|&u| u != k)
                    .collect()
            })
            .unwrap_or_default()
    };
    // Edges from a step to what it depends on: its direct needs, then what it read.
    let edges: Vec<Vec<(usize, bool)>> = (0..n)
        .map(|k| {
            let mut e: Vec<(usize, bool)> = steps.steps[k]
                .needs
                .iter()
                .filter_map(|x| steps.index(x))
                .map(|j| (j, true))
                .collect();
            e.extend(read_of(k).into_iter().map(|j| (j, false)));
            e
        })
        .collect();
    let mut out = Vec::new();
    for i in 0..n {
        let ancestors = steps.ancestors(i);
        for u in read_of(i) {
            if ancestors.contains(&u) {
                continue;
            }
            // Breadth-first from `u` to `i`.
            let mut parent: Vec<Option<(usize, bool)>> = vec![None; n];
            let mut seen = vec![false; n];
            seen[u] = true;
            let mut queue = std::collections::VecDeque::from([u]);
            while let Some(k) = queue.pop_front() {
                if k == i {
                    break;
                }
                for &(j, need) in &edges[k] {
                    if !seen[j] {
                        seen[j] = true;
                        parent[j] = Some((k, need));
                        queue.push_back(j);
                    }
                }
            }
            if !seen[i] {
                continue;
            }
            let mut hops = Vec::new();
            let mut k = i;
            while let Some((from, need)) = parent[k] {
                let (a, b) = (&steps.steps[from].name, &steps.steps[k].name);
                hops.push(if need {
                    format!("{a} needs {b}")
                } else {
                    format!("{a} reads outputs of {b}")
                });
                k = from;
            }
            hops.reverse();
            out.push(CyclicRead {
                step: steps.steps[i].name.clone(),
                upstream: steps.steps[u].name.clone(),
                chain: hops.join(", "),
            });
        }
    }
    out
}

/// Marks `Blocked` every step that would run but needs (directly) a step that will not be up
/// to date, or has an ancestor that is blocked; the reason reads like the runner's. (A
/// `Maybe` step is decided when it is ready: the runner blocks it then if it must.) Called
/// again after `--refresh` changed decisions.
pub fn block(steps: &StepSet, decisions: &mut [Decision]) {
    loop {
        let mut changed = false;
        for i in 0..decisions.len() {
            if decisions[i].action != Action::Run {
                continue;
            }
            let unsatisfied = |j: usize| match decisions[j].action {
                Action::Pending => Some("is not up to date and does not run (pending)"),
                Action::Excluded if !decisions[j].up_to_date => {
                    Some("is not up to date and does not run (not selected)")
                }
                _ => None,
            };
            let direct = steps.steps[i]
                .needs
                .iter()
                .filter_map(|n| steps.index(n))
                .find_map(|j| unsatisfied(j).map(|w| (j, w)));
            let found = direct.or_else(|| {
                steps
                    .ancestors(i)
                    .into_iter()
                    .find(|&j| decisions[j].action == Action::Blocked)
                    .map(|j| (j, "is blocked"))
            });
            if let Some((j, what)) = found {
                let through = steps.path_between(i, j);
                let via = if through.is_empty() {
                    String::new()
                } else {
                    let names: Vec<&str> = through
                        .iter()
                        .map(|&k| steps.steps[k].name.as_str())
                        .collect();
                    format!(" (through {})", names.join(", "))
                };
                decisions[i].action = Action::Blocked;
                decisions[i].reasons =
                    vec![format!("needs {}{via}, which {what}", decisions[j].step)];
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// What the deployment would refuse before running anything (exit 2), in words: a selected
/// step (`--only`) that needs a step that is neither selected nor up to date.
pub fn refusal(steps: &StepSet, decisions: &[Decision], only: &[String]) -> Option<String> {
    for name in only {
        let i = steps.index(name)?;
        for need in &steps.steps[i].needs {
            if only.contains(need) {
                continue;
            }
            let j = steps.index(need)?;
            if !decisions[j].up_to_date {
                let why = decisions[j]
                    .reasons
                    .iter()
                    .filter(|r| *r != NOT_SELECTED)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ");
                return Some(format!(
                    "--only {name}: it needs `{need}`, which is not selected and not up to date ({why}); add --only {need}"
                ));
            }
        }
    }
    None
}

/// The exit code of a deployment with these decisions if every step that runs succeeds:
/// 1 when a step would be blocked, else 0.
pub fn expected_exit(decisions: &[Decision]) -> i32 {
    if decisions.iter().any(|d| d.action == Action::Blocked) {
        crate::util::error::exit::STEP_FAILED
    } else {
        crate::util::error::exit::OK
    }
}

/// Steps recorded in the state whose step file is gone: (name, its file when recorded).
pub fn gone(steps: &StepSet, state: &State) -> Vec<(String, Option<String>)> {
    state
        .steps
        .iter()
        .filter(|(name, _)| steps.index(name).is_none())
        .map(|(name, r)| {
            (
                name.clone(),
                r.extra
                    .get("file")
                    .and_then(|f| f.as_str())
                    .map(str::to_string),
            )
        })
        .collect()
}

const NOT_SELECTED: &str = "not selected (--only)";

fn decide_one(
    name: &str,
    state: &State,
    fp: &Fingerprint,
    opts: &PlanOptions,
    selected: bool,
    input_changes: &dyn Fn() -> Vec<String>,
) -> (Action, Vec<String>) {
    let record = state.steps.get(name);
    let changes = match record {
        Some(r) if r.status == Status::Completed => {
            let mut c = changes(r, fp);
            if c.is_empty() {
                c = input_changes();
            }
            c
        }
        _ => Vec::new(),
    };
    if selected && opts.force_all {
        (Action::Run, vec!["forced (--force-all)".to_string()])
    } else if selected && opts.force_steps.iter().any(|s| s == name) {
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
            Some(r) if r.status == Status::RolledBack => (Action::Run, vec![rolled_back(r)]),
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
    }
}

/// Why a rolled-back step runs: the source has not changed, the next deployment rolls it
/// forward (`rolled back to RUN on DATE`).
fn rolled_back(r: &crate::state::StepRecord) -> String {
    let run = r.rolled_back_to.as_deref().unwrap_or("an earlier run");
    let date = r.timestamp.get(..10).unwrap_or(&r.timestamp);
    format!("rolled back to {run} on {date}")
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Steps `(name, needs)` in this order, and a state in which each `(reader, read)` pair
    /// recorded a read of an output of `read`.
    fn project(steps: &[(&str, &[&str])], reads: &[(&str, &str)]) -> (StepSet, State) {
        let decls: Vec<(&str, String)> = steps
            .iter()
            .map(|(name, needs)| {
                let needs: Vec<String> = needs.iter().map(|n| format!("\"{n}\"")).collect();
                (*name, format!("needs: [{}]", needs.join(", ")))
            })
            .collect();
        let scripts: Vec<(&str, &str, &str)> =
            decls.iter().map(|(n, d)| (*n, d.as_str(), "")).collect();
        let set = StepSet::of_scripts(&scripts);
        let mut state = State::default();
        for (name, _) in steps {
            let outputs: serde_json::Map<String, serde_json::Value> = reads
                .iter()
                .filter(|(r, _)| r == name)
                .map(|(_, u)| (u.to_string(), serde_json::json!({ "v": "digest" })))
                .collect();
            let record = serde_json::json!({
                "status": "completed",
                "reads": { "outputs": outputs },
            });
            state
                .steps
                .insert(name.to_string(), serde_json::from_value(record).unwrap());
        }
        (set, state)
    }

    fn chains(steps: &[(&str, &[&str])], reads: &[(&str, &str)]) -> Vec<String> {
        let (set, state) = project(steps, reads);
        cyclic_reads(&set, &state)
            .into_iter()
            .map(|c| format!("{} <- {}: {}", c.step, c.upstream, c.chain))
            .collect()
    }

    #[test]
    fn a_read_against_needs_is_a_cycle_and_a_read_along_needs_is_not() {
        // `a` reads outputs of `b`, and `b` needs `a` through `x`.
        assert_eq!(
            chains(&[("a", &[]), ("x", &["a"]), ("b", &["x"])], &[("a", "b")]),
            ["a <- b: b needs x, x needs a"]
        );
        // Reading a step it needs is what outputs are for.
        assert!(chains(&[("a", &[]), ("b", &["a"])], &[("b", "a")]).is_empty());
        // Unrelated steps reading each other: both reads close the cycle.
        assert_eq!(
            chains(&[("a", &[]), ("c", &[])], &[("a", "c"), ("c", "a")]),
            [
                "a <- c: c reads outputs of a",
                "c <- a: a reads outputs of c"
            ]
        );
        // `a` needs `c`, `c` reads `a`: only the read against `needs` is the cycle.
        assert_eq!(
            chains(&[("c", &[]), ("a", &["c"])], &[("a", "c"), ("c", "a")]),
            ["c <- a: a needs c"]
        );
        // A read of an unrelated step that depends on nothing of it is no cycle.
        assert!(chains(&[("a", &[]), ("c", &[])], &[("a", "c")]).is_empty());
    }
}
