//! What a notification tells about a finished run (`Notice`), made from its run summary:
//! project, environment, run, commit, CI run, counts, warnings, public outputs, and each
//! failed step with its error text first and its command after (`Failed`).

use crate::config::NotifyEvent;
use crate::decide::step::PublicOutput;
use crate::present::summary::{RunSummary, RunWarning};
use crate::run::executor::Counts;
use crate::sys::origin::{CiRun, Git};
use crate::util::failure::Parts;
use serde_json::Value;

/// What is told about a finished deployment.
pub struct Notice {
    pub event: NotifyEvent,
    /// The project's name (its folder).
    pub project: String,
    /// The environment deployed (`default` without environments).
    pub environment: String,
    pub run_id: String,
    pub git: Option<Git>,
    pub ci: Option<CiRun>,
    pub exit_code: i32,
    /// `stepwise deploy failed: 1 ran, ... (exit 1)`.
    pub summary: String,
    /// The Markdown table and summary (as `--output markdown`).
    pub markdown: String,
    pub counts: Counts,
    pub warnings: Vec<RunWarning>,
    /// Each failed, interrupted (or, without those, blocked) step: its error first.
    pub failures: Vec<Failed>,
    /// The outputs the steps mark public.
    pub outputs: Vec<PublicOutput>,
    /// Per step: name, result, reason, seconds (for the chat formats).
    pub steps: Vec<(String, String, String, f64)>,
    /// The run summary (as `--output json`).
    pub report: Value,
}

/// A step that did not succeed, as notifications tell it: the error text, then the command.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Failed {
    pub step: String,
    /// failed, interrupted or blocked.
    pub result: String,
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Notice {
    /// The notice of a run: `summary` and `markdown` are its one-line summary and Markdown.
    pub fn of(event: NotifyEvent, run: &RunSummary, summary: String, markdown: String) -> Notice {
        Notice {
            event,
            project: run.project.clone(),
            environment: run.env.clone().unwrap_or_else(|| "default".into()),
            run_id: run.run_id.clone(),
            git: run.git.clone(),
            ci: run.ci.clone(),
            exit_code: run.exit_code,
            summary,
            markdown,
            counts: run.counts(),
            warnings: run.warnings.clone(),
            failures: failures(run),
            outputs: run.outputs.clone(),
            steps: run
                .steps
                .iter()
                .map(|s| {
                    (
                        s.name.clone(),
                        s.result.clone(),
                        s.reason.clone(),
                        (s.duration_secs * 10.0).round() / 10.0,
                    )
                })
                .collect(),
            report: serde_json::to_value(run).unwrap_or_default(),
        }
    }
}

/// The failed and interrupted steps of a run (the blocked ones when there are none), each
/// reason taken apart (`util::failure::Parts`).
fn failures(run: &RunSummary) -> Vec<Failed> {
    let of = |pick: &dyn Fn(&str) -> bool| -> Vec<Failed> {
        run.steps
            .iter()
            .filter(|s| pick(&s.result))
            .map(|s| {
                let parts = Parts::of(&s.reason);
                Failed {
                    step: s.name.clone(),
                    result: s.result.clone(),
                    error: parts.error,
                    command: parts.command,
                    location: parts.location,
                    retries: s.retries,
                }
            })
            .collect()
    };
    let failed = of(&|r| matches!(r, "failed" | "interrupted"));
    if failed.is_empty() {
        of(&|r| r == "blocked")
    } else {
        failed
    }
}
