//! Prometheus metrics (prometheus-client), served on `/metrics`.
//!
//! | metric | labels |
//! |---|---|
//! | `paved_reconciles_total` | kind |
//! | `paved_reconcile_errors_total` | kind, reason (failures retried every 5 s) |
//! | `paved_reconcile_stalls_total` | kind, reason (reconciles that ended Stalled: only a change can fix them) |
//! | `paved_reconcile_duration_seconds` (histogram) | kind |
//! | `paved_objects_managed` (gauge) | kind |
//! | `paved_writes_total` | resource |
//! | `paved_status_conflicts_total` | kind (status writes refused: computed from a copy the object has since left behind) |
//! | `paved_leader` (gauge) | |
//! | `paved_watch_errors_total` | resource |
//! | `paved_watches_failing` (gauge) | |

use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabel {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResourceLabel {
    pub resource: String,
}

fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

pub struct Metrics {
    registry: Registry,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    stalls: Family<ErrorLabels, Counter>,
    duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    managed: Family<KindLabel, Gauge>,
    writes: Family<ResourceLabel, Counter>,
    status_conflicts: Family<KindLabel, Counter>,
    leader: Gauge,
    watch_errors: Family<ResourceLabel, Counter>,
    watches_failing: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("paved");
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let stalls = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let managed = Family::<KindLabel, Gauge>::default();
        let writes = Family::<ResourceLabel, Counter>::default();
        let status_conflicts = Family::<KindLabel, Counter>::default();
        let leader = Gauge::default();
        let watch_errors = Family::<ResourceLabel, Counter>::default();
        let watches_failing = Gauge::default();
        registry.register("reconciles", "Reconciles run, by kind", reconciles.clone());
        registry.register(
            "reconcile_errors",
            "Reconciles that failed and are retried, by kind and reason",
            errors.clone(),
        );
        registry.register(
            "reconcile_stalls",
            "Reconciles that ended Stalled (a change from the user, or elsewhere, is needed), by kind and reason",
            stalls.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Duration of reconciles, by kind",
            duration.clone(),
        );
        registry.register(
            "objects_managed",
            "Custom resources Paved manages, by kind",
            managed.clone(),
        );
        registry.register(
            "writes",
            "Writes Paved sent to the apiserver, by resource",
            writes.clone(),
        );
        registry.register(
            "status_conflicts",
            "Status writes the API server refused (409) because the object changed after the copy they were computed from; recomputed from the fresh copy, not errors",
            status_conflicts.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "watch_errors",
            "Watch requests that failed (and were retried), by resource",
            watch_errors.clone(),
        );
        registry.register(
            "watches_failing",
            "Watches whose last attempt failed; /readyz is not ready while above 0",
            watches_failing.clone(),
        );
        Metrics {
            registry,
            reconciles,
            errors,
            stalls,
            duration,
            managed,
            writes,
            status_conflicts,
            leader,
            watch_errors,
            watches_failing,
        }
    }
}

/// Observes the reconcile duration when dropped.
pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: &'static str,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .duration
            .get_or_create(&KindLabel {
                kind: self.kind.into(),
            })
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Metrics {
    pub fn reconcile_started(&self, kind: &'static str) -> ReconcileTimer<'_> {
        self.reconciles
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    pub fn failed(&self, kind: &str, reason: &str) {
        self.errors
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    /// A reconcile that ended Stalled, counted apart from errors: a stalled
    /// object is looked at again and again, and is no failure of Paved's.
    pub fn stalled(&self, kind: &str, reason: &str) {
        self.stalls
            .get_or_create(&ErrorLabels {
                kind: kind.into(),
                reason: reason.into(),
            })
            .inc();
    }

    pub fn wrote(&self, resource: &str) {
        self.writes
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .inc();
    }

    /// A status write refused because the object changed since it was read.
    pub fn status_conflict(&self, kind: &str) {
        self.status_conflicts
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    pub fn set_managed(&self, kind: &str, count: usize) {
        self.managed
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(count as i64);
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    pub fn watch_failed(&self, resource: &str) {
        self.watch_errors
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .inc();
    }

    /// One more (`1`) or one fewer (`-1`) watch whose last attempt failed.
    pub fn watches_failing(&self, change: i64) {
        self.watches_failing.inc_by(change);
    }

    /// Watches whose last attempt failed.
    pub fn failing_watches(&self) -> i64 {
        self.watches_failing.get()
    }

    /// OpenMetrics text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_are_exposed_under_their_documented_names() {
        let metrics = Metrics::default();
        drop(metrics.reconcile_started("Service"));
        metrics.failed("Service", "ApplyFailed");
        metrics.stalled("Service", "HostConflict");
        metrics.wrote("Deployment");
        metrics.status_conflict("Service");
        metrics.set_managed("Service", 3);
        let text = metrics.encode();
        for name in [
            "paved_reconciles_total{kind=\"Service\"} 1",
            "paved_reconcile_errors_total{kind=\"Service\",reason=\"ApplyFailed\"} 1",
            "paved_reconcile_stalls_total{kind=\"Service\",reason=\"HostConflict\"} 1",
            "paved_reconcile_duration_seconds_bucket",
            "paved_objects_managed{kind=\"Service\"} 3",
            "paved_status_conflicts_total{kind=\"Service\"} 1",
            "paved_writes_total{resource=\"Deployment\"} 1",
            "paved_leader 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(
            !text
                .contains("paved_reconcile_errors_total{kind=\"Service\",reason=\"HostConflict\"}"),
            "a stall is not an error:\n{text}"
        );
    }
}
