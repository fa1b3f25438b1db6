//! The system floor: processes (run under a supervisor, stopped by signals), secret files,
//! and the local run lock.

pub mod prices;
pub mod process;
pub mod run_lock;
pub mod secret_file;
pub mod supervisor;
