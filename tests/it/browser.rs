//! Run reports in a real browser: headless Chromium (Debian's `chromium`, installed by
//! scripts/test.sh) opens the report of a real DraftGenie deployment against the fake az and
//! of a run with failed, blocked and skipped steps, driven through the DevTools protocol over
//! a pipe (`--remote-debugging-pipe`: no port, no websocket). Asserts the rendered DOM (every
//! step, SVG elements with a non-zero size), no console error and no network request, at
//! 1280 px, in dark mode and at a phone's width; saves screenshots under
//! target/report-screenshots/.
//!
//! Without Chromium the tests fail, unless `STEPWISE_SKIP_BROWSER` says why it could not be
//! installed (scripts/test.sh sets it when `apt-get install chromium` fails): then they are
//! skipped with a loud message.

use crate::support;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use support::{repo, step, Project};

/// The Chromium binary, or `None` when the tests are to be skipped (loudly).
fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("STEPWISE_CHROMIUM").unwrap_or_default(),
        "chromium".into(),
        "chromium-browser".into(),
        "google-chrome".into(),
    ];
    for c in candidates.iter().filter(|c| !c.is_empty()) {
        let found = if c.contains('/') {
            Some(PathBuf::from(c)).filter(|p| p.exists())
        } else {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|d| d.join(c))
                    .find(|p| p.exists())
            })
        };
        if found.is_some() {
            return found;
        }
    }
    match std::env::var("STEPWISE_SKIP_BROWSER") {
        Ok(why) => {
            eprintln!("\n!!!!!!!!!! SKIPPED: the browser test needs Chromium, which could not be installed: {why}\n");
            None
        }
        Err(_) => panic!(
            "Chromium is not installed: run scripts/test.sh (it installs Debian's `chromium` with apt-get), or set STEPWISE_SKIP_BROWSER=reason to skip"
        ),
    }
}

/// A headless Chromium driven over `--remote-debugging-pipe` (fd 3: commands in, fd 4:
/// answers and events out, NUL-separated JSON). Killed with its whole process group on drop.
struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next: u64,
    session: String,
    /// Every event received (for console errors and requests).
    events: Vec<Value>,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0i32; 2];
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

/// A copy of `fd` numbered 10 or above (so that dup2 to 3 and 4 cannot clobber it).
fn high(fd: &OwnedFd) -> OwnedFd {
    use std::os::fd::AsRawFd;
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 10) };
    assert!(n >= 10);
    unsafe { OwnedFd::from_raw_fd(n) }
}

impl Browser {
    fn start(bin: &Path) -> Browser {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;
        let profile = tempfile::tempdir().unwrap();
        let (cmd_r, cmd_w) = pipe();
        let (ev_r, ev_w) = pipe();
        let (child_in, child_out) = (high(&cmd_r), high(&ev_w));
        drop((cmd_r, ev_w));
        let (a, b) = (child_in.as_raw_fd(), child_out.as_raw_fd());
        let mut cmd = Command::new(bin);
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(a, 3) < 0 || libc::dup2(b, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().expect("start chromium");
        drop((child_in, child_out));
        let (tx, rx) = mpsc::channel();
        let mut reader = std::fs::File::from(ev_r);
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 65536];
            loop {
                let n = match reader.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => n,
                };
                buf.extend_from_slice(&chunk[..n]);
                while let Some(i) = buf.iter().position(|&b| b == 0) {
                    let msg: Vec<u8> = buf.drain(..=i).collect();
                    if let Ok(v) = serde_json::from_slice::<Value>(&msg[..msg.len() - 1]) {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            child,
            to: std::fs::File::from(cmd_w),
            from: rx,
            next: 0,
            session: String::new(),
            events: Vec::new(),
            _profile: profile,
        };
        let targets = b.call("Target.getTargets", json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target")["targetId"]
            .clone();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": page, "flatten": true}),
        );
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        for domain in [
            "Page.enable",
            "Runtime.enable",
            "Log.enable",
            "Network.enable",
        ] {
            b.call(domain, json!({}));
        }
        b
    }

    fn recv(&mut self, deadline: Instant) -> Value {
        let left = deadline.saturating_duration_since(Instant::now());
        match self.from.recv_timeout(left) {
            Ok(v) => v,
            Err(e) => panic!("no answer from Chromium ({e:?})"),
        }
    }

    /// Sends a command (to the page's session once attached) and waits for its answer.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.to.write_all(&bytes).expect("write to Chromium");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.recv(deadline);
            if v["id"] == json!(id) {
                if let Some(e) = v.get("error") {
                    panic!("{method}: {e}");
                }
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Waits for an event named `method`.
    fn wait_event(&mut self, method: &str) {
        if self.events.iter().any(|e| e["method"] == method) {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let v = self.recv(deadline);
            let found = v["method"] == method;
            self.events.push(v);
            if found {
                return;
            }
        }
    }

    fn viewport(&mut self, width: u32, height: u32, mobile: bool) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}),
        );
    }

    fn dark(&mut self, on: bool) {
        self.call(
            "Emulation.setEmulatedMedia",
            json!({"features": [{"name": "prefers-color-scheme", "value": if on { "dark" } else { "light" }}]}),
        );
    }

    /// Loads `url` and waits for its load event.
    fn open(&mut self, url: &str) {
        self.events.clear();
        self.call("Page.navigate", json!({"url": url}));
        self.wait_event("Page.loadEventFired");
    }

    /// Evaluates `expr` (which returns a JSON string) in the page.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        if let Some(e) = r.get("exceptionDetails") {
            panic!("evaluation failed: {e}");
        }
        serde_json::from_str(r["result"]["value"].as_str().expect("a string")).unwrap()
    }

    /// A PNG of the whole page at the current width (at most `max_height` pixels of it).
    fn screenshot(&mut self, path: &Path, max_height: Option<f64>) {
        let size = self.eval(
            "JSON.stringify([document.documentElement.scrollWidth, document.documentElement.scrollHeight])",
        );
        let height = size[1]
            .as_f64()
            .unwrap()
            .min(max_height.unwrap_or(f64::MAX));
        let r = self.call(
            "Page.captureScreenshot",
            json!({"format": "png", "captureBeyondViewport": true,
                   "clip": {"x": 0, "y": 0, "width": size[0], "height": height, "scale": 1}}),
        );
        use base64::Engine;
        let png = base64::engine::general_purpose::STANDARD
            .decode(r["data"].as_str().unwrap())
            .unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }

    /// Console errors, uncaught exceptions and browser-logged errors since the last `open`.
    fn errors(&self) -> Vec<String> {
        self.events
            .iter()
            .filter_map(|e| match e["method"].as_str()? {
                "Runtime.consoleAPICalled"
                    if matches!(e["params"]["type"].as_str(), Some("error" | "assert")) =>
                {
                    Some(format!("console: {}", e["params"]["args"]))
                }
                "Runtime.exceptionThrown" => {
                    Some(format!("exception: {}", e["params"]["exceptionDetails"]))
                }
                "Log.entryAdded" if e["params"]["entry"]["level"] == "error" => {
                    Some(format!("log: {}", e["params"]["entry"]["text"]))
                }
                _ => None,
            })
            .collect()
    }

    /// Requests the page made other than for `url` itself.
    fn requests_other_than(&self, url: &str) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.requestWillBeSent")
            .filter_map(|e| e["params"]["request"]["url"].as_str())
            .filter(|u| *u != url)
            .map(String::from)
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // the whole process group this test started (renderers, zygote)
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
        let _ = self.child.wait();
    }
}

/// What the page shows, measured by the browser.
const MEASURE: &str = r#"JSON.stringify((() => {
  const box = e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; };
  return {
    steps: [...document.querySelectorAll('details.step')].map(d => [d.dataset.step, d.dataset.status]),
    svgs: [...document.querySelectorAll('svg')].map(s => [s.getAttribute('class'), ...box(s)]),
    nodes: [...document.querySelectorAll('svg.graph g.node')].map(g => [g.dataset.step, ...box(g)]),
    edges: [...document.querySelectorAll('svg.graph path.edge')].map(p => [p.dataset.from, p.dataset.to, p.getTotalLength()]),
    bars: [...document.querySelectorAll('.tl-row[data-step] rect.bar')].map(b => [b.closest('.tl-row').dataset.step, b.getBoundingClientRect().x, ...box(b)]),
    graphList: (() => {
      const l = document.querySelector('.graph-list');
      if (!l) return null;
      const r = l.getBoundingClientRect();
      return { shown: getComputedStyle(l).display !== 'none', right: r.right,
               items: [...l.querySelectorAll('li')].filter(li => li.getBoundingClientRect().height > 0).length };
    })(),
    banner: (() => {
      const e = document.querySelectorAll('#errors .error');
      if (!e.length) return null;
      const r = e[0].getBoundingClientRect();
      return { count: e.length, top: r.top + window.scrollY, bottom: r.bottom + window.scrollY, right: r.right };
    })(),
    viewHeight: window.innerHeight,
    overflow: document.documentElement.scrollWidth - window.innerWidth,
    background: getComputedStyle(document.body).backgroundColor,
    scripts: document.scripts.length,
  };
})())"#;

fn screenshots() -> PathBuf {
    repo().join("target/report-screenshots")
}

/// Opens `report` at desktop, dark and phone sizes; checks what every report must satisfy and
/// returns the desktop measurements. Screenshots: `target/report-screenshots/NAME*.png`.
fn check(bin: &Path, report: &Path, steps: &[(&str, &str)], name: &str) -> Value {
    let url = format!("file://{}", report.display());
    let mut b = Browser::start(bin);
    b.viewport(1280, 900, false);
    b.dark(false);
    b.open(&url);
    let m = b.eval(MEASURE);
    assert_eq!(b.errors(), Vec::<String>::new(), "console errors");
    assert_eq!(
        b.requests_other_than(&url),
        Vec::<String>::new(),
        "network requests"
    );
    assert_eq!(m["scripts"], 0);
    // every step, with its status
    let shown: Vec<(String, String)> = serde_json::from_value(m["steps"].clone()).unwrap();
    let want: Vec<(String, String)> = steps
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(shown, want);
    // every SVG, node, edge and bar is drawn with a size
    let svgs = m["svgs"].as_array().unwrap();
    assert!(svgs.len() >= 3, "{svgs:?}");
    for s in svgs {
        assert!(
            s[1].as_f64().unwrap() > 0.0 && s[2].as_f64().unwrap() > 0.0,
            "{s}"
        );
    }
    let nodes = m["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), steps.len());
    for n in nodes {
        assert!(
            n[1].as_f64().unwrap() > 20.0 && n[2].as_f64().unwrap() > 10.0,
            "{n}"
        );
    }
    for e in m["edges"].as_array().unwrap() {
        assert!(e[2].as_f64().unwrap() > 1.0, "edge {e}");
    }
    for bar in m["bars"].as_array().unwrap() {
        assert!(
            bar[2].as_f64().unwrap() > 0.0 && bar[3].as_f64().unwrap() > 0.0,
            "{bar}"
        );
    }
    assert!(
        m["overflow"].as_f64().unwrap() <= 0.0,
        "no horizontal scrolling at 1280 px"
    );
    b.screenshot(&screenshots().join(format!("{name}.png")), None);
    // header, timeline and graph: the picture in the README
    let graph_end = b.eval(
        "JSON.stringify(document.getElementById('graph').getBoundingClientRect().bottom + window.scrollY + 16)",
    );
    b.screenshot(
        &screenshots().join(format!("{name}-top.png")),
        graph_end.as_f64(),
    );

    // dark mode: another background, still no error
    b.dark(true);
    let dark = b.eval(MEASURE);
    assert_ne!(
        dark["background"], m["background"],
        "prefers-color-scheme: dark"
    );
    b.screenshot(&screenshots().join(format!("{name}-dark.png")), None);
    b.dark(false);

    // at 1280 px the graph is drawn, not listed
    assert_eq!(m["graphList"]["shown"], false);
    first_screen(&m, 900.0);

    // a phone: the page does not scroll sideways; the bars still have a size; the graph is
    // a list of every step that fits the width; an error banner is on the first screen
    b.viewport(390, 844, true);
    b.open(&url);
    let phone = b.eval(MEASURE);
    assert!(
        phone["overflow"].as_f64().unwrap() <= 0.0,
        "the page scrolls sideways at 390 px: {}",
        phone["overflow"]
    );
    for s in phone["svgs"].as_array().unwrap() {
        if s[0] == "graph" {
            continue;
        }
        assert!(
            s[1].as_f64().unwrap() > 0.0 && s[2].as_f64().unwrap() > 0.0,
            "{s}"
        );
    }
    let list = &phone["graphList"];
    assert_eq!(list["shown"], true, "the graph as a list at 390 px: {list}");
    assert_eq!(list["items"], steps.len(), "{list}");
    assert!(list["right"].as_f64().unwrap() <= 390.0, "{list}");
    first_screen(&phone, 844.0);
    assert_eq!(b.errors(), Vec::<String>::new());
    b.screenshot(&screenshots().join(format!("{name}-phone.png")), None);
    m
}

/// A report with an error banner shows its first error, whole, within the first `height`
/// pixels and the page's width.
fn first_screen(m: &Value, height: f64) {
    let Some(banner) = m["banner"].as_object() else {
        return;
    };
    assert_eq!(m["viewHeight"].as_f64().unwrap(), height);
    assert!(
        banner["bottom"].as_f64().unwrap() <= height,
        "the first error ends below the first screen ({height} px): {banner:?}"
    );
    assert!(banner["top"].as_f64().unwrap() > 0.0);
}

#[test]
fn the_browser_checks_see_a_script_error_and_a_network_request() {
    // The checks themselves can fail: a copy of a report without its Content-Security-Policy,
    // with a script that logs an error and an image from the network, is caught.
    let Some(bin) = chromium() else { return };
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("doctored.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><head><title>x</title></head><body><p>x</p>\
         <img src=\"http://127.0.0.1:9/pixel.png\"/><script>console.error('boom')</script></body></html>",
    )
    .unwrap();
    let url = format!("file://{}", page.display());
    let mut b = Browser::start(&bin);
    b.open(&url);
    let _ = b.eval("JSON.stringify(1)");
    assert!(
        b.errors().iter().any(|e| e.contains("boom")),
        "{:?}",
        b.errors()
    );
    assert_eq!(
        b.requests_other_than(&url),
        ["http://127.0.0.1:9/pixel.png"]
    );
}

/// base (skipped), left and right in parallel, deploy fails, verify is blocked.
#[test]
fn a_report_with_failed_blocked_and_skipped_steps_renders_in_chromium() {
    let Some(bin) = chromium() else { return };
    let p = Project::new();
    p.config("secrets:\n  k: 'br-S3cret-77'\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n")
        .az_rules(json!([
            {"args": ["slow"], "sleep": 0.5},
            {"args": ["fail"], "sleep": 0.5, "exit": 2, "stderr": "boom: br-S3cret-77 rejected"}
        ]))
        .step("01_base.rhai", &step("", r#"az(["group", "create"]);"#))
        .step(
            "02_left.rhai",
            &step(r#"needs: ["base"]"#, r#"az(["slow", "l"]); warn("slow");"#),
        )
        .step(
            "03_right.rhai",
            &step(
                r#"needs: ["base"], config: ["secrets"]"#,
                r#"az(["slow", "--key", read_config("secrets.k")]);"#,
            ),
        )
        .step(
            "04_deploy.rhai",
            &step(r#"needs: ["left"]"#, r#"az(["fail"]);"#),
        )
        .step(
            "05_verify.rhai",
            &step(r#"needs: ["deploy"]"#, r#"az(["v"]);"#),
        );
    p.deploy(&["--only", "base"]).assert_code(0);
    let r = p.deploy(&[]);
    r.assert_code(1);
    let report = p.report_of(&r);
    assert!(!std::fs::read_to_string(&report)
        .unwrap()
        .contains("br-S3cret-77"));
    let m = check(
        &bin,
        &report,
        &[
            ("base", "skipped"),
            ("left", "ran"),
            ("right", "ran"),
            ("deploy", "failed"),
            ("verify", "blocked"),
        ],
        "mixed",
    );
    // the error banner names the failed step
    assert_eq!(m["banner"]["count"], 1, "{}", m["banner"]);
    // one bar per step that ran or was blocked; left and right side by side in time
    let bars = m["bars"].as_array().unwrap();
    let names: Vec<&str> = bars.iter().map(|b| b[0].as_str().unwrap()).collect();
    assert_eq!(names.len(), 4, "{names:?}");
    for s in ["left", "right", "deploy", "verify"] {
        assert!(names.contains(&s), "{s}: {names:?}");
    }
    let x = |s: &str| {
        bars.iter().find(|b| b[0] == s).unwrap()[1]
            .as_f64()
            .unwrap()
    };
    assert!(x("deploy") > x("left") && x("verify") > x("deploy"));
    assert_eq!(m["edges"].as_array().unwrap().len(), 4);
}

/// The DraftGenie deployment (example config with test secrets) against the stateful fake az.
fn draftgenie() -> Project {
    support::draftgenie_project(&[
        ("gemini_api_key", "gem-BR-secret-1234"),
        ("jwt_secret", "jwt-BR-secret-5678"),
        ("rabbitmq_password", "rab-BR-secret-9012"),
    ])
}

#[test]
fn a_real_draftgenie_deployment_leaves_a_report_that_opens_in_chromium() {
    let Some(bin) = chromium() else { return };
    let p = draftgenie();
    let r = p.deploy(&[]);
    r.assert_code(0);
    let report = p.report_of(&r);
    let html = std::fs::read_to_string(&report).unwrap();
    for s in [
        "gem-BR-secret-1234",
        "jwt-BR-secret-5678",
        "rab-BR-secret-9012",
    ] {
        assert!(!html.contains(s), "{s} in the report");
    }
    let steps: Vec<String> = std::fs::read_dir(p.path().join("steps"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    let mut steps: Vec<String> = steps
        .into_iter()
        .filter_map(|f| f.strip_suffix(".rhai").map(String::from))
        .collect();
    steps.sort();
    let names: Vec<String> = steps
        .iter()
        .map(|f| f.split_once('_').unwrap().1.to_string())
        .collect();
    assert_eq!(names.len(), 14);
    let expected: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "ran")).collect();
    let m = check(&bin, &report, &expected, "draftgenie");
    assert_eq!(m["bars"].as_array().unwrap().len(), 14);
    // the graph has every `needs` edge of the steps
    let needs: usize = std::fs::read_to_string(report.with_extension("json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .map(|d| {
            d["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["needs"].as_array().unwrap().len())
                .sum()
        })
        .unwrap();
    assert_eq!(m["edges"].as_array().unwrap().len(), needs);
    // README's picture: STEPWISE_UPDATE_SCREENSHOT=1 copies the top of the desktop screenshot
    // to docs/
    if std::env::var_os("STEPWISE_UPDATE_SCREENSHOT").is_some() {
        std::fs::copy(
            screenshots().join("draftgenie-top.png"),
            repo().join("docs/report.png"),
        )
        .unwrap();
    }
}
