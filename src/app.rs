//! The commands: wiring config, steps, state, plan and executor together.

use crate::backend;
use crate::cli::{Cli, Command, DeployArgs, GraphFormat, OutputFormat, StateCommand};
use crate::config::Config;
use crate::error::{exit, usage, Failure};
use crate::executor::{Outcome, RunReport, Runner};
use crate::fingerprint::{Fingerprint, Fingerprinter};
use crate::hashcache::HashCache;
use crate::plan::{self, Action, Decision, PlanOptions};
use crate::report::{self, Console};
use crate::script;
use crate::secrets::Masker;
use crate::state::{State, StateStore};
use crate::step::{self, StepSet};
use anyhow::Result;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The folder for local files (logs, backups, hash cache), beside the project.
pub const LOCAL_DIR: &str = ".stepwise";

/// A loaded project: config, engine with prelude, steps.
pub struct Project {
    pub config: Arc<Config>,
    pub engine: rhai::Engine,
    pub steps: StepSet,
    pub masker: Arc<Masker>,
    pub console: Arc<Console>,
    /// The state location: a local path or az://ACCOUNT/CONTAINER/PATH.
    pub state_location: String,
    /// The local hash cache (`.stepwise/hashcache`).
    pub hash_cache: Arc<HashCache>,
}

impl Project {
    pub fn load(cli: &Cli, need_config: bool) -> Result<Project> {
        let config = if need_config || cli.global.config.exists() {
            Config::load(&cli.global.config)?
        } else {
            Config::empty(&cli.global.config)
        };
        let verbose = cli.global.verbose || config.settings.deployment.verbose;
        init_tracing(verbose);
        let mut console = if cli.global.output == OutputFormat::Json {
            Console::quiet(verbose)
        } else {
            Console::new(verbose)
        };
        if !(cli.deploy.dry_run || config.settings.deployment.dry_run) {
            console.enable_live();
        }
        let console = Arc::new(console);
        let masker = Arc::new(Masker::new());
        config.register_secrets(&masker);
        let mut engine = script::engine();
        let prelude = step::load_prelude(&mut engine, &cli.global.prelude_path())?;
        let steps = step::load_steps(&engine, &cli.global.steps, prelude)?;
        tracing::debug!(steps = steps.steps.len(), "steps loaded");
        let state_location = backend::location(cli.global.state.as_deref(), &config)?;
        tracing::debug!(state = %state_location, "state location");
        Ok(Project {
            config: Arc::new(config),
            engine,
            steps,
            masker,
            console,
            state_location,
            hash_cache: Arc::new(HashCache::load(&Path::new(LOCAL_DIR).join("hashcache"))),
        })
    }

    pub(crate) fn store(&self) -> Result<Box<dyn StateStore>> {
        backend::open(&self.state_location)
    }

    /// Fingerprints of every step, in order; warnings printed. Uses and updates the local
    /// hash cache.
    pub(crate) fn fingerprints(&self, secret_salt: Option<&str>) -> Result<Vec<Fingerprint>> {
        let started = std::time::Instant::now();
        let root = Path::new(".");
        let cache = &self.hash_cache;
        let fp = Fingerprinter {
            root,
            config: &self.config,
            prelude_digest: &self.steps.prelude.digest,
            exclude: vec![PathBuf::from(LOCAL_DIR)],
            cache: Some(cache),
            secret_salt,
            memo: Default::default(),
        };
        let mut out = Vec::with_capacity(self.steps.steps.len());
        for s in &self.steps.steps {
            let f = fp.step(s)?;
            for w in &f.warnings {
                self.console.warn(w);
            }
            out.push(f);
        }
        cache.save();
        tracing::debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            files_read = cache.misses.load(std::sync::atomic::Ordering::Relaxed),
            "fingerprints computed"
        );
        Ok(out)
    }

    fn check_names(&self, flag: &str, names: &[String]) -> Result<()> {
        for n in names {
            if self.steps.index(n).is_none() {
                return Err(usage(format!(
                    "{flag} {n}: no such step; valid names: {}",
                    self.steps.names().join(", ")
                )));
            }
        }
        Ok(())
    }
}

/// The config if its file exists (state commands work without one).
fn optional_config(cli: &Cli) -> Result<Config> {
    if cli.global.config.exists() {
        Config::load(&cli.global.config)
    } else {
        Ok(Config::empty(&cli.global.config))
    }
}

/// The store of the current state location (for commands that load no steps).
fn current_store(cli: &Cli) -> Result<Box<dyn StateStore>> {
    let config = optional_config(cli)?;
    backend::open(&backend::location(cli.global.state.as_deref(), &config)?)
}

fn init_tracing(verbose: bool) {
    let level = if verbose {
        "stepwise=debug"
    } else {
        "stepwise=warn"
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .without_time()
        .try_init();
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    match &cli.command {
        None | Some(Command::Deploy) => deploy(&cli),
        Some(Command::Plan) => plan_command(&cli),
        Some(Command::Steps) => steps_command(&cli),
        Some(Command::Graph { format }) => graph_command(&cli, *format),
        Some(Command::Watch { debounce, poll }) => crate::watch::run(
            &cli,
            std::time::Duration::from_millis(*debounce),
            poll.map(std::time::Duration::from_millis),
        ),
        Some(Command::State(sc)) => state_command(&cli, sc),
    }
}

pub(crate) fn plan_options(p: &Project, d: &DeployArgs, resume: bool) -> Result<PlanOptions> {
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

/// `--only`: the selected steps' needs outside the selection must be up to date.
pub(crate) fn check_only(p: &Project, decisions: &[Decision], only: &[String]) -> Result<()> {
    if only.is_empty() {
        return Ok(());
    }
    for name in only {
        let i = p.steps.index(name).unwrap_or(0);
        for need in &p.steps.steps[i].needs {
            if only.contains(need) {
                continue;
            }
            let j = p.steps.index(need).unwrap_or(0);
            if decisions[j].reasons.len() > 1 {
                return Err(usage(format!(
                    "--only {name}: it needs `{need}`, which is not selected and not up to date ({}); add --only {need}",
                    decisions[j].reasons[1..].join("; ")
                )));
            }
        }
    }
    Ok(())
}

pub(crate) fn print_plan(console: &Console, decisions: &[Decision]) {
    let width = decisions.iter().map(|d| d.step.len()).max().unwrap_or(0);
    for d in decisions {
        let mark = match d.action {
            Action::Run => console.paint(report::GREEN, "run    "),
            Action::Skip => console.paint(report::DIM, "skip   "),
            Action::Pending => console.paint(report::YELLOW, "pending"),
            Action::Excluded => console.paint(report::DIM, "exclude"),
        };
        console.line(&format!(
            "  {mark} {:width$}  {}",
            d.step,
            d.reasons.join("; ")
        ));
    }
    let count = |a| decisions.iter().filter(|d| d.action == a).count();
    console.line(&format!(
        "Plan: {} to run, {} up to date{}{}",
        count(Action::Run),
        count(Action::Skip),
        match count(Action::Pending) {
            0 => String::new(),
            k => format!(", {k} pending"),
        },
        match count(Action::Excluded) {
            0 => String::new(),
            k => format!(", {k} not selected"),
        },
    ));
}

fn plan_command(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, true)?;
    let resume = cli.deploy.resume || p.config.settings.deployment.resume;
    let opts = plan_options(&p, &cli.deploy, resume)?;
    let state = if cli.deploy.reset_state {
        State::default()
    } else {
        p.store()?.load()?
    };
    let decisions = plan::decide(&p.steps, &state, p.fingerprints(state.salt())?, &opts);
    if cli.global.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "command": "plan",
            "state": p.state_location,
            "steps": decisions.iter().map(decision_json).collect::<Vec<_>>(),
            "exit_code": exit::OK,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(exit::OK);
    }
    print_plan(&p.console, &decisions);
    Ok(exit::OK)
}

fn decision_json(d: &Decision) -> serde_json::Value {
    serde_json::json!({
        "name": d.step,
        "decision": d.action.as_str(),
        "reasons": d.reasons,
        "dependency_hash": d.fingerprint.combined,
    })
}

/// The JSON document of a deployment (`--output json`).
fn run_json(
    decisions: &[Decision],
    report: &RunReport,
    dry_run: bool,
    code: i32,
) -> serde_json::Value {
    let steps: Vec<serde_json::Value> = decisions
        .iter()
        .zip(&report.results)
        .map(|(d, r)| {
            serde_json::json!({
                "name": d.step,
                "decision": d.action.as_str(),
                "reasons": d.reasons,
                "result": r.outcome.as_str(),
                "reason": r.reason,
                "duration_secs": (r.duration.as_secs_f64() * 1000.0).round() / 1000.0,
            })
        })
        .collect();
    serde_json::json!({
        "command": "deploy",
        "dry_run": dry_run,
        "steps": steps,
        "wall_secs": (report.wall.as_secs_f64() * 1000.0).round() / 1000.0,
        "interrupted": report.interrupted.is_some(),
        "exit_code": code,
    })
}

fn deploy(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, true)?;
    let settings = &p.config.settings.deployment;
    let d = &cli.deploy;
    let dry_run = d.dry_run || settings.dry_run;
    let auto_approve = d.auto_approve || settings.auto_approve;
    let resume = d.resume || settings.resume;
    let opts = plan_options(&p, d, resume)?;
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
    let decisions = plan::decide(&p.steps, &state, p.fingerprints(Some(&salt))?, &opts);
    check_only(&p, &decisions, &opts.only)?;
    print_plan(&p.console, &decisions);
    let json = cli.global.output == OutputFormat::Json;
    if !decisions.iter().any(|d| d.action == Action::Run) {
        p.console.line("Nothing to do.");
        if json {
            let report = Runner::nothing_ran(&decisions);
            println!(
                "{}",
                serde_json::to_string_pretty(&run_json(&decisions, &report, dry_run, exit::OK))?
            );
        }
        return Ok(exit::OK);
    }
    if !dry_run && !auto_approve {
        if std::io::stdin().is_terminal() {
            print!("Run these steps? [y/N] ");
            let _ = std::io::stdout().flush();
            let mut answer = String::new();
            std::io::stdin().lock().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
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
    let report = execute(&p, d, store.as_ref(), &decisions, state, dry_run)?;
    print_summary(&p.console, &report, dry_run);
    if dry_run {
        p.console
            .line("Dry run: no command ran and no state was written.");
    }
    let code = match report.interrupted {
        Some(libc::SIGTERM) => exit::SIGTERM,
        Some(_) => exit::SIGINT,
        None if report.failed() => exit::STEP_FAILED,
        None => exit::OK,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&run_json(&decisions, &report, dry_run, code))?
        );
    }
    Ok(code)
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
) -> Result<RunReport> {
    let run_id = run_id();
    state
        .extra
        .insert("run_id".into(), serde_json::Value::String(run_id.clone()));
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
        log_dir: (!dry_run).then(|| Path::new(LOCAL_DIR).join("logs").join(&run_id)),
        running: Default::default(),
        hash_cache: Some(p.hash_cache.clone()),
    };
    let report = runner.run(decisions, state)?;
    p.hash_cache.save();
    Ok(report)
}

fn run_id() -> String {
    format!(
        "{}-{}",
        crate::state::compact_now(false),
        std::process::id()
    )
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
        "  {:width$}  {:11}  {:>8}  REASON",
        "STEP", "RESULT", "TIME"
    ));
    for r in &report.results {
        let result = match r.outcome {
            Outcome::Ran if dry_run => console.paint(report::GREEN, &format!("{:11}", "✓ dry run")),
            Outcome::Ran => console.paint(report::GREEN, &format!("{:11}", "✓ ran")),
            Outcome::Skipped => console.paint(report::DIM, &format!("{:11}", "· skipped")),
            Outcome::Failed => console.paint(report::RED, &format!("{:11}", "✗ failed")),
            Outcome::Interrupted => console.paint(report::RED, &format!("{:11}", "✗ interrupted")),
            Outcome::Blocked => console.paint(report::YELLOW, &format!("{:11}", "- blocked")),
            Outcome::NotRun => console.paint(report::YELLOW, &format!("{:11}", "- pending")),
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
    let count = |o| report.results.iter().filter(|r| r.outcome == o).count();
    console.line(&format!(
        "{} {}, {} skipped, {} failed, {} blocked{} in {}",
        count(Outcome::Ran),
        if dry_run { "would run" } else { "ran" },
        count(Outcome::Skipped),
        count(Outcome::Failed),
        count(Outcome::Blocked),
        match count(Outcome::Interrupted) {
            0 => String::new(),
            k => format!(", {k} interrupted"),
        },
        report::duration(report.wall)
    ));
}

fn graph_command(cli: &Cli, format: GraphFormat) -> Result<i32> {
    let has_config = cli.global.config.exists();
    let p = Project::load(cli, has_config)?;
    // Mark what would run when there is a config to decide with.
    let decisions = if has_config {
        let opts = plan_options(&p, &cli.deploy, cli.deploy.resume)?;
        let state = p.store()?.load()?;
        Some(plan::decide(
            &p.steps,
            &state,
            p.fingerprints(state.salt())?,
            &opts,
        ))
    } else {
        None
    };
    let action = |i: usize| decisions.as_ref().map(|d| d[i].action);
    let mut out = String::new();
    match format {
        GraphFormat::Mermaid => {
            out.push_str("flowchart TD\n");
            for (i, s) in p.steps.steps.iter().enumerate() {
                let label = match action(i) {
                    Some(a) => format!("{}<br/>{}", s.name, a.as_str()),
                    None => s.name.clone(),
                };
                out.push_str(&format!("    {}[\"{label}\"]\n", s.name));
            }
            for s in &p.steps.steps {
                for n in &s.needs {
                    out.push_str(&format!("    {n} --> {}\n", s.name));
                }
            }
            if decisions.is_some() {
                out.push_str("    classDef run fill:#fde68a,stroke:#b45309\n");
                out.push_str("    classDef skip fill:#e5e7eb,stroke:#6b7280\n");
                for (i, s) in p.steps.steps.iter().enumerate() {
                    let class = if action(i) == Some(Action::Run) {
                        "run"
                    } else {
                        "skip"
                    };
                    out.push_str(&format!("    class {} {class}\n", s.name));
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph stepwise {\n    rankdir=TB;\n    node [shape=box];\n");
            for (i, s) in p.steps.steps.iter().enumerate() {
                let (label, style) = match action(i) {
                    Some(Action::Run) => (
                        format!("{}\\nrun", s.name),
                        ", style=filled, fillcolor=\"#fde68a\"",
                    ),
                    Some(a) => (format!("{}\\n{}", s.name, a.as_str()), ""),
                    None => (s.name.clone(), ""),
                };
                out.push_str(&format!("    \"{}\" [label=\"{label}\"{style}];\n", s.name));
            }
            for s in &p.steps.steps {
                for n in &s.needs {
                    out.push_str(&format!("    \"{n}\" -> \"{}\";\n", s.name));
                }
            }
            out.push_str("}\n");
        }
    }
    print!("{out}");
    Ok(exit::OK)
}

fn steps_command(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, false)?;
    for s in &p.steps.steps {
        p.console.line(&format!(
            "{:02} {}  {}",
            s.order,
            p.console.paint(report::BOLD, &s.name),
            s.description
        ));
        let list = |label: &str, v: &[String]| {
            if !v.is_empty() {
                p.console.line(&format!("     {label}: {}", v.join(", ")));
            }
        };
        list("needs", &s.needs);
        list("files", &s.files);
        list("config", &s.config);
    }
    Ok(exit::OK)
}

fn state_command(cli: &Cli, sc: &StateCommand) -> Result<i32> {
    let lock_timeout = cli.global.lock_timeout;
    match sc {
        StateCommand::Show { step } => {
            let store = current_store(cli)?;
            let state = store.load()?;
            let text = match step {
                None => state.to_json(),
                Some(s) => {
                    let rec = state.steps.get(s).ok_or_else(|| {
                        usage(format!(
                            "no step `{s}` in state {} (steps recorded: {})",
                            store.location(),
                            state.steps.keys().cloned().collect::<Vec<_>>().join(", ")
                        ))
                    })?;
                    serde_json::to_string_pretty(rec)? + "\n"
                }
            };
            print!("{text}");
            Ok(exit::OK)
        }
        StateCommand::Reset { names: steps } => {
            let store = current_store(cli)?;
            let _lock = store.lock(lock_timeout)?;
            let mut state = store.load()?;
            for s in steps {
                if !state.steps.contains_key(s) {
                    return Err(usage(format!(
                        "no step `{s}` in state {} (steps recorded: {})",
                        store.location(),
                        state.steps.keys().cloned().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
            if let Some(b) = store.backup()? {
                println!("state backed up to {b}");
            }
            if steps.is_empty() {
                state.steps.clear();
                println!("state cleared: every step runs on the next deployment");
            } else {
                for s in steps {
                    state.steps.remove(s);
                    println!("forgot {s}: it runs on the next deployment");
                }
            }
            state.last_updated = crate::state::now();
            store.save(&state)?;
            Ok(exit::OK)
        }
        StateCommand::ImportLegacy { file } => crate::legacy::import(cli, file),
        StateCommand::Unlock { force } => {
            let store = current_store(cli)?;
            println!("{}", store.unlock(*force)?);
            Ok(exit::OK)
        }
        StateCommand::History => {
            let store = current_store(cli)?;
            let versions = store.history()?;
            if cli.global.output == OutputFormat::Json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
                return Ok(exit::OK);
            }
            if versions.is_empty() {
                println!("no kept versions of {}", store.location());
            }
            for v in versions {
                println!(
                    "{}  {}  run {}  changed: {}",
                    v.id,
                    v.time,
                    if v.run.is_empty() { "-" } else { &v.run },
                    if v.steps_changed.is_empty() {
                        "-".to_string()
                    } else {
                        v.steps_changed.join(", ")
                    }
                );
            }
            Ok(exit::OK)
        }
        StateCommand::Rollback { version } => {
            let store = current_store(cli)?;
            let _lock = store.lock(lock_timeout)?;
            let _current = store.load()?;
            let mut old = store.version(version)?;
            old.extra.insert(
                "run_id".into(),
                serde_json::Value::String(format!("rollback-to-{version}")),
            );
            old.last_updated = crate::state::now();
            store.save(&old)?;
            println!(
                "state {} rolled back to {version}; steps whose recorded hashes differ from the files run again on the next deployment",
                store.location()
            );
            Ok(exit::OK)
        }
        StateCommand::Push { destination, force } => {
            let from = current_store(cli)?;
            let to = backend::open(destination)?;
            copy_state(from.as_ref(), to.as_ref(), *force, lock_timeout)
        }
        StateCommand::Pull { source, force } => {
            let from = backend::open(source)?;
            let to = current_store(cli)?;
            copy_state(from.as_ref(), to.as_ref(), *force, lock_timeout)
        }
    }
}

/// Copies the state between two locations, under both locks; refuses to overwrite a
/// destination that holds state unless forced.
fn copy_state(
    from: &dyn StateStore,
    to: &dyn StateStore,
    force: bool,
    lock_timeout: std::time::Duration,
) -> Result<i32> {
    let _from_lock = from.lock(lock_timeout)?;
    let _to_lock = to.lock(lock_timeout)?;
    let state = from.load()?;
    if state.steps.is_empty() {
        return Err(usage(format!("{} holds no state to copy", from.location())));
    }
    let existing = to.load()?;
    if !existing.steps.is_empty() && !force {
        return Err(usage(format!(
            "{} already holds state ({} steps): not overwritten (pass --force; its current version stays in its history)",
            to.location(),
            existing.steps.len()
        )));
    }
    to.save(&state)?;
    println!(
        "copied state ({} steps) from {} to {}",
        state.steps.len(),
        from.location(),
        to.location()
    );
    Ok(exit::OK)
}
