//! `stepwise output [STEP[.KEY]] [--raw]`: what the last deployment of this environment
//! produced (the outputs in its state), for people and scripts.

use crate::app::project::StateTarget;
use crate::cli::{Cli, OutputFormat};
use crate::util::error::{exit, usage};
use anyhow::Result;
use serde_json::{Map, Value};

pub fn run(cli: &Cli, which: Option<&str>, raw: bool) -> Result<i32> {
    let target = crate::app::project::target(&cli.load_options())?;
    let state = target.store()?.load()?;
    // Outputs of what is deployed: completed or rolled-back steps.
    let all: Map<String, Value> = state
        .steps
        .iter()
        .filter(|(_, r)| r.status.deployed() && !r.outputs.is_empty())
        .map(|(n, r)| (n.clone(), Value::Object(r.outputs.clone())))
        .collect();
    let value = select(&all, which)?;
    let masker = crate::util::secrets::global();
    if raw {
        match &value {
            Value::String(s) => println!("{}", masker.mask(s)),
            Value::Object(_) | Value::Array(_) => {
                return Err(usage(format!(
                    "--raw prints one value; {} is {}: name a key (STEP.KEY), or use --output json",
                    which.unwrap_or("every step's outputs"),
                    if value.is_array() { "a list" } else { "a map" }
                )))
            }
            other => println!("{}", masker.mask(&other.to_string())),
        }
        return Ok(exit::OK);
    }
    match cli.global.output {
        OutputFormat::Json => crate::util::console::print_json(&value),
        _ => print_human(&value, which, &masker),
    }
    Ok(exit::OK)
}

/// Every step's outputs, one step's, or one value.
fn select(all: &Map<String, Value>, which: Option<&str>) -> Result<Value> {
    let Some(which) = which else {
        return Ok(Value::Object(all.clone()));
    };
    let (step, key) = match which.split_once('.') {
        Some((s, k)) => (s, Some(k)),
        None => (which, None),
    };
    let Some(outputs) = all.get(step) else {
        let names: Vec<&str> = all.keys().map(String::as_str).collect();
        return Err(usage(format!(
            "no outputs of step {step} in the last deployment{} (steps with outputs: {})",
            crate::util::suggest::did_you_mean(step, names.iter().copied()),
            if names.is_empty() {
                "none".to_string()
            } else {
                names.join(", ")
            }
        )));
    };
    let Some(key) = key else {
        return Ok(outputs.clone());
    };
    match outputs.get(key) {
        Some(v) => Ok(v.clone()),
        None => {
            let keys: Vec<&str> = outputs
                .as_object()
                .map(|m| m.keys().map(String::as_str).collect())
                .unwrap_or_default();
            Err(usage(format!(
                "step {step} has no output {key}{} (its outputs: {})",
                crate::util::suggest::did_you_mean(key, keys.iter().copied()),
                keys.join(", ")
            )))
        }
    }
}

/// `step.key = value` lines (values as JSON unless a plain string).
fn print_human(value: &Value, which: Option<&str>, masker: &crate::util::secrets::Masker) {
    let shown = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    match (which, value) {
        (Some(w), v) if w.contains('.') => println!("{}", masker.mask(&shown(v))),
        (Some(step), Value::Object(m)) => {
            for (k, v) in m {
                println!("{step}.{k} = {}", masker.mask(&shown(v)));
            }
        }
        (_, Value::Object(all)) => {
            for (step, outputs) in all {
                if let Value::Object(m) = outputs {
                    for (k, v) in m {
                        println!("{step}.{k} = {}", masker.mask(&shown(v)));
                    }
                }
            }
        }
        (_, v) => println!("{}", masker.mask(&shown(v))),
    }
}
