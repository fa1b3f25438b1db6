//! Notifications: when a deployment finishes, each webhook of the config's `notify:` list
//! whose `on:` filter matches gets a POST (Slack, Microsoft Teams or generic JSON). A bounded
//! timeout per attempt and a bounded number of retries; a notification that cannot be
//! delivered is a warning, never an error: it changes neither the exit code nor the state.
//! The URL is a secret: it is never printed (webhooks are named by their position and format)
//! and the payload is masked.

use crate::config::{Config, NotifyEvent, NotifyFormat, NotifySettings};
use crate::run::executor::Counts;
use crate::util::console::Console;
use crate::util::secrets::Masker;
use serde_json::{json, Value};
use std::time::Duration;

/// What is told about a finished deployment.
pub struct Notice {
    pub event: NotifyEvent,
    /// The environment deployed (`default` without environments).
    pub environment: String,
    pub exit_code: i32,
    /// `stepwise deploy failed: 1 ran, ... (exit 1)`.
    pub summary: String,
    /// The Markdown table and summary (as `--output markdown`).
    pub markdown: String,
    pub counts: Counts,
    /// Per step: name, result, reason, seconds (for the chat formats).
    pub steps: Vec<(String, String, String, f64)>,
    /// The run report (as `--output json`).
    pub report: Value,
}

/// One webhook, ready to send.
struct Hook<'a> {
    /// `notify.0 (slack)`: how messages name it (never by its URL).
    name: String,
    url: String,
    settings: &'a NotifySettings,
}

/// Sends `notice` to every webhook that wants it; waits for each (bounded), warns about any
/// that could not be delivered.
pub fn send_all(config: &Config, notice: &Notice, masker: &Masker, console: &Console) {
    let hooks: Vec<Hook> = config
        .settings
        .notify
        .iter()
        .enumerate()
        .filter(|(_, s)| s.on.contains(&notice.event))
        .filter_map(|(i, s)| {
            let name = format!("notify.{i} ({})", format_name(s.format));
            let url = match (&s.url, &s.url_env) {
                (Some(u), _) => Some(u.clone()),
                (None, Some(var)) => match std::env::var(var) {
                    Ok(u) if !u.is_empty() => Some(u),
                    _ => {
                        console.warn(&format!(
                            "{name}: environment variable {var} is not set: notification not sent"
                        ));
                        None
                    }
                },
                (None, None) => None,
            }?;
            Some(Hook {
                name,
                url,
                settings: s,
            })
        })
        .collect();
    if hooks.is_empty() {
        return;
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            console.warn(&format!("notifications not sent: {e}"));
            return;
        }
    };
    for hook in hooks {
        let body = masker.mask(&payload(hook.settings.format, notice).to_string());
        match rt.block_on(deliver(&hook, body)) {
            Ok(()) => tracing::debug!(webhook = %hook.name, "notification delivered"),
            Err(e) => console.warn(&masker.mask(&format!(
                "{}: notification not delivered: {e} (the deployment's result is unchanged)",
                hook.name
            ))),
        }
    }
}

fn format_name(f: NotifyFormat) -> &'static str {
    match f {
        NotifyFormat::Slack => "slack",
        NotifyFormat::Teams => "teams",
        NotifyFormat::Json => "json",
    }
}

/// POSTs `body`, retrying what may pass (no connection, timeout, 5xx, 429) with a growing
/// pause. The error never contains the URL.
async fn deliver(hook: &Hook<'_>, body: String) -> Result<(), String> {
    let timeout = Duration::from_secs_f64(hook.settings.timeout.clamp(0.1, 120.0));
    let client = reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("stepwise/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.without_url().to_string())?;
    let attempts = hook.settings.retries.min(10) + 1;
    let mut pause = Duration::from_millis(500);
    let mut last = String::new();
    let mut made = 0;
    for attempt in 1..=attempts {
        made = attempt;
        let sent = client
            .post(&hook.url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await;
        let retry = match sent {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let status = resp.status();
                last = format!("HTTP {status}");
                status.is_server_error() || status.as_u16() == 429
            }
            Err(e) => {
                last = if e.is_timeout() {
                    format!("no answer within {}s", hook.settings.timeout)
                } else {
                    e.without_url().to_string()
                };
                true
            }
        };
        if !retry || attempt == attempts {
            break;
        }
        tracing::debug!(webhook = %hook.name, attempt, error = %last, "notification retried");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
    Err(format!(
        "{last} after {made} attempt{}",
        if made == 1 { "" } else { "s" }
    ))
}

/// The body for a webhook format.
pub fn payload(format: NotifyFormat, n: &Notice) -> Value {
    match format {
        NotifyFormat::Json => json!({
            "source": "stepwise",
            "event": n.event.as_str(),
            "environment": n.environment,
            "exit_code": n.exit_code,
            "summary": n.summary,
            "markdown": n.markdown,
            "counts": n.counts,
            "report": n.report,
        }),
        NotifyFormat::Slack => {
            let icon = match n.event {
                NotifyEvent::Success => ":white_check_mark:",
                NotifyEvent::Failure => ":x:",
                NotifyEvent::Interrupted => ":octagonal_sign:",
            };
            let mut table = String::new();
            for (step, result, reason, secs) in &n.steps {
                table.push_str(&format!("{step:<28} {result:<11} {secs:>7.1}s  {reason}\n"));
            }
            json!({
                "text": format!("{icon} {} [{}]", n.summary, n.environment),
                "blocks": [
                    {
                        "type": "section",
                        "text": { "type": "mrkdwn", "text": format!("{icon} *{}*\nenvironment: `{}`", n.summary, n.environment) }
                    },
                    {
                        "type": "section",
                        "text": { "type": "mrkdwn", "text": format!("```{}```", truncate(&table, 2900)) }
                    }
                ]
            })
        }
        NotifyFormat::Teams => {
            let color = match n.event {
                NotifyEvent::Success => "Good",
                NotifyEvent::Failure => "Attention",
                NotifyEvent::Interrupted => "Warning",
            };
            let c = &n.counts;
            let lines: Vec<String> = n
                .steps
                .iter()
                .map(|(step, result, reason, secs)| {
                    format!("- **{step}**: {result} ({secs:.1}s) {reason}")
                })
                .collect();
            json!({
                "type": "message",
                "attachments": [{
                    "contentType": "application/vnd.microsoft.card.adaptive",
                    "contentUrl": null,
                    "content": {
                        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                        "type": "AdaptiveCard",
                        "version": "1.4",
                        "body": [
                            { "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "color": color, "text": n.summary },
                            { "type": "FactSet", "facts": [
                                { "title": "Environment", "value": n.environment },
                                { "title": "Result", "value": format!("{} (exit {})", n.event.as_str(), n.exit_code) },
                                { "title": "Steps", "value": format!("{} ran, {} skipped, {} failed, {} blocked, {} interrupted", c.ran, c.skipped, c.failed, c.blocked, c.interrupted) }
                            ]},
                            { "type": "TextBlock", "wrap": true, "text": truncate(&lines.join("\n"), 20_000) }
                        ]
                    }
                }]
            })
        }
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n…", &text[..end])
}
