//! YAML helpers: merge keys (`<<:`) resolved in place, and the type names messages use.

use serde_json::Value;

/// Resolves YAML merge keys in place, recursively: `<<: *base` (a mapping) and `<<: [*a, *b]`
/// (a list of mappings; earlier ones win). Keys written in the mapping itself win over merged
/// ones; a merged mapping's own merge keys are resolved too. Returns whether there was any.
pub(crate) fn apply_merge_keys(
    v: &mut serde_norway::Value,
    at: &str,
) -> std::result::Result<bool, String> {
    use serde_norway::Value as Y;
    let mut any = false;
    match v {
        Y::Mapping(map) => {
            while let Some(merge) = map.remove("<<") {
                any = true;
                let sources = match merge {
                    Y::Mapping(m) => vec![m],
                    Y::Sequence(items) => items
                        .into_iter()
                        .map(|i| match i {
                            Y::Mapping(m) => Ok(m),
                            _ => Err(format!(
                                "the merge key `<<` at {} lists something that is not a mapping (each element must be an alias of a mapping, e.g. `<<: [*a, *b]`)",
                                if at.is_empty() { "the top level" } else { at }
                            )),
                        })
                        .collect::<std::result::Result<_, _>>()?,
                    _ => {
                        return Err(format!(
                            "the merge key `<<` at {} must be a mapping or a list of mappings (e.g. `<<: *base`)",
                            if at.is_empty() { "the top level" } else { at }
                        ))
                    }
                };
                for source in sources {
                    for (k, val) in source {
                        if !map.contains_key(&k) {
                            map.insert(k, val);
                        }
                    }
                }
            }
            for (k, child) in map.iter_mut() {
                let name = match k {
                    Y::String(s) => s.clone(),
                    other => serde_norway::to_string(other)
                        .unwrap_or_default()
                        .trim()
                        .to_string(),
                };
                let sub = if at.is_empty() {
                    name
                } else {
                    format!("{at}.{name}")
                };
                any |= apply_merge_keys(child, &sub)?;
            }
        }
        Y::Sequence(items) => {
            for (i, child) in items.iter_mut().enumerate() {
                any |= apply_merge_keys(child, &format!("{at}.{i}"))?;
            }
        }
        Y::Tagged(t) => any |= apply_merge_keys(&mut t.value, at)?,
        _ => {}
    }
    Ok(any)
}

/// A short name of a JSON value's type, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// A YAML error of `path` as a config error located `path:line:col`.
pub(crate) fn located(path: &std::path::Path, e: serde_norway::Error) -> anyhow::Error {
    let at = e
        .location()
        .map(|l| format!(":{}:{}", l.line(), l.column()))
        .unwrap_or_default();
    crate::util::error::Kind::Config.error(format!("{}{at}: {e}", path.display()))
}
