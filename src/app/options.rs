//! What a deployment was asked to do, free of the command line's types: the `deploy` flags
//! as the application layer takes them (`cli` converts its arguments into these).

/// The deployment flags (see `stepwise --help`); the config's `deployment.*` defaults are
/// merged where they are used.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub force_step: Vec<String>,
    pub with_dependents: bool,
    pub force_all: bool,
    pub reset_state: bool,
    pub dry_run: bool,
    pub resume: bool,
    pub auto_approve: bool,
    pub jobs: usize,
    pub keep_going: bool,
    pub only: Vec<String>,
    pub refresh: bool,
    pub no_verify_after_run: bool,
    pub strict: bool,
}

/// How a command's output is given: the human console, one JSON document, or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Human,
    Json,
    Markdown,
}

/// What loading a project needs from the command line, resolved once by `cli` (the paths as
/// given, the environment flag, and the deployment flags).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The config file (`--config`).
    pub config: std::path::PathBuf,
    /// The steps folder (`--steps`).
    pub steps: std::path::PathBuf,
    /// `prelude.rhai` beside the steps folder.
    pub prelude: std::path::PathBuf,
    /// `--state`.
    pub state: Option<std::path::PathBuf>,
    /// `--env` (checked and merged with `STEPWISE_ENV` when loading).
    pub env: Option<String>,
    pub verbose: bool,
    pub output: Output,
    /// `--confirm-env`.
    pub confirm_env: Option<String>,
    pub lock_timeout: std::time::Duration,
    pub deploy: DeployOptions,
}
