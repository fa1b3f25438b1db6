//! `plan` (and `--dry-run`) decide as the deployment does (issue #19, reproduction 6): every
//! combination of `--only`, `--resume` (flag or config), `--force-all`, `--force-step` and
//! `--with-dependents` over a small graph with a failed, an up-to-date and a changed step. Each
//! step `plan` says runs must run, each it says is skipped, pending or blocked must end so, and
//! the exit codes (refusals included) must be the deployment's.

use crate::support;
use serde_json::Value;
use support::{step, Project};

/// `up` (up to date) ← `failed` (failed before), `changed` (its config changed) ← `last`
/// (never ran: blocked by `failed`; needs both).
fn graph() -> Project {
    let mut p = Project::new();
    p.local_state();
    let config = |v: &str| {
        format!("k:\n  up: 1\n  changed: {v}\nadvanced: {{retry_attempts: 1, retry_delay: 0}}\n")
    };
    p.config(&config("1"))
        .step("01_up.rhai", &step(r#"config: ["k.up"]"#, r#"az(["up"]);"#))
        .step(
            "02_failed.rhai",
            &step(r#"needs: ["up"]"#, r#"az(["failing"]);"#),
        )
        .step(
            "03_changed.rhai",
            &step(
                r#"needs: ["up"], config: ["k.changed"]"#,
                r#"az(["changed"]);"#,
            ),
        )
        .step(
            "04_last.rhai",
            &step(r#"needs: ["failed", "changed"]"#, r#"az(["last"]);"#),
        );
    // `failed` fails, so `last` never runs; then `changed`'s config changes
    p.env("FAKE_AZ_FAIL_ON", "failing");
    p.deploy(&[]).assert_code(1);
    p.clear_env();
    p.config(&config("2"));
    p
}

fn json(out: &str) -> Option<Value> {
    serde_json::from_str(out).ok()
}

#[test]
fn plan_and_dry_run_decide_exactly_as_the_deployment_does() {
    let p = graph();
    let state = std::fs::read(p.path().join(".stepwise/state.json")).unwrap();
    let base_config = p.read("config.yaml");
    let onlys: &[&[&str]] = &[
        &[],
        &["failed"],
        &["changed"],
        &["last"],
        &["failed", "last"],
    ];
    let resumes = ["", "--resume", "config"];
    let forces: &[&[&str]] = &[
        &[],
        &["--force-all"],
        &["--force-step", "up"],
        &["--force-step", "changed", "--with-dependents"],
    ];
    let mut combos = 0;
    let mut seen_codes = std::collections::BTreeSet::new();
    let mut seen_decisions = std::collections::BTreeSet::new();
    for only in onlys {
        for resume in resumes {
            for force in forces {
                let mut args: Vec<&str> = Vec::new();
                for o in *only {
                    args.extend(["--only", o]);
                }
                if resume == "--resume" {
                    args.push("--resume");
                }
                args.extend_from_slice(force);
                args.extend(["--output", "json"]);
                p.config(&if resume == "config" {
                    base_config.clone() + "deployment: {resume: true}\n"
                } else {
                    base_config.clone()
                });
                let restore =
                    || std::fs::write(p.path().join(".stepwise/state.json"), &state).unwrap();
                let label = format!("{args:?} (resume: {resume:?})");

                restore();
                let mut plan_args = vec!["plan"];
                plan_args.extend(&args);
                let plan = p.run(&plan_args);
                let mut dry_args = args.clone();
                dry_args.push("--dry-run");
                let dry = p.run(&dry_args);
                let deploy = p.deploy(&args);
                restore();

                assert_eq!(
                    plan.code,
                    deploy.code,
                    "{label}: exit codes\nplan: {}\ndeploy: {}",
                    plan.all(),
                    deploy.all()
                );
                assert_eq!(
                    dry.code,
                    deploy.code,
                    "{label}: dry run's exit code\n{}",
                    dry.all()
                );
                seen_codes.insert(deploy.code);
                combos += 1;
                if deploy.code == 2 {
                    // refused: the same reason, before anything ran
                    assert_eq!(plan.stderr, deploy.stderr, "{label}");
                    assert!(
                        deploy.stderr.contains("--only"),
                        "{label}: {}",
                        deploy.stderr
                    );
                    continue;
                }
                let plan_doc = json(&plan.stdout)
                    .unwrap_or_else(|| panic!("{label}: plan JSON: {}", plan.all()));
                let deploy_doc = json(&deploy.stdout)
                    .unwrap_or_else(|| panic!("{label}: deploy JSON: {}", deploy.all()));
                let dry_doc = json(&dry.stdout)
                    .unwrap_or_else(|| panic!("{label}: dry-run JSON: {}", dry.all()));
                assert_eq!(plan_doc["exit_code"], deploy.code, "{label}");
                for (i, s) in plan_doc["steps"].as_array().unwrap().iter().enumerate() {
                    let name = s["name"].as_str().unwrap();
                    let decision = s["decision"].as_str().unwrap();
                    let expected = match decision {
                        "run" => "ran",
                        "skip" => "skipped",
                        "pending" | "excluded" => "pending",
                        "blocked" => "blocked",
                        other => panic!("{label}: unknown decision {other}"),
                    };
                    seen_decisions.insert(decision.to_string());
                    let got = &deploy_doc["steps"][i];
                    assert_eq!(got["name"], name);
                    assert_eq!(
                        got["result"],
                        expected,
                        "{label}: step {name}: plan said {decision} ({}), the deployment: {}",
                        s["reasons"],
                        deploy.all()
                    );
                    assert_eq!(
                        dry_doc["steps"][i]["result"], expected,
                        "{label}: step {name} in the dry run"
                    );
                    assert_eq!(
                        s["reasons"], got["reasons"],
                        "{label}: step {name}: reasons"
                    );
                }
            }
        }
    }
    assert_eq!(combos, 60);
    // the matrix exercised what it is about
    assert_eq!(seen_codes.into_iter().collect::<Vec<_>>(), [0, 1, 2]);
    for d in ["run", "skip", "pending", "excluded", "blocked"] {
        assert!(seen_decisions.contains(d), "no combination gave {d}");
    }
}

/// The reproductions of #19 by name.
#[test]
fn the_only_error_names_the_real_reason_and_forcing_does_not_make_a_need_stale() {
    let p = graph();
    // `last` needs `failed`, which failed before
    let r = p.run(&["plan", "--only", "last"]);
    r.assert_code(2).assert_contains(
        "--only last: it needs `failed`, which is not selected and not up to date (failed before); add --only failed",
    );
    p.deploy(&["--only", "last"]).assert_code(2);
    // `up` is up to date: forcing all of the selection does not make it "not up to date"
    let r = p.run(&["plan", "--only", "changed", "--force-all"]);
    r.assert_code(0).assert_not_contains("not up to date");
    // --resume: the changed step is pending, so `last` is blocked, in the plan already
    let r = p.run(&["plan", "--resume"]);
    r.assert_code(1)
        .assert_contains("needs changed, which is not up to date and does not run (pending)");
    // graph marks what deploy does, with the config's defaults
    let cfg = p.read("config.yaml") + "deployment: {resume: true}\n";
    p.config(&cfg);
    let g = p.run(&["graph"]);
    g.assert_code(0)
        .assert_contains("changed<br/>pending")
        .assert_contains("last<br/>blocked");
}

#[test]
fn records_of_removed_steps_are_reported_and_the_summary_fits_interrupted() {
    let p = graph();
    std::fs::remove_file(p.path().join("steps/03_changed.rhai")).unwrap();
    let mut s = p.read("steps/04_last.rhai");
    s = s.replace(r#"needs: ["failed", "changed"]"#, r#"needs: ["failed"]"#);
    p.step("04_last.rhai", &s);
    let r = p.run(&["plan"]);
    r.assert_code(0).assert_contains(
        "gone: step changed (steps/03_changed.rhai removed); state reset changed forgets it",
    );
    p.run(&["state", "reset", "changed"]).assert_code(0);
    p.run(&["plan"]).assert_code(0).assert_not_contains("gone:");

    // the RESULT column is wide enough for its longest word: TIME and REASON stay aligned
    p.az_rules(serde_json::json!([{"args": ["up"], "sleep": 30, "stdout": "{}"}]));
    let child = support::Running(Some(
        p.spawn_logged(&["--auto-approve", "--force-all"], "out.txt"),
    ));
    assert!(support::wait_started(&p, "$ az up"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(child.signal_and_wait(libc::SIGINT), Some(130));
    let out = p.read("out.txt");
    let table: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("STEP "))
        .take_while(|l| l.starts_with("  "))
        .collect();
    assert!(table.len() >= 3, "{out}");
    assert!(table.iter().any(|l| l.contains("✗ interrupted")), "{out}");
    let reason_at = table[0]
        .find("REASON")
        .map(|b| table[0][..b].chars().count())
        .unwrap();
    for row in &table[1..] {
        let chars: Vec<char> = row.chars().collect();
        assert!(
            chars.len() > reason_at && chars[reason_at - 1] == ' ' && chars[reason_at] != ' ',
            "REASON column misaligned in {row:?}\n{out}"
        );
    }
}
