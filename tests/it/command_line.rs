//! The command line for pipelines: `stepwise output` (what the last deployment produced) and
//! `plan --detailed-exitcode` (nothing to do / changes / blocked or refused).

use crate::support;
use support::{step, Project};

fn project() -> Project {
    let p = Project::new();
    p.config("name: web\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n")
        .step(
            "01_app.rhai",
            &step(
                r#"config: ["name"]"#,
                r#"az(["create"]); output("url", `https://${read_config("name")}.example`); output("replicas", 2);"#,
            ),
        )
        .step("02_tag.rhai", &step(r#"needs: ["app"]"#, r#"az(["tag"]);"#));
    p
}

#[test]
fn output_prints_what_the_last_deployment_produced() {
    let p = project();
    p.run(&["output"]).assert_code(0); // nothing deployed yet: nothing to print
    p.deploy(&[]).assert_code(0);
    let r = p.run(&["output", "-r", "app.url"]);
    r.assert_code(0);
    assert_eq!(r.stdout, "https://web.example\n");
    assert_eq!(p.run(&["output", "--raw", "app.replicas"]).stdout, "2\n");
    p.run(&["output"])
        .assert_code(0)
        .assert_contains("app.url = https://web.example")
        .assert_contains("app.replicas = 2");
    let doc: serde_json::Value =
        serde_json::from_str(&p.run(&["output", "app", "--output", "json"]).stdout).unwrap();
    assert_eq!(
        doc,
        serde_json::json!({ "url": "https://web.example", "replicas": 2 })
    );
    // Wrong names are located, with a suggestion; --raw needs one value.
    p.run(&["output", "ap.url"])
        .assert_code(2)
        .assert_contains("no outputs of step ap")
        .assert_contains("did you mean `app`");
    p.run(&["output", "app.ur"])
        .assert_code(2)
        .assert_contains("step app has no output ur")
        .assert_contains("its outputs: replicas, url");
    p.run(&["output", "-r", "app"])
        .assert_code(2)
        .assert_contains("--raw prints one value");
}

#[test]
fn plan_detailed_exitcode_tells_nothing_to_do_from_changes_from_blocked() {
    let p = project();
    p.run(&["plan", "--detailed-exitcode"]).assert_code(2);
    p.deploy(&[]).assert_code(0);
    p.run(&["plan", "--detailed-exitcode"])
        .assert_code(0)
        .assert_contains("0 to run");
    p.config("name: shop\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n");
    p.run(&["plan", "--detailed-exitcode", "--output", "json"])
        .assert_code(2);
    // Without the flag, plan's codes stay as they were.
    p.run(&["plan"]).assert_code(0);
    // A plan that cannot be made is 1, not 2 (which means "changes").
    p.config("name: [unclosed\n");
    p.run(&["plan", "--detailed-exitcode"])
        .assert_code(1)
        .assert_contains("config.yaml:");
    // A step that would be blocked is 1: under --resume the changed `app` is pending, and a
    // new step that needs it cannot run.
    p.config("name: shop\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n");
    p.step("03_new.rhai", &step(r#"needs: ["app"]"#, r#"az(["new"]);"#));
    p.run(&["plan", "--detailed-exitcode", "--resume"])
        .assert_code(1)
        .assert_contains("blocked");
}
