//! Proof that nothing is lost: bad input, disk trouble, hanging commands, secrets, and the
//! secret digests. (Crashes and concurrency: tests/it/faults.rs.)

use crate::support;
use serde_json::json;
use support::{snapshot, step, Project};

/// A deployed three-step project: `a` (config x), `b` (files data/, needs a), `c` (needs b).
fn deployed() -> Project {
    let mut p = Project::new();
    p.local_state();
    p.config("x: 1\nadvanced:\n  retry_delay: 0\n  retry_attempts: 1\n")
        .file("data/one.txt", "1\n")
        .step("01_a.rhai", &step(r#"config: ["x"]"#, r#"az(["a"]);"#))
        .step(
            "02_b.rhai",
            &step(r#"needs: ["a"], files: ["data/"]"#, r#"az(["b"]);"#),
        )
        .step("03_c.rhai", &step(r#"needs: ["b"]"#, r#"az(["c"]);"#));
    p.deploy(&[]).assert_code(0);
    p
}

type Setup = fn(&Project);

struct Case {
    name: &'static str,
    setup: Setup,
    args: &'static [&'static str],
    code: i32,
    /// Every one of these appears in the output.
    says: &'static [&'static str],
}

const RUN: &[&str] = &["--auto-approve"];

fn script(p: &Project, body: &str) {
    p.step(
        "03_c.rhai",
        &format!("let step = #{{ needs: [\"b\"] }};\nfn run() {{\n{body}\n}}\n"),
    );
}

fn cases() -> Vec<Case> {
    vec![
        // --- config
        Case {
            name: "yaml syntax",
            setup: |p| {
                p.config("x: [1, 2\nadvanced: {}\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:"],
        },
        Case {
            name: "yaml bad indentation",
            setup: |p| {
                p.config("x: 1\n  y: 2\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:2:"],
        },
        Case {
            name: "yaml duplicate key",
            setup: |p| {
                p.config("x: 1\nx: 2\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:", "duplicate"],
        },
        Case {
            name: "config is a list",
            setup: |p| {
                p.config("- a\n- b\n");
            },
            args: RUN,
            code: 2,
            says: &["must be a mapping"],
        },
        Case {
            name: "retry_attempts wrong type",
            setup: |p| {
                p.config("x: 1\nadvanced:\n  retry_attempts: three\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:3:", "retry_attempts"],
        },
        Case {
            name: "dry_run wrong type",
            setup: |p| {
                p.config("x: 1\ndeployment:\n  dry_run: maybe\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:3:", "dry_run"],
        },
        Case {
            name: "operation_timeout wrong type",
            setup: |p| {
                p.config("x: 1\nadvanced:\n  operation_timeout: [1]\n");
            },
            args: RUN,
            code: 2,
            says: &["config.yaml:3:", "operation_timeout"],
        },
        Case {
            name: "state.path wrong type",
            setup: |p| {
                p.config("x: 1\nstate:\n  path: 5\n");
            },
            args: RUN,
            code: 2,
            says: &["state.path must be"],
        },
        Case {
            name: "missing config file",
            setup: |_| {},
            args: &["--auto-approve", "--config", "nope.yaml"],
            code: 2,
            says: &["config file nope.yaml not found"],
        },
        Case {
            name: "files entry uses a missing key",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    &step(r#"needs: ["b"], files: ["${docker.nope}/"]"#, ""),
                );
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:1:", "docker.nope", "is missing"],
        },
        // --- scripts
        Case {
            name: "syntax error",
            setup: |p| script(p, "let x = ;"),
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:3:", "syntax error"],
        },
        Case {
            name: "unknown function",
            setup: |p| script(p, "    frobnicate(1);"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai:3:", "frobnicate"],
        },
        Case {
            name: "wrong argument type",
            setup: |p| script(p, "    az(\"group list\");"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai:3:", "az"],
        },
        Case {
            name: "map as an az argument",
            setup: |p| script(p, "    az([\"a\", #{k: 1}]);"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai:3:", "argument 2 is map"],
        },
        Case {
            name: "runtime error",
            setup: |p| script(p, "    throw \"boom here\";"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai:3:", "boom here"],
        },
        Case {
            name: "runaway loop",
            setup: |p| script(p, "    let i = 0;\n    loop { i += 1; }"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai", "too many operations"],
        },
        Case {
            name: "huge string",
            setup: |p| script(p, "    let s = \"xxxxxxxx\";\n    loop { s += s; }"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai: ", "string too large"],
        },
        Case {
            name: "infinite recursion",
            setup: |p| {
                p.step("03_c.rhai", "let step = #{ needs: [\"b\"] };\nfn f(n) { f(n + 1) }\nfn run() {\n    f(0);\n}\n");
            },
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai", "infinite recursion"],
        },
        Case {
            name: "eval is disabled",
            setup: |p| script(p, "    eval(\"1\");"),
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:3:", "syntax error"],
        },
        Case {
            name: "no module loading",
            setup: |p| script(p, "    import \"os\" as os;"),
            args: RUN,
            code: 1,
            says: &["steps/03_c.rhai", "`import` is not allowed"],
        },
        Case {
            name: "missing config key at run time",
            setup: |p| script(p, "    read_config(\"nope.key\");"),
            args: RUN,
            code: 1,
            says: &[
                "steps/03_c.rhai:3:",
                "config key `nope.key` not found",
                "step `c`",
            ],
        },
        // --- declarations
        Case {
            name: "non-literal declaration",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    "let step = #{ needs: [\"b\"] + [] };\nfn run() {}\n",
                );
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:1:", "must be a literal"],
        },
        Case {
            name: "unknown declaration key",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    "let step = #{ needs: [\"b\"], nedds: [] };\nfn run() {}\n",
                );
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:1:", "nedds"],
        },
        Case {
            name: "declaration value of the wrong type",
            setup: |p| {
                p.step("03_c.rhai", "let step = #{ needs: \"b\" };\nfn run() {}\n");
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:1:", "bad `step` declaration"],
        },
        Case {
            name: "duplicate step name",
            setup: |p| {
                p.step("04_c.rhai", &step("", ""));
            },
            args: RUN,
            code: 2,
            says: &["duplicate step name `c`"],
        },
        Case {
            name: "unknown needs",
            setup: |p| {
                p.step("03_c.rhai", &step(r#"needs: ["zz"]"#, ""));
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:1:", "unknown step `zz`"],
        },
        Case {
            name: "cycle",
            setup: |p| {
                p.step("01_a.rhai", &step(r#"config: ["x"], needs: ["c"]"#, ""));
            },
            args: RUN,
            code: 2,
            says: &["dependency cycle: a -> c -> b -> a"],
        },
        Case {
            name: "needs itself",
            setup: |p| {
                p.step("03_c.rhai", &step(r#"needs: ["c"]"#, ""));
            },
            args: RUN,
            code: 2,
            says: &["needs itself"],
        },
        Case {
            name: "missing run",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    "let step = #{ needs: [\"b\"] };\nfn start() {}\n",
                );
            },
            args: RUN,
            code: 2,
            says: &["missing `fn run()"],
        },
        Case {
            name: "no declaration",
            setup: |p| {
                p.step("03_c.rhai", "fn run() {}\n");
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai: no declaration"],
        },
        Case {
            name: "top-level statement",
            setup: |p| {
                p.step("03_c.rhai", "let step = #{};\naz([\"x\"]);\nfn run() {}\n");
            },
            args: RUN,
            code: 2,
            says: &["steps/03_c.rhai:2:", "top level"],
        },
        Case {
            name: "bad step file name",
            setup: |p| {
                p.step("cleanup.rhai", &step("", ""));
            },
            args: RUN,
            code: 2,
            says: &["cleanup.rhai: a step file must be named NN_name.rhai"],
        },
        // --- state
        Case {
            name: "state truncated",
            setup: |p| {
                let t = p.read(".stepwise/state.json");
                p.file(".stepwise/state.json", &t[..t.len() / 2]);
            },
            args: RUN,
            code: 2,
            says: &[".stepwise/state.json:", "not valid JSON", "left untouched"],
        },
        Case {
            name: "state not JSON",
            setup: |p| {
                p.file(".stepwise/state.json", "steps: yes\n");
            },
            args: RUN,
            code: 2,
            says: &["not valid JSON"],
        },
        Case {
            name: "state wrong types",
            setup: |p| {
                p.file(
                    ".stepwise/state.json",
                    "{\"version\": \"2.0\", \"steps\": []}",
                );
            },
            args: RUN,
            code: 2,
            says: &["wrong shape"],
        },
        Case {
            name: "state unknown status",
            setup: |p| {
                p.file(
                    ".stepwise/state.json",
                    "{\"version\": \"2.0\", \"steps\": {\"a\": {\"status\": \"running\"}}}",
                );
            },
            args: RUN,
            code: 2,
            says: &["wrong shape", "running"],
        },
        Case {
            name: "state from a newer version",
            setup: |p| {
                p.file(
                    ".stepwise/state.json",
                    "{\"version\": \"4.1\", \"steps\": {}}",
                );
            },
            args: RUN,
            code: 2,
            says: &["newer than this stepwise"],
        },
        Case {
            name: "state of the original tool",
            setup: |p| {
                p.file(
                    ".stepwise/state.json",
                    "{\"version\": \"1.0\", \"steps\": {}}",
                );
            },
            args: RUN,
            code: 2,
            says: &["import-legacy"],
        },
        Case {
            name: "state without version",
            setup: |p| {
                p.file(".stepwise/state.json", "{\"steps\": {}}");
            },
            args: RUN,
            code: 2,
            says: &["no `version`"],
        },
        // --- CLI
        Case {
            name: "unknown flag",
            setup: |_| {},
            args: &["--frobnicate"],
            code: 2,
            says: &["--frobnicate"],
        },
        Case {
            name: "unknown --force-step",
            setup: |_| {},
            args: &["--auto-approve", "--force-step", "zz"],
            code: 2,
            says: &["--force-step zz: no such step", "a, b, c"],
        },
        Case {
            name: "unknown --only",
            setup: |_| {},
            args: &["--auto-approve", "--only", "zz"],
            code: 2,
            says: &["--only zz: no such step"],
        },
        Case {
            name: "--jobs not a number",
            setup: |_| {},
            args: &["--jobs", "many"],
            code: 2,
            says: &["--jobs"],
        },
        Case {
            name: "--lock-timeout not a duration",
            setup: |_| {},
            args: &["--lock-timeout", "soon"],
            code: 2,
            says: &["--lock-timeout"],
        },
        Case {
            name: "--with-dependents alone",
            setup: |_| {},
            args: &["--auto-approve", "--with-dependents"],
            code: 2,
            says: &["--with-dependents goes with --force-step"],
        },
        Case {
            name: "rollback to an unknown version",
            setup: |_| {},
            args: &["state", "rollback", "v0"],
            code: 2,
            says: &["no version v0"],
        },
        Case {
            name: "unknown state step",
            setup: |_| {},
            args: &["state", "show", "zz"],
            code: 2,
            says: &["no step `zz` in state"],
        },
        Case {
            name: "bad state location",
            setup: |_| {},
            args: &["--auto-approve", "--state", "s3://bucket/state.json"],
            code: 2,
            says: &["unsupported state location"],
        },
        Case {
            name: "bad blob location",
            setup: |_| {},
            args: &["--auto-approve", "--state", "az://account-only"],
            code: 2,
            says: &["az://ACCOUNT/CONTAINER/PATH"],
        },
        // --- dependency paths
        Case {
            name: "missing declared file",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    &step(r#"needs: ["b"], files: ["docker/Dockerfile.api"]"#, ""),
                );
            },
            args: RUN,
            code: 2,
            says: &["step `c`", "docker/Dockerfile.api does not exist"],
        },
        Case {
            // The cause is kept under the message, not flattened into it.
            name: "a step file that cannot be read",
            setup: |p| {
                std::fs::create_dir(p.path().join("steps/09_z.rhai")).unwrap();
            },
            args: RUN,
            code: 2,
            says: &["cannot read steps/09_z.rhai", "caused by: Is a directory"],
        },
        Case {
            name: "a state file that cannot be read",
            setup: |p| {
                let state = p.path().join(".stepwise/state.json");
                std::fs::remove_file(&state).unwrap();
                std::fs::create_dir(&state).unwrap();
            },
            args: RUN,
            code: 2,
            says: &[
                "cannot read state .stepwise/state.json",
                "caused by: Is a directory",
            ],
        },
        Case {
            name: "symlink loop",
            setup: |p| {
                std::os::unix::fs::symlink("loop-b", p.path().join("loop-a")).unwrap();
                std::os::unix::fs::symlink("loop-a", p.path().join("loop-b")).unwrap();
                p.step("03_c.rhai", &step(r#"needs: ["b"], files: ["loop-a"]"#, ""));
            },
            args: RUN,
            code: 2,
            says: &["step `c`", "loop-a cannot be read"],
        },
        Case {
            name: "a FIFO as a dependency",
            setup: |p| {
                let path = std::ffi::CString::new(p.path().join("pipe").to_str().unwrap()).unwrap();
                unsafe { libc::mkfifo(path.as_ptr(), 0o600) };
                p.step("03_c.rhai", &step(r#"needs: ["b"], files: ["pipe"]"#, ""));
            },
            args: RUN,
            code: 2,
            says: &["step `c`", "pipe is not a regular file"],
        },
        Case {
            name: "path outside the root",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    &step(r#"needs: ["b"], files: ["../secrets.txt"]"#, ""),
                );
            },
            args: RUN,
            code: 2,
            says: &["outside the project root", "allow_paths_outside_root"],
        },
        Case {
            name: "absolute path",
            setup: |p| {
                p.step(
                    "03_c.rhai",
                    &step(r#"needs: ["b"], files: ["/etc/passwd"]"#, ""),
                );
            },
            args: RUN,
            code: 2,
            says: &["outside the project root"],
        },
    ]
}

#[test]
fn malformed_inputs_give_located_errors_documented_codes_and_change_nothing() {
    let cases = cases();
    assert!(cases.len() >= 40, "{} cases", cases.len());
    // Each case has a project of its own: four at a time (they mostly wait on processes).
    let next = std::sync::atomic::AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                if let Some(failure) = check_case(case) {
                    failures.lock().unwrap().push((i, failure));
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    let failures: Vec<String> = failures.into_iter().map(|(_, f)| f).collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

/// Runs one case on a deployed project of its own: what is wrong with its outcome, if anything.
fn check_case(case: &Case) -> Option<String> {
    let p = deployed();
    (case.setup)(&p);
    let before = snapshot(&p);
    let state_before: serde_json::Value =
        serde_json::from_str(&p.read(".stepwise/state.json")).unwrap_or(json!(null));
    p.clear_calls();
    let r = p.run(case.args);
    let all = r.all();
    let mut problems = Vec::new();
    if r.code != case.code {
        problems.push(format!("exit {} (expected {})", r.code, case.code));
    }
    for s in case.says {
        if !all.contains(s) {
            problems.push(format!("does not say {s:?}"));
        }
    }
    if case.code == 2 {
        // Refused before anything ran: every file as it was, no az call.
        let after = snapshot(&p);
        if after != before {
            let changed: Vec<&String> = after
                .keys()
                .chain(before.keys())
                .filter(|k| after.get(*k) != before.get(*k))
                .collect();
            problems.push(format!("files changed: {changed:?}"));
        }
        if !p.az_calls().is_empty() {
            problems.push("az was called".into());
        }
    } else {
        // A step failed: it is recorded failed with the message; nothing else changed.
        let state_after: serde_json::Value =
            serde_json::from_str(&p.read(".stepwise/state.json")).unwrap();
        if state_after["steps"]["c"]["status"] != "failed" {
            problems.push("step c not recorded failed".into());
        }
        for s in ["a", "b"] {
            if state_after["steps"][s] != state_before["steps"][s] {
                problems.push(format!("record of {s} changed"));
            }
        }
    }
    (!problems.is_empty()).then(|| {
        format!(
            "{}: {}\n--- output\n{}",
            case.name,
            problems.join("; "),
            all
        )
    })
}

#[test]
fn config_values_with_shell_metacharacters_reach_az_as_one_argument_each() {
    let p = Project::new();
    let nasty = [
        "a b",
        "$(id)",
        "`id`",
        "x; rm -rf /",
        "a|b",
        "a&&b",
        "'q'",
        "\"dq\"",
        "*",
        "~",
        "a\nb",
        "$HOME",
    ];
    let yaml: String = nasty
        .iter()
        .enumerate()
        .map(|(i, v)| format!("  v{i}: {}\n", serde_json::to_string(v).unwrap()))
        .collect();
    p.config(&format!("vals:\n{yaml}"));
    let body: String = (0..nasty.len())
        .map(|i| format!("\"--v{i}\", read_config(\"vals.v{i}\"), "))
        .collect();
    p.step(
        "01_a.rhai",
        &step(r#"config: ["vals"]"#, &format!("az([{body}]);")),
    );
    p.deploy(&[]).assert_code(0);
    let call = &p.az_calls()[0];
    for (i, v) in nasty.iter().enumerate() {
        assert_eq!(call[2 * i], format!("--v{i}"));
        assert_eq!(call[2 * i + 1], *v, "value {i} arrived changed");
    }
    assert_eq!(call.len(), 2 * nasty.len() + 2);
}

#[test]
fn a_hanging_command_is_killed_at_the_operation_timeout() {
    let p = Project::new();
    p.config("advanced:\n  operation_timeout: 1\n  retry_delay: 0\n")
        .az_rules(json!([{"args": ["hang"], "sleep": 60}]))
        .step("01_a.rhai", &step("", r#"az(["hang"]);"#));
    let t0 = std::time::Instant::now();
    let r = p.deploy(&[]);
    assert!(
        t0.elapsed() < std::time::Duration::from_secs(20),
        "{:?}",
        t0.elapsed()
    );
    r.assert_code(1)
        .assert_contains("az hang --output json: timed out after 1s and was killed");
    assert_eq!(p.status("a"), "failed");
}

#[test]
fn output_that_is_not_json_where_json_is_expected_is_quoted_masked() {
    let p = Project::new();
    p.config("secrets:\n  k: tok-5551234\n")
        .az_rules(json!([{"args": ["acr", "show"], "stdout": "{\"loginServer\": \"x\", \"token\": \"tok-5551234\" <truncated"}]))
        .step("01_a.rhai", &step(r#"config: ["secrets"]"#, r#"let r = az(["acr", "show"]); log(r.loginServer);"#));
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("az acr show --output json printed output that is not valid JSON")
        .assert_contains("\"token\": \"***\" <truncated")
        .assert_not_contains("tok-5551234");
}

#[test]
fn a_read_only_state_folder_gives_a_clear_error_and_keeps_the_previous_state() {
    let p = deployed();
    let before = p.read(".stepwise/state.json");
    p.config("x: 2\nadvanced:\n  retry_delay: 0\n");
    let dir = p.path().join(".stepwise");
    let immutable = support::Immutable::set(&dir);
    let r = p.deploy(&[]);
    drop(immutable);
    r.assert_code(1)
        .assert_contains("step `a` ran but its result could not be recorded")
        .assert_contains("cannot write state .stepwise/state.json (the previous state is intact)");
    assert_eq!(p.read(".stepwise/state.json"), before);
    // once writable again, the next run records it
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.status("a"), "completed");
}

#[test]
fn hitting_the_file_size_limit_while_writing_state_keeps_the_previous_state() {
    let p = deployed();
    let before = p.read(".stepwise/state.json");
    // A step whose outputs make the state larger than the limit.
    p.step(
        "03_c.rhai",
        &step(
            r#"needs: ["b"]"#,
            r#"let s = "0123456789abcdef"; for i in 0..11 { s += s; } output("big", s);"#,
        ),
    );
    let limit_blocks = before.len() / 512 + 8; // well under the new size (32 KiB of output)
    let cmd = format!(
        "ulimit -f {limit_blocks}; exec {} --auto-approve",
        support::bin().display()
    );
    let mut c = p.command(&[]);
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .current_dir(p.path())
        .envs(
            c.get_envs()
                .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned()))),
        )
        .output()
        .unwrap();
    let _ = &mut c;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("could not be recorded"), "{stderr}");
    assert!(stderr.contains("File too large"), "{stderr}");
    assert_eq!(p.read(".stepwise/state.json"), before);
    assert!(
        !support::walk(&p.path().join(".stepwise"))
            .iter()
            .any(|f| f.to_string_lossy().contains(".tmp-")),
        "a temporary file was left behind"
    );
}

#[test]
fn secret_config_values_are_stored_as_salted_slow_hashes() {
    let p = Project::new();
    p.config("secrets:\n  pw: hunter2\nplain: 1\n")
        .step("01_a.rhai", &step(r#"config: ["secrets", "plain"]"#, ""));
    p.deploy(&[]).assert_code(0);
    let state = p.state();
    let digest = state["steps"]["a"]["dependencies"]["config:secrets"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(digest.starts_with("argon2id:"), "{digest}");
    let salt = state["secret_salt"].as_str().unwrap();
    assert_eq!(salt.len(), 32);
    // not the plain SHA-256 of the value
    use sha2::Digest;
    let plain = hex::encode(sha2::Sha256::digest(br#"{"pw":"hunter2"}"#));
    assert!(!p.read(".stepwise/state.json").contains(&plain));
    assert!(!p.read(".stepwise/state.json").contains("hunter2"));
    // the same salt next time: up to date; a changed secret runs again
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    p.config("secrets:\n  pw: hunter3\nplain: 1\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["a"]);
    assert!(r.summary_of("a").contains("config secrets changed"));
    assert!(!state["steps"]["a"]["dependencies"]["config:plain"]
        .as_str()
        .unwrap()
        .starts_with("argon2id:"));
}

#[test]
fn a_state_file_readable_by_others_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let p = deployed();
    std::fs::set_permissions(
        p.path().join(".stepwise/state.json"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("warning: state file .stepwise/state.json is readable or writable by other users (mode 0644)");
}

#[test]
fn paths_outside_the_root_are_allowed_only_when_the_config_says_so() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("shared.txt"), "x").unwrap();
    let p = Project::new();
    let decl = format!(
        "files: [{:?}]",
        outside.path().join("shared.txt").display().to_string()
    );
    p.step("01_a.rhai", &step(&decl, ""));
    p.deploy(&[])
        .assert_code(2)
        .assert_contains("outside the project root");
    p.config("advanced:\n  allow_paths_outside_root: true\n");
    p.deploy(&[]).assert_code(0);
}

#[test]
fn non_utf8_file_names_are_hashed_and_their_changes_seen() {
    use std::os::unix::ffi::OsStrExt;
    let p = Project::new();
    p.file("ctx/ok.txt", "x")
        .step("01_a.rhai", &step(r#"files: ["ctx/"]"#, ""));
    let name = std::ffi::OsStr::from_bytes(b"ctx/caf\xe9.txt");
    std::fs::write(p.path().join(name), "latin-1 name").unwrap();
    p.deploy(&[]).assert_code(0);
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    std::fs::write(p.path().join(name), "changed").unwrap();
    assert_eq!(p.deploy(&[]).ran(), ["a"]);
}

#[test]
fn secrets_audit_no_secret_in_any_byte_stepwise_writes() {
    let mut p = Project::new();
    p.local_state();
    let cfg_secret = "cfg:S3cret/Value+1";
    let env_secret = "env-S3cret&Value 2";
    let fn_secret = "fn-S3cret?Value=3";
    let az_secret = "az-PrimaryKey==4";
    let pw_secret = "pw-AdminPassword-5";
    p.env("DEPLOY_TOKEN", env_secret);
    p.config(&format!(
        "secrets:\n  api_key: {cfg_secret:?}\npostgresql:\n  admin_password: {pw_secret:?}\n  sku: B1\nadvanced:\n  retry_delay: 0\n  retry_attempts: 1\n"
    ))
    .az_rules(json!([
        {"args": ["redis", "list-keys"], "stdout": format!("{{\"primaryKey\": \"{az_secret}\"}}")},
        // a command that echoes encoded forms of a known secret
        {"args": ["echo"], "stdout": format!("{{\"b64\": \"{}\", \"url\": \"{}\", \"plain\": \"{cfg_secret}\"}}", support::b64(cfg_secret), support::url(cfg_secret))},
        {"args": ["fail"], "exit": 2, "stderr": format!("bad value {pw_secret} for --password")}
    ]))
    .step(
        "01_use.rhai",
        &step(
            r#"config: ["secrets", "postgresql"]"#,
            r#"let k = read_config("secrets.api_key");
               let t = env_secret("DEPLOY_TOKEN");
               let f = secret("fn-S3cret?Value=3");
               let keys = az(["redis", "list-keys", "--name", "r"]);
               az(["echo"]);
               log(`using ${k} ${t} ${f} ${keys.primaryKey} ${read_config("postgresql.admin_password")}`);
               az(["keyvault", "secret", "set", "--value", k]);
               az(["keyvault", "secret", "set", "--value", keys.primaryKey]);
               output("host", "redis.example");"#,
        ),
    )
    .step(
        "02_fail.rhai",
        &step(
            r#"needs: ["use"], config: ["postgresql"]"#,
            r#"az(["fail", "--password", read_config("postgresql.admin_password")]);"#,
        ),
    );
    let mut written = String::new();
    for args in [
        vec!["--auto-approve", "--verbose"],
        vec!["--auto-approve", "--output", "json"],
        vec!["--dry-run", "--verbose"],
        vec!["--auto-approve", "--force-all"],
        vec!["plan", "--output", "json"],
        vec!["state", "show"],
        vec!["state", "history"],
        vec!["report"],
        vec!["report", "--plan"],
    ] {
        let r = p.run(&args);
        written.push_str(&r.stdout);
        written.push_str(&r.stderr);
    }
    assert!(written.contains("***"), "nothing was masked?");
    // the run reports are among the files searched: one per deployment that ran (not the dry
    // run), each with its summary, and the plan report
    let files = support::walk(&p.path().join(".stepwise"));
    let reports: Vec<_> = files
        .iter()
        .filter(|f| f.parent().is_some_and(|d| d.ends_with("reports")))
        .collect();
    assert_eq!(reports.len(), 3 * 2 + 1, "{reports:?}");
    assert!(reports.iter().any(|f| {
        let t = std::fs::read_to_string(f).unwrap();
        t.contains("keyvault secret set --value ***") && t.contains("data-status=\"failed\"")
    }));
    for f in files {
        written.push_str(&String::from_utf8_lossy(&std::fs::read(&f).unwrap()));
    }
    // the commands really got the values
    let calls = p.az_calls();
    assert!(calls.iter().any(|c| c.contains(&cfg_secret.to_string())));
    assert!(calls.iter().any(|c| c.contains(&az_secret.to_string())));
    let mut leaks = Vec::new();
    for s in [cfg_secret, env_secret, fn_secret, az_secret, pw_secret] {
        for (form, v) in [
            ("plain", s.to_string()),
            ("base64", support::b64(s)),
            ("url-encoded", support::url(s)),
        ] {
            if written.contains(&v) {
                leaks.push(format!("{s} ({form})"));
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets found in what stepwise wrote: {leaks:?}"
    );
}

// ---- #20: outcomes come from what happened; output is bounded; commands end at exit ----

#[test]
fn a_step_whose_script_catches_the_error_of_its_interrupted_command_is_recorded_interrupted() {
    let p = Project::new();
    p.step(
        "01_a.rhai",
        &step(
            "",
            // the issue's reproduction: the error is caught and ignored
            r#"try { exec(["sleep", "30"]); } catch (e) {}"#,
        ),
    );
    let child = p.spawn_logged(&["--auto-approve"], "run.out");
    let mut child = support::Running(Some(child));
    assert!(support::wait_started(&p, "$ sleep 30"));
    let code = child.0.take().map(|mut c| {
        unsafe { libc::kill(c.id() as i32, libc::SIGINT) };
        c.wait().unwrap().code()
    });
    let out = p.read("run.out");
    assert_eq!(code, Some(Some(130)), "{out}");
    // The script returned normally, but its command never finished: not completed.
    assert_eq!(p.status("a"), "interrupted", "{out}");
    // It runs again next time, and says why.
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("run     a  interrupted")
        .assert_contains("Plan: 1 to run, 0 up to date");
}

#[test]
fn a_command_printing_300_mb_runs_in_bounded_memory_and_comes_back_truncated_with_a_marker() {
    let p = Project::new();
    p.step(
        "01_big.rhai",
        &step(
            "",
            r#"let out = exec(["sh", "-c", "yes 0123456789abcdef0123456789abcdef | head -c 314572800"]);
               if !out.contains("output truncated: 314572800 bytes in all") { throw "no truncation marker"; }
               if !out.starts_with("0123456789abcdef") { throw "the start is missing"; }
               let r = exec_try(["sh", "-c", "yes abc | head -c 3000000"]);
               if !r.truncated || r.code != 0 { throw `exec_try: ${r.code}`; }
               output("returned", out.len());"#,
        ),
    );
    let child = p.spawn_logged(&["--auto-approve"], "run.out");
    let (code, peak) = support::wait_with_peak_rss(child);
    let out = p.read("run.out");
    assert_eq!(code, Some(0), "{out}");
    // Everything went to the step's log, not to memory.
    let log = support::walk(&p.path().join(".stepwise/logs"))
        .into_iter()
        .find(|f| f.ends_with("big.log"))
        .expect("the step's log");
    let size = std::fs::metadata(&log).unwrap().len();
    assert!(size > 314_572_800, "the log has {size} bytes");
    let mib = peak as f64 / (1024.0 * 1024.0);
    eprintln!("300 MB of output: peak RSS of stepwise {mib:.1} MiB");
    assert!(
        mib < 150.0,
        "stepwise's peak memory was {mib:.1} MiB for 300 MB of output"
    );
    let returned = p.state()["steps"]["big"]["outputs"]["returned"]
        .as_i64()
        .unwrap_or(0);
    assert!(
        returned > 500_000 && returned < 1_100_000,
        "returned {returned} characters"
    );
}

#[test]
fn az_json_over_the_limit_fails_naming_the_command_and_the_limit() {
    let p = Project::new();
    p.config("advanced:\n  max_json_output_mb: 1\n  retry_delay: 0\n");
    support::shell_az(
        &p,
        "printf '['\nyes '\"x\",' | head -c 2000000\nprintf '\"y\"]'\n",
    );
    p.step("01_list.rhai", &step("", r#"az(["list"]);"#));
    let r = p.deploy(&[]);
    r.assert_code(1).assert_contains(
        "az list --output json printed 1.9 MiB of output, more than the 1 MiB stepwise reads as JSON (advanced.max_json_output_mb)",
    );
    assert_eq!(p.status("list"), "failed");
}

#[test]
fn exec_try_with_large_stdout_and_stderr_returns_both_truncated_within_the_script_limits() {
    let p = Project::new();
    p.step(
        "01_big.rhai",
        &step(
            "",
            r#"let r = exec_try(["sh", "-c", "yes aaaa | head -c 700000; yes bbbb | head -c 700000 >&2"]);
               if !r.ok || r.code != 0 { throw `exec_try: ${r.code}`; }
               if !r.truncated { throw "not marked truncated"; }
               if !r.stdout.starts_with("aaaa") || !r.stderr.starts_with("bbbb") { throw "the starts are missing"; }
               if !r.stdout.contains("output truncated: 700000 bytes in all") && !r.stderr.contains("output truncated: 700000 bytes in all") { throw "no marker"; }
               output("returned", r.stdout.len() + r.stderr.len());
               output("log", r.log);
               // Small output stays whole and untruncated.
               let s = exec_try(["sh", "-c", "echo out; echo err >&2; exit 3"]);
               if s.truncated || s.stdout != "out" || s.stderr != "err" || s.code != 3 { throw `small: ${s}`; }"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0).assert_not_contains("too large");
    let outputs = &p.state()["steps"]["big"]["outputs"];
    let returned = outputs["returned"].as_i64().unwrap();
    assert!(
        returned > 900_000 && returned <= 1 << 20,
        "returned {returned} bytes"
    );
    // `log` names the step's log, which has all of both streams.
    let log = std::fs::read_to_string(p.path().join(outputs["log"].as_str().unwrap())).unwrap();
    assert_eq!(log.matches("aaaa\n").count(), 700_000 / 5, "all of stdout");
    assert_eq!(log.matches("bbbb\n").count(), 700_000 / 5, "all of stderr");
}

#[test]
fn az_try_of_a_large_answer_keeps_the_json_and_truncates_the_text_where_az_works() {
    let p = Project::new();
    // 1000 resource groups, about 780 KB of JSON: fits a script value, but not twice.
    let groups: Vec<serde_json::Value> = (0..1000)
        .map(|i| {
            json!({
                "id": format!("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-{i:04}"),
                "name": format!("rg-{i:04}"),
                "location": "westeurope",
                "tags": {"description": "d".repeat(600)},
            })
        })
        .collect();
    let text = serde_json::to_string(&groups).unwrap();
    assert!(
        text.len() > 700_000 && text.len() < 900_000,
        "{}",
        text.len()
    );
    p.file("groups.json", &text);
    // 4000 small groups: more map entries than a script value may hold.
    let many: Vec<serde_json::Value> = (0..4000)
        .map(|i| json!({"name": format!("rg-{i}"), "location": "westeurope", "tags": {}}))
        .collect();
    p.file("many.json", &serde_json::to_string(&many).unwrap());
    let dir = p.path().display().to_string();
    support::shell_az(
        &p,
        &format!(
            "case \"$2\" in many) cat '{dir}/many.json' ;; *) cat '{dir}/groups.json' ;; esac\n"
        ),
    );
    p.step(
        "01_groups.rhai",
        &step(
            "",
            r#"let all = az(["group", "list"]);
               if all.len() != 1000 { throw `az: ${all.len()}`; }
               let r = az_try(["group", "list"]);
               if !r.ok || !r.truncated { throw `az_try: ok ${r.ok}, truncated ${r.truncated}`; }
               if type_of(r.json) != "array" || r.json.len() != 1000 { throw "az_try: json not whole"; }
               if !r.stdout.contains("output truncated") || !r.stdout.contains(r.log) { throw "no marker naming the log"; }
               let m = az_try(["group", "many"]);
               if !m.ok || !m.truncated || type_of(m.json) != "()" { throw `many: ${m.truncated} ${type_of(m.json)}`; }
               output("groups", r.json.len());"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(p.state()["steps"]["groups"]["outputs"]["groups"], 1000);

    // az() on the answer too large for a script value fails saying so, and what to do.
    p.step("02_many.rhai", &step("", r#"az(["group", "many"]);"#));
    p.deploy(&[])
        .assert_code(1)
        .assert_contains("az group many --output json answered")
        .assert_contains("too large for a script value (limits: strings 1024 KiB in all, arrays 100000 items, maps 10000 entries")
        .assert_contains("narrow it with --query");
}

#[test]
fn a_command_whose_background_child_holds_its_output_is_done_when_it_exits() {
    let p = Project::new();
    p.config("advanced:\n  operation_timeout: 30\n  retry_delay: 0\n");
    p.step(
        "01_bg.rhai",
        &step(
            "",
            r#"let said = exec(["sh", "-c", "sleep 25 & echo $! > bg.pid; echo started"]);
               output("said", said);"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("were still running")
        .assert_contains("stopped them");
    assert_eq!(p.state()["steps"]["bg"]["outputs"]["said"], "started");
    let pid = support::pids_in(&p.path().join("bg.pid"))[0];
    assert!(
        !support::alive(pid),
        "the background process was left running"
    );
}

// ---- #20: the local lock and the local store ----

#[test]
fn state_unlock_never_removes_a_lock_file_that_a_run_may_be_about_to_lock() {
    use std::os::fd::AsRawFd;
    let mut p = Project::new();
    p.local_state();
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#));
    p.deploy(&[]).assert_code(0); // leaves a stale holder record
    let lock = p.path().join(".stepwise/state.json.lock");
    // A starting run has opened the lock file (this test plays it) ...
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&lock)
        .unwrap();
    // ... when `state unlock` clears the stale record ...
    p.run(&["state", "unlock"])
        .assert_code(0)
        .assert_contains("stale");
    // ... and then locks what it opened.
    assert_eq!(
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    // That lock is the lock: another run is refused, not given a fresh file of its own.
    p.deploy(&["--force-all"])
        .assert_code(3)
        .assert_contains("locked by another run");
    assert!(p.az_calls().len() == 1, "the step ran under a held lock");
}

#[test]
fn a_local_run_whose_lock_file_is_removed_with_unlock_force_stops_with_exit_4() {
    let mut p = Project::new();
    p.local_state();
    support::span_az(&p);
    let spans = p.path().join("spans").display().to_string();
    p.env("SPANS", &spans)
        .env("TAG", "A")
        .env("SLEEP", "20")
        .step("01_work.rhai", &step("", r#"az(["work"]);"#));
    let child = p.spawn_logged(&["--auto-approve"], "run.out");
    let mut child = support::Running(Some(child));
    assert!(support::wait_for(
        std::time::Duration::from_secs(20),
        || { support::span(&p, "A", "start").is_some() }
    ));
    p.run(&["state", "unlock", "--force"])
        .assert_code(0)
        .assert_contains("removed the lock");
    let code = child.0.take().unwrap().wait().unwrap().code();
    let out = p.read("run.out");
    assert_eq!(code, Some(4), "{out}");
    assert!(out.contains("no longer holds the lock"), "{out}");
    assert!(
        support::span(&p, "A", "stop").is_some(),
        "its command was not stopped"
    );
    assert!(support::span(&p, "A", "end").is_none());
    assert_eq!(p.status("work"), "interrupted");
    // a new run proceeds
    p.env("SLEEP", "0");
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.status("work"), "completed");
}

#[test]
fn a_local_save_never_overwrites_a_state_version_it_did_not_read() {
    let mut p = Project::new();
    p.local_state();
    p.az_rules(json!([{"args": ["slow"], "sleep": 2.0}]))
        .step("01_first.rhai", &step("", r#"az(["first"]);"#));
    p.deploy(&[]).assert_code(0);
    p.step("02_slow.rhai", &step("", r#"az(["slow"]);"#));
    let child = p.spawn_logged(&["--auto-approve"], "run.out");
    let mut child = support::Running(Some(child));
    assert!(support::wait_started(&p, "$ az slow"));
    // Someone else writes the state meanwhile (by hand, or a run after a forced unlock).
    let path = p.path().join(".stepwise/state.json");
    let mut theirs: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    theirs["written_by_someone_else"] = json!(true);
    let tmp = p.path().join(".stepwise/theirs.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(&theirs).unwrap()).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    let code = child.0.take().unwrap().wait().unwrap().code();
    let out = p.read("run.out");
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("was changed by another run"), "{out}");
    let now: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(now["written_by_someone_else"], true, "overwritten: {now}");
}
