//! The set of files stepwise fingerprints for a Docker build context is the set Docker sends:
//! a property test against an independent implementation of the same rules, the Docker SDK for
//! Python (`docker.utils.build.exclude_paths`, installed by scripts/test.sh).
//!
//! Random trees (files, folders, links to files and folders, dangling links) and random
//! `.dockerignore` files (anchored names, `*`, `?`, `**`, classes, `!` exceptions, leading and
//! trailing slashes, comments) — at least 500 cases per run, seeded: the seed is printed on
//! failure and `STEPWISE_PROPTEST_SEED=N` replays it.
//!
//! Generated names and patterns avoid the corners where the SDK and Docker itself disagree,
//! so that a difference is a bug of stepwise: upper-case letters (the SDK matches without
//! case, Docker with), `\` escapes and `[!..]`/`[^..]` classes (the SDK reads them
//! differently), `..` in patterns.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// splitmix64: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const NAMES: &[&str] = &[
    "a",
    "b",
    "c",
    "ab",
    "bc",
    "src",
    "dist",
    "docs",
    "x.md",
    "y.log",
    "z.txt",
    "readme.md",
];

/// A random tree under `dir`; returns the folders made (relative).
fn make_tree(rng: &mut Rng, dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut dirs = vec![String::new()];
    let mut files = Vec::new();
    let n = 3 + rng.below(12);
    for _ in 0..n {
        let parent = dirs[rng.below(dirs.len())].clone();
        let name = rng.pick(NAMES);
        let rel = if parent.is_empty() {
            name.to_string()
        } else {
            format!("{parent}/{name}")
        };
        let path = dir.join(&rel);
        if path.exists() || rel.split('/').count() > 4 {
            continue;
        }
        if rng.chance(35) && !name.contains('.') {
            std::fs::create_dir_all(&path).unwrap();
            dirs.push(rel);
        } else {
            std::fs::write(&path, format!("{rel}\n")).unwrap();
            files.push(rel);
        }
    }
    if rng.chance(30) {
        std::fs::write(dir.join("Dockerfile"), "FROM scratch\n").unwrap();
    }
    // links: to a file, to a folder, dangling
    for _ in 0..rng.below(3) {
        let parent = dirs[rng.below(dirs.len())].clone();
        let name = format!("l{}", rng.below(5));
        let rel = if parent.is_empty() {
            name
        } else {
            format!("{parent}/{name}")
        };
        let path = dir.join(&rel);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        let target = match rng.below(3) {
            0 if !files.is_empty() => format!("/{}", files[rng.below(files.len())]),
            1 => format!("/{}", dirs[rng.below(dirs.len())]),
            _ => "/nowhere".to_string(),
        };
        // absolute targets inside the case folder keep the tree self-contained
        let target = dir.join(target.trim_start_matches('/'));
        std::os::unix::fs::symlink(target, path).unwrap();
    }
    dirs
}

/// One random pattern segment.
fn segment(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => "*".into(),
        1 => "**".into(),
        2 => "?".into(),
        3 => format!("{}*", rng.pick(&["a", "b", "d", "s"])),
        4 => format!("*.{}", rng.pick(&["md", "log", "txt"])),
        5 => rng.pick(&["[ab]", "[a-c]", "[a-c]*", "?b"]).into(),
        _ => rng.pick(NAMES).into(),
    }
}

fn dockerignore(rng: &mut Rng) -> String {
    let mut lines = Vec::new();
    for _ in 0..rng.below(7) {
        if rng.chance(8) {
            lines.push(if rng.chance(50) { "# a comment" } else { "" }.to_string());
            continue;
        }
        let segs: Vec<String> = (0..1 + rng.below(3)).map(|_| segment(rng)).collect();
        let mut p = segs.join("/");
        if rng.chance(10) {
            p = format!("/{p}");
        } else if rng.chance(5) {
            p = format!("./{p}");
        }
        if rng.chance(10) {
            p.push('/');
        }
        if rng.chance(30) {
            p = format!("!{p}");
        }
        if rng.chance(10) {
            p = format!("  {p} ");
        }
        lines.push(p);
    }
    if rng.chance(10) {
        lines.push(".dockerignore".into());
    }
    lines.join("\n") + "\n"
}

const SDK_SCRIPT: &str = r##"
import json, os, sys
from docker.utils.build import exclude_paths
out = {}
for case in json.load(sys.stdin):
    patterns = []
    ignore = os.path.join(case, ".dockerignore")
    if os.path.exists(ignore):
        # read as docker.api.build.BuildApiMixin.build reads it
        with open(ignore) as f:
            patterns = list(filter(lambda x: x != "" and x[0] != "#",
                                   [line.strip() for line in f.read().splitlines()]))
    out[case] = sorted(exclude_paths(case, patterns, dockerfile="Dockerfile"))
json.dump(out, sys.stdout)
"##;

fn sdk_python() -> PathBuf {
    let path = std::env::var("STEPWISE_DOCKER_SDK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join(".tools/docker-sdk/bin/python")
        });
    assert!(
        path.exists(),
        "the Docker SDK for Python is not installed at {}: run scripts/test.sh (it installs it with pip)",
        path.display()
    );
    path
}

#[test]
fn the_context_stepwise_hashes_is_the_one_the_docker_sdk_sends() {
    let cases: usize = std::env::var("STEPWISE_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let seed: u64 = std::env::var("STEPWISE_PROPTEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let mut rng = Rng(seed);
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().canonicalize().unwrap();
    let mut ignores = BTreeMap::new();
    let mut dirs = Vec::new();
    for i in 0..cases {
        let dir = root.join(format!("case{i:04}"));
        make_tree(&mut rng, &dir);
        if rng.chance(90) {
            let text = dockerignore(&mut rng);
            std::fs::write(dir.join(".dockerignore"), &text).unwrap();
            ignores.insert(dir.clone(), text);
        }
        dirs.push(dir);
    }

    // the SDK, all cases in one process
    let input = serde_json::to_string(
        &dirs
            .iter()
            .map(|d| d.to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let mut child = std::process::Command::new(sdk_python())
        .args(["-c", SDK_SCRIPT])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python");
    {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the SDK script failed (seed {seed})");
    let sdk: BTreeMap<String, Vec<String>> = serde_json::from_slice(&out.stdout).unwrap();

    let config = stepwise::config::Config::empty(Path::new("config.yaml"));
    let fp = stepwise::decide::fingerprint::Fingerprinter {
        root: &root,
        config: &config,
        prelude_digest: "",
        exclude: vec![],
        cache: None,
        secret_salt: None,
        memo: Default::default(),
    };
    let mut failures = Vec::new();
    for dir in &dirs {
        let ours: BTreeSet<String> = fp
            .docker_context(dir.strip_prefix(&root).unwrap(), None)
            .unwrap_or_else(|e| panic!("seed {seed}: {}: {e:#}", dir.display()))
            .into_iter()
            .collect();
        let theirs: BTreeSet<String> = sdk[&*dir.to_string_lossy()].iter().cloned().collect();
        if ours != theirs {
            failures.push(format!(
                "{}\n  .dockerignore: {:?}\n  only stepwise: {:?}\n  only the SDK:  {:?}",
                dir.display(),
                ignores.get(dir),
                ours.difference(&theirs).collect::<Vec<_>>(),
                theirs.difference(&ours).collect::<Vec<_>>(),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed} (replay: STEPWISE_PROPTEST_SEED={seed}): {} of {cases} contexts differ from the Docker SDK's; the first ones:\n{}",
        failures.len(),
        failures[..failures.len().min(5)].join("\n")
    );
}
