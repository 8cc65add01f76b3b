//! Everything around the reconcilers: metrics and health endpoints, leader
//! election, controller wiring, logging. `main.rs` calls into here.

pub mod coalesce;
pub mod controllers;
pub mod fair;
pub mod fence;
pub mod gateway_api;
pub mod http;
pub mod leader;
pub mod list_watch;
pub mod metrics;
pub mod object_series;
pub mod page;
pub mod taps;
pub mod telemetry;
pub mod triggers;
pub mod usage;
pub mod watches;
