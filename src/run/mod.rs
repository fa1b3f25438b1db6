//! The run floor: the host functions scripts call (and the engine they make), the executor
//! that runs the decided steps, and `--refresh`.

pub(crate) mod cost;
pub(crate) mod executor;
pub mod host;
pub(crate) mod refresh;
