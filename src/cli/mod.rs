//! The `paved` subcommands besides `run`: `render` (offline), `crd`, and the
//! Day-2 commands.

pub mod crd;
pub mod day2;
pub mod render;

pub use day2::*;
