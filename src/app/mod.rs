//! The application floor: a loaded project and what can be done with it, called by the
//! commands with options resolved from the command line (never the command line itself).

pub mod cost;
pub mod deploy;
pub mod legacy;
pub mod options;
pub mod project;
pub mod rollback;
pub mod show;
pub mod watch;
