//! Notifications: webhooks told when a deployment finishes, against a real HTTP server on
//! 127.0.0.1 started by each test (payloads per format, `on:` filter, retry on 500, timeout
//! on a server that never answers; never a change to the exit code or the state; the URL is a
//! secret).

use crate::support;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{step, Project};

/// How the server answers one request.
#[derive(Clone, Copy)]
enum Answer {
    Status(u16),
    /// Reads the request and never answers.
    Hang,
}

#[derive(Debug, Clone)]
struct Request {
    path: String,
    content_type: String,
    body: Value,
}

/// A webhook server on 127.0.0.1: the n-th request gets `answers[n]` (the last one repeats).
struct Server {
    port: u16,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    fn start(answers: Vec<Answer>) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        std::thread::spawn(move || {
            for (n, stream) in listener.incoming().enumerate() {
                let Ok(stream) = stream else { continue };
                let answer = answers[n.min(answers.len() - 1)];
                let seen = seen.clone();
                std::thread::spawn(move || handle(stream, answer, &seen));
            }
        });
        Server { port, requests }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Request> {
        self.requests.lock().unwrap().clone()
    }

    fn to(&self, path: &str) -> Vec<Request> {
        self.requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect()
    }
}

fn handle(stream: TcpStream, answer: Answer, seen: &Mutex<Vec<Request>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_string();
    let mut length = 0;
    let mut content_type = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        let (name, value) = line.split_once(':').unwrap_or((&line, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap_or(0),
            "content-type" => content_type = value.trim().to_string(),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();
    seen.lock().unwrap().push(Request {
        path,
        content_type,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let mut stream = stream;
    match answer {
        Answer::Status(code) => {
            let _ = write!(
                stream,
                "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
        Answer::Hang => std::thread::sleep(Duration::from_secs(60)),
    }
}

const SECRET: &str = "tok-s3cr3t-9f8e7d";

/// A project whose `a` succeeds and whose `b` fails when `fail` says so (quoting a secret).
fn project(notify: &str, fail: bool) -> Project {
    let p = Project::new();
    p.config(&format!(
        "secrets:\n  token: {SECRET}\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\nnotify:\n{notify}"
    ))
    .step("01_a.rhai", &step("", r#"az(["a"]);"#))
    .step(
        "02_b.rhai",
        &step(
            r#"needs: ["a"], config: ["secrets.token"]"#,
            if fail {
                r#"throw "b broke with " + read_config("secrets.token");"#
            } else {
                r#"az(["b"]);"#
            },
        ),
    );
    p
}

/// Everything stepwise left in the project (state, history, logs), as text.
fn everything_written(p: &Project) -> String {
    p.local_files_text() + p.run(&["state", "show"]).stdout.as_str()
}

#[test]
fn each_format_gets_its_payload_when_a_deployment_fails() {
    let server = Server::start(vec![Answer::Status(200)]);
    let hook = |path: &str, format: &str| {
        format!(
            "  - url: {}\n    format: {format}\n",
            server.url(&format!("/{path}/hook-T0KEN-{path}"))
        )
    };
    let p = project(
        &(hook("slack", "slack") + hook("teams", "teams").as_str() + hook("json", "json").as_str()),
        true,
    );
    let r = p.deploy(&[]);
    r.assert_code(1); // as without notifications
    assert_eq!(server.requests().len(), 3, "{:?}", server.requests());
    for req in server.requests() {
        assert_eq!(req.content_type, "application/json");
        let text = req.body.to_string();
        assert!(!text.contains(SECRET), "secret in {}: {text}", req.path);
        assert!(text.contains("***"), "{text}");
    }

    let slack = &server.to("/slack/hook-T0KEN-slack")[0].body;
    let headline = slack["text"].as_str().unwrap();
    assert!(
        headline.contains("stepwise deploy failed: 1 ran, 0 skipped, 1 failed, 0 blocked"),
        "{headline}"
    );
    assert_eq!(slack["blocks"][0]["type"], "section");
    assert_eq!(slack["blocks"][0]["text"]["type"], "mrkdwn");
    let texts: Vec<&str> = slack["blocks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    // the headline names the environment and the run; the failure comes next, error first
    assert!(texts[0].contains("environment: `default`"), "{}", texts[0]);
    assert!(texts[0].contains("run: `"), "{}", texts[0]);
    assert!(
        texts[1].contains("*b* failed: b broke with ***"),
        "{}",
        texts[1]
    );
    let table = texts.iter().find(|t| t.starts_with("```")).unwrap();
    assert!(table.contains("a ") && table.contains("failed"), "{table}");

    let teams = &server.to("/teams/hook-T0KEN-teams")[0].body;
    assert_eq!(teams["type"], "message");
    let card = &teams["attachments"][0];
    assert_eq!(
        card["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(card["content"]["type"], "AdaptiveCard");
    let body = card["content"]["body"].as_array().unwrap();
    assert_eq!(body[0]["color"], "Attention");
    let facts = body[1]["facts"].as_array().unwrap();
    assert!(facts
        .iter()
        .any(|f| f["title"] == "Environment" && f["value"] == "default"));
    assert!(facts
        .iter()
        .any(|f| f["title"] == "Result" && f["value"] == "failure (exit 1)"));

    let json = &server.to("/json/hook-T0KEN-json")[0].body;
    assert_eq!(json["event"], "failure");
    assert_eq!(json["environment"], "default");
    assert_eq!(json["exit_code"], 1);
    assert_eq!(json["counts"]["ran"], 1);
    assert_eq!(json["counts"]["failed"], 1);
    assert!(json["markdown"]
        .as_str()
        .unwrap()
        .contains("| `b` | ❌ failed |"));
    assert_eq!(json["failures"][0]["step"], "b");
    assert_eq!(json["failures"][0]["error"], "b broke with ***");
    assert_eq!(json["warnings_count"], 0);
    assert_eq!(json["report"]["steps"][1]["name"], "b");
    assert_eq!(json["report"]["steps"][1]["result"], "failed");

    // The URLs are secrets: never printed, never written.
    let written = everything_written(&p);
    for path in ["slack", "teams", "json"] {
        let token = format!("hook-T0KEN-{path}");
        assert!(!r.all().contains(&token), "{}", r.all());
        assert!(
            !written.contains(&token),
            "{token} written to state or logs"
        );
    }
}

#[test]
fn the_on_filter_decides_and_runs_that_change_nothing_send_nothing() {
    let server = Server::start(vec![Answer::Status(204)]);
    let mut p = project(
        &format!(
            "  - url: {}\n    on: [failure, interrupted]\n  - url_env: HOOK_URL\n    format: json\n",
            server.url("/failures-only")
        ),
        false,
    );
    p.env("HOOK_URL", &server.url("/from-env-T0KEN"));
    p.deploy(&[]).assert_code(0);
    assert!(server.to("/failures-only").is_empty());
    let sent = server.to("/from-env-T0KEN");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["event"], "success");
    assert_eq!(sent[0].body["exit_code"], 0);
    // Nothing to do, and dry runs: no notification.
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    p.deploy(&["--dry-run", "--force-all"]).assert_code(0);
    assert_eq!(server.requests().len(), 1, "{:?}", server.requests());
    // A missing url_env variable is a warning, not an error.
    p.clear_env();
    let r = p.deploy(&["--force-step", "a"]);
    r.assert_code(0)
        .assert_contains("notify.1 (json): environment variable HOOK_URL is not set");
}

#[test]
fn a_500_is_retried_and_a_404_is_not() {
    let server = Server::start(vec![Answer::Status(500), Answer::Status(200)]);
    let p = project(
        &format!("  - url: {}\n    format: slack\n", server.url("/flaky")),
        false,
    );
    let r = p.deploy(&[]);
    r.assert_code(0).assert_not_contains("not delivered");
    assert_eq!(server.to("/flaky").len(), 2);

    let gone = Server::start(vec![Answer::Status(404)]);
    p.config(&format!(
        "secrets:\n  token: {SECRET}\nnotify:\n  - url: {}\n    retries: 3\n",
        gone.url("/gone-T0KEN")
    ));
    let r = p.deploy(&["--force-step", "a"]);
    r.assert_code(0)
        .assert_contains(
            "notify.0 (json): notification not delivered: HTTP 404 Not Found after 1 attempt",
        )
        .assert_not_contains("gone-T0KEN");
    assert_eq!(gone.requests().len(), 1);
}

#[test]
fn a_server_that_never_answers_times_out_and_changes_nothing() {
    let server = Server::start(vec![Answer::Hang]);
    let p = project(
        &format!(
            "  - url: {}\n    format: teams\n    timeout: 1\n    retries: 1\n",
            server.url("/silent-T0KEN")
        ),
        true,
    );
    let started = Instant::now();
    let r = p.deploy(&[]);
    let took = started.elapsed();
    // The deployment's own result: b failed, exit 1, recorded as without notifications.
    r.assert_code(1)
        .assert_contains(
            "notify.0 (teams): notification not delivered: no answer within 1s after 2 attempts",
        )
        .assert_not_contains("silent-T0KEN");
    assert!(took < Duration::from_secs(10), "took {took:?}");
    assert_eq!(server.requests().len(), 2);
    assert_eq!(p.status("a"), "completed");
    assert_eq!(p.status("b"), "failed");

    // No server at all: the same, at once.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    p.config(&format!(
        "secrets:\n  token: {SECRET}\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\nnotify:\n  - url: http://127.0.0.1:{closed}/nobody-T0KEN\n    retries: 0\n"
    ));
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("notification not delivered")
        .assert_not_contains("nobody-T0KEN");
}

#[test]
fn a_bad_notify_entry_is_refused_before_anything_runs_without_quoting_the_url() {
    let p = project("  - format: slack\n", false);
    p.deploy(&[])
        .assert_code(2)
        .assert_contains("config.yaml: notify.0: set either `url` or `url_env`");
    let p = project("  - url: ftp://T0KEN@example.com/x\n", false);
    p.deploy(&[])
        .assert_code(2)
        .assert_contains("notify.0: `url` must start with https://")
        .assert_not_contains("T0KEN");
    let p = project("  - url_env: X\n    format: pigeon\n", false);
    p.deploy(&[])
        .assert_code(2)
        .assert_contains("config.yaml:")
        .assert_contains("pigeon");
    assert!(p.az_calls().is_empty());
}

#[test]
fn a_rollback_is_notified_as_a_rollback_naming_its_target() {
    let server = Server::start(vec![Answer::Status(200)]);
    let p = Project::new();
    let config = |image: &str| {
        format!(
            "image: {image}\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\nnotify:\n  - url: {}\n    format: json\n",
            server.url("/hook")
        )
    };
    p.config(&config("one")).step(
        "01_app.rhai",
        r#"let step = #{ config: ["image"] };
fn run() { az(["update", read_config("image")]); output("image", read_config("image")); }
fn rollback(target) { az(["update", target.image]); }
"#,
    );
    p.deploy(&[]).assert_code(0);
    let first = p.state()["run_id"].as_str().unwrap().to_string();
    p.config(&config("two"));
    p.deploy(&[]).assert_code(0);
    let r = p.run(&["rollback", "--auto-approve"]);
    r.assert_code(0);
    let sent = server.to("/hook");
    assert_eq!(sent.len(), 3, "two deployments and the rollback");
    let json = &sent[2].body;
    assert_eq!(json["report"]["command"], "rollback");
    assert_eq!(json["report"]["rollback_target"], first.as_str());
    let summary = json["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("stepwise rollback to {first} succeeded")),
        "{summary}"
    );
    // The run report says so too.
    let html = std::fs::read_to_string(p.report_of(&r)).unwrap();
    assert!(
        html.contains(&format!("Rollback to {first}")),
        "no rollback heading"
    );
}

#[test]
fn a_deployment_with_a_cost_estimate_notifies_its_total_and_change() {
    let server = Server::start(vec![Answer::Status(200)]);
    let p = Project::new();
    let config = |monthly: &str| {
        format!(
            "monthly: {monthly}\ndeployment:\n  show_cost: true\nnotify:\n  - url: {}\n    format: json\n",
            server.url("/hook")
        )
    };
    let step = r#"let step = #{ config: ["monthly"] };
fn run() { az(["a"]); }
fn cost() { [#{ what: "a thing", monthly: read_config("monthly") }] }
"#;
    p.config(&config("12.5")).step("01_a.rhai", step);
    p.deploy(&[]).assert_code(0);
    p.config(&config("20.0"));
    p.deploy(&[]).assert_code(0);
    let sent = server.to("/hook");
    assert_eq!(sent.len(), 2);
    let first = &sent[0].body;
    assert_eq!(first["report"]["cost"]["monthly_total"], 12.5);
    let second = &sent[1].body;
    assert_eq!(second["report"]["cost"]["delta_monthly"], 7.5);
    assert!(
        second["markdown"]
            .as_str()
            .unwrap()
            .contains("Estimated cost: 20.00 USD/month (+7.50 since the last deployment)"),
        "{second}"
    );
}

/// Six steps whose long `az` commands fail, with a warning, in a git repository and a GitHub
/// Actions run: every format names every failed step with its error text before its command,
/// Slack's blocks stay under 3,000 characters (50 blocks) and Teams' card under its size
/// limit, and each says project, environment, run, commit and CI run.
#[test]
fn six_failing_steps_with_long_commands_are_all_named_error_first_within_each_limit() {
    let server = Server::start(vec![Answer::Status(200)]);
    let p = Project::new();
    let mut config = String::from("advanced:\n  retry_attempts: 1\n  retry_delay: 0\nnotify:\n");
    for f in ["slack", "teams", "json"] {
        config.push_str(&format!(
            "  - url: {}\n    format: {f}\n",
            server.url(&format!("/{f}"))
        ));
    }
    p.config(&config);
    let long: String = (0..60)
        .map(|i| format!(" --tag k{i}=v{i}-{}", "x".repeat(12)))
        .collect();
    for i in 1..=6 {
        p.step(
            &format!("0{i}_deploy_service_{i}.rhai"),
            &step(
                "",
                &format!(
                    r#"warn("service {i} is slow"); az(["containerapp", "update", "--name", "svc{i}"{}]);"#,
                    long.split(' ')
                        .filter(|a| !a.is_empty())
                        .map(|a| format!(", {a:?}"))
                        .collect::<String>()
                ),
            ),
        );
    }
    support::git(p.path(), &["init", "-q", "-b", "release"]);
    support::git(p.path(), &["add", "-A"]);
    support::git(p.path(), &["commit", "-q", "-m", "six services"]);
    let commit = support::git(p.path(), &["rev-parse", "HEAD"]);
    let mut p = p;
    p.env("FAKE_AZ_FAIL_ON", "containerapp update")
        .env("GITHUB_SERVER_URL", "https://github.com")
        .env("GITHUB_REPOSITORY", "acme/shop")
        .env("GITHUB_RUN_ID", "4242");
    p.deploy(&["--keep-going"]).assert_code(1);
    let ci = "https://github.com/acme/shop/actions/runs/4242";

    let slack = &server.to("/slack")[0].body;
    let blocks = slack["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50);
    let texts: Vec<&str> = blocks
        .iter()
        .map(|b| b["text"]["text"].as_str().unwrap())
        .collect();
    for t in &texts {
        assert!(
            t.chars().count() <= 3000,
            "a block of {} chars",
            t.chars().count()
        );
    }
    assert!(
        texts[0].contains(&format!("commit: `{}", &commit[..12])),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("on release"), "{}", texts[0]);
    assert!(
        texts[0].contains(&format!("<{ci}|GitHub Actions run>")),
        "{}",
        texts[0]
    );
    assert!(texts[0].contains("6 warning(s)"), "{}", texts[0]);
    let all = texts.join("\n");
    for i in 1..=6 {
        let name = format!("*deploy_service_{i}* failed: ERROR: (FakeFailure)");
        let at = all
            .find(&name)
            .unwrap_or_else(|| panic!("{name} not in {all}"));
        // the command comes after the error text
        let cmd = all[at..].find("az containerapp update --name svc").unwrap();
        assert!(cmd > name.len(), "{}", &all[at..]);
    }

    let teams = &server.to("/teams")[0].body;
    assert!(teams.to_string().len() <= 28 * 1024);
    let body = teams["attachments"][0]["content"]["body"]
        .as_array()
        .unwrap();
    let text: Vec<String> = body.iter().map(|b| b.to_string()).collect();
    let text = text.join("\n");
    for i in 1..=6 {
        assert!(
            text.contains(&format!(
                "**deploy_service_{i}** failed: ERROR: (FakeFailure)"
            )),
            "{text}"
        );
    }
    let facts = body[1]["facts"].as_array().unwrap();
    let fact = |k: &str| {
        facts
            .iter()
            .find(|f| f["title"] == k)
            .map(|f| f["value"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert!(fact("Commit").starts_with(&commit[..12]));
    assert_eq!(fact("CI run"), format!("[GitHub Actions run]({ci})"));
    assert_eq!(fact("Warnings"), "6");
    assert!(!fact("Project").is_empty());

    let json = &server.to("/json")[0].body;
    let failures = json["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 6);
    for f in failures {
        assert!(
            f["error"]
                .as_str()
                .unwrap()
                .starts_with("ERROR: (FakeFailure)"),
            "{f}"
        );
        assert!(
            f["command"]
                .as_str()
                .unwrap()
                .starts_with("az containerapp update"),
            "{f}"
        );
        assert!(f["command"].as_str().unwrap().ends_with(", exit 1"), "{f}");
    }
    assert_eq!(json["git"]["commit"], commit.as_str());
    assert_eq!(json["git"]["branch"], "release");
    assert_eq!(json["ci"]["url"], ci);
    assert_eq!(json["warnings_count"], 6);
    assert!(!json["run_id"].as_str().unwrap().is_empty());
}
