//! `stepwise rollback`: returning what the steps deployed to an earlier run's outputs, on a
//! small project (the DraftGenie rollback is in draftgenie.rs).

use crate::support;
use serde_json::json;
use std::time::Duration;
use support::{wait_for, Project};

/// `app` deploys `image` (and can roll back); `migrate` applies `schema` after it (and
/// cannot); `notes` depends on nothing that changes.
fn project() -> Project {
    let p = Project::new();
    p.step(
        "01_app.rhai",
        r#"let step = #{ config: ["image"] };
fn run() {
    az(["containerapp", "update", "--name", "api", "--image", read_config("image")]);
    output("image", read_config("image"));
}
fn rollback(target) {
    // what is deployed now, and what it returns to
    let now = previous_outputs().image;
    az(["containerapp", "update", "--name", "api", "--image", target.image]);
    log(`api: ${now} -> ${target.image}`);
}
"#,
    )
    .step(
        "02_migrate.rhai",
        r#"let step = #{ needs: ["app"], config: ["schema"] };
fn run() {
    az(["migrate", "--to", read_config("schema")]);
    output("schema", read_config("schema"));
}
"#,
    )
    .step(
        "03_notes.rhai",
        r#"let step = #{ needs: ["app"] };
fn run() { output("n", 1); }
fn rollback(target) { az(["notes", "rollback"]); }
"#,
    );
    p
}

fn set(p: &Project, image: &str, schema: &str) {
    p.config(&format!(
        "image: {image}\nschema: {schema}\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n"
    ));
}

/// Deploys A/1, then B/2: returns the first run's id.
fn two_deployments(p: &Project) -> String {
    set(p, "api@sha256:aaa", "1");
    p.deploy(&[]).assert_code(0);
    let first = p.state()["run_id"].as_str().unwrap().to_string();
    set(p, "api@sha256:bbb", "2");
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["app", "migrate"]);
    p.clear_calls();
    first
}

#[test]
fn rollback_returns_the_app_to_the_earlier_run_and_the_next_deploy_rolls_forward() {
    let p = project();
    let first = two_deployments(&p);

    let r = p.run(&["rollback", "--auto-approve"]);
    r.assert_code(0)
        .assert_contains(&format!("Rollback to run {first}"))
        .assert_contains("app rollback (outputs differ from")
        .assert_contains("notes unchanged")
        .assert_contains("migrate cannot roll back")
        .assert_contains("api: api@sha256:bbb -> api@sha256:aaa");
    assert!(
        r.stderr
            .contains("migrate cannot roll back: its outputs differ"),
        "the step without rollback() is warned about:\n{}",
        r.stderr
    );
    // Exactly one command: the app back to the first run's image.
    assert_eq!(
        p.az_calls(),
        [vec![
            "containerapp",
            "update",
            "--name",
            "api",
            "--image",
            "api@sha256:aaa",
            "--output",
            "json"
        ]]
    );
    let state = p.state();
    let app = &state["steps"]["app"];
    assert_eq!(app["status"], "rolled back");
    assert_eq!(app["rolled_back_to"], first.as_str());
    assert_eq!(app["outputs"]["image"], "api@sha256:aaa");
    assert_eq!(state["steps"]["migrate"]["outputs"]["schema"], 2);
    assert_eq!(state["run_kind"], "rollback");

    // The history says it was a rollback; plan says the app runs again, and why.
    p.run(&["state", "history"])
        .assert_code(0)
        .assert_contains(&format!("(rollback to {first})"));
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains(&format!("rolled back to {first} on "));
    let plan: serde_json::Value =
        serde_json::from_str(&p.run(&["plan", "--output", "json"]).stdout).unwrap();
    let to_run: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["decision"] == "run")
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(to_run, ["app"]);

    // The next deployment rolls forward to what the source says (B).
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["app"]);
    assert!(p
        .az_calls()
        .iter()
        .any(|c| c.contains(&"api@sha256:bbb".to_string())));
    assert_eq!(p.status("app"), "completed");
    assert!(p.state()["steps"]["app"].get("rolled_back_to").is_none());
    assert!(p.state().get("run_kind").is_none());
}

#[test]
fn dry_run_and_json_show_the_rollback_and_change_nothing() {
    let p = project();
    let first = two_deployments(&p);
    let before = p.read(".stepwise/state.json");
    let r = p.run(&["rollback", "--dry-run"]);
    r.assert_code(0)
        .assert_contains("containerapp update --name api --image api@sha256:aaa")
        .assert_contains("Dry run: no command ran");
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/state.json"), before);

    let r = p.run(&["rollback", "--dry-run", "--output", "json"]);
    r.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(doc["command"], "rollback");
    assert_eq!(doc["rollback_target"], first.as_str());
    assert_eq!(doc["dry_run"], true);
    let decisions: Vec<(String, String)> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["decision"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("app", "rollback"),
        ("migrate", "cannot roll back"),
        ("notes", "unchanged"),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(decisions, want);
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/state.json"), before);

    let r = p.run(&["rollback", "--dry-run", "--output", "markdown"]);
    r.assert_code(0)
        .assert_contains(&format!("### stepwise rollback to {first} (dry run)"));
}

#[test]
fn all_or_nothing_refuses_when_a_changed_step_cannot_roll_back() {
    let p = project();
    two_deployments(&p);
    let before = p.read(".stepwise/state.json");
    p.run(&["rollback", "--auto-approve", "--all-or-nothing"])
        .assert_code(1)
        .assert_contains("--all-or-nothing: migrate cannot roll back");
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/state.json"), before);
}

#[test]
fn a_named_run_an_unknown_run_and_nothing_to_roll_back() {
    let p = project();
    set(&p, "api@sha256:aaa", "1");
    p.deploy(&[]).assert_code(0);
    // One run only: nothing to return to.
    p.run(&["rollback", "--auto-approve"])
        .assert_code(0)
        .assert_contains("Nothing to roll back: no earlier successful run");
    p.run(&["rollback", "nope", "--auto-approve"])
        .assert_code(2)
        .assert_contains("no run nope in the state history");
    let first = p.state()["run_id"].as_str().unwrap().to_string();
    set(&p, "api@sha256:bbb", "1");
    p.deploy(&[]).assert_code(0);
    set(&p, "api@sha256:ccc", "1");
    p.deploy(&[]).assert_code(0);
    p.clear_calls();
    // Named: two runs back.
    p.run(&["rollback", &first, "--auto-approve"])
        .assert_code(0)
        .assert_contains(&format!("Rollback to run {first}"));
    assert_eq!(p.az_calls().len(), 1);
    assert_eq!(p.az_calls()[0][5], "api@sha256:aaa");
}

#[test]
fn a_protected_environment_refuses_a_rollback_without_confirmation() {
    let p = project();
    p.file("config.prod.yaml", "deployment:\n  protected: true\n");
    set(&p, "api@sha256:aaa", "1");
    p.deploy(&["--env", "prod", "--confirm-env", "prod"])
        .assert_code(0);
    set(&p, "api@sha256:bbb", "1");
    p.deploy(&["--env", "prod", "--confirm-env", "prod"])
        .assert_code(0);
    p.clear_calls();
    p.run(&["rollback", "--env", "prod", "--auto-approve"])
        .assert_code(1)
        .assert_contains("environment `prod` is protected")
        .assert_contains("--confirm-env prod");
    assert!(p.az_calls().is_empty());
    p.run(&[
        "rollback",
        "--env",
        "prod",
        "--auto-approve",
        "--confirm-env",
        "prod",
    ])
    .assert_code(0);
    assert_eq!(p.az_calls().len(), 1);
}

#[test]
fn an_interrupted_rollback_is_recorded_interrupted_and_resumes() {
    let p = project();
    let first = two_deployments(&p);
    p.az_rules(
        json!([{"args": ["containerapp", "update"], "sleep": 30, "stdout": "{}", "pass": false}]),
    );
    let child = p.spawn(&["rollback", "--auto-approve"]);
    let logs = p.path().join(".stepwise/logs");
    assert!(
        wait_for(Duration::from_secs(20), || support::walk(&logs).iter().any(
            |f| f.ends_with("app.log")
                && std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("api@sha256:aaa")
        )),
        "the rollback never started"
    );
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(p.status("app"), "interrupted");
    assert_eq!(
        p.state()["steps"]["app"]["outputs"]["image"],
        "api@sha256:bbb"
    );
    // Run again: the same target, the app rolls back.
    p.az_rules(json!([]));
    p.clear_calls();
    p.run(&["rollback", "--auto-approve"])
        .assert_code(0)
        .assert_contains(&format!("Rollback to run {first}"));
    assert_eq!(p.status("app"), "rolled back");
    assert_eq!(p.az_calls().len(), 1);
}

/// The app's step gains a `verify()` that checks the image it deployed.
fn with_verify(p: &Project) {
    let text = p.read("steps/01_app.rhai");
    p.step("01_app.rhai", &format!("{text}{VERIFY}"));
}

const VERIFY: &str = r#"fn verify() {
    let want = previous_outputs().image;
    let got = az(["containerapp", "show", "--name", "api"]);
    if got.image != want { [`api runs ${got.image}, not ${want}`] } else { [] }
}
"#;

#[test]
fn verify_after_a_rollback_checks_against_the_target() {
    let p = project();
    two_deployments(&p);
    with_verify(&p);
    // verify() runs after each step (deployment.verify_after_run, on by default). The fake
    // answers `show` with the image the rollback set: verify passes against A.
    p.az_rules(
        json!([{"args": ["containerapp", "show"], "stdout": "{\"image\": \"api@sha256:aaa\"}"}]),
    );
    p.run(&["rollback", "--auto-approve"]).assert_code(0);
    assert_eq!(p.status("app"), "rolled back");
    // Had it still run B, the check fails the step.
    let p = project();
    two_deployments(&p);
    with_verify(&p);
    p.az_rules(
        json!([{"args": ["containerapp", "show"], "stdout": "{\"image\": \"api@sha256:bbb\"}"}]),
    );
    p.run(&["rollback", "--auto-approve"])
        .assert_code(1)
        .assert_contains("api runs api@sha256:bbb, not api@sha256:aaa");
}

#[test]
fn rollback_on_blob_state_reads_the_blob_history_and_writes_the_blob() {
    let az = support::Azurite::start();
    let mut p = project();
    let loc = az.new_location();
    p.on_blob(&az, &loc);
    let first = two_deployments(&p);
    assert!(!p.exists(".stepwise/state.json"));
    p.run(&["rollback", "--auto-approve"])
        .assert_code(0)
        .assert_contains(&format!("Rollback to run {first}"));
    assert_eq!(p.az_calls().len(), 1);
    assert_eq!(p.status("app"), "rolled back");
    assert!(
        !p.exists(".stepwise/state.json"),
        "the state stays in the blob"
    );
    p.run(&["state", "history"])
        .assert_code(0)
        .assert_contains(&format!("(rollback to {first})"));
}
