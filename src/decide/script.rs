//! The sandboxed Rhai engine and Rhai error formatting (file:line:col).

use rhai::{CallFnOptions, Dynamic, Engine, EvalAltResult, ParseError, Position, Scope, AST};

/// Limits of the sandbox. A runaway loop hits `MAX_OPERATIONS` and ends the step.
pub const MAX_OPERATIONS: u64 = 20_000_000;
pub const MAX_CALL_LEVELS: usize = 64;
pub const MAX_EXPR_DEPTH: usize = 64;
pub const MAX_STRING_SIZE: usize = 1 << 20;
pub const MAX_ARRAY_SIZE: usize = 100_000;
pub const MAX_MAP_SIZE: usize = 10_000;

/// The sizes the engine's limits apply to, counted over a value and everything nested in it,
/// the way rhai counts them when a host function returns (`calc_data_sizes`): (array items,
/// map entries, string bytes). A value is refused when any of them is over its limit, so a
/// host function that returns a large map checks it with [`fits_limits`] first.
pub fn data_sizes(value: &Dynamic) -> (usize, usize, usize) {
    fn add(t: &mut (usize, usize, usize), (a, m, s): (usize, usize, usize)) {
        t.0 += a;
        t.1 += m;
        t.2 += s;
    }
    // What a value inside an array or a map adds besides its own entry.
    fn inner(v: &Dynamic, t: &mut (usize, usize, usize)) {
        if let Some(b) = v.read_lock::<rhai::Blob>() {
            t.0 += 1 + b.len();
        } else if v.is_array() || v.is_map() {
            add(t, data_sizes(v));
        } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            t.2 += s.len();
        }
    }
    let mut t = (0, 0, 0);
    if let Some(a) = value.read_lock::<rhai::Array>() {
        for v in a.iter() {
            t.0 += 1;
            inner(v, &mut t);
        }
    } else if let Some(m) = value.read_lock::<rhai::Map>() {
        for v in m.values() {
            t.1 += 1;
            inner(v, &mut t);
        }
    } else if let Some(b) = value.read_lock::<rhai::Blob>() {
        t.0 = b.len();
    } else if let Some(s) = value.read_lock::<rhai::ImmutableString>() {
        t.2 = s.len();
    }
    t
}

/// Would a host function's value pass the engine's size limits?
pub fn fits_limits(value: &Dynamic) -> bool {
    let (a, m, s) = data_sizes(value);
    a <= MAX_ARRAY_SIZE && m <= MAX_MAP_SIZE && s <= MAX_STRING_SIZE
}

/// The limits as a message says them.
pub fn limits_text() -> String {
    format!(
        "strings {} KiB in all, arrays {MAX_ARRAY_SIZE} items, maps {MAX_MAP_SIZE} entries, nested values included",
        MAX_STRING_SIZE / 1024
    )
}

/// The sandbox: an engine with no `eval`, no module loading from disk, no file or process
/// access (a script reaches the world only through the host functions `host::engine`
/// registers), resource limits, and a stop check (Ctrl+C, a lost lock) while it computes.
pub fn sandbox() -> Engine {
    let mut engine = Engine::new();
    engine
        .set_max_operations(MAX_OPERATIONS)
        .set_max_call_levels(MAX_CALL_LEVELS)
        .set_max_expr_depths(MAX_EXPR_DEPTH, MAX_EXPR_DEPTH)
        .set_max_string_size(MAX_STRING_SIZE)
        .set_max_array_size(MAX_ARRAY_SIZE)
        .set_max_map_size(MAX_MAP_SIZE)
        .set_max_modules(0)
        .set_module_resolver(rhai::module_resolvers::DummyModuleResolver::new())
        .disable_symbol("eval");
    // Ctrl+C (or a lost lock) ends a script that is computing (not only one that waits on a
    // command).
    engine.on_progress(|_| crate::sys::process::stop_reason().map(rhai::Dynamic::from));
    engine
}

/// Calls the script function `name` (no arguments) of a step's `ast`, without evaluating the
/// file's top level again (`run()`, `verify()`).
pub fn call_fn(engine: &Engine, ast: &AST, name: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
    engine.call_fn_with_options::<Dynamic>(options, &mut Scope::new(), ast, name, ())
}

/// Calls script function `name` with `args` (as `call_fn`).
pub fn call_fn_with(
    engine: &Engine,
    ast: &AST,
    name: &str,
    args: impl rhai::FuncArgs,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let options = CallFnOptions::new().eval_ast(false).rewind_scope(true);
    engine.call_fn_with_options::<Dynamic>(options, &mut Scope::new(), ast, name, args)
}

/// `file:line:col: message` for a parse error.
pub fn parse_error(file: &str, err: &ParseError) -> String {
    format!(
        "{}: syntax error: {}",
        locate(file, err.position()),
        err.err_type()
    )
}

/// `file:line:col: message` for a runtime error, unwrapping nested function calls down to the
/// innermost error while keeping the call chain.
pub fn runtime_error(default_file: &str, err: &EvalAltResult) -> String {
    let mut chain = Vec::new();
    let mut cur = err;
    let mut file = default_file.to_string();
    loop {
        match cur {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                if !pos.is_none() {
                    chain.push(format!("in {name}() called at {}", locate(&file, *pos)));
                }
                if !src.is_empty() {
                    file = src.clone();
                }
                cur = inner;
            }
            EvalAltResult::ErrorInModule(_, inner, _) => cur = inner,
            _ => break,
        }
    }
    let message = match cur {
        EvalAltResult::ErrorRuntime(value, _) => value.to_string(),
        EvalAltResult::ErrorTooManyOperations(_) => {
            format!("too many operations (more than {MAX_OPERATIONS}): a runaway loop?")
        }
        EvalAltResult::ErrorTerminated(value, _) => value.to_string(),
        EvalAltResult::ErrorStackOverflow(_) => format!(
            "too many nested function calls (more than {MAX_CALL_LEVELS}): infinite recursion?"
        ),
        EvalAltResult::ErrorTooManyModules(_) => {
            "`import` is not allowed in steps: put shared functions in prelude.rhai".to_string()
        }
        EvalAltResult::ErrorDataTooLarge(what, _) => {
            format!("{what} too large (limits: {})", limits_text())
        }
        other => {
            // Rhai's Display appends " (line L, position P)"; we print the location ourselves.
            let s = other.to_string();
            match s.rfind(" (line ") {
                Some(i) if s.ends_with(')') => s[..i].to_string(),
                _ => s,
            }
        }
    };
    let pos = cur.position();
    let mut out = if pos.is_none() {
        format!("{file}: {message}")
    } else {
        format!("{}: {message}", locate(&file, pos))
    };
    for c in chain.iter().rev() {
        out.push_str(&format!("\n    {c}"));
    }
    out
}

fn locate(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data_sizes` counts as rhai does: a value fits exactly when the engine accepts it.
    #[test]
    fn fits_limits_agrees_with_the_engine_at_each_limit() {
        let engine = sandbox();
        let text = |n: usize| Dynamic::from("x".repeat(n));
        let map_of = |entries: Vec<(&str, Dynamic)>| {
            let mut m = rhai::Map::new();
            for (k, v) in entries {
                m.insert(k.into(), v);
            }
            Dynamic::from(m)
        };
        let nested_maps = |n: usize| {
            let one = map_of(vec![("a", Dynamic::from(1_i64))]);
            Dynamic::from((0..n).map(|_| one.clone()).collect::<rhai::Array>())
        };
        let cases = vec![
            map_of(vec![
                ("a", text(MAX_STRING_SIZE / 2)),
                ("b", text(MAX_STRING_SIZE / 2)),
            ]),
            map_of(vec![
                ("a", text(MAX_STRING_SIZE / 2)),
                ("b", text(MAX_STRING_SIZE / 2 + 1)),
            ]),
            map_of(vec![(
                "json",
                Dynamic::from(vec![text(MAX_STRING_SIZE / 2), text(MAX_STRING_SIZE / 2)]),
            )]),
            nested_maps(MAX_MAP_SIZE),
            nested_maps(MAX_MAP_SIZE + 1),
            map_of(vec![("j", nested_maps(MAX_MAP_SIZE - 1))]),
            map_of(vec![
                ("j", nested_maps(MAX_MAP_SIZE - 1)),
                ("k", Dynamic::UNIT),
            ]),
            Dynamic::from(vec![Dynamic::from(1_i64); MAX_ARRAY_SIZE]),
            Dynamic::from(vec![
                Dynamic::from(vec![
                    Dynamic::from(1_i64);
                    MAX_ARRAY_SIZE / 2
                ]);
                2
            ]),
            text(MAX_STRING_SIZE + 1),
        ];
        for (i, v) in cases.iter().enumerate() {
            assert_eq!(
                fits_limits(v),
                engine.ensure_data_size_within_limits(v).is_ok(),
                "case {i}: {:?}",
                data_sizes(v)
            );
        }
    }
}
