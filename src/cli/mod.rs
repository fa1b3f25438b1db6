//! The command line: clap's definition of the arguments (`args`), shell completion
//! (`completion`) and the step names it offers (`step_names`). Only this floor and
//! `commands` know clap.

mod args;
pub(crate) mod completion;
pub mod examples;
mod step_names;
mod value_names;

pub use args::*;
