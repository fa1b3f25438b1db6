//! The report's charts: the timeline (a Gantt of the steps that ran, on one time axis, with
//! the critical path), and the trends over kept runs (wall time bars, per-step sparklines).
//! Plain SVG; colours come from the page's stylesheet through classes.

use super::markup::{esc, status_class};
use crate::present::summary::{RunSummary, StepSummary};
use crate::util::console::duration;
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

/// Width of the timeline's and trends' drawing space (the SVG scales to its box).
const W: f64 = 1000.0;

pub fn secs_text(s: f64) -> String {
    duration(Duration::from_secs_f64(s.max(0.0)))
}

/// Every ancestor of each step (through any chain of `needs`), by name.
pub fn ancestors(run: &RunSummary) -> HashMap<&str, BTreeSet<&str>> {
    let by_name: HashMap<&str, &StepSummary> =
        run.steps.iter().map(|s| (s.name.as_str(), s)).collect();
    let mut out = HashMap::new();
    for s in &run.steps {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<&str> = s.needs.iter().map(String::as_str).collect();
        while let Some(n) = todo.pop() {
            if seen.insert(n) {
                if let Some(x) = by_name.get(n) {
                    todo.extend(x.needs.iter().map(String::as_str));
                }
            }
        }
        out.insert(s.name.as_str(), seen);
    }
    out
}

/// Steps that started in this run (ran, failed or interrupted), with their times.
fn started(run: &RunSummary) -> Vec<(&StepSummary, f64, f64)> {
    run.steps
        .iter()
        .filter(|s| s.result != "blocked")
        .filter_map(|s| Some((s, s.started_secs?, s.finished_secs?)))
        .collect()
}

/// The critical path: from the step that finished last, back through the ancestor that
/// finished last before each one started (what it waited for), first step first.
pub fn critical_path(run: &RunSummary) -> Vec<String> {
    let started = started(run);
    let anc = ancestors(run);
    let Some(mut cur) = started.iter().max_by(|a, b| a.2.total_cmp(&b.2)).copied() else {
        return Vec::new();
    };
    let mut path = vec![cur.0.name.clone()];
    loop {
        let before = started
            .iter()
            .filter(|(s, _, end)| {
                anc.get(cur.0.name.as_str())
                    .is_some_and(|a| a.contains(s.name.as_str()))
                    && *end <= cur.1 + 0.002
            })
            .max_by(|a, b| a.2.total_cmp(&b.2))
            .copied();
        match before {
            Some(b) => {
                path.push(b.0.name.clone());
                cur = b;
            }
            None => break,
        }
    }
    path.reverse();
    path
}

/// Round tick spacing for an axis of `total` seconds (about 6 ticks).
fn tick_step(total: f64) -> f64 {
    let raw = (total / 6.0).max(0.001);
    let mag = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if raw <= m * mag {
            return m * mag;
        }
    }
    10.0 * mag
}

/// The timeline: one row per step that started or was blocked, on a shared time axis.
pub fn timeline(run: &RunSummary, critical: &[String]) -> String {
    let mut rows: Vec<(&StepSummary, f64, f64)> = run
        .steps
        .iter()
        .filter_map(|s| Some((s, s.started_secs?, s.finished_secs?)))
        .collect();
    if rows.is_empty() {
        return "<p class=\"muted\">No step ran in this deployment.</p>\n".into();
    }
    rows.sort_by(|a, b| a.1.total_cmp(&b.1));
    let total = rows
        .iter()
        .map(|r| r.2)
        .fold(run.wall_secs, f64::max)
        .max(0.001);
    let x = |t: f64| t / total * W;
    let mut out = String::new();
    out.push_str("<div class=\"timeline\">\n");
    // The axis: tick lines in an SVG, labels in HTML placed by percentage.
    let step = tick_step(total);
    let mut ticks = Vec::new();
    let mut t = 0.0;
    while t <= total + 1e-9 {
        ticks.push(t);
        t += step;
    }
    out.push_str("<div class=\"tl-row tl-axis\"><span class=\"tl-name\"></span><span class=\"tl-time\"></span><div class=\"tl-track tl-labels\">");
    for (i, t) in ticks.iter().enumerate() {
        let pct = t / total * 100.0;
        let class = if i == 0 {
            "first"
        } else if pct > 92.0 {
            "last"
        } else {
            ""
        };
        out.push_str(&format!(
            "<span class=\"tick {class}\" style=\"left:{pct:.2}%\">{}</span>",
            secs_text(*t)
        ));
    }
    out.push_str("</div></div>\n");
    for (s, start, end) in &rows {
        let crit = critical.contains(&s.name);
        let class = status_class(&s.result);
        let (bx, bw) = if s.result == "blocked" {
            ((x(*start) - 3.0).clamp(0.0, W - 6.0), 6.0)
        } else {
            (x(*start), (x(*end) - x(*start)).max(2.0))
        };
        let label = if s.result == "blocked" {
            format!("blocked at {}", secs_text(*start))
        } else {
            format!(
                "{} {} → {} ({})",
                s.result,
                secs_text(*start),
                secs_text(*end),
                secs_text(end - start)
            )
        };
        out.push_str(&format!(
            "<div class=\"tl-row{crit_c}\" data-step=\"{name}\" data-status=\"{status}\" data-start=\"{start:.3}\" data-end=\"{end:.3}\"><a class=\"tl-name\" href=\"#step-{name}\">{crit_mark}{name}</a><span class=\"tl-time\">{time}</span><svg class=\"tl-track\" viewBox=\"0 0 {W} 20\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"{name}: {label}\">",
            crit_c = if crit { " crit" } else { "" },
            crit_mark = if crit { "<span class=\"crit-mark\" title=\"on the critical path\">◆</span> " } else { "" },
            name = esc(&s.name),
            status = esc(&s.result),
            time = if s.result == "blocked" { "blocked".to_string() } else { secs_text(end - start) },
        ));
        for t in &ticks {
            out.push_str(&format!(
                "<line class=\"grid\" x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"0\" y2=\"20\" vector-effect=\"non-scaling-stroke\"/>",
                x(*t)
            ));
        }
        out.push_str(&format!(
            "<rect class=\"bar {class}{}\" x=\"{bx:.1}\" y=\"3\" width=\"{bw:.1}\" height=\"14\" rx=\"2\" vector-effect=\"non-scaling-stroke\"><title>{}: {}</title></rect></svg></div>\n",
            if crit { " crit" } else { "" },
            esc(&s.name),
            esc(&label)
        ));
    }
    out.push_str("</div>\n");
    out
}

/// The median of `v` (not empty).
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// How many of a step's last runs its median covers.
pub const MEDIAN_OF: usize = 10;

/// A step's durations in the runs of `history` where it ran, oldest first.
pub fn durations<'a>(history: &'a [RunSummary], step: &'a str) -> impl Iterator<Item = f64> + 'a {
    history
        .iter()
        .filter_map(move |r| r.step(step))
        .filter(|s| s.result == "ran")
        .map(|s| s.duration_secs)
}

/// Total wall time of each run (history, then this run when it is a deployment), as bars.
pub fn wall_trend(history: &[RunSummary], run: &RunSummary) -> String {
    let mut runs: Vec<&RunSummary> = history.iter().collect();
    if run.command == "deploy" {
        runs.push(run);
    }
    if runs.is_empty() {
        return "<p class=\"muted\">No kept runs yet.</p>\n".into();
    }
    let h = 120.0;
    let max = runs.iter().map(|r| r.wall_secs).fold(0.001, f64::max);
    let slot = W / runs.len().max(10) as f64;
    let mut out = format!(
        "<figure class=\"trend\"><svg class=\"wall\" viewBox=\"0 0 {W} {}\" preserveAspectRatio=\"none\" role=\"img\" aria-label=\"total wall time of the last {} runs\">",
        h + 2.0,
        runs.len()
    );
    out.push_str(&format!(
        "<line class=\"grid\" x1=\"0\" x2=\"{W}\" y1=\"{0}\" y2=\"{0}\" vector-effect=\"non-scaling-stroke\"/>",
        h + 1.0
    ));
    for (i, r) in runs.iter().enumerate() {
        let bh = (r.wall_secs / max * h).max(1.5);
        let current = std::ptr::eq(*r, run);
        let class = match r.result() {
            "failed" => "st-failed",
            "interrupted" | "lost its lock" => "st-interrupted",
            "nothing to do" => "st-skipped",
            _ => "st-ran",
        };
        out.push_str(&format!(
            "<rect class=\"bar {class}{}\" data-run=\"{}\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{bh:.1}\" vector-effect=\"non-scaling-stroke\"><title>{} {}: {} ({})</title></rect>",
            if current { " current" } else { "" },
            esc(&r.run_id),
            i as f64 * slot + slot * 0.15,
            h + 1.0 - bh,
            slot * 0.7,
            esc(&r.started_at),
            esc(&r.run_id),
            secs_text(r.wall_secs),
            r.result(),
        ));
    }
    out.push_str(&format!(
        "</svg><figcaption>Total wall time of the last {} runs (highest {}), oldest left{}.</figcaption></figure>\n",
        runs.len(),
        secs_text(max),
        if run.command == "deploy" { ", this run outlined" } else { "" }
    ));
    out
}

/// One step's durations over the kept runs as a sparkline (`None` with no run).
pub fn sparkline(points: &[f64], current: Option<f64>) -> Option<String> {
    let mut all: Vec<f64> = points.to_vec();
    if let Some(c) = current {
        all.push(c);
    }
    if all.is_empty() {
        return None;
    }
    let (w, h) = (160.0, 28.0);
    let max = all.iter().copied().fold(0.001, f64::max);
    let n = all.len();
    let px = |i: usize| {
        if n == 1 {
            w / 2.0
        } else {
            3.0 + i as f64 * (w - 6.0) / (n - 1) as f64
        }
    };
    let py = |v: f64| h - 3.0 - v / max * (h - 6.0);
    let pts: Vec<String> = all
        .iter()
        .enumerate()
        .map(|(i, v)| format!("{:.1},{:.1}", px(i), py(*v)))
        .collect();
    let mut out = format!(
        "<svg class=\"spark\" viewBox=\"0 0 {w} {h}\" width=\"{w}\" height=\"{h}\" role=\"img\" aria-label=\"durations of the last {n} runs\"><polyline points=\"{}\"/>",
        pts.join(" ")
    );
    let last = n - 1;
    out.push_str(&format!(
        "<circle class=\"{}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\"/></svg>",
        if current.is_some() { "now" } else { "last" },
        px(last),
        py(all[last])
    ));
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(name: &str, needs: &[&str], result: &str, t: Option<(f64, f64)>) -> StepSummary {
        StepSummary {
            name: name.into(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
            result: result.into(),
            started_secs: t.map(|x| x.0),
            finished_secs: t.map(|x| x.1),
            duration_secs: t.map(|x| x.1 - x.0).unwrap_or(0.0),
            ..Default::default()
        }
    }

    #[test]
    fn the_critical_path_follows_what_each_step_waited_for() {
        let run = RunSummary {
            command: "deploy".into(),
            steps: vec![
                step("a", &[], "skipped", None),
                step("b", &["a"], "ran", Some((0.0, 1.0))),
                step("c", &["a"], "ran", Some((0.0, 3.0))),
                // needs b directly and c through the skipped x
                step("x", &["c"], "skipped", None),
                step("d", &["b", "x"], "ran", Some((3.0, 4.0))),
                step("e", &["b"], "failed", Some((1.0, 2.0))),
                step("f", &["e"], "blocked", Some((2.0, 2.0))),
            ],
            wall_secs: 4.0,
            ..Default::default()
        };
        assert_eq!(critical_path(&run), ["c", "d"]);
        let html = timeline(&run, &critical_path(&run));
        assert_eq!(html.matches("class=\"tl-row").count(), 6, "axis + 5 rows");
        assert!(html.contains("data-step=\"f\" data-status=\"blocked\""));
        assert!(!html.contains("data-step=\"a\""));
    }

    #[test]
    fn medians_and_ticks() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(tick_step(60.0), 10.0);
        assert_eq!(tick_step(1.0), 0.2);
        assert!(sparkline(&[], None).is_none());
        assert!(sparkline(&[1.0, 2.0], Some(3.0))
            .unwrap()
            .contains("class=\"now\""));
    }
}
