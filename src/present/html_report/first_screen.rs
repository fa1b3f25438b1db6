//! What the report's first screen answers, "what happened": the error banner (each failed
//! step's error text first, where and which command after), the public outputs, the warnings,
//! where the run came from (project, environment, config, commit, CI run), and the step graph
//! as a list for narrow screens.

use super::markup::{esc, status_class};
use crate::present::summary::RunSummary;
use crate::util::failure::Parts;

/// The error banner of a run that did not succeed: each failed or interrupted step (else
/// each blocked one) with its error, and a lost lock. Nothing for a run that succeeded.
pub fn banner(out: &mut String, run: &RunSummary) {
    let failed: Vec<_> = run
        .steps
        .iter()
        .filter(|s| matches!(s.result.as_str(), "failed" | "interrupted"))
        .collect();
    let listed: Vec<_> = if failed.is_empty() {
        run.steps.iter().filter(|s| s.result == "blocked").collect()
    } else {
        failed
    };
    if listed.is_empty() && run.lock_lost.is_none() {
        return;
    }
    let n = |k: &str| listed.iter().filter(|s| s.result == k).count();
    let mut heading = Vec::new();
    for (k, word) in [
        ("failed", "failed"),
        ("interrupted", "interrupted"),
        ("blocked", "blocked"),
    ] {
        match n(k) {
            0 => {}
            1 => heading.push(format!("1 step {word}")),
            c => heading.push(format!("{c} steps {word}")),
        }
    }
    if run.lock_lost.is_some() {
        heading.push("the run lost its state lock".into());
    }
    out.push_str(&format!(
        "<section id=\"errors\" class=\"banner\" role=\"alert\"><h2>{}</h2>\n<ul>\n",
        esc(&capitalised(&heading.join(", ")))
    ));
    if let Some(why) = &run.lock_lost {
        out.push_str(&format!(
            "<li class=\"lock-lost\"><span class=\"error\">{}</span></li>\n",
            esc(why)
        ));
    }
    for s in listed {
        let parts = Parts::of(&s.reason);
        out.push_str(&format!(
            "<li data-step=\"{0}\" class=\"{1}\"><a href=\"#step-{0}\" class=\"step-name\">{0}</a> <span class=\"status\">{2}</span>",
            esc(&s.name),
            status_class(&s.result),
            esc(&s.result),
        ));
        if s.retries > 0 {
            out.push_str(&format!(
                " <span class=\"retries\">{}</span>",
                retries(s.retries)
            ));
        }
        out.push_str(&format!("<div class=\"error\">{}</div>", esc(&parts.error)));
        let mut whence = Vec::new();
        if let Some(cmd) = &parts.command {
            whence.push(format!("command <code>{}</code>", esc(cmd)));
        }
        if let Some(at) = &parts.location {
            whence.push(format!("at <code>{}</code>", esc(at)));
        }
        if !whence.is_empty() {
            out.push_str(&format!(
                "<div class=\"whence\">{}</div>",
                whence.join(" · ")
            ));
        }
        out.push_str("</li>\n");
    }
    out.push_str("</ul></section>\n");
}

fn capitalised(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// `1 retry`, `2 retries`.
pub fn retries(n: u32) -> String {
    if n == 1 {
        "1 retry".into()
    } else {
        format!("{n} retries")
    }
}

/// A link when `text` is an http(s) URL (nothing else is ever made a link), else the text.
fn link_or_text(text: &str, label: &str) -> String {
    let url = text.trim();
    if (url.starts_with("https://") || url.starts_with("http://"))
        && !url.contains(char::is_whitespace)
    {
        format!("<a href=\"{}\">{}</a>", esc(url), esc(label))
    } else {
        esc(label)
    }
}

/// The outputs the steps mark public, each `step.key` with its value (a URL as a link).
pub fn outputs(out: &mut String, run: &RunSummary) {
    if run.outputs.is_empty() {
        return;
    }
    out.push_str("<section id=\"outputs\"><h2>Outputs</h2>\n<dl class=\"outputs\">\n");
    for o in &run.outputs {
        out.push_str(&format!(
            "<div data-output=\"{0}.{1}\"><dt>{0}.{1}</dt><dd>{2}</dd></div>\n",
            esc(&o.step),
            esc(&o.key),
            link_or_text(&o.value, &o.value)
        ));
    }
    out.push_str("</dl></section>\n");
}

/// The run's warnings: their count and each with its step.
pub fn warnings(out: &mut String, run: &RunSummary) {
    if run.warnings.is_empty() {
        return;
    }
    out.push_str(&format!(
        "<section id=\"warnings\"><h2>Warnings ({})</h2>\n<ul>\n",
        run.warnings.len()
    ));
    for w in &run.warnings {
        out.push_str(&format!(
            "<li><a href=\"#step-{}\">{}</a>: {}</li>\n",
            esc(&w.step),
            esc(&w.step),
            esc(&w.message)
        ));
    }
    out.push_str("</ul></section>\n");
}

/// Where the run came from, as header facts `(label, HTML)`: project, environment (`default`
/// without one), config file, commit and branch, CI run.
pub fn origin_facts(run: &RunSummary) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if !run.project.is_empty() {
        facts.push(("Project", esc(&run.project)));
    }
    facts.push(("Environment", esc(run.env.as_deref().unwrap_or("default"))));
    if !run.config.is_empty() {
        facts.push(("Config", format!("<code>{}</code>", esc(&run.config))));
    }
    if let Some(g) = &run.git {
        let branch = if g.branch.is_empty() {
            String::new()
        } else {
            format!(" on <code>{}</code>", esc(&g.branch))
        };
        facts.push((
            "Commit",
            format!(
                "<code title=\"{}\">{}</code>{branch}",
                esc(&g.commit),
                esc(g.short())
            ),
        ));
    }
    if let Some(ci) = &run.ci {
        facts.push((
            "CI run",
            link_or_text(&ci.url, &format!("{} run", ci.system)),
        ));
    }
    facts
}

/// The step graph as a list (shown instead of the drawing on narrow screens): each step, its
/// status and what it needs.
pub fn graph_list(run: &RunSummary, plan: bool) -> String {
    let mut out = String::from("<ol class=\"graph-list\">\n");
    for s in &run.steps {
        let status = if plan { &s.decision } else { &s.result };
        let word = match (plan, status.as_str()) {
            (true, "run") => "would run",
            (true, "skip") => "up to date",
            (_, "excluded") => "not selected",
            (_, other) => other,
        };
        let needs = if s.needs.is_empty() {
            String::new()
        } else {
            format!(
                "<span class=\"needs\"> ← needs {}</span>",
                s.needs
                    .iter()
                    .map(|n| esc(n))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        out.push_str(&format!(
            "<li data-step=\"{0}\" class=\"{1}\"><span class=\"dot {1}\"></span><a href=\"#step-{0}\">{0}</a> <span class=\"status\">{2}</span>{needs}</li>\n",
            esc(&s.name),
            status_class(status),
            esc(word)
        ));
    }
    out.push_str("</ol>\n");
    out
}
