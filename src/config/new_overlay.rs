//! `env new NAME`: a new environment's overlay, written from the example overlays
//! (`config.dev.example.yaml`, `config.prod.example.yaml`): the keys they set differently (or
//! that only some set), each commented out with what every example sets, and a value for the
//! new environment where the examples' values are their own names (`draftgenie-dev-rg` →
//! `draftgenie-staging-rg`). Everything is commented: the file changes nothing until edited.

use serde_norway::Value;

/// One key path of an overlay and its value (a scalar or a list).
type Leaf = (Vec<String>, Value);

/// The text of `config.NAME.yaml` for environment `name`, from `examples` (environment name,
/// parsed overlay) and the base config's file name (for the header); with the number of keys
/// to fill in.
pub fn text(name: &str, base: &str, examples: &[(String, Value)]) -> (String, usize) {
    let mut out = format!(
        "# Overlay for the `{name}` environment: merged over {base} with --env {name}\n\
         # (`stepwise --env {name} plan`). Only what differs from {base} belongs here; mappings\n\
         # merge key by key, a scalar or a list replaces the base's value. See\n\
         # docs/environments.md.\n"
    );
    if examples.is_empty() {
        out.push_str(
            "#\n# No example overlays (config.NAME.example.yaml) were found to take keys from.\n",
        );
        return (out, 0);
    }
    let names: Vec<&str> = examples.iter().map(|(n, _)| n.as_str()).collect();
    out.push_str(&format!(
        "#\n# The keys below are those the example overlays ({}) set differently: uncomment\n\
         # (remove the leading `# `) and set what {name} needs.\n\n",
        names.join(", ")
    ));
    let per_example: Vec<Vec<Leaf>> = examples.iter().map(|(_, v)| leaves(v)).collect();
    let mut printed: Vec<Vec<String>> = Vec::new();
    let mut keys = 0;
    for (path, _) in per_example.iter().flatten() {
        if printed.contains(path) {
            continue;
        }
        let values: Vec<Option<&Value>> = per_example
            .iter()
            .map(|ls| ls.iter().find(|(p, _)| p == path).map(|(_, v)| v))
            .collect();
        let differ = examples.len() == 1 || values.iter().any(|v| *v != values[0]);
        if differ {
            write_leaf(&mut out, path, &printed, name, &names, &values);
            keys += 1;
        }
        printed.push(path.clone());
    }
    (out, keys)
}

/// Every key path with a scalar or list value, in the file's order.
fn leaves(v: &Value) -> Vec<Leaf> {
    fn walk(v: &Value, at: &mut Vec<String>, out: &mut Vec<Leaf>) {
        match v {
            Value::Mapping(m) if !m.is_empty() => {
                for (k, child) in m {
                    at.push(scalar(k));
                    walk(child, at, out);
                    at.pop();
                }
            }
            _ if !at.is_empty() => out.push((at.clone(), v.clone())),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(v, &mut Vec::new(), &mut out);
    out
}

/// Writes the commented lines of `path`: the parent keys not written yet, then the key with
/// the suggested value and what each example sets.
fn write_leaf(
    out: &mut String,
    path: &[String],
    printed: &[Vec<String>],
    name: &str,
    names: &[&str],
    values: &[Option<&Value>],
) {
    let written = |prefix: &[String]| printed.iter().any(|p| p.starts_with(prefix));
    for depth in 0..path.len() - 1 {
        if !written(&path[..=depth]) {
            out.push_str(&format!("# {}{}:\n", "  ".repeat(depth), path[depth]));
        }
    }
    let seen: Vec<String> = names
        .iter()
        .zip(values)
        .map(|(n, v)| match v {
            Some(v) => format!("{n}: {}", scalar(v)),
            None => format!("{n}: not set"),
        })
        .collect();
    let key = format!("{}{}:", "  ".repeat(path.len() - 1), path[path.len() - 1]);
    let line = match suggestion(name, names, values) {
        Some(s) => format!("{key} {s}"),
        None => key,
    };
    out.push_str(&format!("# {line:<44} # {}\n", seen.join(" · ")));
}

/// The new environment's value when every example's value is a string holding its own
/// environment's name: that string with the new name in its place.
fn suggestion(name: &str, names: &[&str], values: &[Option<&Value>]) -> Option<String> {
    let mut out = None;
    for (env, v) in names.iter().zip(values) {
        let Some(Value::String(s)) = v else {
            return None;
        };
        if !s.contains(env) {
            return None;
        }
        out.get_or_insert_with(|| s.replacen(env, name, 1));
    }
    out
}

/// A value as one line of YAML: plain when that reads back the same, else JSON (flow) form.
fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./@".contains(c))
                && serde_norway::from_str::<Value>(s).ok().as_ref() == Some(v);
            if plain {
                s.clone()
            } else {
                serde_json::to_string(s).unwrap_or_default()
            }
        }
        other => serde_json::to_string(other).unwrap_or_else(|_| "?".into()),
    }
}

#[cfg(test)]
mod tests {
    fn yaml(s: &str) -> serde_norway::Value {
        serde_norway::from_str(s).unwrap()
    }

    #[test]
    fn keys_that_differ_are_commented_with_each_example_and_a_named_suggestion() {
        let dev = yaml(
            "azure:\n  resource_group: app-dev-rg\n  location: westeurope\nredis:\n  sku: Basic\n",
        );
        let prod = yaml("azure:\n  resource_group: app-prod-rg\n  location: westeurope\nredis:\n  sku: Standard\ndeployment:\n  protected: true\n");
        let (text, keys) = super::text(
            "staging",
            "config.yaml",
            &[("dev".into(), dev), ("prod".into(), prod)],
        );
        assert_eq!(keys, 3, "{text}");
        // Every line is a comment: the file changes nothing until edited.
        assert!(
            text.lines().all(|l| l.is_empty() || l.starts_with('#')),
            "{text}"
        );
        assert!(
            text.contains("# azure:\n#   resource_group: app-staging-rg"),
            "{text}"
        );
        assert!(
            text.contains("dev: app-dev-rg · prod: app-prod-rg"),
            "{text}"
        );
        assert!(!text.contains("location"), "same in every example: {text}");
        assert!(text.contains("#   sku:"), "{text}");
        assert!(text.contains("dev: Basic · prod: Standard"), "{text}");
        assert!(text.contains("dev: not set · prod: true"), "{text}");
        // Uncommented, it is YAML with the keys where they were.
        let body = &text[text.find("\n\n").unwrap() + 2..];
        let uncommented: String = body.lines().map(|l| format!("{}\n", &l[2..])).collect();
        let v: serde_norway::Value = serde_norway::from_str(&uncommented).unwrap();
        assert_eq!(v["azure"]["resource_group"], yaml("app-staging-rg"));
    }
}
