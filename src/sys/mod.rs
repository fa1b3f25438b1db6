//! The system floor: processes (run under a supervisor, stopped by signals), secret files,
//! the local run lock, and where a run comes from (user, git, CI).

pub mod origin;
pub mod prices;
pub mod process;
pub mod run_lock;
pub mod secret_file;
pub mod supervisor;
