//! Config overlays: an environment's `config.NAME.yaml` deep-merged over `config.yaml`. Maps
//! merge key by key; scalars and lists replace. A mapping on one side and anything else on
//! the other is a conflict, reported with the key and its place in both files.
//!
//! The overlay is read with a `DeserializeSeed` that carries the base value along, so that
//! the YAML parser itself attaches the line and column of a conflict (it locates any error a
//! deserializer raises); the same trick finds the key's place in the base file.

use super::yaml::{apply_merge_keys, type_name};
use crate::util::error::Kind;
use anyhow::Result;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;
use std::path::Path;

/// `overlay_text` (the file `overlay_path`) merged over `base` (read from `base_path`, whose
/// text is `base_text`).
pub fn merge(
    base: &Value,
    base_path: &Path,
    base_text: &str,
    overlay_path: &Path,
    overlay_text: &str,
) -> Result<Value> {
    let located = |e: serde_norway::Error| super::yaml::located(overlay_path, e);
    if overlay_text.trim().is_empty() {
        return Ok(base.clone());
    }
    // Syntax and duplicate keys first, with YAML's own value type.
    let plain: serde_norway::Value = serde_norway::from_str(overlay_text).map_err(located)?;
    if plain.is_null() {
        // Only comments.
        return Ok(base.clone());
    }
    if !plain.is_mapping() {
        return Err(Kind::Config.error(format!(
            "{}: an overlay must be a mapping of keys to values, like the config it overlays",
            overlay_path.display()
        )));
    }
    let seed = MergeSeed {
        base: Some(base),
        key: String::new(),
    };
    // YAML merge keys (`<<: *base`) are resolved in an overlay too, before it is merged (its
    // conflicts then carry no line: the merged document has none).
    let mut resolved = plain.clone();
    if apply_merge_keys(&mut resolved, "")
        .map_err(|e| Kind::Config.error(format!("{}: {e}", overlay_path.display())))?
    {
        return seed.deserialize(resolved).map_err(|e| {
            Kind::Config.error(format!(
                "{}: {}",
                overlay_path.display(),
                e.to_string().replace('\t', " ")
            ))
        });
    }
    match seed.deserialize(serde_norway::Deserializer::from_str(overlay_text)) {
        Ok(v) => Ok(v),
        Err(e) => {
            let text = e.to_string();
            // The parser may put the key path in front of the message.
            let Some(conflict) = text.find(CONFLICT).map(|i| &text[i + CONFLICT.len()..]) else {
                return Err(located(e));
            };
            // "KEY\tBASE_KIND\tOVERLAY_KIND" followed by the parser's " at line …".
            let mut parts = conflict.splitn(3, '\t');
            let key = parts.next().unwrap_or("").to_string();
            let base_kind = parts.next().unwrap_or("").to_string();
            let overlay_kind = parts
                .next()
                .unwrap_or("")
                .split(" at ")
                .next()
                .unwrap_or("")
                .to_string();
            let at = |l: Option<serde_norway::Location>| {
                l.map(|l| format!(":{}:{}", l.line(), l.column()))
                    .unwrap_or_default()
            };
            Err(Kind::Config.error(format!(
                "{}{}: config key `{key}` is {overlay_kind} here but {base_kind} in {}{}: an overlay merges mappings key by key and replaces scalars and lists, but cannot put one kind in place of the other",
                overlay_path.display(),
                at(e.location()),
                base_path.display(),
                at(find(base_text, &key)),
            )))
        }
    }
}

/// The start of the message a conflict travels in through the parser.
const CONFLICT: &str = "\u{1}overlay-conflict\t";

/// Deserializes one overlay value merged over `base` (the value at the same key in the base,
/// if any). `key` is the dotted path, for messages.
struct MergeSeed<'a> {
    base: Option<&'a Value>,
    key: String,
}

impl<'de> DeserializeSeed<'de> for MergeSeed<'_> {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(MergeVisitor(self))
    }
}

struct MergeVisitor<'a>(MergeSeed<'a>);

impl MergeVisitor<'_> {
    /// A non-mapping overlay value: it replaces, unless the base holds a mapping.
    fn scalar<E: de::Error>(self, v: Value) -> Result<Value, E> {
        match self.0.base {
            Some(b @ Value::Object(_)) => Err(conflict(&self.0.key, b, &v)),
            _ => Ok(v),
        }
    }
}

fn conflict<E: de::Error>(key: &str, base: &Value, overlay: &Value) -> E {
    E::custom(format!(
        "{CONFLICT}{key}\t{}\t{}",
        type_name(base),
        type_name(overlay)
    ))
}

impl<'de> Visitor<'de> for MergeVisitor<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.scalar(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.scalar(Value::from(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.scalar(Value::from(v))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.scalar(Value::from(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.scalar(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.scalar(Value::String(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null)
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.scalar(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            items.push(v);
        }
        self.scalar(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let MergeSeed { base, key } = self.0;
        let mut out: Map<String, Value> = match base {
            Some(Value::Object(m)) => m.clone(),
            None | Some(Value::Null) => Map::new(),
            Some(other) => return Err(conflict(&key, other, &Value::Object(Default::default()))),
        };
        while let Some(k) = map.next_key::<String>()? {
            let sub = if key.is_empty() {
                k.clone()
            } else {
                format!("{key}.{k}")
            };
            let merged = map.next_value_seed(MergeSeed {
                base: base.and_then(|b| b.get(&k)),
                key: sub,
            })?;
            out.insert(k, merged);
        }
        Ok(Value::Object(out))
    }
}

/// Where the value of dotted `key` stands in YAML `text` (found by failing there).
pub(crate) fn find(text: &str, key: &str) -> Option<serde_norway::Location> {
    let seed = FindSeed {
        target: key,
        key: String::new(),
    };
    match seed.deserialize(serde_norway::Deserializer::from_str(text)) {
        Err(e) if e.to_string().contains(FOUND) => e.location(),
        _ => None,
    }
}

const FOUND: &str = "\u{1}found";

struct FindSeed<'a> {
    target: &'a str,
    key: String,
}

impl<'de> DeserializeSeed<'de> for FindSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.key == self.target {
            // Fail inside the value, so that the parser locates it.
            return d.deserialize_any(FailVisitor);
        }
        d.deserialize_any(FindVisitor(self))
    }
}

struct FailVisitor;

impl<'de> Visitor<'de> for FailVisitor {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(FOUND))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(FOUND))
    }
}

struct FindVisitor<'a>(FindSeed<'a>);

impl<'de> Visitor<'de> for FindVisitor<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<de::IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let FindSeed { target, key } = self.0;
        while let Some(k) = map.next_key::<String>()? {
            let sub = if key.is_empty() {
                k
            } else {
                format!("{key}.{k}")
            };
            let descend = sub == target || target.starts_with(&format!("{sub}."));
            if descend {
                map.next_value_seed(FindSeed { target, key: sub })?;
            } else {
                map.next_value::<de::IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(base: &str, overlay: &str) -> Result<Value> {
        let b: Value = serde_norway::from_str(base).unwrap();
        merge(
            &b,
            Path::new("config.yaml"),
            base,
            Path::new("config.prod.yaml"),
            overlay,
        )
    }

    #[test]
    fn maps_merge_scalars_and_lists_replace() {
        let v = merged(
            "a:\n  b: 1\n  c: [1, 2]\n  d: {e: x}\nf: keep\n",
            "a:\n  b: 2\n  c: [3]\n  d: {g: y}\nnew: 1\n",
        )
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": {"b": 2, "c": [3], "d": {"e": "x", "g": "y"}}, "f": "keep", "new": 1})
        );
    }

    #[test]
    fn merge_keys_in_an_overlay_are_resolved() {
        let v = merged(
            "db: {sku: small, name: x}\n",
            "base: &base {sku: big}\ndb: {<<: *base}\n",
        )
        .unwrap();
        assert_eq!(v["db"], serde_json::json!({"sku": "big", "name": "x"}));
    }

    #[test]
    fn empty_and_comment_only_overlays_change_nothing() {
        assert_eq!(merged("a: 1\n", "").unwrap(), serde_json::json!({"a": 1}));
        assert_eq!(
            merged("a: 1\n", "# nothing yet\n").unwrap(),
            serde_json::json!({"a": 1})
        );
    }

    #[test]
    fn conflict_names_both_files_key_and_places() {
        let e = merged(
            "x: 1\ndatabase:\n  sku: B1\n  tier: Burstable\n",
            "database:\n  sku:\n    name: GP\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("config.prod.yaml:3:"), "{e}");
        assert!(e.contains("`database.sku`"), "{e}");
        assert!(
            e.contains("a mapping here but a string in config.yaml:3:"),
            "{e}"
        );

        let e = merged("database:\n  sku: B1\n", "database: small\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config.prod.yaml:1:"), "{e}");
        assert!(
            e.contains("`database` is a string here but a mapping in config.yaml:2:"),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_and_duplicates_are_located_in_the_overlay() {
        let e = merged("a: 1\n", "a: [1\n").unwrap_err().to_string();
        assert!(e.starts_with("config.prod.yaml:"), "{e}");
        let e = merged("a: 1\n", "a: 1\na: 2\n").unwrap_err().to_string();
        assert!(e.starts_with("config.prod.yaml:"), "{e}");
        assert!(e.contains("duplicate"), "{e}");
    }
}
