//! `stepwise steps`: the steps with their descriptions and declarations.

use crate::cli::Cli;
use crate::error::exit;
use crate::project::Project;
use crate::report;
use anyhow::Result;

pub fn run(cli: &Cli) -> Result<i32> {
    let p = Project::load(cli, false)?;
    for s in &p.steps.steps {
        p.console.line(&format!(
            "{:02} {}  {}",
            s.order,
            p.console.paint(report::BOLD, &s.name),
            s.description
        ));
        let list = |label: &str, v: &[String]| {
            if !v.is_empty() {
                p.console.line(&format!("     {label}: {}", v.join(", ")));
            }
        };
        list("needs", &s.needs);
        list("files", &s.files);
        list("config", &s.config);
    }
    Ok(exit::OK)
}
