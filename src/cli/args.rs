//! The command line (clap). Flags live where they apply: the deploy flags on `deploy` (and on
//! the bare command, which is the deploy and keeps every flag of the original tool), plan's on
//! `plan`, and so on; each subcommand's help lists only its own flags, grouped. A flag given
//! before the subcommand (`stepwise --env dev plan`) counts for it when it takes that flag and
//! is refused otherwise (`--force-all` is not a flag of `init`): see [`Cli::parse_args`].

use super::examples;
use super::step_names::step_name_completer;
use super::value_names::{env_name_completer, run_id_completer};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::PathBuf;

/// The command line as the commands use it: the flags given before and after the subcommand
/// merged (the subcommand's win), defaults for flags a command does not take.
#[derive(Debug)]
pub struct Cli {
    pub global: GlobalArgs,
    /// The deployment flags (defaults where the command does not take them), before the
    /// config's `deployment.*` defaults are merged in (`DeployOptions::resolve`, at load).
    pub deploy: crate::app::options::DeployOptions,
    pub command: Option<Command>,
}

/// The project, output and lock flags, resolved.
#[derive(Debug, Clone)]
pub struct GlobalArgs {
    pub config: PathBuf,
    pub steps: PathBuf,
    pub state: Option<PathBuf>,
    pub verbose: bool,
    pub lock_timeout: std::time::Duration,
    pub env: Option<String>,
    pub confirm_env: Option<String>,
    pub output: OutputFormat,
    /// `--config`, `--steps` or `--state` was given: the paths are the user's, relative to
    /// the working directory, and the project root is not looked for upwards.
    pub paths_given: bool,
}

/// The parser's view: every group on the bare command (the deploy), each subcommand with
/// the groups it takes.
#[derive(Parser, Debug)]
#[command(
    name = "stepwise",
    version,
    about = "Idempotent, stateful deployments: Rhai steps that run only when what they depend on changed"
)]
struct Line {
    #[command(flatten)]
    scope: DeployScope,
    #[command(subcommand)]
    command: Option<Command>,
}

/// Where the project is and which environment.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Project")]
pub struct ProjectArgs {
    /// The deployment config (YAML).
    #[arg(long, default_value = "config.yaml", value_name = "PATH")]
    config: PathBuf,
    /// The directory of step scripts; `prelude.rhai` is read from its parent.
    #[arg(long, default_value = "steps", value_name = "DIR")]
    steps: PathBuf,
    /// The state file or az://ACCOUNT/CONTAINER/PATH (default: the config's `state.path`,
    /// then `STEPWISE_STATE`, then `.stepwise/state.json`).
    #[arg(long, value_name = "PATH")]
    state: Option<PathBuf>,
    /// The environment: reads `config.NAME.yaml` merged over the config and keeps its own
    /// state (also `STEPWISE_ENV`; without it: the default environment).
    #[arg(long = "env", value_name = "NAME", add = env_name_completer())]
    env: Option<String>,
}

/// How the result is printed.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// `json`: one JSON document on stdout instead of the human output; `markdown`: Markdown
    /// on stdout (e.g. for `$GITHUB_STEP_SUMMARY`), the human output on stderr. A command
    /// without that form refuses it (exit 2).
    #[arg(long, value_enum, default_value_t = OutputFormat::Human, value_name = "FORMAT")]
    output: OutputFormat,
    /// Debug logs (also `deployment.verbose` in the config).
    #[arg(long, short)]
    verbose: bool,
}

/// Which steps run.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Selection")]
pub struct SelectArgs {
    /// Restrict the run to these steps (repeatable).
    #[arg(long, value_name = "NAME", add = step_name_completer())]
    only: Vec<String>,
    /// Run this step even if it is up to date (repeatable).
    #[arg(long = "force-step", value_name = "NAME", add = step_name_completer())]
    force_step: Vec<String>,
    /// With --force-step: also run every step that depends on it, directly or not.
    #[arg(long)]
    with_dependents: bool,
    /// Run every step.
    #[arg(long)]
    force_all: bool,
    /// Continue a failed or interrupted deployment: only failed, interrupted and new steps run.
    #[arg(long)]
    resume: bool,
    /// Before deciding, run each skipped step's `verify()` (read-only checks against Azure) and
    /// re-run what drifted; also `deployment.refresh: true`.
    #[arg(long)]
    refresh: bool,
    /// Back up the state, clear it, and deploy from scratch.
    #[arg(long)]
    reset_state: bool,
}

/// How a run that changes things behaves.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Safety")]
pub struct RunArgs {
    /// Print the plan and every command that would run; run nothing, write no state.
    #[arg(long)]
    dry_run: bool,
    /// Do not ask before running (required without a terminal).
    #[arg(long)]
    auto_approve: bool,
    /// Fail a step at any read it does not declare (config key, env var, outputs of a step it
    /// does not need; also `deployment.strict: true`), and refuse a command that carries a
    /// secret on its command line instead of warning (also `deployment.strict_secrets: true`).
    #[arg(long)]
    strict: bool,
    /// Do not run a step's `verify()` right after its `run()` (for emergencies); also
    /// `deployment.verify_after_run: false`.
    #[arg(long)]
    no_verify_after_run: bool,
    /// How many steps may run at once.
    #[arg(
        long,
        short = 'j',
        default_value_t = 4,
        value_name = "N",
        help_heading = "Execution"
    )]
    jobs: usize,
    /// After a failure, go on with every step that does not depend on it.
    #[arg(long, help_heading = "Execution")]
    keep_going: bool,
}

/// Taking the state lock, and confirming a protected environment.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Safety")]
pub struct LockArgs {
    /// How long to wait for a state lock held by another run (e.g. `30s`, `5m`; default 0:
    /// fail at once with exit 3).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    lock_timeout: std::time::Duration,
    /// Confirms a destructive command (`--reset-state`, `--force-all`, `state reset`, `state
    /// rollback`, `state push|pull --force`, `rollback`) on a protected environment without a
    /// terminal: must name the environment.
    #[arg(long, value_name = "NAME", add = env_name_completer())]
    confirm_env: Option<String>,
}

/// The cost budget.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Safety")]
pub struct BudgetArgs {
    /// Deploy although the monthly cost estimate exceeds `cost.budget_monthly`, or prices are
    /// unknown while a budget is set.
    #[arg(long)]
    allow_over_budget: bool,
}

/// A command that reads the project: where it is, how to print.
#[derive(Args, Debug, Clone)]
pub struct Scope {
    #[command(flatten)]
    project: ProjectArgs,
    #[command(flatten)]
    output: OutputArgs,
}

/// A command that shows what a deployment would run: the project and the selection.
#[derive(Args, Debug, Clone)]
pub struct PlanScope {
    #[command(flatten)]
    scope: Scope,
    #[command(flatten)]
    select: SelectArgs,
}

/// A deployment: every group.
#[derive(Args, Debug, Clone)]
pub struct DeployScope {
    #[command(flatten)]
    plan: PlanScope,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    lock: LockArgs,
    #[command(flatten)]
    budget: BudgetArgs,
}

/// A command that changes the state under its lock.
#[derive(Args, Debug, Clone)]
pub struct LockScope {
    #[command(flatten)]
    scope: Scope,
    #[command(flatten)]
    lock: LockArgs,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
    Markdown,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum GraphFormat {
    Mermaid,
    Dot,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Deploy: run every step that is not up to date (the default command).
    Deploy(DeployScope),
    /// Show each step's decision and reason; run nothing.
    Plan {
        /// Also the monthly cost estimate and its change since the last deployment (as
        /// `deployment.show_cost: true`).
        #[arg(long)]
        cost: bool,
        /// Exit 0 when nothing would run, 2 when something would, 1 when a step would be
        /// blocked, the deployment refused, or the plan failed (Terraform's
        /// -detailed-exitcode), so that a pipeline can tell "nothing to do" from "changes".
        #[arg(long)]
        detailed_exitcode: bool,
        #[command(flatten)]
        scope: PlanScope,
    },
    /// The outputs of the last deployment of this environment: every step's, one step's
    /// (STEP), or one value (STEP.KEY); `--raw` prints one value alone (for scripts), `--output
    /// json` all of them as JSON.
    Output {
        #[arg(value_name = "STEP[.KEY]")]
        which: Option<String>,
        /// Print the value alone (a string without quotes), like `terraform output -raw`.
        #[arg(short, long)]
        raw: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// The monthly cost estimate of the deployment: per step (each step's `fn cost()`, priced
    /// with the Azure Retail Prices API), the total, and the change since the last successful
    /// deployment of this environment.
    Cost(Scope),
    /// List the steps with their description and dependencies.
    Steps {
        /// Show which config keys are treated as secret (and why) instead.
        #[arg(long)]
        secrets: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Report every read a step made (in its last run) that its declaration does not cover:
    /// exit 0 when there is none, 1 when there are some.
    Check(Scope),
    /// Deploy, then watch what the steps depend on and re-run only what changes.
    Watch {
        /// Quiet period after a change before acting (milliseconds).
        #[arg(long, default_value_t = 100, value_name = "MS")]
        debounce: u64,
        /// Poll the files every MS milliseconds instead of using OS notifications (also the
        /// fallback when the OS watch limit is reached, at 500 ms).
        #[arg(long, value_name = "MS")]
        poll: Option<u64>,
        #[command(flatten)]
        scope: DeployScope,
    },
    /// Print the step graph (Mermaid or DOT), marking what would run.
    Graph {
        /// The text format (default: mermaid); `--output json` gives the graph as JSON instead.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<GraphFormat>,
        #[command(flatten)]
        scope: PlanScope,
    },
    /// Print the path of a run's HTML report (or open it); `--plan`: render the current plan
    /// as a report, running nothing.
    Report {
        /// A run id (the report's file name without `.html`) or `latest` (the default: the
        /// last run that ran something).
        #[arg(value_name = "RUN_ID|latest", conflicts_with = "plan", add = run_id_completer())]
        run: Option<String>,
        /// Open the report with the platform's opener (xdg-open, open).
        #[arg(long)]
        open: bool,
        /// Render what a deployment would do now (the plan) as a report.
        #[arg(long)]
        plan: bool,
        #[command(flatten)]
        scope: PlanScope,
    },
    /// Roll the deployment back to what an earlier run deployed: each step whose outputs
    /// differ runs its `fn rollback(target)` (e.g. the apps return to that run's image
    /// digests). Plans first, asks like a deploy (--auto-approve), holds the state lock;
    /// --dry-run shows the commands. The next deployment rolls forward.
    Rollback {
        /// The run to return to (see `stepwise state history`); default: the last successful
        /// run whose outputs differ from what is deployed now.
        #[arg(value_name = "RUN_ID")]
        run: Option<String>,
        /// Refuse the whole rollback when a step that changed has no `fn rollback(target)`
        /// (by default it is named as a warning and the others roll back).
        #[arg(long)]
        all_or_nothing: bool,
        #[command(flatten)]
        scope: Scope,
        #[command(flatten)]
        run_args: RunArgs,
        #[command(flatten)]
        lock: LockArgs,
    },
    /// Inspect or change the state.
    #[command(subcommand)]
    State(StateCommand),
    /// Environments (`--env NAME`): what exists and where it stands.
    #[command(subcommand)]
    Env(EnvCommand),
    /// What promoting one environment to another would change: config keys and steps.
    Diff {
        /// The environment promoted from (e.g. staging).
        #[arg(add = env_name_completer())]
        from: String,
        /// The environment promoted to (e.g. prod).
        #[arg(add = env_name_completer())]
        to: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// Create a new project in DIR: config.yaml, steps/01_hello.rhai, prelude.rhai and a
    /// .gitignore entry for .stepwise/. Never overwrites a file.
    Init {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the shell completion script (it completes step names for --force-step, --only
    /// and `state reset`, environment names and run ids by asking stepwise; --static: a
    /// script that never calls back).
    Completions {
        shell: clap_complete::Shell,
        /// A fixed script: commands and flags only, no step names.
        #[arg(long = "static")]
        static_script: bool,
    },
    /// Write the man pages: stepwise.1 and one page per subcommand.
    Man {
        #[arg(default_value = "man")]
        dir: PathBuf,
    },
    /// Write Rhai definition files (host functions and prelude helpers with their docs) for
    /// editors with the Rhai language server.
    Definitions {
        #[arg(default_value = ".stepwise/definitions")]
        dir: PathBuf,
        #[command(flatten)]
        scope: Scope,
    },
    /// Print the JSON Schema of the config keys stepwise reads (for yaml-language-server).
    Schema(Scope),
}

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Each environment (overlay files, state found): state location, last run, and what a
    /// deploy would do now.
    List(Scope),
    /// Write `config.NAME.yaml` for a new environment: the keys that differ between the
    /// example overlays (`config.*.example.yaml`), commented, to fill in. Never overwrites.
    New {
        /// The new environment's name (letters, digits, `-`, `_`).
        name: String,
        #[command(flatten)]
        scope: Scope,
    },
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// Print the state (or one step's record) as JSON.
    Show {
        step: Option<String>,
        #[command(flatten)]
        scope: Scope,
    },
    /// Forget steps (all when none is named) so that they run again; keeps a backup.
    Reset {
        #[arg(value_name = "STEP", add = step_name_completer())]
        names: Vec<String>,
        #[command(flatten)]
        scope: LockScope,
    },
    /// Convert the original deployment tool's state file.
    ImportLegacy {
        file: PathBuf,
        #[command(flatten)]
        scope: LockScope,
    },
    /// Remove an expired or stale lock (`--force`: a live one, after showing its holder).
    Unlock {
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// List the kept versions of the state (time, run, steps changed).
    History(Scope),
    /// Restore a kept version (through the lock; the restore is itself kept in history). A
    /// current state that cannot be used (corrupt, another environment's) is kept as a backup.
    Rollback {
        version: String,
        #[command(flatten)]
        scope: LockScope,
    },
    /// Copy the current state (`--state`) to another location, e.g. az://ACCOUNT/CONTAINER/PATH.
    Push {
        destination: String,
        /// Overwrite a destination that already holds this environment's state (never another
        /// environment's).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        scope: LockScope,
    },
    /// Copy state from another location into the current one (`--state`).
    Pull {
        source: String,
        /// Overwrite a current state that is not empty.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        scope: LockScope,
    },
}

/// A group of flags that commands take whole: its clap ids, and how a subcommand's values
/// replace the bare command's.
trait Group: FromArgMatches + Args {
    /// Takes from `leaf` each flag given on the subcommand's command line.
    fn take_given(&mut self, leaf: Self, m: &ArgMatches);
    /// The group's argument ids.
    fn ids() -> Vec<String> {
        Self::augment_args(clap::Command::new("group"))
            .get_arguments()
            .map(|a| a.get_id().to_string())
            .collect()
    }
}

/// Whether `id` was typed on this (sub)command's command line.
fn given(m: &ArgMatches, id: &str) -> bool {
    matches!(m.try_get_raw(id), Ok(Some(_))) && m.value_source(id) == Some(ValueSource::CommandLine)
}

macro_rules! group {
    ($t:ty: $($f:ident),+) => {
        impl Group for $t {
            fn take_given(&mut self, leaf: Self, m: &ArgMatches) {
                $(if given(m, stringify!($f)) {
                    self.$f = leaf.$f;
                })+
            }
        }
    };
}
group!(ProjectArgs: config, steps, state, env);
group!(OutputArgs: output, verbose);
group!(SelectArgs: only, force_step, with_dependents, force_all, resume, refresh, reset_state);
group!(RunArgs: dry_run, auto_approve, strict, no_verify_after_run, jobs, keep_going);
group!(LockArgs: lock_timeout, confirm_env);
group!(BudgetArgs: allow_over_budget);

/// The subcommand being run, deepest first level: its name as typed (`state reset`), its
/// matches and its definition.
struct Leaf<'a> {
    name: String,
    matches: &'a ArgMatches,
    def: clap::Command,
}

fn leaf<'a>(m: &'a ArgMatches, def: &clap::Command) -> Option<Leaf<'a>> {
    let (name, sm) = m.subcommand()?;
    let sdef = def.find_subcommand(name)?.clone();
    Some(match leaf(sm, &sdef) {
        Some(mut deeper) => {
            deeper.name = format!("{name} {}", deeper.name);
            deeper
        }
        None => Leaf {
            name: name.to_string(),
            matches: sm,
            def: sdef,
        },
    })
}

/// The bare command's values of group `G`, with the subcommand's typed values replacing them;
/// a flag of `G` typed before a subcommand that does not take it is refused.
fn resolve<G: Group + Clone>(
    top: &ArgMatches,
    leaf: Option<&Leaf>,
    def: &clap::Command,
) -> Result<G, clap::Error> {
    let mut value = G::from_arg_matches(top)?;
    let Some(leaf) = leaf else {
        return Ok(value);
    };
    let ids = G::ids();
    if ids
        .iter()
        .all(|id| leaf.def.get_arguments().any(|a| a.get_id() == id))
    {
        value.take_given(G::from_arg_matches(leaf.matches)?, leaf.matches);
    } else if let Some(id) = ids.iter().find(|id| given(top, id)) {
        let flag = def
            .get_arguments()
            .find(|a| a.get_id() == id)
            .and_then(|a| a.get_long())
            .unwrap_or(id);
        return Err(def.clone().error(
            clap::error::ErrorKind::ArgumentConflict,
            format!(
                "--{flag} is not a flag of `stepwise {}` (see `stepwise {} --help`)",
                leaf.name, leaf.name
            ),
        ));
    }
    Ok(value)
}

/// The command definition: the parser's, with each command's examples after its help.
pub fn command() -> clap::Command {
    examples::add_to(Line::command())
}

impl Cli {
    /// The command line of this process (clap's errors as clap gives them), resolved: flags
    /// before and after the subcommand merged, `paths_given` filled in.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        Self::try_parse_from(std::env::args_os())
    }

    /// As [`Cli::parse_args`], from the given words (the first is the program).
    pub fn try_parse_from<I, T>(words: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let def = command();
        let m = def.clone().try_get_matches_from(words)?;
        let line = Line::from_arg_matches(&m)?;
        let leaf = leaf(&m, &def);
        let leaf = leaf.as_ref();
        let project: ProjectArgs = resolve(&m, leaf, &def)?;
        let output: OutputArgs = resolve(&m, leaf, &def)?;
        let select: SelectArgs = resolve(&m, leaf, &def)?;
        let run: RunArgs = resolve(&m, leaf, &def)?;
        let lock: LockArgs = resolve(&m, leaf, &def)?;
        let budget: BudgetArgs = resolve(&m, leaf, &def)?;
        let paths_given = ["config", "steps", "state"]
            .iter()
            .any(|id| given(&m, id) || leaf.is_some_and(|l| given(l.matches, id)));
        Ok(Cli {
            global: GlobalArgs {
                config: project.config,
                steps: project.steps,
                state: project.state,
                verbose: output.verbose,
                lock_timeout: lock.lock_timeout,
                env: project.env,
                confirm_env: lock.confirm_env,
                output: output.output,
                paths_given,
            },
            deploy: crate::app::options::DeployOptions {
                force_step: select.force_step,
                with_dependents: select.with_dependents,
                force_all: select.force_all,
                reset_state: select.reset_state,
                dry_run: run.dry_run,
                resume: select.resume,
                auto_approve: run.auto_approve,
                jobs: run.jobs,
                keep_going: run.keep_going,
                only: select.only,
                refresh: select.refresh,
                no_verify_after_run: run.no_verify_after_run,
                strict: run.strict,
                strict_secrets: run.strict,
                verify_after_run: !run.no_verify_after_run,
                allow_over_budget: budget.allow_over_budget,
                show_cost: false,
            },
            command: line.command,
        })
    }
}

impl GlobalArgs {
    /// `prelude.rhai` beside the steps directory.
    pub fn prelude_path(&self) -> PathBuf {
        self.steps
            .parent()
            .map(|d| d.join("prelude.rhai"))
            .unwrap_or_else(|| PathBuf::from("prelude.rhai"))
    }
}

impl From<OutputFormat> for crate::app::options::Output {
    fn from(o: OutputFormat) -> Self {
        match o {
            OutputFormat::Human => Self::Human,
            OutputFormat::Json => Self::Json,
            OutputFormat::Markdown => Self::Markdown,
        }
    }
}

impl Cli {
    /// What loading the project needs from this command line.
    pub fn load_options(&self) -> crate::app::options::LoadOptions {
        let g = &self.global;
        crate::app::options::LoadOptions {
            config: g.config.clone(),
            steps: g.steps.clone(),
            prelude: g.prelude_path(),
            state: g.state.clone(),
            env: g.env.clone(),
            verbose: g.verbose,
            output: g.output.into(),
            confirm_env: g.confirm_env.clone(),
            lock_timeout: g.lock_timeout,
            deploy: self.deploy.clone(),
        }
    }
}
