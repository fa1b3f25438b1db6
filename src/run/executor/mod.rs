//! Runs the steps a plan selected: along the `needs` graph, up to `jobs` at once, each step's
//! `run()` on its own thread; records every finished step in the state at once (atomic
//! write), so that nothing a finished step did is ever lost.

use crate::config::Config;
use crate::decide::fingerprint::Fingerprint;
use crate::decide::plan::{Action, Decision};
use crate::decide::script;
use crate::decide::step::{Step, StepSet};
use crate::run::host::{self, StepContext};
use crate::state::{State, StateStore};
use crate::sys::process;
use crate::util::console::{self, Console};
use crate::util::secrets::Masker;
use anyhow::Result;
use rhai::Engine;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

mod lines;
mod outcome;
mod record;
mod schedule;
mod tally;
mod ticker;
use record::{step_record, Ended};
use schedule::{Node, Schedule};
use tally::{StepRecordUpdate, Tally};
mod verify;

pub use outcome::{Counts, Outcome, RunOutcome, StepResult, StepRun};
pub(crate) use verify::call_verify;

/// Everything shared by the steps of one run.
pub struct Runner<'a> {
    pub engine: &'a Engine,
    pub steps: &'a StepSet,
    pub config: Arc<Config>,
    pub masker: Arc<Masker>,
    pub console: Arc<Console>,
    pub store: &'a dyn StateStore,
    pub dry_run: bool,
    pub jobs: usize,
    pub keep_going: bool,
    /// `.stepwise/logs/<run-id>/` (none in a dry run).
    pub log_dir: Option<PathBuf>,
    /// Steps running now: when they started and their host context (for the live view and
    /// heartbeats).
    pub running: Mutex<HashMap<String, (Instant, Arc<StepContext>)>>,
    /// The local hash cache (image fingerprints use it too).
    pub hash_cache: Option<Arc<crate::decide::hashcache::HashCache>>,
    /// `--strict`: a read the step does not declare fails the step at the read.
    pub strict: bool,
    /// Run a step's `verify()` right after its `run()` completed (a post-condition).
    pub verify_after_run: bool,
    /// Fingerprints a step again when it starts after ancestors ran in this deployment.
    pub fingerprint: &'a (dyn Fn(&crate::decide::step::Step) -> Result<Fingerprint> + Sync),
    /// `--strict` / `deployment.strict_secrets`: a secret on a command line fails the step.
    pub strict_secrets: bool,
    /// `stepwise rollback`: the run returned to. Each step's `fn rollback(target)` is called
    /// instead of `run()`, and a step that returns is recorded `rolled back` with the target's
    /// outputs.
    pub rollback: Option<Arc<crate::state::runs::Target>>,
}

impl Runner<'_> {
    /// The report of a run in which nothing had to run.
    pub fn nothing_ran(decisions: &[Decision]) -> RunOutcome {
        RunOutcome {
            results: decisions.iter().map(StepResult::of_decision).collect(),
            wall: Duration::ZERO,
            interrupted: None,
            lock_lost: None,
            runs: HashMap::new(),
            public_outputs: Vec::new(),
        }
    }

    /// Runs the steps `decisions` select: schedules them along the `needs` graph, starts each
    /// on a thread of its own when it is ready (at most `jobs` at once), and observes each as it
    /// ends, until nothing runs and nothing can start.
    pub fn run(&self, decisions: &[Decision], state: State) -> Result<RunOutcome> {
        // Steps are about to run: a signal is now handled (steps recorded, state saved).
        process::DEFER_SIGNALS.store(true, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let salt = state.salt().unwrap_or("").to_string();
        let salt = salt.as_str();
        let state = Arc::new(Mutex::new(state));
        let recheck = self.rechecked(decisions);
        let mut sched = self.schedule(decisions, &recheck);
        let mut tally = Tally::new(decisions, &recheck, started);
        let (tx, rx) = mpsc::channel::<(usize, StepRecordUpdate)>();
        // Dropping `done` wakes the ticker at once (a sleeping ticker would delay the end).
        let (done, done_rx) = mpsc::channel::<()>();
        std::thread::scope(|scope| -> Result<()> {
            scope.spawn(move || ticker::run(&self.running, &self.console, done_rx));
            let result = (|| -> Result<()> {
                loop {
                    if process::stopping() {
                        sched.stop_starting = true;
                    }
                    // Block what can no longer run; start what is ready, in file order.
                    self.block(&mut sched, &mut tally);
                    for i in 0..decisions.len() {
                        // Every ancestor, direct or through skipped steps, has ended.
                        if !sched.ready(i) {
                            continue;
                        }
                        let Some(decision) =
                            self.decide_ready(i, decisions, &mut sched, &mut tally, &state)
                        else {
                            continue;
                        };
                        sched.start(i);
                        let tx = tx.clone();
                        let state = state.clone();
                        scope.spawn(move || {
                            let update = self.run_step(i, &decision, state, salt);
                            let _ = tx.send((i, update));
                        });
                        // In a dry run, steps run one after another so that their lines
                        // read in order.
                        if self.dry_run {
                            break;
                        }
                    }
                    if sched.running() == 0 {
                        // Nothing runs and nothing could start: every step left must have a
                        // reason not to run (a failure, an interrupt). Steps still waiting
                        // with no such reason wait on each other: a bug, never "an earlier
                        // step failed".
                        if !sched.stop_starting {
                            if let Some(err) = stalled(self.steps, &sched.stuck()) {
                                return Err(err);
                            }
                        }
                        break;
                    }
                    let (i, update) = rx.recv().expect("a step thread reports");
                    sched.finished(i, update.outcome);
                    let name = self.steps.steps[i].name.clone();
                    if let Some(err) = tally.finished(i, name, update) {
                        return Err(err);
                    }
                }
                Ok(())
            })();
            drop(done);
            result
        })?;
        let mut outcome = tally.report(self.steps);
        let end = state.lock().unwrap_or_else(|e| e.into_inner());
        outcome.public_outputs = self.steps.public_outputs(|s| Some(end.outputs(s)));
        Ok(outcome)
    }

    /// Which steps are checked again when they start: a skipped step with declared files
    /// below a step that runs now (its files are hashed after its ancestors ran; the plan's
    /// hash is a preview).
    fn rechecked(&self, decisions: &[Decision]) -> Vec<bool> {
        if self.rollback.is_some() {
            // A rollback decides on outputs, not on files: what it leaves stays left.
            return vec![false; decisions.len()];
        }
        decisions
            .iter()
            .enumerate()
            .map(|(i, d)| {
                d.action == Action::Skip
                    && !self.steps.steps[i].files.is_empty()
                    && self
                        .steps
                        .ancestors(i)
                        .into_iter()
                        .any(|j| matches!(decisions[j].action, Action::Run | Action::Maybe))
            })
            .collect()
    }

    /// The scheduler of a run of `decisions`.
    fn schedule(&self, decisions: &[Decision], recheck: &[bool]) -> Schedule {
        let n = self.steps.steps.len();
        let nodes: Vec<Node> = decisions
            .iter()
            .enumerate()
            .map(|(i, d)| match d.action {
                Action::Run | Action::Maybe => Node::Waiting,
                Action::Skip if recheck[i] => Node::Waiting,
                Action::Skip => Node::Satisfied,
                Action::Pending => Node::Unsatisfied,
                Action::Excluded if d.up_to_date => Node::Satisfied,
                Action::Excluded => Node::Unsatisfied,
                // decided by the plan already (a need that will not be up to date)
                Action::Blocked => Node::Blocked,
            })
            .collect();
        let ancestors: Vec<Vec<usize>> = (0..n).map(|i| self.steps.ancestors(i)).collect();
        // A pending (`Maybe`) step also waits for the steps whose outputs decide it.
        let waits: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let mut w = ancestors[i].clone();
                for name in &decisions[i].waits_on {
                    if let Some(j) = self.steps.index(name) {
                        if !w.contains(&j) {
                            w.push(j);
                        }
                    }
                }
                w
            })
            .collect();
        let direct: Vec<Vec<usize>> = self
            .steps
            .steps
            .iter()
            .map(|s| s.needs.iter().filter_map(|x| self.steps.index(x)).collect())
            .collect();
        Schedule::new(nodes, direct, ancestors, waits, self.jobs, self.keep_going)
    }

    /// Blocks the steps that can no longer run, each with a line saying why.
    fn block(&self, sched: &mut Schedule, tally: &mut Tally) {
        for (i, j, what) in sched.block() {
            let why = self.blocked_why(i, j, what);
            lines::blocked(&self.console, &self.steps.steps[i].name, &why);
            tally.blocked(i, &self.steps.steps[i].name, why);
        }
    }

    /// What ready step `i` does: the decision it starts with, or `None` when it ends here
    /// (skipped or pending in a dry run, skipped or failed when decided at its start).
    fn decide_ready(
        &self,
        i: usize,
        decisions: &[Decision],
        sched: &mut Schedule,
        tally: &mut Tally,
        state: &Mutex<State>,
    ) -> Option<Decision> {
        if decisions[i].action != Action::Run && self.dry_run {
            // Nothing ran, so nothing can be compared: a pending step stays
            // pending, a skipped one skipped.
            let d = &decisions[i];
            if d.action == Action::Skip {
                tally.ended_unrun(sched, i, d, Outcome::Skipped);
                return None;
            }
            lines::say(
                &self.console,
                console::YELLOW,
                "?",
                &d.step,
                "pending",
                &d.reasons.join("; "),
            );
            tally.ended_unrun(sched, i, d, Outcome::NotRun);
            return None;
        }
        if !self.dry_run && tally.late[i].is_none() {
            // Fingerprints taken when the step starts: after every ancestor
            // that runs in this deployment has finished.
            let ancestor_ran = tally.any_ran(&sched.ancestors[i]);
            let d = match self.decide_at_start(i, &decisions[i], state, ancestor_ran) {
                Ok(d) => d,
                Err(why) => {
                    lines::failed(&self.console, &decisions[i].step, &why);
                    tally.failed_at_start(sched, i, &decisions[i].step, why);
                    return None;
                }
            };
            if d.action == Action::Skip {
                lines::say(
                    &self.console,
                    console::DIM,
                    "·",
                    &d.step,
                    "skipped",
                    &d.reasons.join("; "),
                );
                tally.ended_unrun(sched, i, &d, Outcome::Skipped);
                tally.late[i] = Some(d);
                return None;
            }
            tally.late[i] = Some(d);
        }
        Some(
            tally.late[i]
                .clone()
                .unwrap_or_else(|| decisions[i].clone()),
        )
    }

    /// The decision of step `i` when it is ready to start (every ancestor has ended): its
    /// files are hashed again if an ancestor ran in this deployment (or a declared file did
    /// not exist at plan time); a step that was to be skipped, or that was pending on outputs,
    /// runs if a dependency or an output it read changed, and is skipped otherwise (early
    /// cutoff). A step that was to run keeps running, with the fingerprint taken now.
    fn decide_at_start(
        &self,
        i: usize,
        d: &Decision,
        state: &Mutex<State>,
        ancestor_ran: bool,
    ) -> std::result::Result<Decision, String> {
        let step = &self.steps.steps[i];
        let mut out = d.clone();
        if (ancestor_ran && !step.files.is_empty()) || !d.fingerprint.missing.is_empty() {
            let fp = (self.fingerprint)(step).map_err(|e| format!("{e:#}"))?;
            if let Some(m) = fp.missing.first() {
                return Err(format!(
                    "declared file {m} does not exist ({}:{})",
                    step.file, step.decl_line
                ));
            }
            out.fingerprint = fp;
        }
        if d.action == Action::Run {
            return Ok(out);
        }
        let st = state.lock().unwrap_or_else(|e| e.into_inner());
        let record = st.steps.get(&d.step);
        let mut reasons = match record {
            Some(r) if r.status == crate::state::Status::Completed => {
                crate::decide::plan::changes(r, &out.fingerprint)
            }
            _ => vec!["never ran".to_string()],
        };
        let mut read_outputs = Vec::new();
        if let Some(r) = record.and_then(|r| r.reads.as_ref()) {
            for upstream in &d.waits_on {
                if r.outputs.contains_key(upstream) {
                    read_outputs.push(upstream.clone());
                    reasons.extend(crate::state::reads::changed_outputs(
                        r,
                        upstream,
                        &st.outputs(upstream),
                    ));
                }
            }
        }
        if reasons.is_empty() {
            out.action = Action::Skip;
            out.reasons = vec![if read_outputs.is_empty() {
                "up to date".to_string()
            } else {
                format!("outputs of {} unchanged", read_outputs.join(", "))
            }];
        } else {
            out.action = Action::Run;
            out.reasons = reasons;
        }
        Ok(out)
    }

    /// Why step `i` is blocked: need `j` (named with the chain between them) did `what`.
    fn blocked_why(&self, i: usize, j: usize, what: &str) -> String {
        let steps = &self.steps.steps;
        let through = self.steps.path_between(i, j);
        let via = if through.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = through.iter().map(|&k| steps[k].name.as_str()).collect();
            format!(" (through {})", names.join(", "))
        };
        format!("needs {}{via}, which {what}", steps[j].name)
    }

    /// The host context of step `i` (its declarations, the run's state, a fresh record of
    /// reads).
    pub(crate) fn context(
        &self,
        i: usize,
        forced: bool,
        state: Arc<Mutex<State>>,
        salt: &str,
        log: Option<(std::fs::File, std::path::PathBuf)>,
        dry_run: bool,
    ) -> Arc<StepContext> {
        let (log, log_path) = match log {
            Some((f, p)) => (Some(f), Some(p)),
            None => (None, None),
        };
        let step = &self.steps.steps[i];
        Arc::new(StepContext {
            step: step.name.clone(),
            config: self.config.clone(),
            settings: self.config.settings.advanced.clone(),
            masker: self.masker.clone(),
            dry_run,
            state: state.clone(),
            outputs: Mutex::new(Default::default()),
            log: Mutex::new(log),
            log_path,
            console: self.console.clone(),
            current_command: Mutex::new(None),
            retries: Default::default(),
            forced,
            previous_images: state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .steps
                .get(&step.name)
                .and_then(|r| r.extra.get("images"))
                .and_then(|v| v.as_object())
                .cloned()
                .unwrap_or_default(),
            images: Mutex::new(Default::default()),
            image_sources: Mutex::new(Default::default()),
            hash_cache: self.hash_cache.clone(),
            declared: host::Declared {
                at: format!("{}:{}", step.file, step.decl_line),
                config: step.config.clone(),
                env: step.env.clone(),
                ancestors: self
                    .steps
                    .ancestors(i)
                    .into_iter()
                    .map(|j| self.steps.steps[j].name.clone())
                    .collect(),
                descendants: (0..self.steps.steps.len())
                    .filter(|&j| self.steps.ancestors(j).contains(&i))
                    .map(|j| self.steps.steps[j].name.clone())
                    .collect(),
            },
            reads: Mutex::new(Default::default()),
            secret_salt: salt.to_string(),
            strict: self.strict,
            verifying: Default::default(),
            read_cache: None,
            strict_secrets: self.strict_secrets,
            warned: Default::default(),
            secret_files: Default::default(),
            commands: Default::default(),
            warnings: Default::default(),
            rollback: self.rollback.clone(),
            cost: None,
        })
    }

    /// Runs one step and records it. Never panics the scheduler.
    fn run_step(
        &self,
        i: usize,
        decision: &Decision,
        state: Arc<Mutex<State>>,
        salt: &str,
    ) -> StepRecordUpdate {
        let step = &self.steps.steps[i];
        let reason = decision.reasons.join("; ");
        lines::started(&self.console, &step.name, &reason);
        let log = self.open_log(&step.name);
        let ctx = self.context(i, decision.forced, state.clone(), salt, log, self.dry_run);
        let started_at = crate::util::clock::now();
        let t0 = Instant::now();
        let (outcome, error, elapsed) = self.call_run(step, &ctx, t0);
        let dur = console::duration(elapsed);
        match outcome {
            Outcome::Ran => lines::ran(&self.console, &step.name, &reason, &dur, self.dry_run),
            Outcome::Interrupted => lines::interrupted(&self.console, &step.name, &dur),
            _ => {
                let msg = error.as_deref().unwrap_or("");
                ctx.log_file(&format!("error: {msg}"));
                let log = self
                    .log_dir
                    .as_ref()
                    .map(|dir| dir.join(format!("{}.log", step.name)));
                lines::failed_after(&self.console, &step.name, &dur, msg, log.as_deref());
            }
        }
        let ended = Ended {
            outcome,
            error,
            started_at,
            elapsed,
        };
        let save_error = if self.dry_run {
            None
        } else {
            self.record(&state, step, decision, &ctx, &ended)
        };
        let take = |list: &Mutex<Vec<String>>| {
            std::mem::take(&mut *list.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let run = StepRun {
            commands: take(&ctx.commands),
            warnings: take(&ctx.warnings),
            retries: ctx.retries.load(std::sync::atomic::Ordering::Relaxed),
            ..Default::default()
        };
        StepRecordUpdate {
            started: t0,
            run,
            outcome,
            reason: match &ended.error {
                Some(e) if outcome != Outcome::Ran => {
                    e.lines().next().unwrap_or_default().to_string()
                }
                _ => reason,
            },
            duration: elapsed,
            save_error,
        }
    }

    /// The step's log file, `LOG_DIR/NAME.log` (none in a dry run, or if it cannot be opened).
    fn open_log(&self, name: &str) -> Option<(std::fs::File, PathBuf)> {
        let log_path = self
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("{name}.log")));
        log_path.and_then(|path| {
            use std::os::unix::fs::OpenOptionsExt;
            crate::util::fs::create_private_dir(path.parent()?).ok()?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .ok()?;
            Some((f, path))
        })
    }

    /// Calls the step's `run()` (started at `t0`) in its context, then its `verify()` if asked
    /// to: how it ended, the error of a step that did not run to its end (masked), and how
    /// long it took.
    fn call_run(
        &self,
        step: &Step,
        ctx: &Arc<StepContext>,
        t0: Instant,
    ) -> (Outcome, Option<String>, Duration) {
        self.console.start_step(&step.name);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step.name.clone(), (t0, ctx.clone()));
        let result = host::with_context(ctx.clone(), || match &self.rollback {
            None => script::call_fn(self.engine, &step.ast, "run"),
            Some(target) => {
                let own = target.state.outputs(&step.name);
                let arg =
                    crate::run::host::json_to_dynamic(&serde_json::Value::Object(own.clone()));
                let r = script::call_fn_with(self.engine, &step.ast, "rollback", (arg,));
                // What it deployed now is the target's: recorded so, and what `verify()` checks.
                *ctx.outputs.lock().unwrap_or_else(|e| e.into_inner()) = own;
                r
            }
        });
        // Verify after run: the step's own read-only checks, as a post-condition.
        let verified = match &result {
            Ok(_) if step.has_verify && self.verify_after_run && !self.dry_run => {
                ctx.verifying
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                match call_verify(self.engine, step, &self.masker, ctx) {
                    Ok(drift) if drift.is_empty() => Ok(()),
                    Ok(drift) => Err(format!("verify after run: {}", drift.join("; "))),
                    Err(e) => Err(format!("verify after run failed: {e}")),
                }
            }
            _ => Ok(()),
        };
        let elapsed = t0.elapsed();
        // The step's secret files go as soon as it ends, whatever the outcome.
        ctx.remove_secret_files();
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&step.name);
        self.console.finish_step(&step.name);
        // The outcome comes from what happened: while the run is stopping (a signal, or the
        // lock lost) a step is `interrupted` even if its script caught the error of its
        // stopped command and returned normally.
        let (outcome, error) = match result {
            _ if process::stopping() => {
                let why = match &result {
                    Err(e) => self.masker.mask(&script::runtime_error(&step.file, e)),
                    Ok(_) => format!(
                        "{}: {} (the step's script returned afterwards, but the step did not run to its end)",
                        step.file,
                        process::stop_reason().unwrap_or_default()
                    ),
                };
                (Outcome::Interrupted, Some(why))
            }
            Ok(_) if verified.is_err() => (
                Outcome::Failed,
                verified.err().map(|e| self.masker.mask(&e)),
            ),
            Ok(_) => (Outcome::Ran, None),
            Err(e) => (
                Outcome::Failed,
                Some(self.masker.mask(&script::runtime_error(&step.file, &e))),
            ),
        };
        (outcome, error, elapsed)
    }

    /// Records how `step` ended in the state and saves it at once: the error of a result that
    /// could not be recorded.
    fn record(
        &self,
        state: &Mutex<State>,
        step: &Step,
        decision: &Decision,
        ctx: &StepContext,
        ended: &Ended,
    ) -> Option<anyhow::Error> {
        let outcome = ended.outcome;
        let mut save_error = None;
        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
        let previous = st.steps.remove(&step.name);
        let now = crate::util::clock::now();
        let rolled_back_to = self.rollback.as_ref().map(|t| t.run.as_str());
        let rec = step_record(previous, step, decision, ctx, ended, &now, rolled_back_to);
        st.steps.insert(step.name.clone(), rec);
        st.last_updated = now;
        if let Err(e) = self.store.save(&st) {
            // A state that cannot be written mid-run fails the step's recording, not the
            // usage: the kinds found before any step runs become a step failure.
            use crate::util::error::Kind;
            let kind = match crate::util::error::kind_of(&e) {
                Kind::Usage | Kind::Config | Kind::Script | Kind::State | Kind::Storage => {
                    Kind::StepFailed
                }
                other => other,
            };
            save_error = Some(
                crate::util::error::Failure::new(
                    kind,
                    format!(
                        "step `{}` {} but its result could not be recorded: {e:#}",
                        step.name,
                        outcome.as_str()
                    ),
                )
                .into(),
            );
        }
        save_error
    }
}

/// The internal error of a scheduler that can start nothing while steps still wait (each on
/// another that waits too), naming them and what each waits on; `None` when no step waits.
fn stalled(steps: &StepSet, stuck: &[(usize, Vec<usize>)]) -> Option<anyhow::Error> {
    let stuck: Vec<String> = stuck
        .iter()
        .map(|(i, on)| {
            let on: Vec<&str> = on.iter().map(|&j| steps.steps[j].name.as_str()).collect();
            format!("{} (waits on {})", steps.steps[*i].name, on.join(", "))
        })
        .collect();
    if stuck.is_empty() {
        return None;
    }
    Some(
        crate::util::error::Failure::new(
            crate::util::error::Kind::Internal,
            format!(
                "internal error: the run stopped with steps that neither ran nor were blocked by a failure, each waiting on another: {}; the state holds every step that ended; please report this",
                stuck.join("; ")
            ),
        )
        .into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decide::step::{parse_step, Prelude};

    fn decision(step: &str, action: Action, waits_on: &[&str]) -> Decision {
        Decision {
            step: step.into(),
            action,
            reasons: vec!["test".into()],
            fingerprint: Fingerprint::default(),
            forced: false,
            waits_on: waits_on.iter().map(|s| s.to_string()).collect(),
            refreshed: false,
            drift: Vec::new(),
            up_to_date: false,
            warnings: Vec::new(),
            images: Vec::new(),
        }
    }

    /// Decisions whose waits form a cycle (what a plan once made of a read against `needs`:
    /// `a` pending on outputs of `b`, `b` needing `a`) end in an internal error naming the
    /// stuck steps, never in steps "blocked: an earlier step failed".
    #[test]
    fn a_scheduler_that_can_start_nothing_is_an_internal_error_naming_the_steps() {
        let engine = crate::run::host::engine();
        let step = |order, name: &str, decl: &str| {
            let text = format!("let step = #{{ {decl} }};\nfn run() {{ }}\n");
            parse_step(
                &engine,
                &format!("steps/{name}.rhai"),
                order,
                name.into(),
                &text,
            )
            .expect("step parses")
        };
        let steps = StepSet {
            steps: vec![step(1, "a", ""), step(2, "b", r#"needs: ["a"]"#)],
            prelude: Prelude {
                file: "prelude.rhai".into(),
                digest: String::new(),
                module: None,
            },
        };
        let dir = tempfile::tempdir().unwrap();
        let store = crate::state::LocalStore::new(dir.path().join("state.json"));
        let fingerprint = |_: &crate::decide::step::Step| Ok(Fingerprint::default());
        let runner = Runner {
            engine: &engine,
            steps: &steps,
            config: Arc::new(Config::empty(&dir.path().join("config.yaml"))),
            masker: Arc::new(Masker::new()),
            console: Arc::new(Console::new(false)),
            store: &store,
            dry_run: false,
            jobs: 2,
            keep_going: false,
            log_dir: None,
            running: Mutex::new(HashMap::new()),
            hash_cache: None,
            strict: false,
            verify_after_run: false,
            fingerprint: &fingerprint,
            strict_secrets: false,
            rollback: None,
        };
        let decisions = [
            decision("a", Action::Maybe, &["b"]),
            decision("b", Action::Run, &[]),
        ];
        let Err(err) = runner.run(&decisions, State::default()) else {
            panic!("a stalled run is an error");
        };
        assert_eq!(
            crate::util::error::exit_code(&err),
            crate::util::error::exit::INTERNAL
        );
        let msg = format!("{err:#}");
        assert!(msg.starts_with("internal error:"), "{msg}");
        assert!(msg.contains("a (waits on b); b (waits on a)"), "{msg}");
        assert!(!msg.contains("earlier step failed"), "{msg}");
        assert!(
            !dir.path().join("state.json").exists(),
            "nothing ran, nothing written"
        );
    }
}
