//! The decision floor: the script sandbox, steps and their declarations, fingerprints (with the
//! hash cache) and the plan: what runs, and why.

pub mod fingerprint;
pub mod hashcache;
pub mod plan;
pub mod script;
pub mod step;
pub mod walk;
