//! What a deployment was asked to do, free of the command line's types: the `deploy` flags
//! as the application layer takes them (`cli` converts its arguments into these).

/// The deployment flags (see `stepwise --help`); the config's `deployment.*` defaults are
/// merged where they are used.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    pub force_step: Vec<String>,
    pub with_dependents: bool,
    pub force_all: bool,
    pub reset_state: bool,
    pub dry_run: bool,
    pub resume: bool,
    pub auto_approve: bool,
    pub jobs: usize,
    pub keep_going: bool,
    pub only: Vec<String>,
    pub refresh: bool,
    pub no_verify_after_run: bool,
    pub strict: bool,
    /// Resolved with the config (`resolve`): a secret on a command line is refused.
    pub strict_secrets: bool,
    /// Resolved with the config (`resolve`): `verify()` runs right after `run()`.
    pub verify_after_run: bool,
    /// `--allow-over-budget`: deploy although the estimate exceeds `cost.budget_monthly` (or
    /// prices are unknown).
    pub allow_over_budget: bool,
    /// `plan --cost`, or `deployment.show_cost` (resolved): the cost estimate is shown, and
    /// recorded at a successful deployment.
    pub show_cost: bool,
}

impl DeployOptions {
    /// The flags with the config's `deployment.*` defaults merged in, once: a flag turns a
    /// setting on, never off (`--no-verify-after-run` turns `verify_after_run` off). Every
    /// command decides and runs with the resolved options, so they cannot disagree.
    pub fn resolve(mut self, s: &crate::config::DeploymentSettings) -> Self {
        self.dry_run |= s.dry_run;
        self.auto_approve |= s.auto_approve;
        self.resume |= s.resume;
        self.refresh |= s.refresh;
        self.strict_secrets = self.strict || s.strict_secrets;
        self.strict |= s.strict;
        self.verify_after_run = !self.no_verify_after_run && s.verify_after_run;
        self.show_cost |= s.show_cost;
        self
    }
}

/// How a command's output is given: the human console, one JSON document, or Markdown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    #[default]
    Human,
    Json,
    Markdown,
}

/// What loading a project needs from the command line, resolved once by `cli` (the paths as
/// given, the environment flag, and the deployment flags).
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The config file (`--config`).
    pub config: std::path::PathBuf,
    /// The steps folder (`--steps`).
    pub steps: std::path::PathBuf,
    /// `prelude.rhai` beside the steps folder.
    pub prelude: std::path::PathBuf,
    /// `--state`.
    pub state: Option<std::path::PathBuf>,
    /// `--env` (checked and merged with `STEPWISE_ENV` when loading).
    pub env: Option<String>,
    pub verbose: bool,
    pub output: Output,
    /// `--confirm-env`.
    pub confirm_env: Option<String>,
    pub lock_timeout: std::time::Duration,
    pub deploy: DeployOptions,
}

#[cfg(test)]
mod tests {
    use super::DeployOptions;
    use crate::config::DeploymentSettings;

    #[test]
    fn flags_turn_settings_on_and_no_verify_after_run_turns_verification_off() {
        let flags = |f: &dyn Fn(&mut DeployOptions)| {
            let mut d = DeployOptions {
                verify_after_run: true,
                ..Default::default()
            };
            f(&mut d);
            d
        };
        let settings = |f: &dyn Fn(&mut DeploymentSettings)| {
            let mut s = DeploymentSettings::default();
            f(&mut s);
            s
        };
        // (what, flags, settings, resolved: dry_run, resume, refresh, strict, strict_secrets, verify_after_run)
        type Case<'a> = (&'a str, DeployOptions, DeploymentSettings, [bool; 6]);
        let cases: Vec<Case> = vec![
            (
                "defaults",
                flags(&|_| {}),
                settings(&|_| {}),
                [false, false, false, false, false, true],
            ),
            (
                "dry run by config",
                flags(&|_| {}),
                settings(&|s| s.dry_run = true),
                [true, false, false, false, false, true],
            ),
            (
                "resume by flag",
                flags(&|d| d.resume = true),
                settings(&|_| {}),
                [false, true, false, false, false, true],
            ),
            (
                "refresh by config",
                flags(&|_| {}),
                settings(&|s| s.refresh = true),
                [false, false, true, false, false, true],
            ),
            (
                "--strict means both",
                flags(&|d| d.strict = true),
                settings(&|_| {}),
                [false, false, false, true, true, true],
            ),
            (
                "strict_secrets alone",
                flags(&|_| {}),
                settings(&|s| s.strict_secrets = true),
                [false, false, false, false, true, true],
            ),
            (
                "strict reads alone",
                flags(&|_| {}),
                settings(&|s| s.strict = true),
                [false, false, false, true, false, true],
            ),
            (
                "verify off by config",
                flags(&|_| {}),
                settings(&|s| s.verify_after_run = false),
                [false, false, false, false, false, false],
            ),
            (
                "verify off by flag",
                flags(&|d| d.no_verify_after_run = true),
                settings(&|_| {}),
                [false, false, false, false, false, false],
            ),
        ];
        for (what, d, s, want) in cases {
            let r = d.resolve(&s);
            let got = [
                r.dry_run,
                r.resume,
                r.refresh,
                r.strict,
                r.strict_secrets,
                r.verify_after_run,
            ];
            assert_eq!(got, want, "{what}");
        }
    }
}
