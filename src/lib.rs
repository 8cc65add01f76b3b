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
//! Where things are (pure modules above the line, I/O below):
//!
//! ```text
//! src/
//! ├── api/                 the CRD types (paved.dev/v1alpha1), schema and CEL rules
//! ├── names.rs             every label, annotation, condition and reason name
//! ├── error.rs             the one error type; which errors stall, their reasons
//! ├── resolve.rs           snapshot of the three kinds → ResolvedService, validation
//! ├── domain.rs            who owns a domain: public suffixes, one Environment per domain
//! ├── retry.rs             per-object backoff of writes the API server refused
//! ├── children/            pure builders: CRs → the children Paved writes
//! │   ├── mod.rs           ServiceChildren (the child set of a Service), shared labels
//! │   ├── environment.rs   EnvironmentChildren (the child set of an Environment)
//! │   ├── deployment.rs    Deployment          ├── core_service.rs  core Service
//! │   ├── ingress.rs       Ingress             ├── autoscaler.rs    HPA
//! │   ├── pdb.rs           PodDisruptionBudget ├── namespace.rs     Namespace
//! │   ├── tenancy.rs       RoleBindings        ├── guardrails.rs    quota, defaults, isolation
//! │   ├── clone.rs         preview copies      ├── config.rs        env, config keys, config hash
//! │   └── cases/           the builders' contract as data: manifests in, children out
//! ├── status/              pure status: condition helpers and the Service's status
//! │   ├── application.rs   an Application's status
//! │   └── environment.rs   an Environment's status
//! ├── lifecycle.rs         expiry and stop/start schedule of an Environment
//! ├── catalog.rs           the catalog as Backstage entities (/catalog/backstage)
//! ├── insights.rs          the paved-path scorecard: rules as data, score, roll-up
//! ├── cost.rs              monthly cost estimate from requests and admin-set prices
//! ├── delivery.rs          delivery metrics: deploys, change failures, time to restore, lead time
//! ├── usage.rs             real usage: pods folded per Service, the step rule, streaks, the store
//! ├── slim.rs              what the stores keep of a child: the fields Paved's apply owns, status
//! ├── page/                the catalog page (/catalog): stores' objects → escaped HTML, inline SVG
//! │ ─────────────────────────────────────────────────────────────────────────────
//! ├── reconcile/           the thin reconcilers: prologue → resolve → build → converge → status
//! │   ├── mod.rs           Context, the prologue every reconcile starts with (its turn)
//! │   ├── converge.rs      the one converge: ownership check, apply, delete, own-write memory
//! │   ├── stores.rs        the reflector stores, declared once
//! │   ├── status_writer.rs writing status: only on change, paced, bridged over store lag
//! │   ├── events.rs        Events on Ready transitions
//! │   ├── service.rs       application.rs environment.rs: one reconcile per kind
//! │   └── preview.rs       a preview's copies of its base
//! ├── runtime/             process wiring
//! │   ├── controllers.rs   reflectors, watches and the three controllers
//! │   ├── fair.rs          the work queue: turns to reconcile, fair between namespaces
//! │   ├── triggers.rs      which objects a watch event reconciles (pure, tested)
//! │   ├── usage.rs         the usage poller: metrics.k8s.io discovered, read, Services woken
//! │   ├── page.rs          serving the catalog page: published stores, routes, token gate
//! │   └── metrics.rs http.rs leader.rs telemetry.rs
//! └── cli/                 the `paved` subcommands besides `run`
//!     ├── render.rs        `paved render`: the children of manifests, offline
//!     ├── crd.rs           `paved crd`: the CRDs as YAML
//!     └── day2.rs          `paved rollback`, `restart`, `stop`, `start`
//! ```
//!
//! Adding a child kind to Service: a builder in `children/`, a field in
//! [`children::ServiceChildren`] and a store in `reconcile/stores.rs`; the compiler
//! then points at every place that handles children (the reconcile, the watches,
//! `paved render`), as each destructures the child set without `..`.

pub mod api;
pub mod catalog;
pub mod children;
pub mod cli;
pub mod cost;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod insights;
pub mod lifecycle;
pub mod names;
pub mod page;
#[cfg(test)]
mod proptests;
pub mod reconcile;
pub mod resolve;
pub mod retry;
pub mod runtime;
pub mod slim;
pub mod status;
pub mod usage;

pub use error::{Error, Result};
