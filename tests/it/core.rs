//! The core: steps, change detection, local state, the deploy and plan commands.

use crate::support;
use serde_json::json;
use std::time::Duration;
use support::{step, wait_for, Project};

/// Three steps: `group` (config azure), `build` (files app/), `report` (needs both).
fn three_steps() -> Project {
    let p = Project::new();
    p.config(
        "azure:\n  resource_group: rg-one\n  location: eastus\napp:\n  name: demo\nadvanced:\n  retry_attempts: 2\n  retry_delay: 0\n",
    )
    .file("app/main.py", "print('hi')\n")
    .file("app/lib/util.py", "X = 1\n")
    .step(
        "01_group.rhai",
        &step(
            r#"description: "resource group", config: ["azure"]"#,
            r#"az(["group", "create", "--name", read_config("azure.resource_group"), "--location", read_config("azure.location")]);
               output("name", read_config("azure.resource_group"));"#,
        ),
    )
    .step(
        "02_build.rhai",
        &step(
            r#"description: "build", files: ["app/"], config: ["app.name"]"#,
            r#"az(["acr", "build", "--image", read_config("app.name")]);"#,
        ),
    )
    .step(
        "03_report.rhai",
        &step(
            r#"description: "report", needs: ["group", "build"]"#,
            r#"let g = outputs("group"); az(["tag", "show", "--name", g.name]);"#,
        ),
    );
    p
}

#[test]
fn first_run_runs_all_and_second_run_skips_all_without_calling_az() {
    let p = three_steps();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["group", "build", "report"]);
    assert!(r.summary_of("group").contains("never ran"), "{}", r.stdout);
    assert_eq!(p.az_calls().len(), 3);
    // Outputs pass from one step to another through the state.
    assert_eq!(
        p.az_calls()[2],
        ["tag", "show", "--name", "rg-one", "--output", "json"]
    );
    assert_eq!(p.status("report"), "completed");
    assert_eq!(p.state()["steps"]["group"]["outputs"]["name"], "rg-one");

    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0).assert_contains("Nothing to do.");
    assert!(r.stdout.contains("skip") && r.stdout.contains("up to date"));
    assert!(p.az_calls().is_empty(), "second run called az");
}

#[test]
fn editing_a_file_reruns_exactly_its_step_with_the_reason() {
    let p = three_steps();
    p.deploy(&[]).assert_code(0);
    p.file("app/lib/util.py", "X = 2\n");
    let plan = p.run(&["plan"]);
    plan.assert_code(0)
        .assert_contains("directory app/ changed");
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["build"]);
    assert!(r.summary_of("build").contains("directory app/ changed"));
    assert!(r.summary_of("report").contains("up to date"));
}

#[test]
fn ignored_files_do_not_count() {
    let p = three_steps();
    p.file("app/.dockerignore", "*.log\n");
    p.deploy(&[]).assert_code(0);
    p.file("app/debug.log", "noise\n");
    let r = p.deploy(&[]);
    r.assert_code(0).assert_contains("Nothing to do.");
}

#[test]
fn editing_a_config_key_reruns_only_steps_that_declare_it() {
    let p = three_steps();
    p.deploy(&[]).assert_code(0);
    let cfg = p
        .read("config.yaml")
        .replace("location: eastus", "location: westeurope");
    p.config(&cfg);
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["group"]);
    assert!(
        r.summary_of("group").contains("config azure changed"),
        "{}",
        r.stdout
    );
}

#[test]
fn editing_a_step_script_or_the_prelude_reruns_what_depends_on_it() {
    let p = three_steps();
    p.deploy(&[]).assert_code(0);
    let s = p.read("steps/02_build.rhai") + "// a comment\n";
    p.step("02_build.rhai", &s);
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["build"]);
    assert!(r.summary_of("build").contains("step script changed"));

    p.file("prelude.rhai", "fn helper() { 42 }\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["group", "build", "report"]);
    assert!(
        r.summary_of("report").contains("prelude.rhai changed"),
        "{}",
        r.stdout
    );
}

#[test]
fn prelude_helpers_are_callable_from_steps() {
    let p = Project::new();
    p.file(
        "prelude.rhai",
        "fn rg_args(name) { [\"group\", \"show\", \"--name\", name] }\n",
    )
    .step("01_a.rhai", &step("", r#"az(rg_args("x"));"#));
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.az_calls()[0][..4], ["group", "show", "--name", "x"]);
}

#[test]
fn a_failing_step_exits_1_keeps_earlier_steps_and_is_retried_next_time() {
    let mut p = three_steps();
    p.env("FAKE_AZ_FAIL_ON", "acr build");
    let r = p.deploy(&["--jobs", "1"]);
    r.assert_code(1).assert_contains("acr build");
    assert_eq!(p.status("group"), "completed");
    assert_eq!(p.status("build"), "failed");
    assert!(p.state()["steps"]["build"]["error"]
        .as_str()
        .unwrap()
        .contains("ERROR: (FakeFailure) injected failure for: az acr build"));
    // the error text first, the command after
    let error = p.state()["steps"]["build"]["error"]
        .as_str()
        .unwrap()
        .to_string();
    let reason = error.lines().next().unwrap();
    assert!(reason.contains(": ERROR: (FakeFailure)"), "{reason}");
    assert!(reason.ends_with(", exit 1)"), "{reason}");
    assert_eq!(r.with_result("blocked"), ["report"]);
    // retried: exit 1 is tried retry_attempts (2) times
    let builds = p.az_calls().iter().filter(|c| c[0] == "acr").count();
    assert_eq!(builds, 2);
    assert!(!p.local_files_text().is_empty());

    p.clear_env();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["build", "report"]);
    assert!(r.summary_of("build").contains("failed before"));
}

#[test]
fn force_step_force_all_and_unknown_force_step() {
    let p = three_steps();
    p.deploy(&[]).assert_code(0);
    let r = p.deploy(&["--force-step", "build"]);
    assert_eq!(r.ran(), ["build"]);
    assert!(r.summary_of("build").contains("forced (--force-step)"));
    let r = p.deploy(&["--force-all"]);
    assert_eq!(r.ran(), ["group", "build", "report"]);
    let r = p.deploy(&["--force-step", "nope"]);
    r.assert_code(2)
        .assert_contains("--force-step nope: no such step")
        .assert_contains("group, build, report");
}

#[test]
fn reset_state_keeps_a_backup_and_deploys_from_scratch() {
    let mut p = three_steps();
    p.local_state();
    p.deploy(&[]).assert_code(0);
    let r = p.deploy(&["--reset-state"]);
    r.assert_code(0).assert_contains("state backed up to");
    assert_eq!(r.ran(), ["group", "build", "report"]);
    let backups: Vec<_> = support::walk(&p.path().join(".stepwise"))
        .into_iter()
        .filter(|f| f.to_string_lossy().contains("backup"))
        .collect();
    assert_eq!(backups.len(), 1);
    let old: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&backups[0]).unwrap()).unwrap();
    assert_eq!(old["steps"]["group"]["status"], "completed");
}

#[test]
fn dry_run_prints_commands_runs_nothing_and_writes_no_state() {
    let p = three_steps();
    let r = p.run(&["--dry-run"]);
    r.assert_code(0)
        .assert_contains("would run: az group create --name rg-one --location eastus --output json")
        .assert_contains("Dry run: no command ran and no state was written.");
    assert!(p.az_calls().is_empty());
    assert!(!p.exists(".stepwise/state.json"));
    // from the config, too
    let cfg = p.read("config.yaml") + "deployment:\n  dry_run: true\n";
    p.config(&cfg);
    p.run(&[]).assert_code(0).assert_contains("would run:");
    assert!(p.az_calls().is_empty());
}

#[test]
fn resume_runs_failed_and_new_steps_but_lists_changed_ones_as_pending() {
    let mut p = three_steps();
    p.env("FAKE_AZ_FAIL_ON", "acr build");
    p.deploy(&[]).assert_code(1);
    p.clear_env();
    let cfg = p.read("config.yaml").replace("eastus", "westus");
    p.config(&cfg);
    let r = p.deploy(&["--resume"]);
    // `report` needs `group`, which is pending: it is blocked, and the deployment is not
    // complete (exit 1).
    r.assert_code(1);
    assert!(
        r.summary_of("report").contains("- blocked")
            && r.summary_of("report")
                .contains("needs group, which is not up to date and does not run"),
        "{}",
        r.stdout
    );
    assert_eq!(r.ran(), ["build"]);
    assert!(r.summary_of("group").contains("pending"), "{}", r.stdout);
    assert!(r.summary_of("group").contains("config azure changed"));
    // without --resume it runs
    assert_eq!(p.deploy(&[]).ran(), ["group", "report"]);
}

#[test]
fn without_auto_approve_and_no_terminal_it_refuses_and_names_the_flag() {
    let p = three_steps();
    let r = p.run(&[]);
    r.assert_code(1).assert_contains("--auto-approve");
    assert!(p.az_calls().is_empty());
    // config default
    let cfg = p.read("config.yaml") + "deployment:\n  auto_approve: true\n";
    p.config(&cfg);
    p.run(&[]).assert_code(0);
    // nothing to do: no question, exit 0
    let cfg = p
        .read("config.yaml")
        .replace("auto_approve: true", "auto_approve: false");
    p.config(&cfg);
    p.run(&[]).assert_code(0).assert_contains("Nothing to do.");
}

#[test]
fn verbose_shows_each_command() {
    let p = three_steps();
    p.deploy(&["--verbose"])
        .assert_code(0)
        .assert_contains("$ az group create --name rg-one");
}

#[test]
fn arguments_reach_az_verbatim_without_a_shell() {
    let p = Project::new();
    p.config("odd: \"a b 'c' \\\"d\\\" ; rm -rf / $(touch pwned) `x` | y > z\"\n")
        .step(
            "01_odd.rhai",
            &step(
                r#"config: ["odd"]"#,
                r#"az(["tag", "create", "--value", read_config("odd"), "with space", "semi;colon", "$(echo no)"]);"#,
            ),
        );
    p.deploy(&[]).assert_code(0);
    let call = &p.az_calls()[0];
    assert_eq!(
        call[..6],
        [
            "tag",
            "create",
            "--value",
            "a b 'c' \"d\" ; rm -rf / $(touch pwned) `x` | y > z",
            "with space",
            "semi;colon"
        ]
    );
    assert_eq!(call[6], "$(echo no)");
    assert!(!p.exists("pwned") && !p.exists("z"));
}

#[test]
fn planted_secrets_appear_in_no_output_and_no_local_file() {
    let mut p = Project::new();
    p.env("MY_TOKEN", "env-secret-4711");
    p.config("secrets:\n  api_key: cfg-secret-0815\nadvanced:\n  retry_delay: 0\n")
        .az_rules(json!([{"args": ["redis", "list-keys"], "stdout": "{\"primaryKey\": \"az-secret-9999\"}"}]))
        .step(
            "01_s.rhai",
            &step(
                r#"config: ["secrets"]"#,
                r#"let k = read_config("secrets.api_key");
                   let t = env_secret("MY_TOKEN");
                   let s = secret("fn-secret-1234");
                   let keys = az(["redis", "list-keys"]);
                   let pk = secret(keys.primaryKey);
                   log(`values: ${k} ${t} ${s} ${pk}`);
                   az(["keyvault", "secret", "set", "--value", k]);
                   az(["keyvault", "secret", "set", "--value", pk]);
                   output("safe", "not secret");"#,
            ),
        )
        .step(
            "02_fail.rhai",
            &step(
                r#"needs: ["s"]"#,
                r#"let t = env_secret("MY_TOKEN"); throw `bad thing with ${t} and ${read_config("secrets.api_key")}`;"#,
            ),
        );
    let secrets = [
        "cfg-secret-0815",
        "env-secret-4711",
        "fn-secret-1234",
        "az-secret-9999",
    ];
    for args in [vec!["--verbose"], vec!["--dry-run"]] {
        let r = p.deploy(&args.iter().map(|s| &**s).collect::<Vec<_>>());
        r.assert_contains("***");
        let files = p.local_files_text();
        for s in secrets {
            r.assert_not_contains(s);
            assert!(!files.contains(s), "{s} written under .stepwise");
        }
    }
    assert_eq!(p.status("s"), "completed");
    assert_eq!(p.status("fail"), "failed");
    // az really got the value
    assert!(p
        .az_calls()
        .iter()
        .any(|c| c.contains(&"cfg-secret-0815".to_string())));
}

#[test]
fn output_of_a_secret_is_refused() {
    let p = Project::new();
    p.step(
        "01_s.rhai",
        &step("", r#"let s = secret("abc-secret-77"); output("pw", s);"#),
    );
    let r = p.deploy(&[]);
    r.assert_code(1).assert_contains("contains a secret");
    assert!(!p.read(".stepwise/state.json").contains("abc-secret-77"));
}

#[test]
fn sigint_during_a_step_exits_130_records_interrupted_and_retries_next_time() {
    let p = Project::new();
    p.az_rules(json!([{"args": ["slow"], "sleep": 30, "stdout": "{}"}]))
        .step("01_fast.rhai", &step("", r#"az(["fast"]);"#))
        .step(
            "02_slow.rhai",
            &step(r#"needs: ["fast"]"#, r#"az(["slow"]);"#),
        );
    let child = p.spawn(&["--auto-approve"]);
    let logs = p.path().join(".stepwise/logs");
    assert!(
        wait_for(Duration::from_secs(20), || support::walk(&logs).iter().any(
            |f| f.ends_with("slow.log")
                && std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("$ az slow")
        )),
        "slow step never started"
    );
    std::thread::sleep(Duration::from_millis(200));
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let t0 = std::time::Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "took {:?}",
        t0.elapsed()
    );
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(p.status("fast"), "completed");
    assert_eq!(p.status("slow"), "interrupted");
    // next time: the interrupted step runs again with the reason
    p.az_rules(json!([]));
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["slow"]);
    assert!(r.summary_of("slow").contains("interrupted"));
}

#[test]
fn sigterm_exits_143() {
    let p = Project::new();
    p.az_rules(json!([{"args": ["slow"], "sleep": 30}]))
        .step("01_slow.rhai", &step("", r#"az(["slow"]);"#));
    let child = p.spawn(&["--auto-approve"]);
    let logs = p.path().join(".stepwise/logs");
    assert!(wait_for(Duration::from_secs(20), || support::walk(&logs)
        .iter()
        .any(|f| std::fs::read_to_string(f)
            .unwrap_or_default()
            .contains("$ az slow"))));
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(143));
    assert_eq!(p.status("slow"), "interrupted");
}

#[test]
fn a_second_concurrent_run_exits_3_naming_the_holder() {
    let mut p = Project::new();
    p.local_state();
    p.az_rules(json!([{"args": ["slow"], "sleep": 30}]))
        .step("01_slow.rhai", &step("", r#"az(["slow"]);"#));
    let mut child = p.spawn(&["--auto-approve"]);
    assert!(wait_for(Duration::from_secs(20), || p
        .read(".stepwise/state.json.lock")
        .contains("\"pid\"")));
    let r = p.deploy(&[]);
    r.assert_code(3)
        .assert_contains("locked by another run")
        .assert_contains(&format!("pid {}", child.id()));
    child.kill().unwrap();
    let _ = child.wait();
}

#[test]
fn bad_yaml_is_reported_with_line_and_column() {
    let p = three_steps();
    p.config("azure:\n  resource_group: [unclosed\n  location: x\n");
    let r = p.run(&["plan"]);
    r.assert_code(2).assert_contains("config.yaml:");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("config.yaml:"))
        .unwrap();
    let loc: Vec<&str> = line
        .split("config.yaml:")
        .nth(1)
        .unwrap()
        .split(':')
        .collect();
    assert!(
        loc[0].parse::<u32>().is_ok() && loc[1].parse::<u32>().is_ok(),
        "{line}"
    );
}

#[test]
fn script_syntax_error_names_file_line_and_column() {
    let p = three_steps();
    p.step(
        "02_build.rhai",
        "let step = #{ description: \"x\" };\nfn run() {\n    let x = ;\n}\n",
    );
    let r = p.run(&["plan"]);
    r.assert_code(2).assert_contains("steps/02_build.rhai:3:");
    assert!(r.stderr.contains("syntax error"), "{}", r.stderr);
}

#[test]
fn unknown_config_key_fails_the_step_with_the_key_and_location() {
    let p = Project::new();
    p.step(
        "01_a.rhai",
        "let step = #{};\nfn run() {\n    let v = read_config(\"postgresql.postgres_sku\");\n}\n",
    );
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("steps/01_a.rhai:3:")
        .assert_contains("config key `postgresql.postgres_sku` not found")
        .assert_contains("step `a`");
}

#[test]
fn unknown_needs_and_cycles_are_clear_errors() {
    let p = Project::new();
    p.step("01_a.rhai", &step(r#"needs: ["ghost"]"#, ""));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("steps/01_a.rhai:1: step `a` needs unknown step `ghost`");
    p.step("01_a.rhai", &step(r#"needs: ["b"]"#, ""))
        .step("02_b.rhai", &step(r#"needs: ["c"]"#, ""))
        .step("03_c.rhai", &step(r#"needs: ["a"]"#, ""));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("dependency cycle: a -> b -> c -> a");
}

#[test]
fn bad_declarations_are_located() {
    let p = Project::new();
    p.step(
        "01_a.rhai",
        "let x = 1;\nlet step = #{ description: \"d\", colour: \"red\" };\nfn run() {}\n",
    );
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("steps/01_a.rhai:1:");
    p.step(
        "01_a.rhai",
        "let step = #{ description: \"d\", colour: \"red\" };\nfn run() {}\n",
    );
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("steps/01_a.rhai:1: bad `step` declaration")
        .assert_contains("colour");
    p.step(
        "01_a.rhai",
        "let step = #{ needs: [\"a\"] + [\"b\"] };\nfn run() {}\n",
    );
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("must be a literal");
    p.step("01_a.rhai", "let step = #{};\n");
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("missing `fn run()");
    p.step("01_a.rhai", &step("", ""))
        .step("02_a.rhai", &step("", ""));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("duplicate step name `a`");
}

#[test]
fn host_functions_outside_run_are_errors() {
    let p = Project::new();
    p.file(
        "prelude.rhai",
        "let x = az([\"group\", \"list\"]);\nfn f() {}\n",
    )
    .step("01_a.rhai", &step("", ""));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("prelude.rhai:1:")
        .assert_contains("can only be called while a step's run() executes");
    assert!(p.az_calls().is_empty());
}

#[test]
fn a_corrupt_state_file_stops_the_run_and_is_left_untouched() {
    let mut p = three_steps();
    p.local_state();
    p.file(
        ".stepwise/state.json",
        "{\"version\": \"2.0\", \"steps\": {\"group\": ",
    );
    let before = p.read(".stepwise/state.json");
    let r = p.deploy(&[]);
    r.assert_code(2)
        .assert_contains("state file is not valid JSON");
    assert_eq!(p.read(".stepwise/state.json"), before);
    assert!(p.az_calls().is_empty());
    p.file(
        ".stepwise/state.json",
        "{\"version\": \"9.0\", \"steps\": {}}",
    );
    p.deploy(&[])
        .assert_code(2)
        .assert_contains("newer than this stepwise");
}

#[test]
fn a_runaway_loop_ends_the_step_with_an_error() {
    let p = Project::new();
    p.step("01_loop.rhai", &step("", "let i = 0; loop { i += 1; }"));
    let r = p.deploy(&[]);
    r.assert_code(1).assert_contains("too many operations");
    assert_eq!(p.status("loop"), "failed");
}

#[test]
fn a_missing_declared_file_is_an_error_and_an_empty_glob_a_warning() {
    let p = Project::new();
    p.step(
        "01_a.rhai",
        &step(r#"files: ["docker/Dockerfile.api"]"#, ""),
    );
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("step `a`")
        .assert_contains("docker/Dockerfile.api does not exist");
    p.step("01_a.rhai", &step(r#"files: ["scripts/*.sql"]"#, ""));
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("warning: step `a`: files entry \"scripts/*.sql\" matches no file");
    p.file("scripts/1.sql", "select 1;");
    p.deploy(&[]).assert_code(0);
    p.file("scripts/2.sql", "select 2;");
    p.run(&["plan"])
        .assert_contains("files matching scripts/*.sql changed");
}

#[test]
fn az_try_reports_exit_codes_and_az_failures_are_not_retried_on_usage_errors() {
    let p = Project::new();
    p.az_rules(json!([
        {"args": ["acr", "show"], "exit": 3, "stderr": "(ResourceNotFound) not found"},
        {"args": ["bad"], "exit": 2, "stderr": "unrecognized arguments: --x"}
    ]))
    .step(
        "01_a.rhai",
        &step(
            "",
            r#"let r = az_try(["acr", "show", "--name", "x"]);
                     if r.ok || r.code != 3 { throw "unexpected"; }
                     log(`missing: ${r.stderr}`);
                     az(["bad", "--x"]);"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("missing: (ResourceNotFound) not found")
        .assert_contains("unrecognized arguments: --x");
    assert_eq!(p.az_calls().iter().filter(|c| c[0] == "bad").count(), 1);
}

#[test]
fn state_show_and_reset() {
    let p = three_steps();
    p.deploy(&[]).assert_code(0);
    let r = p.run(&["state", "show", "group"]);
    r.assert_code(0)
        .assert_contains("\"status\": \"completed\"");
    p.run(&["state", "reset", "build"]).assert_code(0);
    let r = p.run(&["plan"]);
    r.assert_contains("never ran");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["build"]);
    p.run(&["state", "reset", "nope"]).assert_code(2);
    p.run(&["state", "reset"]).assert_code(0);
    assert_eq!(p.deploy(&[]).ran().len(), 3);
}

#[test]
fn steps_lists_descriptions_and_dependencies() {
    let p = three_steps();
    let r = p.run(&["steps"]);
    r.assert_code(0)
        .assert_contains("01 group  resource group")
        .assert_contains("needs: group, build")
        .assert_contains("files: app/");
}

#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mut p = three_steps();
    p.local_state();
    p.deploy(&[]).assert_code(0);
    for f in support::walk(&p.path().join(".stepwise")) {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let mode = std::fs::metadata(p.path().join(".stepwise"))
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o700);
}

#[test]
fn rollback_and_reset_repair_a_state_file_that_cannot_be_read_keeping_its_bytes() {
    let mut p = three_steps();
    p.local_state();
    p.deploy(&[]).assert_code(0);
    let history = p.run(&["state", "history", "--output", "json"]);
    history.assert_code(0);
    let versions: serde_json::Value = serde_json::from_str(&history.stdout).unwrap();
    let latest = versions[0]["id"].as_str().unwrap().to_string();
    let broken = "{\n";
    p.file(".stepwise/state.json", broken);
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("state file is not valid JSON")
        .assert_contains("state rollback VERSION");
    let backup_of = |r: &support::Run| -> String {
        r.stdout
            .lines()
            .find_map(|l| l.strip_prefix("state backed up to "))
            .unwrap_or_else(|| panic!("no backup named: {}", r.all()))
            .to_string()
    };
    let r = p.run(&["state", "rollback", &latest]);
    r.assert_code(0)
        .assert_contains("warning: the current state .stepwise/state.json cannot be used")
        .assert_contains("not valid JSON")
        .assert_contains(&format!("rolled back to {latest}"));
    let backup = backup_of(&r);
    assert!(
        backup.starts_with(".stepwise/state.json.backup-"),
        "{backup}"
    );
    assert_eq!(p.read(&backup), broken);
    p.clear_calls();
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    // A wrong version changes nothing, even on a broken state.
    p.file(".stepwise/state.json", broken);
    p.run(&["state", "rollback", "nope"])
        .assert_code(2)
        .assert_contains("no version nope");
    assert_eq!(p.read(".stepwise/state.json"), broken);
    // `state reset` (every step) works on it too, as the error message says.
    let r = p.run(&["state", "reset"]);
    r.assert_code(0).assert_contains("state cleared");
    assert_eq!(p.read(&backup_of(&r)), broken);
    assert_eq!(
        p.deploy(&[]).assert_code(0).ran(),
        ["group", "build", "report"]
    );
}
