//! stepwise: idempotent, stateful deployments. See ARCHITECTURE.md for the module map.

pub mod app;
pub mod cli;
pub mod commands;
pub mod config;
pub mod decide;
pub mod present;
pub mod run;
pub mod state;
pub mod sys;
pub mod util;

pub use commands::main;
