//! Fitting the ecosystem: `init`, shell completions, man pages, Rhai definitions, the config
//! schema and `--output markdown`.

use crate::support;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::{bin, repo, step, Project};

/// Runs stepwise in `dir` (a folder of the project `p`).
fn run_in(p: &Project, dir: &str, args: &[&str]) -> support::Run {
    let mut cmd = p.command(args);
    cmd.current_dir(p.path().join(dir));
    let out = cmd.output().expect("run stepwise");
    support::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The Python of `.tools/py-venv` (jsonschema, actionlint), installed by scripts/test.sh.
fn python() -> PathBuf {
    let py = std::env::var("STEPWISE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| repo().join(".tools/py-venv/bin/python"));
    assert!(
        py.exists(),
        "{} is missing: run scripts/test.sh (it installs jsonschema into .tools/py-venv)",
        py.display()
    );
    py
}

// ---------------------------------------------------------------- init

#[test]
fn init_in_an_empty_folder_makes_a_project_that_runs_then_skips() {
    let p = Project::new();
    let r = p.run(&["init", "fresh"]);
    r.assert_code(0);
    for f in [
        "config.yaml",
        "steps/01_hello.rhai",
        "prelude.rhai",
        ".gitignore",
    ] {
        assert!(p.exists(&format!("fresh/{f}")), "{f} not created");
        r.assert_contains(&format!("created {f}"));
    }
    assert!(p
        .read("fresh/.gitignore")
        .lines()
        .any(|l| l == ".stepwise/"));
    // The next commands are printed.
    r.assert_contains("cd fresh")
        .assert_contains("stepwise plan");

    let first = run_in(&p, "fresh", &["--auto-approve"]);
    first.assert_code(0).assert_contains("Hello from");
    assert_eq!(first.ran(), ["hello"]);
    let second = run_in(&p, "fresh", &["--auto-approve"]);
    second.assert_code(0).assert_contains("Nothing to do.");
    assert!(second.ran().is_empty());
    // The generated config passes its own schema check (typed settings).
    run_in(&p, "fresh", &["plan"]).assert_code(0);
}

#[test]
fn init_in_a_non_empty_folder_overwrites_nothing_and_exits_1() {
    let p = Project::new();
    p.file("old/config.yaml", "mine: true\n")
        .file("old/prelude.rhai", "// my prelude\n")
        .file("old/.gitignore", "target/");
    let r = p.run(&["init", "old"]);
    r.assert_code(1)
        .assert_contains("config.yaml (left alone)")
        .assert_contains("prelude.rhai (left alone)")
        .assert_contains("created steps/01_hello.rhai")
        .assert_contains("added .stepwise/ to .gitignore");
    assert_eq!(p.read("old/config.yaml"), "mine: true\n");
    assert_eq!(p.read("old/prelude.rhai"), "// my prelude\n");
    // .gitignore keeps its line and gains one, once.
    let ignore = p.read("old/.gitignore");
    assert!(ignore.starts_with("target/\n"), "{ignore}");
    assert_eq!(ignore.matches(".stepwise/").count(), 1, "{ignore}");
    let again = p.run(&["init", "old"]);
    again.assert_code(1);
    assert_eq!(p.read("old/.gitignore"), ignore);
    assert!(!again.all().contains("created"), "{}", again.all());
}

// ---------------------------------------------------------------- completions

/// A project with three steps, for step-name completion.
fn three_named_steps() -> Project {
    let p = Project::new();
    p.step("01_network.rhai", &step("", ""))
        .step("02_database.rhai", &step(r#"needs: ["network"]"#, ""))
        .step("03_deploy_app.rhai", &step(r#"needs: ["database"]"#, ""))
        .file("other/01_elsewhere.rhai", &step("", ""));
    p
}

#[test]
fn every_completion_script_is_produced() {
    let p = Project::new();
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let r = p.run(&["completions", shell]);
        r.assert_code(0);
        assert!(
            r.stdout.contains("STEPWISE_COMPLETE") && r.stdout.contains("stepwise"),
            "{shell}: {}",
            r.stdout
        );
        let s = p.run(&["completions", shell, "--static"]);
        s.assert_code(0);
        // The static script knows the subcommands and flags.
        assert!(
            s.stdout.contains("force-step") && s.stdout.contains("completions"),
            "{shell} static: {}",
            s.stdout
        );
    }
    p.run(&["completions", "tcsh"])
        .assert_code(2)
        .assert_contains("possible values");
}

/// Runs a bash script in the project, with the completion script loaded.
fn bash(p: &Project, script: &str) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source <(\"{}\" completions bash) || exit 9\n{script}",
            bin().display()
        ))
        .current_dir(p.path())
        .output()
        .expect("bash");
    assert!(
        out.status.success(),
        "bash failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The candidates bash offers for `words` (the last one being completed).
fn bash_complete(p: &Project, words: &str) -> Vec<String> {
    let mut list: Vec<&str> = words.split(' ').collect();
    let cword = list.len() - 1;
    let cur = list.pop().unwrap_or("");
    let quoted: Vec<String> = list.iter().map(|w| format!("'{w}'")).collect();
    let out = bash(
        p,
        &format!(
            "COMP_WORDS=({} '{cur}'); COMP_CWORD={cword}; COMP_TYPE=9; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}\n\
             _clap_complete_stepwise stepwise '{cur}' '{}'\n\
             printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            quoted.join(" "),
            list.last().unwrap_or(&"")
        ),
    );
    out.lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

#[test]
fn bash_loads_the_script_and_completes_step_names() {
    let p = three_named_steps();
    let registered = bash(&p, "complete -p stepwise");
    assert!(
        registered.contains("_clap_complete_stepwise"),
        "{registered}"
    );
    assert_eq!(
        bash_complete(&p, "stepwise --force-step "),
        ["network", "database", "deploy_app"]
    );
    assert_eq!(
        bash_complete(&p, "stepwise plan --only d"),
        ["database", "deploy_app"]
    );
    assert_eq!(
        bash_complete(&p, "stepwise state reset deploy"),
        ["deploy_app"]
    );
    // --steps on the line being completed is honoured.
    assert_eq!(
        bash_complete(&p, "stepwise --steps other --force-step "),
        ["elsewhere"]
    );
    // Subcommands complete too.
    let subs = bash_complete(&p, "stepwise comp");
    assert_eq!(subs, ["completions"]);
}

/// Shells other than bash are checked when installed; scripts/test.sh installs zsh, fish and
/// elvish and sets STEPWISE_TEST_ALL_SHELLS=1, so that in CI a missing one is a failure.
fn other_shell(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("STEPWISE_TEST_ALL_SHELLS").is_none(),
            "{name} is not installed (scripts/test.sh installs it)"
        );
        eprintln!("SKIPPED: {name} is not installed; its completion script was only produced");
    }
    found
}

#[test]
fn zsh_fish_and_elvish_load_their_scripts() {
    let p = three_named_steps();
    let b = bin().display().to_string();
    let check = |shell: &Path, args: &[&str], script: String, expect: &str| {
        let out = Command::new(shell)
            .args(args)
            .arg(&script)
            .current_dir(p.path())
            .env("HOME", p.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success() && text.contains(expect),
            "{}: {text}",
            shell.display()
        );
    };
    if let Some(zsh) = other_shell("zsh") {
        check(
            &zsh,
            &["-f", "-c"],
            format!(
                "autoload -Uz compinit && compinit -u -D && source <(\"{b}\" completions zsh) && print -r -- ${{_comps[stepwise]}}"
            ),
            "_clap_dynamic_completer_stepwise",
        );
        // The registered completer, called as the completion system would (with `_describe`,
        // which needs the line editor, replaced by a printer).
        check(
            &zsh,
            &["-f", "-c"],
            format!(
                "autoload -Uz compinit && compinit -u -D && source <(\"{b}\" completions zsh) && \
                 _describe() {{ shift 2; print -rl -- ${{(P)1}}; }} && \
                 words=(stepwise state reset ''); CURRENT=4; _clap_dynamic_completer_stepwise"
            ),
            "deploy_app",
        );
    }
    if let Some(fish) = other_shell("fish") {
        // fish asks the completion machinery itself: the step names come back.
        check(
            &fish,
            &["--no-config", "-c"],
            format!("\"{b}\" completions fish | source; complete -C'stepwise --force-step '"),
            "deploy_app",
        );
    }
    if let Some(elvish) = other_shell("elvish") {
        // Non-interactive elvish has no line editor: a stand-in `edit:` namespace receives the
        // completer the script registers, which is then asked like the editor would.
        check(
            &elvish,
            &["-norc", "-c"],
            format!(
                "var edit: = (ns [&completion:=(ns [&arg-completer=[&]])])\n\
                 eval (\"{b}\" completions elvish | slurp) &ns=(ns [&edit:=$edit:]) &on-end={{|n| $n[edit:][completion:][arg-completer][stepwise] stepwise --force-step '' }}"
            ),
            "deploy_app",
        );
    }
}

// ---------------------------------------------------------------- man pages

#[test]
fn man_pages_render_without_warnings() {
    let p = Project::new();
    let r = p.run(&["man", "pages"]);
    r.assert_code(0);
    let mut pages: Vec<String> = std::fs::read_dir(p.path().join("pages"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    pages.sort();
    for expected in [
        "stepwise.1",
        "stepwise-plan.1",
        "stepwise-init.1",
        "stepwise-state.1",
        "stepwise-state-reset.1",
        "stepwise-completions.1",
    ] {
        assert!(pages.iter().any(|p| p == expected), "{expected}: {pages:?}");
    }
    for page in &pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(p.path().join("pages").join(page))
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("man (man-db) is installed by scripts/test.sh");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{page}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("stepwise"), "{page}: {text}");
        if page == "stepwise.1" {
            assert!(
                text.contains("--force-step <NAME>") && text.contains("EXIT STATUS"),
                "{text}"
            );
        }
        // Each page shows how the command is used and every exit code.
        let section = |name: &str| {
            let start = text
                .find(&format!("\n{name}\n"))
                .unwrap_or_else(|| panic!("{page} has no {name} section:\n{text}"));
            let rest = &text[start + name.len() + 2..];
            let end = rest
                .find("\n\n\n")
                .or_else(|| rest.find("\nVERSION"))
                .unwrap_or(rest.len());
            rest[..end].to_string()
        };
        let examples = section("EXAMPLES");
        assert!(
            examples
                .lines()
                .any(|l| l.trim_start().starts_with("stepwise")),
            "{page}: {examples}"
        );
        let codes = section("EXIT STATUS");
        for code in ["0", "1", "2", "3", "4", "5", "70", "130", "143"] {
            assert!(
                codes
                    .lines()
                    .any(|l| l.split_whitespace().next() == Some(code)),
                "{page}: exit code {code} missing from EXIT STATUS:\n{codes}"
            );
        }
        if page == "stepwise-plan.1" {
            assert!(codes.contains("--detailed-exitcode"), "{codes}");
        }
    }
}

// ---------------------------------------------------------------- definitions

/// Every function the engine's host module registers: (name, number of parameters).
fn registered_host_functions() -> Vec<(String, usize)> {
    let engine = stepwise::run::host::engine();
    let meta: Value =
        serde_json::from_str(&engine.gen_fn_metadata_to_json(false).unwrap()).unwrap();
    let mut out: Vec<(String, usize)> = meta["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["name"].as_str().unwrap().to_string(),
                f["numParams"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[test]
fn definitions_contain_every_host_function_with_its_docs_and_the_prelude() {
    let p = Project::new();
    p.file(
        "prelude.rhai",
        "/// Tags every resource gets.\n/// (from the config)\nfn standard_tags(env) { #{ env: env } }\n\nfn untagged() { 1 }\n\nprivate fn hidden() { 2 }\n",
    );
    p.run(&["definitions", "defs"]).assert_code(0);
    let statics = p.read("defs/__static__.d.rhai");
    let hosts = registered_host_functions();
    assert!(hosts.len() >= 20, "{hosts:?}");
    let lines: Vec<&str> = statics.lines().collect();
    for (name, params) in &hosts {
        // `fn name(a: t, b: t) -> r;` with that many parameters, right after its doc comment.
        let at = lines
            .iter()
            .position(|l| {
                l.starts_with(&format!("fn {name}(")) && l.matches(':').count() == *params
            })
            .unwrap_or_else(|| panic!("fn {name} with {params} parameters missing:\n{statics}"));
        assert!(
            at > 0 && lines[at - 1].starts_with("/// "),
            "fn {name} has no doc comment"
        );
        assert!(!lines[at].contains("EvalAltResult"), "{}", lines[at]);
    }
    assert!(statics.contains("fn az(args: array) -> ?;"), "{statics}");
    assert!(statics.contains("fn read_config(key: string, fallback: ?) -> ?;"));
    // Rhai's own standard library comes along.
    assert!(p.exists("defs/__builtin__.d.rhai"));
    // The prelude's public helpers, with their doc comments.
    let prelude = p.read("defs/prelude.d.rhai");
    assert!(
        prelude.contains(
            "/// Tags every resource gets.\n/// (from the config)\nfn standard_tags(env: ?) -> ?;"
        ),
        "{prelude}"
    );
    assert!(prelude.contains("fn untagged() -> ?;"), "{prelude}");
    assert!(!prelude.contains("hidden"), "{prelude}");
    // The step reference documents every host function too.
    let docs = std::fs::read_to_string(repo().join("docs/steps.md")).unwrap();
    for (name, _) in hosts.iter().filter(|(n, _)| !n.contains('$')) {
        assert!(
            docs.contains(&format!("`{name}")),
            "docs/steps.md does not mention {name}"
        );
    }
}

#[test]
fn definitions_refuse_the_steps_folder() {
    let p = Project::new();
    p.run(&["definitions", "steps"])
        .assert_code(2)
        .assert_contains("steps folder");
    assert!(std::fs::read_dir(p.path().join("steps"))
        .unwrap()
        .next()
        .is_none());
}

// ---------------------------------------------------------------- schema

/// Validates each `(name, yaml)` document against `schema` with Python's jsonschema: the
/// names of the valid ones.
fn valid_by_schema(schema: &str, docs: &[(&str, String)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("schema.json"), schema).unwrap();
    for (name, yaml) in docs {
        let v: Value = serde_norway::from_str(yaml).unwrap();
        std::fs::write(dir.path().join(format!("{name}.json")), v.to_string()).unwrap();
    }
    let script = r#"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
cls = jsonschema.validators.validator_for(schema)
cls.check_schema(schema)
for path in sys.argv[2:]:
    errors = list(cls(schema).iter_errors(json.load(open(path))))
    print(("VALID " if not errors else "INVALID ") + path, [e.message for e in errors])
"#;
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .arg(dir.path().join("schema.json"))
        .args(
            docs.iter()
                .map(|(n, _)| dir.path().join(format!("{n}.json"))),
        )
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{text}");
    docs.iter()
        .filter(|(n, _)| {
            let valid = format!("VALID {} ", dir.path().join(format!("{n}.json")).display());
            text.lines().any(|l| l.starts_with(&valid))
        })
        .map(|(n, _)| n.to_string())
        .collect()
}

#[test]
fn schema_accepts_the_example_config_and_rejects_wrong_types() {
    let p = Project::new();
    // The example config's steps keep keys of their own under `docker:` and `deployment:`:
    // the schema of that project (its steps read from the repository) accepts them.
    let steps = repo().join("steps");
    let r = p.run(&["--steps", steps.to_str().unwrap(), "schema"]);
    r.assert_code(0);
    let schema: Value = serde_json::from_str(&r.stdout).expect("schema is JSON");
    assert_eq!(schema["$schema"], "http://json-schema.org/draft-07/schema#");
    for key in ["deployment", "advanced", "state", "docker", "notify"] {
        assert!(schema["properties"][key].is_object(), "{key} missing");
    }
    let example = std::fs::read_to_string(repo().join("config.example.yaml")).unwrap();
    let template = std::fs::read_to_string(repo().join("templates/init/config.yaml")).unwrap();
    let wrong: Vec<(&str, String)> = vec![
        (
            "retry_attempts",
            "advanced:\n  retry_attempts: three\n".into(),
        ),
        ("dry_run", "deployment:\n  dry_run: maybe\n".into()),
        ("state_path", "state:\n  path: 5\n".into()),
        ("parallel_builds", "docker:\n  parallel_builds: 0\n".into()),
        (
            "notify_format",
            "notify:\n  - url_env: HOOK\n    format: carrier-pigeon\n".into(),
        ),
        (
            "notify_typo",
            "notify:\n  - url_env: HOOK\n    formt: slack\n".into(),
        ),
        (
            "deployment_typo",
            "deployment:\n  auto_aprove: true\n".into(),
        ),
        ("advanced_typo", "advanced:\n  retry_attempt: 2\n".into()),
        ("state_typo", "state:\n  pth: s.json\n".into()),
    ];
    let mut docs = vec![("example", example), ("template", template)];
    docs.extend(wrong.iter().cloned());
    let valid = valid_by_schema(&r.stdout, &docs);
    assert_eq!(valid, ["example", "template"]);
    // What the schema rejects, stepwise rejects too (exit 2, before anything runs).
    for (name, yaml) in &wrong {
        if *name == "parallel_builds" {
            continue; // out of range: clamped by stepwise, flagged by the editor
        }
        p.config(yaml);
        let r = p.run(&["--steps", steps.to_str().unwrap(), "plan"]);
        assert_eq!(r.code, 2, "{name}: {}", r.all());
    }
}

// ---------------------------------------------------------------- markdown

#[test]
fn markdown_output_of_a_run_with_a_failed_and_a_skipped_step() {
    let p = Project::new();
    p.config(
        "secrets:\n  token: tok-s3cr3t-123\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n",
    )
    .step("01_base.rhai", &step("", r#"az(["base"]);"#));
    p.deploy(&[]).assert_code(0);
    p.step(
        "02_broken.rhai",
        &step(
            r#"needs: ["base"], config: ["secrets.token"]"#,
            r#"throw "cannot use " + read_config("secrets.token") + " | here";"#,
        ),
    )
    .step(
        "03_after.rhai",
        &step(r#"needs: ["broken"]"#, r#"az(["after"]);"#),
    );
    let r = p.deploy(&["--output", "markdown"]);
    r.assert_code(1);
    let md = &r.stdout;
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines[0], "### stepwise deploy: failed", "{md}");
    assert!(lines.contains(&"| step | result | time | reason |"), "{md}");
    let row = |name: &str| {
        lines
            .iter()
            .find(|l| l.starts_with(&format!("| `{name}` |")))
            .unwrap_or_else(|| panic!("no row for {name}:\n{md}"))
            .to_string()
    };
    assert!(row("base").contains("⏭️ skipped") && row("base").contains("up to date"));
    let broken = row("broken");
    assert!(broken.contains("❌ failed"), "{broken}");
    // The secret is masked and the `|` in the message does not break the table.
    assert!(
        broken.contains("***") && broken.contains("\\| here"),
        "{broken}"
    );
    assert_eq!(
        broken.replace("\\|", "").matches('|').count(),
        5,
        "{broken}"
    );
    assert!(row("after").contains("🚧 blocked"));
    assert!(
        lines
            .last()
            .unwrap()
            .starts_with("**stepwise deploy failed: 0 ran, 1 skipped, 1 failed, 1 blocked in "),
        "{md}"
    );
    assert!(!r.all().contains("tok-s3cr3t-123"));
    // stdout holds only the document; the human output went to stderr.
    assert!(!md.contains("STEP "), "{md}");
    assert!(r.stderr.contains("STEP "), "{}", r.stderr);

    let plan = p.run(&["plan", "--output", "markdown"]);
    plan.assert_code(0);
    assert!(
        plan.stdout.starts_with("### stepwise plan: 2 to run\n"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout
            .contains("| `broken` | ▶️ run | failed before |"),
        "{}",
        plan.stdout
    );
    assert!(
        plan.stdout.contains("| `base` | ⏭️ skip | up to date |"),
        "{}",
        plan.stdout
    );
    assert!(plan
        .stdout
        .contains("**Plan: 2 to run, 1 up to date, 0 pending, 0 not selected**"));
}

#[test]
fn markdown_output_of_an_error_is_markdown_too() {
    let p = Project::new();
    p.config("x: [1, 2\n");
    let r = p.run(&["plan", "--output", "markdown"]);
    r.assert_code(2);
    assert!(
        r.stdout
            .starts_with("### stepwise: error (exit 2)\n\n```\nconfig.yaml:"),
        "{}",
        r.stdout
    );
    // Commands without a Markdown form say so instead of printing nothing.
    p.run(&["steps", "--output", "markdown"])
        .assert_code(2)
        .assert_contains(
            "`steps` has no --output markdown; it is for: deploy, plan, rollback, cost, diff",
        );
}

#[test]
fn markdown_output_of_a_diff_between_environments_hides_secrets() {
    let mut p = Project::new();
    p.local_state();
    p.config("app:\n  name: app\n  sku: small\nsecrets:\n  api_key: base-KEY-0000\n")
        .file(
            "config.staging.yaml",
            "app:\n  name: app-staging\nsecrets:\n  api_key: stg-KEY-1111-secret\n",
        )
        .file(
            "config.prod.yaml",
            "app:\n  name: app-prod\n  sku: large|xl\nsecrets:\n  api_key: prd-KEY-2222-secret\n",
        )
        .step(
            "01_web.rhai",
            &step(r#"config: ["app.name", "secrets.api_key"]"#, ""),
        )
        .step("02_other.rhai", &step("", ""));
    let r = p.run(&["diff", "staging", "prod", "--output", "markdown"]);
    r.assert_code(0)
        .assert_not_contains("stg-KEY-1111-secret")
        .assert_not_contains("prd-KEY-2222-secret");
    let md = &r.stdout;
    assert!(
        md.starts_with("### stepwise diff: staging → prod\n"),
        "{md}"
    );
    assert!(
        md.contains("| `app.name` | changed | `\"app-staging\"` | `\"app-prod\"` |"),
        "{md}"
    );
    assert!(
        md.contains("| `app.sku` | changed | `\"small\"` | `\"large\\|xl\"` |"),
        "{md}"
    );
    assert!(
        md.contains("| `secrets.api_key` | changed (secret) |  |  |"),
        "{md}"
    );
    assert!(
        md.contains("| `web` | ⚠️ differs | config app.name, config secrets.api_key |"),
        "{md}"
    );
    assert!(md.contains("| `other` | same |  |"), "{md}");
    assert!(md
        .trim_end()
        .ends_with("**3 config keys and 1 of 2 steps differ between staging and prod.**"));
    // The human lines went to stderr.
    assert!(r.stderr.contains("Steps (staging → prod):"), "{}", r.stderr);
}

// ------------------------------------------------------------ stepwise's own settings

#[test]
fn a_typo_in_stepwises_own_settings_is_refused_with_its_place_and_a_suggestion() {
    let p = Project::new();
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#));
    p.config("azure:\n  location: x\ndeployment:\n  auto_aprove: true\n");
    for args in [
        &["plan"][..],
        &["--auto-approve"][..],
        &["state", "show"][..],
    ] {
        let r = p.run(args);
        r.assert_code(2)
            .assert_contains("config.yaml:4:")
            .assert_contains("unknown key `deployment.auto_aprove`")
            .assert_contains("did you mean `auto_approve`?");
    }
    assert!(!p.exists(".stepwise/state.json"), "nothing ran");
    // In an environment's overlay too, located in the overlay.
    p.config("deployment:\n  auto_approve: false\n");
    p.file("config.dev.yaml", "deployment:\n  protectd: true\n");
    p.run(&["--env", "dev", "plan"])
        .assert_code(2)
        .assert_contains("config.dev.yaml:2:")
        .assert_contains("did you mean `protected`?");
}

#[test]
fn keys_a_step_declares_under_stepwises_sections_are_its_own() {
    let p = Project::new();
    p.config("docker:\n  parallel_builds: 2\n  image_tag: v1\ndeployment:\n  skip_build: true\n");
    // Undeclared: refused (stepwise does not read them).
    p.step("01_a.rhai", &step("", r#"log("a");"#));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("unknown key `docker.image_tag`");
    // Declared by a step: the step's own keys.
    p.step(
        "01_a.rhai",
        &step(
            r#"config: ["docker.image_tag", "deployment.skip_build"]"#,
            r#"log(read_config("docker.image_tag"));"#,
        ),
    );
    p.deploy(&[]).assert_code(0);
    // The original tool's advanced settings load (stepwise does not use them).
    p.config(
        "docker:\n  image_tag: v1\ndeployment:\n  skip_build: true\nadvanced:\n  cleanup_on_failure: false\n  save_state: true\n  state_file: .azure-deployment-state.json\n",
    );
    p.run(&["plan"]).assert_code(0);
    // The schema of this project says the same: the declared keys are accepted, a typo not.
    let schema = p.run(&["schema"]);
    schema.assert_code(0);
    let docs = vec![
        ("declared", "docker:\n  image_tag: v2\n".to_string()),
        ("typo", "deployment:\n  skip_biuld: true\n".to_string()),
    ];
    assert_eq!(valid_by_schema(&schema.stdout, &docs), ["declared"]);
}

// ---------------------------------------------------------------- the edges a newcomer touches

#[test]
fn output_a_command_cannot_give_is_refused_and_steps_and_graph_give_json() {
    let p = three_named_steps();
    // `steps` and `graph` in JSON: what a script would otherwise scrape from text.
    let r = p.run(&["steps", "--output", "json"]);
    r.assert_code(0);
    let doc: Value = serde_json::from_str(&r.stdout).expect(&r.stdout);
    let steps = doc["steps"].as_array().unwrap();
    let names: Vec<&str> = steps.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["network", "database", "deploy_app"]);
    assert_eq!(steps[1]["needs"], serde_json::json!(["network"]));
    assert_eq!(steps[1]["file"].as_str().unwrap(), "steps/02_database.rhai");

    let r = p.run(&["graph", "--output", "json"]);
    r.assert_code(0);
    assert!(!r.stdout.contains("flowchart"), "{}", r.stdout);
    let doc: Value = serde_json::from_str(&r.stdout).expect(&r.stdout);
    assert_eq!(doc["steps"][2]["name"], "deploy_app");
    assert_eq!(doc["steps"][2]["needs"], serde_json::json!(["database"]));
    assert_eq!(doc["steps"][2]["decision"], "run");
    p.deploy(&[]).assert_code(0);
    let doc: Value = serde_json::from_str(&p.run(&["graph", "--output", "json"]).stdout).unwrap();
    assert_eq!(doc["steps"][0]["decision"], "skip");
    p.run(&["graph", "--format", "dot", "--output", "json"])
        .assert_code(2)
        .assert_contains("pick one");

    // What a command cannot print is refused, not ignored.
    for args in [
        &["state", "reset", "--output", "json"][..],
        &["watch", "--output", "json"],
        &["steps", "--secrets", "--output", "json"],
        &["graph", "--output", "markdown"],
        &["state", "unlock", "--output", "json"],
    ] {
        let r = p.run(args);
        r.assert_code(2).assert_contains("has no --output");
    }
    // Nothing was forgotten by the refused `state reset`.
    assert_eq!(p.status("network"), "completed");
}

#[test]
fn run_from_a_folder_inside_the_project_it_works_on_the_project() {
    let p = three_named_steps();
    std::fs::create_dir_all(p.path().join("docs/deep")).unwrap();
    for dir in ["steps", "docs/deep"] {
        let r = run_in(&p, dir, &["plan"]);
        r.assert_code(0).assert_contains("network");
    }
    let r = run_in(&p, "docs/deep", &["--auto-approve"]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["network", "database", "deploy_app"]);
    // The state is the project's, and nothing was written where the command was typed.
    assert_eq!(p.status("deploy_app"), "completed");
    assert!(!p.exists("docs/deep/.stepwise"));
    run_in(&p, "steps", &["plan", "--output", "json"])
        .assert_code(0)
        .assert_not_contains("\"run\"");

    // Paths given on the command line are the user's: no search upwards.
    run_in(&p, "docs", &["plan"]).assert_code(0);
    run_in(&p, "docs", &["plan", "--config", "config.yaml"])
        .assert_code(2)
        .assert_contains("config file config.yaml not found");
    run_in(
        &p,
        "docs",
        &["plan", "--config", "../config.yaml", "--steps", "../steps"],
    )
    .assert_code(0);
}

#[test]
fn outside_any_project_stepwise_says_so_and_suggests_init() {
    let empty = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(bin())
            .args(args)
            .current_dir(empty.path())
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        support::Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    };
    run(&["plan"])
        .assert_code(2)
        .assert_contains("no stepwise project here")
        .assert_contains("stepwise init")
        // No mention of an example that is not there.
        .assert_not_contains("example");
    assert!(!empty.path().join(".stepwise").exists());
    // A project with steps but no config: the example is named only when it exists.
    std::fs::create_dir(empty.path().join("steps")).unwrap();
    run(&["plan"])
        .assert_code(2)
        .assert_contains("config file config.yaml not found")
        .assert_not_contains("example");
    std::fs::write(empty.path().join("config.example.yaml"), "x: 1\n").unwrap();
    run(&["plan"])
        .assert_code(2)
        .assert_contains("config.example.yaml is a commented example");
}

#[test]
fn a_misspelt_step_or_environment_name_gets_a_suggestion() {
    let p = three_named_steps();
    p.deploy(&[]).assert_code(0);
    for (args, want) in [
        (
            &["plan", "--only", "netwrk"][..],
            "--only netwrk: no such step; did you mean `network`?",
        ),
        (
            &["plan", "--force-step", "databse"],
            "--force-step databse: no such step; did you mean `database`?",
        ),
        (
            &["state", "reset", "deploy-app"],
            "no step `deploy-app` in state",
        ),
        (&["state", "show", "netwrok"], "did you mean `network`?"),
    ] {
        p.run(args).assert_code(2).assert_contains(want);
    }
    p.run(&["state", "reset", "deploy-app"])
        .assert_contains("did you mean `deploy_app`?");
    assert_eq!(p.status("deploy_app"), "completed");

    p.file("config.prod.yaml", "deployment: {protected: true}\n");
    p.run(&["--env", "prdo", "plan"])
        .assert_code(2)
        .assert_contains("environment `prdo` has no overlay")
        .assert_contains("did you mean `prod`?");

    p.step("04_greet.rhai", &step(r#"needs: ["netwrk"]"#, ""));
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("needs unknown step `netwrk`; did you mean `network`?");
}

#[test]
fn bash_completes_environment_names_and_run_ids() {
    let p = three_named_steps();
    p.file("config.dev.yaml", "x: 1\n")
        .file("config.prod.yaml", "x: 2\n")
        .file("config.example.yaml", "x: 0\n");
    assert_eq!(bash_complete(&p, "stepwise --env "), ["dev", "prod"]);
    assert_eq!(bash_complete(&p, "stepwise plan --env p"), ["prod"]);
    assert_eq!(bash_complete(&p, "stepwise diff d"), ["dev"]);
    assert_eq!(
        bash_complete(&p, "stepwise --confirm-env "),
        ["dev", "prod"]
    );
    // Run ids of the kept reports, newest first, after `latest`.
    let first = p.deploy(&[]);
    first.assert_code(0);
    p.run(&["report", "--plan"]).assert_code(0);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let second = p.deploy(&["--force-all"]);
    second.assert_code(0);
    let id = |r: &support::Run| {
        p.report_of(r)
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned()
    };
    // (An empty word is offered the flags too.)
    let ids: Vec<String> = bash_complete(&p, "stepwise report ")
        .into_iter()
        .filter(|w| !w.starts_with('-'))
        .collect();
    assert_eq!(ids, ["latest".to_string(), id(&second), id(&first)]);
    assert_eq!(bash_complete(&p, "stepwise report lat"), ["latest"]);
}
