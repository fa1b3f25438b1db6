//! The integration tests, one test binary (issue #25): each file of tests/it/ is a module of
//! this crate, so the stepwise library is linked into one test executable instead of one per
//! file. `cargo nextest run --test it -E 'test(/^core::/)'` runs one module's tests.
//! Helpers shared by the modules: `support` (tests/it/support/mod.rs).

mod support;

mod blob;
mod browser;
mod ci_recipes;
mod command_line;
mod core;
mod cost;
mod decided_at_start;
mod docker_context;
mod draftgenie;
mod drift;
mod ecosystem;
mod environments;
mod faults;
mod fingerprints;
mod layers;
mod listings;
mod notify;
mod parallel;
mod plan_deploy;
mod reads;
mod real_az;
mod release;
mod reliability;
mod report;
mod rollback;
mod secrets;
mod watch;
