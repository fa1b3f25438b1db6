//! Markdown renderings of a run and of a plan (`--output markdown`, notifications): a table
//! (step, result, time, reason) and a one-line summary, ready for `$GITHUB_STEP_SUMMARY`, an
//! Azure Pipelines summary or a pull-request comment. The caller masks secrets.

use crate::decide::plan::{Action, Decision};
use crate::run::executor::{Outcome, RunOutcome};
use crate::util::console;

/// How a run ended: `succeeded`, `failed`, `interrupted` or `lost its lock`.
pub fn result_word(report: &RunOutcome) -> &'static str {
    if report.lock_lost.is_some() {
        "lost its lock"
    } else if report.interrupted.is_some() {
        "interrupted"
    } else if report.failed() {
        "failed"
    } else {
        "succeeded"
    }
}

/// `2 ran, 1 skipped, 1 failed, 0 blocked in 3.4s` (`would run` in a dry run).
pub fn counts_line(report: &RunOutcome, dry_run: bool) -> String {
    let c = report.counts();
    let mut line = format!(
        "{} {}, {} skipped, {} failed, {} blocked",
        c.ran,
        if dry_run { "would run" } else { "ran" },
        c.skipped,
        c.failed,
        c.blocked
    );
    if c.interrupted > 0 {
        line.push_str(&format!(", {} interrupted", c.interrupted));
    }
    if c.pending > 0 {
        line.push_str(&format!(", {} pending", c.pending));
    }
    line.push_str(&format!(" in {}", console::duration(report.wall)));
    line
}

/// The one-line summary of a deployment: `stepwise deploy failed: 1 ran, ... (exit 1)`.
/// `label`: what ran (`deploy`, `rollback to RUN`).
pub fn summary_line(label: &str, report: &RunOutcome, dry_run: bool, exit_code: i32) -> String {
    format!(
        "stepwise {label}{} {}: {} (exit {exit_code})",
        if dry_run { " (dry run)" } else { "" },
        result_word(report),
        counts_line(report, dry_run)
    )
}

fn outcome_cell(o: Outcome, dry_run: bool) -> &'static str {
    match o {
        Outcome::Ran if dry_run => "✅ would run",
        Outcome::Ran => "✅ ran",
        Outcome::Skipped => "⏭️ skipped",
        Outcome::Failed => "❌ failed",
        Outcome::Interrupted => "⛔ interrupted",
        Outcome::Blocked => "🚧 blocked",
        Outcome::NotRun => "⏸️ pending",
    }
}

/// A deployment: heading, table, summary line.
pub fn run(label: &str, report: &RunOutcome, dry_run: bool, exit_code: i32) -> String {
    let mut out = format!(
        "### stepwise {label}{}: {}\n\n",
        if dry_run { " (dry run)" } else { "" },
        result_word(report)
    );
    out.push_str("| step | result | time | reason |\n|---|---|---:|---|\n");
    for r in &report.results {
        let time = if r.outcome == Outcome::Ran || !r.duration.is_zero() {
            console::duration(r.duration)
        } else {
            String::new()
        };
        out.push_str(&format!(
            "| `{}` | {} | {time} | {} |\n",
            r.step,
            outcome_cell(r.outcome, dry_run),
            cell(&r.reason)
        ));
    }
    out.push_str(&format!(
        "\n**{}**\n",
        cell(&summary_line(label, report, dry_run, exit_code))
    ));
    let warnings = report.warnings();
    if !warnings.is_empty() {
        out.push_str(&format!("\n**{} warning(s):**\n\n", warnings.len()));
        for (step, w) in warnings {
            out.push_str(&format!("- `{step}`: {}\n", cell(&w)));
        }
    }
    out
}

/// A plan: heading, table (step, decision, reason), summary line.
pub fn plan(decisions: &[Decision]) -> String {
    let count = |a: Action| decisions.iter().filter(|d| d.action == a).count();
    let to_run = count(Action::Run);
    let mut out = format!(
        "### stepwise plan: {}\n\n",
        if to_run == 0 {
            "nothing to do".to_string()
        } else {
            format!("{to_run} to run")
        }
    );
    out.push_str("| step | decision | reason |\n|---|---|---|\n");
    for d in decisions {
        let decision = match d.action {
            Action::Run => "▶️ run",
            Action::Skip => "⏭️ skip",
            Action::Pending | Action::Maybe => "⏸️ pending",
            Action::Excluded => "➖ not selected",
            Action::Blocked => "🚧 blocked",
        };
        out.push_str(&format!(
            "| `{}` | {decision} | {} |\n",
            d.step,
            cell(&d.reasons.join("; "))
        ));
    }
    out.push_str(&format!(
        "\n**Plan: {} to run, {} up to date, {} pending, {} not selected{}**\n",
        to_run,
        count(Action::Skip),
        count(Action::Pending) + count(Action::Maybe),
        count(Action::Excluded),
        match count(Action::Blocked) {
            0 => String::new(),
            k => format!(", {k} blocked (the deployment would exit 1)"),
        }
    ));
    out
}

/// An error that ended the command before a table could be made.
pub fn error(message: &str, exit_code: i32) -> String {
    format!(
        "### stepwise: error (exit {exit_code})\n\n```\n{}\n```\n",
        message.replace("```", "'''")
    )
}

/// Text made safe for one table cell: no line breaks, no `|`, no HTML.
pub fn cell(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.trim().chars() {
        match ch {
            '|' => out.push_str("\\|"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' => out.push_str("<br>"),
            '\r' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::executor::StepResult;
    use std::time::Duration;

    fn result(step: &str, outcome: Outcome, reason: &str, secs: f64) -> StepResult {
        StepResult {
            step: step.into(),
            outcome,
            reason: reason.into(),
            duration: Duration::from_secs_f64(secs),
        }
    }

    #[test]
    fn a_cell_never_breaks_the_table() {
        assert_eq!(
            cell("a | b\nc <unknown> & d"),
            "a \\| b<br>c &lt;unknown&gt; &amp; d"
        );
    }

    #[test]
    fn run_table_has_a_row_per_step_and_the_summary() {
        let report = RunOutcome {
            results: vec![
                result("group", Outcome::Ran, "never ran", 1.25),
                result("build", Outcome::Failed, "az exited 1: boom | bad", 0.5),
                result("report", Outcome::Skipped, "up to date", 0.0),
            ],
            wall: Duration::from_secs(2),
            interrupted: None,
            lock_lost: None,
            runs: Default::default(),
            public_outputs: Vec::new(),
        };
        let md = run("deploy", &report, false, 1);
        let lines: Vec<&str> = md.lines().collect();
        assert_eq!(lines[0], "### stepwise deploy: failed");
        assert_eq!(lines[2], "| step | result | time | reason |");
        assert_eq!(lines[4], "| `group` | ✅ ran | 1.2s | never ran |");
        assert_eq!(
            lines[5],
            "| `build` | ❌ failed | 0.5s | az exited 1: boom \\| bad |"
        );
        assert_eq!(lines[6], "| `report` | ⏭️ skipped |  | up to date |");
        assert_eq!(
            lines.last().unwrap(),
            &"**stepwise deploy failed: 1 ran, 1 skipped, 1 failed, 0 blocked in 2.0s (exit 1)**"
        );
    }
}
