//! `stepwise report [RUN_ID|latest] [--open]`: the path of a kept run report, or opens it;
//! `stepwise report --plan`: the current plan rendered as a report (nothing runs, no lock, no
//! state written).

use crate::app::project::Project;
use crate::cli::{Cli, OutputFormat};
use crate::config::environment;
use crate::present::summary::RunSummary;
use crate::util::error::{exit, Failure, Kind};
use crate::{present::html_report, present::reports};
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(cli: &Cli, which: Option<&str>, open: bool, plan: bool) -> Result<i32> {
    let env = environment::selected(cli.global.env.as_deref())?;
    let dir = reports::dir(&environment::local_dir(env.as_deref()));
    let path = if plan {
        let p = Project::load(&cli.load_options(), true)?;
        let (_, decisions) = crate::app::deploy::planned(&p, &p.deploy)?;
        let summary = RunSummary::of_plan(&p.steps, &decisions, p.env.clone(), &p.state_location);
        let html = html_report::render(&summary, &reports::history(&dir, ""));
        reports::write_plan(&dir, &html, &p.masker).map_err(|e| {
            Failure::new(
                Kind::Output,
                format!("the plan report was not written: {e:#}"),
            )
        })?
    } else {
        reports::find(&dir, which)?
    };
    if cli.global.output == OutputFormat::Json {
        let doc = serde_json::json!({
            "command": "report",
            "report": path.display().to_string(),
            "exit_code": exit::OK,
        });
        crate::util::console::print_json(&doc);
    } else {
        println!("{}", path.display());
    }
    if open {
        open_with_platform_opener(&path)?;
    }
    Ok(exit::OK)
}

/// Opens `path` with `xdg-open` (`open` on macOS): argv only, no shell.
fn open_with_platform_opener(path: &Path) -> Result<()> {
    let opener = if cfg!(target_os = "macos") {
        "open"
    } else {
        "xdg-open"
    };
    let status = std::process::Command::new(opener)
        .arg(path)
        .stdin(std::process::Stdio::null())
        .status()
        .with_context(|| format!("cannot run {opener} to open {}", path.display()))
        .map_err(|e| Failure::new(Kind::Output, format!("{e:#}")))?;
    if !status.success() {
        return Err(Failure::new(
            Kind::Output,
            format!("{opener} {} failed ({status})", path.display()),
        )
        .into());
    }
    Ok(())
}
