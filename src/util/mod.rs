//! The ground floor: small helpers every other floor may use, importing nothing of stepwise.

pub mod clock;
pub mod digest;
pub mod fs;
