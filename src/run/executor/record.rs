//! A step's record in the state when it ended: its status, times, error, and when it
//! completed the digests it ran with, its outputs and its reads; images it built whatever the
//! outcome.

use super::outcome::Outcome;
use crate::decide::plan::Decision;
use crate::decide::step::Step;
use crate::run::host::StepContext;
use crate::state::{Status, StepRecord};
use std::time::Duration;

/// How a step ended, as its record tells it.
pub(super) struct Ended {
    pub outcome: Outcome,
    /// The error of a step that did not run to its end (masked).
    pub error: Option<String>,
    /// When it started (RFC 3339) and how long it took.
    pub started_at: String,
    pub elapsed: Duration,
}

/// The record of `step`, which ended as `ended` at `now`, over its `previous` record.
pub(super) fn step_record(
    previous: Option<StepRecord>,
    step: &Step,
    decision: &Decision,
    ctx: &StepContext,
    ended: &Ended,
    now: &str,
    rolled_back_to: Option<&str>,
) -> StepRecord {
    let mut rec = previous.unwrap_or(StepRecord {
        status: Status::Failed,
        timestamp: String::new(),
        dependency_hash: None,
        error: None,
        started_at: None,
        finished_at: None,
        duration_secs: None,
        dependencies: Default::default(),
        outputs: Default::default(),
        reads: None,
        rolled_back_to: None,
        extra: Default::default(),
    });
    rec.timestamp = now.to_string();
    rec.started_at = Some(ended.started_at.clone());
    rec.finished_at = Some(now.to_string());
    rec.duration_secs = Some((ended.elapsed.as_secs_f64() * 1000.0).round() / 1000.0);
    match ended.outcome {
        Outcome::Ran if rolled_back_to.is_some() => {
            // Its dependencies stay those it last ran with: the next deployment rolls forward.
            rec.status = Status::RolledBack;
            rec.error = None;
            rec.rolled_back_to = rolled_back_to.map(str::to_string);
            rec.outputs = ctx
                .outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
        }
        Outcome::Ran => {
            rec.status = Status::Completed;
            rec.error = None;
            rec.rolled_back_to = None;
            rec.dependency_hash = Some(decision.fingerprint.combined.clone());
            rec.dependencies = decision.fingerprint.dependencies.clone();
            // so that `plan` can say which file was removed when the step is gone
            rec.extra
                .insert("file".into(), serde_json::Value::String(step.file.clone()));
            rec.outputs = ctx
                .outputs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            rec.reads = Some(ctx.reads.lock().unwrap_or_else(|e| e.into_inner()).clone());
        }
        Outcome::Interrupted => {
            rec.status = Status::Interrupted;
            rec.error = ended.error.clone();
        }
        _ => {
            rec.status = Status::Failed;
            rec.error = ended.error.clone();
        }
    }
    // Images built successfully are recorded whatever the outcome, so that a retry
    // rebuilds only what is missing.
    for (key, built) in [
        ("images", &ctx.images),
        (crate::decide::images::SOURCES_KEY, &ctx.image_sources),
    ] {
        let built = built.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !built.is_empty() {
            let mut images = rec
                .extra
                .get(key)
                .and_then(|v| v.as_object())
                .cloned()
                .unwrap_or_default();
            images.extend(built);
            rec.extra
                .insert(key.into(), serde_json::Value::Object(images));
        }
    }
    rec
}
