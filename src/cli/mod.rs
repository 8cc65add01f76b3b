//! The `paved` subcommands besides `run`: `render` and `lint` (offline), `crd`, and the
//! Day-2 commands.

pub mod crd;
pub mod day2;
pub mod lint;
pub mod render;

pub use day2::*;
