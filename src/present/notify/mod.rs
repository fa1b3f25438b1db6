//! Notifications: when a deployment finishes, each webhook of the config's `notify:` list
//! whose `on:` filter matches gets a POST (Slack, Microsoft Teams or generic JSON). A bounded
//! timeout per attempt and a bounded number of retries; a notification that cannot be
//! delivered is a warning, never an error: it changes neither the exit code nor the state.
//! The URL is a secret: it is never printed (webhooks are named by their position and format)
//! and the payload is masked. What each format carries and how it fits the platform's limits:
//! `payload`, `fit`.

mod fit;
mod notice;
mod payload;

pub use notice::Notice;
pub use payload::payload;

use crate::config::{Config, NotifyFormat, NotifySettings};
use crate::util::console::Console;
use crate::util::secrets::Masker;
use std::time::Duration;

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
