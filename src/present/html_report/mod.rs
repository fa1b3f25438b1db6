//! The HTML run report: one self-contained page (inline CSS and SVG; no script, font or image
//! fetched, forbidden by its Content-Security-Policy) drawn from a [`RunSummary`] and the
//! summaries of earlier runs. Header, timeline with the critical path, step graph, per-step
//! details (reasons, duration against the median of earlier runs, commands, warnings, log
//! tail) and trends. Light and dark follow `prefers-color-scheme`. The markup is well-formed
//! XML (polyglot HTML), so tests can read it with an XML parser.

mod charts;
mod first_screen;
mod graph;
mod markup;

pub use markup::{esc, status_class};

use crate::present::summary::{RunSummary, StepSummary};
use charts::secs_text;

/// A run is marked slower than usual above this factor of its median.
pub const SLOWER: f64 = 1.5;

/// How a step compares with its earlier runs.
struct Usual {
    median: f64,
    runs: usize,
}

fn usual(history: &[RunSummary], step: &str) -> Option<Usual> {
    let all: Vec<f64> = charts::durations(history, step).collect();
    let last = &all[all.len().saturating_sub(charts::MEDIAN_OF)..];
    Some(Usual {
        median: charts::median(last)?,
        runs: last.len(),
    })
}

/// The page for `run` (a deployment or a plan); `history` holds earlier deployments, oldest
/// first.
pub fn render(run: &RunSummary, history: &[RunSummary]) -> String {
    let plan = run.command == "plan";
    let critical = if plan {
        Vec::new()
    } else {
        charts::critical_path(run)
    };
    let result = run.result();
    let title = match &run.rollback_target {
        _ if plan => "Plan".to_string(),
        Some(t) => format!("Rollback to {t} {result}"),
        None => format!("Deployment {result}"),
    };
    let env = run
        .env
        .as_deref()
        .map(|e| format!(" · {}", esc(e)))
        .unwrap_or_default();
    let mut out = String::with_capacity(64 * 1024);
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>\n");
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\"/>\n");
    out.push_str("<meta name=\"generator\" content=\"stepwise\"/>\n");
    out.push_str(&format!(
        "<title>stepwise: {}{} {}</title>\n<style>{CSS}</style>\n</head>\n",
        esc(&title),
        env,
        esc(if plan { &run.started_at } else { &run.run_id })
    ));
    out.push_str(&format!(
        "<body class=\"{}\" data-command=\"{}\" data-result=\"{}\">\n",
        if plan { "plan" } else { "run" },
        esc(&run.command),
        esc(result)
    ));
    header(&mut out, run, plan, result);
    out.push_str("<main>\n");
    first_screen::outputs(&mut out, run);
    first_screen::warnings(&mut out, run);
    if !plan {
        out.push_str("<section id=\"timeline\"><h2>Timeline</h2>\n");
        out.push_str(&charts::timeline(run, &critical));
        out.push_str(&legend(!critical.is_empty()));
        not_run(&mut out, run);
        out.push_str("</section>\n");
    }
    out.push_str(&format!(
        "<section id=\"graph\"><h2>Step graph</h2>\n<p class=\"muted\">{} Select a step for its details.</p>\n<div class=\"scroll graph-box\">",
        if plan {
            "What a deployment would do now; an arrow points from a step to a step that needs it."
        } else {
            "This run's result on each step; an arrow points from a step to a step that needs it."
        }
    ));
    out.push_str(&graph_svg(run, &critical, plan));
    out.push_str("</div>\n");
    out.push_str(&first_screen::graph_list(run, plan));
    if plan {
        out.push_str(&legend(false));
    }
    out.push_str("</section>\n");
    steps(&mut out, run, history, plan);
    trends(&mut out, run, history);
    out.push_str("</main>\n");
    out.push_str(&format!(
        "<footer>Written by stepwise {} · a self-contained file: nothing is loaded from anywhere.</footer>\n</body>\n</html>\n",
        esc(&run.version)
    ));
    out
}

/// The page's header: the title with the result, the error banner of a run that did not
/// succeed, then the facts: result and counts first, then where the run came from.
fn header(out: &mut String, run: &RunSummary, plan: bool, result: &str) {
    out.push_str("<header>\n");
    out.push_str(&format!(
        "<h1>{} <span class=\"badge {}\">{}</span></h1>\n",
        match &run.rollback_target {
            _ if plan => "Plan".to_string(),
            Some(t) => format!("Rollback to {}", esc(t)),
            None => "Deployment".to_string(),
        },
        match result {
            "succeeded" => "st-ran",
            "failed" => "st-failed",
            "interrupted" | "lost its lock" => "st-interrupted",
            "plan" => "st-run",
            _ => "st-skipped",
        },
        esc(result)
    ));
    if !plan {
        first_screen::banner(out, run);
    }
    out.push_str("<dl class=\"facts\">\n");
    let mut facts = result_facts(run, plan, result);
    facts.push(("When", esc(&when(&run.started_at))));
    if !plan {
        facts.push(("Run", format!("<code>{}</code>", esc(&run.run_id))));
    }
    facts.extend(first_screen::origin_facts(run));
    let who = match (run.user.is_empty(), run.host.is_empty()) {
        (false, false) => format!("{}@{}", run.user, run.host),
        (false, true) => run.user.clone(),
        (true, false) => run.host.clone(),
        (true, true) => String::new(),
    };
    facts.push(("By", esc(&who)));
    facts.push(("stepwise", esc(&run.version)));
    if let Some(c) = &run.cost {
        facts.push(("Estimated cost", esc(&c.describe())));
    }
    for (k, v) in facts.into_iter().filter(|(_, v)| !v.is_empty()) {
        out.push_str(&format!("<div><dt>{k}</dt><dd>{v}</dd></div>\n"));
    }
    out.push_str("</dl>\n</header>\n");
}

/// The header's first facts: what a plan would do, or how a run ended (result, lost lock,
/// wall time, counts, warnings).
fn result_facts(run: &RunSummary, plan: bool, result: &str) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if plan {
        let n = |d: &str| run.steps.iter().filter(|s| s.decision == d).count();
        facts.push((
            "Steps",
            format!(
                "{} to run · {} up to date · {} pending · {} not selected",
                n("run"),
                n("skip"),
                n("pending"),
                n("excluded")
            ),
        ));
        return facts;
    }
    let c = run.counts();
    facts.push(("Result", esc(result)));
    if let Some(why) = &run.lock_lost {
        facts.push(("Lock lost", esc(why)));
    }
    facts.push(("Wall time", secs_text(run.wall_secs)));
    let mut counts = vec![
        format!("{} ran", c.ran),
        format!("{} skipped", c.skipped),
        format!("{} failed", c.failed),
        format!("{} blocked", c.blocked),
    ];
    if c.interrupted > 0 {
        counts.push(format!("{} interrupted", c.interrupted));
    }
    if c.pending > 0 {
        counts.push(format!("{} not run", c.pending));
    }
    facts.push(("Steps", counts.join(" · ")));
    if !run.warnings.is_empty() {
        facts.push((
            "Warnings",
            format!("<a href=\"#warnings\">{}</a>", run.warnings.len()),
        ));
    }
    facts
}

/// `2026-11-27T13:45:20.123Z` → `2026-11-27 13:45:20 UTC`.
fn when(rfc3339: &str) -> String {
    match time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute(),
            t.second()
        ),
        Err(_) => rfc3339.to_string(),
    }
}

fn legend(critical: bool) -> String {
    let mut out = String::from("<ul class=\"legend\">");
    for (class, label) in [
        ("st-ran", "ran"),
        ("st-failed", "failed"),
        ("st-interrupted", "interrupted"),
        ("st-blocked", "blocked"),
        ("st-skipped", "skipped / up to date"),
        ("st-run", "would run"),
        ("st-pending", "pending / not run"),
    ] {
        out.push_str(&format!(
            "<li><span class=\"swatch {class}\"></span>{label}</li>"
        ));
    }
    if critical {
        out.push_str("<li><span class=\"crit-mark\">◆</span> critical path: the chain of steps each waited for, ending with the last to finish</li>");
    }
    out.push_str("</ul>\n");
    out
}

/// Steps that were skipped or not run, with their reasons.
fn not_run(out: &mut String, run: &RunSummary) {
    for (result, heading) in [("skipped", "Skipped (up to date)"), ("pending", "Not run")] {
        let list: Vec<_> = run.steps.iter().filter(|s| s.result == result).collect();
        if list.is_empty() {
            continue;
        }
        out.push_str(&format!("<h3>{heading}</h3>\n<ul class=\"skipped\">\n"));
        for s in list {
            out.push_str(&format!(
                "<li data-step=\"{0}\" data-status=\"{1}\"><a href=\"#step-{0}\">{0}</a>: {2}</li>\n",
                esc(&s.name),
                esc(&s.result),
                esc(&s.reason)
            ));
        }
        out.push_str("</ul>\n");
    }
}

fn graph_svg(run: &RunSummary, critical: &[String], plan: bool) -> String {
    let index: std::collections::HashMap<&str, usize> = run
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let nodes: Vec<graph::Node> = run
        .steps
        .iter()
        .map(|s| {
            let (status, detail) = if plan {
                let word = match s.decision.as_str() {
                    "run" => "would run",
                    "skip" => "up to date",
                    "excluded" => "not selected",
                    other => other,
                };
                (s.decision.as_str(), word.to_string())
            } else {
                let time = if s.started_secs.is_some() && s.result != "blocked" {
                    format!(" {}", secs_text(s.duration_secs))
                } else {
                    String::new()
                };
                (s.result.as_str(), format!("{}{time}", s.result))
            };
            graph::Node {
                name: s.name.clone(),
                class: status_class(status),
                detail,
                critical: critical.contains(&s.name),
            }
        })
        .collect();
    let mut edges = Vec::new();
    for (b, s) in run.steps.iter().enumerate() {
        for n in &s.needs {
            if let Some(&a) = index.get(n.as_str()) {
                let crit = critical.windows(2).any(|w| w[0] == *n && w[1] == s.name);
                edges.push((a, b, crit));
            }
        }
    }
    graph::svg(&nodes, &edges)
        .unwrap_or_else(|| "<p class=\"muted\">The graph could not be laid out.</p>".to_string())
}

fn steps(out: &mut String, run: &RunSummary, history: &[RunSummary], plan: bool) {
    out.push_str("<section id=\"steps\"><h2>Steps</h2>\n");
    for s in &run.steps {
        step_head(out, s, history, plan);
        step_body(out, s, plan);
    }
    out.push_str("</section>\n");
}

/// A step's `<details>` opening and its one-line `<summary>`: status, duration, its usual
/// duration and whether it ran slower.
fn step_head(out: &mut String, s: &StepSummary, history: &[RunSummary], plan: bool) {
    let status = if plan { &s.decision } else { &s.result };
    let usual = usual(history, &s.name);
    let ran = !plan && s.started_secs.is_some() && s.result != "blocked";
    // A retried step's time went to its retries: it is shown as retried, not as slower.
    let slower = match (&usual, ran) {
        (Some(u), true) => s.retries == 0 && u.median > 0.0 && s.duration_secs > u.median * SLOWER,
        _ => false,
    };
    let open = matches!(s.result.as_str(), "failed" | "interrupted");
    out.push_str(&format!(
        "<details class=\"step {}{}\" id=\"step-{}\" data-step=\"{}\" data-status=\"{}\"{}>\n<summary><span class=\"dot {}\"></span><span class=\"step-name\">{}</span> <span class=\"status\">{}</span>",
        status_class(status),
        if slower { " slower" } else { "" },
        esc(&s.name),
        esc(&s.name),
        esc(status),
        if open { " open=\"open\"" } else { "" },
        status_class(status),
        esc(&s.name),
        esc(&if plan {
            match s.decision.as_str() {
                "run" => "would run".to_string(),
                "skip" => "up to date".to_string(),
                other => other.to_string(),
            }
        } else {
            s.result.clone()
        }),
    ));
    if ran {
        out.push_str(&format!(
            " <span class=\"dur\">{}</span>",
            secs_text(s.duration_secs)
        ));
    }
    if s.retries > 0 {
        out.push_str(&format!(
            " <span class=\"retries\" title=\"its duration includes the retries\">↻ {}</span>",
            first_screen::retries(s.retries)
        ));
    }
    if let Some(u) = &usual {
        out.push_str(&format!(
            " <span class=\"median\">median {} of the last {} run{}</span>",
            secs_text(u.median),
            u.runs,
            if u.runs == 1 { "" } else { "s" }
        ));
    }
    if slower {
        let u = usual.as_ref().map(|u| u.median).unwrap_or(1.0);
        out.push_str(&format!(
            " <span class=\"slower-mark\" title=\"more than 50% slower than its median\">▲ {:.1}× slower than usual</span>",
            s.duration_secs / u
        ));
    }
}

/// A step's details: needs, the plan's reasons, its outcome, drift, commands, warnings and the
/// tail of its log.
fn step_body(out: &mut String, s: &StepSummary, plan: bool) {
    out.push_str("</summary>\n<div class=\"body\">\n");
    if !s.needs.is_empty() {
        out.push_str(&format!(
            "<p class=\"needs\">Needs {}.</p>\n",
            s.needs
                .iter()
                .map(|n| format!("<a href=\"#step-{0}\">{0}</a>", esc(n)))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let decided = match (plan, s.decision.as_str()) {
        (true, "run") => "would run",
        (false, "run") => "run",
        (_, "skip") => "skip (up to date)",
        (_, "excluded") => "not selected",
        (_, other) => other,
    };
    out.push_str(&format!(
        "<h4>Plan: {}</h4>\n<ul class=\"reasons\">\n",
        esc(decided)
    ));
    for r in &s.reasons {
        out.push_str(&format!("<li>{}</li>\n", esc(r)));
    }
    out.push_str("</ul>\n");
    if !plan && !s.reason.is_empty() && !s.reasons.contains(&s.reason) {
        out.push_str(&format!(
            "<p class=\"outcome {}\">{}: {}</p>\n",
            status_class(&s.result),
            esc(&s.result),
            esc(&s.reason)
        ));
    }
    if !s.drift.is_empty() {
        out.push_str("<h4>Drift found by its verify()</h4>\n<ul class=\"warnings drift\">\n");
        for d in &s.drift {
            out.push_str(&format!("<li>{}</li>\n", esc(d)));
        }
        out.push_str("</ul>\n");
    }
    if !s.commands.is_empty() {
        out.push_str(&format!(
            "<h4>Commands ({})</h4>\n<ol class=\"commands\">\n",
            s.commands.len()
        ));
        for c in &s.commands {
            out.push_str(&format!("<li><code>{}</code></li>\n", esc(c)));
        }
        out.push_str("</ol>\n");
    }
    if !s.warnings.is_empty() {
        out.push_str("<h4>Warnings</h4>\n<ul class=\"warnings\">\n");
        for w in &s.warnings {
            out.push_str(&format!("<li>{}</li>\n", esc(w)));
        }
        out.push_str("</ul>\n");
    }
    if !s.log_tail.is_empty() {
        out.push_str(&format!(
            "<h4>Last {} lines of its log</h4>\n<pre class=\"log\">{}</pre>\n",
            s.log_tail.len(),
            esc(&s.log_tail.join("\n"))
        ));
    }
    out.push_str("</div>\n</details>\n");
}

fn trends(out: &mut String, run: &RunSummary, history: &[RunSummary]) {
    out.push_str("<section id=\"trends\"><h2>Trends</h2>\n");
    out.push_str(&charts::wall_trend(history, run));
    out.push_str("<table class=\"spark-table\">\n<thead><tr><th>Step</th><th>Duration over the kept runs</th><th>This run</th><th>Median</th></tr></thead>\n<tbody>\n");
    let mut any = false;
    for s in &run.steps {
        let past: Vec<f64> = charts::durations(history, &s.name).collect();
        let now = (run.command == "deploy" && s.result == "ran").then_some(s.duration_secs);
        let Some(spark) = charts::sparkline(&past, now) else {
            continue;
        };
        any = true;
        let mut all = past.clone();
        all.extend(now);
        out.push_str(&format!(
            "<tr data-step=\"{}\"><td>{}</td><td>{spark}</td><td>{}</td><td>{}</td></tr>\n",
            esc(&s.name),
            esc(&s.name),
            now.map(secs_text).unwrap_or_else(|| "–".into()),
            charts::median(&all[all.len().saturating_sub(charts::MEDIAN_OF)..])
                .map(secs_text)
                .unwrap_or_default(),
        ));
    }
    if !any {
        out.push_str(
            "<tr><td colspan=\"4\" class=\"muted\">No step has run in the kept runs.</td></tr>\n",
        );
    }
    out.push_str("</tbody>\n</table>\n</section>\n");
}

const CSS: &str = r#"
:root { color-scheme: light dark;
  --bg: #ffffff; --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --panel: #f6f8fa; --grid: #e6eaef;
  --ran: #1a7f37; --failed: #cf222e; --interrupted: #bc4c00; --blocked: #9a6700;
  --skipped: #8c959f; --pending: #8250df; --run: #0969da; --crit: #0550ae; --slower: #bc4c00; }
@media (prefers-color-scheme: dark) { :root {
  --bg: #0d1117; --fg: #e6edf3; --muted: #9198a1; --line: #3d444d; --panel: #151b23; --grid: #262c36;
  --ran: #3fb950; --failed: #f85149; --interrupted: #db6d28; --blocked: #d29922;
  --skipped: #6e7681; --pending: #ab7df8; --run: #4493f8; --crit: #79c0ff; --slower: #f0883e; } }
* { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0 auto; max-width: 1200px; padding: 16px; background: var(--bg); color: var(--fg);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; overflow-wrap: anywhere; }
a { color: inherit; }
code, pre { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace; font-size: 12.5px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 17px; margin: 28px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 14px 0 4px; }
h4 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); }
.muted, footer, figcaption { color: var(--muted); }
footer { margin-top: 32px; font-size: 12px; }
.badge { font-size: 13px; padding: 2px 10px; border-radius: 999px; color: #fff; vertical-align: middle; background: var(--skipped); }
.badge.st-ran { background: var(--ran); } .badge.st-failed { background: var(--failed); }
.badge.st-interrupted { background: var(--interrupted); } .badge.st-run { background: var(--run); }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 6px 16px; margin: 8px 0 0; }
.facts div { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.facts dt { font-size: 11px; text-transform: uppercase; letter-spacing: .04em; color: var(--muted); }
.facts dd { margin: 0; }
.st-ran { --c: var(--ran); } .st-failed { --c: var(--failed); } .st-interrupted { --c: var(--interrupted); }
.st-blocked { --c: var(--blocked); } .st-skipped, .st-skip, .st-excluded, .st-other { --c: var(--skipped); }
.st-pending { --c: var(--pending); } .st-run { --c: var(--run); }
.timeline { display: grid; gap: 2px; }
.tl-row { display: grid; grid-template-columns: minmax(120px, 260px) 70px 1fr; align-items: center; gap: 8px; min-height: 22px; }
.tl-name { white-space: nowrap; overflow: hidden; text-overflow: ellipsis; text-decoration: none; }
.tl-time { text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; font-size: 12px; }
.tl-track { width: 100%; height: 20px; display: block; }
.tl-labels { position: relative; height: 16px; font-size: 11px; color: var(--muted); }
.tick { position: absolute; top: 0; transform: translateX(-50%); white-space: nowrap; }
.tick.first { transform: none; } .tick.last { transform: translateX(-100%); }
.grid { stroke: var(--grid); stroke-width: 1; }
.bar { fill: var(--c); }
.tl-row .bar.st-blocked { fill: none; stroke: var(--blocked); stroke-width: 2; }
.bar.crit { stroke: var(--crit); stroke-width: 2; }
.tl-row.crit .tl-name { font-weight: 600; }
.crit-mark { color: var(--crit); }
.legend { list-style: none; padding: 0; margin: 10px 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 12px; color: var(--muted); }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; background: var(--c); vertical-align: -1px; }
.skipped { margin: 4px 0; padding-left: 20px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; background: var(--panel); padding: 6px; }
svg.graph { display: block; margin: 0 auto; max-width: 100%; height: auto; font-size: 13px; }
svg.graph a { text-decoration: none; }
.node rect { fill: var(--bg); stroke: var(--c); stroke-width: 2; }
.node.st-ran rect, .node.st-failed rect, .node.st-interrupted rect, .node.st-run rect { fill: color-mix(in srgb, var(--c) 16%, var(--bg)); }
.node.st-blocked rect, .node.st-pending rect { stroke-dasharray: 5 3; }
.node.crit rect { stroke: var(--crit); stroke-width: 3.5; }
.node text { fill: var(--fg); text-anchor: middle; dominant-baseline: middle; }
.node text.detail { fill: var(--muted); font-size: 11.5px; }
.edge { fill: none; stroke: var(--muted); stroke-width: 1.4; }
.edge.crit { stroke: var(--crit); stroke-width: 3; }
.arrowhead { fill: var(--muted); }
details.step { border: 1px solid var(--line); border-left: 4px solid var(--c); border-radius: 6px; margin: 6px 0; background: var(--bg); }
details.step > summary { cursor: pointer; padding: 6px 10px; list-style-position: inside; }
details.step .body { padding: 0 12px 10px; }
.step-name { font-weight: 600; }
.dot { display: inline-block; width: 9px; height: 9px; border-radius: 50%; background: var(--c); margin-right: 6px; }
.status, .dur, .median { color: var(--muted); font-size: 12.5px; }
.slower-mark, .retries { color: var(--slower); font-weight: 600; font-size: 12.5px; }
.banner { margin: 10px 0; padding: 8px 12px; border: 1px solid var(--failed); border-left: 6px solid var(--failed); border-radius: 6px; background: color-mix(in srgb, var(--failed) 8%, var(--bg)); }
.banner h2 { margin: 0 0 6px; padding: 0; border: 0; font-size: 16px; color: var(--failed); }
.banner ul { margin: 0; padding-left: 18px; }
.banner li { margin: 4px 0; }
.banner .error { font-weight: 600; white-space: pre-wrap; }
.banner .whence { color: var(--muted); font-size: 12.5px; }
.banner .whence code { word-break: break-all; }
.outputs { display: grid; grid-template-columns: repeat(auto-fill, minmax(420px, 1fr)); gap: 6px 16px; margin: 0; }
.outputs div { border: 1px solid var(--line); border-radius: 6px; padding: 6px 10px; }
.outputs dt { font-size: 12px; color: var(--muted); }
.outputs dd { margin: 0; font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; word-break: break-all; }
.graph-list { display: none; margin: 4px 0; padding-left: 22px; }
.graph-list li { margin: 3px 0; }
.graph-list .needs { color: var(--muted); font-size: 12.5px; }
.reasons, .warnings, .commands { margin: 2px 0; padding-left: 22px; }
.commands code { white-space: pre-wrap; word-break: break-all; }
.warnings li { color: var(--slower); }
.outcome { color: var(--c); font-weight: 600; }
pre.log { background: var(--panel); border: 1px solid var(--line); border-radius: 6px; padding: 8px; overflow-x: auto; white-space: pre-wrap; word-break: break-all; }
.trend { margin: 0 0 12px; }
svg.wall { width: 100%; height: 120px; display: block; border-bottom: 1px solid var(--line); }
.wall .bar.current { stroke: var(--fg); stroke-width: 2; }
.spark-table { border-collapse: collapse; width: 100%; font-size: 13px; }
.spark-table th, .spark-table td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid var(--grid); }
.spark-table th { color: var(--muted); font-weight: 500; font-size: 12px; }
.spark { display: block; }
.spark polyline { fill: none; stroke: var(--run); stroke-width: 1.5; }
.spark circle.now { fill: var(--ran); } .spark circle.last { fill: var(--muted); }
@media (max-width: 640px) {
  body { padding: 10px; }
  .tl-row { grid-template-columns: 1fr auto; gap: 0 8px; }
  .tl-row .tl-track, .tl-row .tl-labels { grid-column: 1 / -1; }
  .tl-axis .tl-name, .tl-axis .tl-time { display: none; }
  .spark-table th:nth-child(4), .spark-table td:nth-child(4) { display: none; }
  .spark { width: 110px; }
  .facts { grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); }
  .outputs { grid-template-columns: 1fr; }
  /* The drawing of a graph is unreadable at a phone's width: the list instead. */
  .graph-box { display: none; }
  .graph-list { display: block; }
}
"#;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::present::summary::StepSummary;

    fn step(name: &str, result: &str, needs: &[&str], t: Option<(f64, f64)>) -> StepSummary {
        StepSummary {
            name: name.into(),
            decision: "run".into(),
            reasons: vec!["never ran".into()],
            result: result.into(),
            reason: "why <not> & \"so\" \x1b[31mred\x1b[0m".into(),
            duration_secs: t.map(|x| x.1 - x.0).unwrap_or(0.0),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            started_secs: t.map(|x| x.0),
            finished_secs: t.map(|x| x.1),
            commands: vec!["az x --query 'a<b && c>d'".into()],
            warnings: vec!["careful: <b>".into()],
            log_tail: vec!["line \u{1}one".into(), "</pre><script>x</script>".into()],
            ..Default::default()
        }
    }

    fn parse(html: &str) -> roxmltree::Document<'_> {
        roxmltree::Document::parse_with_options(
            html,
            roxmltree::ParsingOptions {
                allow_dtd: true,
                ..Default::default()
            },
        )
        .unwrap_or_else(|e| panic!("not well-formed: {e}\n{html}"))
    }

    #[test]
    fn every_status_renders_escaped_and_well_formed() {
        let run = RunSummary {
            command: "deploy".into(),
            run_id: "r-1".into(),
            env: Some("staging".into()),
            started_at: "2026-11-27T10:00:00.25Z".into(),
            steps: vec![
                step("a", "ran", &[], Some((0.0, 1.0))),
                step("b", "interrupted", &["a"], Some((1.0, 2.0))),
                step("c", "blocked", &["b"], Some((2.0, 2.0))),
                step("d", "pending", &[], None),
                step("e", "skipped", &["a"], None),
            ],
            wall_secs: 2.0,
            interrupted: true,
            exit_code: 130,
            ..Default::default()
        };
        let html = render(&run, &[]);
        let dom = parse(&html);
        assert!(!dom.descendants().any(|n| n.has_tag_name("script")));
        assert!(html.contains("2026-11-27 10:00:00 UTC"));
        assert!(html.contains("Environment</dt><dd>staging"));
        assert!(html.contains("az x --query &#39;a&lt;b &amp;&amp; c&gt;d&#39;"));
        let status = |s: &str| {
            dom.descendants()
                .find(|n| n.has_tag_name("details") && n.attribute("data-step") == Some(s))
                .and_then(|n| n.attribute("data-status"))
                .unwrap()
                .to_string()
        };
        assert_eq!(status("b"), "interrupted");
        assert_eq!(status("d"), "pending");
        let body = dom.descendants().find(|n| n.has_tag_name("body")).unwrap();
        assert_eq!(body.attribute("data-result"), Some("interrupted"));
        // the interrupted step is open, its bar coloured as interrupted
        assert!(html.contains("class=\"bar st-interrupted"));
        // a plan of the same steps: no timeline, decisions on the nodes
        let plan = RunSummary::of_plan_for_test(&run);
        let html = render(&plan, std::slice::from_ref(&run));
        let dom = parse(&html);
        assert!(!html.contains("class=\"tl-row"));
        assert_eq!(
            dom.descendants()
                .filter(|n| n
                    .attribute("class")
                    .is_some_and(|c| c.starts_with("node st-run")))
                .count(),
            5
        );
    }
}
