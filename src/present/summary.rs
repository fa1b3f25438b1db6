//! The document of one deployment: what `--output json` prints, what the reports folder keeps
//! beside each HTML report (for medians and trends), and what the HTML report is drawn from.
//! One definition, written and read with serde, so there is no second source of truth.

use crate::decide::plan::Decision;
use crate::decide::step::PublicOutput;
use crate::decide::step::StepSet;
use crate::run::executor::{Counts, RunOutcome};
use crate::sys::origin::{CiRun, Git};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// One deployment (`command: "deploy"`) or one plan (`command: "plan"`, nothing ran).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSummary {
    pub command: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub run_id: String,
    /// The environment (`null`: the default environment).
    #[serde(default)]
    pub env: Option<String>,
    /// Where the state lives.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    /// RFC 3339 (UTC).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub started_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finished_at: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host: String,
    /// The stepwise version that ran it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(default)]
    pub dry_run: bool,
    pub steps: Vec<StepSummary>,
    #[serde(default)]
    pub wall_secs: f64,
    #[serde(default)]
    pub interrupted: bool,
    /// Why the run lost its state lock, if it did (it stopped like an interrupted run).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock_lost: Option<String>,
    #[serde(default)]
    pub exit_code: i32,
    /// A rollback's target run (`command: "rollback"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_target: Option<String>,
    /// Every warning of the run, in the steps' order (each step's are also in its entry).
    #[serde(default)]
    pub warnings: Vec<RunWarning>,
    /// The monthly cost estimate of the deployment (with `deployment.show_cost` or a budget).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<CostLine>,
    /// The project's name: the name of the folder holding its config.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub project: String,
    /// The config file read (`config.yaml`, or `config.yaml + config.dev.yaml` with an
    /// environment's overlay).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub config: String,
    /// The project's git commit and branch, when it is in a repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git: Option<Git>,
    /// The CI run it was part of (GitHub Actions, Azure Pipelines).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ci: Option<CiRun>,
    /// The outputs the steps mark public (`public_outputs:` in a step's declaration), as deployed at
    /// the end of the run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<PublicOutput>,
}

/// A warning a step gave.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunWarning {
    pub step: String,
    pub message: String,
}

/// A deployment's monthly cost estimate and its change since the last one recorded.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CostLine {
    pub currency: String,
    pub monthly_total: f64,
    pub delta_monthly: Option<f64>,
}

impl CostLine {
    /// `412.50 USD/month (+130.00 since the last deployment)`.
    pub fn describe(&self) -> String {
        let delta = match self.delta_monthly {
            Some(d) => format!(" ({d:+.2} since the last deployment)"),
            None => String::new(),
        };
        format!("{:.2} {}/month{delta}", self.monthly_total, self.currency)
    }
}

/// One step of a run, in file order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StepSummary {
    pub name: String,
    /// The plan's decision: run, skip, pending, excluded.
    pub decision: String,
    pub reasons: Vec<String>,
    /// How it ended: ran, skipped, failed, blocked, interrupted, pending (empty in a plan).
    #[serde(default)]
    pub result: String,
    /// Why it ended so (the first line of an error for a failed step).
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub duration_secs: f64,
    /// A pending step: the steps whose outputs decide it.
    #[serde(default)]
    pub waits_on: Vec<String>,
    /// `--refresh` ran its `verify()`.
    #[serde(default)]
    pub refreshed: bool,
    /// What `verify()` reported as drifted.
    #[serde(default)]
    pub drift: Vec<String>,
    /// The steps it needs (the graph's edges).
    #[serde(default)]
    pub needs: Vec<String>,
    /// When it started and ended, in seconds from the start of the run (a blocked step: when
    /// it was blocked). Absent for a step that did not start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_secs: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_secs: Option<f64>,
    /// The commands it ran, masked as on the console.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commands: Vec<String>,
    /// The warnings it gave, masked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The last lines of its log when it failed or was interrupted (masked, as in the log).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
    /// How many times its commands were tried again (its duration includes the retries).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Who ran it and where, and when it started: what a deployment's summary says besides its
/// steps.
#[derive(Debug, Clone, Default)]
pub struct RunMeta {
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub env: Option<String>,
    /// The state location.
    pub state: String,
    /// A rollback's target run (`None`: a deployment).
    pub rollback_target: Option<String>,
    /// The project's name, its config file, git commit and CI run (see [`RunSummary`]).
    pub project: String,
    pub config: String,
    pub git: Option<Git>,
    pub ci: Option<CiRun>,
}

/// Seconds, rounded to milliseconds.
pub fn secs(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

impl RunSummary {
    /// What the run was, for headings: `deploy`, `plan` or `rollback to RUN`.
    pub fn label(&self) -> String {
        match &self.rollback_target {
            Some(t) => format!("rollback to {t}"),
            None => self.command.clone(),
        }
    }

    /// The summary of a deployment that ran (or in which nothing had to run).
    pub fn of_run(
        steps: &StepSet,
        decisions: &[Decision],
        report: &RunOutcome,
        meta: &RunMeta,
        dry_run: bool,
        exit_code: i32,
    ) -> RunSummary {
        let holder = crate::sys::run_lock::Holder::current();
        let steps = decisions
            .iter()
            .zip(&report.results)
            .map(|(d, r)| {
                let run = report.runs.get(&d.step);
                StepSummary {
                    name: d.step.clone(),
                    decision: d.action.as_str().to_string(),
                    reasons: d.reasons.clone(),
                    result: r.outcome.as_str().to_string(),
                    reason: r.reason.clone(),
                    duration_secs: secs(r.duration),
                    waits_on: d.waits_on.clone(),
                    refreshed: d.refreshed,
                    drift: d.drift.clone(),
                    needs: needs_of(steps, &d.step),
                    started_secs: run.map(|x| secs(x.start)),
                    finished_secs: run.map(|x| secs(x.end)),
                    commands: run.map(|x| x.commands.clone()).unwrap_or_default(),
                    // The decision's own (a cyclic read), then what the run warned.
                    warnings: d
                        .warnings
                        .iter()
                        .cloned()
                        .chain(run.map(|x| x.warnings.clone()).unwrap_or_default())
                        .collect(),
                    log_tail: Vec::new(),
                    retries: run.map(|x| x.retries).unwrap_or(0),
                }
            })
            .collect();
        RunSummary {
            command: if meta.rollback_target.is_some() {
                "rollback".into()
            } else {
                "deploy".into()
            },
            rollback_target: meta.rollback_target.clone(),
            warnings: report
                .warnings()
                .into_iter()
                .map(|(step, message)| RunWarning { step, message })
                .collect(),
            cost: None,
            project: meta.project.clone(),
            config: meta.config.clone(),
            git: meta.git.clone(),
            ci: meta.ci.clone(),
            outputs: report.public_outputs.clone(),
            run_id: meta.run_id.clone(),
            env: meta.env.clone(),
            state: meta.state.clone(),
            started_at: meta.started_at.clone(),
            finished_at: meta.finished_at.clone(),
            user: holder.user,
            host: holder.host,
            version: env!("CARGO_PKG_VERSION").to_string(),
            dry_run,
            steps,
            wall_secs: secs(report.wall),
            interrupted: report.interrupted.is_some(),
            lock_lost: report.lock_lost.clone(),
            exit_code,
        }
    }

    /// The summary of a plan: every step's decision and reasons; nothing ran.
    pub fn of_plan(
        steps: &StepSet,
        decisions: &[Decision],
        env: Option<String>,
        state: &str,
    ) -> RunSummary {
        let holder = crate::sys::run_lock::Holder::current();
        RunSummary {
            command: "plan".into(),
            git: crate::sys::origin::git(),
            ci: crate::sys::origin::ci_run(),
            env,
            state: state.to_string(),
            started_at: crate::util::clock::now(),
            user: holder.user,
            host: holder.host,
            version: env!("CARGO_PKG_VERSION").to_string(),
            steps: decisions
                .iter()
                .map(|d| StepSummary {
                    name: d.step.clone(),
                    decision: d.action.as_str().to_string(),
                    reasons: d.reasons.clone(),
                    waits_on: d.waits_on.clone(),
                    refreshed: d.refreshed,
                    drift: d.drift.clone(),
                    needs: needs_of(steps, &d.step),
                    warnings: d.warnings.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// A plan of the steps of `run` (every step would run), for tests.
    #[cfg(test)]
    pub fn of_plan_for_test(run: &RunSummary) -> RunSummary {
        RunSummary {
            command: "plan".into(),
            steps: run
                .steps
                .iter()
                .map(|s| StepSummary {
                    name: s.name.clone(),
                    decision: "run".into(),
                    reasons: s.reasons.clone(),
                    needs: s.needs.clone(),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }
    }

    /// The step called `name`.
    pub fn step(&self, name: &str) -> Option<&StepSummary> {
        self.steps.iter().find(|s| s.name == name)
    }

    /// `(ran, skipped, failed, blocked, interrupted, pending)`.
    pub fn counts(&self) -> Counts {
        let n = |r: &str| self.steps.iter().filter(|s| s.result == r).count();
        Counts {
            ran: n("ran"),
            skipped: n("skipped"),
            failed: n("failed"),
            blocked: n("blocked"),
            interrupted: n("interrupted"),
            pending: n("pending"),
        }
    }

    /// How the run ended, in a word or three: succeeded, failed, interrupted, lost its lock,
    /// nothing to do; a plan says `plan`.
    pub fn result(&self) -> &'static str {
        if self.command == "plan" {
            return "plan";
        }
        let c = self.counts();
        if self.lock_lost.is_some() {
            "lost its lock"
        } else if self.interrupted || c.interrupted > 0 {
            "interrupted"
        } else if c.failed > 0 || c.blocked > 0 || self.exit_code != 0 {
            "failed"
        } else if c.ran == 0 {
            "nothing to do"
        } else {
            "succeeded"
        }
    }
}

fn needs_of(steps: &StepSet, name: &str) -> Vec<String> {
    steps
        .index(name)
        .map(|i| steps.steps[i].needs.clone())
        .unwrap_or_default()
}
