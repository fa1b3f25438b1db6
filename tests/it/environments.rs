//! Environments (`--env NAME`): config overlays, state per environment (local and on Azurite),
//! independent runs, `env list`, `diff`, protected environments, and the default environment
//! left exactly as it was.

use crate::support;
use serde_json::{json, Value};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::{step, wait_for, walk, Azurite, Project, Run};

const STAGING_KEY: &str = "stg-KEY-1111-secret";
const PROD_KEY: &str = "prd-KEY-2222-secret";

/// Three steps over one config; staging and prod overlays with their own names, a prod SKU
/// and different secrets. State kept locally whatever the test backend.
fn project() -> Project {
    let mut p = Project::new();
    p.local_state();
    p.config(
        "app:\n  name: app\n  sku: small\n  region: eastus\nsecrets:\n  api_key: base-KEY-0000-secret\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n",
    )
    .file(
        "config.staging.yaml",
        &format!("app:\n  name: app-staging\nsecrets:\n  api_key: {STAGING_KEY}\n"),
    )
    .file(
        "config.prod.yaml",
        &format!("app:\n  name: app-prod\n  sku: large\nsecrets:\n  api_key: {PROD_KEY}\n"),
    )
    .step(
        "01_group.rhai",
        &step(
            r#"config: ["app.name", "app.region"]"#,
            r#"az(["group", "create", "--name", read_config("app.name") + "-rg", "--location", read_config("app.region")]);"#,
        ),
    )
    .step(
        "02_web.rhai",
        &step(
            r#"needs: ["group"], config: ["app.name", "app.sku", "secrets.api_key"]"#,
            r#"log("using key " + read_config("secrets.api_key"));
               az(["webapp", "create", "--name", read_config("app.name"), "--sku", read_config("app.sku")]);"#,
        ),
    )
    .step(
        "03_dns.rhai",
        &step(
            r#"needs: ["group"], config: ["app.region"]"#,
            r#"az(["dns", "create", "--region", read_config("app.region")]);"#,
        ),
    );
    p
}

/// The `--name` of every az call.
fn names(p: &Project) -> Vec<String> {
    p.az_calls()
        .iter()
        .filter_map(|c| {
            let i = c.iter().position(|a| a == "--name")?;
            c.get(i + 1).cloned()
        })
        .collect()
}

fn json_of(r: &Run) -> Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.all()))
}

fn state_of(p: &Project, env: &str) -> Value {
    let r = p.run(&["--env", env, "state", "show"]);
    r.assert_code(0);
    json_of(&r)
}

#[test]
fn two_environments_deploy_independently_with_their_own_names_state_and_logs() {
    let mut p = project();
    let r = p.deploy(&["--env", "staging"]);
    r.assert_code(0)
        .assert_contains("Environment staging:")
        .assert_contains("environment staging: 3 ran");
    assert_eq!(r.ran(), ["group", "web", "dns"]);
    assert_eq!(names(&p), ["app-staging-rg", "app-staging"]);
    // The merged config's secrets are secret: staging's, and the base's it replaced.
    r.assert_contains("using key ***")
        .assert_not_contains(STAGING_KEY);
    p.clear_calls();
    let r = p.deploy(&["--env", "staging", "--dry-run", "--force-all"]);
    r.assert_code(0)
        .assert_contains("would run: az group create --name app-staging-rg --location eastus")
        .assert_contains("would run: az webapp create --name app-staging --sku small")
        .assert_contains("using key ***")
        .assert_not_contains(STAGING_KEY);
    assert!(p.az_calls().is_empty());

    // prod has never run, whatever staging did.
    let r = p.deploy(&["--env", "prod", "--output", "json"]);
    r.assert_code(0);
    let doc = json_of(&r);
    assert_eq!(doc["env"], "prod");
    assert_eq!(doc["state"], ".stepwise/envs/prod/state.json");
    assert!(doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["result"] == "ran" && s["reasons"][0] == "never ran"));
    assert_eq!(names(&p), ["app-prod-rg", "app-prod"]);
    let web = p.az_calls().into_iter().find(|c| c[0] == "webapp").unwrap();
    assert!(web.contains(&"large".to_string()), "{web:?}");

    // Each environment: its own state file (saying whose it is), history and logs; the
    // default environment has none.
    for env in ["staging", "prod"] {
        let dir = format!(".stepwise/envs/{env}");
        let state: Value = serde_json::from_str(&p.read(&format!("{dir}/state.json"))).unwrap();
        assert_eq!(state["environment"], env);
        assert_eq!(state["steps"]["web"]["status"], "completed");
        assert!(!walk(&p.path().join(format!("{dir}/history"))).is_empty());
        let logs = walk(&p.path().join(format!("{dir}/logs")));
        assert!(
            logs.iter().any(|l| l.ends_with("web.log")),
            "{env} logs: {logs:?}"
        );
    }
    assert!(!p.exists(".stepwise/state.json"));
    assert!(!p.exists(".stepwise/logs"));
    let local = p.local_files_text();
    for secret in [STAGING_KEY, PROD_KEY, "base-KEY-0000-secret"] {
        assert!(!local.contains(secret), "{secret} written to .stepwise/");
    }

    // Both up to date, each against its own state.
    p.clear_calls();
    for env in ["staging", "prod"] {
        p.deploy(&["--env", env])
            .assert_code(0)
            .assert_contains("Nothing to do.");
    }
    assert!(p.az_calls().is_empty());
    // STEPWISE_ENV selects the same environment; --env wins over it.
    p.env("STEPWISE_ENV", "prod");
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Environment prod:")
        .assert_contains("Plan: 0 to run, 3 up to date");
    let r = p.run(&["--env", "staging", "plan", "--output", "json"]);
    assert_eq!(json_of(&r)["env"], "staging");
}

#[test]
fn editing_the_prod_overlay_reruns_only_prods_steps_that_depend_on_the_changed_key() {
    let p = project();
    p.deploy(&["--env", "staging"]).assert_code(0);
    p.deploy(&["--env", "prod"]).assert_code(0);
    p.file(
        "config.prod.yaml",
        &format!("app:\n  name: app-prod\n  sku: xlarge\nsecrets:\n  api_key: {PROD_KEY}\n"),
    );
    p.clear_calls();
    p.run(&["--env", "staging", "plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
    let r = p.deploy(&["--env", "prod"]);
    r.assert_code(0).assert_contains("config app.sku changed");
    assert_eq!(r.ran(), ["web"]);
    assert_eq!(names(&p), ["app-prod"]);
    p.clear_calls();
    p.deploy(&["--env", "staging"])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    // A key of the base config: each environment re-runs what reads it, once.
    p.config(&p.read("config.yaml").replace("eastus", "westeurope"));
    for env in ["staging", "prod"] {
        let r = p.deploy(&["--env", env]);
        r.assert_code(0);
        assert_eq!(r.ran(), ["group", "dns"], "{env}");
    }
}

#[test]
fn staging_and_prod_deploy_at_once_and_a_second_run_of_one_environment_exits_3() {
    let p = project();
    p.az_rules(json!([{"args": ["group"], "sleep": 2.0, "pass": true}]));
    let args = |env: &'static str| vec!["--auto-approve", "--env", env];
    let staging = p.spawn(&args("staging"));
    let prod = p.spawn(&args("prod"));
    // Both are running their first step at the same time.
    let running = |env: &str| {
        walk(&p.path().join(format!(".stepwise/envs/{env}/logs")))
            .iter()
            .any(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("az group")
            })
    };
    assert!(wait_for(Duration::from_secs(20), || running("staging")
        && running("prod")));
    let again = p.deploy(&["--env", "staging"]);
    again
        .assert_code(3)
        .assert_contains(&format!("pid {}", staging.id()));
    for child in [staging, prod] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for env in ["staging", "prod"] {
        let s = state_of(&p, env);
        for step in ["group", "web", "dns"] {
            assert_eq!(s["steps"][step]["status"], "completed", "{env} {step}");
        }
    }
    let mut created = names(&p);
    created.sort();
    assert_eq!(
        created,
        ["app-prod", "app-prod-rg", "app-staging", "app-staging-rg"]
    );
}

#[test]
fn environments_that_would_share_a_state_location_are_refused_before_anything_runs() {
    let p = project();
    // The default environment keeps prod's state, and the prod overlay points there too.
    p.config(&format!(
        "{}state:\n  path: state/prod/state.json\n",
        p.read("config.yaml")
    ));
    p.file(
        "config.prod.yaml",
        &format!(
            "{}state:\n  path: \"state/{{env}}/state.json\"\n",
            p.read("config.prod.yaml")
        ),
    );
    for args in [vec!["--env", "prod"], vec![]] {
        let r = p.deploy(&args);
        r.assert_code(2)
            .assert_contains("would both keep their state at state/")
            .assert_contains("config.yaml + config.prod.yaml")
            .assert_contains("`default`")
            .assert_contains("`prod`");
    }
    assert!(p.az_calls().is_empty());
    assert!(!p.exists("state"));
    // staging resolves elsewhere (state/prod/staging/state.json) and runs.
    p.deploy(&["--env", "staging"]).assert_code(0);
    assert!(p.exists("state/prod/staging/state.json"));
}

#[test]
fn env_list_shows_each_environment_its_state_last_run_and_what_a_deploy_would_do() {
    let p = project();
    p.file("config.qa.yaml", "app:\n  name: app-qa\n");
    p.deploy(&["--env", "staging"]).assert_code(0);
    p.az_rules(json!([{"args": ["dns"], "stderr": "boom", "exit": 2}]));
    p.deploy(&["--env", "qa"]).assert_code(1);
    // qa's overlay goes away: qa is still known from its state.
    std::fs::remove_file(p.path().join("config.qa.yaml")).unwrap();
    p.file("config.prod.yaml", "deployment:\n  protected: true\n");

    let r = p.run(&["env", "list"]);
    r.assert_code(0);
    let out = &r.stdout;
    let block = |env: &str| -> String {
        let start = out
            .find(&format!("{env}  ("))
            .unwrap_or_else(|| panic!("{env} not listed:\n{out}"));
        out[start..].lines().take(4).collect::<Vec<_>>().join("\n")
    };
    let staging = block("staging");
    assert!(staging.contains("(config.staging.yaml)"), "{staging}");
    assert!(
        staging.contains("state     .stepwise/envs/staging/state.json"),
        "{staging}"
    );
    assert!(
        staging.contains("succeeded: 3 completed, 0 failed, 0 never ran"),
        "{staging}"
    );
    assert!(
        staging.contains("deploy    nothing to do (3 up to date)"),
        "{staging}"
    );
    let prod = block("prod");
    assert!(prod.contains("protected"), "{prod}");
    assert!(prod.contains("last run  never"), "{prod}");
    assert!(prod.contains("would run 3"), "{prod}");
    let qa = block("qa");
    assert!(qa.contains("no overlay"), "{qa}");
    assert!(qa.contains("failed: 2 completed, 1 failed"), "{qa}");
    assert!(qa.contains("config.qa.yaml not found"), "{qa}");
    assert!(
        !out.contains("default"),
        "no default state, not listed:\n{out}"
    );

    let doc = json_of(&p.run(&["env", "list", "--output", "json"]));
    let envs = doc["environments"].as_array().unwrap();
    let by = |n: &str| envs.iter().find(|e| e["name"] == n).unwrap().clone();
    assert_eq!(envs.len(), 3);
    let s = by("staging");
    assert_eq!(s["state"], ".stepwise/envs/staging/state.json");
    assert_eq!(s["last_run"]["result"], "succeeded");
    assert_eq!(s["last_run"]["completed"], 3);
    assert_eq!(s["plan"]["run"], 0);
    assert_eq!(s["plan"]["would_deploy"], false);
    let pr = by("prod");
    assert_eq!(pr["protected"], true);
    assert_eq!(pr["last_run"], Value::Null);
    assert_eq!(pr["plan"]["run"], 3);
    let qa = by("qa");
    assert_eq!(qa["overlay"], Value::Null);
    assert_eq!(qa["last_run"]["failed"], 1);
    assert!(qa["error"].as_str().unwrap().contains("config.qa.yaml"));

    // After the default environment ran, it is listed too.
    std::fs::remove_file(p.path().join("az-rules.json")).unwrap();
    p.deploy(&[]).assert_code(0);
    let doc = json_of(&p.run(&["env", "list", "--output", "json"]));
    let d = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["default"] == true)
        .cloned()
        .expect("default listed");
    assert_eq!(d["state"], ".stepwise/state.json");
    assert_eq!(d["plan"]["run"], 0);
}

#[test]
fn diff_shows_keys_and_steps_that_differ_and_never_prints_a_secret() {
    let p = project();
    let r = p.run(&["diff", "staging", "prod"]);
    r.assert_code(0)
        .assert_contains("config.yaml + config.staging.yaml → config.yaml + config.prod.yaml")
        .assert_contains("\"app-staging\" → \"app-prod\"")
        .assert_contains("\"small\" → \"large\"")
        .assert_contains("changed (secret)")
        .assert_contains("3 config keys and 2 of 3 steps differ between staging and prod.")
        .assert_not_contains(STAGING_KEY)
        .assert_not_contains(PROD_KEY);
    let line = |name: &str| {
        r.stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name} ")))
            .unwrap_or("")
            .to_string()
    };
    assert!(line("secrets.api_key").contains("changed (secret)"));
    assert!(line("group").contains("differs: config app.name"));
    assert!(!line("group").contains("app.region"));
    assert!(line("web").contains("config app.name, config app.sku, config secrets.api_key"));
    assert!(line("dns").contains("same"));

    let r = p.run(&["diff", "staging", "prod", "--output", "json"]);
    r.assert_code(0)
        .assert_not_contains(STAGING_KEY)
        .assert_not_contains(PROD_KEY);
    let doc = json_of(&r);
    let keys = doc["config"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let secret = keys.iter().find(|k| k["key"] == "secrets.api_key").unwrap();
    assert_eq!(
        secret,
        &json!({"key": "secrets.api_key", "change": "changed", "secret": true})
    );
    let sku = keys.iter().find(|k| k["key"] == "app.sku").unwrap();
    assert_eq!(
        (&sku["from"], &sku["to"]),
        (&json!("small"), &json!("large"))
    );
    let steps = doc["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "group");
    assert_eq!(steps[0]["dependencies"], json!(["config:app.name"]));
    assert_eq!(steps[2]["differs"], false);

    // Equal secrets are not a difference (one salt for both sides).
    p.file(
        "config.prod.yaml",
        &format!("app:\n  name: app-staging\nsecrets:\n  api_key: {STAGING_KEY}\n"),
    );
    p.run(&["diff", "staging", "prod"])
        .assert_code(0)
        .assert_contains("no key differs")
        .assert_contains("0 config keys and 0 of 3 steps differ");
}

#[test]
fn a_protected_environment_refuses_destructive_operations_without_confirmation() {
    let p = project();
    p.file(
        "config.prod.yaml",
        &format!(
            "{}deployment:\n  protected: true\n",
            p.read("config.prod.yaml")
        ),
    );
    // A normal deploy honours --auto-approve.
    p.deploy(&["--env", "prod"]).assert_code(0);
    // A copy of prod's state elsewhere, for push/pull --force.
    p.run(&["--env", "prod", "state", "push", "prod-copy.json"])
        .assert_code(0);
    let before = p.read(".stepwise/envs/prod/state.json");
    let copy = p.read("prod-copy.json");
    p.clear_calls();
    // Each refusal says what was asked and how to confirm it, in a sentence.
    let said = "environment `prod` is protected (deployment.protected): ";
    let confirm =
        "; type its name on a terminal to confirm, or pass --confirm-env prod. Nothing was done.";
    for (args, what) in [
        (
            vec!["--auto-approve", "--env", "prod", "--force-all"],
            "--force-all runs every step",
        ),
        (
            vec!["--auto-approve", "--env", "prod", "--reset-state"],
            "--reset-state clears its state",
        ),
        (
            vec!["--env", "prod", "state", "reset"],
            "`state reset` forgets every step",
        ),
        (
            vec!["--env", "prod", "state", "reset", "web"],
            "`state reset` forgets steps",
        ),
        (
            vec!["--env", "prod", "state", "rollback", "x"],
            "`state rollback` replaces its state",
        ),
        (
            vec![
                "--env",
                "prod",
                "state",
                "push",
                "prod-copy.json",
                "--force",
            ],
            "`state push --force` replaces its state",
        ),
        (
            vec![
                "--env",
                "prod",
                "state",
                "pull",
                "prod-copy.json",
                "--force",
            ],
            "`state pull --force` replaces its state",
        ),
        (
            vec!["--env", "prod", "watch", "--force-all"],
            "--force-all runs every step",
        ),
    ] {
        p.run(&args)
            .assert_code(1)
            .assert_contains(&format!("error: {said}{what}{confirm}\n"))
            .assert_not_contains("needs its name typed");
    }
    p.run(&[
        "--auto-approve",
        "--env",
        "prod",
        "--force-all",
        "--confirm-env",
        "staging",
    ])
    .assert_code(1)
    .assert_contains(&format!(
        "error: {said}--force-all runs every step; --confirm-env staging does not name it (pass --confirm-env prod). Nothing was done.\n"
    ));
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/envs/prod/state.json"), before);
    assert_eq!(p.read("prod-copy.json"), copy);
    // Named, a push --force replaces the copy of prod's own state.
    p.run(&[
        "--env",
        "prod",
        "state",
        "push",
        "prod-copy.json",
        "--force",
        "--confirm-env",
        "prod",
    ])
    .assert_code(0)
    .assert_contains("copied state (3 steps)");
    // staging is not protected.
    p.deploy(&["--env", "staging", "--force-all"])
        .assert_code(0);
    p.clear_calls();
    // Named, it goes on.
    let r = p.deploy(&["--env", "prod", "--force-all", "--confirm-env", "prod"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["group", "web", "dns"]);
    p.run(&[
        "--env",
        "prod",
        "state",
        "reset",
        "web",
        "--confirm-env",
        "prod",
    ])
    .assert_code(0)
    .assert_contains("forgot web");
}

#[test]
fn state_push_and_pull_never_replace_another_environments_state_and_rollback_repairs_one_that_was()
{
    let p = project();
    p.file(
        "config.prod.yaml",
        &format!(
            "{}deployment:\n  protected: true\n",
            p.read("config.prod.yaml")
        ),
    );
    p.file("config.qa.yaml", "app:\n  name: app-qa\n");
    p.deploy(&["--env", "prod"]).assert_code(0);
    p.deploy(&["--env", "staging"]).assert_code(0);
    p.deploy(&[]).assert_code(0);
    let prod = p.read(".stepwise/envs/prod/state.json");
    let default = p.read(".stepwise/state.json");

    // Into another environment's state location: refused even with --force (and even when
    // confirmed), from an environment or from the default one; nothing written.
    for (args, owner) in [
        (
            vec![
                "--env",
                "staging",
                "state",
                "push",
                ".stepwise/envs/prod/state.json",
                "--force",
            ],
            "prod",
        ),
        (
            vec![
                "--env",
                "staging",
                "state",
                "push",
                "./.stepwise/envs/prod/state.json",
                "--force",
                "--confirm-env",
                "prod",
            ],
            "prod",
        ),
        (
            vec!["state", "push", ".stepwise/envs/prod/state.json", "--force"],
            "prod",
        ),
        (
            vec![
                "--env",
                "staging",
                "state",
                "push",
                ".stepwise/state.json",
                "--force",
            ],
            "default",
        ),
        // qa has no state yet: its place is still its own.
        (
            vec![
                "--env",
                "staging",
                "state",
                "push",
                ".stepwise/envs/qa/state.json",
            ],
            "qa",
        ),
    ] {
        p.run(&args).assert_code(2).assert_contains(&format!(
            "is where environment `{owner}` keeps its state: not copied, nothing written"
        ));
    }
    assert!(!p.exists(".stepwise/envs/qa"));
    // Onto a copy of another environment's state elsewhere: refused even with --force.
    p.run(&["--env", "staging", "state", "push", "staging-copy.json"])
        .assert_code(0);
    let staging_copy = p.read("staging-copy.json");
    p.run(&[
        "--env",
        "prod",
        "state",
        "push",
        "staging-copy.json",
        "--force",
        "--confirm-env",
        "prod",
    ])
    .assert_code(2)
    .assert_contains("staging-copy.json holds the state of environment `staging`, not `prod`: not overwritten, even with --force; nothing written");
    p.run(&["state", "push", "staging-copy.json", "--force"])
        .assert_code(2)
        .assert_contains("holds the state of environment `staging`, not `default`");
    assert_eq!(p.read("staging-copy.json"), staging_copy);
    // A pull brings only the environment's own (or the default environment's) state.
    p.run(&[
        "--env",
        "prod",
        "state",
        "pull",
        "staging-copy.json",
        "--force",
        "--confirm-env",
        "prod",
    ])
    .assert_code(2)
    .assert_contains("holds the state of environment `staging`, not `prod`: not copied");
    assert_eq!(p.read(".stepwise/envs/prod/state.json"), prod);
    assert_eq!(p.read(".stepwise/state.json"), default);
    p.run(&["--env", "prod", "plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");

    // Should prod's state be replaced by another's anyway (as an earlier stepwise let `push
    // --force` do), rollback brings one of prod's versions back and keeps what it replaced.
    let versions: Value = json_of(
        p.run(&["--env", "prod", "state", "history", "--output", "json"])
            .assert_code(0),
    );
    let latest = versions[0]["id"].as_str().unwrap().to_string();
    let staging = p.read(".stepwise/envs/staging/state.json");
    p.file(".stepwise/envs/prod/state.json", &staging);
    p.run(&["--env", "prod", "plan"])
        .assert_code(2)
        .assert_contains("belongs to environment `staging`, not `prod`")
        .assert_contains("state rollback VERSION");
    let r = p.run(&[
        "--env",
        "prod",
        "state",
        "rollback",
        &latest,
        "--confirm-env",
        "prod",
    ]);
    r.assert_code(0)
        .assert_contains("belongs to environment `staging`")
        .assert_contains(&format!("rolled back to {latest}"));
    let backup = r
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("state backed up to "))
        .unwrap_or_else(|| panic!("no backup named: {}", r.all()));
    assert!(
        backup.starts_with(".stepwise/envs/prod/state.json.backup-"),
        "{backup}"
    );
    assert_eq!(p.read(backup), staging);
    let restored: Value = serde_json::from_str(&p.read(".stepwise/envs/prod/state.json")).unwrap();
    assert_eq!(restored["environment"], "prod");
    p.clear_calls();
    p.run(&["--env", "prod", "plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
    p.deploy(&["--env", "prod"])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
}

/// Runs stepwise on a pseudo-terminal (Python's pty module), typing `typed`.
fn on_terminal(p: &Project, args: &[&str], typed: &str) -> Run {
    let inner = p.command(args);
    let mut outer = Command::new("python3");
    outer
        .arg("-c")
        .arg("import os, pty, sys; sys.exit(os.waitstatus_to_exitcode(pty.spawn(sys.argv[1:])))")
        .arg(inner.get_program())
        .args(inner.get_args())
        .current_dir(p.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => outer.env(k, v),
            None => outer.env_remove(k),
        };
    }
    let mut child = outer.spawn().expect("python3");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(typed.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[test]
fn a_protected_environment_goes_on_when_its_name_is_typed_on_a_terminal() {
    let p = project();
    p.file(
        "config.prod.yaml",
        &format!(
            "{}deployment:\n  protected: true\n",
            p.read("config.prod.yaml")
        ),
    );
    // Slow enough for the live view to draw.
    p.az_rules(json!([{"args": ["webapp"], "sleep": 0.6, "pass": true}]));
    let args = ["--auto-approve", "--env", "prod", "--force-all"];
    let r = on_terminal(&p, &args, "staging\n");
    r.assert_code(1)
        .assert_contains("Type the environment's name to go on")
        .assert_contains("`staging` is not `prod`");
    assert!(p.az_calls().is_empty());
    let r = on_terminal(&p, &args, "prod\n");
    r.assert_code(0)
        .assert_contains("environment prod: 3 ran")
        // The live view names the environment.
        .assert_contains("[prod] web");
    assert_eq!(state_of(&p, "prod")["steps"]["web"]["status"], "completed");
}

#[test]
fn bad_names_and_missing_or_conflicting_overlays_exit_2_with_a_located_message() {
    let p = project();
    for bad in ["Prod", "../x", "", "a_b", "-x"] {
        let flag = format!("--env={bad}");
        for cmd in [vec!["plan"], vec!["state", "show"], vec!["env", "list"]] {
            let mut args = vec![flag.as_str()];
            args.extend(&cmd);
            p.run(&args)
                .assert_code(2)
                .assert_contains("[a-z0-9][a-z0-9-]{0,30}");
        }
    }
    let mut q = project();
    q.env("STEPWISE_ENV", "Prod");
    q.run(&["plan"])
        .assert_code(2)
        .assert_contains("STEPWISE_ENV \"Prod\"");
    p.run(&["diff", "staging", "Prod"])
        .assert_code(2)
        .assert_contains("[a-z0-9][a-z0-9-]{0,30}");

    let r = p.deploy(&["--env", "qa"]);
    r.assert_code(2).assert_contains(
        "config.qa.yaml: environment `qa` has no overlay: config.qa.yaml not found",
    );
    p.file(
        "config.prod.yaml",
        "app:\n  name: app-prod\n  sku:\n    tier: large\n",
    );
    let r = p.deploy(&["--env", "prod"]);
    r.assert_code(2).assert_contains(
        "config.prod.yaml:4:5: config key `app.sku` is a mapping here but a string in config.yaml:3:8",
    );
    p.file("config.prod.yaml", "app: [1, 2]\n");
    p.deploy(&["--env", "prod"]).assert_code(2).assert_contains(
        "config.prod.yaml:1:6: config key `app` is a list here but a mapping in config.yaml:2:3",
    );
    // stepwise's own settings are type-checked where they are written.
    p.file("config.prod.yaml", "advanced:\n  retry_attempts: many\n");
    p.deploy(&["--env", "prod"])
        .assert_code(2)
        .assert_contains("config.prod.yaml:2:")
        .assert_contains("retry_attempts");
    assert!(p.az_calls().is_empty());
    assert!(!p.exists(".stepwise/envs"));
}

#[test]
fn the_default_environment_reads_and_writes_exactly_what_it_did_before() {
    let p = project();
    // No overlay, no --env: as before environments existed.
    std::fs::remove_file(p.path().join("config.staging.yaml")).unwrap();
    std::fs::remove_file(p.path().join("config.prod.yaml")).unwrap();
    let r = p.deploy(&["--output", "json"]);
    r.assert_code(0);
    assert_eq!(json_of(&r)["env"], Value::Null);
    let state = p.read(".stepwise/state.json");
    let parsed: Value = serde_json::from_str(&state).unwrap();
    assert!(parsed.get("environment").is_none(), "{state}");
    let history: Vec<_> = walk(&p.path().join(".stepwise/history"));
    assert_eq!(history.len(), 3);
    assert_eq!(names(&p), ["app-rg", "app"]);
    let human = p.deploy(&[]);
    human
        .assert_code(0)
        .assert_contains("Nothing to do.")
        .assert_not_contains("Environment")
        .assert_not_contains("environment");

    // Environments come along: the default environment's files stay byte for byte.
    p.file("config.staging.yaml", "app:\n  name: app-staging\n");
    p.deploy(&["--env", "staging"]).assert_code(0);
    assert_eq!(p.read(".stepwise/state.json"), state);
    assert_eq!(walk(&p.path().join(".stepwise/history")).len(), 3);
    p.clear_calls();
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/state.json"), state);
    // Another environment's state is never taken for the default one.
    p.run(&["--state", ".stepwise/envs/staging/state.json", "plan"])
        .assert_code(2)
        .assert_contains("belongs to environment `staging`, not `default`");

    // The default environment's state can be adopted by an environment, once.
    p.file("config.live.yaml", "");
    p.run(&["--env", "live", "state", "pull", ".stepwise/state.json"])
        .assert_code(0);
    p.run(&["--env", "live", "plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 3 up to date");
    assert_eq!(p.read(".stepwise/state.json"), state);
    p.run(&[
        "--env",
        "staging",
        "state",
        "pull",
        ".stepwise/envs/live/state.json",
        "--force",
    ])
    .assert_code(2)
    .assert_contains("holds the state of environment `live`, not `staging`");
}

#[test]
fn graph_state_show_and_watch_name_the_environment() {
    let p = project();
    let r = p.run(&["--env", "staging", "graph"]);
    r.assert_code(0)
        .assert_contains("title: environment staging")
        .assert_contains("group[\"group<br/>run\"]");
    p.run(&["--env", "staging", "graph", "--format", "dot"])
        .assert_code(0)
        .assert_contains("label=\"environment staging\";");
    assert_eq!(state_of(&p, "staging")["environment"], "staging");

    let child = support::Running(Some(
        p.spawn_logged(&["--env", "prod", "--auto-approve", "watch"], "watch.out"),
    ));
    assert!(
        wait_for(Duration::from_secs(30), || p
            .read("watch.out")
            .contains("[watch prod] waiting for changes")),
        "{}",
        p.read("watch.out")
    );
    let out = p.read("watch.out");
    assert!(
        out.contains("[watch prod] start: ran group, web, dns"),
        "{out}"
    );
    // An edit of the overlay is a change.
    p.file(
        "config.prod.yaml",
        &p.read("config.prod.yaml").replace("large", "huge"),
    );
    assert!(
        wait_for(Duration::from_secs(30), || p.read("watch.out").lines().any(
            |l| l.starts_with("[watch prod] ")
                && l.contains("config.prod.yaml")
                && l.contains(": ran web;")
        )),
        "{}",
        p.read("watch.out")
    );
    assert_eq!(child.signal_and_wait(libc::SIGINT), Some(130));
}

// ------------------------------------------------------------------ blob state (Azurite)

/// The project with its state on Azurite: `location` through the config's `state.path`.
fn on_azurite(az: &Azurite, location: &str) -> Project {
    let mut p = project();
    p.on_blob(az, location);
    // The location comes from the config (`state.path`), not `STEPWISE_STATE`.
    p.env("STEPWISE_STATE", "");
    p.config(&format!(
        "{}state:\n  path: \"{location}\"\n",
        p.read("config.yaml")
    ));
    p
}

#[test]
fn blob_state_without_placeholder_gets_the_environment_as_a_folder() {
    let az = Azurite::start();
    let location = az.new_location();
    let p = on_azurite(&az, &location);
    let folder = location.trim_end_matches("/state.json");
    for env in ["staging", "prod"] {
        let r = p.deploy(&["--env", env, "--output", "json"]);
        r.assert_code(0);
        assert_eq!(json_of(&r)["state"], format!("{folder}/{env}/state.json"));
        assert_eq!(state_of(&p, env)["steps"]["web"]["status"], "completed");
    }
    assert!(
        !p.exists(".stepwise/envs/staging/state.json"),
        "state must not be local"
    );
    assert!(p.exists(".stepwise/envs/staging/logs"), "logs stay local");
    p.clear_calls();
    p.deploy(&["--env", "prod"])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    // The default environment's blob is untouched: nothing there yet.
    p.run(&["state", "show"])
        .assert_code(0)
        .assert_not_contains("\"web\"");

    // Known from the state found at the configured location, even without an overlay.
    std::fs::remove_file(p.path().join("config.staging.yaml")).unwrap();
    let doc = json_of(&p.run(&["env", "list", "--output", "json"]));
    let envs = doc["environments"].as_array().unwrap();
    let names: Vec<&str> = envs.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["prod", "staging"]);
    assert_eq!(envs[1]["state"], format!("{folder}/staging/state.json"));
    assert_eq!(envs[1]["last_run"]["completed"], 3);
    assert_eq!(envs[0]["plan"]["run"], 0);
}

#[test]
fn blob_state_with_placeholder_and_concurrent_runs_on_azurite() {
    let az = Azurite::start();
    let location = az
        .new_location()
        .replace("/env/state.json", "/states/{env}.json");
    let p = on_azurite(&az, &location);
    p.az_rules(json!([{"args": ["group"], "sleep": 2.0, "pass": true}]));
    let staging = p.spawn(&["--auto-approve", "--env", "staging"]);
    let prod = p.spawn(&["--auto-approve", "--env", "prod"]);
    let running = |env: &str| {
        walk(&p.path().join(format!(".stepwise/envs/{env}/logs")))
            .iter()
            .any(|f| {
                std::fs::read_to_string(f)
                    .unwrap_or_default()
                    .contains("az group")
            })
    };
    assert!(wait_for(Duration::from_secs(30), || running("staging")
        && running("prod")));
    p.deploy(&["--env", "prod"])
        .assert_code(3)
        .assert_contains(&format!("pid {}", prod.id()));
    for child in [staging, prod] {
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let r = p.run(&["--env", "staging", "plan", "--output", "json"]);
    assert_eq!(json_of(&r)["state"], location.replace("{env}", "staging"));
    assert_eq!(state_of(&p, "prod")["environment"], "prod");
    let doc = json_of(&p.run(&["env", "list", "--output", "json"]));
    let listed: Vec<(&str, &str)> = doc["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    let (s, pr) = (
        location.replace("{env}", "staging"),
        location.replace("{env}", "prod"),
    );
    assert_eq!(listed, [("prod", pr.as_str()), ("staging", s.as_str())]);
    // Without an environment there is no name for {env}.
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("contains {env}: select an environment with --env NAME");
}
