//! Where stepwise keeps its local files.

/// The folder for local files (logs, backups, hash cache), beside the project.
pub const LOCAL_DIR: &str = ".stepwise";
