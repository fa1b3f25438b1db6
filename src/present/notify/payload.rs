//! The body of each webhook format, within the platform's documented limits:
//!
//! - Slack (Block Kit, incoming webhooks): a section block's text is at most 3,000 characters
//!   and a message holds at most 50 blocks (api.slack.com/reference/block-kit/blocks,
//!   "section": "Maximum length for the text in this field is 3000 characters"; "You can
//!   include up to 50 blocks in each message").
//! - Microsoft Teams (incoming webhook, Adaptive Card): "The message size limit is 28 KB"
//!   (learn.microsoft.com/microsoftteams/platform/webhooks-and-connectors/how-to/
//!   add-incoming-webhook); the card is kept under [`TEAMS_BYTES`], a margin below it.
//! - Generic JSON: no platform, no limit; the whole run summary is sent.
//!
//! Over a limit, detail is dropped for the whole failure list at once (`fit`): every failed
//! step stays named, its error text before its command.

use super::fit::{cut, first_fit, pack, parts, Detail, LEVELS};
use super::notice::{Failed, Notice};
use crate::config::{NotifyEvent, NotifyFormat};
use serde_json::{json, Value};

/// Slack: the most characters of a section block's text.
pub const SLACK_TEXT: usize = 3000;
/// Slack: the most blocks of a message.
pub const SLACK_BLOCKS: usize = 50;
/// Teams: the size the whole payload is kept under (bytes of JSON; 28 KB documented).
pub const TEAMS_BYTES: usize = 24 * 1024;

/// The body for a webhook format.
pub fn payload(format: NotifyFormat, n: &Notice) -> Value {
    match format {
        NotifyFormat::Json => json!({
            "source": "stepwise",
            "event": n.event.as_str(),
            "project": n.project,
            "environment": n.environment,
            "run_id": n.run_id,
            "git": n.git,
            "ci": n.ci,
            "exit_code": n.exit_code,
            "summary": n.summary,
            "markdown": n.markdown,
            "counts": n.counts,
            "warnings_count": n.warnings.len(),
            "warnings": n.warnings,
            "failures": n.failures,
            "outputs": n.outputs,
            "report": n.report,
        }),
        NotifyFormat::Slack => slack(n),
        NotifyFormat::Teams => teams(n),
    }
}

/// Where the run came from, as `(label, value)`: project, environment, run, commit, CI run
/// (its URL), warnings.
fn origin(n: &Notice) -> Vec<(&'static str, String)> {
    let mut facts = Vec::new();
    if !n.project.is_empty() {
        facts.push(("Project", n.project.clone()));
    }
    facts.push(("Environment", n.environment.clone()));
    if !n.run_id.is_empty() {
        facts.push(("Run", n.run_id.clone()));
    }
    if let Some(g) = &n.git {
        let on = if g.branch.is_empty() {
            String::new()
        } else {
            format!(" on {}", g.branch)
        };
        facts.push(("Commit", format!("{}{on}", g.short())));
    }
    facts
}

/// `&`, `<`, `>` escaped as Slack's mrkdwn wants; backticks made quotes (they would end code).
fn mrkdwn(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

fn section(text: String) -> Value {
    json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })
}

fn icon(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::Success => ":white_check_mark:",
        NotifyEvent::Failure => ":x:",
        NotifyEvent::Interrupted => ":octagonal_sign:",
    }
}

fn retries_note(f: &Failed) -> String {
    match f.retries {
        0 => String::new(),
        1 => " (1 retry)".into(),
        k => format!(" ({k} retries)"),
    }
}

/// A failed step's lines in Slack mrkdwn at `detail`: name and result, the error, the command.
fn slack_failure(f: &Failed, detail: Detail) -> String {
    let (error, command) = parts(f, detail);
    let mut line = format!(
        "• *{}* {}{}",
        mrkdwn(&f.step),
        mrkdwn(&f.result),
        retries_note(f)
    );
    if let Some(e) = error {
        line.push_str(&format!(": {}", mrkdwn(&e)));
    }
    if let Some(c) = command {
        line.push_str(&format!("\n    `{}`", mrkdwn(&c)));
    }
    line
}

/// Slack: the headline section, the failures (as much detail as fits one block, else names
/// over several), public outputs, warnings, and the table of steps.
fn slack(n: &Notice) -> Value {
    let icon = icon(n.event);
    let mut head = format!("{icon} *{}*\n", mrkdwn(&n.summary));
    head.push_str(
        &origin(n)
            .iter()
            .map(|(k, v)| format!("{}: `{}`", k.to_lowercase(), mrkdwn(v)))
            .collect::<Vec<_>>()
            .join(" · "),
    );
    if let Some(ci) = &n.ci {
        head.push_str(&format!(
            " · <{}|{} run>",
            mrkdwn(&ci.url),
            mrkdwn(&ci.system)
        ));
    }
    if !n.warnings.is_empty() {
        head.push_str(&format!(" · {} warning(s)", n.warnings.len()));
    }
    let mut blocks = vec![section(cut(&head, SLACK_TEXT))];
    if !n.failures.is_empty() {
        let heading = format!("*{} step(s) did not succeed:*", n.failures.len());
        let render = |d: Detail| {
            let lines: Vec<String> = std::iter::once(heading.clone())
                .chain(n.failures.iter().map(|f| slack_failure(f, d)))
                .collect();
            (
                lines.iter().all(|l| l.chars().count() <= SLACK_TEXT),
                pack(&lines, SLACK_TEXT),
            )
        };
        let (_, (_, chunks)) = first_fit(render, |(whole, chunks)| *whole && chunks.len() == 1);
        // At the last level (names) the list may take several blocks: all of them are sent
        // while the message stays under its block limit.
        for c in chunks.into_iter().take(SLACK_BLOCKS - 4) {
            blocks.push(section(c));
        }
    }
    if !n.outputs.is_empty() {
        let lines: Vec<String> = std::iter::once("*Outputs*".to_string())
            .chain(n.outputs.iter().map(|o| {
                format!(
                    "• {}.{}: {}",
                    mrkdwn(&o.step),
                    mrkdwn(&o.key),
                    mrkdwn(&cut(&o.value, 300))
                )
            }))
            .collect();
        blocks.push(section(first_chunk(&lines, n.outputs.len())));
    }
    if !n.warnings.is_empty() {
        let lines: Vec<String> = std::iter::once(format!("*{} warning(s)*", n.warnings.len()))
            .chain(
                n.warnings
                    .iter()
                    .map(|w| format!("• {}: {}", mrkdwn(&w.step), mrkdwn(&cut(&w.message, 200)))),
            )
            .collect();
        blocks.push(section(first_chunk(&lines, n.warnings.len())));
    }
    blocks.push(section(slack_table(n)));
    blocks.truncate(SLACK_BLOCKS);
    json!({
        "text": cut(&format!("{icon} {} [{}]", n.summary, n.environment), SLACK_TEXT),
        "blocks": blocks,
    })
}

/// The first block's worth of `lines` (a heading, then `items` items), saying how many more
/// the run report has.
fn first_chunk(lines: &[String], items: usize) -> String {
    let chunks = pack(lines, SLACK_TEXT - 60);
    let mut first = chunks.first().cloned().unwrap_or_default();
    let shown = first.lines().count().saturating_sub(1);
    if shown < items {
        first.push_str(&format!("\n… and {} more in the run report", items - shown));
    }
    first
}

/// The steps as a fixed-width table in a code block: with reasons (a failed step's is in the
/// failure list) when they fit, else without, else the first rows.
fn slack_table(n: &Notice) -> String {
    let rows = |reasons: bool| -> String {
        let mut t = String::new();
        for (step, result, reason, secs) in &n.steps {
            let reason = if reasons && !matches!(result.as_str(), "failed" | "interrupted") {
                cut(reason, 80).replace('`', "'")
            } else {
                String::new()
            };
            let row = format!("{step:<28} {result:<11} {secs:>7.1}s  {reason}");
            t.push_str(row.trim_end());
            t.push('\n');
        }
        t
    };
    let fence = |t: &str| format!("```{}```", mrkdwn(t.trim_end()));
    for reasons in [true, false] {
        let t = fence(&rows(reasons));
        if t.chars().count() <= SLACK_TEXT {
            return t;
        }
    }
    let all = rows(false);
    let lines: Vec<&str> = all.lines().collect();
    let mut keep = lines.len();
    while keep > 0 {
        let t = format!(
            "{}\n… and {} more steps",
            lines[..keep].join("\n"),
            lines.len() - keep
        );
        let t = fence(&t);
        if t.chars().count() <= SLACK_TEXT {
            return t;
        }
        keep -= 1;
    }
    fence("")
}

/// Teams: an Adaptive Card with the summary, the facts, the failures, public outputs,
/// warnings and steps, under [`TEAMS_BYTES`]: the warning and step lists go first, then the
/// failures' detail, level by level.
fn teams(n: &Notice) -> Value {
    let candidates = std::iter::once((true, LEVELS[0])).chain(LEVELS.iter().map(|l| (false, *l)));
    let mut last = Value::Null;
    for (lists, level) in candidates {
        let card = teams_card(n, level, lists);
        if card.to_string().len() <= TEAMS_BYTES {
            return card;
        }
        last = card;
    }
    last
}

fn teams_card(n: &Notice, detail: Detail, lists: bool) -> Value {
    let color = match n.event {
        NotifyEvent::Success => "Good",
        NotifyEvent::Failure => "Attention",
        NotifyEvent::Interrupted => "Warning",
    };
    let c = &n.counts;
    let mut facts: Vec<Value> = origin(n)
        .into_iter()
        .map(|(k, v)| json!({ "title": k, "value": v }))
        .collect();
    if let Some(ci) = &n.ci {
        facts.push(
            json!({ "title": "CI run", "value": format!("[{} run]({})", ci.system, ci.url) }),
        );
    }
    facts.push(json!({ "title": "Result", "value": format!("{} (exit {})", n.event.as_str(), n.exit_code) }));
    facts.push(json!({ "title": "Steps", "value": format!("{} ran, {} skipped, {} failed, {} blocked, {} interrupted", c.ran, c.skipped, c.failed, c.blocked, c.interrupted) }));
    facts.push(json!({ "title": "Warnings", "value": n.warnings.len().to_string() }));
    let mut body = vec![
        json!({ "type": "TextBlock", "size": "Medium", "weight": "Bolder", "wrap": true, "color": color, "text": n.summary }),
        json!({ "type": "FactSet", "facts": facts }),
    ];
    for f in &n.failures {
        let (error, command) = parts(f, detail);
        let mut text = format!("**{}** {}{}", f.step, f.result, retries_note(f));
        if let Some(e) = error {
            text.push_str(&format!(": {e}"));
        }
        body.push(json!({ "type": "TextBlock", "wrap": true, "color": "Attention", "text": text }));
        if let Some(c) = command {
            body.push(json!({ "type": "TextBlock", "wrap": true, "isSubtle": true, "fontType": "Monospace", "spacing": "None", "text": c }));
        }
    }
    if !n.outputs.is_empty() {
        body.push(
            json!({ "type": "FactSet", "facts": n.outputs.iter().map(|o| json!({
            "title": format!("{}.{}", o.step, o.key), "value": cut(&o.value, 500)
        })).collect::<Vec<_>>() }),
        );
    }
    if lists {
        if !n.warnings.is_empty() {
            let lines: Vec<String> = n
                .warnings
                .iter()
                .map(|w| format!("- **{}**: {}", w.step, cut(&w.message, 300)))
                .collect();
            body.push(json!({ "type": "TextBlock", "wrap": true, "text": lines.join("\n") }));
        }
        let lines: Vec<String> = n
            .steps
            .iter()
            .map(|(step, result, reason, secs)| {
                format!("- **{step}**: {result} ({secs:.1}s) {}", cut(reason, 200))
            })
            .collect();
        body.push(json!({ "type": "TextBlock", "wrap": true, "text": lines.join("\n") }));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body
            }
        }]
    })
}
