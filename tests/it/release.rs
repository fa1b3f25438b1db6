//! Release binaries: the release workflow's own packaging commands (ci/release.yml, "Package"
//! and "Checksums") make archives that `install.sh` downloads from a local stand-in for GitHub
//! releases, checks against their SHA-256 and installs; a tampered archive is refused and
//! nothing is installed.

use crate::support::{self, repo};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};

/// A stand-in for `https://github.com/OWNER/stepwise/releases`: `download/TAG/FILE` from
/// `dir` for the one tag it has, `latest/download/FILE` redirected there as GitHub does,
/// 404 otherwise. Records each path asked for.
struct Releases {
    port: u16,
    seen: Arc<Mutex<Vec<String>>>,
}

impl Releases {
    fn serve(dir: PathBuf, tag: &'static str) -> Releases {
        use support::http::response;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let port = support::http::serve(move |_, path| {
            s.lock().unwrap().push(path.to_string());
            let pinned = format!("/releases/download/{tag}/");
            if let Some(file) = path.strip_prefix("/releases/latest/download/") {
                return format!("HTTP/1.1 302 Found\r\nlocation: {pinned}{file}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").into_bytes();
            }
            match path
                .strip_prefix(&pinned)
                .filter(|f| !f.contains('/') && !f.is_empty())
                .and_then(|f| std::fs::read(dir.join(f)).ok())
            {
                Some(body) => response("200 OK", "application/octet-stream", &body),
                None => response("404 Not Found", "text/plain", b"Not Found"),
            }
        });
        Releases { port, seen }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/releases", self.port)
    }
}

/// The script of the step named `name` of job `job` in ci/release.yml.
fn release_step(job: &str, name: &str) -> (String, Value) {
    let text = std::fs::read_to_string(repo().join("ci/release.yml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    let step = doc["jobs"][job]["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name)
        .unwrap_or_else(|| panic!("ci/release.yml: no step {name} in job {job}"))
        .clone();
    (step["run"].as_str().unwrap().to_string(), step)
}

/// Runs a workflow script as GitHub's `bash` shell does (`bash -e {0}`, pipefail).
fn run_script(script: &str, dir: &Path, env: &[(&str, &str)]) {
    let out = Command::new("bash")
        .args(["--noprofile", "--norc", "-eo", "pipefail", "-c", script])
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script}\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// This machine's target as install.sh detects it.
fn host_target() -> String {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "x86_64",
        "aarch64" => "aarch64",
        other => panic!("no release target for {other}"),
    };
    format!("{arch}-unknown-linux-musl")
}

/// `sh install.sh ARGS` with the releases at `releases`: (exit code, stderr).
fn install(script: &Path, releases: &str, home: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new("sh")
        .arg(script)
        .args(args)
        .env("STEPWISE_RELEASES", releases)
        .env("HOME", home)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn the_release_recipe_makes_archives_that_install_sh_checks_and_installs() {
    let tmp = tempfile::tempdir().unwrap();
    // A checkout as the workflow sees it, with the build's output where `cargo build
    // --profile dist --target T` puts it (the binary of this test run stands in for it).
    let checkout = tmp.path().join("checkout");
    let target = host_target();
    for f in ["ci/package.sh", "install.sh", "README.md"] {
        let to = checkout.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(repo().join(f), &to).unwrap();
    }
    let built = checkout.join(format!("target/{target}/dist/stepwise"));
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    std::fs::copy(support::bin(), &built).unwrap();
    // The workflow's own commands: package (build job), then checksums (release job).
    let (package, _) = release_step("build", "Package");
    run_script(&package, &checkout, &[("TARGET", &target)]);
    let (checksums, step) = release_step("release", "Checksums");
    assert_eq!(step["working-directory"], "dist");
    run_script(&checksums, &checkout.join("dist"), &[]);
    let dist = checkout.join("dist");
    let archive = format!("stepwise-{target}.tar.gz");
    for f in [
        archive.as_str(),
        &format!("{archive}.sha256"),
        "SHA256SUMS",
        "install.sh",
    ] {
        assert!(dist.join(f).is_file(), "dist lacks {f}");
    }

    let releases = Releases::serve(dist.clone(), "v0.1.0");
    let script = dist.join("install.sh");
    let version = Command::new(support::bin())
        .arg("--version")
        .output()
        .unwrap();
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();

    // The latest release into ~/.local/bin (the default).
    let home = tmp.path().join("home");
    let (code, err) = install(&script, &releases.url(), &home, &[]);
    assert_eq!(code, 0, "{err}");
    let installed = home.join(".local/bin/stepwise");
    let out = Command::new(&installed).arg("--version").output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), version);
    assert!(err.contains("is not on your PATH"), "{err}");
    let seen = releases.seen.lock().unwrap().clone();
    assert!(
        seen.contains(&format!("/releases/latest/download/{archive}"))
            && seen.contains(&format!("/releases/download/v0.1.0/{archive}.sha256")),
        "{seen:?}"
    );

    // A named version into a prefix.
    let prefix = tmp.path().join("opt");
    let (code, err) = install(
        &script,
        &releases.url(),
        &home,
        &["--version", "v0.1.0", "--prefix", prefix.to_str().unwrap()],
    );
    assert_eq!(code, 0, "{err}");
    assert!(prefix.join("bin/stepwise").is_file());

    // A version that does not exist, and a bad option: clear errors, nothing installed.
    let nowhere = tmp.path().join("nowhere");
    let bin_dir = nowhere.to_str().unwrap();
    let (code, err) = install(
        &script,
        &releases.url(),
        &home,
        &["--version", "v9.9.9", "--bin-dir", bin_dir],
    );
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("cannot download"), "{err}");
    let (code, err) = install(&script, &releases.url(), &home, &["--frobnicate"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("unknown option --frobnicate"), "{err}");

    // A tampered archive is refused: checksum mismatch, nothing installed, an old binary kept.
    let mut bytes = std::fs::read(dist.join(&archive)).unwrap();
    bytes.push(0);
    std::fs::write(dist.join(&archive), bytes).unwrap();
    std::fs::create_dir_all(&nowhere).unwrap();
    std::fs::write(nowhere.join("stepwise"), "old").unwrap();
    let (code, err) = install(&script, &releases.url(), &home, &["--bin-dir", bin_dir]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("checksum mismatch"), "{err}");
    assert_eq!(
        std::fs::read_to_string(nowhere.join("stepwise")).unwrap(),
        "old"
    );
}

#[test]
fn the_release_workflow_builds_with_the_dist_profile_for_every_platform() {
    let text = std::fs::read_to_string(repo().join("ci/release.yml")).unwrap();
    let doc: Value = serde_norway::from_str(&text).unwrap();
    assert_eq!(doc["on"]["push"]["tags"][0], "v*");
    let targets: Vec<&str> = doc["jobs"]["build"]["strategy"]["matrix"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["target"].as_str().unwrap())
        .collect();
    for t in [
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-apple-darwin",
        "aarch64-apple-darwin",
        "x86_64-pc-windows-msvc",
    ] {
        assert!(targets.contains(&t), "{t} not built: {targets:?}");
    }
    let (build, _) = release_step("build", "Build");
    assert!(build.contains("--locked --profile dist"), "{build}");
    let (publish, _) = release_step("release", "Publish the release");
    assert!(publish.contains("gh release create"), "{publish}");
    // The dist profile is the slow, optimised one; release stays quick to build.
    let cargo = std::fs::read_to_string(repo().join("Cargo.toml")).unwrap();
    let profile = |name: &str| {
        let start = cargo
            .find(&format!("[profile.{name}]"))
            .unwrap_or_else(|| panic!("no profile {name}"));
        let rest = &cargo[start + 1..];
        rest[..rest.find("\n[").unwrap_or(rest.len())].to_string()
    };
    assert!(
        profile("dist").contains("lto = true") && profile("dist").contains("codegen-units = 1")
    );
    assert!(
        !profile("release").contains("lto"),
        "{}",
        profile("release")
    );
    // The install script's default download location is the crate's repository.
    let repository = cargo
        .lines()
        .find_map(|l| l.strip_prefix("repository = "))
        .unwrap()
        .trim_matches('"');
    let install = std::fs::read_to_string(repo().join("install.sh")).unwrap();
    assert!(
        install.contains(&format!("{repository}/releases")),
        "install.sh downloads from elsewhere than {repository}"
    );
}
