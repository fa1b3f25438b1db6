//! Team state on Azure Blob Storage, against a real Azurite server: locking that never gets
//! stuck, conditional writes, history, rollback, push/pull, and clear errors.

mod support;
use serde_json::json;
use std::time::Duration;
use support::{step, wait_for, Azurite, Project};

fn project(azurite: &Azurite) -> (Project, String) {
    let mut p = Project::new();
    let loc = azurite.new_location();
    p.on_blob(azurite, &loc);
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#))
        .file("data.txt", "payload\n")
        .step(
            "02_b.rhai",
            &step(
                r#"needs: ["a"], config: ["x"], files: ["data.txt"]"#,
                r#"az(["b"]);"#,
            ),
        )
        .config("x: 1\nadvanced:\n  retry_delay: 0\n");
    (p, loc)
}

/// A project whose one step sleeps in az for `secs`.
fn slow_project(azurite: &Azurite, loc: &str, secs: f64) -> Project {
    let mut p = Project::new();
    p.on_blob(azurite, loc);
    p.az_rules(json!([{"args": ["slow"], "sleep": secs}]))
        .step("01_slow.rhai", &step("", r#"az(["slow"]);"#));
    p
}

#[test]
fn deploys_on_blob_state_and_keeps_nothing_but_caches_and_logs_locally() {
    let az = Azurite::start();
    let (p, _) = project(&az);
    let r = p.deploy(&[]);
    r.assert_code(0).assert_contains("created container");
    assert_eq!(r.ran(), ["a", "b"]);
    assert_eq!(p.status("b"), "completed");
    assert!(!p.exists(".stepwise/state.json"), "state must not be local");
    assert!(
        p.exists(".stepwise/hashcache"),
        "the hash cache stays local"
    );
    p.clear_calls();
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    p.config("x: 2\nadvanced:\n  retry_delay: 0\n");
    assert_eq!(p.deploy(&[]).ran(), ["b"]);
}

#[test]
fn two_concurrent_runs_one_fails_with_the_holder_then_one_waits_and_nothing_is_lost() {
    let az = Azurite::start();
    let loc = az.new_location();
    let first = slow_project(&az, &loc, 2.0);
    let mut second = Project::new();
    second.on_blob(&az, &loc);
    second.step("01_other.rhai", &step("", r#"az(["other"]);"#));

    let child = first.spawn(&["--auto-approve"]);
    assert!(support::wait_started(&first, "$ az slow"));
    // at once: exit 3 naming the holder
    let r = second.deploy(&[]);
    r.assert_code(3)
        .assert_contains("locked by another run")
        .assert_contains(&format!("pid {}", child.id()));
    // waiting: runs after the first finishes
    let r = second.deploy(&["--lock-timeout", "30s"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["other"]);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    // both runs' steps are in the one state
    let state = second.state();
    assert_eq!(state["steps"]["slow"]["status"], "completed");
    assert_eq!(state["steps"]["other"]["status"], "completed");
}

#[test]
fn a_killed_run_leaves_a_lock_that_expires_and_the_next_run_proceeds() {
    let az = Azurite::start();
    let loc = az.new_location();
    let mut p = slow_project(&az, &loc, 30.0);
    p.env("STEPWISE_LOCK_LIFETIME", "4");
    let mut child = p.spawn(&["--auto-approve"]);
    assert!(support::wait_started(&p, "$ az slow"));
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    // held (not yet expired): refused at once
    p.az_rules(json!([]));
    let r = p.deploy(&[]);
    r.assert_code(3).assert_contains("expires in");
    // within the lifetime it expires; --lock-timeout waits for that
    let r = p.deploy(&["--lock-timeout", "20s"]);
    r.assert_code(0)
        .assert_contains("took over an expired lock");
    assert_eq!(r.ran(), ["slow"]);
}

#[test]
fn a_write_based_on_a_stale_version_is_rejected_and_overwrites_nothing() {
    let az = Azurite::start();
    let loc = az.new_location();
    // Run A reads the state, then waits in its step.
    let a = slow_project(&az, &loc, 3.0);
    let child = a.spawn(&["--auto-approve"]);
    assert!(support::wait_started(&a, "$ az slow"));
    // Someone forces the lock away and run B writes the state meanwhile.
    let mut b = Project::new();
    b.on_blob(&az, &loc);
    b.step("01_b.rhai", &step("", r#"az(["b"]);"#));
    b.run(&["state", "unlock"])
        .assert_code(3)
        .assert_contains("live run");
    b.run(&["state", "unlock", "--force"]).assert_code(0);
    b.deploy(&[]).assert_code(0);
    // A's write is refused: it does not overwrite B's state.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0));
    assert!(stderr.contains("was changed by another run"), "{stderr}");
    let state = b.state();
    assert_eq!(state["steps"]["b"]["status"], "completed");
    assert!(state["steps"].get("slow").is_none());
}

#[test]
fn history_and_rollback() {
    let az = Azurite::start();
    let (p, _) = project(&az);
    p.deploy(&[]).assert_code(0);
    let first: serde_json::Value =
        serde_json::from_str(&p.run(&["state", "history", "--output", "json"]).stdout).unwrap();
    // one version per step written, newest first
    assert_eq!(first.as_array().unwrap().len(), 2);
    assert_eq!(first[0]["steps_changed"], json!(["b"]));
    let before_b = first[1]["id"].as_str().unwrap().to_string();
    let r = p.run(&["state", "history"]);
    r.assert_code(0).assert_contains(&before_b);

    p.run(&["state", "rollback", &before_b])
        .assert_code(0)
        .assert_contains("rolled back");
    assert!(p.state()["steps"].get("b").is_none());
    // the rollback is itself a version
    let after: serde_json::Value =
        serde_json::from_str(&p.run(&["state", "history", "--output", "json"]).stdout).unwrap();
    assert_eq!(after.as_array().unwrap().len(), 3);
    assert!(after[0]["run"]
        .as_str()
        .unwrap()
        .starts_with("rollback-to-"));
    // the next deployment runs what the rolled-back state does not cover
    assert_eq!(p.deploy(&[]).ran(), ["b"]);
    p.run(&["state", "rollback", "nope"]).assert_code(2);
}

#[test]
fn push_and_pull_round_trip_between_local_and_blob() {
    let az = Azurite::start();
    let mut p = Project::new();
    p.local_state();
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#));
    p.deploy(&[]).assert_code(0);
    let loc = az.new_location();
    p.env("AZURE_STORAGE_CONNECTION_STRING", &az.connection_string());
    p.run(&["state", "push", &loc])
        .assert_code(0)
        .assert_contains("copied state (1 steps)");
    // pushing again onto state refuses without --force
    p.run(&["state", "push", &loc])
        .assert_code(2)
        .assert_contains("--force");
    // the blob state serves a deployment: nothing to do
    p.clear_calls();
    p.deploy(&["--state", &loc])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    // pull into a fresh local file
    p.run(&["--state", "pulled.json", "state", "pull", &loc])
        .assert_code(0);
    let pulled: serde_json::Value = serde_json::from_str(&p.read("pulled.json")).unwrap();
    assert_eq!(pulled["steps"]["a"]["status"], "completed");
    assert!(p.az_calls().is_empty());
}

#[test]
fn the_original_tools_blob_settings_keep_working() {
    let az = Azurite::start();
    let mut p = Project::new();
    p.local_state();
    p.env("AZURE_STORAGE_CONNECTION_STRING", &az.connection_string());
    let container = az.new_location().split('/').nth(3).unwrap().to_string();
    p.config(&format!(
        "advanced:\n  state_storage: blob\n  state_blob_account: devstoreaccount1\n  state_blob_container: {container}\n  state_blob_name: legacy.json\n"
    ))
    .step("01_a.rhai", &step("", r#"az(["a"]);"#));
    p.deploy(&[]).assert_code(0);
    assert!(!p.exists(".stepwise/state.json"));
    let loc = format!("az://devstoreaccount1/{container}/legacy.json");
    let r = p.run(&["--state", &loc, "state", "show", "a"]);
    r.assert_code(0).assert_contains("completed");
}

#[test]
fn wrong_credentials_and_a_container_that_cannot_be_created_are_clear_errors() {
    let az = Azurite::start();
    let (mut p, _) = project(&az);
    let wrong = az.connection_string().replace(
        support::AZURITE_KEY,
        "d3JvbmcgYnV0IHZhbGlkIGJhc2U2NCBrZXkgZm9yIHRlc3Rz",
    );
    p.env("AZURE_STORAGE_CONNECTION_STRING", &wrong);
    let r = p.deploy(&[]);
    r.assert_code(2).assert_contains("account key was refused");
    assert!(p.az_calls().is_empty());

    // A SAS token without rights to create containers: stepwise says what is missing.
    let sas = format!(
        "BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;SharedAccessSignature=sv=2021-08-06&ss=b&srt=o&sp=r&se=2099-01-01T00:00:00Z&sig=invalid",
        az.port
    );
    p.env("AZURE_STORAGE_CONNECTION_STRING", &sas);
    let r = p.deploy(&[]);
    r.assert_code(2);
    assert!(
        r.stderr.contains("cannot create it") || r.stderr.contains("Storage Blob Data Contributor"),
        "{}",
        r.stderr
    );
}

#[test]
fn local_lock_waits_with_lock_timeout_and_unlock_reports() {
    let mut p = Project::new();
    p.local_state();
    p.az_rules(json!([{"args": ["slow"], "sleep": 1.5}]))
        .step("01_slow.rhai", &step("", r#"az(["slow"]);"#));
    let child = p.spawn(&["--auto-approve"]);
    assert!(wait_for(Duration::from_secs(20), || p
        .read(".stepwise/state.json.lock")
        .contains("\"pid\"")));
    p.run(&["state", "unlock"])
        .assert_code(3)
        .assert_contains("live run");
    let r = p.run(&["state", "reset", "--lock-timeout", "30s"]);
    r.assert_code(0);
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    p.run(&["state", "unlock"]).assert_code(0);
}

#[test]
fn a_live_run_renews_its_lock_beyond_the_lifetime() {
    let az = Azurite::start();
    let loc = az.new_location();
    let mut p = slow_project(&az, &loc, 4.0);
    p.env("STEPWISE_LOCK_LIFETIME", "1.5");
    let child = p.spawn(&["--auto-approve"]);
    assert!(support::wait_started(&p, "$ az slow"));
    // well past one lifetime, the lock is still held (renewed), not expired
    std::thread::sleep(Duration::from_millis(2500));
    let mut other = Project::new();
    other.on_blob(&az, &loc);
    other.env("STEPWISE_LOCK_LIFETIME", "1.5");
    other.step("01_x.rhai", &step("", r#"az(["x"]);"#));
    other
        .deploy(&[])
        .assert_code(3)
        .assert_contains("expires in")
        .assert_not_contains("took over");
    assert_eq!(child.wait_with_output().unwrap().status.code(), Some(0));
    // released at the end: the other run proceeds at once
    other.deploy(&[]).assert_code(0);
}
