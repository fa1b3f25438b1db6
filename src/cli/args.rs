//! The command line (clap). Every flag of the original tool works at the top level.

use super::step_names::step_name_completer;
use super::value_names::{env_name_completer, run_id_completer};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "stepwise",
    version,
    about = "Idempotent, stateful deployments: Rhai steps that run only when what they depend on changed",
    after_help = "Exit codes: 0 success or nothing to do; 1 a step failed; 2 bad usage, config, script or state; 3 state locked; 4 the run lost its state lock; 70 internal error (please report it); 130 interrupted (SIGINT), 143 (SIGTERM)."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(flatten)]
    pub deploy: DeployArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// The deployment config (YAML).
    #[arg(
        long,
        global = true,
        default_value = "config.yaml",
        value_name = "PATH"
    )]
    pub config: PathBuf,
    /// The directory of step scripts; `prelude.rhai` is read from its parent.
    #[arg(long, global = true, default_value = "steps", value_name = "DIR")]
    pub steps: PathBuf,
    /// The state file (default: the config's `state.path`, then `STEPWISE_STATE`, then
    /// `.stepwise/state.json`).
    #[arg(long, global = true, value_name = "PATH")]
    pub state: Option<PathBuf>,
    /// Debug logs (also `deployment.verbose` in the config).
    #[arg(long, short, global = true)]
    pub verbose: bool,
    /// How long to wait for a state lock held by another run (e.g. `30s`, `5m`; default 0:
    /// fail at once with exit 3).
    #[arg(long, global = true, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "0s")]
    pub lock_timeout: std::time::Duration,
    /// The environment: reads `config.NAME.yaml` merged over the config and keeps its own
    /// state (also `STEPWISE_ENV`; without it: the default environment).
    #[arg(long = "env", global = true, value_name = "NAME", add = env_name_completer())]
    pub env: Option<String>,
    /// Confirms `--reset-state`, `--force-all`, `state reset`, `state rollback` or `state
    /// push|pull --force` on a protected environment without a terminal: must name the
    /// environment.
    #[arg(long, global = true, value_name = "NAME", add = env_name_completer())]
    pub confirm_env: Option<String>,
    /// `json`: one JSON document on stdout instead of the human output; `markdown` (deploy,
    /// plan, diff): a Markdown table and summary on stdout (e.g. for `$GITHUB_STEP_SUMMARY`), the
    /// human output on stderr.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Human)]
    pub output: OutputFormat,
    /// `--config`, `--steps` or `--state` was given: the paths are the user's, relative to
    /// the working directory, and the project root is not looked for upwards.
    #[arg(skip)]
    pub paths_given: bool,
}

impl Cli {
    /// The command line of this process (clap's errors as clap gives them), with
    /// `paths_given` filled in.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::{parser::ValueSource, CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches()?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        cli.global.paths_given = ["config", "steps", "state"]
            .iter()
            .any(|id| matches.value_source(id) == Some(ValueSource::CommandLine));
        Ok(cli)
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

#[derive(Args, Debug, Clone, Default)]
pub struct DeployArgs {
    /// Run this step even if it is up to date (repeatable).
    #[arg(long = "force-step", global = true, value_name = "NAME", add = step_name_completer())]
    pub force_step: Vec<String>,
    /// With --force-step: also run every step that depends on it, directly or not.
    #[arg(long, global = true)]
    pub with_dependents: bool,
    /// Run every step.
    #[arg(long, global = true)]
    pub force_all: bool,
    /// Back up the state, clear it, and deploy from scratch.
    #[arg(long, global = true)]
    pub reset_state: bool,
    /// Print the plan and every command that would run; run nothing, write no state.
    #[arg(long, global = true)]
    pub dry_run: bool,
    /// Continue a failed or interrupted deployment: only failed, interrupted and new steps run.
    #[arg(long, global = true)]
    pub resume: bool,
    /// Do not ask before running.
    #[arg(long, global = true)]
    pub auto_approve: bool,
    /// How many steps may run at once.
    #[arg(
        long,
        short = 'j',
        global = true,
        default_value_t = 4,
        value_name = "N"
    )]
    pub jobs: usize,
    /// After a failure, go on with every step that does not depend on it.
    #[arg(long, global = true)]
    pub keep_going: bool,
    /// Restrict the run to these steps (repeatable).
    #[arg(long, global = true, value_name = "NAME", add = step_name_completer())]
    pub only: Vec<String>,
    /// Before deciding, run each skipped step's `verify()` (read-only checks against Azure) and
    /// re-run what drifted; also `deployment.refresh: true`.
    #[arg(long, global = true)]
    pub refresh: bool,
    /// Do not run a step's `verify()` right after its `run()` (for emergencies); also
    /// `deployment.verify_after_run: false`.
    #[arg(long, global = true)]
    pub no_verify_after_run: bool,
    /// Fail a step at any read it does not declare (config key, env var, outputs of a step it
    /// does not need; also `deployment.strict: true`), and refuse a command that carries a
    /// secret on its command line instead of warning (also `deployment.strict_secrets: true`).
    #[arg(long, global = true)]
    pub strict: bool,
    /// Deploy although the monthly cost estimate exceeds `cost.budget_monthly`, or prices are
    /// unknown while a budget is set.
    #[arg(long, global = true)]
    pub allow_over_budget: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Deploy: run every step that is not up to date (the default command).
    Deploy,
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
    },
    /// The monthly cost estimate of the deployment: per step (each step's `fn cost()`, priced
    /// with the Azure Retail Prices API), the total, and the change since the last successful
    /// deployment of this environment.
    Cost,
    /// List the steps with their description and dependencies.
    Steps {
        /// Show which config keys are treated as secret (and why) instead.
        #[arg(long)]
        secrets: bool,
    },
    /// Report every read a step made (in its last run) that its declaration does not cover:
    /// exit 0 when there is none, 1 when there are some.
    Check,
    /// Deploy, then watch what the steps depend on and re-run only what changes.
    Watch {
        /// Quiet period after a change before acting (milliseconds).
        #[arg(long, default_value_t = 100, value_name = "MS")]
        debounce: u64,
        /// Poll the files every MS milliseconds instead of using OS notifications (also the
        /// fallback when the OS watch limit is reached, at 500 ms).
        #[arg(long, value_name = "MS")]
        poll: Option<u64>,
    },
    /// Print the step graph (Mermaid or DOT), marking what would run.
    Graph {
        /// The text format (default: mermaid); `--output json` gives the graph as JSON instead.
        #[arg(long, value_enum, value_name = "FORMAT")]
        format: Option<GraphFormat>,
    },
    /// Print the path of a run's HTML report (or open it); `--plan`: render the current plan
    /// as a report, running nothing.
    Report {
        /// A run id (the report's file name without `.html`) or `latest` (the default).
        #[arg(value_name = "RUN_ID|latest", conflicts_with = "plan", add = run_id_completer())]
        run: Option<String>,
        /// Open the report with the platform's opener (xdg-open, open).
        #[arg(long)]
        open: bool,
        /// Render what a deployment would do now (the plan) as a report.
        #[arg(long)]
        plan: bool,
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
    },
    /// Create a new project in DIR: config.yaml, steps/01_hello.rhai, prelude.rhai and a
    /// .gitignore entry for .stepwise/. Never overwrites a file.
    Init {
        #[arg(default_value = ".")]
        dir: PathBuf,
    },
    /// Print the shell completion script (it completes step names for --force-step, --only
    /// and `state reset` by asking stepwise; --static: a script that never calls back).
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
    },
    /// Print the JSON Schema of the config keys stepwise reads (for yaml-language-server).
    Schema,
}

#[derive(Subcommand, Debug)]
pub enum EnvCommand {
    /// Each environment (overlay files, state found): state location, last run, and what a
    /// deploy would do now.
    List,
}

#[derive(Subcommand, Debug)]
pub enum StateCommand {
    /// Print the state (or one step's record) as JSON.
    Show { step: Option<String> },
    /// Forget steps (all when none is named) so that they run again; keeps a backup.
    Reset {
        #[arg(value_name = "STEP", add = step_name_completer())]
        names: Vec<String>,
    },
    /// Convert the original deployment tool's state file.
    ImportLegacy { file: PathBuf },
    /// Remove an expired or stale lock (`--force`: a live one, after showing its holder).
    Unlock {
        #[arg(long)]
        force: bool,
    },
    /// List the kept versions of the state (time, run, steps changed).
    History,
    /// Restore a kept version (through the lock; the restore is itself kept in history). A
    /// current state that cannot be used (corrupt, another environment's) is kept as a backup.
    Rollback { version: String },
    /// Copy the current state (`--state`) to another location, e.g. az://ACCOUNT/CONTAINER/PATH.
    Push {
        destination: String,
        /// Overwrite a destination that already holds this environment's state (never another
        /// environment's).
        #[arg(long)]
        force: bool,
    },
    /// Copy state from another location into the current one (`--state`).
    Pull {
        source: String,
        /// Overwrite a current state that is not empty.
        #[arg(long)]
        force: bool,
    },
}

impl From<&DeployArgs> for crate::app::options::DeployOptions {
    fn from(d: &DeployArgs) -> Self {
        Self {
            force_step: d.force_step.clone(),
            with_dependents: d.with_dependents,
            force_all: d.force_all,
            reset_state: d.reset_state,
            dry_run: d.dry_run,
            resume: d.resume,
            auto_approve: d.auto_approve,
            jobs: d.jobs,
            keep_going: d.keep_going,
            only: d.only.clone(),
            refresh: d.refresh,
            no_verify_after_run: d.no_verify_after_run,
            strict: d.strict,
            strict_secrets: d.strict,
            verify_after_run: !d.no_verify_after_run,
            allow_over_budget: d.allow_over_budget,
            show_cost: false,
        }
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
            deploy: (&self.deploy).into(),
        }
    }
}
