//! What the console shows of a run's steps: decisions made while scheduling, a step starting,
//! and how it ended (a failed step with the end of its log).

use crate::util::console::{self, Console};
use std::path::Path;

/// A step's line for a decision made while scheduling (`· name skipped: why`).
pub(super) fn say(console: &Console, colour: &str, mark: &str, step: &str, what: &str, why: &str) {
    console.line(&format!(
        "{} {step} {what}: {why}",
        console.paint(colour, mark)
    ));
}

/// `- name blocked: why`.
pub(super) fn blocked(console: &Console, step: &str, why: &str) {
    console.line(&format!(
        "{} {} blocked: {why}",
        console.paint(console::YELLOW, "-"),
        step
    ));
}

/// A step that failed before it started.
pub(super) fn failed(console: &Console, step: &str, why: &str) {
    console.line(&format!(
        "{} {} failed: {why}",
        console.paint(console::RED, "✗"),
        step
    ));
}

/// `▶ name (reason)`.
pub(super) fn started(console: &Console, step: &str, reason: &str) {
    console.line(&format!(
        "{} {} {}",
        console.paint(console::BOLD, "▶"),
        step,
        console.paint(console::DIM, &format!("({reason})"))
    ));
}

/// `✓ name ran (reason) 1.2s` (`would run` in a dry run).
pub(super) fn ran(console: &Console, step: &str, reason: &str, dur: &str, dry_run: bool) {
    console.line(&format!(
        "{} {} {} ({reason}) {}",
        console.paint(console::GREEN, "✓"),
        step,
        if dry_run { "would run" } else { "ran" },
        console.paint(console::DIM, dur)
    ));
}

/// `✗ name interrupted after 1.2s`.
pub(super) fn interrupted(console: &Console, step: &str, dur: &str) {
    console.line(&format!(
        "{} {} interrupted after {dur}",
        console.paint(console::RED, "✗"),
        step
    ));
}

/// `✗ name failed after 1.2s`, the error, and the last lines of the step's log (if it has
/// one).
pub(super) fn failed_after(
    console: &Console,
    step: &str,
    dur: &str,
    msg: &str,
    log: Option<&Path>,
) {
    console.line(&format!(
        "{} {} failed after {dur}",
        console.paint(console::RED, "✗"),
        step
    ));
    console.error(msg);
    if let Some(log) = log {
        // Only the end of the log is read: it can be as long as a command's output.
        let text = read_tail(log, 64 * 1024);
        let lines: Vec<&str> = text.lines().collect();
        let tail = &lines[lines.len().saturating_sub(20)..];
        console.error_line(&format!(
            "  last {} lines of {}:",
            tail.len(),
            log.display()
        ));
        for l in tail {
            console.error_line(&format!("  | {l}"));
        }
    }
}

/// The last `max` bytes of a file (from the start of a line), as text.
fn read_tail(path: &Path, max: u64) -> String {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = std::fs::File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    let from = len.saturating_sub(max);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    if from > 0 {
        if let Some(nl) = buf.iter().position(|&b| b == b'\n') {
            buf.drain(..=nl);
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
