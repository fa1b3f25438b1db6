//! Team state on Azure Blob Storage, against a real Azurite server: locking that never gets
//! stuck, conditional writes, history, rollback, push/pull, and clear errors.

use crate::support;
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

/// A blob of `loc`'s container, read or written directly (as another tool, or damage, would).
struct RawBlobs {
    store: object_store::azure::MicrosoftAzure,
    rt: tokio::runtime::Runtime,
}

impl RawBlobs {
    fn new(az: &Azurite, loc: &str) -> RawBlobs {
        let container = loc.split('/').nth(3).unwrap().to_string();
        let store = object_store::azure::MicrosoftAzureBuilder::new()
            .with_account("devstoreaccount1")
            .with_access_key(support::AZURITE_KEY)
            .with_endpoint(format!("http://127.0.0.1:{}/devstoreaccount1", az.port))
            .with_allow_http(true)
            .with_container_name(container)
            .build()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        RawBlobs { store, rt }
    }

    /// The path of an `az://ACCOUNT/CONTAINER/PATH` URL in its container.
    fn path(url: &str) -> object_store::path::Path {
        object_store::path::Path::from(url.splitn(5, '/').nth(4).unwrap())
    }

    fn put(&self, url: &str, bytes: &[u8]) {
        use object_store::ObjectStoreExt;
        self.rt
            .block_on(self.store.put(&Self::path(url), bytes.to_vec().into()))
            .unwrap();
    }

    fn get(&self, url: &str) -> Vec<u8> {
        use object_store::ObjectStoreExt;
        self.rt.block_on(async {
            let got = self.store.get(&Self::path(url)).await.unwrap();
            got.bytes().await.unwrap().to_vec()
        })
    }
}

#[test]
fn rollback_repairs_a_blob_state_that_cannot_be_read_keeping_its_bytes() {
    let az = Azurite::start();
    let (p, loc) = project(&az);
    p.deploy(&[]).assert_code(0);
    let versions: serde_json::Value =
        serde_json::from_str(&p.run(&["state", "history", "--output", "json"]).stdout).unwrap();
    let latest = versions[0]["id"].as_str().unwrap().to_string();
    // Not JSON, not even UTF-8: the backup must hold these very bytes.
    let broken: &[u8] = b"{\"version\": \"3.0\", \xff\xfe";
    let blobs = RawBlobs::new(&az, &loc);
    blobs.put(&loc, broken);
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("state rollback VERSION");
    let r = p.run(&["state", "rollback", &latest]);
    r.assert_code(0)
        .assert_contains(&format!("warning: the current state {loc} cannot be used"))
        .assert_contains(&format!("rolled back to {latest}"));
    let backup = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("state backed up to "))
        .unwrap_or_else(|| panic!("no backup named: {}", r.all()));
    assert!(backup.starts_with(&format!("{loc}.backup-")), "{backup}");
    assert_eq!(blobs.get(backup), broken);
    // The rolled-back state serves the next deployment.
    p.clear_calls();
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    assert_eq!(p.status("b"), "completed");
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
    // Exit 5: the state storage refused access (not "bad usage").
    r.assert_code(5).assert_contains("account key was refused");
    assert!(p.az_calls().is_empty());

    // A SAS token without rights to create containers: stepwise says what is missing.
    let sas = format!(
        "BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;SharedAccessSignature=sv=2021-08-06&ss=b&srt=o&sp=r&se=2099-01-01T00:00:00Z&sig=invalid",
        az.port
    );
    p.env("AZURE_STORAGE_CONNECTION_STRING", &sas);
    let r = p.deploy(&[]);
    r.assert_code(5);
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

// ---- fenced locks (#20): a run that cannot prove it holds its lock stops ----

#[test]
fn a_run_cut_off_from_storage_stops_its_commands_before_another_run_takes_the_lock() {
    let az = Azurite::start();
    support::cut_off_run_stops_before_the_next_run_starts(&az, Duration::from_millis(1500));
}

/// The test itself holds the lock, as a run on a machine whose clock is an hour behind: its
/// record always looks expired, but it renews it every 200 ms.
fn hold_with_a_skewed_clock(
    az: &Azurite,
    loc: &str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    use object_store::ObjectStoreExt;
    let lock = format!("{}.lock", loc.splitn(5, '/').nth(4).unwrap());
    let RawBlobs { store, rt } = RawBlobs::new(az, loc);
    let write = move |seq: u64| {
        let behind = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
        let fmt = |t: time::OffsetDateTime| {
            t.format(&time::format_description::well_known::Rfc3339)
                .unwrap()
        };
        let record = json!({
            "user": "ops", "host": "clock-behind", "pid": 4242,
            "command": "stepwise --auto-approve", "started": fmt(behind),
            "expires": fmt(behind + time::Duration::seconds(2)),
            "lifetime_secs": 2, "lifetime_ms": 2000, "token": "skewed-holder", "seq": seq,
        });
        rt.block_on(store.put(
            &object_store::path::Path::from(lock.as_str()),
            record.to_string().into_bytes().into(),
        ))
        .unwrap();
    };
    write(0);
    std::thread::spawn(move || {
        let mut seq = 1;
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(200));
            write(seq);
            seq += 1;
        }
    })
}

#[test]
fn a_live_lock_whose_record_looks_expired_because_of_clock_skew_is_not_taken_over() {
    let az = Azurite::start();
    let loc = az.new_location();
    let mut p = Project::new();
    p.on_blob(&az, &loc);
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#));
    p.run(&["state", "show"]).assert_code(0); // creates the container
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let holder = hold_with_a_skewed_clock(&az, &loc, stop.clone());
    // Its record says it expired an hour ago; it is watched, found renewed, and left alone.
    let r = p.deploy(&[]);
    r.assert_code(3)
        .assert_contains("locked by another run")
        .assert_contains("renewed while this run watched it")
        .assert_not_contains("took over");
    assert!(
        p.az_calls().is_empty(),
        "the step ran under someone else's lock"
    );
    // `state unlock` (without --force) does not remove it either.
    p.run(&["state", "unlock"])
        .assert_code(3)
        .assert_contains("live run");
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    holder.join().unwrap();
    // Once its holder is gone, the lock is free after one lifetime without renewal.
    let r = p.deploy(&["--lock-timeout", "20s"]);
    r.assert_code(0)
        .assert_contains("took over an expired lock");
    assert_eq!(r.ran(), ["a"]);
}

#[test]
fn a_renewal_whose_answer_was_lost_is_recognised_as_the_runs_own() {
    let az = Azurite::start();
    let loc = az.new_location();
    let p = support::fenced_project(&az, &loc, "3");
    let proxy = support::Proxy::start(az.port);
    p.run(&["state", "show"]).assert_code(0);
    let mut a = support::start_holder(
        &p,
        "8",
        &[(
            "AZURE_STORAGE_CONNECTION_STRING",
            &proxy.connection_string(),
        )],
    );
    // A renewal reaches the storage and succeeds there; its answer is lost. The next attempt,
    // conditional on the version before, is refused: the run must see that the lock still
    // carries its own renewal, not conclude that another run took it.
    proxy.set(support::ProxyMode::LoseNextLockWriteAnswer);
    assert!(wait_for(Duration::from_secs(5), || proxy
        .lost_answers
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
    // Well past a lifetime later the lock is still held and renewed: another run is refused.
    std::thread::sleep(Duration::from_millis(3500));
    let b = p
        .command(&["--auto-approve"])
        .env("TAG", "B")
        .env("SLEEP", "0")
        .output()
        .unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(3), "{b_err}");
    assert!(!b_err.contains("took over"), "{b_err}");
    let out = a.0.take().unwrap().wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "A:\n{a_err}");
    assert!(!a_err.contains("no longer holds"), "{a_err}");
    assert!(!a_err.contains("taken by another run"), "{a_err}");
    assert_eq!(p.status("work"), "completed");
}

#[test]
fn a_run_that_ends_while_a_renewal_answer_is_lost_still_releases_its_lock() {
    let az = Azurite::start();
    let loc = az.new_location();
    let p = support::fenced_project(&az, &loc, "3");
    // The step's command waits for the file GO: the run ends exactly when the test says.
    support::shell_az(
        &p,
        r#"echo "$TAG start $(date +%s.%N)" >> "$SPANS"
while [ ! -f "$GO" ]; do sleep 0.02; done
echo '{}'
"#,
    );
    let go = p.path().join("go");
    let proxy = support::Proxy::start(az.port);
    p.run(&["state", "show"]).assert_code(0);
    let mut a = support::start_holder(
        &p,
        "0",
        &[
            (
                "AZURE_STORAGE_CONNECTION_STRING",
                &proxy.connection_string(),
            ),
            ("GO", go.to_str().unwrap()),
        ],
    );
    // A renewal lands but its answer is lost; while A still waits for it, its step ends and
    // the run releases the lock, conditional on the version before that renewal.
    proxy.set(support::ProxyMode::LoseNextLockWriteAnswer);
    assert!(wait_for(Duration::from_secs(5), || proxy
        .lost_answers
        .load(std::sync::atomic::Ordering::SeqCst)
        == 1));
    std::fs::write(&go, "").unwrap();
    let out = a.0.take().unwrap().wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "A:\n{a_err}");
    // The lock is free at once: the next run does not wait for it to expire.
    let b = p
        .command(&["--auto-approve", "--force-all"])
        .env("TAG", "B")
        .env("GO", go.to_str().unwrap())
        .output()
        .unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    assert_eq!(b.status.code(), Some(0), "B:\n{b_err}");
    assert!(!b_err.contains("took over"), "{b_err}");
}

#[test]
fn state_unlock_removes_a_lock_only_if_it_is_still_the_one_it_inspected() {
    let az = Azurite::start();
    let loc = az.new_location();
    let p = support::fenced_project(&az, &loc, "2");
    p.run(&["state", "show"]).assert_code(0);
    let mut a = support::start_holder(&p, "5", &[]);
    // `state unlock --force` through a slow link: the lock it read is renewed (every 250 ms)
    // before its removal arrives, so it must remove nothing.
    let proxy = support::Proxy::start(az.port);
    proxy.set(support::ProxyMode::DelayRequests(Duration::from_millis(
        1000,
    )));
    let u = p
        .command(&["state", "unlock", "--force"])
        .env("AZURE_STORAGE_CONNECTION_STRING", proxy.connection_string())
        .output()
        .unwrap();
    let u_err = String::from_utf8_lossy(&u.stderr);
    assert_eq!(u.status.code(), Some(3), "{u_err}");
    assert!(
        u_err.contains("changed while this command looked at it"),
        "{u_err}"
    );
    // The holder was not disturbed.
    let out = a.0.take().unwrap().wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "A:\n{a_err}");
    assert_eq!(p.status("work"), "completed");
}

#[test]
fn a_run_whose_lock_is_removed_with_unlock_force_stops_with_exit_4() {
    let az = Azurite::start();
    let loc = az.new_location();
    let p = support::fenced_project(&az, &loc, "2");
    let mut a = support::start_holder(&p, "60", &[]);
    p.run(&["state", "unlock", "--force"])
        .assert_code(0)
        .assert_contains("removed the lock");
    let out = a.0.take().unwrap().wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&out.stderr);
    let a_out = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(4), "A:\n{a_out}\n{a_err}");
    assert!(a_err.contains("no longer holds"), "{a_err}");
    assert!(
        support::span(&p, "A", "stop").is_some(),
        "A's command was not stopped"
    );
    assert!(support::span(&p, "A", "end").is_none());
    // Nobody took the lock: A could still record its step as interrupted.
    assert_eq!(p.status("work"), "interrupted");
}
