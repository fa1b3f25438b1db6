//! `stepwise graph`: the steps and their `needs` as Mermaid or DOT, marked with what would run.

use crate::app::deploy::decide;
use crate::app::project::Project;
use crate::cli::{Cli, GraphFormat, OutputFormat};
use crate::decide::plan::Action;
use crate::state::State;
use crate::util::error::exit;
use crate::util::error::usage;
use anyhow::Result;

pub fn run(cli: &Cli, format: Option<GraphFormat>) -> Result<i32> {
    let json = cli.global.output == OutputFormat::Json;
    if json && format.is_some() {
        return Err(usage(
            "graph: --format and --output json are two formats; pick one",
        ));
    }
    let has_config = cli.global.config.exists();
    let p = Project::load(&cli.load_options(), has_config)?;
    // Mark what would run when there is a config to decide with.
    let decisions = if has_config {
        let state = if cli.deploy.reset_state {
            State::default()
        } else {
            p.store()?.load()?
        };
        let (decisions, _) = decide(&p, &p.deploy, &state, state.salt())?;
        p.hash_cache.save();
        Some(decisions)
    } else {
        None
    };
    let action = |i: usize| decisions.as_ref().map(|d| d[i].action);
    if json {
        let steps: Vec<serde_json::Value> = p
            .steps
            .steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                serde_json::json!({
                    "name": s.name,
                    "needs": s.needs,
                    "decision": action(i).map(|a| a.as_str()),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "command": "graph",
            "env": p.env,
            "steps": steps,
            "exit_code": exit::OK,
        });
        crate::util::console::print_json(&doc);
        return Ok(exit::OK);
    }
    let mut out = String::new();
    match format.unwrap_or(GraphFormat::Mermaid) {
        GraphFormat::Mermaid => {
            if let Some(env) = &p.env {
                out.push_str(&format!("---\ntitle: environment {env}\n---\n"));
            }
            out.push_str("flowchart TD\n");
            for (i, s) in p.steps.steps.iter().enumerate() {
                let label = match action(i) {
                    Some(a) => format!("{}<br/>{}", s.name, a.as_str()),
                    None => s.name.clone(),
                };
                out.push_str(&format!("    {}[\"{label}\"]\n", s.name));
            }
            for s in &p.steps.steps {
                for n in &s.needs {
                    out.push_str(&format!("    {n} --> {}\n", s.name));
                }
            }
            if decisions.is_some() {
                out.push_str("    classDef run fill:#fde68a,stroke:#b45309\n");
                out.push_str("    classDef skip fill:#e5e7eb,stroke:#6b7280\n");
                out.push_str("    classDef blocked fill:#fecaca,stroke:#b91c1c\n");
                for (i, s) in p.steps.steps.iter().enumerate() {
                    let class = match action(i) {
                        Some(Action::Run) => "run",
                        Some(Action::Blocked) => "blocked",
                        _ => "skip",
                    };
                    out.push_str(&format!("    class {} {class}\n", s.name));
                }
            }
        }
        GraphFormat::Dot => {
            out.push_str("digraph stepwise {\n    rankdir=TB;\n    node [shape=box];\n");
            if let Some(env) = &p.env {
                out.push_str(&format!(
                    "    label=\"environment {env}\";\n    labelloc=t;\n"
                ));
            }
            for (i, s) in p.steps.steps.iter().enumerate() {
                let (label, style) = match action(i) {
                    Some(Action::Run) => (
                        format!("{}\\nrun", s.name),
                        ", style=filled, fillcolor=\"#fde68a\"",
                    ),
                    Some(a) => (format!("{}\\n{}", s.name, a.as_str()), ""),
                    None => (s.name.clone(), ""),
                };
                out.push_str(&format!("    \"{}\" [label=\"{label}\"{style}];\n", s.name));
            }
            for s in &p.steps.steps {
                for n in &s.needs {
                    out.push_str(&format!("    \"{n}\" -> \"{}\";\n", s.name));
                }
            }
            out.push_str("}\n");
        }
    }
    print!("{out}");
    Ok(exit::OK)
}
