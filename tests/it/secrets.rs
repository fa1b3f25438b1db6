//! Secrets (issue #18): the redactor at every sink and in every encoding, which config keys
//! are secret, secrets recognised in az answers by shape, `output()`, the command-line guard
//! (`--strict`), standard input and `secret_file()`.

use crate::support;
use base64::Engine as _;
use proptest::strategy::Strategy;
use serde_json::json;
use std::time::Duration;
use support::{step, wait_for, Project, Running};

/// A password with a quote, a double quote and a backslash-free tail, as in the issue.
const QUOTED: &str = "Pa'ss\"w0rd-Xy";

/// Every byte stepwise wrote that a person or a program could read: the runs' stdout and
/// stderr and every file under `.stepwise/`.
fn written(p: &Project, runs: &[&support::Run]) -> String {
    let mut out = String::new();
    for r in runs {
        out.push_str(&r.stdout);
        out.push_str(&r.stderr);
    }
    out.push_str(&p.local_files_text());
    out
}

/// The forms a secret may be written in, as searched in what stepwise wrote: plain,
/// shell-quoted, JSON-escaped (serde and Python styles), URL-encoded, and the characters of
/// base64 / base64url that depend on the secret alone, at each alignment.
fn encodings(secret: &str) -> Vec<(String, String)> {
    let mut out = vec![
        ("plain".to_string(), secret.to_string()),
        ("shell".into(), secret.replace('\'', "'\\''")),
        ("json".into(), {
            let s = serde_json::to_string(secret).unwrap();
            s[1..s.len() - 1].to_string()
        }),
        ("json-ascii".into(), {
            let mut s = String::new();
            for c in secret.chars() {
                match c {
                    '"' => s.push_str("\\\""),
                    '\\' => s.push_str("\\\\"),
                    c if c.is_ascii() => s.push(c),
                    c => {
                        let mut buf = [0u16; 2];
                        for u in c.encode_utf16(&mut buf) {
                            s.push_str(&format!("\\u{u:04x}"));
                        }
                    }
                }
            }
            s
        }),
        ("url".into(), support::url(secret)),
    ];
    for (name, engine) in [
        ("base64", &base64::engine::general_purpose::STANDARD),
        ("base64url", &base64::engine::general_purpose::URL_SAFE),
    ] {
        for align in 0..3usize {
            let mut bytes = vec![b'x'; align];
            bytes.extend_from_slice(secret.as_bytes());
            bytes.extend_from_slice(b"xx");
            let enc = engine.encode(&bytes);
            let start = (8 * align).div_ceil(6);
            let end = 8 * (align + secret.len()) / 6;
            out.push((format!("{name}@{align}"), enc[start..end].to_string()));
        }
    }
    out
}

#[track_caller]
fn assert_no_secret(text: &str, secret: &str) {
    for (form, v) in encodings(secret) {
        assert!(
            !text.contains(&v),
            "secret {secret:?} found {form} ({v:?}) in what stepwise wrote:\n{text}"
        );
    }
}

#[test]
fn verbose_commands_are_masked_after_shell_quoting() {
    let p = Project::new();
    p.config(&format!(
        "db:\n  password: {}\nadvanced:\n  retry_delay: 0\n",
        serde_json::to_string(QUOTED).unwrap()
    ))
    .step(
        "01_a.rhai",
        &step(
            r#"config: ["db.password"]"#,
            r#"exec(["true", "--password", read_config("db.password")]);"#,
        ),
    );
    let r = p.deploy(&["--verbose"]);
    r.assert_code(0).assert_contains("$ true --password '***'");
    assert_no_secret(&written(&p, &[&r]), QUOTED);
}

#[test]
fn secrets_in_json_answers_in_base64_at_any_offset_and_in_the_error_of_main_are_masked() {
    let p = Project::new();
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let answer = json!({
        "escaped": QUOTED,
        "basic": b64(&format!("user:{QUOTED}")),
        "other": b64(&format!("u:{QUOTED}!")),
        "third": b64(QUOTED),
    });
    p.config(&format!(
        "db:\n  password: {}\nadvanced:\n  retry_delay: 0\n",
        serde_json::to_string(QUOTED).unwrap()
    ))
    .az_rules(json!([{"args": ["show"], "stdout": answer.to_string()}]))
    .step(
        "01_a.rhai",
        &step(
            r#"config: ["db.password"]"#,
            r#"let a = az(["show"]); log(a);"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0);
    // An error printed by main that quotes what the user typed (here: a step name).
    let e = p.run(&["--auto-approve", "--force-step", QUOTED]);
    e.assert_code(2)
        .assert_contains("--force-step ***: no such step");
    let j = p.run(&["--auto-approve", "--force-step", QUOTED, "--output", "json"]);
    j.assert_code(2);
    let text = written(&p, &[&r, &e, &j]);
    assert!(text.contains("***"));
    assert_no_secret(&text, QUOTED);
    for s in answer.as_object().unwrap().values() {
        assert!(!text.contains(s.as_str().unwrap()), "{s}");
    }
}

#[test]
fn az_answers_are_recognised_by_shape_and_labels_are_not_patterns() {
    let p = Project::new();
    let storage_key = "k3yOne+AbCdEfGhIjKlMnOpQrStUvWxYz0123456789/ab==";
    let sig = "sV7%2Bq9sIgNaTuRe%3D";
    let sas = format!("se=2030-01-01T00%3A00Z&sp=r&sv=2022-11-02&sr=c&sig={sig}");
    let account_key = "AcC0untKeyZZ+yy/xx==";
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={account_key};EndpointSuffix=core.windows.net"
    );
    let acr = "acrPassw0rdValue+1";
    p.az_rules(json!([
        {"args": ["storage", "account", "keys", "list"],
         "stdout": json!([{"keyName": "key1", "permissions": "FULL", "value": storage_key}]).to_string()},
        {"args": ["storage", "container", "generate-sas"], "stdout": json!(sas).to_string()},
        {"args": ["storage", "account", "show-connection-string"],
         "stdout": json!({"connectionString": conn}).to_string()},
        {"args": ["acr", "credential", "show"],
         "stdout": json!({"username": "reg", "passwords": [{"name": "password", "value": acr}]}).to_string()},
    ]))
    .step(
        "01_a.rhai",
        &step(
            "",
            r#"let k = az(["storage", "account", "keys", "list"]);
               let s = az(["storage", "container", "generate-sas"]);
               let c = az(["storage", "account", "show-connection-string"]);
               let a = az(["acr", "credential", "show"]);
               log(`key ${k[0].value} sas ${s} conn ${c.connectionString} acr ${a.passwords[0].value}`);
               log(`the password field and key1 are labels: password key1 FULL`);"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0)
        .assert_contains("the password field and key1 are labels: password key1 FULL");
    let text = written(&p, &[&r]);
    for s in [
        storage_key,
        sas.as_str(),
        sig,
        account_key,
        conn.as_str(),
        acr,
    ] {
        assert!(!text.contains(s), "{s} leaked:\n{text}");
    }
}

#[test]
fn output_checks_the_value_itself() {
    let p = Project::new();
    p.config(&format!(
        "db:\n  password: {}\nllm:\n  max_tokens: 4096\nadvanced:\n  retry_delay: 0\n",
        serde_json::to_string(QUOTED).unwrap()
    ))
    .step(
        "01_ok.rhai",
        &step(
            r#"config: ["llm.max_tokens"]"#,
            r#"output("tokens", read_config("llm.max_tokens"));"#,
        ),
    )
    .step(
        "02_conn.rhai",
        &step(
            r#"needs: ["ok"], config: ["db.password"]"#,
            r#"output("conn", "Password=" + read_config("db.password"));"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(1)
        .assert_contains("output(\"conn\", ...): the value contains a secret");
    let state = p.state();
    assert_eq!(state["steps"]["ok"]["outputs"]["tokens"], 4096);
    assert!(state["steps"]["conn"]["outputs"]
        .as_object()
        .is_none_or(|o| o.is_empty()));
    assert_no_secret(&p.local_files_text(), QUOTED);
}

#[test]
fn key_names_match_whole_segments_numbers_are_not_secret_by_name_and_steps_secrets_shows_them() {
    let p = Project::new();
    p.config(
        "llm:\n  max_tokens: 4096\n  api_key: sk-LIVE-abcdef\nauth:\n  password_policy: strict\n  token_ttl: 3600\n  reset_token: rst-Value-1234\ndb:\n  admin_password: Adm1n-Pw-xyz\n  port: 5432\nsecrets:\n  pin: 98765432\nmongodb:\n  uri: mongodb://u:Mongo-pw-77@h/db\ndeployment:\n  secret_keys: [mongodb.uri]\n  not_secret_keys: [auth.reset_token]\nadvanced:\n  retry_delay: 0\n",
    )
    .step(
        "01_a.rhai",
        &step(
            r#"config: ["llm", "auth", "db.port"]"#,
            r#"log(`limit ${read_config("llm.max_tokens")} policy ${read_config("auth.password_policy")} ttl ${read_config("auth.token_ttl")} reset ${read_config("auth.reset_token")} port ${read_config("db.port")} key ${read_config("llm.api_key")}`);
               output("tokens", read_config("llm.max_tokens"));
               output("policy", read_config("auth.password_policy"));"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0).assert_contains(
        "limit 4096 policy strict ttl 3600 reset rst-Value-1234 port 5432 key ***",
    );
    assert_eq!(p.state()["steps"]["a"]["outputs"]["tokens"], 4096);

    let s = p.run(&["steps", "--secrets"]);
    s.assert_code(0);
    for key in [
        "llm.api_key  (by its name)",
        "db.admin_password  (by its name)",
        "secrets.pin  (under `secrets:`)",
        "mongodb.uri  (listed in deployment.secret_keys)",
        "Not secret (deployment.not_secret_keys): auth.reset_token",
        "step a reads secrets through: llm",
    ] {
        s.assert_contains(key);
    }
    for not in [
        "max_tokens",
        "password_policy",
        "token_ttl",
        "reset_token  (",
        "db.port",
    ] {
        s.assert_not_contains(not);
    }
    for value in ["sk-LIVE-abcdef", "Adm1n-Pw-xyz", "98765432", "Mongo-pw-77"] {
        s.assert_not_contains(value);
    }
}

/// A step that passes a secret on a command line: a warning naming the step, the program and
/// the secret (once per step and command); `--strict` refuses before the command starts.
#[test]
fn the_guard_warns_once_per_command_and_strict_refuses_before_the_command_starts() {
    let mut p = Project::new();
    p.env("DEPLOY_TOKEN", "tok-Secret-4711");
    p.step(
        "01_a.rhai",
        &step(
            r#"env: ["DEPLOY_TOKEN"]"#,
            r#"let t = env_secret("DEPLOY_TOKEN");
               az(["login", "--token", t]);
               az(["login", "--token", t]);
               az(["other", "--header", `Authorization: Bearer ${t}`]);"#,
        ),
    );
    let r = p.deploy(&[]);
    r.assert_code(0);
    let warning =
        "step `a`: `az login` would carry env_secret(\"DEPLOY_TOKEN\") on its command line";
    // Once while the step runs, and once more in the summary's list of warnings (a warning
    // per call would be four).
    assert_eq!(r.all().matches(warning).count(), 2, "{}", r.all());
    assert!(r.stdout.contains("2 warnings:"), "{}", r.all());
    r.assert_contains("secret_file(value)")
        .assert_contains("`az other` would carry env_secret(\"DEPLOY_TOKEN\")");
    assert_eq!(p.az_calls().len(), 3);
    assert_no_secret(&written(&p, &[&r]), "tok-Secret-4711");

    p.clear_calls();
    let r = p.deploy(&["--strict", "--force-all"]);
    r.assert_code(1)
        .assert_contains("`az login` would carry env_secret(\"DEPLOY_TOKEN\") on its command line")
        .assert_contains("refused");
    assert!(p.az_calls().is_empty(), "{:?}", p.az_calls());
    // The same from the config.
    p.config("deployment:\n  strict_secrets: true\nadvanced:\n  retry_delay: 0\n");
    p.deploy(&["--force-all"])
        .assert_code(1)
        .assert_contains("refused");
    assert!(p.az_calls().is_empty());
}

#[test]
fn standard_input_reaches_the_program_and_never_the_logs() {
    let mut p = Project::new();
    p.env("PASS", "stdin-Secret-99'\"x");
    p.step(
        "01_a.rhai",
        &step(
            r#"env: ["PASS"]"#,
            r#"let s = env_secret("PASS");
               exec(["dd", "of=got.txt", "status=none"], #{ stdin: s });
               let r = exec_try(["cat"], #{ stdin: s });
               log(`cat printed ${r.stdout}`);
               az(["login", "--password-stdin"], #{ stdin: s });"#,
        ),
    );
    let r = p.deploy(&["--verbose"]);
    r.assert_code(0)
        .assert_contains("$ dd of=got.txt status=none < (standard input)")
        .assert_contains("cat printed ***")
        .assert_not_contains("would carry");
    assert_eq!(p.read("got.txt"), "stdin-Secret-99'\"x");
    assert_no_secret(&written(&p, &[&r]), "stdin-Secret-99'\"x");
    assert_eq!(
        p.az_calls(),
        [vec!["login", "--password-stdin", "--output", "json"]]
    );
    // A wrong option is a located error.
    p.step("01_a.rhai", &step("", r#"exec(["true"], #{ stdn: "x" });"#));
    p.deploy(&[])
        .assert_code(1)
        .assert_contains("exec(): unknown option `stdn` (options: stdin)");
}

/// A step that writes a secret file, says where, then (`mode`) ends well, fails, or waits.
fn secret_file_project(mode: &str) -> Project {
    let p = Project::new();
    let end = match mode {
        "ok" => "",
        "fail" => r#"throw "boom";"#,
        _ => r#"exec(["sleep", "30"]);"#,
    };
    p.step(
        "01_a.rhai",
        &step(
            r#"config: ["secrets"]"#,
            &format!(
                r#"let f = secret_file(read_config("secrets.value"));
                   log(`file ${{f}} mode ${{exec(["stat", "-c", "%a", f])}} dir ${{exec(["stat", "-c", "%a", exec(["dirname", f])])}} holds ${{exec(["cat", f])}}`);
                   {end}"#
            ),
        ),
    );
    p.config("secrets:\n  value: file-Secret-123=\"'\\\nadvanced:\n  retry_delay: 0\n");
    p
}

fn secret_file_path(text: &str) -> std::path::PathBuf {
    let line = text
        .lines()
        .find(|l| l.contains("file /"))
        .unwrap_or_else(|| panic!("no file line in:\n{text}"));
    let path = line
        .split("file ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    std::path::PathBuf::from(path)
}

#[test]
fn secret_files_are_private_and_gone_after_success_and_failure() {
    for (mode, code) in [("ok", 0), ("fail", 1)] {
        let p = secret_file_project(mode);
        let r = p.deploy(&[]);
        r.assert_code(code)
            .assert_contains("mode 600 dir 700 holds ***");
        let path = secret_file_path(&r.stdout);
        assert!(!path.exists(), "{mode}: {} left behind", path.display());
        assert!(
            !path.parent().unwrap().exists(),
            "{mode}: its directory left behind"
        );
        assert_no_secret(&written(&p, &[&r]), "file-Secret-123=\"'\\");
    }
}

#[test]
fn secret_files_are_gone_after_sigint_and_after_a_second_signal() {
    for signals in [1, 2] {
        let p = secret_file_project("wait");
        let running = Running(Some(p.spawn_logged(&["--auto-approve"], "out.txt")));
        assert!(
            wait_for(Duration::from_secs(20), || p
                .read("out.txt")
                .contains("file /")
                && p.read("out.txt").contains("holds")),
            "{}",
            p.read("out.txt")
        );
        std::thread::sleep(Duration::from_millis(300));
        let path = secret_file_path(&p.read("out.txt"));
        assert!(path.exists());
        if signals == 2 {
            unsafe { libc::kill(running.id() as i32, libc::SIGINT) };
            std::thread::sleep(Duration::from_millis(100));
        }
        let code = running.signal_and_wait(libc::SIGINT);
        assert_eq!(code, Some(130), "{}", p.read("out.txt"));
        assert!(
            !path.exists(),
            "{signals} signal(s): {} left",
            path.display()
        );
        assert!(!path.parent().unwrap().exists());
    }
}

/// `s` as Python's json.dumps writes it inside a string (ASCII only).
fn json_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut buf = [0u16; 2];
                for u in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{u:04x}"));
                }
            }
        }
    }
    out
}

/// One secret through every sink: an az answer carrying it in every encoding (logged), a
/// command line carrying it (shown quoted with --verbose, warned about), an output (refused),
/// an error message (console, log, state, JSON report), a dry run, the error printed by main
/// (plain and JSON), `state show`, `plan --output json`. Returns everything stepwise wrote.
fn through_every_sink(secret: &str) -> String {
    let p = Project::new();
    let b64 = |s: String| base64::engine::general_purpose::STANDARD.encode(s);
    let b64url = |s: String| base64::engine::general_purpose::URL_SAFE.encode(s);
    let answer = format!(
        "{{\"plain\": {}, \"ascii\": \"{}\", \"url\": \"{}\", \"b0\": \"{}\", \"b1\": \"{}\", \"b2\": \"{}\", \"u1\": \"{}\", \"u2\": \"{}\"}}",
        serde_json::to_string(secret).unwrap(),
        json_ascii(secret),
        support::url(secret),
        b64(secret.to_string()),
        b64(format!("user:{secret}")),
        b64(format!("id={secret};")),
        b64url(format!("x{secret}yz")),
        b64url(format!("xy{secret}")),
    );
    p.config(&format!(
        "secrets:\n  value: {}\nadvanced:\n  retry_delay: 0\n  retry_attempts: 1\n",
        serde_json::to_string(secret).unwrap()
    ))
    .az_rules(json!([{"args": ["show"], "stdout": answer}]))
    .step(
        "01_answer.rhai",
        &step(
            r#"config: ["secrets"]"#,
            r#"let s = read_config("secrets.value");
               let a = az(["show"]);
               log(a);
               print(`plain ${s} quoted ${to_json(s)}`);
               exec(["true", "--password", s, `--pair=${s}`]);
               output("x", [s]);"#,
        ),
    )
    .step(
        "02_error.rhai",
        &step(
            r#"config: ["secrets"]"#,
            r#"let s = read_config("secrets.value");
               throw `bad value ${s} (${to_json(#{ v: s })})`;"#,
        ),
    );
    let mut runs = vec![
        p.deploy(&["--verbose", "--keep-going"]),
        p.deploy(&["--output", "json", "--force-all", "--keep-going"]),
        p.run(&["--dry-run", "--verbose", "--force-all"]),
        // `--force-step=VALUE`: a value that starts with `-` is a value only in this form
        // (clap echoes a would-be flag it does not know, before any config is read).
        p.run(&["--auto-approve", &format!("--force-step={secret}")]),
        p.run(&[
            "--auto-approve",
            &format!("--force-step={secret}"),
            "--output",
            "json",
        ]),
        p.run(&["state", "show"]),
        p.run(&["plan", "--output", "json"]),
    ];
    assert_eq!(runs[0].code, 1, "{}", runs[0].all());
    assert!(runs[0].all().contains("***"), "{}", runs[0].all());
    runs.push(p.run(&["steps", "--secrets"]));
    let refs: Vec<&support::Run> = runs.iter().collect();
    written(&p, &refs)
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(8))]
    /// Secrets with quotes, backslashes, unicode and `=`, through every sink and encoding: no
    /// form of them in any byte stepwise wrote.
    #[test]
    fn no_secret_in_any_byte_stepwise_writes_through_any_sink(
        secret in "[A-Za-z0-9'\"\\\\=\u{e9}\u{20ac}\u{1f600}%+/&:;!?-]{6,16}".prop_filter(
            "a secret has a letter, a character to escape and no surrounding space",
            |s| s.trim() == s
                && s.chars().any(|c| c.is_ascii_alphabetic())
                && s.chars().any(|c| "'\"\\=\u{e9}\u{20ac}\u{1f600}%+/&".contains(c)),
        )
    ) {
        let text = through_every_sink(&secret);
        for (form, v) in encodings(&secret) {
            proptest::prop_assert!(!text.contains(&v), "{} {:?} found in:\n{}", form, v, text);
        }
    }
}
