//! What stepwise hashes is what gets deployed (issue #19): symlinks, Docker's own build-context
//! rules, directory dependencies that never under-cover, the hash cache's racy-clean rule,
//! YAML merge keys.

use crate::support;
use support::{step, Project};

/// Reproduction 4: `db: {<<: *base, name: x}` — `read_config("db.sku")` sees the merged value,
/// and editing the anchor re-runs the step that declares `db`.
#[test]
fn yaml_merge_keys_are_resolved_for_read_config_and_fingerprints() {
    let p = Project::new();
    let config = |sku: &str| {
        format!(
            "base: &base {{sku: {sku}}}\nmore: &more {{tier: gp, sku: ignored}}\n\
             db: {{<<: *base, name: x}}\ncache:\n  <<: [*more, *base]\n  name: y\n\
             advanced: {{retry_attempts: 1, retry_delay: 0}}\n"
        )
    };
    p.config(&config("big")).step(
        "01_db.rhai",
        &step(
            r#"config: ["db", "cache"]"#,
            r#"az(["db", "create", "--sku", read_config("db.sku"), "--name", read_config("db.name")]);
               az(["cache", "create", "--sku", read_config("cache.sku"), "--tier", read_config("cache.tier")]);"#,
        ),
    );
    p.deploy(&[]).assert_code(0);
    let calls = p.az_calls();
    assert_eq!(calls[0][..5], ["db", "create", "--sku", "big", "--name"]);
    // the list form: the first mapping wins
    assert_eq!(
        calls[1][..6],
        ["cache", "create", "--sku", "ignored", "--tier", "gp"]
    );

    // Editing the anchor is a change of every key merged from it.
    p.config(&config("huge"));
    let plan = p.run(&["plan"]);
    plan.assert_code(0).assert_contains("config db changed");
    p.clear_calls();
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["db"]);
    assert_eq!(p.az_calls()[0][3], "huge");
}

fn symlink(p: &Project, target: &str, link: &str) {
    let path = p.path().join(link);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
    }
    let _ = std::fs::remove_file(&path);
    std::os::unix::fs::symlink(target, path).unwrap();
}

/// Reproduction 1: a declared file that is a symlink is hashed by its target's content (and
/// its target path); a symlink to a directory inside a declared directory is walked.
#[test]
fn symlinks_are_hashed_by_what_they_point_to() {
    let p = Project::new();
    p.file("shared/main.bicep", "param a string\n")
        .file("shared/twin.bicep", "param a string\n")
        .file("shared/lib/util.bicep", "var x = 1\n")
        .file("app/main.py", "print(1)\n")
        .step(
            "01_infra.rhai",
            &step(r#"files: ["infra/main.bicep"]"#, r#"log("infra");"#),
        )
        .step("02_app.rhai", &step(r#"files: ["app/"]"#, r#"log("app");"#))
        .step(
            "03_glob.rhai",
            &step(r#"files: ["app/**/*.bicep"]"#, r#"log("glob");"#),
        );
    symlink(&p, "../shared/main.bicep", "infra/main.bicep");
    symlink(&p, "../shared/lib", "app/lib");
    p.deploy(&[]).assert_code(0);
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");

    // the target's content changes: the link did not
    p.file("shared/main.bicep", "param a int\n");
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["infra"]);
    assert!(r
        .summary_of("infra")
        .contains("file infra/main.bicep changed"));

    // a file inside a linked directory, inside a declared directory and a glob
    p.file("shared/lib/util.bicep", "var x = 2\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["app", "glob"]);
    assert!(r.summary_of("app").contains("directory app/ changed"));

    // retargeting is a change, even to identical content
    symlink(&p, "../shared/twin.bicep", "infra/main.bicep");
    p.file("shared/twin.bicep", &p.read("shared/main.bicep"));
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["infra"]);
}

/// A link back to a folder above it is not followed forever; a dangling link is a located
/// error, wherever it is.
#[test]
fn symlink_loops_are_walked_once_and_dangling_links_are_located_errors() {
    let p = Project::new();
    p.file("app/a/x.txt", "1\n").step(
        "01_app.rhai",
        &step(r#"files: ["app/", "app/**/*.txt"]"#, r#"log("app");"#),
    );
    symlink(&p, "..", "app/a/up");
    symlink(&p, ".", "app/self");
    symlink(&p, "../../app", "app/a/again");
    let r = p.deploy(&[]);
    r.assert_code(0);
    p.file("app/a/x.txt", "2\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["app"]);
    // retargeting a loop link is a change too
    symlink(&p, "../a", "app/a/up");
    assert_eq!(p.deploy(&[]).ran(), ["app"]);

    // dangling, inside a declared directory
    symlink(&p, "../nowhere.txt", "app/a/gone.txt");
    let r = p.run(&["plan"]);
    r.assert_code(2)
        .assert_contains("steps/01_app.rhai:1")
        .assert_contains(
            "app/a/gone.txt is a symbolic link to ../nowhere.txt, which does not exist",
        );
    std::fs::remove_file(p.path().join("app/a/gone.txt")).unwrap();

    // dangling, declared itself
    p.step(
        "02_one.rhai",
        &step(r#"files: ["one.txt"]"#, r#"log("one");"#),
    );
    symlink(&p, "missing.txt", "one.txt");
    p.run(&["plan"])
        .assert_code(2)
        .assert_contains("step `one` (steps/02_one.rhai:1): declared file one.txt is a symbolic link to missing.txt, which does not exist");
}

/// Reproduction 2: a build context `svc/` whose `.gitignore` lists `dist/` and whose
/// Dockerfile copies `dist/`: a change there re-runs the step and rebuilds the image.
#[test]
fn a_gitignored_folder_that_a_docker_build_sends_counts() {
    let p = Project::new();
    p.file("svc/.gitignore", "dist/\n")
        .file("svc/Dockerfile", "FROM node:20\nCOPY dist/ /app/dist/\n")
        .file("svc/dist/app.js", "console.log(1)\n")
        .step(
            "01_image.rhai",
            &step(
                r#"files: ["svc/"]"#,
                r#"docker_build(#{ dockerfile: "svc/Dockerfile", context: "svc", tag: "reg/svc:1" });"#,
            ),
        );
    p.deploy(&[]).assert_code(0);
    assert_eq!(p.docker_calls().len(), 1);
    p.clear_calls();
    p.file("svc/dist/app.js", "console.log(2)\n");
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["image"]);
    assert!(r.summary_of("image").contains("directory svc/ changed"));
    let calls = p.docker_calls();
    assert_eq!(calls.len(), 1, "the image is rebuilt: {calls:?}");
    assert_eq!(calls[0][0], "build");
}

/// Docker's rules, not gitignore's: patterns anchored at the context root, no nested ignore
/// files, `<Dockerfile>.dockerignore` first.
#[test]
fn docker_build_fingerprints_exactly_what_docker_sends() {
    let p = Project::new();
    p.file("svc/.dockerignore", "*.md\n**/*.log\n")
        .file("svc/Dockerfile", "FROM x\nCOPY . /app\n")
        .file("svc/README.md", "top\n")
        .file("svc/docs/guide.md", "deep\n")
        .file("svc/sub/.dockerignore", "*\n")
        .file("svc/sub/code.js", "1\n")
        .file("svc/sub/x.log", "noise\n")
        .step(
            "01_image.rhai",
            &step(
                r#"files: ["svc/"]"#,
                r#"docker_build(#{ dockerfile: "svc/Dockerfile", context: "svc", tag: "t:1" });"#,
            ),
        );
    p.deploy(&[]).assert_code(0);
    let builds = |p: &Project| p.docker_calls().iter().filter(|c| c[0] == "build").count();
    // excluded by the root's .dockerignore: nothing runs
    p.file("svc/README.md", "edited\n")
        .file("svc/sub/x.log", "more\n");
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    // `*.md` is top-level only; a nested .dockerignore means nothing to Docker
    for (file, text) in [
        ("svc/docs/guide.md", "edited\n"),
        ("svc/sub/code.js", "2\n"),
    ] {
        p.clear_calls();
        p.file(file, text);
        let r = p.deploy(&[]);
        assert_eq!(r.ran(), ["image"], "{file}");
        assert_eq!(
            builds(&p),
            1,
            "{file} is sent to Docker: the image is rebuilt"
        );
    }
    // <Dockerfile>.dockerignore takes precedence over the root's, for the image and for the
    // directory dependency (what `docker build svc` sends, with svc/Dockerfile)
    p.file("svc/Dockerfile.dockerignore", "docs\n");
    p.deploy(&[]).assert_code(0); // the ignore file is new: the directory changed
    p.file("svc/docs/guide.md", "again\n");
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
    p.file("svc/README.md", "now sent\n");
    p.clear_calls();
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["image"]);
    assert_eq!(builds(&p), 1, "the root .dockerignore no longer applies");
}

/// `gitignore:` is how a directory dependency asks for `.gitignore` rules.
#[test]
fn gitignore_rules_apply_only_where_the_declaration_asks() {
    let p = Project::new();
    p.file("tools/.gitignore", "*.tmp\n")
        .file("tools/run.sh", "echo\n")
        .file("tools/cache.tmp", "1\n")
        .step(
            "01_plain.rhai",
            &step(r#"files: ["tools/"]"#, r#"log("plain");"#),
        )
        .step(
            "02_git.rhai",
            &step(r#"files: ["gitignore:tools/"]"#, r#"log("git");"#),
        );
    p.deploy(&[]).assert_code(0);
    p.file("tools/cache.tmp", "2\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["plain"]);
    p.file("tools/run.sh", "echo 2\n");
    let r = p.deploy(&[]);
    assert_eq!(r.ran(), ["plain", "git"]);
    assert!(r
        .summary_of("git")
        .contains("directory tools/ (without .gitignore'd files) changed"));
}

/// Reproduction 5: a file rewritten (same size) within the timestamp tick in which it was
/// hashed, with a slow step in between, is read again by the next run. The file system's
/// coarse timestamps (2 s, as FAT) are simulated.
#[test]
fn a_same_size_rewrite_within_the_tick_is_not_trusted_from_the_cache() {
    use std::os::unix::fs::MetadataExt;
    use std::time::Duration;
    const TICK_MS: i64 = 2000;
    let mut p = Project::new();
    p.env("STEPWISE_TEST_TIMESTAMP_TICK_MS", &TICK_MS.to_string());
    p.step(
        "01_slow.rhai",
        &step(r#"files: ["f.txt"]"#, r#"exec(["sleep", "3"]);"#),
    );
    // by the file system's clock (which may differ from this machine's)
    let mtime_ms = |p: &Project| {
        let m = std::fs::metadata(p.path().join("f.txt")).unwrap();
        m.mtime() * 1000 + m.mtime_nsec() / 1_000_000
    };
    for attempt in 1..=5 {
        let _ = std::fs::remove_dir_all(p.path().join(".stepwise"));
        // Write F right after a tick begins.
        let written = loop {
            p.file("f.txt", "AAAA");
            let m = mtime_ms(&p);
            if m % TICK_MS < 150 {
                break m;
            }
            std::thread::sleep(Duration::from_millis((TICK_MS - m % TICK_MS) as u64));
        };
        let child = p.spawn(&["--auto-approve"]);
        assert!(support::wait_started(&p, "sleep 3"), "the step started");
        // F was hashed before the step started: now the same-size rewrite
        p.file("f.txt", "BBBB");
        let same_tick = mtime_ms(&p) / TICK_MS == written / TICK_MS;
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        if !same_tick {
            eprintln!("attempt {attempt}: the rewrite missed the tick; again");
            continue;
        }
        let plan = p.run(&["plan", "--verbose"]);
        plan.assert_code(0).assert_contains("file f.txt changed");
        return;
    }
    panic!("could not fit the rewrite into one 2 s tick in 5 attempts");
}

/// Issue #23, item 5: an image's fingerprint (kept in the state) over a secret build argument
/// is the salted slow digest, and it stays stable from run to run.
#[test]
fn an_image_fingerprint_over_a_secret_build_arg_is_salted_and_stable() {
    let p = Project::new();
    p.config("secrets:\n  npm_token: npm-Tok3n-0815-abcdef\nplain: 1\n")
        .file("svc/Dockerfile", "FROM x\nARG NPM_TOKEN\n")
        .file("pub/Dockerfile", "FROM x\nARG VERSION\n")
        .step(
            "01_image.rhai",
            &step(
                r#"files: ["svc/", "pub/"], config: ["secrets", "plain"]"#,
                r#"docker_build(#{ dockerfile: "svc/Dockerfile", context: "svc", tag: "reg/svc:1", build_args: #{ NPM_TOKEN: read_config("secrets.npm_token") } });
                   docker_build(#{ dockerfile: "pub/Dockerfile", context: "pub", tag: "reg/pub:1", build_args: #{ VERSION: "1.0" } });"#,
            ),
        );
    p.deploy(&[]).assert_code(0);
    let state = p.state();
    let images = &state["steps"]["image"]["images"];
    let svc = images["reg/svc:1"].as_str().unwrap_or_default();
    assert!(svc.starts_with("argon2id:"), "{state}");
    let public = images["reg/pub:1"].as_str().unwrap_or_default();
    assert!(
        !public.is_empty() && !public.starts_with("argon2id:"),
        "{public}"
    );
    // The step runs again for another reason: the same salted digest, no rebuild.
    p.clear_calls();
    p.config("secrets:\n  npm_token: npm-Tok3n-0815-abcdef\nplain: 2\n");
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert_eq!(r.ran(), ["image"]);
    assert!(
        p.docker_calls().iter().all(|c| c[0] != "build"),
        "{:?}",
        p.docker_calls()
    );
    // A changed secret rebuilds that image only.
    p.config("secrets:\n  npm_token: npm-Tok3n-0816-abcdef\nplain: 2\n");
    p.deploy(&[]).assert_code(0);
    let builds: Vec<_> = p
        .docker_calls()
        .into_iter()
        .filter(|c| c[0] == "build")
        .collect();
    assert_eq!(builds.len(), 1, "{builds:?}");
    assert!(builds[0].iter().any(|a| a == "reg/svc:1"), "{builds:?}");
}
