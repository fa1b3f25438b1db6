//! The ground floor: helpers every other floor may use, importing nothing above this floor.

pub mod capture;
pub mod clock;
pub mod console;
pub mod digest;
pub mod dockerfile;
pub mod dockerignore;
pub mod error;
pub mod failure;
pub mod fs;
pub mod paths;
pub mod secrets;
pub mod suggest;
