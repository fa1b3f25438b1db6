//! The real DraftGenie deployment (the 14 steps in steps/, prelude.rhai, examples/ and
//! config.example.yaml) against the stateful fake az (`FAKE_AZ_STATE`): what a first, a
//! second and a forced deployment run, what a changed config key or source file re-runs,
//! resuming after a failure, secrets, the graph, plan and dry run on a fresh checkout, and
//! `state import-legacy`.

use crate::support;
use serde_json::Value;
use std::collections::BTreeSet;
use support::{fixture, replace, repo, wait_for, Project, Run, Running};

const GEMINI: &str = "gem-TEST-secret-4711abc";
const JWT: &str = "jwt-TEST-secret-0815xyz";
const RABBIT: &str = "rabbit-TEST-secret-2342qq";

/// The 14 steps, in order.
const STEPS: [&str; 14] = [
    "check_prerequisites",
    "create_resource_group",
    "create_monitoring",
    "create_container_registry",
    "create_key_vault",
    "create_databases",
    "store_secrets",
    "create_container_apps_env",
    "build_and_push_images",
    "deploy_infrastructure_services",
    "deploy_application_services",
    "configure_environment_variables",
    "run_migrations",
    "verify_deployment",
];

const APP_NAMES: [&str; 5] = [
    "api-gateway",
    "speaker-service",
    "draft-service",
    "rag-service",
    "evaluation-service",
];

/// A checkout of the deployment (`support::draftgenie_checkout`).
fn checkout() -> Project {
    support::draftgenie_checkout()
}

/// A checkout with `config.yaml`: the example config with test secrets and no retry delay.
fn draftgenie() -> Project {
    support::draftgenie_project(&[
        ("gemini_api_key", GEMINI),
        ("jwt_secret", JWT),
        ("rabbitmq_password", RABBIT),
    ])
}

/// `draftgenie()` after its first deployment (`deploy --auto-approve`), and that deployment's
/// run: for the tests about what comes after it. The deployment is made once per set of
/// inputs (the checkout's files, the fakes, the stepwise binary) and shared by the test
/// processes (support::fixture); each test gets its own copy of the project folder, the fake's
/// resource model (`azure.json`) and the fakes' call logs included. Only the tests about a
/// first deployment deploy from nothing. With the state on blob storage, each test deploys
/// its own.
fn deployed() -> (Project, Run) {
    let p = draftgenie();
    if std::env::var("STEPWISE_TEST_STATE_BACKEND").as_deref() == Ok("blob") {
        let r = p.deploy(&[]);
        return (p, r);
    }
    let key = fixture::key(
        &[p.path(), &support::fixtures_bin()],
        &[&fixture::binary_identity()],
    );
    let dir = fixture::built_once("draftgenie-deployed", &key, |out| {
        let d = draftgenie();
        let r = d.deploy(&[]);
        r.assert_code(0);
        // Nothing the copies get may name the folder it was made in: the state, the model
        // and the logs hold relative paths only (and temporary files that are gone).
        let here = d.path().display().to_string();
        let naming = fixture::files_naming(d.path(), &here);
        assert!(naming.is_empty(), "files naming {here}: {naming:?}");
        fixture::copy_tree(d.path(), &out.join("project"));
        let run = serde_json::json!({"code": r.code, "stdout": r.stdout, "stderr": r.stderr});
        std::fs::write(out.join("run.json"), run.to_string()).unwrap();
    });
    fixture::copy_tree(&dir.join("project"), p.path());
    let run: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("run.json")).unwrap()).unwrap();
    let text = |k: &str| run[k].as_str().unwrap().to_string();
    let r = Run {
        code: run["code"].as_i64().unwrap() as i32,
        stdout: text("stdout"),
        stderr: text("stderr"),
    };
    (p, r)
}

/// The fake az's resource model.
fn azure(p: &Project) -> Value {
    serde_json::from_str(&p.read("azure.json")).expect("azure.json parses")
}

/// The command words of an az call (the items before the first option).
fn words(argv: &[String]) -> Vec<&str> {
    argv.iter()
        .take_while(|a| !a.starts_with('-'))
        .map(String::as_str)
        .collect()
}

fn starts(argv: &[String], prefix: &[&str]) -> bool {
    argv.len() >= prefix.len() && argv.iter().zip(prefix).all(|(a, b)| a == b)
}

/// The value after `flag` in an argv.
fn flag<'a>(argv: &'a [String], name: &str) -> Option<&'a str> {
    argv.iter()
        .position(|a| a == name)
        .and_then(|i| argv.get(i + 1))
        .map(String::as_str)
}

/// The items after `flag`, up to the next option.
fn items_after<'a>(argv: &'a [String], name: &str) -> Vec<&'a str> {
    match argv.iter().position(|a| a == name) {
        None => Vec::new(),
        Some(i) => argv[i + 1..]
            .iter()
            .take_while(|a| !a.starts_with("--"))
            .map(String::as_str)
            .collect(),
    }
}

fn show(calls: &[Vec<String>]) -> String {
    calls
        .iter()
        .map(|c| format!("  az {}", c.join(" ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Calls that only read: show / exists / list style, and the version.
fn is_read_only(argv: &[String]) -> bool {
    let w = words(argv);
    if w.is_empty() {
        return argv.first().map(String::as_str) == Some("--version");
    }
    let verb = *w.last().unwrap();
    matches!(
        verb,
        "show" | "exists" | "list" | "list-keys" | "get-shared-keys" | "show-deleted"
    )
}

/// The steps whose summary line says `✓ ran`, checked against the expected set.
#[track_caller]
fn assert_ran(r: &Run, expected: &[&str]) {
    assert_eq!(r.ran(), expected, "\n--- stdout\n{}", r.stdout);
}

#[test]
fn first_deployment_creates_everything_then_nothing_runs_and_a_forced_one_creates_nothing() {
    let p = draftgenie();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_ran(&r, &STEPS);
    // The summary ends with what the deployment produced for people: the gateway URL.
    let all = format!("{}{}", r.stdout, r.stderr);
    let tail = &all[all
        .rfind("Outputs:")
        .expect("the summary lists the public outputs")..];
    assert!(
        tail.contains("verify_deployment.gateway_url = https://"),
        "{tail}"
    );
    for s in STEPS {
        assert_eq!(p.status(s), "completed", "{s}");
    }
    let calls = p.az_calls();
    let has = |prefix: &[&str]| calls.iter().filter(|c| starts(c, prefix)).count();
    let one = |prefix: &[&str]| {
        assert_eq!(
            has(prefix),
            1,
            "expected one `az {}`:\n{}",
            prefix.join(" "),
            show(&calls)
        )
    };

    // The resource group: `group exists` is read (it prints false), then the group is created.
    let exists_at = calls
        .iter()
        .position(|c| starts(c, &["group", "exists"]))
        .expect("group exists");
    let create_at = calls
        .iter()
        .position(|c| starts(c, &["group", "create", "--name", "draftgenie-prod-rg"]))
        .expect("group create");
    assert!(exists_at < create_at);
    one(&["group", "create"]);
    one(&["acr", "create"]);
    one(&["keyvault", "create"]);
    one(&["monitor", "log-analytics", "workspace", "create"]);
    one(&["monitor", "app-insights", "component", "create"]);
    one(&["redis", "create"]);
    one(&["containerapp", "env", "create"]);
    one(&["postgres", "flexible-server", "db", "create"]);
    // PostgreSQL: --sku-name is the config's postgresql.sku (the original read a key that
    // does not exist).
    one(&["postgres", "flexible-server", "create"]);
    let pg = calls
        .iter()
        .find(|c| starts(c, &["postgres", "flexible-server", "create"]))
        .unwrap();
    assert_eq!(flag(pg, "--sku-name"), Some("Standard_B1ms"));
    assert_eq!(flag(pg, "--tier"), Some("Burstable"));
    assert!(pg.contains(&"--yes".to_string()));
    // Every provider registered.
    assert_eq!(has(&["provider", "register"]), 8);

    // The container apps: the five services, RabbitMQ and Qdrant, each created once.
    let created: Vec<&str> = calls
        .iter()
        .filter(|c| words(c) == ["containerapp", "create"])
        .map(|c| flag(c, "--name").unwrap())
        .collect();
    let mut expected: Vec<&str> = APP_NAMES.to_vec();
    expected.extend(["rabbitmq", "qdrant"]);
    assert_eq!(
        created.iter().copied().collect::<BTreeSet<_>>(),
        expected.iter().copied().collect::<BTreeSet<_>>()
    );
    assert_eq!(created.len(), 7, "{created:?}");

    // Environment variables: ONE --env-vars / --set-env-vars followed by all the items.
    for c in calls.iter().filter(|c| c[0] == "containerapp") {
        for f in ["--env-vars", "--set-env-vars"] {
            let n = c.iter().filter(|a| *a == f).count();
            assert!(n <= 1, "{f} more than once: az {}", c.join(" "));
            if n == 1 {
                let items = items_after(c, f);
                assert!(
                    !items.is_empty() && items.iter().all(|i| i.contains('=')),
                    "{f} items: az {}",
                    c.join(" ")
                );
            }
        }
    }
    for name in APP_NAMES {
        let create = calls
            .iter()
            .find(|c| words(c) == ["containerapp", "create"] && flag(c, "--name") == Some(name))
            .unwrap();
        let items = items_after(create, "--env-vars");
        for var in ["PORT=", "NODE_ENV=", "ENVIRONMENT=", "SERVICE_NAME="] {
            assert!(
                items.iter().any(|i| i.starts_with(var)),
                "{name}: {var} in {items:?}"
            );
        }
        // configure_environment_variables sets every service's full environment, including
        // the evaluation service (the original targeted `eval-service`).
        let update = calls
            .iter()
            .find(|c| {
                words(c) == ["containerapp", "update"]
                    && flag(c, "--name") == Some(name)
                    && c.contains(&"--set-env-vars".to_string())
            })
            .unwrap_or_else(|| panic!("no env update of {name}"));
        assert!(items_after(update, "--set-env-vars").len() >= 8);
    }
    for c in &calls {
        assert!(
            !c.iter().any(|a| a.contains("eval-service")),
            "eval-service: az {}",
            c.join(" ")
        );
    }

    // The images: five builds from their Dockerfiles in the build context, five pushes.
    let docker = p.docker_calls();
    let builds: Vec<&Vec<String>> = docker.iter().filter(|c| c[0] == "build").collect();
    let pushes: Vec<&Vec<String>> = docker.iter().filter(|c| c[0] == "push").collect();
    assert_eq!(builds.len(), 5, "{docker:?}");
    assert_eq!(pushes.len(), 5, "{docker:?}");
    for name in APP_NAMES {
        let tag = format!("draftgenieacr.azurecr.io/{name}:latest");
        let b = builds
            .iter()
            .find(|b| flag(b, "-t") == Some(tag.as_str()))
            .unwrap_or_else(|| panic!("no build of {tag}: {docker:?}"));
        assert_eq!(
            flag(b, "-f"),
            Some(format!("examples/draftgenie/docker/Dockerfile.{name}").as_str())
        );
        assert_eq!(b.last().unwrap(), "examples/draftgenie");
        assert!(pushes.iter().any(|p| p[1] == tag));
    }
    // The fake Azure holds what was created.
    let model = azure(&p);
    let resources = model["resources"].as_object().unwrap();
    let before: BTreeSet<String> = resources.keys().cloned().collect();
    assert!(before.contains("group||draftgenie-prod-rg"));
    assert!(before.contains("containerapp||evaluation-service"));
    let kv_before = model["secrets"].clone();
    for s in [
        "GEMINI-API-KEY",
        "JWT-SECRET",
        "RABBITMQ-PASSWORD",
        "POSTGRES-PASSWORD",
        "DATABASE-URL",
        "REDIS-URL",
    ] {
        assert!(
            kv_before["draftgenie-kv"][s].is_string(),
            "{s} in Key Vault"
        );
    }
    // Outputs that later steps read.
    let state = p.state();
    assert_eq!(
        state["steps"]["create_container_registry"]["outputs"]["login_server"],
        "draftgenieacr.azurecr.io"
    );
    assert!(state["steps"]["create_container_apps_env"]["outputs"]["default_domain"].is_string());

    // A second deployment: every step skipped, no az, no docker.
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("Plan: 0 to run, 14 up to date")
        .assert_contains("Nothing to do.");
    assert!(p.az_calls().is_empty(), "{}", show(&p.az_calls()));
    assert!(p.docker_calls().is_empty());

    // A forced redeployment where everything exists: every step runs, nothing is created,
    // deleted or recovered, no Key Vault secret is rewritten, the database and cache are not
    // modified. What does change is idempotent by design: CLI extensions and resource
    // providers (no-ops when present), `acr login` (local credentials), the container apps
    // and migration jobs are updated to the same desired configuration (secrets, registry,
    // ingress, image by digest, scale, environment), the migration jobs run again, and the
    // images are rebuilt and pushed (forced).
    let r = p.deploy(&["--force-all"]);
    r.assert_code(0);
    assert_ran(&r, &STEPS);
    let calls = p.az_calls();
    let allowed: &[&[&str]] = &[
        &["extension", "add"],
        &["provider", "register"],
        &["account", "show"],
        &["acr", "login"],
        &["acr", "credential", "show"],
        &["acr", "repository", "show"],
        &["containerapp", "secret", "set"],
        &["containerapp", "registry", "set"],
        &["containerapp", "ingress", "enable"],
        &["containerapp", "update"],
        &["containerapp", "job", "secret", "set"],
        &["containerapp", "job", "update"],
        &["containerapp", "job", "start"],
        &["containerapp", "job", "execution", "show"],
    ];
    let mut changing = Vec::new();
    for c in &calls {
        let w = words(c);
        assert!(
            !matches!(
                w.last().copied(),
                Some("create" | "delete" | "recover" | "purge")
            ),
            "forced redeployment ran az {}",
            c.join(" ")
        );
        if is_read_only(c) {
            continue;
        }
        assert!(
            allowed.iter().any(|a| w == *a),
            "unexpected change in a forced redeployment: az {}",
            c.join(" ")
        );
        changing.push(w.join(" "));
    }
    assert!(!calls
        .iter()
        .any(|c| starts(c, &["keyvault", "secret", "set"])));
    // The same resources, the same Key Vault secrets.
    let model = azure(&p);
    let after: BTreeSet<String> = model["resources"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(before, after);
    assert_eq!(kv_before, model["secrets"]);
    // Container apps were updated, not created: each of the seven once per kind of change.
    let updates = changing
        .iter()
        .filter(|w| *w == "containerapp update")
        .count();
    assert_eq!(
        updates,
        7 + 5,
        "7 apps updated + 5 environments set: {changing:?}"
    );
    let docker = p.docker_calls();
    assert_eq!(docker.iter().filter(|c| c[0] == "build").count(), 5);
}

#[test]
fn changing_postgresql_sku_reruns_create_databases_only_and_resizes_the_server() {
    let (p, first) = deployed();
    first.assert_code(0);
    let cfg = replace(
        &p.read("config.yaml"),
        "sku: Standard_B1ms",
        "sku: Standard_B2s",
    );
    p.config(&cfg);
    let plan = p.run(&["plan"]);
    plan.assert_code(0)
        .assert_contains("config postgresql changed")
        // store_secrets reads the server's outputs: decided once create_databases has run; and
        // the steps that read store_secrets' outputs after it.
        .assert_contains(
            "maybe   store_secrets                    runs if outputs of create_databases change",
        )
        .assert_contains(
            "maybe   configure_environment_variables  runs if outputs of store_secrets change",
        )
        .assert_contains(
            "maybe   run_migrations                   runs if outputs of store_secrets change",
        )
        // RabbitMQ reads its password's version (a Key Vault reference follows it).
        .assert_contains(
            "maybe   deploy_infrastructure_services   runs if outputs of store_secrets change",
        )
        .assert_contains("Plan: 1 to run, 9 up to date, 4 pending");

    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    // Only create_databases reads postgresql.sku; the steps after it read its outputs and
    // the secrets' versions, which did not change.
    assert_ran(&r, &["create_databases"]);
    assert!(r
        .summary_of("create_databases")
        .contains("config postgresql changed"));
    // Its outputs (server name, host names) are unchanged: store_secrets stays skipped, and so
    // do the steps that read the secrets' versions from it.
    assert!(r
        .summary_of("store_secrets")
        .contains("outputs of create_databases unchanged"));
    for s in [
        "configure_environment_variables",
        "run_migrations",
        "deploy_infrastructure_services",
    ] {
        assert!(
            r.summary_of(s)
                .contains("outputs of store_secrets unchanged"),
            "{s}"
        );
    }
    let calls = p.az_calls();
    let update = calls
        .iter()
        .find(|c| starts(c, &["postgres", "flexible-server", "update"]))
        .unwrap_or_else(|| panic!("the server was not resized:\n{}", show(&calls)));
    assert_eq!(flag(update, "--sku-name"), Some("Standard_B2s"));
    assert!(!calls.iter().any(|c| words(c).last() == Some(&"create")));
    assert!(!calls.iter().any(|c| starts(c, &["redis", "update"])));
    assert!(!calls
        .iter()
        .any(|c| starts(c, &["keyvault", "secret", "set"])));
    assert!(p.docker_calls().is_empty());
    let server = &azure(&p)["resources"]["postgres flexible-server||draftgenie-postgres"];
    assert_eq!(server["sku"]["name"], "Standard_B2s");

    // And then it is up to date.
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
}

#[test]
fn changing_a_service_source_file_rebuilds_its_image_and_rolls_out() {
    let (p, first) = deployed();
    first.assert_code(0);

    // Files the build context excludes (.dockerignore) change nothing.
    p.file(
        "examples/draftgenie/services/api-gateway/node_modules/left-pad/index.js",
        "module.exports = 1;\n",
    );
    p.file("examples/draftgenie/README.md", "edited\n");
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 14 up to date");

    let src = "examples/draftgenie/services/speaker-service/src/index.js";
    let text = p.read(src) + "\n// a change\n";
    p.file(src, &text);
    // The plan names the one image that would be rebuilt, and the four that would not.
    let plan = p.run(&["plan"]);
    plan.assert_code(0).assert_contains(
        "image draftgenieacr.azurecr.io/speaker-service:latest would be rebuilt: its Dockerfile examples/draftgenie/docker/Dockerfile.speaker-service or the files it copies from examples/draftgenie changed",
    );
    assert_eq!(
        plan.stdout.matches("would be rebuilt").count(),
        1,
        "{}",
        plan.stdout
    );
    assert_eq!(
        plan.stdout
            .matches("Dockerfile and copied files unchanged")
            .count(),
        4,
        "{}",
        plan.stdout
    );
    let doc: Value = serde_json::from_str(&p.run(&["plan", "--output", "json"]).stdout).unwrap();
    let build = doc["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "build_and_push_images")
        .unwrap();
    let rebuilt: Vec<&str> = build["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["rebuild"] == true)
        .map(|i| i["tag"].as_str().unwrap())
        .collect();
    assert_eq!(rebuilt, ["draftgenieacr.azurecr.io/speaker-service:latest"]);
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    // The build, then the steps that read the changed image digest (an output of the build):
    // the roll-out, the migrations (they ship in the images), and the verification (it reads
    // what was rolled out).
    assert_ran(
        &r,
        &[
            "build_and_push_images",
            "deploy_application_services",
            "run_migrations",
            "verify_deployment",
        ],
    );
    assert!(r
        .summary_of("deploy_application_services")
        .contains("output build_and_push_images.digest_speaker_service changed"));
    assert!(r
        .summary_of("build_and_push_images")
        .contains("directory examples/draftgenie/ changed"));
    // docker_build fingerprints each image (its Dockerfile and COPY sources): only the
    // speaker-service image is rebuilt and pushed.
    let docker = p.docker_calls();
    let built: Vec<&str> = docker
        .iter()
        .filter(|c| c[0] == "build")
        .map(|c| flag(c, "-t").unwrap())
        .collect();
    assert_eq!(built, ["draftgenieacr.azurecr.io/speaker-service:latest"]);
    assert_eq!(docker.iter().filter(|c| c[0] == "push").count(), 1);
    let calls = p.az_calls();
    assert!(
        !calls.iter().any(|c| words(c).last() == Some(&"create")),
        "{}",
        show(&calls)
    );
    // Exactly the app whose image digest changed is updated; the other apps see no az call.
    let about = |name: &str| -> Vec<&Vec<String>> {
        calls
            .iter()
            .filter(|c| {
                words(c).first() == Some(&"containerapp") && flag(c, "--name") == Some(name)
            })
            .collect()
    };
    let speaker = about("speaker-service");
    assert!(
        speaker
            .iter()
            .any(|c| words(c) == ["containerapp", "update"]
                && flag(c, "--image").is_some_and(|i| i.contains("speaker-service@sha256:"))),
        "{}",
        show(&calls)
    );
    for name in APP_NAMES.iter().filter(|n| **n != "speaker-service") {
        assert!(about(name).is_empty(), "{name}: {:?}", about(name));
    }
    // The speaker-service migration job runs again with the new image; the evaluation-service
    // job's image did not change: it is not touched.
    assert!(calls
        .iter()
        .any(|c| starts(c, &["containerapp", "job", "update"])
            && flag(c, "--name") == Some("speaker-service-migrate")));
    assert!(!calls
        .iter()
        .any(|c| flag(c, "--name") == Some("evaluation-service-migrate") && !is_read_only(c)));
}

#[test]
fn an_edited_dockerfile_updates_only_its_app_and_every_declaration_is_what_the_step_reads() {
    let (p, first) = deployed();
    first.assert_code(0);
    // `check`: no step reads what it does not declare...
    p.run(&["check"])
        .assert_code(0)
        .assert_contains("check: every recorded read is declared");
    // ... and every config key a step declares is one it read (or a key under it).
    let state = p.state();
    for s in STEPS {
        let file = std::fs::read_dir(p.path().join("steps"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|f| f.to_string_lossy().ends_with(&format!("_{s}.rhai")))
            .unwrap();
        let text = std::fs::read_to_string(&file).unwrap();
        let decl = text
            .split("config:")
            .nth(1)
            .and_then(|t| t.split(']').next())
            .unwrap_or("");
        let read: Vec<String> = state["steps"][s]["reads"]["config"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        for key in decl.split('"').skip(1).step_by(2) {
            assert!(
                read.iter().any(|r| r == key
                    || r.starts_with(&format!("{key}."))
                    || key.starts_with(&format!("{r}."))),
                "{s} declares config {key} but did not read it (read: {read:?})"
            );
        }
    }

    // An edited Dockerfile: the plan knows the build runs and what waits on its outputs.
    let dockerfile = "examples/draftgenie/docker/Dockerfile.api-gateway";
    p.file(dockerfile, &(p.read(dockerfile) + "\n# edited\n"));
    p.run(&["plan"])
        .assert_contains("run     build_and_push_images")
        .assert_contains("maybe   deploy_application_services      runs if outputs of build_and_push_images change")
        .assert_contains("maybe   run_migrations                   runs if outputs of build_and_push_images change")
        .assert_contains("Plan: 1 to run, 10 up to date, 3 pending");
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_ran(
        &r,
        &[
            "build_and_push_images",
            "deploy_application_services",
            "verify_deployment",
        ],
    );
    // The migrations ship in the speaker and evaluation images, whose digests did not change.
    assert!(r
        .summary_of("run_migrations")
        .contains("outputs of build_and_push_images unchanged"));
    let calls = p.az_calls();
    let touched: BTreeSet<&str> = calls
        .iter()
        .filter(|c| words(c).first() == Some(&"containerapp"))
        .filter_map(|c| flag(c, "--name"))
        .collect();
    assert_eq!(touched, BTreeSet::from(["api-gateway"]), "{}", show(&calls));
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
}

#[test]
fn a_failure_in_create_databases_resumes_at_create_databases() {
    let mut p = draftgenie();
    let azure_state = p.path().join("azure.json").display().to_string();
    p.env("FAKE_AZ_FAIL_ON", "redis create");
    let r = p.deploy(&[]);
    r.assert_code(1).assert_contains("redis create");
    assert_eq!(p.status("create_databases"), "failed");
    assert!(r
        .with_result("failed")
        .contains(&"create_databases".to_string()));
    let state = p.state();
    let completed_first: Vec<&str> = STEPS
        .iter()
        .copied()
        .filter(|s| state["steps"][*s]["status"] == "completed")
        .collect();
    for s in &STEPS[..5] {
        assert!(
            completed_first.contains(s),
            "{s} completed before the failure"
        );
    }
    // The server was created before the cache failed.
    let pg_creates = |p: &Project| {
        p.az_calls()
            .iter()
            .filter(|c| starts(c, &["postgres", "flexible-server", "create"]))
            .count()
    };
    assert_eq!(pg_creates(&p), 1);

    // Fixed: steps 1-5 are skipped, create_databases runs again, then everything after it.
    p.clear_env();
    p.env("FAKE_AZ_STATE", &azure_state);
    let r = p.deploy(&[]);
    r.assert_code(0);
    for s in &STEPS[..5] {
        assert!(
            r.summary_of(s).contains("skipped") && r.summary_of(s).contains("up to date"),
            "{s}: {}",
            r.summary_of(s)
        );
    }
    assert!(r.summary_of("create_databases").contains("failed before"));
    let expected: Vec<&str> = STEPS
        .iter()
        .copied()
        .filter(|s| !completed_first.contains(s))
        .collect();
    assert_eq!(expected[0], "create_databases");
    assert_ran(&r, &expected);
    // It reused the server (and its password in Key Vault) and created the cache.
    assert_eq!(pg_creates(&p), 1);
    assert!(!p
        .az_calls()
        .iter()
        .any(|c| starts(c, &["postgres", "flexible-server", "update"])));
    assert!(azure(&p)["resources"]["redis||draftgenie-redis"].is_object());
    for s in STEPS {
        assert_eq!(p.status(s), "completed", "{s}");
    }
}

#[test]
fn secrets_never_reach_the_state_the_logs_or_the_output() {
    let (mut p, first) = deployed();
    let mut runs = vec![first];
    runs[0].assert_code(0);
    // A failure whose message carries secrets (the fake az echoes the command line).
    p.env("FAKE_AZ_FAIL_ON", "containerapp secret set");
    let r = p.deploy(&["--force-step", "configure_environment_variables"]);
    r.assert_code(1);
    runs.push(r);
    runs.push(p.run(&["--dry-run", "--force-all"]));
    runs.push(p.run(&["state", "show"]));

    // Every secret that went to az: configured, generated, and read from Azure.
    let mut secrets: BTreeSet<String> = [GEMINI, JWT, RABBIT].map(String::from).into();
    for c in p.az_calls() {
        for f in [
            "--value",
            "--admin-password",
            "--registry-password",
            "--password",
            "--logs-workspace-key",
        ] {
            if let Some(v) = flag(&c, f) {
                secrets.insert(v.to_string());
            }
        }
        for f in ["--secrets"] {
            for item in items_after(&c, f) {
                secrets.insert(item.split_once('=').unwrap().1.to_string());
            }
        }
    }
    for v in azure(&p)["secrets"]["draftgenie-kv"]
        .as_object()
        .unwrap()
        .values()
    {
        secrets.insert(v.as_str().unwrap().to_string());
    }
    // The Redis key inside REDIS-URL (rediss://:KEY@host...), decoded.
    let redis_url = azure(&p)["secrets"]["draftgenie-kv"]["REDIS-URL"]
        .as_str()
        .unwrap()
        .to_string();
    let key = redis_url["rediss://:".len()..redis_url.find('@').unwrap()].replace("%3D", "=");
    secrets.insert(key);
    secrets
        .retain(|s| s.len() >= 8 && !s.starts_with("secretref:") && !s.starts_with("keyvaultref:"));
    assert!(secrets.len() >= 9, "{secrets:?}");

    let mut everything = p.local_files_text();
    everything.push_str(&serde_json::to_string(&p.state()).unwrap());
    for r in &runs {
        everything.push_str(&r.all());
    }
    for s in &secrets {
        assert!(!everything.contains(s.as_str()), "secret {s:?} leaked");
    }
    // The masked failure is still informative.
    assert!(runs[1].all().contains("containerapp secret set"));
    assert!(runs[1].all().contains("***"));
}

/// The `needs` edges of the 14 steps.
fn expected_edges() -> BTreeSet<(String, String)> {
    let needs: &[(&str, &[&str])] = &[
        ("create_resource_group", &["check_prerequisites"]),
        ("create_monitoring", &["create_resource_group"]),
        ("create_container_registry", &["create_resource_group"]),
        ("create_key_vault", &["create_resource_group"]),
        (
            "create_databases",
            &["create_resource_group", "create_key_vault"],
        ),
        (
            "store_secrets",
            &[
                "create_key_vault",
                "create_databases",
                "create_container_registry",
            ],
        ),
        ("create_container_apps_env", &["create_monitoring"]),
        ("build_and_push_images", &["create_container_registry"]),
        (
            "deploy_infrastructure_services",
            &[
                "create_container_apps_env",
                "store_secrets",
                "create_container_registry",
            ],
        ),
        (
            "deploy_application_services",
            &[
                "build_and_push_images",
                "store_secrets",
                "create_container_apps_env",
                "create_container_registry",
            ],
        ),
        (
            "configure_environment_variables",
            &[
                "deploy_application_services",
                "deploy_infrastructure_services",
                "store_secrets",
                "create_monitoring",
            ],
        ),
        (
            "run_migrations",
            &[
                "build_and_push_images",
                "store_secrets",
                "create_container_apps_env",
                "create_container_registry",
            ],
        ),
        (
            "verify_deployment",
            &[
                "configure_environment_variables",
                "run_migrations",
                "deploy_infrastructure_services",
            ],
        ),
    ];
    needs
        .iter()
        .flat_map(|(s, n)| n.iter().map(move |n| (n.to_string(), s.to_string())))
        .collect()
}

#[test]
fn graph_shows_the_needs_of_the_14_steps() {
    let p = draftgenie();
    let r = p.run(&["graph"]);
    r.assert_code(0).assert_contains("flowchart TD");
    let edges: BTreeSet<(String, String)> = r
        .stdout
        .lines()
        .filter_map(|l| l.trim().split_once(" --> "))
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(edges, expected_edges());
    for s in STEPS {
        assert!(
            r.stdout.contains(&format!("class {s} run")),
            "{s} would run"
        );
    }

    let r = p.run(&["graph", "--format", "dot"]);
    r.assert_code(0).assert_contains("digraph stepwise {");
    for (a, b) in expected_edges() {
        r.assert_contains(&format!("\"{a}\" -> \"{b}\";"));
    }

    let r = p.run(&["steps"]);
    r.assert_code(0);
    let listed: Vec<&str> = r
        .stdout
        .lines()
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .map(|l| l.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(listed, STEPS);
}

#[test]
fn plan_and_dry_run_work_on_a_fresh_checkout_without_azure() {
    let p = checkout();
    let r = p.run(&["--config", "config.example.yaml", "plan"]);
    r.assert_code(0)
        .assert_contains("Plan: 14 to run, 0 up to date");
    assert_eq!(r.stdout.matches("never ran").count(), 14);

    let r = p.run(&["--config", "config.example.yaml", "--dry-run"]);
    r.assert_code(0)
        .assert_contains("would run: az group create --name draftgenie-prod-rg --location eastus")
        .assert_contains("would run: az postgres flexible-server create")
        .assert_contains("--sku-name Standard_B1ms")
        .assert_contains(
            "would run: docker build -f examples/draftgenie/docker/Dockerfile.evaluation-service",
        )
        .assert_contains("would run: az containerapp create --name evaluation-service")
        .assert_contains("Dry run: no command ran and no state was written.")
        .assert_not_contains("eval-service ");
    assert_ran(&r, &STEPS);
    // Nothing ran: no az, docker or curl call, no fake Azure, no state.
    for log in ["az.log", "docker.log", "curl.log", "azure.json"] {
        assert!(!p.exists(log), "{log} exists");
    }
    assert!(!p.exists(".stepwise/state.json"));

    // As the README says: copy the example to config.yaml and plan.
    p.file("config.yaml", &p.read("config.example.yaml"));
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 14 to run");
    assert!(!p.exists("az.log"));
}

// ------------------------------------------------------------------ state import-legacy

/// The original tool's state file (a copy of the shared reference example).
fn legacy_file() -> String {
    std::fs::read_to_string(
        repo().join("tests/fixtures/legacy/azure-deployment-state-v1.example.json"),
    )
    .unwrap()
}

/// Points the config at the legacy file's resource group and puts the file in `legacy.json`.
fn use_legacy_names(p: &Project) {
    let cfg = replace(
        &p.read("config.yaml"),
        "resource_group: draftgenie-prod-rg",
        "resource_group: draftgenie-rg",
    );
    p.config(&cfg);
    p.file("legacy.json", &legacy_file());
}

/// A DraftGenie project whose config names the resources of the legacy file (its resource
/// group is `draftgenie-rg`), with the legacy file as `legacy.json`, and a local state file
/// whatever backend the tests use (import-legacy writes a local file).
fn legacy_project() -> Project {
    let mut p = draftgenie();
    use_legacy_names(&p);
    p.env("STEPWISE_STATE", ".stepwise/state.json");
    p
}

#[test]
fn import_legacy_marks_completed_steps_up_to_date_and_keeps_the_failed_one() {
    let p = legacy_project();
    let r = p.run(&["state", "import-legacy", "legacy.json"]);
    r.assert_code(0)
        .assert_contains("completed    create_resource_group")
        .assert_contains("failed       build_and_push_images")
        .assert_contains("Docker daemon not running")
        .assert_contains("login_server=draftgenieacr.azurecr.io")
        .assert_contains("container_registry.admin_password")
        .assert_contains("redis.primary_key")
        .assert_contains("8 completed, 1 to run again");

    let plan = p.run(&["plan"]);
    plan.assert_code(0)
        .assert_contains("Plan: 6 to run, 8 up to date");
    let line = |s: &str| {
        plan.stdout
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(s))
            .unwrap_or_else(|| panic!("{s} in plan:\n{}", plan.stdout))
            .to_string()
    };
    for s in &STEPS[..8] {
        let l = line(s);
        assert!(l.contains("skip") && l.contains("up to date"), "{l}");
    }
    assert!(line("build_and_push_images").contains("failed before"));
    for s in &STEPS[9..] {
        assert!(line(s).contains("never ran"), "{}", line(s));
    }

    // Outputs the steps read; no secret of the legacy file.
    let state_text = p.read(".stepwise/state.json");
    let state: Value = serde_json::from_str(&state_text).unwrap();
    assert_eq!(state["version"], "3.0");
    let outputs = |s: &str| state["steps"][s]["outputs"].clone();
    assert_eq!(
        outputs("create_container_registry")["login_server"],
        "draftgenieacr.azurecr.io"
    );
    assert_eq!(
        outputs("create_container_apps_env")["default_domain"],
        "gentleforest-322351b3.eastus.azurecontainerapps.io"
    );
    assert_eq!(
        outputs("create_databases")["redis_host"],
        "draftgenie-redis.redis.cache.windows.net"
    );
    assert_eq!(outputs("create_databases")["redis_ssl_port"], 6380);
    assert_eq!(
        outputs("create_key_vault")["vault_uri"],
        "https://draftgenie-kv.vault.azure.net/"
    );
    assert_eq!(state["steps"]["build_and_push_images"]["status"], "failed");
    for needle in [
        "REDACTED",
        "***",
        "\"admin_password\"",
        "\"primary_key\"",
        "\"connection_string\"",
        "\"instrumentation_key\"",
        "postgresql://",
        "rediss://",
    ] {
        assert!(
            !state_text.contains(needle),
            "{needle} in the imported state"
        );
    }
    // Non-secret values are kept for reference.
    assert_eq!(
        state["imported_from"]["resources"]["container_registry"]["admin_username"],
        "draftgenieacr"
    );
    // The imported hashes are those a deployment computes: it runs exactly the other six.
    let deploy_plan = p.run(&["--dry-run"]);
    deploy_plan.assert_code(0);
    assert_ran(
        &deploy_plan,
        &[
            "build_and_push_images",
            "deploy_infrastructure_services",
            "deploy_application_services",
            "configure_environment_variables",
            "run_migrations",
            "verify_deployment",
        ],
    );
}

#[test]
fn import_legacy_refuses_a_recorded_state_and_skips_renamed_resources() {
    let mut p = legacy_project();
    // A state that records steps is not overwritten.
    p.run(&["state", "import-legacy", "legacy.json"])
        .assert_code(0);
    let before = p.read(".stepwise/state.json");
    let r = p.run(&["state", "import-legacy", "legacy.json"]);
    r.assert_code(2)
        .assert_contains("already records 9 step(s)")
        .assert_contains("stepwise state reset");
    assert_eq!(p.read(".stepwise/state.json"), before);

    // After `state reset`, with the example config: its resource group (draftgenie-prod-rg)
    // is not the legacy one (draftgenie-rg), so no step counts as done.
    p.run(&["state", "reset"]).assert_code(0);
    p.file("config.yaml", &p.read("config.example.yaml"));
    let r = p.run(&["state", "import-legacy", "legacy.json"]);
    r.assert_code(0)
        .assert_contains("not imported create_resource_group")
        .assert_contains(
            "\"draftgenie-rg\" but config azure.resource_group is \"draftgenie-prod-rg\"",
        )
        .assert_contains("0 completed, 1 to run again (failed or interrupted), 8 not imported");
    let plan = p.run(&["plan"]);
    plan.assert_code(0)
        .assert_contains("Plan: 14 to run, 0 up to date");

    // A renamed registry only affects its step.
    p.run(&["state", "reset"]).assert_code(0);
    let cfg = replace(
        &p.read("config.yaml"),
        "resource_group: draftgenie-prod-rg",
        "resource_group: draftgenie-rg",
    );
    let cfg = replace(&cfg, "name: draftgenieacr ", "name: draftgenieacr2 ");
    p.file("config.yaml", &cfg);
    let r = p.run(&["state", "import-legacy", "legacy.json"]);
    r.assert_code(0)
        .assert_contains("not imported create_container_registry")
        .assert_contains("7 completed, 1 to run again (failed or interrupted), 1 not imported");

    // Importing in place: the old-format file where the state goes is backed up and replaced.
    p.clear_env();
    p.env("STEPWISE_STATE", "old/state.json");
    p.file("old/state.json", &legacy_file());
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("import-legacy");
    let r = p.run(&["state", "import-legacy", "old/state.json"]);
    r.assert_code(0).assert_contains("backed up to");
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("7 up to date");

    // Not a legacy file.
    p.file("new.json", "{\"version\": \"2.0\", \"steps\": {}}");
    p.run(&["state", "import-legacy", "new.json"])
        .assert_code(2)
        .assert_contains("already stepwise's format");
    p.file("bad.json", "{\"version\": ");
    p.run(&["state", "import-legacy", "bad.json"])
        .assert_code(2)
        .assert_contains("bad.json:1:");
}

#[test]
fn import_legacy_writes_the_state_where_deployments_keep_it_on_blob_storage() {
    let azurite = support::Azurite::start();
    let mut p = draftgenie();
    use_legacy_names(&p);
    let location = azurite.new_location();
    p.on_blob(&azurite, &location);

    let r = p.run(&["state", "import-legacy", "legacy.json"]);
    r.assert_code(0)
        .assert_contains(&format!("into {location}"))
        .assert_contains("8 completed");
    assert!(!p.exists(".stepwise/state.json"), "nothing written locally");
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains("Plan: 6 to run, 8 up to date");
    let state = p.state();
    assert_eq!(
        state["steps"]["create_container_registry"]["outputs"]["login_server"],
        "draftgenieacr.azurecr.io"
    );
    // The blob state now records steps: a second import is refused.
    p.run(&["state", "import-legacy", "legacy.json"])
        .assert_code(2)
        .assert_contains("stepwise state reset");
}

/// Seconds since midnight of an RFC 3339 time as stepwise records it (same day in a test).
fn secs_of_day(t: &str) -> f64 {
    let time = t.split('T').nth(1).expect("an RFC 3339 time");
    let time = time.trim_end_matches('Z');
    let mut parts = time.split(':');
    let h: f64 = parts.next().unwrap().parse().unwrap();
    let m: f64 = parts.next().unwrap().parse().unwrap();
    let s: f64 = parts.next().unwrap().parse().unwrap();
    h * 3600.0 + m * 60.0 + s
}

#[test]
fn in_watch_verify_deployment_waits_for_the_roll_out_though_configure_environment_variables_is_skipped(
) {
    let (p, first) = deployed();
    first.assert_code(0);
    // Rolling out an app takes a while: every `containerapp update` sleeps, then answers.
    p.file(
        "az-rules.json",
        &serde_json::json!([
            {"args": ["containerapp", "update"], "sleep": 0.5, "pass": true}
        ])
        .to_string(),
    );
    // An edited Dockerfile, and a setting that only verify_deployment reads: it runs for a
    // reason of its own, and must still wait for the roll-out of the new image.
    let dockerfile = "examples/draftgenie/docker/Dockerfile.api-gateway";
    p.file(dockerfile, &(p.read(dockerfile) + "\n# edited\n"));
    p.config(&replace(
        &p.read("config.yaml"),
        "retry_attempts: 3",
        "retry_attempts: 4",
    ));
    let out = "watch.out";
    let cycles = |p: &Project| p.read(out).matches("[watch] waiting for changes").count();
    let child = Running(Some(p.spawn_logged(&["watch"], out)));
    let limit = std::time::Duration::from_secs(180);
    assert!(wait_for(limit, || cycles(&p) >= 1), "{}", p.read(out));
    child.signal_and_wait(libc::SIGINT);
    let text = p.read(out);
    assert!(
        text.contains(
            "run     verify_deployment                config advanced.retry_attempts changed"
        ),
        "{text}"
    );
    for s in [
        "build_and_push_images",
        "deploy_application_services",
        "verify_deployment",
    ] {
        assert!(
            text.contains(&format!("✓ {s} ran")),
            "{s} did not run:\n{text}"
        );
    }
    assert!(
        !text.contains("✓ configure_environment_variables ran"),
        "{text}"
    );
    let state = p.state();
    let time = |step: &str, field: &str| {
        secs_of_day(
            state["steps"][step][field]
                .as_str()
                .unwrap_or_else(|| panic!("no {field} for {step}: {}", state["steps"][step])),
        )
    };
    let verify = time("verify_deployment", "started_at");
    let end = time("deploy_application_services", "finished_at");
    assert!(
        verify >= end,
        "verify_deployment started at {verify} before deploy_application_services ended at {end}\n{text}"
    );
}

/// Removes or changes a resource in the fake az's model, as someone would in the portal.
fn behind_our_back(p: &Project, change: impl FnOnce(&mut Value)) {
    let mut model = azure(p);
    change(&mut model);
    p.file("azure.json", &model.to_string());
}

#[test]
fn refresh_names_exactly_the_drift_repairs_it_and_then_finds_nothing() {
    let (p, first) = deployed();
    first.assert_code(0);
    // Unchanged: a refresh checks every step with a handful of reads.
    p.clear_calls();
    p.run(&["plan", "--refresh"])
        .assert_code(0)
        .assert_contains("Plan: 0 to run, 14 up to date");
    let reads = p.az_calls();
    assert!(
        reads.len() <= 30,
        "{} az calls:\n{}",
        reads.len(),
        show(&reads)
    );
    assert!(
        reads.iter().all(|c| is_read_only(c)
            || words(c) == ["account", "show"]
            || words(c) == ["acr", "repository", "show"]
            || words(c).ends_with(&["execution", "list"])),
        "{}",
        show(&reads)
    );

    // The Redis cache is deleted in the portal.
    behind_our_back(&p, |m| {
        m["resources"]
            .as_object_mut()
            .unwrap()
            .remove("redis||draftgenie-redis")
            .expect("the cache exists");
    });
    p.clear_calls();
    p.run(&["plan"])
        .assert_contains("Plan: 0 to run, 14 up to date");
    assert!(p.az_calls().is_empty(), "no az call without --refresh");
    let r = p.run(&["plan", "--refresh"]);
    r.assert_code(0)
        .assert_contains("run     create_databases                 drift: Redis cache draftgenie-redis not found")
        // store_secrets reads the cache's outputs: decided when create_databases has run.
        .assert_contains("maybe   store_secrets")
        .assert_contains("Plan: 1 to run, 9 up to date, 4 pending");
    let r = p.deploy(&["--refresh"]);
    r.assert_code(0);
    assert_ran(&r, &["create_databases"]);
    assert!(azure(&p)["resources"]["redis||draftgenie-redis"].is_object());
    p.deploy(&["--refresh"])
        .assert_code(0)
        .assert_contains("Nothing to do.");

    // Another image on one app: drift for the step that deploys it, and that step only.
    behind_our_back(&p, |m| {
        m["resources"]["containerapp||api-gateway"]["properties"]["template"]["containers"][0]
            ["image"] = serde_json::json!("someone/else:v1");
    });
    let r = p.run(&["plan", "--refresh"]);
    r.assert_code(0)
        .assert_contains("run     deploy_application_services      drift: container app api-gateway runs image someone/else:v1, expected draftgenieacr.azurecr.io/api-gateway@sha256:")
        .assert_contains("Plan: 1 to run");
    p.clear_calls();
    p.deploy(&["--refresh"]).assert_code(0);
    let image = azure(&p)["resources"]["containerapp||api-gateway"]["properties"]["template"]
        ["containers"][0]["image"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        image.starts_with("draftgenieacr.azurecr.io/api-gateway@sha256:"),
        "{image}"
    );
    p.deploy(&["--refresh"])
        .assert_code(0)
        .assert_contains("Nothing to do.");

    // A secret an app's variable points at is removed: drift of the step that set it.
    behind_our_back(&p, |m| {
        let secrets = m["resources"]["containerapp||api-gateway"]["properties"]["configuration"]
            ["secrets"]
            .as_array_mut()
            .expect("the app lists its secrets");
        secrets.retain(|s| s["name"] != "jwt-secret");
    });
    p.run(&["plan", "--refresh"])
        .assert_code(0)
        .assert_contains("run     configure_environment_variables  drift: container app api-gateway: secret jwt-secret (for JWT_SECRET) is missing")
        .assert_contains("Plan: 1 to run");
}

/// Issue #23, item 13: an identity answered without `principalId` fails
/// create_container_registry with a clear message, before any command gets an empty id.
#[test]
fn an_identity_answered_without_a_principal_id_fails_create_container_registry_clearly() {
    let mut p = draftgenie();
    p.env("FAKE_AZ_IDENTITY_WITHOUT_PRINCIPAL_ID", "1");
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("managed identity draftgenie-apps has no principalId in az's answer: it cannot be granted AcrPull or Key Vault access")
        .assert_contains("az identity show --name draftgenie-apps --resource-group");
    assert_eq!(p.status("create_container_registry"), "failed");
    for call in p.az_calls() {
        for name in ["--assignee", "--assignee-object-id", "--object-id"] {
            assert_ne!(
                flag(&call, name),
                Some(""),
                "an empty {name}: {}",
                call.join(" ")
            );
        }
    }
    // Once az answers with it, the deployment goes on from there.
    let azure = p.path().join("azure.json").display().to_string();
    p.clear_env().env("FAKE_AZ_STATE", &azure);
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.status("create_container_registry"), "completed");
}

/// Issue #23, item 13: run_migrations' verify() judges each job by the execution that started
/// last (`properties.startTime`), whatever order `execution list` answers in.
#[test]
fn run_migrations_verify_judges_the_execution_that_started_last_in_any_list_order() {
    let (mut p, first) = deployed();
    first.assert_code(0);
    // A second execution of each migration job.
    p.deploy(&["--force-step", "run_migrations"]).assert_code(0);
    let set_status = |p: &Project, which: usize, status: &str| {
        behind_our_back(p, |m| {
            for job in ["speaker-service-migrate", "evaluation-service-migrate"] {
                let runs = m["resources"][format!("containerapp job||{job}")]["_runs"]
                    .as_array_mut()
                    .expect("the job's executions");
                assert_eq!(runs.len(), 2, "{job}: {runs:?}");
                for (i, r) in runs.iter_mut().enumerate() {
                    r["status"] = serde_json::json!(if i == which { status } else { "Succeeded" });
                }
            }
        })
    };
    // The first execution failed, the one after it succeeded; the newest is listed first.
    set_status(&p, 0, "Failed");
    p.env("FAKE_AZ_EXECUTION_ORDER", "newest-first");
    p.run(&["plan", "--refresh"])
        .assert_code(0)
        .assert_not_contains("drift")
        .assert_contains("Plan: 0 to run, 14 up to date");
    // The newest failed: drift, in either order.
    set_status(&p, 1, "Failed");
    for order in ["newest-first", "oldest-first"] {
        p.env("FAKE_AZ_EXECUTION_ORDER", order);
        p.run(&["plan", "--refresh"])
            .assert_code(0)
            .assert_contains("run     run_migrations                   drift: the last execution of migration job speaker-service-migrate is Failed, not Succeeded")
            .assert_contains("Plan: 1 to run");
    }
}

// ------------------------------------------------------------------ environments

/// The example's dev and prod overlays, deployed one after the other into one (fake)
/// subscription: each with its own resource names, SKUs, replica counts and tags, each with
/// its own state.
#[test]
fn the_example_dev_and_prod_overlays_deploy_side_by_side_with_their_own_names() {
    let mut p = draftgenie();
    // One subscription per environment (the fake az names a container app without its
    // resource group, so two environments' `api-gateway` would be one app in one model).
    let model = |env: &str| {
        p.path()
            .join(format!("azure-{env}.json"))
            .display()
            .to_string()
    };
    let (dev_model, prod_model) = (model("dev"), model("prod"));
    for env in ["dev", "prod"] {
        std::fs::copy(
            repo().join(format!("config.{env}.example.yaml")),
            p.path().join(format!("config.{env}.yaml")),
        )
        .unwrap();
    }
    // As the README's quickstart says.
    p.run(&["--env", "dev", "plan"])
        .assert_code(0)
        .assert_contains("Environment dev:")
        .assert_contains("Plan: 14 to run, 0 up to date");

    p.env("FAKE_AZ_STATE", &dev_model);
    let r = p.deploy(&["--env", "dev"]);
    r.assert_code(0);
    assert_ran(&r, &STEPS);
    let dev_calls = p.az_calls();
    p.clear_calls();
    // prod has its own state: dev's deployment does not make it up to date.
    p.env("FAKE_AZ_STATE", &prod_model);
    let r = p.deploy(&["--env", "prod"]);
    r.assert_code(0);
    assert_ran(&r, &STEPS);
    let prod_calls = p.az_calls();

    let find = |calls: &[Vec<String>], prefix: &[&str], name: &str| -> Vec<String> {
        calls
            .iter()
            .find(|c| starts(c, prefix) && flag(c, "--name") == Some(name))
            .unwrap_or_else(|| panic!("no az {} --name {name}:\n{}", prefix.join(" "), show(calls)))
            .clone()
    };
    for (calls, env, rg, tag, pg_sku, tier, replicas) in [
        (
            &dev_calls,
            "dev",
            "draftgenie-dev-rg",
            "Environment=development",
            "Standard_B1ms",
            "Burstable",
            "0",
        ),
        (
            &prod_calls,
            "prod",
            "draftgenie-prod-rg",
            "Environment=production",
            "Standard_D2ds_v5",
            "GeneralPurpose",
            "2",
        ),
    ] {
        let group = find(calls, &["group", "create"], rg);
        assert!(
            items_after(&group, "--tags").contains(&tag),
            "{env}: {group:?}"
        );
        let pg = find(
            calls,
            &["postgres", "flexible-server", "create"],
            &format!("draftgenie-{env}-postgres"),
        );
        assert_eq!(flag(&pg, "--sku-name"), Some(pg_sku));
        assert_eq!(flag(&pg, "--tier"), Some(tier));
        find(calls, &["acr", "create"], &format!("draftgenie{env}acr"));
        find(
            calls,
            &["keyvault", "create"],
            &format!("draftgenie-{env}-kv"),
        );
        let gw = find(calls, &["containerapp", "create"], "api-gateway");
        assert_eq!(flag(&gw, "--min-replicas"), Some(replicas));
        assert_eq!(flag(&gw, "--resource-group"), Some(rg));
        // No call of one environment touches the other's resource group.
        let other = if env == "dev" {
            "draftgenie-prod-rg"
        } else {
            "draftgenie-dev-rg"
        };
        assert!(
            !calls.iter().any(|c| c.iter().any(|a| a == other)),
            "{env} touched {other}"
        );
    }
    for (env, model) in [("dev", &dev_model), ("prod", &prod_model)] {
        let azure: Value = serde_json::from_str(&std::fs::read_to_string(model).unwrap()).unwrap();
        let groups: BTreeSet<&str> = azure["resources"]
            .as_object()
            .unwrap()
            .values()
            .filter_map(|r| r["resourceGroup"].as_str())
            .collect();
        assert_eq!(
            groups,
            BTreeSet::from([format!("draftgenie-{env}-rg").as_str()])
        );
    }

    // Both up to date; promoting dev to prod: names, SKUs, replicas, tags differ, no secret.
    p.clear_calls();
    for (env, model) in [("dev", &dev_model), ("prod", &prod_model)] {
        p.env("FAKE_AZ_STATE", model);
        p.deploy(&["--env", env])
            .assert_code(0)
            .assert_contains("Nothing to do.");
    }
    assert!(p.az_calls().is_empty());
    let r = p.run(&["diff", "dev", "prod"]);
    r.assert_code(0)
        .assert_contains("\"draftgenie-dev-rg\" → \"draftgenie-prod-rg\"")
        .assert_contains("\"development\" → \"production\"")
        .assert_contains("check_prerequisites              same");
    for s in [GEMINI, JWT, RABBIT] {
        r.assert_not_contains(s);
    }
    // prod is protected: no --force-all without its name.
    p.deploy(&["--env", "prod", "--force-all"])
        .assert_code(1)
        .assert_contains("--confirm-env prod");
}

/// The keys the fake az hands out (`fake_key` in tests/fixtures/bin/fake_az.py).
fn fake_key(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let digest = hex::encode(Sha256::digest(
        format!("key/{}", parts.join("/")).as_bytes(),
    ));
    format!("{}==", &digest[..40])
}

/// Is `argv` an az command that starts with `words` (ignoring `--output json`)?
fn is_command(argv: &[String], w: &[&str]) -> bool {
    words(argv) == w
}

/// After a full deployment, a forced one, and one that sets a new PostgreSQL password: no
/// secret value (configured, generated or handed out by Azure; plain, URL-encoded or base64)
/// stands in any recorded az or docker argv, except the PostgreSQL admin password right after
/// `--admin-password` of `postgres flexible-server create/update`; no registry password is
/// used; every app and job secret is a Key Vault reference; Key Vault values travel in 0600
/// files that are gone when the run ends.
#[test]
fn no_secret_on_any_command_line_of_a_full_deployment() {
    let (p, r) = deployed();
    r.assert_code(0);
    assert_ran(&r, &STEPS);
    // The example config refuses secrets on command lines: the run above proves none was
    // refused, the checks below that none slipped through in another form.
    assert!(p.read("config.yaml").contains("strict_secrets: true"));
    p.deploy(&["--force-all"]).assert_code(0);
    let cfg = replace(
        &p.read("config.yaml"),
        "admin_password: ''",
        "admin_password: 'Pg-new-Passw0rd-#1'",
    );
    p.config(&cfg);
    p.deploy(&[]).assert_code(0);

    let model = azure(&p);
    let mut secrets: BTreeSet<String> = [GEMINI, JWT, RABBIT, "Pg-new-Passw0rd-#1"]
        .map(String::from)
        .into();
    for v in model["secrets"]["draftgenie-kv"]
        .as_object()
        .unwrap()
        .values()
    {
        secrets.insert(v.as_str().unwrap().to_string());
    }
    for key in [
        ["acr1", "draftgenieacr"],
        ["acr2", "draftgenieacr"],
        ["redis1", "draftgenie-redis"],
        ["redis2", "draftgenie-redis"],
        ["ws1", "draftgenie-logs"],
        ["ws2", "draftgenie-logs"],
    ] {
        secrets.insert(fake_key(&key));
    }
    let pg_passwords: BTreeSet<String> = p
        .az_calls()
        .iter()
        .filter(|c| {
            is_command(c, &["postgres", "flexible-server", "create"])
                || is_command(c, &["postgres", "flexible-server", "update"])
        })
        .filter_map(|c| flag(c, "--admin-password").map(str::to_string))
        .collect();
    // The exception is really exercised (so this test can see a password in argv at all).
    assert!(
        pg_passwords.contains("Pg-new-Passw0rd-#1"),
        "{pg_passwords:?}"
    );
    assert_eq!(pg_passwords.len(), 2, "generated, then configured");
    secrets.extend(pg_passwords.iter().cloned());
    assert!(secrets.len() >= 15, "{secrets:?}");

    let mut leaks = Vec::new();
    let mut all: Vec<(&str, Vec<String>)> = Vec::new();
    let az = p.az_calls();
    let docker = p.docker_calls();
    all.extend(az.iter().map(|c| ("az", c.clone())));
    all.extend(docker.iter().map(|c| ("docker", c.clone())));
    for (program, argv) in &all {
        for (i, arg) in argv.iter().enumerate() {
            let exception = *program == "az"
                && i > 0
                && argv[i - 1] == "--admin-password"
                && (is_command(argv, &["postgres", "flexible-server", "create"])
                    || is_command(argv, &["postgres", "flexible-server", "update"]))
                && pg_passwords.contains(arg);
            if exception {
                continue;
            }
            for s in &secrets {
                for (form, v) in [
                    ("plain", s.clone()),
                    ("url", support::url(s)),
                    ("base64", support::b64(s)),
                ] {
                    if arg.contains(&v) {
                        leaks.push(format!("{form} {s:?} in {program} {}", argv.join(" ")));
                    }
                }
            }
        }
        for f in [
            "--registry-password",
            "--password",
            "--registry-username",
            "--value",
        ] {
            assert!(
                !argv.iter().any(|a| a == f),
                "{f} in {program} {}",
                argv.join(" ")
            );
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets on command lines:\n{}",
        leaks.join("\n")
    );

    // App and job secrets are Key Vault references read with the apps' identity.
    let identity = "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/draftgenie-prod-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/draftgenie-apps";
    let mut items = 0;
    for c in &az {
        for f in ["--secrets", "-s"] {
            for item in items_after(c, f) {
                items += 1;
                let (_, value) = item.split_once('=').unwrap();
                assert!(
                    value.starts_with("keyvaultref:https://draftgenie-kv.vault.azure.net/secrets/")
                        && value.ends_with(&format!(",identityref:{identity}")),
                    "not a Key Vault reference: {item}"
                );
            }
        }
    }
    assert!(items >= 20, "{items} secret items");
    let resources = model["resources"].as_object().unwrap();
    let mut apps = 0;
    for r in resources.values() {
        let group = r["_group"].as_str().unwrap();
        if group != "containerapp" && group != "containerapp job" {
            continue;
        }
        apps += 1;
        let conf = &r["properties"]["configuration"];
        for s in conf["secrets"].as_array().unwrap() {
            assert!(s["keyVaultUrl"].is_string(), "{}: {s}", r["name"]);
            assert_eq!(s["identity"], identity);
        }
        for reg in conf["registries"].as_array().unwrap() {
            assert_eq!(reg["identity"], identity, "{}", r["name"]);
            assert_eq!(reg["passwordSecretRef"], "", "{}", r["name"]);
        }
        assert!(
            r.get("_secret_values").is_none(),
            "{}: plain secret values",
            r["name"]
        );
    }
    assert_eq!(apps, 9, "7 apps and 2 jobs");
    assert_eq!(
        resources["acr||draftgenieacr"]["adminUserEnabled"], false,
        "admin user off"
    );
    // The identity pulls (AcrPull on the registry) and reads the vault's secrets.
    let principal = resources["identity||draftgenie-apps"]["principalId"].clone();
    assert!(model["roleAssignments"]
        .as_array()
        .unwrap()
        .iter()
        .any(|a| {
            a["principalId"] == principal
                && a["roleDefinitionName"] == "AcrPull"
                && a["scope"]
                    .as_str()
                    .unwrap()
                    .ends_with("/registries/draftgenieacr")
        }));
    assert!(
        resources["keyvault||draftgenie-kv"]["properties"]["accessPolicies"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["objectId"] == principal)
    );

    // Key Vault values went through private files, gone after the run.
    let sets: Vec<_> = support::az_calls_with_files(&p)
        .into_iter()
        .filter(|(c, _)| is_command(c, &["keyvault", "secret", "set"]))
        .collect();
    assert!(sets.len() >= 8, "{} keyvault secret set", sets.len());
    for (c, files) in &sets {
        let path = flag(c, "--file").expect("--file");
        assert_eq!(flag(c, "--encoding"), Some("utf-8"));
        assert_eq!(files.get(path), Some(&Some("0600".to_string())), "{c:?}");
        assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    }
}

/// An existing deployment (registry password, plain secrets) upgrades in place: the identity
/// is created and granted before any app uses it, each app and job gets the identity before its
/// registry entry and secrets switch to it (the fake az refuses any other order, as Azure
/// would), the admin user goes off only after the last one switched, and verify_deployment
/// checks the result (and catches a leftover plain secret).
#[test]
fn an_existing_deployment_upgrades_in_place_to_the_identity_and_key_vault_references() {
    let (p, first) = deployed();
    first.assert_code(0);
    support::draftgenie_as_before_the_identity(&p.path().join("azure.json"));
    p.clear_calls();
    // New step scripts re-run every step that uses them; --force-all does the same here.
    let r = p.deploy(&["--force-all"]);
    r.assert_code(0);
    assert_ran(&r, &STEPS);

    let calls = p.az_calls();
    let at = |pred: &dyn Fn(&Vec<String>) -> bool| calls.iter().position(pred);
    let grant_pull = at(&|c| is_command(c, &["role", "assignment", "create"])).expect("AcrPull");
    let grant_read = at(&|c| is_command(c, &["keyvault", "set-policy"])).expect("set-policy");
    let admin_off = at(&|c| is_command(c, &["acr", "update"])).expect("admin user disabled");
    assert_eq!(flag(&calls[admin_off], "--admin-enabled"), Some("false"));
    let mut last_switch = 0;
    for (kind, names) in [
        (&["containerapp"][..], APP_NAMES.to_vec()),
        (
            &["containerapp", "job"][..],
            vec!["speaker-service-migrate", "evaluation-service-migrate"],
        ),
    ] {
        for name in names {
            let of = |sub: &[&str]| {
                let w: Vec<&str> = kind.iter().chain(sub).copied().collect();
                at(&|c| is_command(c, &w) && flag(c, "--name") == Some(name))
                    .unwrap_or_else(|| panic!("no az {} for {name}", w.join(" ")))
            };
            let assign = of(&["identity", "assign"]);
            let registry = of(&["registry", "set"]);
            let removed = of(&["secret", "remove"]);
            let secrets = of(&["secret", "set"]);
            assert!(
                grant_pull < assign && assign < registry && registry < removed,
                "{name}"
            );
            assert!(grant_read < secrets && assign < secrets, "{name}");
            assert_eq!(
                flag(&calls[registry], "--identity").map(|i| i.ends_with("/draftgenie-apps")),
                Some(true)
            );
            last_switch = last_switch.max(registry);
        }
    }
    assert!(
        last_switch < admin_off,
        "admin user disabled while still in use"
    );
    // RabbitMQ reads its password from Key Vault too.
    let rabbit = at(&|c| {
        is_command(c, &["containerapp", "identity", "assign"])
            && flag(c, "--name") == Some("rabbitmq")
    })
    .expect("rabbitmq identity");
    let rabbit_secret = at(&|c| {
        is_command(c, &["containerapp", "secret", "set"]) && flag(c, "--name") == Some("rabbitmq")
    })
    .expect("rabbitmq secret");
    assert!(grant_read < rabbit_secret && rabbit < rabbit_secret);

    // A leftover plain secret is reported by verify_deployment.
    let mut model = azure(&p);
    model["resources"]["containerapp||draft-service"]["properties"]["configuration"]["secrets"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({ "name": "legacy-token" }));
    std::fs::write(p.path().join("azure.json"), model.to_string()).unwrap();
    p.deploy(&["--force-step", "verify_deployment"])
        .assert_code(1)
        .assert_contains(
            "draft-service: secret legacy-token holds a value, not a Key Vault reference",
        );
}

#[test]
fn rollback_returns_the_changed_app_to_its_earlier_digest_and_the_next_deploy_rolls_forward() {
    let p = draftgenie();
    p.deploy(&[]).assert_code(0);
    let state = p.state();
    let first = state["run_id"].as_str().unwrap().to_string();
    let digest = |s: &Value| {
        s["steps"]["build_and_push_images"]["outputs"]["digest_speaker_service"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let a = digest(&state);
    let src = "examples/draftgenie/services/speaker-service/src/index.js";
    let text = p.read(src) + "\n// a change\n";
    p.file(src, &text);
    p.deploy(&[]).assert_code(0);
    let b = digest(&p.state());
    assert_ne!(a, b, "the change built a new image");

    p.clear_calls();
    let r = p.run(&["rollback", "--auto-approve"]);
    r.assert_code(0)
        .assert_contains(&format!("Rollback to run {first}"))
        .assert_contains("deploy_application_services rollback")
        .assert_contains("configure_environment_variables unchanged")
        .assert_contains("deploy_infrastructure_services unchanged");
    // The migrations ran with the new image: they cannot be undone, and say so.
    assert!(
        r.stderr.contains("run_migrations cannot roll back"),
        "{}",
        r.stderr
    );
    // Exactly one change: the speaker-service app back to digest A. (Its verify() only
    // reads.)
    let calls = p.az_calls();
    let changes: Vec<&Vec<String>> = calls.iter().filter(|c| !is_read_only(c)).collect();
    assert_eq!(changes.len(), 1, "{}", show(&calls));
    assert_eq!(words(changes[0]), ["containerapp", "update"]);
    assert_eq!(flag(changes[0], "--name"), Some("speaker-service"));
    assert!(
        flag(changes[0], "--image").is_some_and(|i| i.ends_with(&format!("@{a}"))),
        "{}",
        show(&calls)
    );
    assert!(p.docker_calls().is_empty());
    assert_eq!(p.status("deploy_application_services"), "rolled back");
    let model = azure(&p);
    assert!(
        model.to_string().contains(&a),
        "the fake's model runs digest A again"
    );

    // plan says why it runs next; the next deployment rolls it forward to B.
    p.run(&["plan"])
        .assert_code(0)
        .assert_contains(&format!("rolled back to {first} on "));
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert!(r.ran().contains(&"deploy_application_services".to_string()));
    let calls = p.az_calls();
    assert!(
        calls.iter().any(|c| words(c) == ["containerapp", "update"]
            && flag(c, "--name") == Some("speaker-service")
            && flag(c, "--image").is_some_and(|i| i.ends_with(&format!("@{b}")))),
        "{}",
        show(&calls)
    );
    assert_eq!(p.status("deploy_application_services"), "completed");
}
