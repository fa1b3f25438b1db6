//! Step files: `steps/NN_name.rhai`, their literal declarations (read without running
//! anything), the prelude, and validation of the set (names, `needs`, cycles).

use crate::decide::script;
use crate::util::digest::sha256_hex;
use crate::util::error::{Failure, Kind, OrFail};
use anyhow::Result;
use rhai::{Engine, Module, AST};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One step, as declared in its file.
#[derive(Debug, Clone)]
pub struct Step {
    /// The name: the file name without number and extension.
    pub name: String,
    /// The number in the file name (default order).
    pub order: u32,
    /// The file, as a path for messages.
    pub file: String,
    pub description: String,
    pub needs: Vec<String>,
    pub files: Vec<String>,
    pub config: Vec<String>,
    /// Environment variables the step declares it reads.
    pub env: Vec<String>,
    /// The keys of its outputs that are public (`public_outputs: ["gateway_url"]`): shown
    /// first in the run report and in notifications (see [`StepSet::public_outputs`]).
    pub public_outputs: Vec<String>,
    /// Line of the `let step` declaration (for messages about it).
    pub decl_line: usize,
    /// SHA-256 of the script text.
    pub script_digest: String,
    pub ast: Arc<AST>,
    /// The script defines `fn verify()`: read-only checks that what the step made is still
    /// there (`--refresh`, and right after `run()`).
    pub has_verify: bool,
    /// The script defines `fn rollback(target)`: returns what the step deployed to an
    /// earlier run's outputs (`stepwise rollback`).
    pub has_rollback: bool,
    /// The script defines `fn cost()`: the monthly cost of what the step deploys.
    pub has_cost: bool,
}

/// An output a step marks public, with its value.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PublicOutput {
    pub step: String,
    pub key: String,
    pub value: String,
}

/// The declaration map, as read from the script.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Declaration {
    #[serde(default)]
    description: String,
    #[serde(default)]
    needs: Vec<String>,
    #[serde(default)]
    files: Vec<String>,
    #[serde(default)]
    config: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    public_outputs: Vec<String>,
}

/// The prelude: helpers every step can call.
pub struct Prelude {
    pub file: String,
    /// SHA-256 of the prelude text (of the empty text when there is no prelude).
    pub digest: String,
    pub module: Option<rhai::Shared<Module>>,
}

/// All steps of a project, in default order, plus the prelude.
pub struct StepSet {
    pub steps: Vec<Step>,
    pub prelude: Prelude,
}

#[cfg(test)]
impl StepSet {
    /// For unit tests: steps `(name, declaration map body, more script)` in this order (files
    /// `steps/NN_name.rhai`, each with an empty `run()`), no prelude.
    pub(crate) fn of_scripts(scripts: &[(&str, &str, &str)]) -> StepSet {
        let engine = crate::decide::script::sandbox();
        let steps = scripts
            .iter()
            .enumerate()
            .map(|(k, (name, decl, more))| {
                let text = format!("let step = #{{ {decl} }};\nfn run() {{ }}\n{more}");
                let file = format!("steps/{k:02}_{name}.rhai");
                parse_step(&engine, &file, k as u32, name.to_string(), &text).expect("step parses")
            })
            .collect();
        StepSet {
            steps,
            prelude: Prelude {
                file: "prelude.rhai".into(),
                digest: String::new(),
                module: None,
            },
        }
    }
}

impl StepSet {
    pub fn index(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
    pub fn names(&self) -> Vec<&str> {
        self.steps.iter().map(|s| s.name.as_str()).collect()
    }

    /// The outputs the steps mark public (`public_outputs: [KEY, ...]` in a step's
    /// declaration), in
    /// the steps' order then the declaration's, with their values as `outputs_of(step)` gives
    /// them (a string as it is, any other value as JSON); a key the step has not output is
    /// left out. The one answer to "which outputs are public" for the run report,
    /// notifications and the console.
    pub fn public_outputs(
        &self,
        outputs_of: impl Fn(&str) -> Option<serde_json::Map<String, serde_json::Value>>,
    ) -> Vec<PublicOutput> {
        let mut out = Vec::new();
        for s in self.steps.iter().filter(|s| !s.public_outputs.is_empty()) {
            let Some(outputs) = outputs_of(&s.name) else {
                continue;
            };
            for key in &s.public_outputs {
                let value = match outputs.get(key) {
                    None | Some(serde_json::Value::Null) => continue,
                    Some(serde_json::Value::String(v)) => v.clone(),
                    Some(v) => v.to_string(),
                };
                out.push(PublicOutput {
                    step: s.name.clone(),
                    key: key.clone(),
                    value,
                });
            }
        }
        out
    }

    /// Every config key the steps declare (`config:`).
    pub fn declared_config(&self) -> Vec<String> {
        self.steps.iter().flat_map(|s| s.config.clone()).collect()
    }

    /// Every config key the steps declare, with the step that declares it.
    pub fn declared_config_by_step(&self) -> Vec<(String, String)> {
        self.steps
            .iter()
            .flat_map(|s| s.config.iter().map(|k| (k.clone(), s.name.clone())))
            .collect()
    }

    /// Every step that step `i` needs, directly or through any chain of `needs`, nearest
    /// first (breadth-first).
    pub fn ancestors(&self, i: usize) -> Vec<usize> {
        self.walk_up(i).into_iter().map(|(j, _)| j).collect()
    }

    /// The steps between `i` and its ancestor `j` on a shortest chain of `needs`, from `i`'s
    /// side (empty when `i` needs `j` directly, or `j` is not an ancestor).
    pub fn path_between(&self, i: usize, j: usize) -> Vec<usize> {
        let parents: std::collections::HashMap<usize, usize> =
            self.walk_up(i).into_iter().collect();
        let mut path = Vec::new();
        let mut k = match parents.get(&j) {
            Some(&k) => k,
            None => return path,
        };
        while k != i {
            path.push(k);
            k = parents[&k];
        }
        path.reverse();
        path
    }

    /// Breadth-first walk up the `needs` of step `i`: (ancestor, the step that needs it).
    fn walk_up(&self, i: usize) -> Vec<(usize, usize)> {
        let mut seen = vec![false; self.steps.len()];
        let mut out = Vec::new();
        let mut queue = std::collections::VecDeque::from([i]);
        while let Some(k) = queue.pop_front() {
            for need in &self.steps[k].needs {
                if let Some(j) = self.index(need) {
                    if j != i && !seen[j] {
                        seen[j] = true;
                        out.push((j, k));
                        queue.push_back(j);
                    }
                }
            }
        }
        out
    }
}

/// Loads the prelude (if the file exists) and registers it as a global module of `engine`.
pub fn load_prelude(engine: &mut Engine, path: &Path) -> Result<Prelude> {
    let file = path.display().to_string();
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Prelude {
                file,
                digest: sha256_hex(b""),
                module: None,
            })
        }
        Err(e) => {
            return Err(Failure::caused_by(Kind::Script, format!("cannot read {file}"), e).into())
        }
    };
    let mut ast = engine
        .compile(&text)
        .map_err(|e| Kind::Script.error(script::parse_error(&file, &e)))?;
    ast.set_source(file.clone());
    let module = Module::eval_ast_as_new(rhai::Scope::new(), &ast, engine)
        .map_err(|e| Kind::Script.error(script::runtime_error(&file, &e)))?;
    let module: rhai::Shared<Module> = module.into();
    engine.register_global_module(module.clone());
    Ok(Prelude {
        file,
        digest: sha256_hex(text.as_bytes()),
        module: Some(module),
    })
}

/// Parses a step file name `NN_name.rhai` into (number, name).
pub fn parse_file_name(file_name: &str) -> Option<(u32, String)> {
    let stem = file_name.strip_suffix(".rhai")?;
    let (num, name) = stem.split_once('_')?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    {
        return None;
    }
    Some((num.parse().ok()?, name.to_string()))
}

/// Loads every step in `dir`, in default order, and validates the set.
pub fn load_steps(engine: &Engine, dir: &Path, prelude: Prelude) -> Result<StepSet> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        Kind::Script.error(format!(
            "cannot read the steps directory {}: {e} (pass --steps DIR)",
            dir.display()
        ))
    })?;
    let mut paths: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.or_fail(Kind::Script, || format!("cannot read {}", dir.display()))?;
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) == Some("rhai") {
            paths.push(path);
        }
    }
    paths.sort();
    let mut steps = Vec::new();
    for path in paths {
        steps.push(load_step(engine, &path)?);
    }
    steps.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
    let set = StepSet { steps, prelude };
    validate(&set)?;
    Ok(set)
}

/// Reads one step's declaration without running anything.
pub fn load_step(engine: &Engine, path: &Path) -> Result<Step> {
    let file = path.display().to_string();
    let file_name = path.file_name().and_then(|f| f.to_str()).unwrap_or("");
    let (order, name) = parse_file_name(file_name).ok_or_else(|| {
        Kind::Script.error(format!(
            "{file}: a step file must be named NN_name.rhai (digits, '_', then lower-case letters, digits, '_' or '-')"
        ))
    })?;
    let text =
        std::fs::read_to_string(path).or_fail(Kind::Script, || format!("cannot read {file}"))?;
    parse_step(engine, &file, order, name, &text)
}

/// Reads a step's declaration from its text without running anything (`file` names it in
/// messages).
pub fn parse_step(
    engine: &Engine,
    file: &str,
    order: u32,
    name: String,
    text: &str,
) -> Result<Step> {
    let file = file.to_string();
    let mut ast = engine
        .compile(text)
        .map_err(|e| Kind::Script.error(script::parse_error(&file, &e)))?;
    ast.set_source(file.clone());

    let decl_line = declaration_line(&ast, &file)?;
    let value = ast
        .iter_literal_variables(true, true)
        .find(|(n, _, _)| *n == "step")
        .map(|(_, _, v)| v)
        .ok_or_else(|| {
            Kind::Script.error(format!(
                "{file}:{decl_line}: the `step` declaration must be a literal map of strings and arrays of strings (stepwise reads it without running the script)"
            ))
        })?;
    if !value.is_map() {
        return Err(Kind::Script.error(format!(
            "{file}:{decl_line}: the `step` declaration must be a map `#{{ ... }}`, found {}",
            value.type_name()
        )));
    }
    let decl: Declaration = rhai::serde::from_dynamic(&value).map_err(|e| {
        let msg = e.to_string();
        let msg = msg.split(" (line").next().unwrap_or(&msg).to_string();
        Kind::Script.error(format!(
            "{file}:{decl_line}: bad `step` declaration: {msg} (keys: description, needs, files, config, env, public_outputs; values: strings and arrays of strings)"
        ))
    })?;
    if !ast
        .iter_functions()
        .any(|f| f.name == "run" && f.params.is_empty())
    {
        return Err(Kind::Script.error(format!(
            "{file}: missing `fn run() {{ ... }}`: the body of the step"
        )));
    }
    check_declared_names(&decl, &file, decl_line)?;
    let has_verify = ast
        .iter_functions()
        .any(|f| f.name == "verify" && f.params.is_empty());
    let has_rollback = has_rollback(&ast, &file)?;
    let has_cost = ast
        .iter_functions()
        .any(|f| f.name == "cost" && f.params.is_empty());
    Ok(Step {
        name,
        order,
        file,
        description: decl.description,
        needs: decl.needs,
        files: decl.files,
        config: decl.config,
        env: decl.env,
        public_outputs: decl.public_outputs,
        decl_line,
        script_digest: sha256_hex(text.as_bytes()),
        has_verify,
        has_rollback,
        has_cost,
        ast: Arc::new(ast),
    })
}

/// Whether the script defines `fn rollback(target)`; one with other parameters is an error
/// (it would never be called).
fn has_rollback(ast: &AST, file: &str) -> Result<bool> {
    let mut found = false;
    for f in ast.iter_functions().filter(|f| f.name == "rollback") {
        if f.params.len() != 1 {
            return Err(Kind::Script.error(format!(
                "{file}: `fn rollback` takes one parameter, the target run's outputs of the step: `fn rollback(target) {{ ... }}`"
            )));
        }
        found = true;
    }
    Ok(found)
}

/// The line of the `let step = #{...}` declaration; only it and `fn` definitions may stand at
/// the top level (nothing else would ever run, so it is an error rather than a silent no-op).
fn declaration_line(ast: &AST, file: &str) -> Result<usize> {
    // Only `let step = #{...}` (and function definitions) may stand at the top level: nothing
    // else would ever run, so it is an error rather than a silent no-op.
    let mut decl_line = None;
    for stmt in ast.statements() {
        let pos = stmt.position();
        let line = pos.line().unwrap_or(0);
        match stmt {
            rhai::Stmt::Var(x, _, _) if x.0.name == "step" && decl_line.is_none() => {
                decl_line = Some(line)
            }
            rhai::Stmt::Noop(_) => {}
            _ => {
                return Err(Kind::Script.error(format!(
                    "{file}:{line}:{}: only the `let step = #{{...}};` declaration and `fn` definitions may stand at the top level of a step; move this statement into `fn run()`",
                    pos.position().unwrap_or(1)
                )))
            }
        }
    }
    decl_line.ok_or_else(|| {
        Kind::Script.error(format!(
            "{file}: no declaration: a step starts with `let step = #{{ description: \"...\", needs: [...], files: [...], config: [...] }};`"
        ))
    })
}

/// Declared config keys and environment variable names that cannot be right.
fn check_declared_names(decl: &Declaration, file: &str, decl_line: usize) -> Result<()> {
    for key in &decl.config {
        if key.is_empty() {
            return Err(Kind::Script.error(format!(
                "{file}:{decl_line}: config key \"\" (the whole config) cannot be declared: declare the keys the step uses"
            )));
        }
        if key.split('.').any(|s| s.is_empty()) {
            return Err(Kind::Script.error(format!(
                "{file}:{decl_line}: bad config key {key:?} in the declaration"
            )));
        }
    }
    for key in &decl.public_outputs {
        if key.is_empty() {
            return Err(Kind::Script.error(format!(
                "{file}:{decl_line}: `public_outputs` names output keys: \"\" is not one"
            )));
        }
    }
    for name in &decl.env {
        if name.is_empty() || name.contains(['=', '\0']) {
            return Err(Kind::Script.error(format!(
                "{file}:{decl_line}: bad environment variable name {name:?} in the declaration"
            )));
        }
    }
    Ok(())
}

/// Unique names, known `needs`, no cycles.
fn validate(set: &StepSet) -> Result<()> {
    let mut seen: HashMap<&str, &Step> = HashMap::new();
    for s in &set.steps {
        if let Some(other) = seen.insert(&s.name, s) {
            return Err(Kind::Script.error(format!(
                "{}:{}: duplicate step name `{}` (also {})",
                s.file, s.decl_line, s.name, other.file
            )));
        }
    }
    for s in &set.steps {
        for n in &s.needs {
            if !seen.contains_key(n.as_str()) {
                let names = set.names();
                return Err(Kind::Script.error(format!(
                    "{}:{}: step `{}` needs unknown step `{n}`{} (steps: {})",
                    s.file,
                    s.decl_line,
                    s.name,
                    crate::util::suggest::did_you_mean(n, names.iter().copied()),
                    names.join(", ")
                )));
            }
            if n == &s.name {
                return Err(Kind::Script.error(format!(
                    "{}:{}: step `{}` needs itself",
                    s.file, s.decl_line, s.name
                )));
            }
        }
    }
    if let Some(cycle) = find_cycle(set) {
        let first = &set.steps[set.index(&cycle[0]).unwrap_or(0)];
        return Err(Kind::Script.error(format!(
            "{}:{}: dependency cycle: {}",
            first.file,
            first.decl_line,
            cycle.join(" -> ")
        )));
    }
    Ok(())
}

/// A cycle through `needs`, as a list of names whose last equals its first.
fn find_cycle(set: &StepSet) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let idx: BTreeMap<&str, usize> = set
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.name.as_str(), i))
        .collect();
    let mut marks = vec![Mark::New; set.steps.len()];
    fn visit(
        i: usize,
        set: &StepSet,
        idx: &BTreeMap<&str, usize>,
        marks: &mut Vec<Mark>,
        path: &mut Vec<usize>,
    ) -> Option<Vec<String>> {
        marks[i] = Mark::Active;
        path.push(i);
        for n in &set.steps[i].needs {
            let j = idx[n.as_str()];
            match marks[j] {
                Mark::Active => {
                    let start = path.iter().position(|&p| p == j).unwrap_or(0);
                    let mut names: Vec<String> = path[start..]
                        .iter()
                        .map(|&p| set.steps[p].name.clone())
                        .collect();
                    names.push(set.steps[j].name.clone());
                    return Some(names);
                }
                Mark::New => {
                    if let Some(c) = visit(j, set, idx, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    for i in 0..set.steps.len() {
        if marks[i] == Mark::New {
            if let Some(c) = visit(i, set, &idx, &mut marks, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names() {
        assert_eq!(
            parse_file_name("06_create_databases.rhai"),
            Some((6, "create_databases".into()))
        );
        assert_eq!(parse_file_name("create.rhai"), None);
        assert_eq!(parse_file_name("1_.rhai"), None);
        assert_eq!(parse_file_name("x1_a.rhai"), None);
    }

    #[test]
    fn public_outputs_are_the_declared_keys_a_step_output() {
        let set = StepSet::of_scripts(&[
            ("a", r#"public_outputs: ["url", "missing", "port"]"#, ""),
            ("b", "", ""),
            ("c", r#"public_outputs: ["name"]"#, ""),
        ]);
        let outputs = |step: &str| -> Option<serde_json::Map<String, serde_json::Value>> {
            let v = match step {
                "a" => serde_json::json!({"url": "https://x", "port": 443, "other": "no"}),
                "b" => serde_json::json!({"url": "hidden"}),
                _ => return None,
            };
            v.as_object().cloned()
        };
        let got: Vec<(String, String)> = set
            .public_outputs(outputs)
            .into_iter()
            .map(|o| (format!("{}.{}", o.step, o.key), o.value))
            .collect();
        assert_eq!(
            got,
            [
                ("a.url".to_string(), "https://x".to_string()),
                ("a.port".to_string(), "443".to_string())
            ]
        );
    }
}
