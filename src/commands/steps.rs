//! `stepwise steps`: the steps with their descriptions and declarations; `steps --secrets`:
//! which config keys are treated as secret, and why.

use crate::app::project::Project;
use crate::cli::{Cli, OutputFormat};
use crate::util::console;
use crate::util::error::exit;
use anyhow::Result;

pub fn run(cli: &Cli, secrets: bool) -> Result<i32> {
    let p = Project::load(&cli.load_options(), secrets)?;
    if secrets {
        return secrets_report(&p);
    }
    if cli.global.output == OutputFormat::Json {
        let steps: Vec<serde_json::Value> = p
            .steps
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "order": s.order,
                    "name": s.name,
                    "file": s.file,
                    "description": s.description,
                    "needs": s.needs,
                    "files": s.files,
                    "config": s.config,
                    "env": s.env,
                    "verify": s.has_verify,
                })
            })
            .collect();
        let doc = serde_json::json!({ "command": "steps", "steps": steps, "exit_code": exit::OK });
        console::print_json(&doc);
        return Ok(exit::OK);
    }
    for s in &p.steps.steps {
        p.console.line(&format!(
            "{:02} {}  {}",
            s.order,
            p.console.paint(console::BOLD, &s.name),
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

/// `steps --secrets`: which config keys are secret and why (values never shown), the keys
/// excepted, and which declared config keys of each step hold secrets.
fn secrets_report(p: &Project) -> Result<i32> {
    let c = &p.console;
    let values = p.config.secret_values();
    c.line(&format!(
        "Config keys treated as secret in {} (values never shown):",
        p.config.path.display()
    ));
    if values.is_empty() {
        c.line("  (none)");
    }
    for (key, by, value) in &values {
        let note = if value.chars().count() < crate::util::secrets::MIN_PATTERN_LEN {
            format!(
                "; shorter than {} characters: not masked inside other text",
                crate::util::secrets::MIN_PATTERN_LEN
            )
        } else {
            String::new()
        };
        c.line(&format!("  {key}  ({}{note})", by.describe()));
    }
    let d = &p.config.settings.deployment;
    if !d.not_secret_keys.is_empty() {
        c.line(&format!(
            "Not secret (deployment.not_secret_keys): {}",
            d.not_secret_keys.join(", ")
        ));
    }
    c.line(&format!(
        "Commands carrying a secret on their command line are {} (deployment.strict_secrets / --strict).",
        if d.strict_secrets { "refused" } else { "warned about" }
    ));
    for s in &p.steps.steps {
        let keys: Vec<&str> = s
            .config
            .iter()
            .filter(|k| p.config.has_secret(k))
            .map(String::as_str)
            .collect();
        if !keys.is_empty() {
            c.line(&format!(
                "  step {} reads secrets through: {}",
                s.name,
                keys.join(", ")
            ));
        }
    }
    Ok(exit::OK)
}
