//! `stepwise schema`: the JSON Schema of the config keys stepwise reads, generated from the
//! settings types (so it cannot fall out of date).

use crate::error::exit;
use anyhow::Result;

pub fn run() -> Result<i32> {
    let text = serde_json::to_string_pretty(&crate::config::json_schema())?;
    super::print_stdout(&format!("{text}\n"))?;
    Ok(exit::OK)
}
