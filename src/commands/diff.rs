//! `stepwise diff A B`: what promoting environment A to B would change. The config keys whose
//! merged values differ (secret values only as `changed`), and for each step whether its
//! fingerprint differs between the two environments, with the dependencies that differ.
//! Exit 0 either way.

use crate::app::project::{Project, StateTarget};
use crate::cli::{Cli, OutputFormat};
use crate::config::environment;
use crate::config::{canonical_json, Config};
use crate::decide::fingerprint::describe;
use crate::state::State;
use crate::util::console::{self, Console};
use crate::util::error::exit;
use crate::util::secrets::Masker;
use anyhow::Result;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// One config key that differs.
struct KeyDiff {
    key: String,
    from: Option<Value>,
    to: Option<Value>,
    secret: bool,
}

impl KeyDiff {
    fn change(&self) -> &'static str {
        match (&self.from, &self.to) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            _ => "changed",
        }
    }
}

/// One step: the dependencies whose digests differ (empty: the same in both).
struct StepDiff {
    name: String,
    differing: Vec<String>,
}

pub fn run(cli: &Cli, from: &str, to: &str) -> Result<i32> {
    environment::check("diff:", from)?;
    environment::check("diff:", to)?;
    let a = Project::load_env(&cli.load_options(), true, Some(from))?;
    let b = Project::load_env(&cli.load_options(), true, Some(to))?;
    let keys = config_diff(&a.config, &b.config);
    let steps = step_diff(&a, &b)?;
    if cli.global.output == OutputFormat::Json {
        let doc = json!({
            "command": "diff",
            "from": from,
            "to": to,
            "config": keys.iter().map(|k| {
                let mut o = json!({"key": k.key, "change": k.change(), "secret": k.secret});
                if !k.secret {
                    o["from"] = k.from.clone().unwrap_or(Value::Null);
                    o["to"] = k.to.clone().unwrap_or(Value::Null);
                }
                o
            }).collect::<Vec<_>>(),
            "steps": steps.iter().map(|s| json!({
                "name": s.name,
                "differs": !s.differing.is_empty(),
                "dependencies": s.differing,
            })).collect::<Vec<_>>(),
            "exit_code": exit::OK,
        });
        crate::util::console::print_json(&doc);
        return Ok(exit::OK);
    }
    let markdown = cli.global.output == OutputFormat::Markdown;
    // With --output markdown the document goes to stdout and these lines to stderr.
    let console = if markdown {
        Console::on_stderr(false)
    } else {
        Console::new(false)
    };
    console.line(&format!(
        "Config: {} → {}",
        files(&a.config),
        files(&b.config)
    ));
    if keys.is_empty() {
        console.line("  no key differs");
    }
    let width = keys.iter().map(|k| k.key.len()).max().unwrap_or(0);
    for k in &keys {
        let show = |v: &Option<Value>| match v {
            Some(v) => canonical_json(v),
            None => "(absent)".to_string(),
        };
        let what = if k.secret {
            console.paint(console::YELLOW, &format!("{} (secret)", k.change()))
        } else {
            format!("{} → {}", show(&k.from), show(&k.to))
        };
        console.line(&format!("  {:width$}  {what}", k.key));
    }
    console.line(&format!("Steps ({from} → {to}):"));
    let width = steps.iter().map(|s| s.name.len()).max().unwrap_or(0);
    for s in &steps {
        if s.differing.is_empty() {
            console.line(&format!(
                "  {:width$}  {}",
                s.name,
                console.paint(console::DIM, "same")
            ));
        } else {
            console.line(&format!(
                "  {:width$}  {} {}",
                s.name,
                console.paint(console::YELLOW, "differs:"),
                s.differing
                    .iter()
                    .map(|d| describe(d))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let n = steps.iter().filter(|s| !s.differing.is_empty()).count();
    let summary = format!(
        "{} config key{} and {n} of {} steps differ between {from} and {to}.",
        keys.len(),
        if keys.len() == 1 { "" } else { "s" },
        steps.len()
    );
    console.line(&summary);
    if markdown {
        let doc = markdown_document(from, to, &keys, &steps, &summary);
        print!("{}", a.masker.mask(&b.masker.mask(&doc)));
    }
    Ok(exit::OK)
}

/// `--output markdown`: the differing config keys (secret values never shown) and the steps.
fn markdown_document(
    from: &str,
    to: &str,
    keys: &[KeyDiff],
    steps: &[StepDiff],
    summary: &str,
) -> String {
    use crate::present::markdown::cell;
    let mut out = format!("### stepwise diff: {} → {}\n\n", cell(from), cell(to));
    if keys.is_empty() {
        out.push_str("No config key differs.\n\n");
    } else {
        out.push_str(&format!(
            "| config key | change | {} | {} |\n|---|---|---|---|\n",
            cell(from),
            cell(to)
        ));
        for k in keys {
            let show = |v: &Option<Value>| match v {
                Some(v) if !k.secret => format!("`{}`", cell(&canonical_json(v)).replace('`', "'")),
                _ => String::new(),
            };
            let change = if k.secret {
                format!("{} (secret)", k.change())
            } else {
                k.change().to_string()
            };
            out.push_str(&format!(
                "| `{}` | {change} | {} | {} |\n",
                k.key,
                show(&k.from),
                show(&k.to)
            ));
        }
        out.push('\n');
    }
    out.push_str("| step | differs | dependencies that differ |\n|---|---|---|\n");
    for s in steps {
        let deps = s
            .differing
            .iter()
            .map(|d| describe(d))
            .collect::<Vec<_>>()
            .join(", ");
        out.push_str(&format!(
            "| `{}` | {} | {} |\n",
            s.name,
            if s.differing.is_empty() {
                "same"
            } else {
                "⚠️ differs"
            },
            cell(&deps)
        ));
    }
    out.push_str(&format!("\n**{}**\n", cell(summary)));
    out
}

fn files(c: &Config) -> String {
    c.files()
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The leaves of a config: dotted key → value (a list or an empty mapping is one value).
fn leaves(v: &Value, key: &str, out: &mut BTreeMap<String, Value>) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, c) in m {
                let sub = if key.is_empty() {
                    k.clone()
                } else {
                    format!("{key}.{k}")
                };
                leaves(c, &sub, out);
            }
        }
        other => {
            out.insert(key.to_string(), other.clone());
        }
    }
}

/// Is a value at `key` secret: either config says the key (or one of its parents) is secret,
/// or the value holds a string either config registered as secret?
fn is_secret(
    key: &str,
    values: &[Option<&Value>],
    maskers: &[&Masker],
    configs: &[&Config],
) -> bool {
    if configs.iter().any(|c| c.secret_by(key).is_some()) {
        return true;
    }
    values.iter().flatten().any(|v| {
        let text = canonical_json(v);
        maskers.iter().any(|m| m.mask(&text) != text)
    })
}

fn config_diff(a: &Config, b: &Config) -> Vec<KeyDiff> {
    let (mut la, mut lb) = (BTreeMap::new(), BTreeMap::new());
    leaves(&a.root, "", &mut la);
    leaves(&b.root, "", &mut lb);
    let (ma, mb) = (Masker::new(), Masker::new());
    a.register_secrets(&ma);
    b.register_secrets(&mb);
    let keys: BTreeSet<&String> = la.keys().chain(lb.keys()).collect();
    let mut out = Vec::new();
    for key in keys {
        let (va, vb) = (la.get(key), lb.get(key));
        if va == vb {
            continue;
        }
        out.push(KeyDiff {
            key: key.clone(),
            from: va.cloned(),
            to: vb.cloned(),
            secret: is_secret(key, &[va, vb], &[&ma, &mb], &[a, b]),
        });
    }
    out
}

/// Each step's fingerprint in both environments, with one salt for both so that equal secret
/// values give equal digests; plus config keys a step read without declaring them (recorded
/// in either environment's state) whose values differ.
fn step_diff(a: &Project, b: &Project) -> Result<Vec<StepDiff>> {
    let salt = State::default().secret_salt();
    let fa = a.fingerprints(Some(&salt))?;
    let fb = b.fingerprints(Some(&salt))?;
    // States are only read for recorded reads: one that cannot be read adds nothing.
    let load = |p: &Project| p.store().and_then(|s| s.load()).unwrap_or_default();
    let (sa, sb) = (load(a), load(b));
    let mut out = Vec::new();
    for ((step, x), y) in a.steps.steps.iter().zip(&fa).zip(&fb) {
        let keys: BTreeSet<&String> = x.dependencies.keys().chain(y.dependencies.keys()).collect();
        let mut differing: Vec<String> = keys
            .into_iter()
            .filter(|k| x.dependencies.get(*k) != y.dependencies.get(*k))
            .cloned()
            .collect();
        let read: BTreeSet<&String> = [&sa, &sb]
            .iter()
            .filter_map(|s| s.steps.get(&step.name)?.reads.as_ref())
            .flat_map(|r| r.config.keys())
            .collect();
        for key in read {
            let dep = format!("config:{key}");
            if !differing.contains(&dep)
                && !x.dependencies.contains_key(&dep)
                && a.config.canonical(key) != b.config.canonical(key)
            {
                differing.push(dep);
            }
        }
        out.push(StepDiff {
            name: step.name.clone(),
            differing,
        });
    }
    Ok(out)
}
