//! What a step reads is what it depends on: recorded reads (config, env, outputs), output
//! invalidation with early cutoff, pending decisions, undeclared-read warnings, `check` and
//! `--strict`.

use crate::support;
use serde_json::{json, Value};
use std::time::Duration;
use support::{step, wait_for, Azurite, Project, Running};

fn config(a: u32, b: u32, v: &str, other: u32) -> String {
    format!("app:\n  a: {a}\n  b: {b}\n  v: {v}\n  other: {other}\nadvanced:\n  retry_delay: 0\n")
}

/// `x` declares app.a but also reads app.b.
fn undeclared_config_project() -> Project {
    let p = Project::new();
    p.config(&config(1, 1, "value-1", 1));
    p.step(
        "01_x.rhai",
        &step(
            r#"config: ["app.a"]"#,
            r#"az(["x", read_config("app.a"), read_config("app.b")]);"#,
        ),
    );
    p
}

/// `up` outputs `v` (from app.v) and `w` (fixed); `down` needs `up` and reads `outputs("up").v`.
fn outputs_project() -> Project {
    let p = Project::new();
    p.config(&config(1, 1, "value-1", 1));
    p.step(
        "01_up.rhai",
        &step(
            r#"config: ["app.v", "app.other"]"#,
            r#"az(["up"]); output("v", read_config("app.v")); output("w", "fixed");"#,
        ),
    )
    .step(
        "02_down.rhai",
        &step(
            r#"needs: ["up"]"#,
            r#"let v = outputs("up").v; az(["down", v]);"#,
        ),
    );
    p
}

fn plan_json(p: &Project) -> Value {
    let r = p.run(&["plan", "--output", "json"]);
    r.assert_code(0);
    serde_json::from_str(&r.stdout).expect("plan JSON")
}

fn decision<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("no step {name} in {doc}"))
}

#[test]
fn a_changed_config_key_read_but_not_declared_reruns_the_step() {
    let p = undeclared_config_project();
    let r = p.deploy(&[]);
    r.assert_code(0).assert_contains(
        "step `x` reads config app.b at steps/01_x.rhai:3:32 but does not declare it: add \"app.b\" to `config:`",
    );
    p.run(&["plan"])
        .assert_contains("Plan: 0 to run, 1 up to date");
    p.config(&config(1, 2, "value-1", 1));
    p.run(&["plan"])
        .assert_contains("run     x  config app.b changed (read by the step, not declared)");
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["x"]);
    assert_eq!(p.az_calls(), [["x", "1", "2", "--output", "json"]]);
}

#[test]
fn a_dependent_reruns_when_an_output_it_read_changes_and_is_skipped_when_it_does_not() {
    let p = outputs_project();
    p.deploy(&[]).assert_code(0);
    // Changed outputs: `up` re-runs with v = value-2, so `down` runs after it.
    p.config(&config(1, 1, "value-2", 1));
    p.run(&["plan"])
        .assert_contains("run     up    config app.v changed")
        .assert_contains("maybe   down  runs if outputs of up change")
        .assert_contains("Plan: 1 to run, 0 up to date, 1 pending");
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["up", "down"]);
    assert!(
        r.summary_of("down").contains("output up.v changed"),
        "{}",
        r.stdout
    );
    assert_eq!(p.az_calls()[1], ["down", "value-2", "--output", "json"]);
    // Early cutoff: `up` re-runs (another input changed) with byte-identical outputs.
    p.config(&config(1, 1, "value-2", 2));
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["up"]);
    assert_eq!(r.with_result("skipped"), ["down"]);
    assert!(
        r.summary_of("down").contains("outputs of up unchanged"),
        "{}",
        r.stdout
    );
    assert_eq!(p.az_calls(), [["up", "--output", "json"]]);
    // An output the dependent did not read (w) changing does not re-run it either.
    p.step(
        "01_up.rhai",
        &step(
            r#"config: ["app.v", "app.other"]"#,
            r#"az(["up"]); output("v", read_config("app.v")); output("w", "changed");"#,
        ),
    );
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["up"]);
    assert_eq!(r.with_result("skipped"), ["down"]);
}

#[test]
fn a_changed_environment_variable_reruns_the_step_that_read_it() {
    let mut p = Project::new();
    p.step("01_e.rhai", &step("", r#"az(["e", env("FOO", "unset")]);"#))
        .step(
            "02_d.rhai",
            &step(r#"env: ["BAR"]"#, r#"az(["d", env("BAR", "unset")]);"#),
        );
    p.env("FOO", "1").env("BAR", "1");
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("step `e` reads env FOO at steps/01_e.rhai:")
        .assert_contains("add \"FOO\" to `env:`")
        .assert_not_contains("reads env BAR");
    p.run(&["plan"])
        .assert_contains("Plan: 0 to run, 2 up to date");
    p.clear_env().env("FOO", "2").env("BAR", "1");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["e"]);
    assert!(
        r.summary_of("e").contains("env FOO changed"),
        "{}",
        r.stdout
    );
    // A declared variable changes like a config key; unsetting one is a change too.
    p.clear_env().env("FOO", "2");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["d"]);
    assert!(
        r.summary_of("d").contains("env BAR changed"),
        "{}",
        r.stdout
    );
    // The values are never stored: only slow salted digests.
    let state = p.state().to_string();
    assert!(state.contains("argon2id:"), "{state}");
}

#[test]
fn plan_json_and_dry_run_show_a_step_waiting_on_outputs_as_pending() {
    let p = outputs_project();
    p.deploy(&[]).assert_code(0);
    p.config(&config(1, 1, "value-2", 1));
    let doc = plan_json(&p);
    let down = decision(&doc, "down");
    assert_eq!(down["decision"], "pending");
    assert_eq!(down["waits_on"], json!(["up"]));
    assert_eq!(down["reasons"], json!(["runs if outputs of up change"]));
    assert_eq!(decision(&doc, "up")["decision"], "run");
    p.clear_calls();
    let r = p.run(&["--dry-run"]);
    r.assert_code(0)
        .assert_contains("maybe   down  runs if outputs of up change")
        .assert_contains("down pending: runs if outputs of up change");
    assert_eq!(r.with_result("pending"), ["down"]);
    assert!(p.az_calls().is_empty());
}

#[test]
fn strict_fails_a_step_at_an_undeclared_read_and_keeps_earlier_steps() {
    let p = Project::new();
    p.config(&config(1, 1, "v", 1));
    p.step(
        "01_ok.rhai",
        &step(
            r#"config: ["app.a"]"#,
            r#"az(["ok", read_config("app.a")]);"#,
        ),
    )
    .step(
        "02_bad.rhai",
        &step(
            r#"needs: ["ok"], config: ["app.a"]"#,
            r#"az(["before"]); let b = read_config("app.b"); az(["after", b]);"#,
        ),
    );
    let r = p.deploy(&["--strict"]);
    r.assert_code(1).assert_contains(
        "step `bad` reads config app.b at steps/02_bad.rhai:3:25 but does not declare it: add \"app.b\" to `config:`",
    );
    assert_eq!(p.status("ok"), "completed");
    assert_eq!(p.status("bad"), "failed");
    let calls: Vec<String> = p.az_calls().into_iter().map(|c| c[0].clone()).collect();
    assert_eq!(calls, ["ok", "before"], "the step stops at the read");
    // The config setting does the same.
    p.config(&format!(
        "{}deployment:\n  strict: true\n",
        config(1, 1, "v", 1)
    ));
    p.deploy(&[]).assert_code(1).assert_contains("--strict");
    // Declared, it passes.
    p.step(
        "02_bad.rhai",
        &step(
            r#"needs: ["ok"], config: ["app.a", "app.b"]"#,
            r#"az(["before"]); let b = read_config("app.b"); az(["after", b]);"#,
        ),
    );
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.status("bad"), "completed");
}

#[test]
fn a_secret_read_is_recorded_without_its_value() {
    let mut p = Project::new();
    let secret = "Sup3r-S3cret-Token-value";
    p.config(&format!("app:\n  db_password: {secret}\n"));
    p.step(
        "01_s.rhai",
        &step(
            "",
            r#"let pw = read_config("app.db_password"); let t = env_secret("API_TOKEN"); az(["s", "--x", pw.len().to_string(), t.len().to_string()]);"#,
        ),
    );
    p.env("API_TOKEN", "tok-Value-0815-abcdef");
    p.deploy(&[]).assert_code(0);
    let rec = p.state()["steps"]["s"].clone();
    let reads = &rec["reads"];
    assert!(reads["config"]["app.db_password"]
        .as_str()
        .unwrap()
        .starts_with("argon2id:"));
    assert!(reads["env"]["API_TOKEN"]
        .as_str()
        .unwrap()
        .starts_with("argon2id:"));
    for (name, value) in [("config", secret), ("env", "tok-Value-0815-abcdef")] {
        // Everywhere but the config file the user wrote it in.
        for file in support::walk(p.path()) {
            if file.ends_with("config.yaml") {
                continue;
            }
            let bytes = std::fs::read(&file).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(value),
                "{name} secret found in {}",
                file.display()
            );
        }
    }
    // A change of the secret is still seen.
    p.clear_env().env("API_TOKEN", "tok-Value-0816-abcdef");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["s"]);
    assert!(r.summary_of("s").contains("env API_TOKEN changed"));
}

/// Issue #23, item 5: a value holding a secret anywhere below it (the whole config, a parent
/// key, a list item) is recorded with the salted slow digest, never a plain SHA-256 that the
/// state's readers could test guesses against.
#[test]
fn every_digest_of_a_value_holding_a_secret_is_salted_whole_config_parent_and_list_item() {
    use sha2::Digest;
    let p = Project::new();
    p.config(
        "database:\n  host: db.example\n  password: hunter2-xyz\ndbs:\n  - name: a\n    password: pw-list-1234\n  - name: b\nplain: 1\n",
    );
    p.step("01_all.rhai", &step(r#"config: ["dbs"]"#, ""));
    p.step(
        "02_reads.rhai",
        &step(
            r#"config: ["plain"]"#,
            r#"let all = read_config(""); let db = read_config("database"); let d0 = read_config("dbs.0"); let d1 = read_config("dbs.1"); let ds = read_config("dbs");"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("step `reads` reads the whole config at steps/02_reads.rhai:3:")
        .assert_contains("but does not declare it: declare the keys it uses in `config:` in its declaration (steps/02_reads.rhai:1) and read those instead; reading the whole config is discouraged")
        .assert_not_contains("add \"\" to");
    let state = p.state();
    let salted = |v: &Value| v.as_str().unwrap_or("").starts_with("argon2id:");
    assert!(
        salted(&state["steps"]["all"]["dependencies"]["config:dbs"]),
        "{state}"
    );
    let reads = &state["steps"]["reads"]["reads"]["config"];
    for key in ["", "database", "dbs", "dbs.0"] {
        assert!(salted(&reads[key]), "read {key:?}: {}", reads[key]);
    }
    // Values without a secret keep the fast digest.
    assert!(!salted(&reads["dbs.1"]) && reads["dbs.1"].is_string());
    assert!(!salted(
        &state["steps"]["reads"]["dependencies"]["config:plain"]
    ));
    // No plain SHA-256 of any of them is in the state: a correct guess would match one.
    let whole = json!({
        "database": {"host": "db.example", "password": "hunter2-xyz"},
        "dbs": [{"name": "a", "password": "pw-list-1234"}, {"name": "b"}],
        "plain": 1,
    });
    let text = p.read(".stepwise/state.json");
    for v in [&whole, &whole["database"], &whole["dbs"], &whole["dbs"][0]] {
        let plain = hex::encode(sha2::Sha256::digest(v.to_string().as_bytes()));
        assert!(!text.contains(&plain), "plain SHA-256 of {v} in the state");
    }
    // The salted digests are stable: nothing runs again; a changed secret re-runs the reader.
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    p.config(
        "database:\n  host: db.example\n  password: hunter3-xyz\ndbs:\n  - name: a\n    password: pw-list-1234\n  - name: b\nplain: 1\n",
    );
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["reads"]);
    assert!(
        r.summary_of("reads").contains("the whole config changed"),
        "{}",
        r.all()
    );
    // `check` says the same about the whole-config read.
    p.run(&["check"])
        .assert_code(1)
        .assert_contains("step `reads` reads the whole config without declaring it: declare the keys it uses in `config:` (steps/02_reads.rhai:1) and read those instead");
    // The whole config cannot be declared.
    p.step("01_all.rhai", &step(r#"config: [""]"#, ""));
    p.deploy(&[]).assert_code(2).assert_contains(
        "steps/01_all.rhai:1: config key \"\" (the whole config) cannot be declared: declare the keys the step uses",
    );
}

#[test]
fn state_written_before_reads_were_recorded_loads_without_rerunning_anything() {
    let mut p = Project::new();
    p.local_state();
    let p = p;
    p.config(&config(1, 1, "value-1", 1));
    p.step(
        "01_x.rhai",
        &step(
            r#"config: ["app.a"]"#,
            r#"az(["x", read_config("app.b")]);"#,
        ),
    )
    .step("02_up.rhai", &step("", r#"output("v", "1");"#))
    .step(
        "03_down.rhai",
        &step(r#"needs: ["up"]"#, r#"az(["d", outputs("up").v]);"#),
    );
    p.deploy(&[]).assert_code(0);
    // Rewrite the state as the previous format wrote it: version 2.0, no `reads`.
    let mut state: Value = serde_json::from_str(&p.read(".stepwise/state.json")).unwrap();
    assert_eq!(state["version"], "3.0");
    state["version"] = json!("2.0");
    for (_, rec) in state["steps"].as_object_mut().unwrap() {
        rec.as_object_mut().unwrap().remove("reads");
    }
    p.file(
        ".stepwise/state.json",
        &serde_json::to_string_pretty(&state).unwrap(),
    );
    p.run(&["plan"])
        .assert_contains("Plan: 0 to run, 3 up to date");
    p.clear_calls();
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    // A state from a newer stepwise is refused with a clear message, untouched.
    let newer = p.read(".stepwise/state.json").replace("\"2.0\"", "\"4.0\"");
    p.file(".stepwise/state.json", &newer);
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("state format version 4.0 is newer than this stepwise understands (3.0)");
    assert_eq!(p.read(".stepwise/state.json"), newer);
}

#[test]
fn recorded_reads_survive_a_round_trip_through_blob_state() {
    let azurite = Azurite::start();
    let mut p = outputs_project();
    let location = azurite.new_location();
    p.on_blob(&azurite, &location);
    p.deploy(&[]).assert_code(0);
    let state = p.state();
    assert!(
        state["steps"]["down"]["reads"]["outputs"]["up"]["v"].is_string(),
        "{state}"
    );
    p.config(&config(1, 1, "value-1", 2));
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["up"]);
    assert!(r.summary_of("down").contains("outputs of up unchanged"));
    p.config(&config(1, 1, "value-3", 2));
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["up", "down"]);
}

#[test]
fn watch_reruns_a_dependent_when_an_upstream_output_changes() {
    let p = outputs_project();
    let out = "watch.out";
    let cycles = |p: &Project| p.read(out).matches("[watch] waiting for changes").count();
    let child = Running(Some(p.spawn_logged(&["watch"], out)));
    let limit = Duration::from_secs(120);
    assert!(wait_for(limit, || cycles(&p) >= 1), "{}", p.read(out));
    // An input of `up` that leaves its outputs as they are: `down` stays skipped.
    p.config(&config(1, 1, "value-1", 2));
    assert!(wait_for(limit, || cycles(&p) >= 2), "{}", p.read(out));
    p.clear_calls();
    // An input that changes the output `down` reads.
    p.config(&config(1, 1, "value-2", 2));
    assert!(wait_for(limit, || cycles(&p) >= 3), "{}", p.read(out));
    child.signal_and_wait(libc::SIGINT);
    let text = p.read(out);
    assert!(
        text.contains("down skipped: outputs of up unchanged"),
        "{text}"
    );
    assert!(text.contains("✓ down ran (output up.v changed)"), "{text}");
    let calls: Vec<Vec<String>> = p.az_calls();
    assert_eq!(calls.len(), 2, "{calls:?}");
    assert_eq!(calls[1], ["down", "value-2", "--output", "json"]);
}

#[test]
fn check_reports_undeclared_reads_with_exit_codes_and_json() {
    let p = undeclared_config_project();
    p.step(
        "02_y.rhai",
        &step(
            "",
            r#"az(["y", env("SOME_VAR", "default")]); az(["y2", outputs("x").k ?? "none"]);"#,
        ),
    );
    // Nothing recorded yet: nothing to report, and it says what it could not check.
    p.run(&["check"])
        .assert_code(0)
        .assert_contains("not checked (no recorded reads yet");
    p.deploy(&[]).assert_code(0);
    let r = p.run(&["check"]);
    r.assert_code(1)
        .assert_contains("steps/01_x.rhai:3:32: step `x` reads config app.b without declaring it: add \"app.b\" to `config:` (steps/01_x.rhai:1)")
        .assert_contains("step `y` reads env SOME_VAR without declaring it: add \"SOME_VAR\" to `env:`")
        .assert_contains("step `y` reads outputs of x without declaring it: add \"x\" to `needs:`")
        .assert_contains("check: 3 undeclared read(s)");
    let j = p.run(&["check", "--output", "json"]);
    j.assert_code(1);
    let doc: Value = serde_json::from_str(&j.stdout).unwrap();
    let list = doc["undeclared"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list[0]["step"], "x");
    assert_eq!(list[0]["read"], "config app.b");
    assert_eq!(list[0]["location"], "steps/01_x.rhai:3:32");
    assert_eq!(doc["exit_code"], 1);
    // Declaring them is enough: check judges the recorded reads against today's declarations.
    p.step(
        "01_x.rhai",
        &step(
            r#"config: ["app.a", "app.b"]"#,
            r#"az(["x", read_config("app.a"), read_config("app.b")]);"#,
        ),
    )
    .step(
        "02_y.rhai",
        &step(
            r#"needs: ["x"], env: ["SOME_VAR"]"#,
            r#"az(["y", env("SOME_VAR", "default")]); az(["y2", outputs("x").k ?? "none"]);"#,
        ),
    );
    p.run(&["check"])
        .assert_code(0)
        .assert_contains("check: every recorded read is declared");
}

/// `a` reads `outputs("b").v`, but `b` needs `a`: the read goes against `needs`.
fn cyclic_read_project(b_marker: &str) -> Project {
    let p = Project::new();
    p.config(&config(1, 1, "value-1", 1));
    p.step(
        "01_a.rhai",
        &step("", r#"let v = outputs("b").v ?? "none"; az(["a", v]);"#),
    )
    .step(
        "02_b.rhai",
        &step(
            r#"needs: ["a"], config: ["app.v"]"#,
            &format!(r#"az(["b", "{b_marker}"]); output("v", read_config("app.v"));"#),
        ),
    );
    p
}

const CYCLE_WARNING: &str =
    "a reads outputs of b, but b needs a: a cycle; a is decided against b's stored outputs";

#[test]
fn an_outputs_read_against_needs_is_a_cycle_decided_on_stored_outputs_never_a_stall() {
    let p = cyclic_read_project("1");
    // The first run: `b` has no outputs yet; the read is named as a cycle where it happens.
    p.deploy(&[]).assert_code(0).assert_contains(
        "step `a` reads outputs of b at steps/01_a.rhai:3:9, but b needs a: a cycle; a is decided against b's stored outputs",
    );
    // Editing `b`: `a` is decided against b's stored outputs (v changed from none to
    // value-1 since `a` read it), nothing waits on a step that waits on it.
    p.step(
        "02_b.rhai",
        &step(
            r#"needs: ["a"], config: ["app.v"]"#,
            r#"az(["b", "2"]); output("v", read_config("app.v"));"#,
        ),
    );
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("run     a  output b.v changed")
        .assert_contains("run     b  step script changed")
        .assert_contains(CYCLE_WARNING)
        .assert_not_contains("maybe");
    let doc = plan_json(&p);
    let a = decision(&doc, "a");
    assert_eq!(a["decision"], "run", "{doc}");
    assert_eq!(a["waits_on"], json!([]), "{doc}");
    assert_eq!(a["warnings"], json!([CYCLE_WARNING]), "{doc}");
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains(CYCLE_WARNING)
        .assert_not_contains("earlier step failed");
    assert_eq!(r.ran(), ["a", "b"]);
    assert_eq!(
        p.az_calls(),
        [
            ["a", "value-1", "--output", "json"],
            ["b", "2", "--output", "json"]
        ]
    );
    // Nothing changed: nothing runs, and the cycle is still named.
    p.clear_calls();
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.")
        .assert_contains(CYCLE_WARNING);
    assert!(p.az_calls().is_empty());
    // b's output changes: b runs now; a read the value stored before, so it is skipped now and
    // runs on the next deployment (the stored outputs then differ from what it read).
    p.config(&config(1, 1, "value-2", 1));
    p.clear_calls();
    let r = p.deploy(&["--keep-going"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["b"]);
    assert_eq!(r.with_result("skipped"), ["a"]);
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["a"]);
    assert_eq!(p.az_calls(), [["a", "value-2", "--output", "json"]]);
    // The run's JSON document carries the warning on the step.
    let j = p.run(&["--auto-approve", "--output", "json"]);
    j.assert_code(0);
    let doc: Value = serde_json::from_str(&j.stdout).unwrap();
    let a = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "a")
        .unwrap();
    assert_eq!(a["warnings"], json!([CYCLE_WARNING]), "{doc}");
}

#[test]
fn check_names_an_outputs_read_against_needs_as_a_cycle() {
    let p = cyclic_read_project("1");
    p.deploy(&[]).assert_code(0);
    let r = p.run(&["check"]);
    r.assert_code(1)
        .assert_contains(&format!(
            "steps/01_a.rhai:3:9: {CYCLE_WARNING}; read outputs of b in a step that needs b instead"
        ))
        .assert_contains("check: 1 read(s) closing a cycle")
        .assert_not_contains("to `needs:`");
    let j = p.run(&["check", "--output", "json"]);
    j.assert_code(1);
    let doc: Value = serde_json::from_str(&j.stdout).unwrap();
    assert_eq!(doc["undeclared"], json!([]), "{doc}");
    let c = &doc["cycles"][0];
    assert_eq!(c["kind"], "cycle", "{doc}");
    assert_eq!(c["step"], "a");
    assert_eq!(c["read"], "outputs of b");
    assert_eq!(c["cycle"], "b needs a");
    assert_eq!(c["location"], "steps/01_a.rhai:3:9");
    // --strict: the read fails `a` where it happens (a real failure), and `b` is blocked by it.
    p.step(
        "02_b.rhai",
        &step(
            r#"needs: ["a"], config: ["app.v"]"#,
            r#"az(["b", "3"]); output("v", read_config("app.v"));"#,
        ),
    );
    p.run(&["--auto-approve", "--force-step", "a", "--strict"])
        .assert_code(1)
        .assert_contains("but b needs a: a cycle")
        .assert_contains("b blocked: needs a, which failed");
}
