//! The decision floor: the script sandbox, steps and their declarations, fingerprints (with the
//! hash cache) and the plan: what runs, and why.

pub mod fingerprint;
pub(crate) mod hashcache;
pub(crate) mod images;
pub(crate) mod plan;
pub(crate) mod rollback;
pub(crate) mod script;
pub mod step;
pub mod walk;
