//! `stepwise graph`: the steps and their `needs` as Mermaid or DOT, marked with what would run.

use crate::app::deploy::decide;
use crate::app::project::{Project, StateTarget};
use crate::cli::{Cli, GraphFormat, OutputFormat};
use crate::decide::plan::Action;
use crate::state::State;
use crate::util::error::{exit, usage};
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
    let actions: Option<Vec<Action>> = decisions.map(|d| d.iter().map(|d| d.action).collect());
    let text = match (json, format.unwrap_or(GraphFormat::Mermaid)) {
        (true, _) => {
            crate::util::console::print_json(&as_json(&p, actions.as_deref()));
            return Ok(exit::OK);
        }
        (false, GraphFormat::Mermaid) => mermaid(&p, actions.as_deref()),
        (false, GraphFormat::Dot) => dot(&p, actions.as_deref()),
    };
    print!("{text}");
    Ok(exit::OK)
}

/// The graph as JSON: each step, its needs and its decision (when there is a config).
fn as_json(p: &Project, actions: Option<&[Action]>) -> serde_json::Value {
    let action = |i: usize| actions.map(|a| a[i]);
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
    serde_json::json!({
        "command": "graph",
        "env": p.env,
        "steps": steps,
        "exit_code": exit::OK,
    })
}

/// The graph in Mermaid, marked with what would run.
fn mermaid(p: &Project, actions: Option<&[Action]>) -> String {
    let action = |i: usize| actions.map(|a| a[i]);
    let mut out = String::new();
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
    if actions.is_some() {
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
    out
}

/// The graph in DOT, marked with what would run.
fn dot(p: &Project, actions: Option<&[Action]>) -> String {
    let action = |i: usize| actions.map(|a| a[i]);
    let mut out = String::new();
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
    out
}
