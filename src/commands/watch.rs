//! `stepwise watch`: deploy, then watch what the selected steps depend on (plus `steps/`,
//! `prelude.rhai` and the config) and, after each quiet period, re-hash and run only the
//! steps whose fingerprint changed. Changes that arrive while steps run wait in the channel
//! and are handled afterwards: a running cloud command is never killed because a file changed.
//! The file watching itself is `crate::app::watch`.

use crate::app::deploy::{check_only, execute, plan_options, write_report, Executed};
use crate::app::project::{Project, StateTarget};
use crate::app::show::print_plan;
use crate::app::watch::{
    poll_changes, relevant, start_watcher, DebounceEventResult, WatchSet, POLL_FALLBACK,
};
use crate::cli::Cli;
use crate::decide::fingerprint::Fingerprint;
use crate::decide::plan::{self, Action};
use crate::run::executor::Outcome;
use crate::sys::process;
use crate::util::error::exit;
use anyhow::Result;
use std::collections::{BTreeSet, HashMap};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn run(cli: &Cli, debounce: Duration, poll: Option<Duration>) -> Result<i32> {
    let root = std::env::current_dir()?;
    let mut project = Project::load(&cli.load_options(), true)?;
    if cli.deploy.force_all {
        project.confirm_protected(&cli.load_options(), "--force-all runs every step")?;
    }
    // `[watch]`, or `[watch staging]` in an environment.
    let tag = match &project.env {
        Some(env) => format!("[watch {env}]"),
        None => "[watch]".to_string(),
    };
    // From now on a signal is handled here (state saved), not by exiting at once.
    process::DEFER_SIGNALS.store(true, std::sync::atomic::Ordering::SeqCst);
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let mut set = WatchSet::of(&project, &cli.load_options());
    // Kept alive for the whole watch; replaced when the set of watched paths changes. None:
    // polling (our own re-fingerprinting, which compares stats to the nanosecond).
    let mut watcher = start_watcher(&set, debounce, poll, tx.clone())?;
    let poll_every = poll.unwrap_or(POLL_FALLBACK);
    // Fingerprint of each step at the last cycle (what polling compares with).
    let mut last: HashMap<String, Fingerprint> = HashMap::new();
    // Steps that ran and did not complete, with the fingerprint they ran with: run again only
    // once it changes (a step that was blocked or never ran is not held back).
    let mut attempted: HashMap<String, String> = HashMap::new();
    // The state's salt for secret config digests, as the last cycle read it.
    let mut salt = String::new();
    let mut first = true;
    let mut changed: BTreeSet<String> = BTreeSet::new();
    // After a script or config error: no cycle until the next change.
    let mut broken = false;
    loop {
        let t0 = Instant::now();
        let cycle = if broken {
            Ok(String::new())
        } else {
            cycle(&project, cli, &mut last, &mut attempted, &mut salt, first)
        };
        first = false;
        report_cycle(&project, &tag, cycle, &changed, t0);
        if process::stopping() {
            return Ok(interrupted_code());
        }
        if !broken {
            project
                .console
                .line(&format!("{tag} waiting for changes (Ctrl+C to stop)"));
        }
        broken = false;
        // Wait for relevant changes; what arrived during the run is already queued.
        changed.clear();
        if watcher.is_none() {
            match poll_changes(&cli.load_options(), &mut project, &last, &salt, poll_every)? {
                Some(c) => {
                    changed = c;
                    set = WatchSet::of(&project, &cli.load_options());
                    continue;
                }
                None => return Ok(interrupted_code()),
            }
        }
        match next_changes(&rx, &root, &set, &project) {
            Waited::Changed(c) => changed = c,
            Waited::Stopped => return Ok(interrupted_code()),
            Waited::Closed => return Ok(exit::OK),
        }
        // Reload steps and config; an error is shown and watch waits for the fix.
        match Project::load(&cli.load_options(), true) {
            Ok(p) => {
                project = p;
                let new_set = WatchSet::of(&project, &cli.load_options());
                if new_set != set {
                    set = new_set;
                    watcher = start_watcher(&set, debounce, poll, tx.clone())?;
                }
            }
            Err(e) => {
                project.console.error(&format!(
                    "{e:#}\n{tag} fix it and save: watch goes on with the last good steps and config"
                ));
                broken = true;
                continue;
            }
        }
    }
}

/// One cycle's line (`[watch] PATHS: what ran (time)`), or its error.
fn report_cycle(
    project: &Project,
    tag: &str,
    cycle: Result<String>,
    changed: &BTreeSet<String>,
    t0: Instant,
) {
    match cycle {
        Ok(line) if line.is_empty() => {}
        Ok(line) => {
            let what = if changed.is_empty() {
                "start".to_string()
            } else {
                changed.iter().cloned().collect::<Vec<_>>().join(", ")
            };
            project.console.line(&format!(
                "{tag} {what}: {line} ({})",
                crate::util::console::duration(t0.elapsed())
            ));
        }
        Err(e) => {
            let code = crate::util::error::exit_code(&e);
            if code == exit::LOCKED {
                project.console.error(&format!("{e}"));
            } else {
                project.console.error(&format!("{e:#}"));
            }
        }
    }
}

/// What waiting for file events ended with.
enum Waited {
    /// The relevant paths that changed (what else was queued taken too).
    Changed(BTreeSet<String>),
    /// A signal: watch stops.
    Stopped,
    /// The watcher went away.
    Closed,
}

/// Waits for a batch of events that touches a watched path.
fn next_changes(
    rx: &mpsc::Receiver<DebounceEventResult>,
    root: &std::path::Path,
    set: &WatchSet,
    project: &Project,
) -> Waited {
    let mut changed = BTreeSet::new();
    loop {
        if process::stopping() {
            return Waited::Stopped;
        }
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(batch) => {
                if let Err(errors) = &batch {
                    for e in errors {
                        project.console.warn(&format!("file watch: {e}"));
                    }
                }
                let paths = |b: &DebounceEventResult| {
                    relevant(root, set, b)
                        .into_iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                };
                changed.extend(paths(&batch));
                // Take whatever else is queued before acting.
                while let Ok(more) = rx.try_recv() {
                    changed.extend(paths(&more));
                }
                if !changed.is_empty() {
                    return Waited::Changed(changed);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return Waited::Closed,
        }
    }
}

fn interrupted_code() -> i32 {
    if process::lock_lost().is_some() {
        return exit::LOCK_LOST;
    }
    match process::interrupted() {
        Some(libc::SIGTERM) => exit::SIGTERM,
        Some(_) => exit::SIGINT,
        None => exit::OK,
    }
}

/// One cycle: lock, load state, fingerprint, decide like a deployment, except that a step
/// whose last attempt in this watch failed waits until its fingerprint changes. Every other
/// step that is not up to date — blocked, never ran, its blocker fixed — is a candidate in
/// every cycle. Returns the line that says what happened.
fn cycle(
    p: &Project,
    cli: &Cli,
    last: &mut HashMap<String, Fingerprint>,
    attempted: &mut HashMap<String, String>,
    salt_out: &mut String,
    first: bool,
) -> Result<String> {
    let opts = plan_options(p, &p.deploy, false)?;
    let store = p.store()?;
    let _lock = store.lock(cli.global.lock_timeout)?;
    let mut state = store.load()?;
    let salt = state.secret_salt();
    salt_out.clone_from(&salt);
    let mut decisions = plan::decide(
        &p.steps,
        &state,
        p.fingerprints(Some(&salt))?,
        &opts,
        &p.read_context(Some(&salt)),
    )?;
    if !first {
        // A step that failed in this watch and is unchanged since waits for an edit.
        for d in decisions.iter_mut() {
            if d.action == Action::Run && attempted.get(&d.step) == Some(&d.fingerprint.combined) {
                d.action = Action::Pending;
                d.reasons = vec!["unchanged since its last failed attempt".into()];
            }
        }
    }
    for d in &decisions {
        last.insert(d.step.clone(), d.fingerprint.clone());
    }
    check_only(p, &decisions, &opts.only)?;
    let to_run: Vec<&str> = decisions
        .iter()
        .filter(|d| d.action == Action::Run)
        .map(|d| d.step.as_str())
        .collect();
    if to_run.is_empty() {
        return Ok("nothing changed, nothing ran".to_string());
    }
    if first {
        print_plan(&p.console, &decisions);
    }
    let Executed { report, meta } =
        execute(p, &p.deploy, store.as_ref(), &decisions, state, false)?;
    for (d, r) in decisions.iter().zip(&report.results) {
        match r.outcome {
            Outcome::Failed | Outcome::Interrupted => {
                attempted.insert(d.step.clone(), d.fingerprint.combined.clone());
            }
            Outcome::Ran => {
                attempted.remove(&d.step);
            }
            _ => {}
        }
    }
    let code = if report.failed() { 1 } else { 0 };
    let mut summary = crate::present::summary::RunSummary::of_run(
        &p.steps, &decisions, &report, &meta, false, code,
    );
    write_report(p, &mut summary);
    let names = |o: Outcome| -> Vec<String> {
        report
            .results
            .iter()
            .filter(|r| r.outcome == o)
            .map(|r| r.step.clone())
            .collect()
    };
    let mut parts = vec![format!("ran {}", list(&names(Outcome::Ran)))];
    for (o, label) in [
        (Outcome::Failed, "failed"),
        (Outcome::Blocked, "blocked"),
        (Outcome::Interrupted, "interrupted"),
    ] {
        let n = names(o);
        if !n.is_empty() {
            parts.push(format!("{label} {}", list(&n)));
        }
    }
    let count = |o: Outcome| report.results.iter().filter(|r| r.outcome == o).count();
    parts.push(format!("{} skipped", count(Outcome::Skipped)));
    let pending = count(Outcome::NotRun);
    if pending > 0 {
        parts.push(format!("{pending} pending"));
    }
    Ok(parts.join("; "))
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(", ")
    }
}
