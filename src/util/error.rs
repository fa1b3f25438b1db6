//! Errors that end a command, each with the exit code the CLI documents.

use std::fmt;

/// Exit codes, as documented in the README.
pub mod exit {
    /// Success, or nothing to do.
    pub const OK: i32 = 0;
    /// A step failed (or a run was refused, e.g. no `--auto-approve` without a terminal).
    pub const STEP_FAILED: i32 = 1;
    /// Bad usage, config, script or state, found before any step ran.
    pub const USAGE: i32 = 2;
    /// The state is locked by another run.
    pub const LOCKED: i32 = 3;
    /// The run lost its state lock while it ran (it could not renew it in time, or another
    /// run or `state unlock --force` took it): it stopped starting steps, stopped its
    /// commands, recorded them `interrupted` where it still could without overwriting a newer
    /// state, and ended.
    pub const LOCK_LOST: i32 = 4;
    /// An internal error: stepwise found itself in a state it should never reach (for
    /// example a scheduler with steps left that none can start). A bug to report; the state
    /// holds every step that ended. (`EX_SOFTWARE` of sysexits.h.)
    pub const INTERNAL: i32 = 70;
    /// Interrupted by SIGINT (Ctrl+C).
    pub const SIGINT: i32 = 130;
    /// Interrupted by SIGTERM.
    pub const SIGTERM: i32 = 143;
}

/// An error that carries the process exit code it should end with.
#[derive(Debug)]
pub struct Failure {
    pub code: i32,
    pub message: String,
}

impl Failure {
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
    /// Bad usage, config, script or state (exit 2).
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(exit::USAGE, message)
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand: an `anyhow::Error` that exits 2.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Failure::usage(message).into()
}

/// The exit code an error should end the process with: a [`Failure`] anywhere in the chain
/// decides; anything else is a usage/environment error found before steps ran (2).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.code))
        .unwrap_or(exit::USAGE)
}
