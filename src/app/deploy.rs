//! The application layer: what a deployment does (decide, refresh, execute, report, notify),
//! called by the commands `deploy`, `plan`, `watch`, `graph` and `report` alike, so that they
//! decide and run the same way.

use crate::app::options::{DeployOptions, Output};
use crate::app::project::{Project, StateTarget};
use crate::config::environment;
use crate::config::NotifyEvent;
use crate::decide::plan::{self, Decision, PlanOptions};
use crate::present::summary::{RunMeta, RunSummary};
use crate::run::executor::{RunOutcome, Runner};
use crate::state::runs::Target;
use crate::state::{State, StateStore};
use crate::util::error::{exit, usage, Failure, Kind};
use crate::{present::html_report, present::markdown, present::notify, present::reports};
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

pub(crate) fn plan_options(p: &Project, d: &DeployOptions, resume: bool) -> Result<PlanOptions> {
    p.check_names("--force-step", &d.force_step)?;
    p.check_names("--only", &d.only)?;
    let mut force_steps = d.force_step.clone();
    if d.with_dependents {
        if force_steps.is_empty() {
            return Err(usage("--with-dependents goes with --force-step NAME"));
        }
        // Every step that needs a forced step, directly or not (steps are few: a fixpoint).
        loop {
            let before = force_steps.len();
            for s in &p.steps.steps {
                if !force_steps.contains(&s.name) && s.needs.iter().any(|n| force_steps.contains(n))
                {
                    force_steps.push(s.name.clone());
                }
            }
            if force_steps.len() == before {
                break;
            }
        }
    }
    Ok(PlanOptions {
        force_all: d.force_all,
        force_steps,
        resume,
        only: d.only.clone(),
    })
}

/// `--only`: the selected steps' needs outside the selection must be up to date (exit 2).
pub(crate) fn check_only(p: &Project, decisions: &[Decision], only: &[String]) -> Result<()> {
    match crate::decide::plan::refusal(&p.steps, decisions, only) {
        Some(why) => Err(usage(why)),
        None => Ok(()),
    }
}

/// The decisions a deployment with these flags (and the config's defaults) would make on
/// `state`, or what it would refuse, and the options it decided with: the one function behind
/// `deploy`, `--dry-run`, `plan` and `graph`.
pub(crate) fn decide(
    p: &Project,
    d: &DeployOptions,
    state: &State,
    salt: Option<&str>,
) -> Result<(Vec<Decision>, PlanOptions)> {
    let resume = d.resume;
    let opts = plan_options(p, d, resume)?;
    let decisions = crate::decide::plan::decide(
        &p.steps,
        state,
        p.fingerprints(salt)?,
        &opts,
        &p.read_context(salt),
    )?;
    check_only(p, &decisions, &opts.only)?;
    let mut decisions = decisions;
    images_to_rebuild(p, state, &mut decisions, salt);
    Ok((decisions, opts))
}

/// For each step that would run and built images before: which of them would be rebuilt.
fn images_to_rebuild(p: &Project, state: &State, decisions: &mut [Decision], salt: Option<&str>) {
    use crate::decide::plan::Action;
    let fp = p.fingerprinter(salt);
    for d in decisions
        .iter_mut()
        .filter(|d| matches!(d.action, Action::Run | Action::Maybe | Action::Pending))
    {
        let sources = state
            .steps
            .get(&d.step)
            .and_then(|r| r.extra.get(crate::decide::images::SOURCES_KEY))
            .and_then(|v| v.as_object());
        if let Some(sources) = sources {
            d.images = crate::decide::images::check(&fp, sources, d.forced);
        }
    }
}

/// `--refresh`: which skipped steps have no `verify()` and were therefore not checked.
/// The state and the decisions of a deployment (with `--refresh`, after the checks), as `plan`
/// shows them; nothing runs and nothing is written but the hash cache.
pub(crate) fn planned(p: &Project, d: &DeployOptions) -> Result<(State, Vec<Decision>)> {
    let store = p.store()?;
    let state = if d.reset_state {
        State::default()
    } else {
        store.load()?
    };
    let (mut decisions, opts) = decide(p, d, &state, state.salt())?;
    if d.refresh {
        super::deploy::refresh_decisions(p, d, store.as_ref(), &state, &mut decisions, &opts)?;
    }
    p.hash_cache.save();
    Ok((state, decisions))
}

/// Tells the config's webhooks how the deployment ended (never changes the result).
pub(crate) fn notify(p: &Project, summary: &RunSummary, report: &RunOutcome, code: i32) {
    if p.config.settings.notify.is_empty() {
        return;
    }
    // A run that lost its lock stopped like an interrupted one.
    let stopped = report.interrupted.is_some() || report.lock_lost.is_some();
    let event = match (stopped, report.failed()) {
        (true, _) => NotifyEvent::Interrupted,
        (false, true) => NotifyEvent::Failure,
        (false, false) => NotifyEvent::Success,
    };
    let markdown = markdown::run(&summary.label(), report, false, code)
        + summary
            .cost
            .as_ref()
            .map(|c| format!("\nEstimated cost: {}\n", c.describe()))
            .unwrap_or_default()
            .as_str();
    let line = markdown::summary_line(&summary.label(), report, false, code);
    let notice = notify::Notice::of(event, summary, line, markdown);
    notify::send_all(&p.config, &notice, &p.masker, &p.console);
}

/// A deployment's run: what the executor reports, and its id, times, environment and state.
pub(crate) struct Executed {
    pub report: RunOutcome,
    pub meta: RunMeta,
}

pub(crate) fn run_meta(
    p: &Project,
    run_id: String,
    started_at: String,
    finished_at: String,
) -> RunMeta {
    RunMeta {
        run_id,
        started_at,
        finished_at,
        env: p.env.clone(),
        state: p.state_location.clone(),
        rollback_target: None,
        project: p.name(),
        config: match &p.config.overlay {
            _ if !p.config.path.is_file() => String::new(),
            Some(o) => format!("{} + {}", p.config.path.display(), o.display()),
            None => p.config.path.display().to_string(),
        },
        git: crate::sys::origin::git(),
        ci: crate::sys::origin::ci_run(),
    }
}

/// Writes the HTML report of a deployment and its summary into the environment's reports
/// folder, beside its logs (adding the log tail of each failed step to the summary). A failure
/// is a warning: the deployment and its state are not affected. Returns the report's path.
pub(crate) fn write_report(p: &Project, summary: &mut RunSummary) -> Option<PathBuf> {
    let started = std::time::Instant::now();
    let local = environment::local_dir(p.env.as_deref());
    let logs = log_dir(p, &summary.run_id);
    for s in summary.steps.iter_mut() {
        if matches!(s.result.as_str(), "failed" | "interrupted") {
            let log = logs.join(format!("{}.log", s.name));
            s.log_tail = reports::log_tail(&log, 20)
                .iter()
                .map(|l| p.masker.mask(l))
                .collect();
        }
    }
    let dir = reports::dir(&local);
    let history = reports::history(&dir, &summary.run_id);
    let written = std::panic::catch_unwind(|| html_report::render(summary, &history))
        .map_err(|_| anyhow::anyhow!("rendering it failed"))
        .and_then(|html| reports::write_run(&dir, summary, &html, &p.masker));
    tracing::debug!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        earlier_runs = history.len(),
        "run report written"
    );
    match written {
        Ok(path) => Some(path),
        Err(e) => {
            p.console.warn(&format!(
                "the run report was not written: {e:#} (the deployment and its state are not affected)"
            ));
            None
        }
    }
}

/// The log folder of a run (per environment).
pub(crate) fn log_dir(p: &Project, run_id: &str) -> PathBuf {
    environment::local_dir(p.env.as_deref())
        .join("logs")
        .join(run_id)
}

/// `--refresh`: runs the `verify()` of every step the decisions skip, and applies what they
/// found (drifted steps run; a failed check is an error, exit 1, before anything runs).
pub(crate) fn refresh_decisions(
    p: &Project,
    d: &DeployOptions,
    store: &dyn StateStore,
    state: &State,
    decisions: &mut [Decision],
    opts: &plan::PlanOptions,
) -> Result<()> {
    // Checks only read, so they run for real even in a dry run.
    let checked = with_runner(p, d, store, RunSetup::default(), state.salt(), |r| {
        crate::run::refresh::refresh(r, decisions, state)
    });
    crate::run::refresh::apply(decisions, &checked)
        .map_err(|e| anyhow::Error::from(Failure::new(Kind::StepFailed, e)))?;
    plan::settle(&p.steps, state, decisions, opts)?;
    plan::block(&p.steps, decisions);
    Ok(())
}

/// What kind of run a runner makes: a dry run or not, where its logs go, a rollback's target.
#[derive(Default)]
pub(crate) struct RunSetup {
    pub dry_run: bool,
    pub log_dir: Option<PathBuf>,
    pub rollback: Option<std::sync::Arc<Target>>,
}

/// A runner of this project's steps for `f`.
pub(crate) fn with_runner<R>(
    p: &Project,
    d: &DeployOptions,
    store: &dyn StateStore,
    setup: RunSetup,
    salt: Option<&str>,
    f: impl FnOnce(&Runner) -> R,
) -> R {
    let RunSetup {
        dry_run,
        log_dir,
        rollback,
    } = setup;
    // Fingerprints taken when a step starts (after its ancestors ran), with a fresh memo.
    let fingerprint_at_start = |s: &crate::decide::step::Step| p.fingerprinter(salt).step(s);
    let runner = Runner {
        engine: &p.engine,
        steps: &p.steps,
        config: p.config.clone(),
        masker: p.masker.clone(),
        console: p.console.clone(),
        store,
        dry_run,
        jobs: if dry_run { 1 } else { d.jobs },
        keep_going: d.keep_going,
        log_dir,
        running: Default::default(),
        hash_cache: Some(p.hash_cache.clone()),
        strict: d.strict,
        strict_secrets: d.strict_secrets,
        verify_after_run: d.verify_after_run,
        fingerprint: &fingerprint_at_start,
        rollback,
    };
    f(&runner)
}

/// Runs the decided steps (records them in `store`), saves the hash cache; prints the step
/// lines but not the summary.
pub(crate) fn execute(
    p: &Project,
    d: &DeployOptions,
    store: &dyn StateStore,
    decisions: &[Decision],
    state: State,
    dry_run: bool,
) -> Result<Executed> {
    execute_as(p, d, store, decisions, state, dry_run, None)
}

/// `execute`, or with `rollback` a rollback to that target: each step's `fn rollback(target)`
/// runs instead of `run()`, and the state's versions say that a rollback wrote them.
pub(crate) fn execute_as(
    p: &Project,
    d: &DeployOptions,
    store: &dyn StateStore,
    decisions: &[Decision],
    mut state: State,
    dry_run: bool,
    rollback: Option<std::sync::Arc<Target>>,
) -> Result<Executed> {
    use crate::state::{KIND_KEY, TARGET_KEY};
    use serde_json::Value;
    let run_id = run_id();
    let started_at = crate::util::clock::now();
    state
        .extra
        .insert("run_id".into(), Value::String(run_id.clone()));
    match &rollback {
        Some(t) => {
            state
                .extra
                .insert(KIND_KEY.into(), Value::String("rollback".into()));
            state
                .extra
                .insert(TARGET_KEY.into(), Value::String(t.run.clone()));
        }
        None => {
            state.extra.remove(KIND_KEY);
            state.extra.remove(TARGET_KEY);
        }
    }
    let salt = state.salt().map(str::to_string);
    let log_dir = (!dry_run).then(|| log_dir(p, &run_id));
    let target = rollback.as_ref().map(|t| t.run.clone());
    let report = with_runner(
        p,
        d,
        store,
        RunSetup {
            dry_run,
            log_dir,
            rollback,
        },
        salt.as_deref(),
        |r| r.run(decisions, state),
    )?;
    p.hash_cache.save();
    let mut meta = run_meta(p, run_id, started_at, crate::util::clock::now());
    meta.rollback_target = target;
    Ok(Executed { report, meta })
}

/// After the steps ran: the console summary (and the dry-run line), the exit code, and the run
/// summary the report, the `--output` document and notifications are made from.
pub(crate) fn summarize(
    p: &Project,
    decisions: &[Decision],
    executed: &Executed,
    dry_run: bool,
) -> (i32, RunSummary) {
    let Executed { report, meta } = executed;
    crate::app::show::print_summary(&p.console, report, dry_run);
    if dry_run {
        p.console
            .line("Dry run: no command ran and no state was written.");
    }
    let code = exit_code(report);
    let summary = RunSummary::of_run(&p.steps, decisions, report, meta, dry_run, code);
    (code, summary)
}

/// The report and the `--output` document (`finish`), then the notifications (not for a dry
/// run).
pub(crate) fn publish(
    p: &Project,
    summary: &mut RunSummary,
    report: &RunOutcome,
    dry_run: bool,
    output: Output,
) -> Result<()> {
    finish(p, summary, report, dry_run, output)?;
    if !dry_run {
        notify(p, summary, report, summary.exit_code);
    }
    Ok(())
}

/// A new run id: the time to the second, the process, and (from a process's second run on,
/// e.g. watch cycles) a sequence number, so that two runs of one process in the same second
/// never share logs or a report.
pub(crate) fn run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let base = format!(
        "{}-{}",
        crate::util::clock::compact_now(false),
        std::process::id()
    );
    match SEQ.fetch_add(1, Ordering::Relaxed) {
        0 => base,
        n => format!("{base}-{n}"),
    }
}

/// Asks on the terminal before running; without a terminal, refuses (exit 1): false when the
/// answer is no (nothing ran).
pub(crate) fn approved(p: &Project, question: &str) -> Result<bool> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::new(
            Kind::Refused,
            "no terminal to ask for approval: pass --auto-approve (or set deployment.auto_approve: true) to run without asking",
        )
        .into());
    }
    print!("{question} [y/N] ");
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
        return Ok(true);
    }
    p.hash_cache.save();
    p.console.line("Cancelled: nothing ran.");
    Ok(false)
}

/// The exit code of a deployment that ran: a lost lock, a signal, a failure, or success.
pub(crate) fn exit_code(report: &RunOutcome) -> i32 {
    match report.interrupted {
        _ if report.lock_lost.is_some() => exit::LOCK_LOST,
        Some(libc::SIGTERM) => exit::SIGTERM,
        Some(_) => exit::SIGINT,
        None if report.failed() => exit::STEP_FAILED,
        None => exit::OK,
    }
}

/// After a deployment: the report (not for a dry run, nor when nothing ran; its path on the console), then the
/// `--output json` / `--output markdown` document on stdout.
pub(crate) fn finish(
    p: &Project,
    summary: &mut RunSummary,
    report: &RunOutcome,
    dry_run: bool,
    output: Output,
) -> Result<()> {
    // A run in which every step was up to date writes no report: the reports folder keeps
    // (and `report latest` names) runs that did something.
    let nothing = summary.exit_code == crate::util::error::exit::OK
        && summary.steps.iter().all(|s| s.result == "skipped");
    let path = if dry_run || nothing {
        None
    } else {
        write_report(p, summary)
    };
    if let Some(path) = &path {
        p.console.line(&format!("Report: {}", path.display()));
    }
    match output {
        Output::Json => {
            let mut doc = serde_json::to_value(&*summary)?;
            if let Some(path) = &path {
                doc["report"] = serde_json::Value::String(path.display().to_string());
            }
            crate::util::console::print_json(&doc);
        }
        Output::Markdown => print!(
            "{}",
            p.masker.mask(&markdown::run(
                &summary.label(),
                report,
                dry_run,
                summary.exit_code
            ))
        ),
        Output::Human => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn run_ids_of_one_process_are_unique_within_a_second() {
        let ids: Vec<String> = (0..3).map(|_| super::run_id()).collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        assert_ne!(ids[0], ids[2]);
    }
}
