//! The state file parser: any bytes (read as UTF-8, lossily) must give a state or an error,
//! never a panic; a state that parses must survive `to_json()` and parse again to the same JSON.
//!
//! Known and tolerated: serde_json without its `float_roundtrip` feature parses some floats
//! (long mantissas, large exponents: `1.5e93`) one or two ULPs off, so such a number drifts by
//! an ULP each time a state is read and written again. Floats are therefore compared to within
//! 2 ULPs; everything else must be equal exactly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use stepwise::state::State;

/// Equal JSON, except that floats may differ by 2 ULPs.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
            match (x.as_f64(), y.as_f64()) {
                (Some(x), Some(y)) => {
                    x == y
                        || (x.is_sign_negative() == y.is_sign_negative()
                            && x.to_bits().abs_diff(y.to_bits()) <= 2)
                }
                _ => false,
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((kx, vx), (ky, vy))| kx == ky && same(vx, vy))
        }
        _ => a == b,
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(state) = State::parse("fuzz.json", &text) else {
        return;
    };
    let written = state.to_json();
    let again = State::parse("fuzz.json", &written)
        .unwrap_or_else(|e| panic!("a written state does not parse again: {e:#}\n{written}"));
    let rewritten = again.to_json();
    let a: Value = serde_json::from_str(&written).expect("to_json writes JSON");
    let b: Value = serde_json::from_str(&rewritten).expect("to_json writes JSON");
    assert!(
        same(&a, &b),
        "state changed on a round trip:\n{written}\n---\n{rewritten}"
    );
});
