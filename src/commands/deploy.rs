//! `stepwise` / `stepwise deploy`: plan, lock, approval, run the steps, summary.

use super::plan::print_plan;
use super::{decide, plan_options, print_gone};
use crate::cli::{Cli, DeployArgs, OutputFormat};
use crate::config::NotifyEvent;
use crate::environment;
use crate::error::{exit, Failure};
use crate::executor::{Outcome, RunReport, Runner};
use crate::plan::{self, Action, Decision};
use crate::project::Project;
use crate::report::{self, Console};
use crate::state::{State, StateStore};
use crate::summary::{RunMeta, RunSummary};
use crate::{html_report, markdown, notify, reports};
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, true)?;
    let settings = &p.config.settings.deployment;
    let d = &cli.deploy;
    let dry_run = d.dry_run || settings.dry_run;
    let auto_approve = d.auto_approve || settings.auto_approve;
    // Bad names and flags fail before the lock is taken.
    plan_options(&p, d, d.resume || settings.resume)?;
    if !dry_run {
        if d.reset_state {
            p.confirm_protected(cli, "--reset-state clears its state")?;
        }
        if d.force_all {
            p.confirm_protected(cli, "--force-all runs every step")?;
        }
    }
    let store = p.store()?;

    // The lock is held for the whole run; a dry run writes nothing and takes none.
    let _lock = if dry_run {
        None
    } else {
        Some(store.lock(cli.global.lock_timeout)?)
    };
    let mut state = store.load()?;
    if d.reset_state {
        if dry_run {
            p.console
                .line("dry run: the state would be backed up and cleared");
        } else {
            if let Some(b) = store.backup()? {
                p.console.line(&format!("state backed up to {b}"));
            }
            state = State::default();
            store.save(&state)?;
        }
        state = State::default();
    }
    let salt = state.secret_salt();
    let (mut decisions, opts) = decide(&p, d, &state, Some(&salt))?;
    let refresh = d.refresh || settings.refresh;
    if refresh {
        refresh_decisions(&p, d, store.as_ref(), &state, &mut decisions, &opts)?;
        if !dry_run {
            // The last successful refresh of each step that was checked and found as deployed.
            let now = crate::state::now();
            let mut touched = false;
            for dec in decisions
                .iter()
                .filter(|x| x.refreshed && x.drift.is_empty())
            {
                if let Some(rec) = state.steps.get_mut(&dec.step) {
                    rec.extra.insert(
                        "refreshed_at".into(),
                        serde_json::Value::String(now.clone()),
                    );
                    touched = true;
                }
            }
            if touched {
                state.last_updated = now;
                store.save(&state)?;
            }
        }
    }
    print_plan(&p.console, &decisions);
    if refresh {
        super::plan::print_not_checked(&p, &decisions);
    }
    print_gone(&p.console, &p, &state);
    let output = cli.global.output;
    if !decisions
        .iter()
        .any(|d| matches!(d.action, Action::Run | Action::Maybe))
    {
        p.hash_cache.save();
        let code = plan::expected_exit(&decisions);
        let report = Runner::nothing_ran(&decisions);
        if code == exit::OK {
            p.console.line("Nothing to do.");
        } else {
            print_summary(&p.console, &report, dry_run);
        }
        let now = crate::state::now();
        let meta = run_meta(&p, run_id(), now.clone(), now);
        let mut summary = RunSummary::of_run(&p.steps, &decisions, &report, &meta, dry_run, code);
        finish(&p, &mut summary, &report, dry_run, output)?;
        return Ok(code);
    }
    if !dry_run && !auto_approve {
        if std::io::stdin().is_terminal() {
            print!("Run these steps? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
                p.hash_cache.save();
                p.console.line("Cancelled: nothing ran.");
                return Ok(exit::STEP_FAILED);
            }
        } else {
            return Err(Failure::new(
                exit::STEP_FAILED,
                "no terminal to ask for approval: pass --auto-approve (or set deployment.auto_approve: true) to run without asking",
            )
            .into());
        }
    }
    let Executed { report, meta } = execute(&p, d, store.as_ref(), &decisions, state, dry_run)?;
    print_summary(&p.console, &report, dry_run);
    if dry_run {
        p.console
            .line("Dry run: no command ran and no state was written.");
    }
    let code = match report.interrupted {
        _ if report.lock_lost.is_some() => exit::LOCK_LOST,
        Some(libc::SIGTERM) => exit::SIGTERM,
        Some(_) => exit::SIGINT,
        None if report.failed() => exit::STEP_FAILED,
        None => exit::OK,
    };
    let mut summary = RunSummary::of_run(&p.steps, &decisions, &report, &meta, dry_run, code);
    finish(&p, &mut summary, &report, dry_run, output)?;
    if !dry_run {
        notify(&p, &summary, &report, code);
    }
    Ok(code)
}

/// After a deployment: the report (not for a dry run; its path on the console), then the
/// `--output json` / `--output markdown` document on stdout.
fn finish(
    p: &Project,
    summary: &mut RunSummary,
    report: &RunReport,
    dry_run: bool,
    output: OutputFormat,
) -> Result<()> {
    let path = if dry_run {
        None
    } else {
        write_report(p, summary)
    };
    if let Some(path) = &path {
        p.console.line(&format!("Report: {}", path.display()));
    }
    match output {
        OutputFormat::Json => {
            let mut doc = serde_json::to_value(&*summary)?;
            if let Some(path) = &path {
                doc["report"] = serde_json::Value::String(path.display().to_string());
            }
            crate::report::print_json(&doc);
        }
        OutputFormat::Markdown => print!(
            "{}",
            p.masker
                .mask(&markdown::run(report, dry_run, summary.exit_code))
        ),
        OutputFormat::Human => {}
    }
    Ok(())
}

/// Tells the config's webhooks how the deployment ended (never changes the result).
fn notify(p: &Project, summary: &RunSummary, report: &RunReport, code: i32) {
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
    let notice = notify::Notice {
        event,
        environment: p.env.clone().unwrap_or_else(|| "default".into()),
        exit_code: code,
        summary: markdown::summary_line(report, false, code),
        markdown: markdown::run(report, false, code),
        counts: report.counts(),
        steps: report
            .results
            .iter()
            .map(|r| {
                (
                    r.step.clone(),
                    r.outcome.as_str().to_string(),
                    r.reason.clone(),
                    (r.duration.as_secs_f64() * 10.0).round() / 10.0,
                )
            })
            .collect(),
        report: serde_json::to_value(summary).unwrap_or_default(),
    };
    notify::send_all(&p.config, &notice, &p.masker, &p.console);
}

/// A deployment's run: what the executor reports, and its id, times, environment and state.
pub(crate) struct Executed {
    pub report: RunReport,
    pub meta: RunMeta,
}

fn run_meta(p: &Project, run_id: String, started_at: String, finished_at: String) -> RunMeta {
    RunMeta {
        run_id,
        started_at,
        finished_at,
        env: p.env.clone(),
        state: p.state_location.clone(),
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
fn log_dir(p: &Project, run_id: &str) -> PathBuf {
    environment::local_dir(p.env.as_deref())
        .join("logs")
        .join(run_id)
}

/// `--refresh`: runs the `verify()` of every step the decisions skip, and applies what they
/// found (drifted steps run; a failed check is an error, exit 1, before anything runs).
pub(crate) fn refresh_decisions(
    p: &Project,
    d: &DeployArgs,
    store: &dyn StateStore,
    state: &State,
    decisions: &mut [Decision],
    opts: &plan::PlanOptions,
) -> Result<()> {
    // Checks only read, so they run for real even in a dry run.
    let checked = with_runner(p, d, store, false, None, state.salt(), |r| {
        crate::refresh::refresh(r, decisions, state)
    });
    crate::refresh::apply(decisions, &checked)
        .map_err(|e| anyhow::Error::from(Failure::new(exit::STEP_FAILED, e)))?;
    plan::settle(&p.steps, state, decisions, opts)?;
    plan::block(&p.steps, decisions);
    Ok(())
}

/// A runner of this project's steps for `f`.
fn with_runner<R>(
    p: &Project,
    d: &DeployArgs,
    store: &dyn StateStore,
    dry_run: bool,
    log_dir: Option<std::path::PathBuf>,
    salt: Option<&str>,
    f: impl FnOnce(&Runner) -> R,
) -> R {
    // Fingerprints taken when a step starts (after its ancestors ran), with a fresh memo.
    let fingerprint_at_start = |s: &crate::step::Step| p.fingerprinter(salt).step(s);
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
        strict: d.strict || p.config.settings.deployment.strict,
        strict_secrets: d.strict || p.config.settings.deployment.strict_secrets,
        verify_after_run: !d.no_verify_after_run && p.config.settings.deployment.verify_after_run,
        fingerprint: &fingerprint_at_start,
    };
    f(&runner)
}

/// Runs the decided steps (records them in `store`), saves the hash cache; prints the step
/// lines but not the summary.
pub(crate) fn execute(
    p: &Project,
    d: &DeployArgs,
    store: &dyn StateStore,
    decisions: &[Decision],
    mut state: State,
    dry_run: bool,
) -> Result<Executed> {
    let run_id = run_id();
    let started_at = crate::state::now();
    state
        .extra
        .insert("run_id".into(), serde_json::Value::String(run_id.clone()));
    let salt = state.salt().map(str::to_string);
    let log_dir = (!dry_run).then(|| log_dir(p, &run_id));
    let report = with_runner(p, d, store, dry_run, log_dir, salt.as_deref(), |runner| {
        runner.run(decisions, state)
    })?;
    p.hash_cache.save();
    let meta = run_meta(p, run_id, started_at, crate::state::now());
    Ok(Executed { report, meta })
}

/// A new run id: the time to the second, the process, and (from a process's second run on,
/// e.g. watch cycles) a sequence number, so that two runs of one process in the same second
/// never share logs or a report.
fn run_id() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let base = format!(
        "{}-{}",
        crate::state::compact_now(false),
        std::process::id()
    );
    match SEQ.fetch_add(1, Ordering::Relaxed) {
        0 => base,
        n => format!("{base}-{n}"),
    }
}

pub(crate) fn print_summary(console: &Console, report: &RunReport, dry_run: bool) {
    let width = report
        .results
        .iter()
        .map(|r| r.step.len())
        .max()
        .unwrap_or(0)
        .max(4);
    console.line("");
    console.line(&format!(
        "  {:width$}  {:13}  {:>8}  REASON",
        "STEP", "RESULT", "TIME"
    ));
    for r in &report.results {
        let result = match r.outcome {
            Outcome::Ran if dry_run => console.paint(report::GREEN, &format!("{:13}", "✓ dry run")),
            Outcome::Ran => console.paint(report::GREEN, &format!("{:13}", "✓ ran")),
            Outcome::Skipped => console.paint(report::DIM, &format!("{:13}", "· skipped")),
            Outcome::Failed => console.paint(report::RED, &format!("{:13}", "✗ failed")),
            Outcome::Interrupted => console.paint(report::RED, &format!("{:13}", "✗ interrupted")),
            Outcome::Blocked => console.paint(report::YELLOW, &format!("{:13}", "- blocked")),
            Outcome::NotRun => console.paint(report::YELLOW, &format!("{:13}", "- pending")),
        };
        let time = if r.outcome == Outcome::Ran || r.duration > std::time::Duration::ZERO {
            report::duration(r.duration)
        } else {
            String::new()
        };
        console.line(&format!(
            "  {:width$}  {result}  {time:>8}  {}",
            r.step, r.reason
        ));
    }
    let c = report.counts();
    console.line(&format!(
        "{}{} {}, {} skipped, {} failed, {} blocked{} in {}",
        match console.env() {
            Some(env) => format!("environment {env}: "),
            None => String::new(),
        },
        c.ran,
        if dry_run { "would run" } else { "ran" },
        c.skipped,
        c.failed,
        c.blocked,
        match c.interrupted {
            0 => String::new(),
            k => format!(", {k} interrupted"),
        },
        report::duration(report.wall)
    ));
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
