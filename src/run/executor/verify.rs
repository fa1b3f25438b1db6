//! A step's `verify()`: calling it (after its `run()`, as a post-condition, and for
//! `--refresh`) and reading what it returned as drift.

use crate::decide::script;
use crate::decide::step::Step;
use crate::run::host;
use crate::util::secrets::Masker;
use rhai::{Dynamic, Engine};
use std::sync::Arc;

/// Runs `verify()` of `step` in `ctx` (which must be in verify mode): the drift it reports
/// (empty: none), or why the check failed.
pub(crate) fn call_verify(
    engine: &Engine,
    step: &Step,
    masker: &Masker,
    ctx: &Arc<host::StepContext>,
) -> Result<Vec<String>, String> {
    let result = host::with_context(ctx.clone(), || script::call_fn(engine, &step.ast, "verify"));
    let value = result.map_err(|e| masker.mask(&script::runtime_error(&step.file, &e)))?;
    drift_of(&value).map_err(|e| format!("{}: verify() {e}", step.file))
}

/// What a `verify()` returned: `()` or `true` (fine), a string (one drift), an array of
/// strings (each a drift; empty: fine), `false` (drift without a description).
fn drift_of(value: &Dynamic) -> Result<Vec<String>, String> {
    if value.is_unit() {
        return Ok(Vec::new());
    }
    if let Ok(b) = value.as_bool() {
        return Ok(if b {
            Vec::new()
        } else {
            vec!["verify() returned false".to_string()]
        });
    }
    if value.is_string() {
        let s = value.clone().into_string().unwrap_or_default();
        return Ok(if s.is_empty() { Vec::new() } else { vec![s] });
    }
    if let Some(items) = value.clone().try_cast::<rhai::Array>() {
        return items
            .iter()
            .map(|d| {
                if d.is_string() {
                    Ok(d.clone().into_string().unwrap_or_default())
                } else {
                    Err(format!(
                        "returned an array holding {} ({d}): each drift must be a string",
                        d.type_name()
                    ))
                }
            })
            .filter(|r| !matches!(r, Ok(s) if s.is_empty()))
            .collect();
    }
    Err(format!(
        "returned {} ({value}): return () or true when all is well, or a string or an array of strings describing each drift",
        value.type_name()
    ))
}
