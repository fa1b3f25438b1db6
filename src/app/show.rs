//! What the commands show on the console about a plan and a run: the plan lines, the steps
//! whose script is gone, the steps `--refresh` could not check, the run summary table.

use crate::app::project::Project;
use crate::decide::plan::{Action, Decision};
use crate::run::executor::{Outcome, RunOutcome};
use crate::state::State;
use crate::util::console::{self, Console};

/// Records of steps whose files were removed: one line each, saying how to forget them.
pub(crate) fn print_gone(console: &Console, p: &Project, state: &State) {
    for (name, file) in crate::decide::plan::gone(&p.steps, state) {
        let what = match file {
            Some(f) => format!("{f} removed"),
            None => "no step file defines it any more".to_string(),
        };
        console.line(&format!(
            "  {} step {name} ({what}); state reset {name} forgets it",
            console.paint(crate::util::console::DIM, "gone:")
        ));
    }
}

pub(crate) fn print_not_checked(p: &Project, decisions: &[Decision]) {
    let not: Vec<&str> = decisions
        .iter()
        .zip(&p.steps.steps)
        .filter(|(d, s)| d.action == Action::Skip && !s.has_verify)
        .map(|(d, _)| d.step.as_str())
        .collect();
    if !not.is_empty() {
        p.console.line(&format!(
            "Not checked by --refresh (no verify()): {}",
            not.join(", ")
        ));
    }
}

pub(crate) fn print_plan(console: &Console, decisions: &[Decision]) {
    let width = decisions.iter().map(|d| d.step.len()).max().unwrap_or(0);
    if let Some(env) = console.env() {
        console.line(&format!(
            "Environment {}:",
            console.paint(console::BOLD, env)
        ));
    }
    for d in decisions {
        let mark = match d.action {
            Action::Run => console.paint(console::GREEN, "run    "),
            Action::Skip => console.paint(console::DIM, "skip   "),
            Action::Pending => console.paint(console::YELLOW, "pending"),
            Action::Excluded => console.paint(console::DIM, "exclude"),
            Action::Maybe => console.paint(console::YELLOW, "maybe  "),
            Action::Blocked => console.paint(console::YELLOW, "blocked"),
        };
        console.line(&format!(
            "  {mark} {:width$}  {}",
            d.step,
            d.reasons.join("; ")
        ));
        for image in &d.images {
            console.line(&format!("  {:7} {:width$}  {}", "", "", image.line()));
        }
    }
    let count = |a| decisions.iter().filter(|d| d.action == a).count();
    console.line(&format!(
        "Plan: {} to run, {} up to date{}{}{}",
        count(Action::Run),
        count(Action::Skip),
        match count(Action::Pending) + count(Action::Maybe) {
            0 => String::new(),
            k => format!(", {k} pending"),
        },
        match count(Action::Excluded) {
            0 => String::new(),
            k => format!(", {k} not selected"),
        },
        match count(Action::Blocked) {
            0 => String::new(),
            k => format!(", {k} blocked (the deployment would exit 1)"),
        },
    ));
    for w in decisions.iter().flat_map(|d| &d.warnings) {
        console.warn(w);
    }
}

pub(crate) fn print_summary(console: &Console, report: &RunOutcome, dry_run: bool) {
    let width = report
        .results
        .iter()
        .map(|r| r.step.len())
        .max()
        .unwrap_or(0)
        .max(4);
    console.line("");
    console.line(&format!(
        "  {:width$}  {:13}  {:>8}  REASON",
        "STEP", "RESULT", "TIME"
    ));
    for r in &report.results {
        let result = match r.outcome {
            Outcome::Ran if dry_run => {
                console.paint(console::GREEN, &format!("{:13}", "✓ dry run"))
            }
            Outcome::Ran => console.paint(console::GREEN, &format!("{:13}", "✓ ran")),
            Outcome::Skipped => console.paint(console::DIM, &format!("{:13}", "· skipped")),
            Outcome::Failed => console.paint(console::RED, &format!("{:13}", "✗ failed")),
            Outcome::Interrupted => console.paint(console::RED, &format!("{:13}", "✗ interrupted")),
            Outcome::Blocked => console.paint(console::YELLOW, &format!("{:13}", "- blocked")),
            Outcome::NotRun => console.paint(console::YELLOW, &format!("{:13}", "- pending")),
        };
        let time = if r.outcome == Outcome::Ran || r.duration > std::time::Duration::ZERO {
            console::duration(r.duration)
        } else {
            String::new()
        };
        console.line(&format!(
            "  {:width$}  {result}  {time:>8}  {}",
            r.step, r.reason
        ));
    }
    let c = report.counts();
    console.line(&format!(
        "{}{} {}, {} skipped, {} failed, {} blocked{} in {}",
        match console.env() {
            Some(env) => format!("environment {env}: "),
            None => String::new(),
        },
        c.ran,
        if dry_run { "would run" } else { "ran" },
        c.skipped,
        c.failed,
        c.blocked,
        match c.interrupted {
            0 => String::new(),
            k => format!(", {k} interrupted"),
        },
        console::duration(report.wall)
    ));
    print_warnings(console, report);
    // Last, what people came for: the outputs steps mark public (the gateway URL).
    if !dry_run && !report.public_outputs.is_empty() {
        console.line("Outputs:");
        for o in &report.public_outputs {
            console.line(&format!("  {}.{} = {}", o.step, o.key, o.value));
        }
    }
}

/// The run's warnings under its summary, each with its step: said once while the step ran,
/// said again where people look last.
fn print_warnings(console: &Console, report: &RunOutcome) {
    let warnings = report.warnings();
    if warnings.is_empty() {
        return;
    }
    console.line(&console.paint(
        console::YELLOW,
        &format!(
            "{} warning{}:",
            warnings.len(),
            if warnings.len() == 1 { "" } else { "s" }
        ),
    ));
    for (step, w) in warnings {
        console.line(&format!("  {step}: {w}"));
    }
}
