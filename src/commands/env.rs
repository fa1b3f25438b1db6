//! `stepwise env list`: every environment known from overlay files next to the config and
//! from state found at the configured location, with its state location, its last run and
//! what a deploy would do now.

use crate::app::project::{Project, StateTarget};
use crate::cli::{Cli, OutputFormat};
use crate::config::environment;
use crate::config::Config;
use crate::decide::plan::{self, Action, PlanOptions};
use crate::state::backend;
use crate::state::{State, Status};
use crate::util::console::{self, Console};
use crate::util::error::exit;
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// One environment as listed.
struct Row {
    /// `None`: the default environment.
    name: Option<String>,
    overlay: Option<PathBuf>,
    protected: bool,
    state: String,
    /// Counts of the last run; `None`: never ran.
    last_run: Option<LastRun>,
    plan: Option<PlanCounts>,
    /// Why the environment could not be loaded or planned.
    error: Option<String>,
}

struct LastRun {
    time: String,
    result: &'static str,
    completed: usize,
    failed: usize,
    never_ran: usize,
}

struct PlanCounts {
    run: usize,
    up_to_date: usize,
    pending: usize,
    not_selected: usize,
}

pub fn list(cli: &Cli) -> Result<i32> {
    let config_path = &cli.global.config;
    let base = if config_path.exists() {
        Config::load(config_path)?
    } else {
        Config::empty(config_path)
    };
    let flag = cli.global.state.as_deref();
    // Environments with an overlay, then those with state at the configured location.
    let mut known: BTreeMap<String, Option<PathBuf>> = BTreeMap::new();
    for (name, overlay) in environment::overlays(config_path) {
        known.insert(name, Some(overlay));
    }
    let template = environment::template(&backend::location(flag, &base)?);
    match backend::environments_at(&template) {
        Ok(names) => {
            for name in names {
                known.entry(name).or_insert(None);
            }
        }
        // The overlays are still worth listing.
        Err(e) => eprintln!("warning: cannot look for environments' state at {template}: {e:#}"),
    }
    let mut rows = Vec::new();
    // The default environment, when it has state.
    if let Ok(location) = environment::state_location(&backend::location(flag, &base)?, None) {
        let state = backend::open_for(&location, None).and_then(|s| s.load());
        if state.as_ref().map_or(true, |s| !s.steps.is_empty()) {
            rows.push(row(cli, None, None, &location, state));
        }
    }
    for (name, overlay) in known {
        let fallback = template.replace(environment::PLACEHOLDER, &name);
        rows.push(row(
            cli,
            Some(&name),
            overlay,
            &fallback,
            Ok(State::default()),
        ));
    }
    if cli.global.output == OutputFormat::Json {
        let doc = json!({
            "command": "env list",
            "config": config_path.display().to_string(),
            "environments": rows.iter().map(row_json).collect::<Vec<_>>(),
            "exit_code": exit::OK,
        });
        crate::util::console::print_json(&doc);
        return Ok(exit::OK);
    }
    let console = Console::new(false);
    if rows.is_empty() {
        console.line(&format!(
            "No environments: no overlay next to {} (config.NAME.yaml) and no state at {template}.",
            config_path.display()
        ));
    }
    for r in &rows {
        print_row(&console, r);
    }
    Ok(exit::OK)
}

/// Loads environment `name` and reads its state and plan. `fallback` is the state location
/// when the environment cannot be loaded; `state` the default environment's state, already
/// read.
fn row(
    cli: &Cli,
    name: Option<&str>,
    overlay: Option<PathBuf>,
    fallback: &str,
    state: Result<State>,
) -> Row {
    let mut r = Row {
        name: name.map(str::to_string),
        overlay,
        protected: false,
        state: fallback.to_string(),
        last_run: None,
        plan: None,
        error: None,
    };
    let project = match Project::load_env(&cli.load_options(), true, name) {
        Ok(p) => p,
        Err(e) => {
            // The state is still worth showing (e.g. an overlay that was removed).
            if let Ok(s) = backend::open_for(fallback, name).and_then(|s| s.load()) {
                r.last_run = last_run(&s, None);
            }
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    r.protected = project.config.settings.deployment.protected;
    r.state = project.state_location.clone();
    let state = match name {
        None => state,
        Some(_) => project.store().and_then(|s| s.load()),
    };
    let state = match state {
        Ok(s) => s,
        Err(e) => {
            r.error = Some(format!("{e:#}"));
            return r;
        }
    };
    let names: Vec<&str> = project
        .steps
        .steps
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    r.last_run = last_run(&state, Some(&names));
    let opts = PlanOptions {
        resume: project.deploy.resume,
        ..Default::default()
    };
    let decisions = project.fingerprints(state.salt()).and_then(|fps| {
        plan::decide(
            &project.steps,
            &state,
            fps,
            &opts,
            &project.read_context(state.salt()),
        )
    });
    match decisions {
        Ok(decisions) => {
            let count = |a: &[Action]| decisions.iter().filter(|d| a.contains(&d.action)).count();
            r.plan = Some(PlanCounts {
                run: count(&[Action::Run]),
                up_to_date: count(&[Action::Skip]),
                pending: count(&[Action::Pending, Action::Maybe]),
                not_selected: count(&[Action::Excluded]),
            });
        }
        Err(e) => r.error = Some(format!("{e:#}")),
    }
    r
}

/// The last run as the state records it: `steps` are the current steps (`None`: unknown,
/// the never-ran count is then 0).
fn last_run(state: &State, steps: Option<&[&str]>) -> Option<LastRun> {
    if state.steps.is_empty() {
        return None;
    }
    let records: Vec<_> = match steps {
        Some(names) => names.iter().filter_map(|n| state.steps.get(*n)).collect(),
        None => state.steps.values().collect(),
    };
    let with = |s: Status| records.iter().filter(|r| r.status == s).count();
    let (failed, interrupted) = (with(Status::Failed), with(Status::Interrupted));
    Some(LastRun {
        time: state.last_updated.clone(),
        result: if failed > 0 {
            "failed"
        } else if interrupted > 0 {
            "interrupted"
        } else {
            "succeeded"
        },
        completed: with(Status::Completed),
        failed: failed + interrupted,
        never_ran: steps.map_or(0, |n| n.len() - records.len()),
    })
}

fn print_row(console: &Console, r: &Row) {
    let mut tags = Vec::new();
    match &r.overlay {
        Some(o) => tags.push(o.display().to_string()),
        None if r.name.is_some() => tags.push("no overlay".to_string()),
        None => tags.push("no --env".to_string()),
    }
    if r.protected {
        tags.push("protected".to_string());
    }
    console.line(&format!(
        "{}  ({})",
        console.paint(console::BOLD, environment::display(r.name.as_deref())),
        tags.join(", ")
    ));
    console.line(&format!("  state     {}", r.state));
    let last = match &r.last_run {
        None => "never".to_string(),
        Some(l) => format!(
            "{} {}: {} completed, {} failed, {} never ran",
            if l.time.is_empty() { "-" } else { &l.time },
            l.result,
            l.completed,
            l.failed,
            l.never_ran
        ),
    };
    console.line(&format!("  last run  {last}"));
    match (&r.plan, &r.error) {
        (_, Some(e)) => console.line(&format!(
            "  deploy    {}",
            console.paint(console::RED, &format!("cannot plan: {e}"))
        )),
        (Some(p), None) => {
            let mut parts = vec![format!("{} up to date", p.up_to_date)];
            if p.pending > 0 {
                parts.push(format!("{} pending", p.pending));
            }
            if p.not_selected > 0 {
                parts.push(format!("{} not selected", p.not_selected));
            }
            let head = if p.run == 0 {
                console.paint(console::DIM, "nothing to do")
            } else {
                console.paint(console::YELLOW, &format!("would run {}", p.run))
            };
            console.line(&format!("  deploy    {head} ({})", parts.join(", ")));
        }
        (None, None) => {}
    }
}

fn row_json(r: &Row) -> Value {
    json!({
        "name": environment::display(r.name.as_deref()),
        "default": r.name.is_none(),
        "overlay": r.overlay.as_ref().map(|o| o.display().to_string()),
        "protected": r.protected,
        "state": r.state,
        "last_run": r.last_run.as_ref().map(|l| json!({
            "time": l.time,
            "result": l.result,
            "completed": l.completed,
            "failed": l.failed,
            "never_ran": l.never_ran,
        })),
        "plan": r.plan.as_ref().map(|p| json!({
            "run": p.run,
            "up_to_date": p.up_to_date,
            "pending": p.pending,
            "would_deploy": p.run > 0,
        })),
        "error": r.error,
    })
}

/// `env new NAME`: writes `config.NAME.yaml` from the keys the example overlays set
/// differently, all commented out; never overwrites.
pub fn new(cli: &Cli, name: &str) -> Result<i32> {
    environment::check("env new", name)?;
    let config = &cli.global.config;
    let path = environment::overlay_path(config, name);
    if path.exists() {
        return Err(crate::util::error::Kind::Conflict.error(format!(
            "{} exists: left alone (edit it, or remove it to start again)",
            path.display()
        )));
    }
    let mut examples = Vec::new();
    for (env, file) in environment::example_overlays(config) {
        let text = std::fs::read_to_string(&file)?;
        let value =
            serde_norway::from_str(&text).map_err(|e| crate::config::yaml::located(&file, e))?;
        examples.push((env, value));
    }
    let base = config.file_name().unwrap_or_default().to_string_lossy();
    let (text, keys) = crate::config::new_overlay::text(name, &base, &examples);
    write_new(&path, &text)?;
    let from: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    println!(
        "wrote {} ({} keys to fill in, from the example overlays: {})",
        path.display(),
        keys,
        if from.is_empty() {
            "none found".to_string()
        } else {
            from.join(", ")
        }
    );
    println!("next: edit it, then `stepwise --env {name} plan`");
    Ok(exit::OK)
}

/// Writes a file that must not exist yet (a race with another writer is refused too).
fn write_new(path: &std::path::Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| {
            crate::util::error::Failure::caused_by(
                crate::util::error::Kind::Conflict,
                format!("cannot create {}", path.display()),
                e,
            )
        })?;
    f.write_all(text.as_bytes())?;
    Ok(())
}
