//! stepwise's own config sections (`deployment`, `advanced`, `state`, `docker`): which keys
//! are known, and the keys a file has there that stepwise does not know (a typo such as
//! `auto_aprove` would otherwise pass silently). A key is known when stepwise reads it (the
//! settings types, through their JSON Schema) or when a step declares it in `config:` (a step
//! may keep keys of its own there, e.g. `docker.image_tag`). `notify` entries refuse unknown
//! keys through their type.

use crate::util::error::Kind;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The sections whose keys stepwise checks.
pub const SECTIONS: &[&str] = &["deployment", "advanced", "state", "docker", "cost"];

/// A key under one of stepwise's sections that stepwise does not read, where it stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKey {
    pub file: PathBuf,
    /// `file:line:col` of its value (when the parser could place it).
    pub at: Option<(usize, usize)>,
    pub section: String,
    pub key: String,
}

impl ForeignKey {
    /// The dotted key.
    pub fn dotted(&self) -> String {
        format!("{}.{}", self.section, self.key)
    }
}

/// The keys stepwise reads in each of its sections, from the settings' JSON Schema.
pub fn known() -> &'static BTreeMap<String, Vec<String>> {
    static KNOWN: OnceLock<BTreeMap<String, Vec<String>>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let schema = super::settings::json_schema();
        SECTIONS
            .iter()
            .map(|s| {
                let keys = section_schema(&schema, s)
                    .and_then(|d| d.get("properties"))
                    .and_then(Value::as_object)
                    .map(|p| p.keys().cloned().collect())
                    .unwrap_or_default();
                (s.to_string(), keys)
            })
            .collect()
    })
}

/// The schema of a section (its definition, `$ref` followed).
pub fn section_schema<'a>(schema: &'a Value, section: &str) -> Option<&'a Value> {
    let prop = schema.get("properties")?.get(section)?;
    let reference = prop.get("$ref").and_then(Value::as_str).or_else(|| {
        prop.get("allOf")?
            .as_array()?
            .iter()
            .find_map(|v| v.get("$ref")?.as_str())
    });
    match reference {
        Some(r) => {
            let name = r.rsplit('/').next()?;
            schema
                .get("definitions")
                .or_else(|| schema.get("$defs"))?
                .get(name)
        }
        None => Some(prop),
    }
}

/// The keys of `root` under stepwise's sections that stepwise does not read, located in
/// `text` (the file's YAML).
pub fn foreign(path: &Path, text: &str, root: &Value) -> Vec<ForeignKey> {
    let known = known();
    let mut out = Vec::new();
    for section in SECTIONS {
        let Some(map) = root.get(*section).and_then(Value::as_object) else {
            continue;
        };
        for key in map.keys() {
            if known[*section].iter().any(|k| k == key) {
                continue;
            }
            let at = super::overlay::find(text, &format!("{section}.{key}"))
                .map(|l| (l.line(), l.column()));
            out.push(ForeignKey {
                file: path.to_path_buf(),
                at,
                section: section.to_string(),
                key: key.clone(),
            });
        }
    }
    out
}

/// Does a step's `config:` declaration cover `dotted` (the key itself, a section or key
/// above it, or a key below it)?
pub fn declared(dotted: &str, declarations: &[String]) -> bool {
    declarations.iter().any(|d| {
        d == dotted
            || (dotted.starts_with(d.as_str()) && dotted[d.len()..].starts_with('.'))
            || (d.starts_with(dotted) && d[dotted.len()..].starts_with('.'))
    })
}

/// The foreign keys no step declares, each a located line with a "did you mean" (exit 2).
pub fn check(foreign: &[ForeignKey], declarations: &[String]) -> anyhow::Result<()> {
    let lines: Vec<String> = foreign
        .iter()
        .filter(|f| !declared(&f.dotted(), declarations))
        .map(describe)
        .collect();
    if lines.is_empty() {
        return Ok(());
    }
    Err(Kind::Config.error(format!(
        "{}\n(a key of your steps' own belongs in a section of yours, or in a step's `config:` declaration)",
        lines.join("\n")
    )))
}

fn describe(f: &ForeignKey) -> String {
    let known = &known()[&f.section];
    let at = f.at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default();
    format!(
        "{}{at}: unknown key `{}` in stepwise's `{}` settings{} (known: {})",
        f.file.display(),
        f.dotted(),
        f.section,
        crate::util::suggest::did_you_mean(&f.key, known.iter().map(String::as_str)),
        known.join(", "),
    )
}

/// The JSON Schema of the settings for a project whose steps declare `declarations`
/// (`(dotted key, step)`): stepwise's sections refuse other keys, as stepwise does.
pub fn schema_for(mut schema: Value, declarations: &[(String, String)]) -> Value {
    for section in SECTIONS {
        let whole: Vec<&str> = declarations
            .iter()
            .filter(|(k, _)| k == section)
            .map(|(_, s)| s.as_str())
            .collect();
        let extra: Vec<(String, &str)> = declarations
            .iter()
            .filter_map(|(k, s)| {
                let rest = k.strip_prefix(section)?.strip_prefix('.')?;
                Some((rest.split('.').next()?.to_string(), s.as_str()))
            })
            .collect();
        let Some(def) = section_schema_mut(&mut schema, section) else {
            continue;
        };
        if let Some(obj) = def.as_object_mut() {
            if whole.is_empty() {
                obj.insert("additionalProperties".into(), Value::Bool(false));
            } else {
                obj.insert(
                    "additionalProperties".into(),
                    serde_json::json!({ "description": format!("keys of step {}", whole.join(", ")) }),
                );
            }
            let props = obj
                .entry("properties")
                .or_insert_with(|| Value::Object(Default::default()));
            if let Some(props) = props.as_object_mut() {
                for (key, step) in extra {
                    props.entry(key).or_insert_with(
                        || serde_json::json!({ "description": format!("read by step {step}") }),
                    );
                }
            }
        }
    }
    schema
}

fn section_schema_mut<'a>(schema: &'a mut Value, section: &str) -> Option<&'a mut Value> {
    let reference = {
        let prop = schema.get("properties")?.get(section)?;
        prop.get("$ref")
            .and_then(Value::as_str)
            .or_else(|| {
                prop.get("allOf")?
                    .as_array()?
                    .iter()
                    .find_map(|v| v.get("$ref")?.as_str())
            })
            .map(|r| r.rsplit('/').next().unwrap_or("").to_string())
    };
    match reference {
        Some(name) => {
            let defs = if schema.get("definitions").is_some() {
                "definitions"
            } else {
                "$defs"
            };
            schema.get_mut(defs)?.get_mut(&name)
        }
        None => schema.get_mut("properties")?.get_mut(section),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_keys_come_from_the_settings() {
        let k = known();
        assert!(k["deployment"].contains(&"auto_approve".to_string()));
        assert!(k["advanced"].contains(&"retry_attempts".to_string()));
        assert!(k["state"].contains(&"path".to_string()));
        assert!(k["docker"].contains(&"parallel_builds".to_string()));
    }

    #[test]
    fn declarations_cover_keys_above_and_below() {
        let d = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        for (key, decl, want) in [
            ("docker.image_tag", d(&["docker"]), true),
            ("docker.dockerfiles", d(&["docker.dockerfiles.api"]), true),
            ("deployment.skip_build", d(&["deployment.skip_build"]), true),
            (
                "deployment.skip_buildx",
                d(&["deployment.skip_build"]),
                false,
            ),
            ("deployment.auto_aprove", d(&["azure", "deploy"]), false),
        ] {
            assert_eq!(declared(key, &decl), want, "{key} by {decl:?}");
        }
    }

    #[test]
    fn a_typo_is_located_and_a_near_name_suggested() {
        let text = "azure:\n  x: 1\ndeployment:\n  auto_aprove: true\n";
        let root: Value = serde_norway::from_str(text).unwrap();
        let f = foreign(Path::new("config.yaml"), text, &root);
        assert_eq!(f.len(), 1);
        let e = check(&f, &[]).unwrap_err().to_string();
        assert!(
            e.starts_with("config.yaml:4:") && e.contains("did you mean `auto_approve`?"),
            "{e}"
        );
    }
}
