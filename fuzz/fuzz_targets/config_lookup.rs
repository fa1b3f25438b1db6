//! The config parser and dotted-key lookup: the first line of the input is a key, the rest a
//! YAML document. Parsing, `get`, `canonical` and `lookup` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use stepwise::config::{lookup, Config};

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let (key, yaml) = input.split_once('\n').unwrap_or((&input, ""));
    let Ok(config) = Config::parse(Path::new("fuzz.yaml"), yaml) else {
        return;
    };
    let found = config.get(key);
    assert_eq!(found, lookup(&config.root, key));
    // The canonical form (what fingerprints hash): `null` for a missing key.
    let canonical = config.canonical(key);
    assert!(found.is_some() || canonical == "null", "{canonical}");
    let _ = config.secret_by(key);
    let _ = config.has_secret(key);
});
