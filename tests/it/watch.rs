//! Watch mode, and rebuilding only the image that changed.

use crate::support;
use serde_json::json;
use std::time::Duration;
use support::{step, wait_for, Project, Running};

const OUT: &str = "watch.out";
const LIMIT: Duration = Duration::from_secs(30);

/// Two images from one shared context (each Dockerfile copies its own service), a config
/// step and a step on a data file.
fn project() -> Project {
    let p = Project::new();
    p.config("app:\n  sku: small\nother:\n  x: 1\nadvanced:\n  retry_delay: 0\n")
        .file("ctx/docker/Dockerfile.api", "FROM x\nCOPY services/api/ /app\n")
        .file("ctx/docker/Dockerfile.web", "FROM x\nCOPY services/web/ /app\n")
        .file("ctx/services/api/main.py", "print('api')\n")
        .file("ctx/services/web/index.js", "console.log('web')\n")
        .file("data/input.txt", "one\n")
        .step(
            "01_images.rhai",
            &step(
                r#"files: ["ctx/"]"#,
                r#"let specs = [];
                   for svc in ["api", "web"] {
                       specs.push(#{ dockerfile: `ctx/docker/Dockerfile.${svc}`, context: "ctx", tag: `reg/${svc}:1`, push: true });
                   }
                   docker_build(specs);"#,
            ),
        )
        .step("02_sku.rhai", &step(r#"config: ["app.sku"]"#, r#"az(["sku", "set", read_config("app.sku")]);"#))
        .step("03_data.rhai", &step(r#"files: ["data/"]"#, r#"az(["data", "sync"]);"#));
    p
}

fn cycles(p: &Project) -> usize {
    p.read(OUT).matches("[watch] waiting for changes").count()
}

/// Starts watch and waits for the first cycle to end.
fn start(p: &Project, args: &[&str]) -> Running {
    let mut all = vec!["watch"];
    all.extend_from_slice(args);
    let child = Running(Some(p.spawn_logged(&all, OUT)));
    assert!(
        wait_for(LIMIT, || cycles(p) >= 1),
        "first cycle:\n{}",
        p.read(OUT)
    );
    child
}

/// Makes a change and waits for the cycle it causes; returns that cycle's line.
fn change_and_wait<R>(p: &Project, n: usize, change: impl FnOnce() -> R) -> String {
    change();
    assert!(
        wait_for(LIMIT, || cycles(p) > n),
        "no cycle after the change:\n{}",
        p.read(OUT)
    );
    p.read(OUT)
        .lines()
        .rfind(|l| l.starts_with("[watch]") && !l.contains("waiting for changes"))
        .unwrap_or("")
        .to_string()
}

fn stop(child: Running) -> Option<i32> {
    child.signal_and_wait(libc::SIGINT)
}

fn builds(p: &Project) -> Vec<String> {
    p.docker_calls()
        .into_iter()
        .filter(|c| c[0] == "build")
        .map(|c| c[c.iter().position(|a| a == "-t").unwrap() + 1].clone())
        .collect()
}

#[test]
fn editing_a_dockerfile_runs_only_the_image_step_and_builds_only_that_image() {
    let p = project();
    let child = start(&p, &[]);
    assert_eq!(builds(&p).len(), 2, "{}", p.read(OUT));
    p.clear_calls();
    let line = change_and_wait(&p, cycles(&p), || {
        p.file(
            "ctx/docker/Dockerfile.web",
            "FROM x\nCOPY services/web/ /app\nENV A=1\n",
        );
    });
    assert!(line.contains("ctx/docker/Dockerfile.web"), "{line}");
    assert!(line.contains("ran images;"), "{line}");
    assert_eq!(builds(&p), ["reg/web:1"]);
    assert!(p.az_calls().is_empty());
    // a source file of one service: that image only
    p.clear_calls();
    change_and_wait(&p, cycles(&p), || {
        p.file("ctx/services/api/main.py", "print('api 2')\n")
    });
    assert_eq!(builds(&p), ["reg/api:1"]);
    assert!(p.read(OUT).contains("image reg/web:1 is up to date"));
    assert_eq!(stop(child), Some(130));
}

#[test]
fn editing_a_config_key_runs_only_its_steps_and_a_no_op_save_runs_nothing() {
    let p = project();
    let child = start(&p, &[]);
    p.clear_calls();
    let line = change_and_wait(&p, cycles(&p), || {
        p.config("app:\n  sku: large\nother:\n  x: 1\nadvanced:\n  retry_delay: 0\n");
    });
    assert!(line.contains("ran sku;"), "{line}");
    assert_eq!(p.az_calls(), [["sku", "set", "large", "--output", "json"]]);
    assert!(builds(&p).is_empty());
    // the same content saved again
    p.clear_calls();
    let line = change_and_wait(&p, cycles(&p), || p.file("data/input.txt", "one\n"));
    assert!(line.contains("nothing changed, nothing ran"), "{line}");
    assert!(p.az_calls().is_empty());
    assert_eq!(stop(child), Some(130));
}

#[test]
fn atomic_saves_new_deleted_and_renamed_files_are_seen() {
    let p = project();
    let child = start(&p, &[]);
    // editor-style save: write a temporary file, rename it over the target
    p.clear_calls();
    let line = change_and_wait(&p, cycles(&p), || {
        p.file("data/.input.txt.swp", "two\n");
        std::fs::rename(
            p.path().join("data/.input.txt.swp"),
            p.path().join("data/input.txt"),
        )
        .unwrap();
    });
    assert!(line.contains("ran data;"), "{line}");
    let n = p.az_calls().len();
    assert_eq!(n, 1);
    let line = change_and_wait(&p, cycles(&p), || p.file("data/new.txt", "new\n"));
    assert!(line.contains("ran data;"), "{line}");
    let line = change_and_wait(&p, cycles(&p), || {
        std::fs::rename(
            p.path().join("data/new.txt"),
            p.path().join("data/renamed.txt"),
        )
        .unwrap()
    });
    assert!(line.contains("ran data;"), "{line}");
    let line = change_and_wait(&p, cycles(&p), || {
        std::fs::remove_file(p.path().join("data/renamed.txt")).unwrap()
    });
    assert!(line.contains("ran data;"), "{line}");
    assert_eq!(p.az_calls().len(), 4);
    assert_eq!(stop(child), Some(130));
}

#[test]
fn a_change_during_a_running_step_is_handled_after_it_not_lost() {
    let p = project();
    p.az_rules(json!([{"args": ["sku"], "sleep": 1.5}]));
    let child = start(&p, &[]);
    let n = cycles(&p);
    p.config("app:\n  sku: large\nother:\n  x: 1\nadvanced:\n  retry_delay: 0\n");
    // while `sku` runs (1.5 s in az), the data file changes
    assert!(wait_for(LIMIT, || p.read(OUT).matches("▶ sku").count() >= 2));
    p.file("data/input.txt", "changed while sku ran\n");
    assert!(wait_for(LIMIT, || cycles(&p) >= n + 2), "{}", p.read(OUT));
    let out = p.read(OUT);
    assert!(out.contains("✓ sku ran"), "{out}");
    // the sku command was not killed, and the data step ran after it
    let sku_done = out.rfind("✓ sku ran").unwrap();
    let data_ran = out.rfind("✓ data ran").expect("data ran");
    assert!(data_ran > sku_done, "{out}");
    assert_eq!(stop(child), Some(130));
}

#[test]
fn a_broken_script_is_reported_and_fixing_it_resumes() {
    let p = project();
    let child = start(&p, &[]);
    let good = p.read("steps/03_data.rhai");
    let n = cycles(&p);
    p.step(
        "03_data.rhai",
        "let step = #{ files: [\"data/\"] };\nfn run() {\n    az([\"data\", \"sync\"]\n}\n",
    );
    assert!(
        wait_for(LIMIT, || p.read(OUT).contains("steps/03_data.rhai:")),
        "{}",
        p.read(OUT)
    );
    assert!(p.read(OUT).contains("fix it and save"));
    p.clear_calls();
    p.step("03_data.rhai", &(good + "// fixed\n"));
    assert!(wait_for(LIMIT, || cycles(&p) > n), "{}", p.read(OUT));
    assert!(wait_for(LIMIT, || !p.az_calls().is_empty()));
    assert_eq!(p.az_calls()[0][..2], ["data", "sync"]);
    assert_eq!(stop(child), Some(130));
}

#[test]
fn a_failed_step_does_not_end_watch() {
    let mut p = project();
    p.env("FAKE_AZ_FAIL_ON", "data sync");
    let child = start(&p, &[]);
    assert!(p.read(OUT).contains("✗ data failed"));
    let line = change_and_wait(&p, cycles(&p), || {
        p.config("app:\n  sku: medium\nother:\n  x: 1\nadvanced:\n  retry_delay: 0\n");
    });
    assert!(line.contains("ran sku;"), "{line}");
    assert!(
        !line.contains("data"),
        "an unchanged failed step waits for an edit: {line}"
    );
    assert_eq!(stop(child), Some(130));
}

#[test]
fn polling_sees_changes_too() {
    let p = project();
    let child = start(&p, &["--poll", "100"]);
    p.clear_calls();
    let line = change_and_wait(&p, cycles(&p), || p.file("data/input.txt", "polled\n"));
    assert!(line.contains("ran data;"), "{line}");
    assert_eq!(stop(child), Some(130));
}

#[test]
fn ignored_files_and_folders_start_no_cycle() {
    let p = project();
    p.file("ctx/.dockerignore", "*.log\n")
        .file("ctx/node_modules/dep/x.js", "1\n");
    let child = start(&p, &[]);
    let n = cycles(&p);
    p.file("ctx/debug.log", "noise\n");
    p.file("ctx/node_modules/dep/x.js", "2\n");
    p.file(".stepwise/scratch", "3\n");
    // a real change afterwards is the next cycle: the ignored ones made none
    let line = change_and_wait(&p, n, || p.file("data/input.txt", "real\n"));
    assert!(line.contains("data/input.txt"), "{line}");
    assert!(
        !line.contains("debug.log") && !line.contains("node_modules"),
        "{line}"
    );
    assert_eq!(cycles(&p), n + 1);
    assert_eq!(stop(child), Some(130));
}

#[test]
fn watch_holds_the_state_lock_while_it_runs_steps_and_ctrl_c_ends_it_with_state_saved() {
    let p = project();
    p.az_rules(json!([{"args": ["sku"], "sleep": 2.0}]));
    let child = Running(Some(p.spawn_logged(&["watch"], OUT)));
    assert!(wait_for(LIMIT, || p.read(OUT).contains("▶ sku")));
    let r = p.deploy(&[]);
    r.assert_code(3).assert_contains("locked by another run");
    assert!(wait_for(LIMIT, || cycles(&p) >= 1), "{}", p.read(OUT));
    // idle: another run may take the lock
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert_eq!(stop(child), Some(130));
    assert_eq!(p.status("sku"), "completed");
}

#[test]
fn a_blocked_step_runs_once_its_blocker_is_fixed_and_pending_steps_are_counted_apart() {
    let p = Project::new();
    let config = |mode: &str, x: u32| {
        format!(
            "a:\n  mode: {mode}\nc:\n  x: {x}\nadvanced:\n  retry_delay: 0\n  retry_attempts: 1\n"
        )
    };
    p.config(&config("bad", 1))
        .az_rules(json!([{"args": ["a", "bad"], "exit": 2, "stderr": "bad mode"}]))
        .step(
            "01_a.rhai",
            &step(
                r#"config: ["a.mode"]"#,
                r#"az(["a", read_config("a.mode")]);"#,
            ),
        )
        .step("02_b.rhai", &step(r#"needs: ["a"]"#, r#"az(["b"]);"#))
        .step("03_c.rhai", &step(r#"config: ["c.x"]"#, r#"az(["c"]);"#));
    let child = start(&p, &[]);
    let first = p.read(OUT);
    assert!(first.contains("✗ a failed"), "{first}");
    assert!(first.contains("b blocked"), "{first}");
    // An unrelated change: `a`, unchanged since it failed, waits for an edit; `b` is still
    // blocked by it; `a` is pending, not skipped.
    let line = change_and_wait(&p, cycles(&p), || p.config(&config("bad", 2)));
    assert!(line.contains("ran c;"), "{line}");
    assert!(line.contains("blocked b"), "{line}");
    assert!(line.contains("0 skipped; 1 pending"), "{line}");
    // `a` fixed: it runs, and so does `b`, which it blocked.
    let line = change_and_wait(&p, cycles(&p), || p.config(&config("good", 2)));
    assert!(line.contains("ran a, b;"), "{line}");
    assert_eq!(stop(child), Some(130));
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
}
