//! Every `az` command the 14 DraftGenie steps run, checked against the REAL Azure CLI.
//!
//! The steps run against the stateful fake az (a first deployment; a forced redeployment where
//! everything exists; a forced one that takes the other branches: a soft-deleted Key Vault,
//! a deployment made by the earlier steps (apps and jobs pulling with the registry's admin
//! password, plain secrets, no managed identity) upgraded in place, a resized PostgreSQL
//! server and Redis cache, a new PostgreSQL password). Each distinct recorded argv is then
//! given to the real CLI (one Python process that imports the CLI once and forks a child per
//! command line: `tests/fixtures/az_parse.py`), without a
//! login: the CLI parses the arguments before it needs an account, so a malformed command
//! fails with a parse error (exit 2: `unrecognized arguments`, `the following arguments are
//! required`, `invalid choice`; or exit 1 `Failed to parse ...` for the newer AAZ commands)
//! while a well-formed one asks for `az login` (exit 1).
//!
//! The real CLI: `STEPWISE_REAL_AZ` (scripts/test.sh sets it), else
//! `.tools/az-venv/bin/az`; without it the test fails and says to run scripts/test.sh.
//!
//! Not checkable offline: `az monitor app-insights ...` belongs to the `application-insights`
//! extension, which is not part of the CLI and is installed from the network (step 1 runs
//! `az extension add`); without it the CLI does not know the command group at all. These
//! commands are reported, and the test asserts that they are the only unchecked ones.

use crate::support;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::{draftgenie_as_before_the_identity, replace, repo};

/// The real Azure CLI, or a failure that says how to get it.
fn real_az() -> PathBuf {
    let candidates = [
        std::env::var_os("STEPWISE_REAL_AZ").map(PathBuf::from),
        Some(repo().join(".tools/az-venv/bin/az")),
    ];
    for c in candidates.into_iter().flatten() {
        if c.is_file() {
            return c;
        }
    }
    panic!(
        "the real Azure CLI is not installed (STEPWISE_REAL_AZ is not set and {} does not exist): run scripts/test.sh, which installs it into .tools/az-venv",
        repo().join(".tools/az-venv/bin/az").display()
    );
}

/// Records the az commands of the DraftGenie steps in three deployments.
fn record_commands() -> Vec<Vec<String>> {
    let p = support::draftgenie_project(&[("gemini_api_key", "gem-test-1")]);
    let azure = p.path().join("azure.json");

    // 1. First deployment: everything is created.
    p.deploy(&[]).assert_code(0);
    // 2. Forced redeployment: everything exists (show, then update).
    p.deploy(&["--force-all"]).assert_code(0);
    // 3. Forced, taking the other branches: the apps and jobs look as the earlier steps made
    //    them (registry password, plain secrets, no identity: identity create, role
    //    assignment create, set-policy, identity assign, registry set --identity, secret
    //    remove, acr update --admin-enabled false), the Key Vault is soft-deleted (recover),
    //    the database and cache are resized and the PostgreSQL password is set from the
    //    config (flexible-server update, redis update).
    draftgenie_as_before_the_identity(&azure);
    let mut model: Value = serde_json::from_str(&std::fs::read_to_string(&azure).unwrap()).unwrap();
    let resources = model["resources"].as_object_mut().unwrap();
    let vault = resources.remove("keyvault||draftgenie-kv").unwrap();
    model["deleted"] = json!({ "keyvault||draftgenie-kv": vault });
    std::fs::write(&azure, model.to_string()).unwrap();
    let mut cfg = p.read("config.yaml");
    cfg = replace(&cfg, "sku: Standard_B1ms", "sku: Standard_D2s_v3");
    cfg = replace(&cfg, "tier: Burstable", "tier: GeneralPurpose");
    cfg = replace(&cfg, "storage_size: 32", "storage_size: 64");
    cfg = replace(
        &cfg,
        "admin_password: ''",
        "admin_password: 'Pg-test-Passw0rd'",
    );
    cfg = replace(
        &cfg,
        "sku: Basic                     # Basic | Standard | Premium\n  vm_size: c0",
        "sku: Standard                  # Basic | Standard | Premium\n  vm_size: c1",
    );
    p.config(&cfg);
    // The canned `keyvault recover` answer above does not put the vault back into the fake's
    // model, so verify-after-run would (rightly) find it missing: this deployment records the
    // recovery branch's commands only (the verify() commands are recorded by the first two).
    p.deploy(&["--force-all", "--no-verify-after-run"])
        .assert_code(0);
    // 4. A release that changes a service's image, RabbitMQ's image and an environment
    //    variable, then `stepwise rollback` to the run before: the three steps' rollback()
    //    commands.
    let before = p.run(&["state", "show"]);
    let before: Value = serde_json::from_str(&before.stdout).unwrap();
    let target = before["run_id"].as_str().unwrap().to_string();
    let src = "examples/draftgenie/services/speaker-service/src/index.js";
    p.file(src, &(p.read(src) + "\n// a release\n"));
    let mut cfg = p.read("config.yaml");
    cfg = replace(
        &cfg,
        "image: rabbitmq:3.13-management-alpine",
        "image: rabbitmq:4.0-management-alpine",
    );
    cfg = replace(
        &cfg,
        "cors_origin: '*'",
        "cors_origin: 'https://draftgenie.example'",
    );
    p.config(&cfg);
    p.deploy(&[]).assert_code(0);
    let rolled = p.run(&["rollback", &target, "--auto-approve"]);
    rolled.assert_code(0);
    for step in [
        "deploy_application_services rollback",
        "deploy_infrastructure_services rollback",
        "configure_environment_variables rollback",
    ] {
        rolled.assert_contains(step);
    }

    let calls = p.az_calls();
    for needed in [
        &["keyvault", "recover"][..],
        &["acr", "update"],
        &["identity", "create"],
        &["role", "assignment", "create"],
        &["keyvault", "set-policy"],
        &["keyvault", "secret", "set"],
        &["containerapp", "identity", "assign"],
        &["containerapp", "registry", "set"],
        &["containerapp", "secret", "remove"],
        &["containerapp", "job", "identity", "assign"],
        &["containerapp", "job", "registry", "set"],
        &["containerapp", "job", "secret", "remove"],
        &["postgres", "flexible-server", "update"],
        &["redis", "update"],
        &["containerapp", "create"],
        &["containerapp", "update"],
        &["containerapp", "job", "create"],
        &["containerapp", "job", "update"],
    ] {
        assert!(
            calls
                .iter()
                .any(|c| c.len() >= needed.len() && c[..needed.len()] == *needed),
            "az {} was not recorded",
            needed.join(" ")
        );
    }
    // Distinct command lines, in first-seen order.
    let mut seen = BTreeSet::new();
    calls
        .into_iter()
        .filter(|c| seen.insert(c.clone()))
        .collect()
}

/// `argv` with the value of `--file` replaced by `stand_in` when that file no longer exists.
fn with_existing_files(argv: &[String], stand_in: &Path) -> Vec<String> {
    let mut out = argv.to_vec();
    for i in 1..out.len() {
        if out[i - 1] == "--file" && !Path::new(&out[i]).exists() {
            out[i] = stand_in.display().to_string();
        }
    }
    out
}

#[derive(Debug)]
struct Outcome {
    code: Option<i32>,
    stderr: String,
    elapsed: Duration,
}

/// Runs the real CLI on every command line, offline, each killed after `limit`: one Python
/// process imports the CLI once and runs each command line in a forked child exactly as
/// `python -m azure.cli ARGS` (the `az` script) would, `jobs` at a time
/// (`tests/fixtures/az_parse.py`): a process per command paid the CLI's start-up each time.
fn run_real_all(
    az: &Path,
    config_dir: &Path,
    commands: &[Vec<String>],
    jobs: usize,
    limit: Duration,
) -> Vec<Outcome> {
    let python = ["python3", "python"]
        .iter()
        .map(|n| az.with_file_name(n))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "no python beside {} (the Azure CLI's virtual environment): run scripts/test.sh",
                az.display()
            )
        });
    let mut child = Command::new(&python)
        .arg(repo().join("tests/fixtures/az_parse.py"))
        .arg(jobs.to_string())
        .arg(limit.as_secs().to_string())
        .env("AZURE_CONFIG_DIR", config_dir)
        .env("AZURE_CORE_COLLECT_TELEMETRY", "no")
        .env("AZURE_CORE_NO_COLOR", "1")
        .env("AZURE_CORE_ONLY_SHOW_ERRORS", "no")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the Azure CLI driver");
    let input = serde_json::to_vec(commands).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(
        out.status.success(),
        "the Azure CLI driver failed: {:?}",
        out.status
    );
    let mut results: Vec<Option<Outcome>> = (0..commands.len()).map(|_| None).collect();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        let i = v["i"].as_u64().unwrap() as usize;
        results[i] = Some(Outcome {
            code: v["code"].as_i64().map(|c| c as i32),
            stderr: v["stderr"].as_str().unwrap_or_default().to_string(),
            elapsed: Duration::from_secs_f64(v["seconds"].as_f64().unwrap_or(0.0)),
        });
    }
    results
        .into_iter()
        .enumerate()
        .map(|(i, o)| o.unwrap_or_else(|| panic!("no answer for az {}", commands[i].join(" "))))
        .collect()
}

/// Messages of the CLI's argument parsing (argparse, and the AAZ commands' own parser).
const PARSE_ERRORS: &[&str] = &[
    "unrecognized arguments",
    "the following arguments are required",
    "invalid choice",
    "Failed to parse",
    "expected one argument",
    "not allowed with argument",
    "argument value cannot be blank",
    "is not a valid value",
    "usage error",
    "InvalidArgumentValue",
];

/// Exit-1 messages that come after parsing succeeded.
const ACCEPTED_1: &[(&str, &str)] = &[
    ("az login", "asks for az login"),
    (
        "Unable to get extension index",
        "tries to download the extension (no network here)",
    ),
    (
        "Cannot connect to the Docker daemon",
        "acr login needs a Docker daemon",
    ),
    ("DOCKER_COMMAND_ERROR", "acr login needs a Docker daemon"),
];

/// The CLI does not know a command group that an extension provides.
const UNKNOWN_GROUP: &str = "is misspelled or not recognized by the system";

#[test]
fn every_az_command_of_the_steps_is_accepted_by_the_real_azure_cli() {
    let az = real_az();
    let commands = record_commands();
    assert!(commands.len() > 50, "only {} commands", commands.len());

    let config_dir = tempfile::tempdir().unwrap();
    // The first call creates the CLI's configuration and command index: once, before the
    // parallel calls (which would otherwise race on creating those files).
    let warm = run_real_all(
        &az,
        config_dir.path(),
        &[vec!["--version".to_string()]],
        1,
        Duration::from_secs(300),
    );
    assert_eq!(warm[0].code, Some(0), "az --version: {}", warm[0].stderr);

    // `--file PATH` must name an existing file (the CLI opens it while parsing); the steps'
    // secret files are gone once their step ended, so a stand-in takes their place.
    let secret_file = config_dir.path().join("secret-file");
    std::fs::write(&secret_file, "stand-in").unwrap();
    let t0 = Instant::now();
    let argvs: Vec<Vec<String>> = commands
        .iter()
        .map(|c| with_existing_files(c, &secret_file))
        .collect();
    let results = run_real_all(&az, config_dir.path(), &argvs, 2, Duration::from_secs(120));

    let mut failures = Vec::new();
    let mut unchecked = Vec::new();
    let mut tally: std::collections::BTreeMap<String, usize> = Default::default();
    for (argv, o) in commands.iter().zip(&results) {
        let line = format!("az {}", argv.join(" "));
        let first_error = o
            .stderr
            .lines()
            .find(|l| l.starts_with("ERROR"))
            .unwrap_or_else(|| o.stderr.lines().next().unwrap_or(""))
            .to_string();
        let parse_error = PARSE_ERRORS.iter().find(|m| o.stderr.contains(*m));
        match (o.code, parse_error) {
            (_, Some(m)) => failures.push(format!(
                "{line}\n    -> exit {:?}, {m}: {first_error}",
                o.code
            )),
            (Some(2), None) if o.stderr.contains(UNKNOWN_GROUP) => {
                unchecked.push(format!("{line}\n    -> {first_error}"));
                *tally
                    .entry("unchecked (extension command group unknown offline)".into())
                    .or_default() += 1;
            }
            (Some(0), None) => *tally.entry("exit 0".into()).or_default() += 1,
            (Some(3), None) => *tally.entry("exit 3".into()).or_default() += 1,
            (Some(1), None) => match ACCEPTED_1.iter().find(|(m, _)| o.stderr.contains(m)) {
                Some((_, why)) => *tally.entry(format!("exit 1, {why}")).or_default() += 1,
                None => failures.push(format!(
                    "{line}\n    -> exit 1, unexpected: {}",
                    o.stderr.trim()
                )),
            },
            (code, None) => failures.push(format!(
                "{line}\n    -> exit {code:?} after {:?}: {}",
                o.elapsed,
                o.stderr.trim()
            )),
        }
    }

    println!(
        "{} distinct az commands checked against {} in {:?}:",
        commands.len(),
        az.display(),
        t0.elapsed()
    );
    for (k, n) in &tally {
        println!("  {n:4}  {k}");
    }
    if !unchecked.is_empty() {
        println!("Could not be checked offline (the application-insights extension is installed from the network):");
        for u in &unchecked {
            println!("  {u}");
        }
    }
    assert!(
        failures.is_empty(),
        "the real Azure CLI rejects {} command(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
    // Only the application-insights extension's commands may be unchecked.
    for u in &unchecked {
        assert!(
            u.starts_with("az monitor app-insights "),
            "unexpectedly unknown to the CLI: {u}"
        );
    }
    // Most commands were checked for real (login asked, i.e. parsed).
    let asked_login = tally.get("exit 1, asks for az login").copied().unwrap_or(0);
    assert!(asked_login * 10 >= commands.len() * 8, "{tally:?}");
}
