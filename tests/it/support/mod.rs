//! A small builder for integration tests: a temporary project with steps, a config, and the
//! fake `az`/`docker` first on PATH; runs the real binary and reads what it left.
#![allow(dead_code)]

pub mod fixture;
pub mod http;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Project {
    pub dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    /// Where the state lives (environment for the blob backend; empty: local).
    backend: Vec<(String, String)>,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// stdout and stderr together.
    pub fn all(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }
    #[track_caller]
    pub fn assert_contains(&self, needle: &str) -> &Self {
        assert!(
            self.all().contains(needle),
            "expected {needle:?} in output\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    #[track_caller]
    pub fn assert_not_contains(&self, needle: &str) -> &Self {
        assert!(
            !self.all().contains(needle),
            "did not expect {needle:?} in output\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout,
            self.stderr
        );
        self
    }
    /// The summary line of a step (`  name  ✓ ran ...`).
    pub fn summary_of(&self, step: &str) -> String {
        self.stdout
            .lines()
            .rev()
            .find(|l| {
                let t = l.trim_start();
                t.starts_with(step) && t[step.len()..].starts_with("  ")
            })
            .unwrap_or("")
            .to_string()
    }
    /// Steps that ran (in a dry run: would run), by the summary table.
    pub fn ran(&self) -> Vec<String> {
        let ran = self.with_result("✓ ran");
        if ran.is_empty() {
            self.with_result("✓ dry run")
        } else {
            ran
        }
    }
    /// Steps whose RESULT column says `result` (ran, skipped, failed, blocked, interrupted,
    /// pending).
    pub fn with_result(&self, result: &str) -> Vec<String> {
        let result = match result {
            "ran" => "✓ ran",
            "skipped" => "· skipped",
            "failed" => "✗ failed",
            "interrupted" => "✗ interrupted",
            "blocked" => "- blocked",
            "pending" => "- pending",
            other => other,
        };
        let mut out = Vec::new();
        let mut in_table = false;
        for l in self.stdout.lines() {
            if l.trim_start().starts_with("STEP ") {
                in_table = true;
                continue;
            }
            if in_table && l.starts_with("  ") && l.contains(result) {
                if let Some(name) = l.split_whitespace().next() {
                    out.push(name.to_string());
                }
            }
        }
        out
    }
}

pub fn fixtures_bin() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bin")
}

/// The folders the fakes are found in: `tests/fixtures/bin`, then the folder of the real
/// Python interpreter, so that the fakes' `#!/usr/bin/env python3` starts Python directly and
/// not through a version manager's shim (pyenv's costs about 0.25 s per call: a DraftGenie
/// deployment makes 130 az calls).
pub fn fakes_path() -> String {
    static PYTHON_DIR: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let python = PYTHON_DIR.get_or_init(|| {
        let out = Command::new("python3")
            .args([
                "-c",
                "import os, sys; print(os.path.dirname(os.path.realpath(sys.executable)))",
            ])
            .output()
            .ok()?;
        let real = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("python3");
        if !real.is_file() {
            return None;
        }
        // A folder of its own holding only `python3` (the interpreter's folder may be
        // /usr/bin, which would shadow other programs); made by rename, so concurrent test
        // processes agree.
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("python");
        std::fs::create_dir_all(&dir).ok()?;
        let tmp = dir.join(format!(".python3-{}", std::process::id()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&real, &tmp).ok()?;
        std::fs::rename(&tmp, dir.join("python3")).ok()?;
        Some(dir)
    });
    let mut parts = vec![fixtures_bin().display().to_string()];
    if let Some(dir) = python {
        parts.push(dir.display().to_string());
    }
    parts.push(std::env::var("PATH").unwrap_or_default());
    parts.join(":")
}

pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_stepwise"))
}

impl Default for Project {
    fn default() -> Self {
        Self::new()
    }
}

impl Project {
    /// The run report of a human run, from its `Report: PATH` line.
    pub fn report_of(&self, r: &Run) -> PathBuf {
        let line = r
            .stdout
            .lines()
            .find_map(|l| l.strip_prefix("Report: "))
            .unwrap_or_else(|| panic!("no `Report:` line\n{}", r.all()));
        self.path().join(line.trim())
    }

    /// An empty project with a minimal config (no retry delay) and the fakes on PATH.
    pub fn new() -> Project {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("steps")).unwrap();
        let mut p = Project {
            dir,
            env: Vec::new(),
            backend: Vec::new(),
        };
        p.file(
            "config.yaml",
            "advanced:\n  retry_attempts: 2\n  retry_delay: 0\n",
        );
        // `STEPWISE_TEST_STATE_BACKEND=blob`: the same tests, with the state on the Azurite
        // server that scripts/test.sh started.
        if std::env::var("STEPWISE_TEST_STATE_BACKEND").as_deref() == Ok("blob") {
            let port = std::env::var("STEPWISE_TEST_AZURITE_PORT")
                .ok()
                .and_then(|p| p.parse().ok())
                .expect("STEPWISE_TEST_STATE_BACKEND=blob needs STEPWISE_TEST_AZURITE_PORT (scripts/test.sh sets both)");
            let azurite = Azurite { child: None, port };
            let location = azurite.new_location();
            p.on_blob(&azurite, &location);
        }
        p
    }

    /// Keeps this project's state in the local file whatever the test backend (for tests of
    /// the local file itself).
    pub fn local_state(&mut self) -> &mut Self {
        self.backend.clear();
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn file(&self, rel: &str, contents: &str) -> &Self {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(path, contents).unwrap();
        self
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).unwrap_or_default()
    }

    pub fn exists(&self, rel: &str) -> bool {
        self.path().join(rel).exists()
    }

    pub fn step(&self, file: &str, contents: &str) -> &Self {
        self.file(&format!("steps/{file}"), contents)
    }

    pub fn config(&self, yaml: &str) -> &Self {
        self.file("config.yaml", yaml)
    }

    /// Answers of the fake az: a JSON list of rules.
    pub fn az_rules(&self, rules: Value) -> &Self {
        self.file("az-rules.json", &rules.to_string())
    }

    /// Puts this project's state on blob storage at `location`.
    pub fn on_blob(&mut self, azurite: &Azurite, location: &str) -> &mut Self {
        self.backend = vec![
            (
                "AZURE_STORAGE_CONNECTION_STRING".into(),
                azurite.connection_string(),
            ),
            ("STEPWISE_STATE".into(), location.into()),
        ];
        self
    }

    pub fn env(&mut self, key: &str, value: &str) -> &mut Self {
        self.env.push((key.into(), value.into()));
        self
    }

    pub fn clear_env(&mut self) -> &mut Self {
        self.env.clear();
        self
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args).current_dir(self.path());
        cmd.env("PATH", fakes_path())
            .env("NO_COLOR", "1")
            .env("FAKE_AZ_LOG", self.path().join("az.log"))
            .env("FAKE_DOCKER_LOG", self.path().join("docker.log"))
            .env("FAKE_CURL_LOG", self.path().join("curl.log"))
            .env_remove("STEPWISE_STATE")
            .env_remove("AZURE_STATE_STORAGE")
            .env("STEPWISE_KILL_GRACE_MS", "2000")
            .stdin(Stdio::null());
        if self.exists("az-rules.json") {
            cmd.env("FAKE_AZ_RULES", self.path().join("az-rules.json"));
        }
        for (k, v) in self.backend.iter().chain(&self.env) {
            cmd.env(k, v);
        }
        if self.exists("bin") {
            // The project's own fakes come first.
            let path = format!("{}:{}", self.path().join("bin").display(), fakes_path());
            cmd.env("PATH", path);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Run {
        let out = self.command(args).output().expect("run stepwise");
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `deploy --auto-approve` plus `args`.
    pub fn deploy(&self, args: &[&str]) -> Run {
        let mut all = vec!["--auto-approve"];
        all.extend_from_slice(args);
        self.run(&all)
    }

    /// Starts stepwise with stdout and stderr going to the file `out` in the project (read
    /// it while it runs with `read`).
    pub fn spawn_logged(&self, args: &[&str], out: &str) -> Child {
        let f = std::fs::File::create(self.path().join(out)).unwrap();
        let g = f.try_clone().unwrap();
        self.command(args)
            .stdout(Stdio::from(f))
            .stderr(Stdio::from(g))
            .spawn()
            .expect("spawn stepwise")
    }

    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stepwise")
    }

    /// Every recorded call of the fake az (argv without the program), in order.
    pub fn az_calls(&self) -> Vec<Vec<String>> {
        calls(&self.path().join("az.log"))
    }

    pub fn docker_calls(&self) -> Vec<Vec<String>> {
        calls(&self.path().join("docker.log"))
    }

    pub fn clear_calls(&self) {
        let _ = std::fs::remove_file(self.path().join("az.log"));
        let _ = std::fs::remove_file(self.path().join("docker.log"));
    }

    /// The state, wherever it lives (through `stepwise state show`).
    pub fn state(&self) -> Value {
        let r = self.run(&["state", "show"]);
        assert_eq!(r.code, 0, "state show failed: {}", r.stderr);
        serde_json::from_str(&r.stdout).expect("state parses")
    }

    pub fn status(&self, step: &str) -> String {
        self.state()["steps"][step]["status"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Every file under `.stepwise/`, concatenated (for secret searches).
    pub fn local_files_text(&self) -> String {
        let mut out = String::new();
        for e in walk(&self.path().join(".stepwise")) {
            out.push_str(&String::from_utf8_lossy(
                &std::fs::read(e).unwrap_or_default(),
            ));
        }
        out
    }
}

pub fn calls(log: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fake log line is JSON");
            v["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect()
        })
        .collect()
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                out.extend(walk(&p));
            } else if ft.is_file() {
                // regular files only: reading a FIFO would block
                out.push(p);
            }
        }
    }
    out
}

/// Waits until `cond` holds, at most `limit`.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    cond()
}

/// Runs `git ARGS` in `dir` (an identity of its own, no global config), panicking on failure;
/// its standard output, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(["-c", "user.name=Test", "-c", "user.email=test@example.com"])
        .args(["-c", "commit.gpgsign=false"])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git runs");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A step file with a declaration and a body.
pub fn step(decl: &str, body: &str) -> String {
    format!("let step = #{{ {decl} }};\nfn run() {{\n{body}\n}}\n")
}

/// Azurite's well-known development account key (public; it only opens the emulator).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A real Azurite blob server on a loopback port: the one `scripts/test.sh` started
/// (`STEPWISE_TEST_AZURITE_PORT`), or one started for this test process.
pub struct Azurite {
    child: Option<Child>,
    pub port: u16,
}

impl Azurite {
    pub fn start() -> Azurite {
        if let Some(port) = std::env::var("STEPWISE_TEST_AZURITE_PORT")
            .ok()
            .and_then(|p| p.parse().ok())
        {
            return Azurite { child: None, port };
        }
        let bin = std::env::var("STEPWISE_AZURITE_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join(".tools/azurite/node_modules/.bin/azurite-blob")
            });
        assert!(
            bin.exists(),
            "Azurite is not installed at {}: run scripts/test.sh (it installs it with npm)",
            bin.display()
        );
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let child = Command::new(bin)
            .args(["--blobHost", "127.0.0.1", "--blobPort", &port.to_string()])
            .args(["--inMemoryPersistence", "--disableTelemetry", "--silent"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start azurite");
        let up = wait_for(Duration::from_secs(30), || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(up, "azurite did not start on port {port}");
        Azurite {
            child: Some(child),
            port,
        }
    }

    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }

    /// A fresh state location in a container of its own.
    pub fn new_location(&self) -> String {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        format!(
            "az://devstoreaccount1/t{}-{}-{n}/env/state.json",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
                % 1_000_000_000
        )
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Every file of a project except what runs produce anyway (logs, hash cache, fake logs), with
/// its content: to show that a refused run changed nothing.
pub fn snapshot(p: &Project) -> std::collections::BTreeMap<String, Vec<u8>> {
    walk(p.path())
        .into_iter()
        .filter_map(|f| {
            let rel = f.strip_prefix(p.path()).ok()?.to_string_lossy().to_string();
            let skip = rel.starts_with(".stepwise/logs")
                || rel.starts_with(".stepwise/history")
                || rel.starts_with(".stepwise/hashcache")
                || rel.ends_with(".log")
                || rel == ".stepwise/state.json.lock";
            (!skip).then(|| (rel, std::fs::read(&f).unwrap_or_default()))
        })
        .collect()
}

/// Waits until a step's log shows that `command` started (e.g. `$ az slow`).
pub fn wait_started(p: &Project, command: &str) -> bool {
    let logs = p.path().join(".stepwise/logs");
    wait_for(Duration::from_secs(20), || {
        walk(&logs).iter().any(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .contains(command)
        })
    })
}

/// Puts a fake `az` written in sh (fast to start) in the project's `bin/`, first on PATH.
pub fn shell_az(p: &Project, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    p.file("bin/az", &format!("#!/bin/sh\n{script}"));
    std::fs::set_permissions(
        p.path().join("bin/az"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();
}

/// The repository this test suite belongs to.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Copies a directory tree.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

/// `text` with `from` replaced by `to`, which must occur.
#[track_caller]
pub fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from:?} not found");
    text.replacen(from, to, 1)
}

/// A running stepwise that is killed if the test ends without stopping it (a failed assertion
/// must not leave a `watch` behind).
pub struct Running(pub Option<Child>);

impl Running {
    pub fn id(&self) -> u32 {
        self.0.as_ref().map(|c| c.id()).unwrap_or(0)
    }
    /// Sends `sig` and waits: the exit code.
    pub fn signal_and_wait(mut self, sig: i32) -> Option<i32> {
        let mut child = self.0.take().expect("running");
        unsafe { libc::kill(child.id() as i32, sig) };
        child.wait().unwrap().code()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(c) = &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A TCP proxy in front of a server (Azurite), to cut a run off from storage in the middle
/// of its run, or to lose or delay what goes through.
pub struct Proxy {
    pub port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU64>,
    conns: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    /// How many answers `LoseNextLockWriteAnswer` swallowed.
    pub lost_answers: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// What the proxy does with the bytes that go through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards both ways.
    Pass,
    /// Forwards nothing (connections stay open, requests go unanswered): storage unreachable.
    Cut,
    /// Forwards the next write of a lock blob (`PUT ….lock`), swallows its answer and closes
    /// that connection: the server acted, the client never heard. Then back to `Pass`.
    LoseNextLockWriteAnswer,
    /// Forwards, but holds each chunk of a request this long first.
    DelayRequests(Duration),
}

impl ProxyMode {
    fn encode(self) -> u64 {
        match self {
            ProxyMode::Pass => 0,
            ProxyMode::Cut => 1,
            ProxyMode::LoseNextLockWriteAnswer => 2,
            ProxyMode::DelayRequests(d) => 3 + d.as_millis() as u64,
        }
    }
}

impl Proxy {
    /// A proxy on a free loopback port in front of `127.0.0.1:target`.
    pub fn start(target: u16) -> Proxy {
        use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU64::new(0));
        let lost_answers = Arc::new(AtomicU64::new(0));
        let conns = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (m, c, lost) = (mode.clone(), conns.clone(), lost_answers.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                {
                    let mut all = c.lock().unwrap();
                    all.push(client.try_clone().unwrap());
                    all.push(server.try_clone().unwrap());
                }
                // Set when this connection's next answer is to be swallowed.
                let swallow = Arc::new(AtomicBool::new(false));
                let client2 = client.try_clone().unwrap();
                for (mut from, mut to, request) in [
                    (
                        client.try_clone().unwrap(),
                        server.try_clone().unwrap(),
                        true,
                    ),
                    (server, client, false),
                ] {
                    let (m, swallow, lost) = (m.clone(), swallow.clone(), lost.clone());
                    let client = client2.try_clone().unwrap();
                    std::thread::spawn(move || {
                        use std::io::{Read, Write};
                        let mut buf = vec![0u8; 64 * 1024];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            match m.load(Ordering::SeqCst) {
                                0 => {}
                                1 => continue,
                                2 if request => {
                                    let head = String::from_utf8_lossy(&buf[..n.min(300)]);
                                    let first = head.lines().next().unwrap_or("");
                                    if first.starts_with("PUT ")
                                        && first.contains(".lock")
                                        && m.compare_exchange(
                                            2,
                                            0,
                                            Ordering::SeqCst,
                                            Ordering::SeqCst,
                                        )
                                        .is_ok()
                                    {
                                        swallow.store(true, Ordering::SeqCst);
                                    }
                                }
                                d if d >= 3 && request => {
                                    std::thread::sleep(Duration::from_millis(d - 3))
                                }
                                _ => {}
                            }
                            if !request && swallow.load(Ordering::SeqCst) {
                                lost.fetch_add(1, Ordering::SeqCst);
                                let _ = client.shutdown(std::net::Shutdown::Both);
                                let _ = from.shutdown(std::net::Shutdown::Both);
                                return;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(std::net::Shutdown::Write);
                    });
                }
            }
        });
        Proxy {
            port,
            mode,
            conns,
            lost_answers,
        }
    }

    pub fn set(&self, mode: ProxyMode) {
        self.mode
            .store(mode.encode(), std::sync::atomic::Ordering::SeqCst);
    }

    /// Closes every connection made so far (clients see them fail and reconnect).
    pub fn reset_connections(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }

    /// A connection string for Azurite's development account through this proxy.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};BlobEndpoint=http://127.0.0.1:{}/devstoreaccount1;",
            self.port
        )
    }
}

/// Is process `pid` still running (a zombie counts as gone)?
pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let after = &stat[stat.rfind(')').map(|i| i + 1).unwrap_or(0)..];
            !after.trim_start().starts_with('Z')
        }
        Err(_) => false,
    }
}

/// The pids listed one per line in a file (commands record themselves there).
pub fn pids_in(path: &Path) -> Vec<i32> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

/// Waits for a child and returns its exit code and its peak resident memory in bytes (the
/// largest of it and the descendants it waited for), from the kernel's accounting.
pub fn wait_with_peak_rss(child: Child) -> (Option<i32>, u64) {
    let pid = child.id() as i32;
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64 * 1024)
}

// ---- runs that lose their lock (blob state) ----

/// A fake `az` (sh) that records when it starts, stops (SIGTERM) and ends in `spans`, tagged
/// with `$TAG`, and sleeps `$SLEEP` in between.
pub fn span_az(p: &Project) {
    shell_az(
        p,
        r#"trap 'echo "$TAG stop $(date +%s.%N)" >> "$SPANS"; exit 143' TERM
echo "$TAG start $(date +%s.%N)" >> "$SPANS"
sleep "$SLEEP" & wait $!
echo "$TAG end $(date +%s.%N)" >> "$SPANS"
echo '{}'
"#,
    );
}

/// `(tag, event) -> time` from the spans file.
pub fn spans(p: &Project) -> Vec<(String, String, f64)> {
    p.read("spans")
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            Some((
                w.next()?.to_string(),
                w.next()?.to_string(),
                w.next()?.parse().ok()?,
            ))
        })
        .collect()
}

pub fn span(p: &Project, tag: &str, event: &str) -> Option<f64> {
    spans(p)
        .into_iter()
        .find(|(t, e, _)| t == tag && e == event)
        .map(|(_, _, at)| at)
}

/// A project with one step whose az is `span_az`, its state at `loc`.
/// Starts run `A` of a `fenced_project` (its step's command sleeps `sleep` seconds), with
/// `env` on top, and waits until A's command has started: A holds the lock from then on.
pub fn start_holder(p: &Project, sleep: &str, env: &[(&str, &str)]) -> Running {
    let mut c = p.command(&["--auto-approve"]);
    c.env("TAG", "A").env("SLEEP", sleep);
    for (k, v) in env {
        c.env(k, v);
    }
    let a = c
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a = Running(Some(a));
    assert!(
        wait_for(Duration::from_secs(30), || span(p, "A", "start").is_some()),
        "run A never started its command"
    );
    a
}

pub fn fenced_project(az: &Azurite, loc: &str, lifetime: &str) -> Project {
    let mut p = Project::new();
    p.on_blob(az, loc);
    span_az(&p);
    let spans = p.path().join("spans").display().to_string();
    p.env("SPANS", &spans)
        .env("STEPWISE_LOCK_LIFETIME", lifetime)
        .step("01_work.rhai", &step("", r#"az(["work"]);"#));
    p
}

/// Run A (through `proxy`) runs the step; cut off from storage `cut_after` after its command
/// started; run B (direct) waits for the lock and runs the same step. A must have stopped its
/// command, and exited 4, before B's command starts.
pub fn cut_off_run_stops_before_the_next_run_starts(az: &Azurite, cut_after: Duration) {
    let loc = az.new_location();
    let p = fenced_project(az, &loc, "2");
    let proxy = Proxy::start(az.port);
    // create the container first
    p.run(&["state", "show"]).assert_code(0);
    let a = p
        .command(&["--auto-approve"])
        .env("AZURE_STORAGE_CONNECTION_STRING", proxy.connection_string())
        .env("TAG", "A")
        .env("SLEEP", "60")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut a = Running(Some(a));
    assert!(wait_for(Duration::from_secs(30), || span(&p, "A", "start").is_some()));
    std::thread::sleep(cut_after);
    proxy.set(ProxyMode::Cut);
    let b = p
        .command(&["--auto-approve", "--lock-timeout", "60s"])
        .env("TAG", "B")
        .env("SLEEP", "0.2")
        .output()
        .unwrap();
    let b_err = String::from_utf8_lossy(&b.stderr);
    let b_out = String::from_utf8_lossy(&b.stdout);
    assert_eq!(b.status.code(), Some(0), "B:\n{b_out}\n{b_err}");
    assert!(b_err.contains("took over an expired lock"), "{b_err}");
    let out = a.0.take().unwrap().wait_with_output().unwrap();
    let a_err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "A:\n{a_err}");
    assert!(a_err.contains("could not renew its lock"), "{a_err}");
    // A's command was stopped, and before B's command started: never both at once.
    let a_stop = span(&p, "A", "stop")
        .unwrap_or_else(|| panic!("A's command was not stopped: {:?}", spans(&p)));
    let b_start = span(&p, "B", "start").expect("B ran the step");
    assert!(
        a_stop < b_start,
        "A's command ran until {a_stop}, B's started at {b_start}: {:?}",
        spans(&p)
    );
    assert!(span(&p, "A", "end").is_none(), "A's command ran to its end");
    // B's result is the state; A wrote nothing over it.
    assert_eq!(p.status("work"), "completed");
}

/// Standard base64 without padding (to search for encoded secrets: the unpadded form is a
/// prefix of the padded one, so it finds both).
pub fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD_NO_PAD.encode(s)
}

/// Percent-encoding of every byte but unreserved characters (upper-case hex).
pub fn url(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Files a fake az call named: path -> mode like "0600", or None when it did not exist.
pub type NamedFiles = std::collections::BTreeMap<String, Option<String>>;

/// Every recorded call of the fake az with the files it named (`--file`, `@path`): (argv,
/// path -> mode like "0600", or None when the file did not exist).
pub fn az_calls_with_files(p: &Project) -> Vec<(Vec<String>, NamedFiles)> {
    std::fs::read_to_string(p.path().join("az.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("fake log line is JSON");
            let argv = v["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a.as_str().unwrap().to_string())
                .collect();
            let files = v["files"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().map(str::to_string)))
                        .collect()
                })
                .unwrap_or_default();
            (argv, files)
        })
        .collect()
}

/// A checkout of the DraftGenie deployment: steps, prelude, example app and
/// config.example.yaml as they are in the repository (no config.yaml). The fakes are on PATH;
/// the fake az keeps its resources in `azure.json` inside the project.
pub fn draftgenie_checkout() -> Project {
    let mut p = Project::new();
    copy_dir(&repo().join("steps"), &p.path().join("steps"));
    copy_dir(&repo().join("examples"), &p.path().join("examples"));
    std::fs::copy(repo().join("prelude.rhai"), p.path().join("prelude.rhai")).unwrap();
    std::fs::copy(
        repo().join("config.example.yaml"),
        p.path().join("config.example.yaml"),
    )
    .unwrap();
    std::fs::remove_file(p.path().join("config.yaml")).unwrap();
    let azure = p.path().join("azure.json").display().to_string();
    p.env("FAKE_AZ_STATE", &azure);
    p
}

/// A DraftGenie checkout with `config.yaml`: the example config without retry delay, with
/// each `(secrets key, value)` given filled in (the others stay empty: generated or absent).
pub fn draftgenie_project(secrets: &[(&str, &str)]) -> Project {
    let p = draftgenie_checkout();
    let mut cfg = p.read("config.example.yaml");
    cfg = replace(&cfg, "retry_delay: 5 ", "retry_delay: 0 ");
    for (key, value) in secrets {
        cfg = replace(&cfg, &format!("{key}: ''"), &format!("{key}: '{value}'"));
    }
    p.config(&cfg);
    p
}

/// Turns the fake az's model (`azure.json`) of a DraftGenie deployment into one made by the
/// steps before the managed identity: apps and jobs pull with the registry's admin password and
/// hold plain secrets, no identity exists, the registry's admin user is on, the vault grants
/// no one.
pub fn draftgenie_as_before_the_identity(azure: &Path) {
    let mut model: Value = serde_json::from_str(&std::fs::read_to_string(azure).unwrap()).unwrap();
    let resources = model["resources"].as_object_mut().unwrap();
    resources.remove("identity||draftgenie-apps");
    resources["acr||draftgenieacr"]["adminUserEnabled"] = true.into();
    resources["keyvault||draftgenie-kv"]["properties"]["accessPolicies"] = serde_json::json!([]);
    for r in resources.values_mut() {
        let group = r["_group"].as_str().unwrap().to_string();
        if group != "containerapp" && group != "containerapp job" {
            continue;
        }
        r.as_object_mut().unwrap().remove("identity");
        let conf = &mut r["properties"]["configuration"];
        let mut secrets: Vec<Value> = conf["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| serde_json::json!({ "name": s["name"] }))
            .collect();
        if !conf["registries"].as_array().unwrap().is_empty() {
            conf["registries"] = serde_json::json!([{
                "server": "draftgenieacr.azurecr.io", "identity": "",
                "username": "draftgenieacr",
                "passwordSecretRef": "draftgenieacrazurecrio-draftgenieacr"
            }]);
            secrets.push(serde_json::json!({ "name": "draftgenieacrazurecrio-draftgenieacr" }));
        }
        conf["secrets"] = Value::Array(secrets);
    }
    model["roleAssignments"] = serde_json::json!([]);
    std::fs::write(azure, model.to_string()).unwrap();
}

/// A folder made immutable (`chattr +i`: not even root writes into it) until dropped.
pub struct Immutable(PathBuf);

impl Immutable {
    pub fn set(dir: &Path) -> Immutable {
        let ok = Command::new("chattr").arg("+i").arg(dir).status();
        assert!(
            ok.is_ok_and(|s| s.success()),
            "chattr +i is needed for this test (e2fsprogs)"
        );
        Immutable(dir.to_path_buf())
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}
