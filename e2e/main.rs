//! End-to-end tests: every behaviour a user would see, proven against the real
//! local control plane that `e2e/cluster/up.sh` starts (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler, and kwok nodes that run Pods to
//! Ready). `make test` starts that cluster, installs the CRDs, runs `paved run`
//! and then these tests; see `e2e/run.sh`.
//!
//! Each test works in objects of its own (unique names), so tests run in
//! parallel against one cluster and one controller.

mod support;

mod cluster_metrics;
mod cluster_smoke;

mod paved_support;
mod portal_backstage;

mod day2_cli;
mod day2_production;
mod day2_stop_start;
mod env_lifecycle;
mod env_preview;
mod env_support;
mod env_tenancy;
mod expose_gateway;
mod faults;
mod page_browser;
mod paved_application_deletion;
mod paved_catalog;
mod paved_conflicts;
mod paved_delivery;
mod paved_drift;
mod paved_environment;
mod paved_errors;
mod paved_failures;
mod paved_insights;
mod paved_schema;
mod paved_security;
mod paved_service;
mod paved_usage;
mod readme_tour;
mod ship_argocd;
mod ship_kstatus;
mod ship_port;
mod ship_portals;
mod ship_support;
mod trust_domains;
mod trust_dry_run;
mod trust_refused;
