//! The live view of running steps, or (without a terminal) a heartbeat line for each step that
//! has been running for a while.

use crate::run::host::StepContext;
use crate::util::console::{self, Console};
use std::collections::HashMap;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How often a long-running step says it is still running when there is no live view.
fn heartbeat_interval() -> Duration {
    std::env::var("STEPWISE_HEARTBEAT_SECS")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(30))
}

/// Keeps the live view current, or prints a heartbeat for long-running steps.
pub(super) fn run(
    running: &Mutex<HashMap<String, (Instant, Arc<StepContext>)>>,
    console: &Console,
    done: mpsc::Receiver<()>,
) {
    let interval = heartbeat_interval();
    let mut last_beat: HashMap<String, Instant> = HashMap::new();
    while let Err(mpsc::RecvTimeoutError::Timeout) = done.recv_timeout(Duration::from_millis(100)) {
        let now_running: Vec<(String, Instant, Arc<StepContext>)> = running
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, (t, c))| (k.clone(), *t, c.clone()))
            .collect();
        for (name, started, ctx) in now_running {
            let cmd = ctx
                .current_command
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone()
                .unwrap_or_default();
            if console.is_live() {
                console.update_step(&name, &cmd);
                continue;
            }
            let last = *last_beat.entry(name.clone()).or_insert(started);
            if last.elapsed() >= interval {
                last_beat.insert(name.clone(), Instant::now());
                let what = if cmd.is_empty() {
                    String::new()
                } else {
                    format!(": {cmd}")
                };
                console.step_line(
                    &name,
                    &format!(
                        "still running after {}{what}",
                        console::duration(started.elapsed())
                    ),
                );
            }
        }
    }
}
