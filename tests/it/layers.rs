//! The house rule of `src/` (ARCHITECTURE.md, "Floors"): every top-level module of the crate
//! stands on a floor; a file refers only to its own floor and the floors below; no two files
//! refer to each other through any chain (no circle); only `cli` and `commands` know clap.
//!
//! References are read from the source: `use crate::…` trees (grouped, nested, multi-line),
//! `crate::a::b` paths in code, `super::…` paths, and `use child::…` of a `mod child;`, each
//! resolved to the file that defines the module it names. Comments and string literals are
//! blanked first. The checker runs on the real `src/` and on planted violations.
//!
//! Also here: no function in `src/` is longer than 100 lines (`MAX_FN_LINES`), measured from
//! its `fn` line to its closing brace on the same blanked code; unit-test modules
//! (`#[cfg(test)] mod … { … }`) and files named `*tests.rs` are not measured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The floors, bottom first: each is a folder of `src/` (a top-level module); the crate root
/// (`lib.rs`, `main.rs`) stands above them all.
const FLOORS: &[(&str, &[&str])] = &[
    ("util", &["util"]),
    ("sys", &["sys"]),
    ("config", &["config"]),
    ("state", &["state"]),
    ("decide", &["decide"]),
    ("run", &["run"]),
    ("present", &["present"]),
    ("app", &["app"]),
    ("cli", &["cli"]),
    ("commands", &["commands"]),
    ("root", &["lib", "main"]),
];

/// Where clap may be named.
const CLAP_FLOORS: &[&str] = &["cli", "commands"];

/// A reference from one file to another: `line` in `from` names a module defined in `to`.
#[derive(Debug, Clone)]
struct Edge {
    from: String,
    to: String,
    line: usize,
    text: String,
}

/// Blanks comments, string and char literals (keeping line breaks), so that only code is read.
fn code_only(src: &str) -> String {
    let b: Vec<char> = src.chars().collect();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < b.len() {
        let c = b[i];
        let next = b.get(i + 1).copied().unwrap_or('\0');
        if c == '/' && next == '/' {
            while i < b.len() && b[i] != '\n' {
                out.push(' ');
                i += 1;
            }
        } else if c == '/' && next == '*' {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == '/' && b.get(i + 1) == Some(&'*') {
                    depth += 1;
                    out.push_str("  ");
                    i += 2;
                } else if b[i] == '*' && b.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    out.push_str("  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == '"' || next == '#') && !ident_char(b.get(i.wrapping_sub(1)))
        {
            // A raw string: r"…", r#"…"#.
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            out.push(' ');
            for _ in 0..=hashes {
                out.push(' ');
            }
            i = j + 1;
            while i < b.len() {
                if b[i] == '"' && (0..hashes).all(|k| b.get(i + 1 + k) == Some(&'#')) {
                    for _ in 0..=hashes {
                        out.push(' ');
                    }
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(b[i]));
                i += 1;
            }
        } else if c == '"' {
            out.push(' ');
            i += 1;
            while i < b.len() && b[i] != '"' {
                if b[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < b.len() {
                    out.push(blank(b[i]));
                    i += 1;
                }
            }
            out.push(' ');
            i += 1;
        } else if c == '\''
            && (b.get(i + 2) == Some(&'\'') || (next == '\\' && b.get(i + 3) == Some(&'\'')))
        {
            // A char literal ('x', '\n'); a lifetime ('a) is left alone.
            let len = if next == '\\' { 4 } else { 3 };
            for _ in 0..len {
                out.push(' ');
            }
            i += len;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn ident_char(c: Option<&char>) -> bool {
    c.is_some_and(|c| c.is_alphanumeric() || *c == '_')
}

/// The module path of a file: `src/host/data.rs` → [host, data]; `src/host/mod.rs` → [host];
/// `src/lib.rs` → [].
fn module_of(rel: &Path) -> Vec<String> {
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs").to_string();
    if stem != "mod" && stem != "lib" && stem != "main" {
        parts.push(stem);
    }
    parts
}

/// The file that defines the deepest module `path` names (a prefix of it), if any.
fn file_of(src: &Path, path: &[String]) -> Option<String> {
    for k in (1..=path.len()).rev() {
        let dir: PathBuf = path[..k].iter().collect();
        for cand in [dir.with_extension("rs"), dir.join("mod.rs")] {
            if src.join(&cand).is_file() {
                return Some(cand.to_string_lossy().into_owned());
            }
        }
    }
    None
}

/// The paths a `use` tree starting at `t[i..]` names, each as its segments (the tree's
/// prefix included) with where its last segment is, and where the tree ends.
fn use_tree(
    t: &[char],
    mut i: usize,
    prefix: Vec<String>,
    out: &mut Vec<(usize, Vec<String>)>,
) -> usize {
    let mut path = prefix;
    let mut last = i;
    loop {
        while i < t.len() && t[i].is_whitespace() {
            i += 1;
        }
        if i >= t.len() {
            return i;
        }
        if t[i] == '{' {
            i += 1;
            loop {
                i = use_tree(t, i, path.clone(), out);
                while i < t.len() && t[i].is_whitespace() {
                    i += 1;
                }
                match t.get(i) {
                    Some(',') => i += 1,
                    Some('}') => return i + 1,
                    _ => return i,
                }
                while i < t.len() && t[i].is_whitespace() {
                    i += 1;
                }
                if t.get(i) == Some(&'}') {
                    return i + 1;
                }
            }
        }
        let start = i;
        while i < t.len() && (t[i].is_alphanumeric() || t[i] == '_' || t[i] == '*') {
            i += 1;
        }
        let seg: String = t[start..i].iter().collect();
        if seg.is_empty() {
            out.push((last, path));
            return i;
        }
        last = start;
        if seg != "self" && seg != "*" {
            path.push(seg);
        }
        if t.get(i) == Some(&':') && t.get(i + 1) == Some(&':') {
            i += 2;
            continue;
        }
        // `as name`, then the end of this tree.
        out.push((last, path));
        while i < t.len() && !matches!(t[i], ',' | '}' | ';') {
            i += 1;
        }
        return i;
    }
}

/// The segments of an inline path starting at `t[i..]` (after `crate::` or `super::`).
fn inline_path(t: &[char], mut i: usize) -> Vec<String> {
    let mut segs = Vec::new();
    loop {
        let start = i;
        while i < t.len() && (t[i].is_alphanumeric() || t[i] == '_') {
            i += 1;
        }
        if i == start {
            return segs;
        }
        segs.push(t[start..i].iter().collect());
        if t.get(i) == Some(&':') && t.get(i + 1) == Some(&':') {
            i += 2;
        } else {
            return segs;
        }
    }
}

fn line_at(t: &[char], i: usize) -> usize {
    t[..i].iter().filter(|c| **c == '\n').count() + 1
}

/// Every reference of one file to another file of `src/`.
fn edges_of(src: &Path, rel: &Path, text: &str) -> Vec<Edge> {
    let code = code_only(text);
    let t: Vec<char> = code.chars().collect();
    let me = module_of(rel);
    let is_mod_file = matches!(
        rel.file_name().and_then(|n| n.to_str()),
        Some("mod.rs" | "lib.rs" | "main.rs")
    );
    // `super` of this file's items: the parent module (for mod.rs, its folder's parent).
    let parent: Vec<String> = me[..me.len().saturating_sub(1)].to_vec();
    // `mod child;` declarations: `use child::…` and `child::x` name the child.
    let children: BTreeSet<String> = code
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let l = l.strip_prefix("pub ").unwrap_or(l);
            let l = l.strip_prefix("pub(crate) ").unwrap_or(l);
            l.strip_prefix("mod ")?
                .strip_suffix(';')
                .map(str::to_string)
        })
        .collect();
    // After the first `#[cfg(test)]` an inline test module's `super::` is this file itself.
    let tests_from = code.find("#[cfg(test)]").unwrap_or(code.len());
    let tests_from = code[..tests_from].chars().count();
    // (where, path)
    let mut paths: Vec<(usize, Vec<String>)> = Vec::new();
    let word_at = |i: usize, w: &str| {
        let wc: Vec<char> = w.chars().collect();
        t.len() >= i + wc.len()
            && t[i..i + wc.len()] == wc[..]
            && !ident_char(t.get(i.wrapping_sub(1)))
            && (i == 0 || t[i - 1] != ':')
    };
    let mut i = 0;
    while i < t.len() {
        if word_at(i, "use ") {
            let mut trees = Vec::new();
            let end = use_tree(&t, i + 4, Vec::new(), &mut trees);
            paths.extend(trees);
            i = end.max(i + 4);
            continue;
        }
        if word_at(i, "crate::") || word_at(i, "super::") {
            paths.push((i, inline_path(&t, i)));
            i += 7;
            continue;
        }
        if is_mod_file
            && t[i].is_alphabetic()
            && !ident_char(t.get(i.wrapping_sub(1)))
            && (i == 0 || t[i - 1] != ':')
        {
            let p = inline_path(&t, i);
            if p.len() > 1 && children.contains(&p[0]) {
                paths.push((i, p.clone()));
            }
            i += p.iter().map(|s| s.len()).sum::<usize>().max(1);
            continue;
        }
        i += 1;
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (at, p) in paths {
        let Some(first) = p.first() else { continue };
        let line = line_at(&t, at);
        let absolute: Vec<String> = match first.as_str() {
            "crate" => p[1..].to_vec(),
            "super" => {
                if at >= tests_from {
                    continue;
                }
                let base = if is_mod_file {
                    &me[..me.len().saturating_sub(1)]
                } else {
                    &parent[..]
                };
                base.iter().cloned().chain(p[1..].iter().cloned()).collect()
            }
            "self" => me.iter().cloned().chain(p[1..].iter().cloned()).collect(),
            s if children.contains(s) && is_mod_file => {
                me.iter().cloned().chain(p.iter().cloned()).collect()
            }
            _ => continue,
        };
        let Some(to) = file_of(src, &absolute) else {
            continue;
        };
        let from = rel.to_string_lossy().into_owned();
        if to != from && !out.iter().any(|e: &Edge| e.to == to && e.line == line) {
            out.push(Edge {
                from,
                to,
                line,
                text: lines
                    .get(line - 1)
                    .map(|l| l.trim().to_string())
                    .unwrap_or_default(),
            });
        }
    }
    out
}

fn rs_files(dir: &Path, src: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
    entries.sort_by_key(|e| e.path());
    for e in entries {
        let p = e.path();
        if p.is_dir() {
            rs_files(&p, src, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p.strip_prefix(src).unwrap().to_path_buf());
        }
    }
}

fn floor_of(file: &str) -> Option<(usize, &'static str)> {
    let top = module_of(Path::new(file))
        .into_iter()
        .next()
        .unwrap_or_else(|| {
            Path::new(file)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        });
    FLOORS
        .iter()
        .enumerate()
        .find(|(_, (_, mods))| mods.contains(&top.as_str()))
        .map(|(i, (name, _))| (i, *name))
}

/// Everything that breaks the rule in the crate whose sources are in `src`, one line each,
/// `file:line: …`.
fn violations(src: &Path) -> Vec<String> {
    let mut files = Vec::new();
    rs_files(src, src, &mut files);
    let mut problems = Vec::new();
    let mut edges = Vec::new();
    for rel in &files {
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let file = rel.to_string_lossy().into_owned();
        edges.extend(edges_of(src, rel, &text));
        let Some((_, floor)) = floor_of(&file) else {
            problems.push(format!("src/{file}: on no floor: add its module to FLOORS in tests/it/layers.rs (and to ARCHITECTURE.md)"));
            continue;
        };
        if !CLAP_FLOORS.contains(&floor) {
            let code = code_only(&text);
            for (n, l) in code.lines().enumerate() {
                // The crate root may declare the module, nothing more.
                let declares = floor == "root" && l.trim() == "pub mod cli;";
                if !declares && (l.contains("clap") || l.contains("cli::")) {
                    problems.push(format!(
                        "src/{file}:{}: only cli/ and commands/ know the command line: {}",
                        n + 1,
                        text.lines().nth(n).unwrap_or("").trim()
                    ));
                }
            }
        }
    }
    for e in &edges {
        let (Some((a, fa)), Some((b, fb))) = (floor_of(&e.from), floor_of(&e.to)) else {
            continue;
        };
        if b > a {
            problems.push(format!(
                "src/{}:{}: the {fa} floor refers up to the {fb} floor (src/{}): {}",
                e.from, e.line, e.to, e.text
            ));
        }
    }
    for cycle in circles(&edges) {
        let inside: BTreeSet<&String> = cycle.iter().collect();
        let mut msg = format!(
            "a circle between {}:",
            cycle
                .iter()
                .map(|f| format!("src/{f}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for e in edges
            .iter()
            .filter(|e| inside.contains(&e.from) && inside.contains(&e.to))
        {
            msg.push_str(&format!(
                "\n    src/{}:{}: → src/{}: {}",
                e.from, e.line, e.to, e.text
            ));
        }
        problems.push(msg);
    }
    problems
}

/// The strongly connected components of more than one file (Tarjan).
fn circles(edges: &[Edge]) -> Vec<Vec<String>> {
    let mut graph: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for e in edges {
        graph.entry(&e.from).or_default().insert(&e.to);
        graph.entry(&e.to).or_default();
    }
    struct T<'a> {
        graph: &'a BTreeMap<&'a str, BTreeSet<&'a str>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        for w in t.graph[v].iter().copied() {
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut comp = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                comp.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if comp.len() > 1 {
                comp.sort();
                t.out.push(comp);
            }
        }
    }
    let mut t = T {
        graph: &graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys().copied() {
        if !t.index.contains_key(v) {
            visit(&mut t, v);
        }
    }
    t.out
}

#[test]
fn src_keeps_the_floors_has_no_circle_and_clap_stays_at_the_top() {
    // `STEPWISE_LAYERS_SRC=DIR`: check another tree (e.g. an older checkout's src/).
    let src = std::env::var_os("STEPWISE_LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let problems = violations(&src);
    assert!(
        problems.is_empty(),
        "src/ breaks the house rule (ARCHITECTURE.md, Floors) in {} place(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// A small crate in a temporary folder, for planted violations.
fn planted(files: &[(&str, &str)]) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    violations(dir.path())
}

#[test]
fn a_planted_violation_is_named_with_its_file_and_line() {
    let base: &[(&str, &str)] = &[
        (
            "lib.rs",
            "pub mod util;\npub mod config;\npub mod app;\npub mod run;\n",
        ),
        ("run/mod.rs", "pub mod host;\n"),
        ("util/mod.rs", "pub mod fs;\n"),
        ("util/fs.rs", "pub fn write() {}\n"),
        ("config/mod.rs", "use crate::util::fs::write;\n"),
        ("app/mod.rs", "pub fn run() { crate::config::load(); }\n"),
        (
            "run/host/mod.rs",
            "mod context;\nmod data;\npub use context::Ctx;\n",
        ),
        ("run/host/context.rs", "pub struct Ctx;\n"),
        ("run/host/data.rs", "use super::context::Ctx;\n"),
    ];
    // The base keeps the rule.
    assert_eq!(planted(base), Vec::<String>::new());

    // A file that refers up, in a grouped multi-line `use`, in a comment (ignored) and in a
    // string (ignored).
    let mut up = base.to_vec();
    up[4] = (
        "config/mod.rs",
        "// crate::run::host::Ctx is above\nconst S: &str = \"crate::run::host\";\nuse crate::{\n    util::fs::write,\n    run::host::Ctx,\n};\n",
    );
    let found = planted(&up);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with(
            "src/config/mod.rs:5: the config floor refers up to the run floor (src/run/host/mod.rs)"
        ),
        "{found:#?}"
    );

    // A circle inside a floor: a child that uses its folder's mod.rs, which uses the child.
    let mut circle = base.to_vec();
    circle[7] = (
        "run/host/context.rs",
        "pub struct Ctx;\npub fn f() { super::helper(); }\n",
    );
    circle[6] = (
        "run/host/mod.rs",
        "mod context;\nmod data;\npub use context::Ctx;\npub fn helper() {}\n",
    );
    let found = planted(&circle);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert!(
        found[0].starts_with("a circle between src/run/host/context.rs, src/run/host/mod.rs:"),
        "{found:#?}"
    );
    assert!(
        found[0].contains("src/run/host/context.rs:2: → src/run/host/mod.rs"),
        "{found:#?}"
    );

    // clap below the top floors.
    let mut clap = base.to_vec();
    clap[5] = ("app/mod.rs", "use clap::Parser;\npub fn run() {}\n");
    let found = planted(&clap);
    assert_eq!(
        found,
        ["src/app/mod.rs:1: only cli/ and commands/ know the command line: use clap::Parser;"]
    );

    // A module on no floor.
    let mut stray = base.to_vec();
    stray.push(("stray.rs", "pub fn f() {}\n"));
    assert!(planted(&stray)[0].contains("src/stray.rs: on no floor"));
}

/// The longest a function may be, in lines from its `fn` line to its closing brace
/// (ARCHITECTURE.md: no function in `src/` longer than about 100 lines).
const MAX_FN_LINES: usize = 100;

/// Blanks every `#[cfg(test)] mod NAME { … }` block (keeping line breaks): unit tests are not
/// measured.
fn without_test_modules(code: &str) -> String {
    let mut t: Vec<char> = code.chars().collect();
    let attr: Vec<char> = "#[cfg(test)]".chars().collect();
    let mut i = 0;
    while i + attr.len() <= t.len() {
        if t[i..i + attr.len()] != attr[..] {
            i += 1;
            continue;
        }
        let mut j = i + attr.len();
        while j < t.len() && t[j].is_whitespace() {
            j += 1;
        }
        let rest: String = t[j..t.len().min(j + 8)].iter().collect();
        if !(rest.starts_with("mod ") || rest.starts_with("pub mod ")) {
            i += attr.len();
            continue;
        }
        // The module's body, if it has one here (`mod x;` names a file, measured as a file).
        let Some(open) = (j..t.len()).find(|&k| t[k] == '{' || t[k] == ';') else {
            break;
        };
        if t[open] == ';' {
            i = open;
            continue;
        }
        let end = closing_brace(&t, open).unwrap_or(t.len() - 1);
        for c in &mut t[i..=end] {
            if *c != '\n' {
                *c = ' ';
            }
        }
        i = end + 1;
    }
    t.into_iter().collect()
}

/// Where the brace that closes the one at `open` is.
fn closing_brace(t: &[char], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (k, c) in t.iter().enumerate().skip(open) {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
    }
    None
}

/// Every function with a body in one file's code, as (line of `fn`, name, lines from the `fn`
/// line to the closing brace).
fn functions_of(code: &str) -> Vec<(usize, String, usize)> {
    let t: Vec<char> = code.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 3 <= t.len() {
        let is_fn = t[i] == 'f'
            && t[i + 1] == 'n'
            && t[i + 2].is_whitespace()
            && !ident_char(t.get(i.wrapping_sub(1)));
        if !is_fn {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < t.len() && t[j].is_whitespace() {
            j += 1;
        }
        let start = j;
        while j < t.len() && ident_char(t.get(j)) {
            j += 1;
        }
        let name: String = t[start..j].iter().collect();
        if name.is_empty() {
            // `fn (…)`: a function pointer type.
            i += 2;
            continue;
        }
        // The body is the first `{` outside parentheses and brackets; a `;` first means none.
        let mut depth = 0i32;
        let mut body = None;
        while j < t.len() {
            match t[j] {
                '(' | '[' => depth += 1,
                ')' | ']' => depth -= 1,
                ';' if depth == 0 => break,
                '{' if depth == 0 => {
                    body = Some(j);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        if let Some(open) = body {
            if let Some(close) = closing_brace(&t, open) {
                let first = line_at(&t, i);
                out.push((first, name, line_at(&t, close) - first + 1));
            }
        }
        // Nested functions are measured too (and count in their enclosing one).
        i = j.max(i + 2);
    }
    out
}

/// Every function of `src` longer than `max` lines, `src/FILE:LINE fn NAME (N lines)`.
fn long_functions(src: &Path, max: usize) -> Vec<String> {
    let mut files = Vec::new();
    rs_files(src, src, &mut files);
    let mut out = Vec::new();
    for rel in &files {
        let file = rel.to_string_lossy().into_owned();
        if file.ends_with("tests.rs") {
            continue;
        }
        let text = std::fs::read_to_string(src.join(rel)).unwrap();
        let code = without_test_modules(&code_only(&text));
        for (line, name, n) in functions_of(&code) {
            if n > max {
                out.push(format!("src/{file}:{line} fn {name} ({n} lines)"));
            }
        }
    }
    out
}

#[test]
fn no_function_in_src_is_longer_than_100_lines() {
    // Unit-test modules (`#[cfg(test)] mod … { … }`) and files named `*tests.rs` are not
    // measured: a test is read as a story, top to bottom.
    let src = std::env::var_os("STEPWISE_LAYERS_SRC")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let long = long_functions(&src, MAX_FN_LINES);
    assert!(
        long.is_empty(),
        "{} function(s) in src/ longer than {MAX_FN_LINES} lines (ARCHITECTURE.md): split them \
         by moving parts into functions of their own:\n{}",
        long.len(),
        long.join("\n")
    );
}

#[test]
fn a_planted_long_function_is_named_with_its_file_and_line() {
    // `fn NAME() {`, a `}` in a string, one in a comment, `n - 4` statements, `}`: n lines.
    let body = |name: &str, n: usize| {
        let mut s = format!("pub fn {name}() {{\n    let s = \"}}\";\n    // }}\n");
        for k in 0..n - 4 {
            s.push_str(&format!("    let _x{k} = {k};\n"));
        }
        s.push_str("}\n");
        s
    };
    let fits = format!(
        "/// A doc.\n{}\nfn g(f: fn(u8) -> u8) -> u8 {{ f(1) }}\n",
        body("fits", 100)
    );
    let too_long = format!("struct S;\nimpl S {{\n{}}}\n", body("too_long", 101));
    let tested = format!(
        "pub fn f() {{}}\n#[cfg(test)]\nmod tests {{\n{}}}\n",
        body("long_test", 150)
    );
    let dir = tempfile::tempdir().unwrap();
    for (path, text) in [
        ("util/fits.rs", fits.as_str()),
        ("app/long.rs", too_long.as_str()),
        ("app/tested.rs", tested.as_str()),
        ("app/cache_tests.rs", body("in_tests_file", 150).as_str()),
    ] {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    assert_eq!(
        long_functions(dir.path(), MAX_FN_LINES),
        ["src/app/long.rs:3 fn too_long (101 lines)"]
    );
}
