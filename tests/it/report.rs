//! The HTML run report: what a deployment's report contains (read as a DOM), the `report`
//! command (path, `--open`, `--plan`), medians and the slower marker from kept runs, keeping
//! the last 50, and a report that cannot be written being only a warning.

use crate::support;
use roxmltree::{Document, Node, ParsingOptions};
use serde_json::{json, Value};
use support::{b64, step, url, Project};

const SECRET: &str = "rep-S3cret/Key+9";

/// The report parsed as XML (the report is polyglot markup: a parse error is a bug).
fn parse(text: &str) -> Document<'_> {
    Document::parse_with_options(
        text,
        ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("the report is not well-formed: {e}"))
}

fn has_class(n: &Node, class: &str) -> bool {
    n.attribute("class")
        .is_some_and(|c| c.split_whitespace().any(|x| x == class))
}

/// Elements with `class` (and `data-step` when given).
fn all<'a, 'i>(doc: &'a Document<'i>, class: &str) -> Vec<Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && has_class(n, class))
        .collect()
}

fn by_step<'a, 'i>(doc: &'a Document<'i>, class: &str, step: &str) -> Node<'a, 'i> {
    all(doc, class)
        .into_iter()
        .find(|n| n.attribute("data-step") == Some(step))
        .unwrap_or_else(|| panic!("no .{class} for step {step}"))
}

fn text_of(n: Node) -> String {
    n.descendants()
        .filter(|d| d.is_text())
        .map(|d| d.text().unwrap_or(""))
        .collect()
}

fn num(n: &Node, attr: &str) -> f64 {
    n.attribute(attr)
        .unwrap_or_else(|| panic!("no {attr}"))
        .parse()
        .unwrap()
}

/// base (done in a first run, then skipped); left and right in parallel (both need base);
/// deploy needs left and fails; verify needs deploy and is blocked. `right` passes a secret
/// on a command line, `deploy`'s error output contains it.
fn mixed() -> Project {
    let p = Project::new();
    p.config(&format!(
        "secrets:\n  api_key: {SECRET:?}\nadvanced:\n  retry_attempts: 1\n  retry_delay: 0\n"
    ))
    .az_rules(json!([
        {"args": ["slow"], "sleep": 0.8},
        {"args": ["fail"], "sleep": 2.0, "exit": 2, "stderr": format!("boom: bad value {SECRET}")}
    ]))
    .step(
        "01_base.rhai",
        &step("", r#"az(["group", "create", "--name", "rg"]);"#),
    )
    .step(
        "02_left.rhai",
        &step(
            r#"needs: ["base"]"#,
            r#"az(["slow", "left"]); warn("left is slow today");"#,
        ),
    )
    .step(
        "03_right.rhai",
        &step(
            r#"needs: ["base"], config: ["secrets"]"#,
            r#"az(["keyvault", "secret", "set", "--value", read_config("secrets.api_key")]);
               az(["slow", "right"]);"#,
        ),
    )
    .step(
        "04_deploy.rhai",
        &step(r#"needs: ["left"]"#, r#"az(["fail", "--name", "app"]);"#),
    )
    .step(
        "05_verify.rhai",
        &step(r#"needs: ["deploy"]"#, r#"az(["verify"]);"#),
    );
    p
}

#[test]
fn a_deployment_report_has_every_step_status_timeline_graph_and_no_secret() {
    let p = mixed();
    p.deploy(&["--only", "base"]).assert_code(0);
    let r = p.deploy(&["--output", "json"]);
    r.assert_code(1);
    let doc: Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    let path = p
        .path()
        .join(doc["report"].as_str().expect("report path in JSON"));
    let run_id = doc["run_id"].as_str().unwrap();
    assert_eq!(
        path,
        p.path().join(format!(".stepwise/reports/{run_id}.html"))
    );
    // the summary kept beside it is the --output json document
    let kept: Value =
        serde_json::from_str(&p.read(&format!(".stepwise/reports/{run_id}.json"))).unwrap();
    assert_eq!(kept["steps"], doc["steps"]);
    assert_eq!(
        doc["steps"][2]["commands"][0],
        "az keyvault secret set --value *** --output json"
    );

    let html = std::fs::read_to_string(&path).unwrap();
    let dom = parse(&html);
    // every step, with its status
    for (s, status) in [
        ("base", "skipped"),
        ("left", "ran"),
        ("right", "ran"),
        ("deploy", "failed"),
        ("verify", "blocked"),
    ] {
        let d = by_step(&dom, "step", s);
        assert_eq!(d.attribute("data-status"), Some(status), "{s}");
        let node = by_step(&dom, "node", s);
        assert!(has_class(&node, &format!("st-{status}")), "graph node {s}");
    }
    // the timeline: a bar per step that ran, with ordered times; the blocked step marked; the
    // skipped step listed with its reason instead
    let rows = |s: &str| by_step(&dom, "tl-row", s);
    let span = |s: &str| (num(&rows(s), "data-start"), num(&rows(s), "data-end"));
    for s in ["left", "right", "deploy"] {
        let (a, b) = span(s);
        assert!(a < b, "{s}: {a} < {b}");
        let bar = rows(s)
            .descendants()
            .find(|n| has_class(n, "bar"))
            .expect("a bar");
        assert!(num(&bar, "width") > 0.0);
    }
    let (l, rt, d) = (span("left"), span("right"), span("deploy"));
    assert!(
        l.0 < rt.1 && rt.0 < l.1,
        "left and right overlap: {l:?} {rt:?}"
    );
    assert!(d.0 >= l.1, "deploy starts after left ends: {d:?} {l:?}");
    assert_eq!(rows("verify").attribute("data-status"), Some("blocked"));
    assert!(all(&dom, "tl-row")
        .iter()
        .all(|n| n.attribute("data-step") != Some("base")));
    let skipped = dom
        .descendants()
        .find(|n| n.attribute("data-step") == Some("base") && n.has_tag_name("li"))
        .expect("base in the skipped list");
    assert!(
        text_of(skipped).contains("up to date"),
        "{}",
        text_of(skipped)
    );
    // the critical path: left then deploy
    assert!(
        has_class(&rows("left"), "crit") && has_class(&rows("deploy"), "crit"),
        "{:?} {:?} {:?} {}",
        span("left"),
        span("right"),
        span("deploy"),
        p.read("az.log")
    );
    assert!(!has_class(&rows("right"), "crit"));
    // the graph's edges are the needs
    let mut edges: Vec<(String, String)> = all(&dom, "edge")
        .iter()
        .map(|e| {
            (
                e.attribute("data-from").unwrap().to_string(),
                e.attribute("data-to").unwrap().to_string(),
            )
        })
        .collect();
    edges.sort();
    let want = [
        ("base", "left"),
        ("base", "right"),
        ("deploy", "verify"),
        ("left", "deploy"),
    ];
    assert_eq!(
        edges,
        want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
    );
    // per step: commands masked like the console, warnings, the failed step's log tail and error
    let right = text_of(by_step(&dom, "step", "right"));
    assert!(
        right.contains("az keyvault secret set --value *** --output json"),
        "{right}"
    );
    assert!(right.contains("az slow right"));
    assert!(text_of(by_step(&dom, "step", "left")).contains("left is slow today"));
    let deploy = by_step(&dom, "step", "deploy");
    assert_eq!(deploy.attribute("open"), Some("open"));
    let log = deploy
        .descendants()
        .find(|n| has_class(n, "log"))
        .expect("log tail");
    assert!(
        text_of(log).contains("boom: bad value ***"),
        "{}",
        text_of(log)
    );
    assert!(text_of(by_step(&dom, "step", "verify")).contains("needs deploy"));
    // header
    let header = text_of(
        dom.descendants()
            .find(|n| n.has_tag_name("header"))
            .unwrap(),
    );
    assert!(header.contains("failed"), "{header}");
    assert!(
        header.contains("2 ran · 1 skipped · 1 failed · 1 blocked"),
        "{header}"
    );
    assert!(header.contains(run_id));
    // trends: both kept runs
    assert_eq!(
        dom.descendants()
            .filter(|n| n.attribute("data-run").is_some())
            .count(),
        2
    );
    // self-contained: no script, nothing to fetch
    assert!(!dom.descendants().any(|n| n.has_tag_name("script")));
    assert!(!html.contains("://") && !html.contains("src=") && !html.contains("<link"));
    assert!(html.contains("prefers-color-scheme: dark"));
    // no secret in any form in the report or its summary
    let kept_text = p.read(&format!(".stepwise/reports/{run_id}.json"));
    for form in [SECRET.to_string(), b64(SECRET), url(SECRET)] {
        assert!(!html.contains(&form), "{form} in the report");
        assert!(!kept_text.contains(&form), "{form} in the summary");
    }
    assert!(p.az_calls().iter().any(|c| c.contains(&SECRET.to_string())));
}

#[test]
fn the_report_command_prints_opens_and_renders_the_plan() {
    let p = mixed();
    p.run(&["report"])
        .assert_code(2)
        .assert_contains("no run report in .stepwise/reports");
    let first = p.deploy(&["--only", "base"]);
    first.assert_code(0);
    let path = p.report_of(&first);
    let id = path.file_stem().unwrap().to_str().unwrap().to_string();
    for args in [
        vec!["report"],
        vec!["report", "latest"],
        vec!["report", &id],
    ] {
        let r = p.run(&args);
        r.assert_code(0);
        assert_eq!(p.path().join(r.stdout.trim()), path, "{args:?}");
    }
    p.run(&["report", "nope"])
        .assert_code(2)
        .assert_contains("no report of run \"nope\"")
        .assert_contains(&id);
    // --open: the platform's opener gets the path as its one argument
    p.file(
        "bin/xdg-open",
        "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > opened.txt\n",
    );
    std::fs::set_permissions(
        p.path().join("bin/xdg-open"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    p.run(&["report", "--open"]).assert_code(0);
    assert_eq!(
        p.read("opened.txt").trim(),
        format!(".stepwise/reports/{id}.html")
    );
    p.file("bin/xdg-open", "#!/bin/sh\nexit 4\n");
    p.run(&["report", "--open"])
        .assert_code(1)
        .assert_contains("xdg-open .stepwise/reports/");

    // --plan: the plan as a report; nothing runs, no state written, no run report kept
    p.clear_calls();
    let state = p.read(".stepwise/state.json");
    let r = p.run(&["report", "--plan"]);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), ".stepwise/reports/plan.html");
    assert!(p.az_calls().is_empty());
    assert_eq!(p.read(".stepwise/state.json"), state);
    let html = p.read(".stepwise/reports/plan.html");
    let dom = parse(&html);
    assert_eq!(
        dom.descendants()
            .find(|n| n.has_tag_name("body"))
            .unwrap()
            .attribute("data-command"),
        Some("plan")
    );
    for (s, decision) in [("base", "skip"), ("left", "run"), ("verify", "run")] {
        assert_eq!(
            by_step(&dom, "step", s).attribute("data-status"),
            Some(decision)
        );
        assert!(has_class(
            &by_step(&dom, "node", s),
            &format!("st-{decision}")
        ));
    }
    assert_eq!(all(&dom, "edge").len(), 4);
    assert!(all(&dom, "tl-row").is_empty(), "a plan has no timeline");
    assert!(!html.contains(SECRET));
    // the kept runs are unchanged; `report` still means the last deployment
    assert_eq!(p.path().join(p.run(&["report"]).stdout.trim()), path);
    let json = p.run(&["report", "--output", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(doc["report"], format!(".stepwise/reports/{id}.html"));
}

#[test]
fn a_step_much_slower_than_its_median_is_marked_and_trends_cover_the_kept_runs() {
    let p = Project::new();
    p.config("nap: '0.3'\nadvanced:\n  retry_delay: 0\n").step(
        "01_nap.rhai",
        &step(
            r#"config: ["nap"]"#,
            r#"exec(["sleep", read_config("nap")]);"#,
        ),
    );
    let mut reports = Vec::new();
    for args in [vec![], vec!["--force-all"], vec!["--force-all"]] {
        let r = p.deploy(&args);
        r.assert_code(0);
        reports.push(p.report_of(&r));
    }
    p.config("nap: '1.5'\nadvanced:\n  retry_delay: 0\n");
    let r = p.deploy(&[]);
    r.assert_code(0);
    reports.push(p.report_of(&r));

    let third = std::fs::read_to_string(&reports[2]).unwrap();
    let dom = parse(&third);
    let nap = by_step(&dom, "step", "nap");
    assert!(!has_class(&nap, "slower"), "{}", text_of(nap));
    assert!(
        text_of(nap).contains("of the last 2 runs"),
        "{}",
        text_of(nap)
    );

    let fourth = std::fs::read_to_string(&reports[3]).unwrap();
    let dom = parse(&fourth);
    let nap = by_step(&dom, "step", "nap");
    assert!(has_class(&nap, "slower"), "{}", text_of(nap));
    let t = text_of(nap);
    assert!(
        t.contains("of the last 3 runs") && t.contains("slower than usual"),
        "{t}"
    );
    // trends: four runs of wall time, and the step's sparkline with four points
    assert_eq!(
        dom.descendants()
            .filter(|n| n.attribute("data-run").is_some())
            .count(),
        4
    );
    let spark = dom
        .descendants()
        .find(|n| n.has_tag_name("tr") && n.attribute("data-step") == Some("nap"))
        .expect("trend row")
        .descendants()
        .find(|n| n.has_tag_name("polyline"))
        .expect("sparkline");
    assert_eq!(spark.attribute("points").unwrap().split(' ').count(), 4);
}

#[test]
fn the_last_50_reports_are_kept_and_dry_runs_write_none() {
    let p = Project::new();
    p.step("01_a.rhai", &step("", r#"az(["a"]);"#));
    let dir = p.path().join(".stepwise/reports");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..50 {
        let id = format!("20200101T0000{i:02}Z-1");
        let doc = json!({"command": "deploy", "run_id": id, "started_at": format!("2020-01-01T00:00:{i:02}Z"), "steps": [], "wall_secs": 1.0});
        std::fs::write(dir.join(format!("{id}.json")), doc.to_string()).unwrap();
        std::fs::write(dir.join(format!("{id}.html")), "<html/>").unwrap();
    }
    let r = p.deploy(&[]);
    r.assert_code(0);
    let new = p.report_of(&r);
    let names = |ext: &str| {
        support::walk(&dir)
            .iter()
            .filter(|f| f.extension().is_some_and(|e| e == ext))
            .count()
    };
    assert_eq!((names("html"), names("json")), (50, 50));
    assert!(new.exists());
    assert!(!dir.join("20200101T000000Z-1.html").exists());
    assert!(!dir.join("20200101T000000Z-1.json").exists());
    assert!(dir.join("20200101T000001Z-1.html").exists());
    // the kept runs are in the new report's trend (49 old ones and this one)
    let html = std::fs::read_to_string(&new).unwrap();
    assert_eq!(html.matches("data-run=").count(), 50);

    p.deploy(&["--dry-run", "--force-all"])
        .assert_code(0)
        .assert_not_contains("Report:");
    assert_eq!(names("html"), 50);
    assert_eq!(p.path().join(p.run(&["report"]).stdout.trim()), new);
}

#[test]
fn a_report_that_cannot_be_written_is_a_warning_and_the_deployment_is_recorded() {
    let p = Project::new();
    p.config("x: 1\nadvanced:\n  retry_delay: 0\n")
        .step("01_a.rhai", &step(r#"config: ["x"]"#, r#"az(["a"]);"#));
    p.deploy(&[]).assert_code(0);
    let dir = p.path().join(".stepwise/reports");
    let immutable = support::Immutable::set(&dir);
    p.config("x: 2\nadvanced:\n  retry_delay: 0\n");
    let r = p.deploy(&[]);
    drop(immutable);
    r.assert_code(0)
        .assert_contains("warning: the run report was not written")
        .assert_contains("the deployment and its state are not affected")
        .assert_not_contains("Report:");
    assert_eq!(r.ran(), ["a"]);
    assert_eq!(p.status("a"), "completed");
    p.deploy(&[])
        .assert_code(0)
        .assert_contains("Nothing to do.");
}

#[test]
fn an_environment_keeps_its_reports_beside_its_logs_and_names_itself() {
    let p = Project::new();
    p.config("app: base\nadvanced:\n  retry_delay: 0\n")
        .file("config.staging.yaml", "app: staging\n")
        .step(
            "01_a.rhai",
            &step(r#"config: ["app"]"#, r#"az(["a", read_config("app")]);"#),
        );
    let r = p.deploy(&["--env", "staging"]);
    r.assert_code(0);
    let path = p.report_of(&r);
    assert!(
        path.starts_with(p.path().join(".stepwise/envs/staging/reports")),
        "{}",
        path.display()
    );
    assert!(p
        .path()
        .join(".stepwise/envs/staging/logs")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some()));
    let html = std::fs::read_to_string(&path).unwrap();
    let dom = parse(&html);
    let header = text_of(
        dom.descendants()
            .find(|n| n.has_tag_name("header"))
            .unwrap(),
    );
    assert!(header.contains("Environmentstaging"), "{header}");
    assert!(text_of(by_step(&dom, "step", "a")).contains("az a staging"));
    // `report` looks in the selected environment's folder only
    let found = p.run(&["report", "--env", "staging"]);
    found.assert_code(0);
    assert_eq!(p.path().join(found.stdout.trim()), path);
    p.run(&["report"])
        .assert_code(2)
        .assert_contains("no run report in .stepwise/reports");
    p.run(&["report", "--env", "../x"]).assert_code(2);
    // the default environment's run goes to .stepwise/reports/
    let r = p.deploy(&[]);
    r.assert_code(0);
    assert!(p
        .report_of(&r)
        .starts_with(p.path().join(".stepwise/reports")));
    let r = p.run(&["report", "--plan", "--env", "staging"]);
    r.assert_code(0);
    assert_eq!(r.stdout.trim(), ".stepwise/envs/staging/reports/plan.html");
    assert!(p
        .read(".stepwise/envs/staging/reports/plan.html")
        .contains("Environment</dt><dd>staging"));
}

#[test]
fn each_watch_cycle_that_runs_steps_leaves_a_report() {
    use std::time::Duration;
    let p = Project::new();
    p.config("app: 1\nadvanced:\n  retry_delay: 0\n")
        .step("01_a.rhai", &step(r#"config: ["app"]"#, r#"az(["a"]);"#));
    let cycles = |p: &Project| {
        p.read("watch.out")
            .matches("[watch] waiting for changes")
            .count()
    };
    let child = support::Running(Some(p.spawn_logged(&["watch"], "watch.out")));
    let limit = Duration::from_secs(60);
    assert!(
        support::wait_for(limit, || cycles(&p) >= 1),
        "{}",
        p.read("watch.out")
    );
    p.config("app: 2\nadvanced:\n  retry_delay: 0\n");
    assert!(
        support::wait_for(limit, || cycles(&p) >= 2),
        "{}",
        p.read("watch.out")
    );
    child.signal_and_wait(libc::SIGINT);
    let reports: Vec<_> = support::walk(&p.path().join(".stepwise/reports"))
        .into_iter()
        .filter(|f| f.extension().is_some_and(|e| e == "html"))
        .collect();
    assert_eq!(reports.len(), 2, "{reports:?}\n{}", p.read("watch.out"));
    let latest = p.run(&["report"]);
    let html = p.read(latest.stdout.trim());
    assert!(
        html.contains("data-step=\"a\" data-status=\"ran\""),
        "{html}"
    );
}

#[test]
fn a_deployment_with_nothing_to_do_writes_no_report_and_latest_stays_the_last_real_run() {
    let p = Project::new();
    p.config("x: 1\nadvanced:\n  retry_delay: 0\n")
        .step("01_a.rhai", &step(r#"config: ["x"]"#, r#"az(["a"]);"#));
    let r = p.deploy(&[]);
    r.assert_code(0);
    let real = p.report_of(&r);
    let count = || std::fs::read_dir(real.parent().unwrap()).unwrap().count();
    let before = count();
    for _ in 0..3 {
        p.deploy(&[])
            .assert_code(0)
            .assert_contains("Nothing to do.")
            .assert_not_contains("Report:");
    }
    assert_eq!(count(), before, "no-op runs wrote reports");
    let latest = p.run(&["report"]);
    latest.assert_code(0);
    assert_eq!(p.path().join(latest.stdout.trim()), real);
}

#[test]
fn warnings_reach_the_summary_the_json_the_markdown_and_the_report_header() {
    let p = Project::new();
    p.config("advanced:\n  retry_delay: 0\n")
        .step(
            "01_a.rhai",
            &step(
                "",
                r#"warn("No Gemini API key: the draft service answers 503"); az(["a"]);"#,
            ),
        )
        .step(
            "02_b.rhai",
            &step(r#"needs: ["a"]"#, r#"warn("quota at 80%");"#),
        );
    let r = p.deploy(&[]);
    r.assert_code(0);
    // The console summary ends with them, each with its step.
    let tail = r
        .stdout
        .rsplit("STEP")
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(tail.contains("2 warnings:"), "{}", r.all());
    assert!(tail.contains("  a: No Gemini API key: the draft service answers 503"));
    assert!(tail.contains("  b: quota at 80%"));
    // The report: a warnings section before the timeline.
    let html = std::fs::read_to_string(p.report_of(&r)).unwrap();
    let section = html
        .find("<section id=\"warnings\"><h2>Warnings (2)</h2>")
        .expect("warnings section");
    assert!(section < html.find("id=\"timeline\"").unwrap());
    assert!(html.contains("<a href=\"#step-a\">a</a>: No Gemini API key"));
    // JSON and Markdown (what notifications carry).
    p.config("advanced:\n  retry_delay: 1\n");
    let r = p.run(&["--auto-approve", "--force-all", "--output", "json"]);
    r.assert_code(0);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        doc["warnings"],
        serde_json::json!([
            {"step": "a", "message": "No Gemini API key: the draft service answers 503"},
            {"step": "b", "message": "quota at 80%"}
        ])
    );
    let r = p.run(&["--auto-approve", "--force-all", "--output", "markdown"]);
    r.assert_code(0)
        .assert_contains("**2 warning(s):**")
        .assert_contains("- `a`: No Gemini API key: the draft service answers 503");
}

/// The report of a failed run answers "what happened" before anything else: an error banner
/// in the header (each failed step's error text, then its command), the public outputs, the
/// environment (the default one too), config, commit and branch, the CI run's link, who ran
/// it without `$USER`; a retried step says how many retries, and is not called slower.
#[test]
fn a_failed_run_opens_on_its_errors_with_outputs_origin_and_retries() {
    let p = Project::new();
    p.config("advanced:\n  retry_attempts: 3\n  retry_delay: 0\n")
        .step(
            "01_web.rhai",
            &step(
                r#"public_outputs: ["url", "port"]"#,
                r#"az(["webapp", "up"]); output("url", "https://web.example.test/app?a=1&b=2");
                   output("port", 8443); output("internal", "not shown");"#,
            ),
        )
        .step(
            "02_flaky.rhai",
            &step(r#"needs: ["web"]"#, r#"az(["flaky", "call"]);"#),
        )
        .step(
            "03_broken.rhai",
            &step("", r#"az(["broken", "--name", "rg"]);"#),
        );
    support::git(p.path(), &["init", "-q", "-b", "main"]);
    support::git(p.path(), &["add", "-A"]);
    support::git(p.path(), &["commit", "-q", "-m", "first"]);
    let commit = support::git(p.path(), &["rev-parse", "HEAD"]);
    p.deploy(&[]).assert_code(0);
    p.az_rules(json!([
        {"args": ["flaky"], "exit": 1, "sleep": 0.4, "stderr": "ERROR: (Throttled) too many requests"},
        {"args": ["broken"], "exit": 1,
         "stderr": "WARNING: this command is deprecated\nERROR: (ResourceGroupNotFound) Resource group 'rg' could not be found.\nCode: ResourceGroupNotFound"}
    ]));
    let mut p = p;
    p.env("USER", "")
        .env("LOGNAME", "")
        .env("SYSTEM_COLLECTIONURI", "https://dev.azure.com/acme/")
        .env("SYSTEM_TEAMPROJECT", "Shop Front")
        .env("BUILD_BUILDID", "981");
    let r = p.deploy(&["--force-all", "--keep-going"]);
    r.assert_code(1);
    let html = std::fs::read_to_string(p.report_of(&r)).unwrap();
    let dom = parse(&html);

    // The banner comes first: in the header, before the facts.
    let banner = dom
        .descendants()
        .find(|n| n.attribute("id") == Some("errors"))
        .expect("an error banner");
    assert_eq!(banner.parent().unwrap().tag_name().name(), "header");
    assert!(html.find("id=\"errors\"").unwrap() < html.find("class=\"facts\"").unwrap());
    assert!(
        text_of(banner).starts_with("2 steps failed"),
        "{}",
        text_of(banner)
    );
    let flaky = by_step(&dom, "st-failed", "flaky");
    let t = text_of(flaky);
    assert!(t.contains("2 retries"), "{t}");
    let error = t
        .find("ERROR: (Throttled) too many requests")
        .expect("error text");
    let command = t
        .find("command az flaky call --output json, exit 1")
        .unwrap_or_else(|| panic!("{t}"));
    assert!(error < command, "{t}");
    let broken = text_of(by_step(&dom, "st-failed", "broken"));
    assert!(
        broken.contains("ERROR: (ResourceGroupNotFound) Resource group 'rg' could not be found."),
        "{broken}"
    );
    assert!(
        !broken.contains("WARNING"),
        "the error line, not the first line: {broken}"
    );
    assert!(broken.contains("at steps/03_broken.rhai:"), "{broken}");

    // A retried step is not "slower than usual": its time went to retries.
    let step_flaky = by_step(&dom, "step", "flaky");
    assert!(!has_class(&step_flaky, "slower"), "{}", text_of(step_flaky));
    assert!(text_of(step_flaky).contains("↻ 2 retries"));

    // Public outputs, a URL as a link; an output not marked public is not shown.
    let outputs = dom
        .descendants()
        .find(|n| n.attribute("id") == Some("outputs"))
        .expect("outputs");
    let url = outputs
        .descendants()
        .find(|n| n.has_tag_name("a"))
        .expect("a link");
    assert_eq!(
        url.attribute("href"),
        Some("https://web.example.test/app?a=1&b=2")
    );
    assert!(
        text_of(outputs).contains("web.port8443"),
        "{}",
        text_of(outputs)
    );
    assert!(!html.contains("not shown"));
    assert!(html.find("id=\"outputs\"").unwrap() < html.find("id=\"timeline\"").unwrap());

    // Where it came from.
    let fact = |k: &str| {
        dom.descendants()
            .filter(|n| n.has_tag_name("dt") && text_of(*n) == k)
            .map(|dt| text_of(dt.next_sibling_element().unwrap()))
            .next()
            .unwrap_or_else(|| panic!("no fact {k}"))
    };
    assert_eq!(fact("Environment"), "default");
    assert_eq!(fact("Config"), "config.yaml");
    assert_eq!(fact("Commit"), format!("{} on main", &commit[..12]));
    assert_eq!(fact("CI run"), "Azure Pipelines run");
    assert!(html
        .contains("href=\"https://dev.azure.com/acme/Shop%20Front/_build/results?buildId=981\""));
    let by = fact("By");
    assert!(!by.starts_with("uid "), "By: {by}");
    assert!(!by.starts_with('@'), "By: {by}");
    // The run summary beside it has them too.
    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(p.report_of(&r).with_extension("json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["git"]["commit"], commit.as_str());
    assert_eq!(
        json["outputs"][0]["value"],
        "https://web.example.test/app?a=1&b=2"
    );
    assert_eq!(json["steps"][1]["retries"], 2);
    // The graph also as a list (shown instead of the drawing on a phone).
    assert_eq!(
        all(&dom, "graph-list")[0]
            .children()
            .filter(|n| n.is_element())
            .count(),
        3
    );
}
