//! Runs the steps a plan selected: along the `needs` graph, up to `jobs` at once, each step's
//! `run()` on its own thread; records every finished step in the state at once (atomic
//! write), so that nothing a finished step did is ever lost.

use crate::config::Config;
use crate::decide::fingerprint::Fingerprint;
use crate::decide::plan::{Action, Decision};
use crate::decide::script;
use crate::decide::step::StepSet;
use crate::run::host::{self, StepContext};
use crate::state::{State, StateStore, Status, StepRecord};
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

mod outcome;
mod schedule;
mod ticker;
use schedule::{Node, Schedule};
mod verify;

pub use outcome::{Counts, Outcome, RunReport, StepResult, StepRun};
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
}

impl Runner<'_> {
    /// A step's line for a decision made while scheduling (`· name skipped: why`).
    fn say(&self, colour: &str, mark: &str, step: &str, what: &str, why: &str) {
        self.console.line(&format!(
            "{} {step} {what}: {why}",
            self.console.paint(colour, mark)
        ));
    }

    /// The report of a run in which nothing had to run.
    pub fn nothing_ran(decisions: &[Decision]) -> RunReport {
        RunReport {
            results: decisions
                .iter()
                .map(|d| StepResult {
                    step: d.step.clone(),
                    outcome: match d.action {
                        Action::Skip => Outcome::Skipped,
                        Action::Blocked => Outcome::Blocked,
                        _ => Outcome::NotRun,
                    },
                    reason: d.reasons.join("; "),
                    duration: Duration::ZERO,
                })
                .collect(),
            wall: Duration::ZERO,
            interrupted: None,
            lock_lost: None,
            runs: HashMap::new(),
        }
    }

    pub fn run(&self, decisions: &[Decision], state: State) -> Result<RunReport> {
        // Steps are about to run: a signal is now handled (steps recorded, state saved).
        process::DEFER_SIGNALS.store(true, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let n = self.steps.steps.len();
        let salt = state.salt().unwrap_or("").to_string();
        let salt = salt.as_str();
        let state = Arc::new(Mutex::new(state));
        // A skipped step with declared files below a step that runs now is checked again when
        // it starts: its files are hashed after its ancestors ran (the plan's hash is a preview).
        let recheck: Vec<bool> = decisions
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
            .collect();
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
        let mut results: Vec<Option<StepResult>> = vec![None; n];
        let mut runs: HashMap<String, StepRun> = HashMap::new();
        for (i, d) in decisions.iter().enumerate() {
            if !matches!(d.action, Action::Run | Action::Maybe) && !recheck[i] {
                let outcome = match d.action {
                    Action::Skip => Outcome::Skipped,
                    Action::Blocked => Outcome::Blocked,
                    _ => Outcome::NotRun,
                };
                results[i] = Some(StepResult {
                    step: d.step.clone(),
                    outcome,
                    reason: d.reasons.join("; "),
                    duration: Duration::ZERO,
                });
            }
        }
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
        // Decisions made when a pending step became ready (it ran, or its outputs were
        // unchanged).
        let mut late: Vec<Option<Decision>> = vec![None; n];
        let direct: Vec<Vec<usize>> = self
            .steps
            .steps
            .iter()
            .map(|s| s.needs.iter().filter_map(|x| self.steps.index(x)).collect())
            .collect();
        let mut sched = Schedule::new(nodes, direct, ancestors, waits, self.jobs, self.keep_going);
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
                    for (i, j, what) in sched.block() {
                        let why = self.blocked_why(i, j, what);
                        self.console.line(&format!(
                            "{} {} blocked: {why}",
                            self.console.paint(console::YELLOW, "-"),
                            self.steps.steps[i].name
                        ));
                        results[i] = Some(StepResult::without_run(
                            self.steps.steps[i].name.clone(),
                            Outcome::Blocked,
                            why,
                        ));
                        runs.insert(
                            self.steps.steps[i].name.clone(),
                            StepRun::at(started.elapsed()),
                        );
                    }
                    for i in 0..n {
                        // Every ancestor, direct or through skipped steps, has ended.
                        if !sched.ready(i) {
                            continue;
                        }
                        if decisions[i].action != Action::Run && self.dry_run {
                            // Nothing ran, so nothing can be compared: a pending step stays
                            // pending, a skipped one skipped.
                            let d = &decisions[i];
                            if d.action == Action::Skip {
                                sched.decided(i, Node::Satisfied);
                                results[i] = Some(StepResult::without_run(
                                    d.step.clone(),
                                    Outcome::Skipped,
                                    d.reasons.join("; "),
                                ));
                                continue;
                            }
                            self.say(
                                console::YELLOW,
                                "?",
                                &d.step,
                                "pending",
                                &d.reasons.join("; "),
                            );
                            sched.decided(i, Node::Satisfied);
                            results[i] = Some(StepResult::without_run(
                                d.step.clone(),
                                Outcome::NotRun,
                                d.reasons.join("; "),
                            ));
                            continue;
                        }
                        if !self.dry_run && late[i].is_none() {
                            // Fingerprints taken when the step starts: after every ancestor
                            // that runs in this deployment has finished.
                            let ancestor_ran = sched.ancestors[i].iter().any(|&j| {
                                results[j]
                                    .as_ref()
                                    .is_some_and(|r| r.outcome == Outcome::Ran)
                            });
                            let d = match self.decide_at_start(
                                i,
                                &decisions[i],
                                &state,
                                ancestor_ran,
                            ) {
                                Ok(d) => d,
                                Err(why) => {
                                    sched.decided(i, Node::Failed);
                                    self.console.line(&format!(
                                        "{} {} failed: {why}",
                                        self.console.paint(console::RED, "✗"),
                                        decisions[i].step
                                    ));
                                    results[i] = Some(StepResult::without_run(
                                        decisions[i].step.clone(),
                                        Outcome::Failed,
                                        why,
                                    ));
                                    continue;
                                }
                            };
                            if d.action == Action::Skip {
                                self.say(
                                    console::DIM,
                                    "·",
                                    &d.step,
                                    "skipped",
                                    &d.reasons.join("; "),
                                );
                                sched.decided(i, Node::Satisfied);
                                results[i] = Some(StepResult::without_run(
                                    d.step.clone(),
                                    Outcome::Skipped,
                                    d.reasons.join("; "),
                                ));
                                late[i] = Some(d);
                                continue;
                            }
                            late[i] = Some(d);
                        }
                        sched.start(i);
                        let tx = tx.clone();
                        let state = state.clone();
                        let decision = late[i].clone().unwrap_or_else(|| decisions[i].clone());
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
                    let name = self.steps.steps[i].name.clone();
                    sched.finished(i, update.outcome);
                    let start = update.started.saturating_duration_since(started);
                    runs.insert(
                        name.clone(),
                        StepRun {
                            start,
                            end: start + update.duration,
                            ..update.run
                        },
                    );
                    results[i] = Some(StepResult {
                        step: name,
                        outcome: update.outcome,
                        reason: update.reason,
                        duration: update.duration,
                    });
                    if let Some(err) = update.save_error {
                        return Err(err);
                    }
                }
                Ok(())
            })();
            drop(done);
            result
        })?;
        // Steps never started (after a failure or an interrupt).
        let interrupted = process::interrupted();
        let lock_lost = process::lock_lost();
        let wall = started.elapsed();
        for (i, slot) in results.iter_mut().enumerate() {
            if slot.is_none() {
                runs.insert(self.steps.steps[i].name.clone(), StepRun::at(wall));
                let why = if lock_lost.is_some() {
                    "not started: the run lost its state lock"
                } else if interrupted.is_some() {
                    "not started: the run was interrupted"
                } else {
                    "not started: an earlier step failed (use --keep-going to run independent steps)"
                };
                *slot = Some(StepResult::without_run(
                    self.steps.steps[i].name.clone(),
                    Outcome::Blocked,
                    why.to_string(),
                ));
            }
        }
        Ok(RunReport {
            results: results
                .into_iter()
                .map(|r| r.expect("every step has a result"))
                .collect(),
            wall,
            interrupted,
            lock_lost,
            runs,
        })
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
        self.console.line(&format!(
            "{} {} {}",
            self.console.paint(console::BOLD, "▶"),
            step.name,
            self.console.paint(console::DIM, &format!("({reason})"))
        ));
        let log_path = self
            .log_dir
            .as_ref()
            .map(|dir| dir.join(format!("{}.log", step.name)));
        let log = log_path.and_then(|path| {
            use std::os::unix::fs::OpenOptionsExt;
            crate::util::fs::create_private_dir(path.parent()?).ok()?;
            let f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .mode(0o600)
                .open(&path)
                .ok()?;
            Some((f, path))
        });
        let ctx = self.context(i, decision.forced, state.clone(), salt, log, self.dry_run);
        let started_at = crate::util::clock::now();
        let t0 = Instant::now();
        self.console.start_step(&step.name);
        self.running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step.name.clone(), (t0, ctx.clone()));
        let result = host::with_context(ctx.clone(), || {
            script::call_fn(self.engine, &step.ast, "run")
        });
        // Verify after run: the step's own read-only checks, as a post-condition.
        let verified = match &result {
            Ok(_) if step.has_verify && self.verify_after_run && !self.dry_run => {
                ctx.verifying
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                match call_verify(self.engine, step, &self.masker, &ctx) {
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
        let dur = console::duration(elapsed);
        match outcome {
            Outcome::Ran => self.console.line(&format!(
                "{} {} {} ({reason}) {}",
                self.console.paint(console::GREEN, "✓"),
                step.name,
                if self.dry_run { "would run" } else { "ran" },
                self.console.paint(console::DIM, &dur)
            )),
            Outcome::Interrupted => self.console.line(&format!(
                "{} {} interrupted after {dur}",
                self.console.paint(console::RED, "✗"),
                step.name
            )),
            _ => {
                let msg = error.as_deref().unwrap_or("");
                ctx.log_file(&format!("error: {msg}"));
                self.console.line(&format!(
                    "{} {} failed after {dur}",
                    self.console.paint(console::RED, "✗"),
                    step.name
                ));
                self.console.error(msg);
                if let Some(dir) = &self.log_dir {
                    let log = dir.join(format!("{}.log", step.name));
                    // Only the end of the log is read: it can be as long as a command's output.
                    let text = read_tail(&log, 64 * 1024);
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(20)..];
                    self.console.error_line(&format!(
                        "  last {} lines of {}:",
                        tail.len(),
                        log.display()
                    ));
                    for l in tail {
                        self.console.error_line(&format!("  | {l}"));
                    }
                }
            }
        }
        let mut save_error = None;
        if !self.dry_run {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let previous = st.steps.remove(&step.name);
            let mut rec = previous.unwrap_or(StepRecord {
                status: Status::Failed,
                timestamp: String::new(),
                dependency_hash: None,
                error: None,
                started_at: None,
                finished_at: None,
                duration_secs: None,
                dependencies: Default::default(),
                outputs: Default::default(),
                reads: None,
                rolled_back_to: None,
                extra: Default::default(),
            });
            let now = crate::util::clock::now();
            rec.timestamp = now.clone();
            rec.started_at = Some(started_at);
            rec.finished_at = Some(now.clone());
            rec.duration_secs = Some((elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
            match outcome {
                Outcome::Ran => {
                    rec.status = Status::Completed;
                    rec.error = None;
                    rec.rolled_back_to = None;
                    rec.dependency_hash = Some(decision.fingerprint.combined.clone());
                    rec.dependencies = decision.fingerprint.dependencies.clone();
                    // so that `plan` can say which file was removed when the step is gone
                    rec.extra
                        .insert("file".into(), serde_json::Value::String(step.file.clone()));
                    rec.outputs = ctx
                        .outputs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .clone();
                    rec.reads = Some(ctx.reads.lock().unwrap_or_else(|e| e.into_inner()).clone());
                }
                Outcome::Interrupted => {
                    rec.status = Status::Interrupted;
                    rec.error = error.clone();
                }
                _ => {
                    rec.status = Status::Failed;
                    rec.error = error.clone();
                }
            }
            // Images built successfully are recorded whatever the outcome, so that a retry
            // rebuilds only what is missing.
            let built = ctx.images.lock().unwrap_or_else(|e| e.into_inner()).clone();
            if !built.is_empty() {
                let mut images = rec
                    .extra
                    .get("images")
                    .and_then(|v| v.as_object())
                    .cloned()
                    .unwrap_or_default();
                images.extend(built);
                rec.extra
                    .insert("images".into(), serde_json::Value::Object(images));
            }
            st.steps.insert(step.name.clone(), rec);
            st.last_updated = now;
            if let Err(e) = self.store.save(&st) {
                // A state that cannot be written mid-run fails the step's recording, not
                // the usage: the kinds found before any step runs become a step failure.
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
        }
        let take = |list: &Mutex<Vec<String>>| {
            std::mem::take(&mut *list.lock().unwrap_or_else(|e| e.into_inner()))
        };
        let run = StepRun {
            commands: take(&ctx.commands),
            warnings: take(&ctx.warnings),
            ..Default::default()
        };
        StepRecordUpdate {
            started: t0,
            run,
            outcome,
            reason: match &error {
                Some(e) if outcome != Outcome::Ran => {
                    e.lines().next().unwrap_or_default().to_string()
                }
                _ => reason,
            },
            duration: elapsed,
            save_error,
        }
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

/// The last `max` bytes of a file (from the start of a line), as text.
fn read_tail(path: &std::path::Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(max);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    if from > 0 {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}

struct StepRecordUpdate {
    /// When the step started, and its commands and warnings.
    started: Instant,
    run: StepRun,
    outcome: Outcome,
    reason: String,
    duration: Duration,
    save_error: Option<anyhow::Error>,
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
