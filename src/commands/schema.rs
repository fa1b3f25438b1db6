//! `stepwise schema`: the JSON Schema of the config keys stepwise reads, generated from the
//! settings types (so it cannot fall out of date). stepwise's own sections refuse other keys,
//! as stepwise does, except those the project's steps declare (`config:`).

use crate::cli::Cli;
use crate::util::error::exit;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    // Outside a project (or with steps that do not load): the settings alone.
    let declared = if cli.global.steps.is_dir() {
        crate::app::project::declared_config_by_step(&cli.load_options()).unwrap_or_default()
    } else {
        Vec::new()
    };
    let schema = crate::config::own_keys::schema_for(crate::config::json_schema(), &declared);
    let text = serde_json::to_string_pretty(&schema)?;
    crate::util::console::print_stdout(&format!("{text}\n"))?;
    Ok(exit::OK)
}
