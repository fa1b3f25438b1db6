//! `stepwise cost`: the monthly cost estimate per step and in total, and its change since the
//! last successful deployment of this environment (`app::cost`). Reads only.

use crate::app::cost::{estimate, markdown, print};
use crate::app::project::{Project, StateTarget};
use crate::cli::{Cli, OutputFormat};
use crate::util::error::exit;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(&cli.load_options(), true)?;
    let store = p.store()?;
    let state = store.load()?;
    let doc = estimate(&p, &p.deploy, store.as_ref(), &state);
    p.hash_cache.save();
    match cli.global.output {
        OutputFormat::Json => crate::util::console::print_json(&serde_json::json!({
            "command": "cost",
            "env": p.env,
            "cost": doc,
            "exit_code": exit::OK,
        })),
        OutputFormat::Markdown => {
            print(&p.console, &doc);
            print!("{}", p.masker.mask(&markdown(&doc)));
        }
        OutputFormat::Human => print(&p.console, &doc),
    }
    Ok(exit::OK)
}
