//! The commands: one module per subcommand, each wiring project, plan, state and executor
//! together. Nothing below this layer imports it.

pub mod check;
pub mod completions;
pub mod cost;
pub mod definitions;
pub mod deploy;
pub mod diff;
pub mod env;
pub mod graph;
pub mod init;
pub mod man;
pub mod output;
pub mod plan;
pub mod report;
pub mod rollback;
pub mod schema;
pub mod state;
pub mod steps;
pub mod watch;

use crate::cli::{Cli, Command, EnvCommand, OutputFormat};
use crate::util::error::{usage, Kind, OrFail};
use anyhow::Result;

/// The program: parses the command line, runs it, prints errors, returns the exit code.
pub fn main() -> i32 {
    // Started as a command's supervisor (see `supervisor`): nothing else of stepwise runs.
    if let Some(code) = crate::sys::supervisor::maybe_run() {
        return code;
    }
    // A file size limit (`ulimit -f`) must fail a write with EFBIG (the state stays intact),
    // not kill the process.
    unsafe {
        libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
    }
    crate::sys::process::install_signal_handlers();
    // A completion request from the shell (`STEPWISE_COMPLETE=bash stepwise -- ...`) is
    // answered here, before anything else prints.
    crate::cli::completion::complete_env();
    let cli = match crate::cli::Cli::parse_args() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                crate::util::error::exit::USAGE
            } else {
                0
            };
        }
    };
    let output = cli.global.output;
    match run(cli) {
        // A run that lost its lock ends with its own code, whatever else happened.
        Ok(_) if crate::sys::process::lock_lost().is_some() => {
            crate::util::error::Kind::LockLost.exit_code()
        }
        Ok(code) => code,
        Err(e) => {
            let code = if crate::sys::process::lock_lost().is_some() {
                crate::util::error::Kind::LockLost.exit_code()
            } else {
                crate::util::error::exit_code(&e)
            };
            let mut msg = e.to_string();
            for cause in e.chain().skip(1) {
                msg.push_str(&format!("\n  caused by: {cause}"));
            }
            // The error may quote a command or an answer: masked like every other sink.
            let msg = crate::util::secrets::global().mask(&msg);
            crate::util::console::Console::new(false).error(&msg);
            match output {
                crate::cli::OutputFormat::Json => {
                    let doc = serde_json::json!({ "error": msg, "exit_code": code });
                    crate::util::console::print_json(&doc);
                }
                crate::cli::OutputFormat::Markdown => {
                    print!("{}", crate::present::markdown::error(&msg, code))
                }
                crate::cli::OutputFormat::Human => {}
            }
            code
        }
    }
}

/// Runs the parsed command line; returns the exit code.
pub fn run(cli: Cli) -> Result<i32> {
    // A bad environment name stops every command before anything is read.
    crate::config::environment::selected(cli.global.env.as_deref())?;
    check_output(&cli)?;
    enter_project_root(&cli)?;
    match &cli.command {
        None | Some(Command::Deploy(_)) => deploy::run(&cli),
        Some(Command::Plan {
            cost,
            detailed_exitcode,
            ..
        }) => plan::run_detailed(&cli, *cost, *detailed_exitcode),
        Some(Command::Output { which, raw, .. }) => output::run(&cli, which.as_deref(), *raw),
        Some(Command::Cost(_)) => cost::run(&cli),
        Some(Command::Steps { secrets, .. }) => steps::run(&cli, *secrets),
        Some(Command::Check(_)) => check::run(&cli),
        Some(Command::Graph { format, .. }) => graph::run(&cli, *format),
        Some(Command::Watch { debounce, poll, .. }) => watch::run(
            &cli,
            std::time::Duration::from_millis(*debounce),
            poll.map(std::time::Duration::from_millis),
        ),
        Some(Command::Report {
            run, open, plan, ..
        }) => report::run(&cli, run.as_deref(), *open, *plan),
        Some(Command::Rollback {
            run,
            all_or_nothing,
            ..
        }) => rollback::run(
            &cli,
            crate::app::rollback::RollbackOptions {
                run: run.clone(),
                all_or_nothing: *all_or_nothing,
            },
        ),
        Some(Command::State(sc)) => state::run(&cli, sc),
        Some(Command::Env(EnvCommand::List(_))) => env::list(&cli),
        Some(Command::Env(EnvCommand::New { name, .. })) => env::new(&cli, name),
        Some(Command::Diff { from, to, .. }) => diff::run(&cli, from, to),
        Some(Command::Init { dir }) => init::run(dir),
        Some(Command::Completions {
            shell,
            static_script,
        }) => completions::run(*shell, *static_script),
        Some(Command::Man { dir }) => man::run(dir),
        Some(Command::Definitions { dir, .. }) => definitions::run(&cli, dir),
        Some(Command::Schema(_)) => schema::run(&cli),
    }
}

/// The command's name as typed (`state history`), for messages.
fn command_name(c: &Option<Command>) -> &'static str {
    use crate::cli::StateCommand as S;
    match c {
        None | Some(Command::Deploy(_)) => "deploy",
        Some(Command::Plan { .. }) => "plan",
        Some(Command::Cost(_)) => "cost",
        Some(Command::Output { .. }) => "output",
        Some(Command::Steps { .. }) => "steps",
        Some(Command::Check(_)) => "check",
        Some(Command::Watch { .. }) => "watch",
        Some(Command::Graph { .. }) => "graph",
        Some(Command::Report { .. }) => "report",
        Some(Command::Rollback { .. }) => "rollback",
        Some(Command::State(sc)) => match sc {
            S::Show { .. } => "state show",
            S::Reset { .. } => "state reset",
            S::ImportLegacy { .. } => "state import-legacy",
            S::Unlock { .. } => "state unlock",
            S::History(_) => "state history",
            S::Rollback { .. } => "state rollback",
            S::Push { .. } => "state push",
            S::Pull { .. } => "state pull",
        },
        Some(Command::Env(EnvCommand::List(_))) => "env list",
        Some(Command::Env(EnvCommand::New { .. })) => "env new",
        Some(Command::Diff { .. }) => "diff",
        Some(Command::Init { .. }) => "init",
        Some(Command::Completions { .. }) => "completions",
        Some(Command::Man { .. }) => "man",
        Some(Command::Definitions { .. }) => "definitions",
        Some(Command::Schema(_)) => "schema",
    }
}

/// Commands that print one JSON document with `--output json`.
const JSON_COMMANDS: &[&str] = &[
    "deploy",
    "plan",
    "steps",
    "check",
    "cost",
    "graph",
    "output",
    "report",
    "rollback",
    "state show",
    "state history",
    "env list",
    "diff",
    "schema",
];
/// Commands that print Markdown with `--output markdown`.
const MARKDOWN_COMMANDS: &[&str] = &["deploy", "plan", "rollback", "cost", "diff"];

/// `--output` a command cannot do is refused (exit 2), never ignored.
fn check_output(cli: &Cli) -> Result<()> {
    let name = command_name(&cli.command);
    let (format, supported) = match cli.global.output {
        OutputFormat::Human => return Ok(()),
        OutputFormat::Json => ("json", JSON_COMMANDS),
        OutputFormat::Markdown => ("markdown", MARKDOWN_COMMANDS),
    };
    if !supported.contains(&name) {
        return Err(usage(format!(
            "`{name}` has no --output {format}; it is for: {}",
            supported.join(", ")
        )));
    }
    if let Some(Command::Steps { secrets: true, .. }) = &cli.command {
        return Err(usage(format!(
            "`steps --secrets` has no --output {format} (it names secret keys for people; `steps --output json` lists each step's config keys)"
        )));
    }
    Ok(())
}

/// Run from a folder inside a project (`cd steps && stepwise plan`), stepwise works from the
/// project root: the nearest folder upwards with the config or the steps folder, as cargo and
/// git find theirs. Not when `--config`, `--steps` or `--state` name paths of the user's.
fn enter_project_root(cli: &Cli) -> Result<()> {
    let name = command_name(&cli.command);
    if cli.global.paths_given || matches!(name, "init" | "completions" | "man") {
        return Ok(());
    }
    let here = std::env::current_dir()?;
    let g = &cli.global;
    match crate::util::paths::project_root(&here, &g.config, &g.steps) {
        Some(root) if root == here => Ok(()),
        Some(root) => {
            tracing::debug!(root = %root.display(), "project root above the working directory");
            std::env::set_current_dir(&root)
                .or_fail(Kind::Usage, || format!("cannot enter the project root {}", root.display()))
        }
        // `schema` and `definitions` also work outside a project.
        None if matches!(name, "schema" | "definitions") => Ok(()),
        None => Err(usage(format!(
            "no stepwise project here: neither {} nor a folder above it has {} or a {}/ folder (`stepwise init` creates a project; --config and --steps name files elsewhere)",
            here.display(),
            g.config.display(),
            g.steps.display()
        ))),
    }
}
