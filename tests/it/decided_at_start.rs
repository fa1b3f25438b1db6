//! Fingerprints taken when a step starts: files an earlier step of the same deployment writes
//! are hashed after it ran, so a step that uses them is decided on what it will really deploy.

use crate::support;
use serde_json::Value;
use support::{step, Project};

/// `gen` writes out/artifact.txt from config app.v (with a script, argv only); `use` needs
/// `gen` and declares `decl`.
fn generated(decl: &str) -> Project {
    let p = Project::new();
    p.config("app:\n  v: one\nadvanced:\n  retry_delay: 0\n");
    p.step(
        "01_gen.rhai",
        &step(
            r#"config: ["app.v"]"#,
            r#"exec(["sh", "-c", "mkdir -p out && printf '%s' \"$1\" > out/artifact.txt", "sh", read_config("app.v")]);"#,
        ),
    )
    .step(
        "02_use.rhai",
        &step(
            &format!(r#"needs: ["gen"], files: ["{decl}"]"#),
            r#"az(["use", exec(["cat", "out/artifact.txt"])]);"#,
        ),
    );
    p
}

#[test]
fn a_file_written_by_an_earlier_step_reruns_its_user_in_the_same_deployment() {
    for decl in ["out/artifact*.txt", "out/artifact.txt", "out/"] {
        let p = generated(decl);
        // The first deployment: `out/artifact.txt` does not exist yet, `gen` creates it.
        let r = p.deploy(&[]);
        r.assert_code(0);
        assert_eq!(r.ran(), ["gen", "use"], "{decl}\n{}", r.stdout);
        p.run(&["plan"])
            .assert_contains("Plan: 0 to run, 2 up to date");
        // A change of gen's input: gen writes a new artifact, `use` deploys it now.
        p.config("app:\n  v: two\nadvanced:\n  retry_delay: 0\n");
        p.clear_calls();
        let r = p.deploy(&[]);
        r.assert_code(0);
        assert_eq!(r.ran(), ["gen", "use"], "{decl}\n{}", r.stdout);
        let why = r.summary_of("use");
        assert!(
            why.contains("changed") && why.contains("out/"),
            "{decl}: the reason names the file: {why}"
        );
        assert_eq!(p.az_calls(), [["use", "two", "--output", "json"]]);
        // Recorded with the fingerprint taken when it started: nothing left to do.
        p.run(&["plan"])
            .assert_contains("Plan: 0 to run, 2 up to date");
        // gen runs again with the same output: `use` is checked when it starts, and skipped.
        p.run(&["--auto-approve", "--force-step", "gen"])
            .assert_code(0)
            .assert_contains("use skipped: up to date");
    }
}

#[test]
fn a_missing_declared_file_is_pending_when_an_earlier_step_may_create_it_and_an_error_otherwise() {
    let p = generated("out/artifact.txt");
    p.deploy(&[]).assert_code(0);
    // The artifact is gone and gen runs again: `use` is decided when it starts.
    std::fs::remove_dir_all(p.path().join("out")).unwrap();
    p.config("app:\n  v: three\nadvanced:\n  retry_delay: 0\n");
    let r = p.run(&["plan", "--output", "json"]);
    r.assert_code(0);
    let doc: Value = serde_json::from_str(&r.stdout).unwrap();
    let use_ = &doc["steps"][1];
    assert_eq!(use_["decision"], "pending", "{doc}");
    assert_eq!(use_["waits_on"], serde_json::json!(["gen"]));
    assert!(use_["reasons"][0].as_str().unwrap().contains(
        "declared out/artifact.txt does not exist yet: decided when it starts, after gen"
    ));
    p.deploy(&[]).assert_code(0);
    // Nothing runs before `use` that could create it: a located error, nothing runs.
    std::fs::remove_dir_all(p.path().join("out")).unwrap();
    p.clear_calls();
    p.run(&["plan"]).assert_code(2).assert_contains(
        "step `use` (steps/02_use.rhai:1): declared file out/artifact.txt does not exist",
    );
    p.deploy(&[]).assert_code(2);
    assert!(p.az_calls().is_empty());
}
