//! Parallel steps along the dependency graph, progress, reports.

use crate::support;
use serde_json::{json, Value};
use std::time::Duration;
use support::{step, wait_for, Project};

/// (start, end) of each recorded fake az call whose argv starts with `first`.
fn spans(p: &Project) -> Vec<(String, f64, f64)> {
    std::fs::read_to_string(p.path().join("az.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["argv"][0].as_str().unwrap().to_string(),
                v["start"].as_f64().unwrap(),
                v["end"].as_f64().unwrap(),
            )
        })
        .collect()
}

fn span_of(p: &Project, name: &str) -> (f64, f64) {
    spans(p)
        .into_iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, s, e)| (s, e))
        .unwrap_or_else(|| panic!("no az call {name}"))
}

/// a, b, c independent (each sleeps `secs` in az), d needs all three.
fn diamond(secs: f64) -> Project {
    let p = Project::new();
    p.az_rules(json!([
        {"args": ["a"], "sleep": secs}, {"args": ["b"], "sleep": secs}, {"args": ["c"], "sleep": secs}
    ]));
    for (f, n) in [("01_a.rhai", "a"), ("02_b.rhai", "b"), ("03_c.rhai", "c")] {
        p.step(f, &step("", &format!("az([\"{n}\"]);")));
    }
    p.step(
        "04_d.rhai",
        &step(r#"needs: ["a", "b", "c"]"#, r#"az(["d"]);"#),
    );
    p
}

#[test]
fn independent_steps_overlap_and_dependents_wait_for_all() {
    let p = diamond(0.6);
    p.deploy(&[]).assert_code(0);
    let (a, b, c, d) = (
        span_of(&p, "a"),
        span_of(&p, "b"),
        span_of(&p, "c"),
        span_of(&p, "d"),
    );
    // all three ran at the same time
    let latest_start = a.0.max(b.0).max(c.0);
    let earliest_end = a.1.min(b.1).min(c.1);
    assert!(
        latest_start < earliest_end,
        "a {a:?} b {b:?} c {c:?} do not overlap"
    );
    // d started after all of them ended
    assert!(d.0 >= a.1.max(b.1).max(c.1), "d {d:?} started too early");
    // every step is in the state, whatever order they finished in
    for s in ["a", "b", "c", "d"] {
        assert_eq!(p.status(s), "completed");
    }
}

#[test]
fn jobs_1_runs_one_step_at_a_time_in_file_order() {
    let p = diamond(0.1);
    p.deploy(&["--jobs", "1"]).assert_code(0);
    let s = spans(&p);
    let names: Vec<&str> = s.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d"]);
    for w in s.windows(2) {
        assert!(w[1].1 >= w[0].2, "{w:?} overlap");
    }
}

#[test]
fn a_failure_blocks_dependents_and_starts_nothing_new() {
    let mut p = Project::new();
    p.env("FAKE_AZ_FAIL_ON", "boom");
    p.step("01_a.rhai", &step("", r#"az(["boom"]);"#))
        .step("02_b.rhai", &step(r#"needs: ["a"]"#, r#"az(["b"]);"#))
        .step("03_c.rhai", &step("", r#"az(["c"]);"#));
    let r = p.deploy(&["--jobs", "1"]);
    r.assert_code(1);
    assert_eq!(r.with_result("failed"), ["a"]);
    assert_eq!(r.with_result("blocked"), ["b", "c"]);
    assert!(
        r.summary_of("b").contains("needs a, which failed"),
        "{}",
        r.stdout
    );
    assert!(r.summary_of("c").contains("an earlier step failed"));
    assert!(p.az_calls().iter().all(|c| c[0] == "boom"));
    // the error, the log's path and its last lines
    r.assert_contains("last ")
        .assert_contains("a.log")
        .assert_contains("| $ az boom");

    // --keep-going runs what does not depend on the failure
    let r = p.deploy(&["--jobs", "1", "--keep-going"]);
    r.assert_code(1);
    assert_eq!(r.ran(), ["c"]);
    assert_eq!(r.with_result("blocked"), ["b"]);
}

#[test]
fn running_steps_finish_and_are_recorded_when_another_fails() {
    let mut p = Project::new();
    p.env("FAKE_AZ_FAIL_ON", "boom");
    p.az_rules(json!([{"args": ["slow"], "sleep": 0.8}]))
        .step("01_slow.rhai", &step("", r#"az(["slow"]);"#))
        .step("02_fail.rhai", &step("", r#"az(["boom"]);"#))
        .step(
            "03_after.rhai",
            &step(r#"needs: ["fail"]"#, r#"az(["after"]);"#),
        );
    let r = p.deploy(&[]);
    r.assert_code(1);
    assert_eq!(p.status("slow"), "completed");
    assert_eq!(p.status("fail"), "failed");
    assert_eq!(r.with_result("blocked"), ["after"]);
}

#[test]
fn interrupt_with_several_steps_running_records_each_interrupted() {
    let p = diamond(30.0);
    let child = p.spawn(&["--auto-approve"]);
    let logs = p.path().join(".stepwise/logs");
    assert!(wait_for(Duration::from_secs(20), || {
        let started = support::walk(&logs)
            .iter()
            .filter(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("$ az")
            })
            .count();
        started == 3
    }));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(130));
    for s in ["a", "b", "c"] {
        assert_eq!(p.status(s), "interrupted", "{s}");
    }
    assert!(
        p.state()["steps"].get("d").is_none(),
        "d must not have started"
    );
}

#[test]
fn output_json_parses_and_matches_the_human_summary() {
    let mut p = diamond(0.0);
    p.env("FAKE_AZ_FAIL_ON", "c");
    let human = p.deploy(&["--keep-going"]);
    p.run(&["state", "reset"]).assert_code(0);
    let r = p.deploy(&["--keep-going", "--output", "json"]);
    r.assert_code(1);
    let doc: Value = serde_json::from_str(&r.stdout).expect("stdout is one JSON document");
    assert_eq!(doc["exit_code"], 1);
    assert_eq!(doc["command"], "deploy");
    let results: Vec<(String, String)> = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().into(),
                s["result"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        results,
        [
            ("a", "ran"),
            ("b", "ran"),
            ("c", "failed"),
            ("d", "blocked")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for (name, result) in &results {
        assert!(
            human.summary_of(name).contains(result.as_str()),
            "{name} {result}"
        );
    }
    assert_eq!(doc["steps"][0]["decision"], "run");
    assert_eq!(doc["steps"][0]["reasons"][0], "never ran");

    let plan = p.run(&["plan", "--output", "json"]);
    let doc: Value = serde_json::from_str(&plan.stdout).unwrap();
    assert_eq!(doc["steps"][2]["name"], "c");
    assert_eq!(doc["steps"][2]["decision"], "run");
    assert_eq!(doc["steps"][2]["reasons"][0], "failed before");
    assert_eq!(doc["steps"][0]["decision"], "skip");
}

#[test]
fn only_restricts_the_run_and_checks_needs_outside_it() {
    let p = diamond(0.0);
    let r = p.deploy(&["--only", "d"]);
    r.assert_code(2).assert_contains("--only d: it needs `a`");
    let r = p.deploy(&["--only", "a"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["a"]);
    p.deploy(&["--only", "b", "--only", "c"]).assert_code(0);
    let r = p.deploy(&["--only", "d"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["d"]);
}

#[test]
fn a_forced_step_does_not_rerun_dependents_unless_asked() {
    let p = diamond(0.0);
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.deploy(&["--force-step", "a"]).ran(), ["a"]);
    assert_eq!(
        p.deploy(&["--force-step", "a", "--with-dependents"]).ran(),
        ["a", "d"]
    );
    p.deploy(&["--with-dependents"]).assert_code(2);
}

#[test]
fn graph_prints_mermaid_and_dot_marking_what_would_run() {
    let p = diamond(0.0);
    p.deploy(&["--only", "a"]).assert_code(0);
    let r = p.run(&["graph"]);
    r.assert_code(0)
        .assert_contains("flowchart TD")
        .assert_contains("a --> d")
        .assert_contains("c --> d")
        .assert_contains("a[\"a<br/>skip\"]")
        .assert_contains("b[\"b<br/>run\"]")
        .assert_contains("class b run");
    let r = p.run(&["graph", "--format", "dot"]);
    r.assert_code(0)
        .assert_contains("digraph stepwise {")
        .assert_contains("\"a\" -> \"d\";")
        .assert_contains("\"b\" [label=\"b\\nrun\", style=filled");
}

#[test]
fn a_long_step_prints_heartbeats_without_a_terminal() {
    let mut p = Project::new();
    p.env("STEPWISE_HEARTBEAT_SECS", "0.3");
    p.az_rules(json!([{"args": ["redis", "create"], "sleep": 1.2}]))
        .step(
            "01_redis.rhai",
            &step("", r#"az(["redis", "create", "--name", "r"]);"#),
        );
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("redis | still running after")
        .assert_contains(": az redis create --name r --output json");
}

// ---- ordering follows the transitive closure of `needs` (skipped steps are transparent) ----

/// `a`; `b` needs `a`; `c` needs `b`. `a` reads `app.a` and sleeps `secs` in az; `c` reads
/// `app.c`. Deployed once, then `app.a` and `app.c` are changed: `a` and `c` run, `b` is up to
/// date.
fn chain_with_skipped_middle(secs: f64) -> Project {
    let p = Project::new();
    p.config("app:\n  a: 1\n  c: 1\nadvanced:\n  retry_attempts: 2\n  retry_delay: 0\n");
    p.step("01_a.rhai", &step(r#"config: ["app.a"]"#, r#"az(["a"]);"#))
        .step("02_b.rhai", &step(r#"needs: ["a"]"#, r#"az(["b"]);"#))
        .step(
            "03_c.rhai",
            &step(r#"needs: ["b"], config: ["app.c"]"#, r#"az(["c"]);"#),
        );
    p.deploy(&[]).assert_code(0);
    p.config("app:\n  a: 2\n  c: 2\nadvanced:\n  retry_attempts: 2\n  retry_delay: 0\n");
    p.az_rules(json!([{"args": ["a"], "sleep": secs}]));
    p.clear_calls();
    p
}

#[test]
fn a_step_waits_for_an_ancestor_that_runs_even_when_the_step_between_is_skipped() {
    for jobs in ["1", "8"] {
        let p = chain_with_skipped_middle(2.0);
        p.run(&["plan"])
            .assert_code(0)
            .assert_contains("Plan: 2 to run, 1 up to date");
        let r = p.deploy(&["--jobs", jobs]);
        r.assert_code(0);
        assert_eq!(r.ran(), ["a", "c"], "jobs {jobs}\n{}", r.stdout);
        assert_eq!(r.with_result("skipped"), ["b"]);
        let (a, c) = (span_of(&p, "a"), span_of(&p, "c"));
        assert!(
            c.0 >= a.1,
            "jobs {jobs}: c {c:?} started before a {a:?} ended\n{}",
            r.stdout
        );
    }
}

#[test]
fn a_diamond_with_skipped_middle_steps_waits_for_the_top() {
    // a; b1 and b2 need a; d needs b1 and b2. a and d change, b1 and b2 are up to date.
    let p = Project::new();
    let cfg = |v: u32| format!("app:\n  a: {v}\n  d: {v}\nadvanced:\n  retry_delay: 0\n");
    p.config(&cfg(1));
    p.step("01_a.rhai", &step(r#"config: ["app.a"]"#, r#"az(["a"]);"#))
        .step("02_b1.rhai", &step(r#"needs: ["a"]"#, r#"az(["b1"]);"#))
        .step("03_b2.rhai", &step(r#"needs: ["a"]"#, r#"az(["b2"]);"#))
        .step(
            "04_d.rhai",
            &step(r#"needs: ["b1", "b2"], config: ["app.d"]"#, r#"az(["d"]);"#),
        );
    p.deploy(&[]).assert_code(0);
    p.config(&cfg(2));
    p.az_rules(json!([{"args": ["a"], "sleep": 1.5}]));
    p.clear_calls();
    let r = p.deploy(&["--jobs", "8"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["a", "d"]);
    let (a, d) = (span_of(&p, "a"), span_of(&p, "d"));
    assert!(d.0 >= a.1, "d {d:?} started before a {a:?} ended");
}

#[test]
fn a_failure_blocks_descendants_through_a_skipped_step_naming_the_ancestor() {
    let p = chain_with_skipped_middle(0.0);
    p.az_rules(json!([{"args": ["a"], "stderr": "ERROR: boom", "exit": 3}]));
    for keep_going in [false, true] {
        let r = if keep_going {
            p.deploy(&["--keep-going"])
        } else {
            p.deploy(&[])
        };
        r.assert_code(1)
            .assert_contains("c blocked: needs a (through b), which failed");
        assert_eq!(r.with_result("failed"), ["a"]);
        assert_eq!(r.with_result("blocked"), ["c"]);
        assert!(
            r.summary_of("c")
                .contains("needs a (through b), which failed"),
            "{}",
            r.stdout
        );
        assert!(!p.az_calls().iter().any(|c| c[0] == "c"), "c must not run");
        // Blocked, never recorded: the next plan still runs it.
        p.run(&["plan"]).assert_contains("run     c");
    }
    // The JSON report gives the same reason.
    let json = p.deploy(&["--output", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    let c = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "c")
        .unwrap()
        .clone();
    assert_eq!(c["result"], "blocked");
    assert_eq!(c["reason"], "needs a (through b), which failed");
}
