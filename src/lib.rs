//! Paved: an Internal Developer Platform inside Kubernetes.
//!
//! ```text
//!  Environment (cluster)  ──owns──▶ Namespace
//!      │ namespace
//!      ▼
//!  Application (ns) ◀──spec.application── Service (ns) ──owns──▶ Deployment
//!      status: services, ready n/m              │                    core Service
//!                                               │ dependsOn          Ingress (expose)
//!                                               ▼                    HPA (autoscaling)
//!                                            Service (same ns)       PDB (production)
//! ```
//!
//! Where things are:
//! - [`api`]: the CRD types (`paved.dev/v1alpha1`), schema and CEL rules.
//! - [`resolve`]: pure resolve + validate, from a snapshot of the three kinds.
//! - [`children`]: pure builders, CRs → Kubernetes objects (shared with `paved render`).
//! - [`status`]: pure status computation (conditions, catalog fields).
//! - [`lifecycle`]: pure expiry and stop/start schedule of an Environment.
//! - [`reconcile`]: the thin reconcilers: resolve → validate → build → apply → status.
//! - [`cli`]: the Day-2 commands (`paved rollback`, `restart`, `stop`, `start`).
//! - [`catalog`]: the catalog as Backstage entities (`/catalog/backstage`).
//! - [`runtime`]: metrics, health endpoints, leader election, controller wiring.
//! - [`names`]: every label, annotation, condition and reason name.

pub mod api;
pub mod catalog;
pub mod children;
pub mod cli;
pub mod error;
pub mod lifecycle;
pub mod names;
pub mod reconcile;
pub mod resolve;
pub mod runtime;
pub mod status;

pub use error::{Error, Result};
