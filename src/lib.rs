//! stepwise: idempotent, stateful deployments. See ARCHITECTURE.md for the module map.
//!
//! The library is the binary's; it exposes only what the binary (`main`), the integration
//! tests and the fuzzers use: the command line's parser (`cli::Cli`), the config (`Config`,
//! `lookup`), the state format (`State`), the step declaration parser (`step::parse_step`),
//! the step engine (`host::engine`) and the fingerprinter (`Fingerprinter`). Every other floor
//! is private to the crate.

mod app;
pub mod cli;
mod commands;
pub mod config;
pub mod decide;
mod present;
pub mod run;
pub mod state;
mod sys;
mod util;

pub use commands::main;
