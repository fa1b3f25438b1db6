//! Step-declaration parsing: any text as a step script must give a step or an error (never a
//! panic, a stack overflow or a hang). The script is compiled, never run.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static ENGINE: OnceLock<rhai::Engine> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let engine = ENGINE.get_or_init(stepwise::run::host::engine);
    let text = String::from_utf8_lossy(data);
    let _ = stepwise::decide::step::parse_step(engine, "fuzz.rhai", 1, "fuzz".to_string(), &text);
});
