//! stepwise's own settings in the config (`deployment.*`, `advanced.*`, `state.*`,
//! `docker.*`, `notify`): their types, defaults and JSON Schema.

use crate::util::error::Kind;
use anyhow::Result;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// The keys of the config that stepwise itself reads (`deployment.*`, `advanced.*`, `state.*`,
/// `docker.*`, `notify`), type-checked when the config is loaded. Every other key belongs to
/// the steps (`read_config`). `stepwise schema` prints the JSON Schema of these types.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default)]
#[schemars(
    title = "stepwise config",
    description = "The settings stepwise reads itself. Any other key is free for the steps (read_config)."
)]
pub struct Settings {
    pub deployment: DeploymentSettings,
    pub advanced: AdvancedSettings,
    pub state: StateSettings,
    pub docker: DockerSettings,
    /// Cost estimates: where prices come from, their currency, a monthly budget.
    pub cost: CostSettings,
    /// Webhooks told when a deployment finishes (Slack, Microsoft Teams or a generic JSON
    /// POST).
    pub notify: Vec<NotifySettings>,
}

/// Defaults for command-line flags.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DeploymentSettings {
    /// As --dry-run: print what would run; run nothing, write no state.
    pub dry_run: bool,
    /// As --auto-approve: do not ask before running.
    pub auto_approve: bool,
    /// As --verbose: show each command and debug logs.
    pub verbose: bool,
    /// As --resume: only failed, interrupted and never-run steps.
    pub resume: bool,
    /// As --strict: an undeclared read (config key, env var, outputs) fails the step.
    pub strict: bool,
    /// `--refresh` on every deploy and plan.
    pub refresh: bool,
    /// Run a step's `verify()` right after its `run()` (default true).
    pub verify_after_run: bool,
    /// A protected environment: `--reset-state`, `--force-all`, `state reset`, `state rollback`
    /// and `state push|pull --force` need its name typed (or `--confirm-env NAME`).
    pub protected: bool,
    /// A command that carries a secret on its command line is refused before it starts
    /// (`--strict`), instead of warned about.
    pub strict_secrets: bool,
    /// Config keys whose values are secret besides those found by name (dotted keys, `*` for
    /// one segment; a key covers its subtree).
    pub secret_keys: Vec<String>,
    /// Config keys that are not secret although their name looks so (same syntax).
    pub not_secret_keys: Vec<String>,
    /// Show the monthly cost estimate (and its change) in every plan, and record it at each
    /// successful deployment (as `plan --cost`).
    pub show_cost: bool,
}

impl Default for DeploymentSettings {
    fn default() -> Self {
        DeploymentSettings {
            dry_run: false,
            auto_approve: false,
            verbose: false,
            resume: false,
            strict: false,
            refresh: false,
            verify_after_run: true,
            protected: false,
            strict_secrets: false,
            secret_keys: Vec::new(),
            not_secret_keys: Vec::new(),
            show_cost: false,
        }
    }
}

/// Retries, timeouts and the original tool's blob state settings.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(default)]
pub struct AdvancedSettings {
    /// How many times a failing `az` call (exit code 1) is tried in all.
    pub retry_attempts: u32,
    /// Seconds before the first retry (doubled each time).
    pub retry_delay: f64,
    /// Seconds after which a command is killed.
    pub operation_timeout: f64,
    /// May step declarations name paths outside the project root (`..`, absolute)?
    pub allow_paths_outside_root: bool,
    /// The most output of an `az` command stepwise reads as JSON (MiB); more fails clearly.
    pub max_json_output_mb: u64,
    /// The original tool's state setting: `blob` keeps the state in Azure Blob Storage (prefer
    /// `state.path: az://ACCOUNT/CONTAINER/PATH`).
    pub state_storage: Option<String>,
    /// With `state_storage: blob`: the storage account.
    pub state_blob_account: Option<String>,
    /// With `state_storage: blob`: the container (default `deployment-state`).
    pub state_blob_container: Option<String>,
    /// With `state_storage: blob`: the blob name (default `stepwise-state.json`).
    pub state_blob_name: Option<String>,
    /// The original tool's setting, accepted so that its config loads; stepwise does not use
    /// it (a failed step leaves what it made; its next run picks up from there).
    pub cleanup_on_failure: Option<bool>,
    /// The original tool's setting, accepted so that its config loads; stepwise always keeps
    /// its state.
    pub save_state: Option<bool>,
    /// The original tool's state file, accepted so that its config loads; stepwise reads it
    /// only through `stepwise state import-legacy FILE`.
    pub state_file: Option<String>,
}

/// Where the state lives.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default)]
pub struct StateSettings {
    /// A local path (default `.stepwise/state.json`) or `az://ACCOUNT/CONTAINER/PATH`;
    /// `--state` and `STEPWISE_STATE` override it.
    #[serde(deserialize_with = "state_path")]
    #[schemars(length(min = 1))]
    pub path: Option<String>,
}

/// Cost estimates (`stepwise cost`, `plan --cost`): the steps' `fn cost()` priced with the
/// Azure Retail Prices API.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(default)]
pub struct CostSettings {
    /// The Retail Prices API (default `https://prices.azure.com/api/retail/prices`): a mirror
    /// or a test server can stand in.
    pub prices_url: String,
    /// The currency of prices and estimates (default USD).
    pub currency: String,
    /// A deployment whose monthly estimate exceeds this is refused before any command runs
    /// (unless --allow-over-budget).
    #[schemars(range(min = 0))]
    pub budget_monthly: Option<f64>,
}

impl Default for CostSettings {
    fn default() -> Self {
        CostSettings {
            prices_url: "https://prices.azure.com/api/retail/prices".into(),
            currency: "USD".into(),
            budget_monthly: None,
        }
    }
}

/// `docker_build` settings (the steps may keep their own keys here too).
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(default)]
pub struct DockerSettings {
    /// How many images `docker_build([...])` builds at once (1 to 16; default 2).
    #[schemars(range(min = 1, max = 16))]
    pub parallel_builds: Option<u32>,
}

/// One webhook. The URL is a secret: masked everywhere, never written to the state.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NotifySettings {
    /// The webhook URL (or `url_env`).
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable that holds the webhook URL (keeps it out of the config).
    #[serde(default)]
    pub url_env: Option<String>,
    /// The payload: `slack` (incoming webhook), `teams` (Workflows webhook, Adaptive Card) or
    /// `json` (the run report).
    #[serde(default)]
    pub format: NotifyFormat,
    /// When to send; default: every finished deployment.
    #[serde(default = "NotifyEvent::all")]
    pub on: Vec<NotifyEvent>,
    /// Seconds one attempt may take.
    #[serde(default = "default_notify_timeout")]
    #[schemars(range(min = 0.1, max = 120.0))]
    pub timeout: f64,
    /// How many times a failed attempt (no answer, timeout, HTTP 5xx or 429) is repeated.
    #[serde(default = "default_notify_retries")]
    #[schemars(range(max = 10))]
    pub retries: u32,
}

/// A webhook's payload format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyFormat {
    Slack,
    Teams,
    #[default]
    Json,
}

/// How a deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum NotifyEvent {
    Success,
    Failure,
    Interrupted,
}

impl NotifyEvent {
    pub fn all() -> Vec<NotifyEvent> {
        vec![
            NotifyEvent::Success,
            NotifyEvent::Failure,
            NotifyEvent::Interrupted,
        ]
    }
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Success => "success",
            NotifyEvent::Failure => "failure",
            NotifyEvent::Interrupted => "interrupted",
        }
    }
}

fn default_notify_timeout() -> f64 {
    10.0
}

fn default_notify_retries() -> u32 {
    2
}

/// Each `notify` entry has one URL source, and a URL is a web address. Messages never quote
/// the URL: it is a secret.
pub(super) fn check_notify(settings: &Settings, path: &Path) -> Result<()> {
    for (i, hook) in settings.notify.iter().enumerate() {
        let problem = match (&hook.url, &hook.url_env) {
            (Some(_), Some(_)) | (None, None) => Some("set either `url` or `url_env`"),
            (Some(u), None) if !(u.starts_with("https://") || u.starts_with("http://")) => {
                Some("`url` must start with https:// (or http://)")
            }
            _ => None,
        };
        if let Some(problem) = problem {
            return Err(Kind::Config.error(format!("{}: notify.{i}: {problem}", path.display())));
        }
    }
    Ok(())
}

/// `state.path`: a non-empty string.
fn state_path<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    match Option::<Value>::deserialize(d)? {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(serde::de::Error::custom(
            "state.path must be a local path or az://ACCOUNT/CONTAINER/PATH",
        )),
    }
}

/// The JSON Schema (draft 7, the version yaml-language-server reads best) of [`Settings`].
pub fn json_schema() -> Value {
    let schema = schemars::generate::SchemaSettings::draft07()
        .into_generator()
        .into_root_schema_for::<Settings>();
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

impl Default for AdvancedSettings {
    fn default() -> Self {
        AdvancedSettings {
            retry_attempts: 3,
            retry_delay: 5.0,
            operation_timeout: 600.0,
            allow_paths_outside_root: false,
            max_json_output_mb: 64,
            state_storage: None,
            state_blob_account: None,
            state_blob_container: None,
            state_blob_name: None,
            cleanup_on_failure: None,
            save_state: None,
            state_file: None,
        }
    }
}

impl AdvancedSettings {
    pub fn retry_delay(&self) -> Duration {
        Duration::from_secs_f64(self.retry_delay.max(0.0))
    }
    pub fn operation_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.operation_timeout.max(0.001))
    }
    /// `max_json_output_mb` in bytes.
    pub fn max_json_output(&self) -> usize {
        (self.max_json_output_mb.clamp(1, 4096) as usize) << 20
    }
}
