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

/// The flags listed under each heading of a `--help` text (`--only`, ...).
fn flags_in_help(help: &str) -> Vec<String> {
    help.lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with("-"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .map(|w| w.trim_end_matches(',').to_string())
        .collect()
}

#[test]
fn each_command_lists_only_its_own_flags_grouped_with_examples() {
    let p = project();
    let help = |args: &[&str]| {
        let mut all = args.to_vec();
        all.push("--help");
        let r = p.run(&all);
        r.assert_code(0);
        r.stdout
    };
    let deploy_only = [
        "--dry-run",
        "--auto-approve",
        "--jobs",
        "--keep-going",
        "--allow-over-budget",
    ];
    let selection = [
        "--only",
        "--force-step",
        "--force-all",
        "--resume",
        "--refresh",
    ];
    // The bare command is the deploy: every flag of the original tool, grouped.
    for args in [&[][..], &["deploy"][..]] {
        let h = help(args);
        let flags = flags_in_help(&h);
        for f in deploy_only.iter().chain(&selection).chain(&[
            "--config",
            "--env",
            "--output",
            "--lock-timeout",
            "--confirm-env",
        ]) {
            assert!(flags.iter().any(|x| x == f), "{args:?} lacks {f}:\n{h}");
        }
        for heading in [
            "Project:",
            "Selection:",
            "Safety:",
            "Execution:",
            "Output:",
            "Examples:",
        ] {
            assert!(h.contains(heading), "{args:?} lacks {heading}:\n{h}");
        }
    }
    // plan: the selection, not the flags of a run.
    let h = help(&["plan"]);
    let flags = flags_in_help(&h);
    for f in selection
        .iter()
        .chain(&["--cost", "--detailed-exitcode", "--env"])
    {
        assert!(flags.iter().any(|x| x == f), "plan lacks {f}:\n{h}");
    }
    for f in deploy_only {
        assert!(!flags.iter().any(|x| x == f), "plan lists {f}:\n{h}");
    }
    assert!(h.contains("Examples:\n  stepwise plan"), "{h}");
    // init, completions, man: no project flags at all; state history, diff, env list: no
    // deploy flags.
    for (cmd, own) in [
        ("init", &[][..]),
        ("man", &[]),
        ("completions", &["--static"]),
    ] {
        let mut flags = flags_in_help(&help(&[cmd]));
        flags.sort();
        let mut expected: Vec<String> = own
            .iter()
            .chain(&["--help"])
            .map(|s| s.to_string())
            .collect();
        expected.sort();
        assert_eq!(flags, expected, "{cmd}");
    }
    for cmd in [
        &["state", "history"][..],
        &["diff"],
        &["env", "list"],
        &["output"],
        &["steps"],
    ] {
        let h = help(cmd);
        let flags = flags_in_help(&h);
        assert!(flags.iter().any(|x| x == "--env"), "{cmd:?}:\n{h}");
        for f in deploy_only.iter().chain(&selection) {
            assert!(!flags.iter().any(|x| x == f), "{cmd:?} lists {f}:\n{h}");
        }
        assert!(h.contains("Examples:"), "{cmd:?}:\n{h}");
    }
}

#[test]
fn a_flag_a_command_does_not_take_is_refused_before_or_after_it() {
    let p = project();
    for args in [
        &["init", "--force-all", "--auto-approve"][..],
        &["--force-all", "init"],
        &["state", "history", "--dry-run"],
        &["--auto-approve", "state", "history"],
        &["plan", "--auto-approve"],
        &["diff", "a", "b", "--jobs", "2"],
    ] {
        let r = p.run(args);
        r.assert_code(2);
        assert!(
            r.stderr.contains("unexpected argument") || r.stderr.contains("is not a flag of"),
            "{args:?}: {}",
            r.stderr
        );
    }
    p.run(&["--force-all", "init"])
        .assert_contains("--force-all is not a flag of `stepwise init`");
    // Nothing was created or deployed by a refused command line.
    assert!(!p.path().join(".stepwise/state.json").exists());
    // A flag given before a command that takes it counts for it, as after it.
    let before = p.run(&["--only", "app", "plan"]);
    let after = p.run(&["plan", "--only", "app"]);
    before.assert_code(0);
    assert_eq!(before.stdout, after.stdout);
    assert!(before.stdout.contains("not selected"), "{}", before.stdout);
    // The original tool's flags keep working on the bare command.
    p.run(&["--dry-run", "--force-all", "--jobs", "1"])
        .assert_code(0);
    assert!(
        !p.path().join(".stepwise/state.json").exists(),
        "a dry run writes no state"
    );
    p.run(&["--auto-approve", "--keep-going", "--only", "app"])
        .assert_code(0);
}

#[test]
fn the_readme_lists_every_exit_code_of_help() {
    let help = Project::new().run(&["--help"]).stdout;
    let codes: Vec<&str> = help
        .split("Exit codes:")
        .nth(1)
        .expect("--help lists the exit codes")
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| w.parse::<i32>().is_ok())
        .collect();
    assert!(codes.len() >= 9, "{codes:?}");
    let readme = std::fs::read_to_string(support::repo().join("README.md")).unwrap();
    let table = &readme[readme
        .find("### Exit codes")
        .expect("README has an exit code table")..];
    for code in codes {
        assert!(
            table.contains(&format!("\n| {code} |")),
            "README's exit codes lack {code}"
        );
    }
}

#[test]
fn env_new_writes_an_overlay_from_the_keys_the_example_overlays_differ_in() {
    let p = Project::new();
    let repo = support::repo();
    std::fs::copy(
        repo.join("config.example.yaml"),
        p.path().join("config.yaml"),
    )
    .unwrap();
    for env in ["dev", "prod"] {
        let name = format!("config.{env}.example.yaml");
        std::fs::copy(repo.join(&name), p.path().join(&name)).unwrap();
    }
    support::copy_dir(&repo.join("steps"), &p.path().join("steps"));
    std::fs::copy(repo.join("prelude.rhai"), p.path().join("prelude.rhai")).unwrap();
    let r = p.run(&["env", "new", "staging"]);
    r.assert_code(0)
        .assert_contains("config.staging.yaml")
        .assert_contains("dev, prod");
    let text = std::fs::read_to_string(p.path().join("config.staging.yaml")).unwrap();
    // Names follow the environment; what differs is shown per example; nothing is active.
    assert!(
        text.contains("#   resource_group: draftgenie-staging-rg"),
        "{text}"
    );
    assert!(text.contains("dev: Basic · prod: Standard"), "{text}");
    assert!(text.contains("dev: not set · prod: true"), "{text}");
    assert!(
        text.lines().all(|l| l.is_empty() || l.starts_with('#')),
        "{text}"
    );
    // The new environment is known and plans as the base config does.
    p.run(&["env", "list"])
        .assert_code(0)
        .assert_contains("staging");
    p.run(&["--env", "staging", "plan"]).assert_code(0);
    // Never overwritten; a bad name is refused before anything is written.
    std::fs::write(
        p.path().join("config.staging.yaml"),
        "azure:\n  resource_group: mine\n",
    )
    .unwrap();
    p.run(&["env", "new", "staging"])
        .assert_code(1)
        .assert_contains("exists");
    assert!(
        std::fs::read_to_string(p.path().join("config.staging.yaml"))
            .unwrap()
            .contains("mine")
    );
    p.run(&["env", "new", "Bad.Name"]).assert_code(2);
    assert!(!p.path().join("config.Bad.Name.yaml").exists());
}
