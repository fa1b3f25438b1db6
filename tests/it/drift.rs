//! Drift: `fn verify()` in steps, `--refresh` (read-only checks against the stateful fake az
//! before deciding), the read-only rule, a failed check, the per-refresh read cache, and
//! verify after run.

use crate::support;
use serde_json::{json, Value};
use support::{step, Project};

/// Two resource groups made by two steps with a `verify()` each, a step `app` that needs `g1`
/// (no verify), all against the fake az's resource model in azure.json.
fn project() -> Project {
    let mut p = Project::new();
    let azure = p.path().join("azure.json").display().to_string();
    p.env("FAKE_AZ_STATE", &azure);
    let group_step = |name: &str| {
        format!(
            "let step = #{{ config: [] }};\n\
             fn run() {{ az([\"group\", \"create\", \"--name\", \"{name}\", \"--location\", \"westeurope\"]); }}\n\
             fn verify() {{\n\
                 let r = az([\"group\", \"exists\", \"--name\", \"{name}\"]);\n\
                 if r == true {{ () }} else {{ \"resource group {name} not found\" }}\n\
             }}\n"
        )
    };
    p.step("01_g1.rhai", &group_step("rg-one"))
        .step("02_g2.rhai", &group_step("rg-two"))
        .step(
            "03_app.rhai",
            &step(
                r#"needs: ["g1"]"#,
                r#"az(["group", "show", "--name", "rg-one"]);"#,
            ),
        );
    p
}

/// Removes a resource from the fake az's model, as someone would in the portal.
fn delete_behind_our_back(p: &Project, key: &str) {
    let mut azure: Value = serde_json::from_str(&p.read("azure.json")).unwrap();
    assert!(
        azure["resources"]
            .as_object_mut()
            .unwrap()
            .remove(key)
            .is_some(),
        "no {key} in the fake's model"
    );
    p.file("azure.json", &azure.to_string());
}

#[test]
fn refresh_finds_what_was_deleted_behind_stepwise_and_repairs_only_that() {
    let p = project();
    p.deploy(&[]).assert_code(0);
    delete_behind_our_back(&p, "group||rg-two");

    // Without --refresh nothing is called and nothing is noticed.
    p.clear_calls();
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
    assert!(p.az_calls().is_empty());

    let r = p.run(&["plan", "--refresh"]);
    r.assert_code(0)
        .assert_contains("run     g2   drift: resource group rg-two not found")
        .assert_contains("skip    g1   up to date")
        .assert_contains("Not checked by --refresh (no verify()): app")
        .assert_contains("Plan: 1 to run, 2 up to date");
    // Only reads were sent.
    for c in p.az_calls() {
        assert_eq!(c[..2], ["group", "exists"], "{c:?}");
    }

    let j = p.run(&["plan", "--refresh", "--output", "json"]);
    let doc: Value = serde_json::from_str(&j.stdout).unwrap();
    let by = |n: &str| {
        doc["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by("g2")["drift"],
        json!(["resource group rg-two not found"])
    );
    assert_eq!(by("g2")["refreshed"], true);
    assert_eq!(by("g1")["refreshed"], true);
    assert_eq!(by("g1")["drift"], json!([]));
    assert_eq!(by("app")["refreshed"], false);

    p.clear_calls();
    let r = p.deploy(&["--refresh"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["g2"]);
    assert!(r
        .summary_of("g2")
        .contains("drift: resource group rg-two not found"));
    assert!(p
        .az_calls()
        .iter()
        .any(|c| c[..2] == ["group", "create"] && c[3] == "rg-two"));
    assert!(!p
        .az_calls()
        .iter()
        .any(|c| c[..2] == ["group", "create"] && c[3] == "rg-one"));
    // The last successful refresh is recorded.
    assert!(p.state()["steps"]["g1"]["refreshed_at"].is_string());

    // Repaired: a second refresh finds nothing.
    let r = p.deploy(&["--refresh"]);
    r.assert_code(0).assert_contains("Nothing to do.");
}

#[test]
fn a_mutating_call_inside_verify_is_refused_and_named() {
    let p = project();
    p.deploy(&[]).assert_code(0);
    p.step(
        "02_g2.rhai",
        "let step = #{ config: [] };\n\
         fn run() { az([\"group\", \"create\", \"--name\", \"rg-two\", \"--location\", \"westeurope\"]); }\n\
         fn verify() { az([\"group\", \"delete\", \"--name\", \"rg-two\", \"--yes\"]); }\n",
    );
    // The script changed: g2 runs, and its verify runs after the run.
    let r = p.deploy(&[]);
    r.assert_code(1).assert_contains(
        "step `g2`: verify() may only read: `az group delete --name rg-two --yes --output json` is refused",
    );
    assert_eq!(p.status("g2"), "failed");
    assert!(!p.az_calls().iter().any(|c| c[1] == "delete"));
    // In a refresh: the check fails, nothing runs, exit 1, and it says why.
    p.run(&["--auto-approve", "--no-verify-after-run"])
        .assert_code(0);
    p.clear_calls();
    let r = p.deploy(&["--refresh"]);
    r.assert_code(1)
        .assert_contains("--refresh: 1 check(s) failed, so drift cannot be told; nothing was run")
        .assert_contains("g2: ");
    assert!(
        !p.az_calls().iter().any(|c| c[1] != "exists"),
        "{:?}",
        p.az_calls()
    );
}

#[test]
fn a_failed_check_is_not_drift_the_run_stops_before_anything_runs() {
    let p = project();
    p.deploy(&[]).assert_code(0);
    p.config("app:\n  x: 1\nadvanced:\n  retry_attempts: 2\n  retry_delay: 0\n");
    p.az_rules(json!([
        {"args": ["group", "exists"], "stderr": "ERROR: Please run 'az login' to setup account.", "exit": 1}
    ]));
    p.clear_calls();
    let r = p.deploy(&["--refresh"]);
    r.assert_code(1)
        .assert_contains("check(s) failed")
        .assert_contains("Please run 'az login' to setup account.");
    assert!(r.ran().is_empty());
    assert!(
        p.az_calls().iter().all(|c| c[..2] == ["group", "exists"]),
        "{:?}",
        p.az_calls()
    );
}

#[test]
fn a_repeated_identical_read_is_answered_once_per_refresh() {
    let mut p = Project::new();
    let azure = p.path().join("azure.json").display().to_string();
    p.env("FAKE_AZ_STATE", &azure);
    for (f, n) in [("01_a.rhai", "a"), ("02_b.rhai", "b"), ("03_c.rhai", "c")] {
        p.step(
            f,
            &format!(
                "let step = #{{ }};\nfn run() {{ log(\"{n}\"); }}\n\
                 fn verify() {{ let r = az_try([\"group\", \"show\", \"--name\", \"shared\"]); if r.ok {{ () }} else {{ \"shared group missing\" }} }}\n"
            ),
        );
    }
    p.deploy(&["--no-verify-after-run"]).assert_code(0);
    p.clear_calls();
    let r = p.run(&["plan", "--refresh"]);
    r.assert_code(0)
        .assert_contains("drift: shared group missing")
        .assert_contains("Plan: 3 to run");
    assert_eq!(p.az_calls().len(), 1, "{:?}", p.az_calls());
}

#[test]
fn verify_after_run_fails_a_step_that_did_not_reach_its_promise() {
    let p = Project::new();
    p.step(
        "01_a.rhai",
        "let step = #{ };\nfn run() { az([\"pretend\", \"create\"]); }\n\
         fn verify() { let r = az_try([\"thing\", \"show\"]); if r.ok { () } else { \"thing not found after create\" } }\n",
    )
    .step("02_b.rhai", &step(r#"needs: ["a"]"#, r#"az(["b"]);"#));
    p.az_rules(
        json!([{"args": ["thing", "show"], "stderr": "ERROR: (ResourceNotFound)", "exit": 3}]),
    );
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("verify after run: thing not found after create");
    assert_eq!(r.with_result("failed"), ["a"]);
    assert_eq!(r.with_result("blocked"), ["b"]);
    assert_eq!(p.status("a"), "failed");
    // For emergencies it can be turned off.
    let r = p.deploy(&["--no-verify-after-run"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["a", "b"]);
}

#[test]
fn dry_run_refresh_runs_only_the_checks_and_plain_dry_run_calls_nothing() {
    let p = project();
    p.deploy(&[]).assert_code(0);
    delete_behind_our_back(&p, "group||rg-one");
    p.clear_calls();
    p.run(&["--dry-run"])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    let r = p.run(&["--dry-run", "--refresh"]);
    r.assert_code(0)
        .assert_contains("drift: resource group rg-one not found")
        .assert_contains("would run");
    assert!(
        p.az_calls().iter().all(|c| c[..2] == ["group", "exists"]),
        "{:?}",
        p.az_calls()
    );
    // The config setting turns refresh on as well.
    p.config("deployment:\n  refresh: true\nadvanced:\n  retry_delay: 0\n");
    p.run(&["plan"])
        .assert_contains("run     g1   drift: resource group rg-one not found");
}
