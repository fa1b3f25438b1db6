//! What a step reads and saves: `read_config` and `env`/`env_secret` (each read recorded with
//! a digest; an undeclared one reported), `output`, another step's `outputs` through the
//! read-only `OutputsView` that records the keys used, `previous_outputs`.

use super::context::{call_site, current, def, err, json_to_dynamic, HostResult, CURRENT};
use crate::state::reads;
use crate::util::secrets::Masker;
use rhai::{Array, Dynamic, Engine, NativeCallContext};
use serde_json::{Map, Value};
use std::sync::Arc;

pub(super) fn read_config(
    ncx: &NativeCallContext,
    key: &str,
    default: Option<Dynamic>,
) -> HostResult<Dynamic> {
    let ctx = current("read_config")?;
    if !reads::covers(&ctx.declared.config, key) {
        let (fix, then) = reads::config_fix(key);
        ctx.undeclared(&reads::config_read(key), &call_site(ncx), &fix, then)?;
    }
    ctx.record_config(key);
    match ctx.config.get(key) {
        Some(Value::Null) if default.is_some() => Ok(default.unwrap_or(Dynamic::UNIT)),
        Some(v) => Ok(json_to_dynamic(v)),
        None => default.ok_or_else(|| {
            err(format!(
                "step `{}`: config key `{key}` not found in {} (add it, or call read_config(\"{key}\", default))",
                ctx.step,
                ctx.config.path.display()
            ))
        }),
    }
}

pub(super) fn output(key: &str, value: Dynamic) -> HostResult<()> {
    let ctx = current("output")?;
    ctx.refuse_in_verify("output()")?;
    let json: Value = rhai::serde::from_dynamic(&value)?;
    // The value itself, not its serialised text (where escapes would hide a secret).
    fn holds_secret(m: &Masker, v: &Value) -> bool {
        match v {
            Value::String(s) => m.is_secret_value(s),
            Value::Number(n) => m.is_secret_value(&n.to_string()),
            Value::Array(a) => a.iter().any(|x| holds_secret(m, x)),
            Value::Object(o) => o
                .iter()
                .any(|(k, x)| m.is_secret_value(k) || holds_secret(m, x)),
            _ => false,
        }
    }
    if holds_secret(&ctx.masker, &json) {
        return Err(err(format!(
            "output(\"{key}\", ...): the value contains a secret; secrets are never written to state (keep it in Key Vault and read it when needed)"
        )));
    }
    ctx.outputs
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(key.to_string(), json);
    Ok(())
}

pub(super) fn outputs(ncx: NativeCallContext, step: &str) -> HostResult<Dynamic> {
    let ctx = current("outputs")?;
    if step == ctx.step {
        let own = ctx
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        return Ok(json_to_dynamic(&Value::Object(own)));
    }
    if ctx.declared.descendants.iter().any(|d| d == step) {
        // Against the direction of `needs`: it cannot be declared, and nothing can wait on it.
        let at = call_site(&ncx);
        let me = &ctx.step;
        ctx.report_undeclared(
            &format!("outputs of {step}"),
            &at,
            format!(
                "step `{me}` reads outputs of {step} at {at}, but {step} needs {me}: a cycle; {me} is decided against {step}'s stored outputs (read them in a step that needs {step} instead)"
            ),
        )?;
    } else if !ctx.declared.ancestors.iter().any(|a| a == step) {
        ctx.undeclared(
            &format!("outputs of {step}"),
            &call_site(&ncx),
            &format!("add \"{step}\" to `needs:` (directly or through a step it needs)"),
            "",
        )?;
    }
    let map = ctx
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .outputs(step);
    Ok(Dynamic::from(OutputsView {
        step: step.to_string(),
        map: Arc::new(map),
    }))
}

/// Another step's outputs in the run a rollback returns to (an empty map when it had none);
/// only in `fn rollback(target)`.
pub(super) fn target_outputs(step: &str) -> HostResult<Dynamic> {
    let ctx = current("target_outputs")?;
    let Some(target) = &ctx.rollback else {
        return Err(format!(
            "target_outputs({step:?}) is only available in `fn rollback(target)` (stepwise rollback)"
        )
        .into());
    };
    Ok(json_to_dynamic(&Value::Object(target.state.outputs(step))))
}

/// The outputs this step recorded when it last completed (empty the first time): lets a step
/// leave alone what it deployed before and that has not changed. In `verify()` right after
/// `run()`, the outputs of that run.
pub(super) fn previous_outputs() -> HostResult<Dynamic> {
    let ctx = current("previous_outputs")?;
    if ctx.is_verifying() {
        let own = ctx
            .outputs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if !own.is_empty() {
            return Ok(json_to_dynamic(&Value::Object(own)));
        }
    }
    let map = ctx
        .state
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .steps
        .get(&ctx.step)
        .filter(|r| r.status.deployed())
        .map(|r| r.outputs.clone())
        .unwrap_or_default();
    Ok(json_to_dynamic(&Value::Object(map)))
}

/// What `outputs("x")` returns: a read-only map of step x's outputs that records which keys
/// the step uses (property access, indexing, `contains`), or the whole map when it is used
/// whole (`keys`, `values`, `len`, `to_json`, printing). Its `type_of` is `"map"`.
#[derive(Clone)]
pub struct OutputsView {
    step: String,
    map: Arc<Map<String, Value>>,
}

impl OutputsView {
    fn record(&self, key: &str) {
        if let Some(ctx) = CURRENT.with(|c| c.borrow().clone()) {
            ctx.record_output(&self.step, key, &self.map);
        }
    }

    fn get(&self, key: &str) -> Dynamic {
        self.record(key);
        self.map
            .get(key)
            .map(json_to_dynamic)
            .unwrap_or(Dynamic::UNIT)
    }

    pub(super) fn whole(&self) -> Map<String, Value> {
        self.record(reads::WHOLE);
        (*self.map).clone()
    }
}

/// What `outputs(step)` returns: a read-only map that records which keys a step reads.
pub(super) fn register_outputs_view(engine: &mut Engine) {
    engine.register_type_with_name::<OutputsView>("map");
    def(
        "index$get$",
        &["outputs: map", "key: string", "?"],
        "`outputs(step)[key]`: one output of another step (() when missing).",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| v.get(key));
    def(
        "contains",
        &["outputs: map", "key: string", "bool"],
        "Whether another step saved this output.",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| {
        v.record(key);
        v.map.contains_key(key)
    });
    def(
        "get",
        &["outputs: map", "key: string", "?"],
        "One output of another step (() when missing).",
    )
    .register_into_engine(engine, |v: &mut OutputsView, key: &str| v.get(key));
    def(
        "keys",
        &["outputs: map", "array"],
        "The names of another step's outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| -> Array {
        v.whole().keys().map(|k| Dynamic::from(k.clone())).collect()
    });
    def(
        "values",
        &["outputs: map", "array"],
        "The values of another step's outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| -> Array {
        v.whole().values().map(json_to_dynamic).collect()
    });
    def(
        "len",
        &["outputs: map", "int"],
        "How many outputs another step saved.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| v.whole().len() as i64);
    def(
        "is_empty",
        &["outputs: map", "bool"],
        "Whether another step saved no outputs.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| v.whole().is_empty());
    def(
        "to_map",
        &["outputs: map", "map"],
        "Another step's outputs as an ordinary map.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        json_to_dynamic(&Value::Object(v.whole()))
    });
    def(
        "to_string",
        &["outputs: map", "string"],
        "Another step's outputs as text.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        json_to_dynamic(&Value::Object(v.whole())).to_string()
    });
    def(
        "to_debug",
        &["outputs: map", "string"],
        "Another step's outputs as debug text.",
    )
    .register_into_engine(engine, |v: &mut OutputsView| {
        format!("{:?}", json_to_dynamic(&Value::Object(v.whole())))
    });
}

pub(super) fn env(
    ncx: &NativeCallContext,
    name: &str,
    default: Option<&str>,
    is_secret: bool,
) -> HostResult<String> {
    let func = if is_secret { "env_secret" } else { "env" };
    let ctx = current(func)?;
    if !ctx.declared.env.iter().any(|d| d == name) {
        ctx.undeclared(
            &format!("env {name}"),
            &call_site(ncx),
            &format!("add \"{name}\" to `env:`"),
            "",
        )?;
    }
    let current_value = reads::env_value(name);
    let digest = reads::env_digest(current_value.as_deref(), &ctx.secret_salt);
    ctx.reads
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .env
        .insert(name.to_string(), digest);
    let value = match (current_value, default) {
        (Some(v), _) => v,
        (None, Some(d)) => d.to_string(),
        (None, None) => {
            return Err(err(format!(
                "step `{}`: environment variable {name} is not set",
                ctx.step
            )))
        }
    };
    if is_secret {
        ctx.masker
            .add_named(&value, &format!("env_secret(\"{name}\")"));
    }
    Ok(value)
}
