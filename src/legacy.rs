//! `state import-legacy`: converts the original deployment tool's state file.

use crate::cli::Cli;
use anyhow::Result;
use std::path::Path;

pub fn import(_cli: &Cli, file: &Path) -> Result<i32> {
    Err(crate::error::usage(format!(
        "state import-legacy {}: not implemented yet",
        file.display()
    )))
}
