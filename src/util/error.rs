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
    /// The state storage could not be reached or refused access (network, credentials,
    /// permissions, a container that cannot be created).
    pub const STORAGE: i32 = 5;
    /// Interrupted by SIGINT (Ctrl+C).
    pub const SIGINT: i32 = 130;
    /// Interrupted by SIGTERM.
    pub const SIGTERM: i32 = 143;

    /// Every exit code with its meaning, for `--help`, the man pages' EXIT STATUS and the
    /// README's table (a test checks the README lists each).
    pub const TABLE: &[(i32, &str)] = &[
        (OK, "success, or nothing to do"),
        (STEP_FAILED, "a step failed or was blocked; approval refused or impossible; `plan`: a step would be blocked; `check`: undeclared reads"),
        (USAGE, "bad usage, config, script or state, found before any step ran"),
        (LOCKED, "the state is locked by another run (the holder is printed)"),
        (LOCK_LOST, "the run lost its state lock while it ran; it started no further step"),
        (STORAGE, "the state storage could not be reached or refused access; nothing ran"),
        (INTERNAL, "internal error (a bug: please report it); the state holds every step that ended"),
        (SIGINT, "interrupted by SIGINT (Ctrl+C); running steps recorded `interrupted`"),
        (SIGTERM, "interrupted by SIGTERM"),
    ];
    /// `plan --detailed-exitcode` instead: 0 nothing would run, 2 something would run, 1 a
    /// step would be blocked, the deployment refused, or no plan could be made.
    pub const DETAILED_PLAN: &str = "plan --detailed-exitcode: 0 nothing would run, 2 something would run, 1 a step would be blocked, the deployment refused, or no plan could be made";
}

/// What kind of failure ended a command. [`Kind::exit_code`] is the one place that maps
/// failures to the exit codes the README documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The command line asks for something impossible (unknown run, bad flag combination).
    Usage,
    /// The config, an overlay or an environment is wrong (file:line:col where known).
    Config,
    /// A step script is wrong (file:line:col).
    Script,
    /// The state cannot be used as it is (unreadable, foreign, newer, inconsistent).
    State,
    /// The state storage could not be reached or refused access (network, credentials,
    /// permissions, a container that cannot be created).
    Storage,
    /// Another run holds the state lock.
    Locked,
    /// The run lost its state lock while it ran.
    LockLost,
    /// A step failed.
    StepFailed,
    /// The run was refused: approval refused or impossible (no terminal to ask on), a
    /// protected environment not confirmed.
    Refused,
    /// The state was changed by another run since this run read it: not overwritten.
    Conflict,
    /// Something the command was asked to produce (a report, opening it) failed.
    Output,
    /// stepwise reached a state it should never reach.
    Internal,
}

impl Kind {
    /// An error of this kind: `Kind::Config.error(format!("{file}:{line}: ..."))`.
    pub fn error(self, message: impl Into<String>) -> anyhow::Error {
        Failure::new(self, message).into()
    }

    /// The exit code of a command that ends with a failure of this kind.
    pub fn exit_code(self) -> i32 {
        match self {
            Kind::Usage | Kind::Config | Kind::Script | Kind::State => exit::USAGE,
            Kind::Storage => exit::STORAGE,
            Kind::Locked => exit::LOCKED,
            Kind::LockLost => exit::LOCK_LOST,
            Kind::StepFailed | Kind::Refused | Kind::Conflict | Kind::Output => exit::STEP_FAILED,
            Kind::Internal => exit::INTERNAL,
        }
    }
}

/// An error that ends a command: its kind (which decides the exit code), what went wrong,
/// and the error that caused it, kept whole so the message can show it as `caused by:`.
#[derive(Debug)]
pub struct Failure {
    pub kind: Kind,
    pub message: String,
    cause: Option<anyhow::Error>,
}

impl Failure {
    pub fn new(kind: Kind, message: impl Into<String>) -> Self {
        Failure {
            kind,
            message: message.into(),
            cause: None,
        }
    }
    /// A failure caused by `cause` (shown under the message, never flattened into it).
    pub fn caused_by(
        kind: Kind,
        message: impl Into<String>,
        cause: impl Into<anyhow::Error>,
    ) -> Self {
        Failure {
            kind,
            message: message.into(),
            cause: Some(cause.into()),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause.as_ref().map(|c| c.as_ref() as _)
    }
}

/// Shorthand: a usage error (exit 2), the command line asking for something impossible.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Kind::Usage.error(message)
}

/// Wraps an error's cause under a message of one kind: `result.or_fail(Kind::State, || ...)`.
pub trait OrFail<T> {
    fn or_fail(self, kind: Kind, message: impl FnOnce() -> String) -> anyhow::Result<T>;
}

impl<T, E: Into<anyhow::Error>> OrFail<T> for Result<T, E> {
    fn or_fail(self, kind: Kind, message: impl FnOnce() -> String) -> anyhow::Result<T> {
        self.map_err(|e| Failure::caused_by(kind, message(), e).into())
    }
}

/// The kind of failure an error is: the outermost [`Failure`] in its chain decides; anything
/// else is a usage/environment error found before steps ran.
pub fn kind_of(err: &anyhow::Error) -> Kind {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>().map(|f| f.kind))
        .unwrap_or(Kind::Usage)
}

/// The exit code an error should end the process with (see [`Kind::exit_code`]).
pub fn exit_code(err: &anyhow::Error) -> i32 {
    kind_of(err).exit_code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_documented_exit_code() {
        let table = [
            (Kind::Usage, 2),
            (Kind::Config, 2),
            (Kind::Script, 2),
            (Kind::State, 2),
            (Kind::Storage, 5),
            (Kind::Locked, 3),
            (Kind::LockLost, 4),
            (Kind::StepFailed, 1),
            (Kind::Refused, 1),
            (Kind::Conflict, 1),
            (Kind::Output, 1),
            (Kind::Internal, 70),
        ];
        for (kind, code) in table {
            assert_eq!(kind.exit_code(), code, "{kind:?}");
        }
    }

    #[test]
    fn the_outermost_failure_decides_and_causes_are_kept() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let inner: anyhow::Error =
            Failure::caused_by(Kind::Storage, "cannot open az://a/b", io).into();
        let outer = inner.context("while reading the state");
        assert_eq!(kind_of(&outer), Kind::Storage);
        let chain: Vec<String> = outer.chain().map(|e| e.to_string()).collect();
        assert_eq!(
            chain,
            ["while reading the state", "cannot open az://a/b", "denied"]
        );
        let locked: anyhow::Error = Failure::new(Kind::Locked, "held by B").into();
        let wrapped: anyhow::Error =
            Failure::caused_by(Kind::StepFailed, "step a failed", locked).into();
        assert_eq!(exit_code(&wrapped), 1, "the outermost failure decides");
        assert_eq!(exit_code(&anyhow::anyhow!("plain")), 2);
    }
}
