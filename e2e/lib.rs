//! The e2e tests live in `main.rs` (the `e2e` test target); this package has no
//! library code of its own. See `e2e/run.sh` for how they are run.
