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
