//! `--refresh`: before deciding, run the read-only `fn verify()` of every step the decision
//! would skip, concurrently (`--jobs`), to notice what changed in Azure behind stepwise's back
//! (drift). A step that reports drift runs with the reason `drift: …`; a check that fails (an
//! error rather than an answer) stops the run before anything runs. The same `verify()` runs
//! right after a step's `run()` as a post-condition (see the executor).

use crate::decide::plan::{Action, Decision};
use crate::run::executor::{call_verify, Runner};
use crate::run::host;
use crate::state::State;
use crate::util::console;
use std::sync::{Arc, Mutex};

/// What the refresh of one step found.
#[derive(Debug, Clone)]
pub enum Checked {
    /// `verify()` found everything as the step left it.
    Fine,
    /// What drifted, one line each.
    Drift(Vec<String>),
    /// The check itself failed (not an answer about drift).
    Failed(String),
}

/// Runs the `verify()` of every step whose decision is `skip`, `--jobs` at a time, with
/// one read cache for the whole refresh. Steps without `verify()` are not checked
/// (`None`).
pub fn refresh(runner: &Runner, decisions: &[Decision], state: &State) -> Vec<Option<Checked>> {
    let n = runner.steps.steps.len();
    let todo: Vec<usize> = (0..n)
        .filter(|&i| decisions[i].action == Action::Skip && runner.steps.steps[i].has_verify)
        .collect();
    let results: Mutex<Vec<Option<Checked>>> = Mutex::new(vec![None; n]);
    if todo.is_empty() {
        return results.into_inner().unwrap_or_default();
    }
    runner.console.line(&format!(
        "Refreshing: checking {} step(s) against Azure ({} without verify() not checked)",
        todo.len(),
        (0..n)
            .filter(|&i| decisions[i].action == Action::Skip && !runner.steps.steps[i].has_verify)
            .count()
    ));
    let cache: Arc<host::ReadCache> = Default::default();
    let state = Arc::new(Mutex::new(state.clone()));
    let salt = state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .salt()
        .unwrap_or("")
        .to_string();
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..runner.jobs.max(1).min(todo.len()) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(&i) = todo.get(k) else { break };
                let mut ctx = runner.context(i, false, state.clone(), &salt, None, false);
                if let Some(c) = Arc::get_mut(&mut ctx) {
                    c.read_cache = Some(cache.clone());
                    c.verifying = true.into();
                }
                let checked = match call_verify(
                    runner.engine,
                    &runner.steps.steps[i],
                    &runner.masker,
                    &ctx,
                ) {
                    Ok(d) if d.is_empty() => Checked::Fine,
                    Ok(d) => Checked::Drift(d),
                    Err(e) => Checked::Failed(e),
                };
                let name = &runner.steps.steps[i].name;
                match &checked {
                    Checked::Fine => runner.console.line(&format!(
                        "  {} {name}: as deployed",
                        runner.console.paint(console::DIM, "✓")
                    )),
                    Checked::Drift(d) => runner.console.line(&format!(
                        "  {} {name}: drift: {}",
                        runner.console.paint(console::YELLOW, "!"),
                        d.join("; ")
                    )),
                    Checked::Failed(e) => runner.console.line(&format!(
                        "  {} {name}: check failed: {e}",
                        runner.console.paint(console::RED, "✗")
                    )),
                }
                results.lock().unwrap_or_else(|e| e.into_inner())[i] = Some(checked);
            });
        }
    });
    results.into_inner().unwrap_or_else(|e| e.into_inner())
}

/// Applies a refresh to the decisions: a drifted step runs (`drift: …`); every refreshed step
/// is marked. A failed check is an error naming the step and why (nothing runs).
pub fn apply(decisions: &mut [Decision], checked: &[Option<Checked>]) -> Result<(), String> {
    let failed: Vec<String> = decisions
        .iter()
        .zip(checked)
        .filter_map(|(d, c)| match c {
            Some(Checked::Failed(e)) => Some(format!("  {}: {e}", d.step)),
            _ => None,
        })
        .collect();
    if !failed.is_empty() {
        return Err(format!(
            "--refresh: {} check(s) failed, so drift cannot be told; nothing was run:\n{}",
            failed.len(),
            failed.join("\n")
        ));
    }
    for (d, c) in decisions.iter_mut().zip(checked) {
        match c {
            Some(Checked::Fine) => d.refreshed = true,
            Some(Checked::Drift(items)) => {
                d.refreshed = true;
                d.drift = items.clone();
                d.action = Action::Run;
                // A repair redoes the step's work as a forced run does (images rebuilt,
                // "unchanged since the last run" shortcuts off).
                d.forced = true;
                d.reasons = items.iter().map(|i| format!("drift: {i}")).collect();
            }
            _ => {}
        }
    }
    Ok(())
}
