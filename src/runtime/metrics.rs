//! Prometheus metrics (prometheus-client), served on `/metrics`.
//!
//! | metric | labels |
//! |---|---|
//! | `paved_reconciles_total` | kind |
//! | `paved_reconcile_errors_total` | kind, reason (failures retried every 5 s) |
//! | `paved_reconcile_stalls_total` | kind, reason (reconciles that ended Stalled: only a change can fix them) |
//! | `paved_reconcile_duration_seconds` (histogram) | kind |
//! | `paved_reconciles_running` (gauge) | kind (reconciles in flight; at most `--concurrency`) |
//! | `paved_reconciles_queued` (gauge) | kind (reconciles waiting for a turn: the work queue's depth) |
//! | `paved_objects_managed` (gauge) | kind |
//! | `paved_store_objects` (gauge) | kind (objects held in the in-memory stores: what memory grows with) |
//! | `paved_writes_total` | resource |
//! | `paved_status_conflicts_total` | kind (status writes refused: computed from a copy the object has since left behind) |
//! | `paved_progress_deferred_total` | kind (progress-only status writes put off: paced, or the shared budget spent) |
//! | `paved_leader` (gauge) | |
//! | `paved_catalog_lists_total` | | (lists of every Environment, Application and Service for `/catalog/backstage`; requests that come together share one) |
//! | `paved_watch_errors_total` | resource (as `kubectl get` names it: `deployments.apps`, `services.paved.dev`, `services`) |
//! | `paved_watch_relists_total` | resource (full lists: one at start, one after each watch that lost its place) |
//! | `paved_watches` (gauge) | resource (watches held open, one per resource) |
//! | `paved_watches_failing` (gauge) | |
//! | `paved_watches_listing` (gauge) | | (watches not through their first list yet; `/readyz` is not ready while above 0) |
//! | `paved_insights` (gauge, 1 per insight) | rule, level, kind, namespace, name (an object's own insights, not rolled up) |
//! | `paved_score` (gauge, 0-100) | kind, namespace, name (rolled up: an Application over its Services) |
//! | `paved_deploys_total` | namespace, application, service (new revisions since `status.delivery.since`) |
//! | `paved_change_failures_total` | namespace, application, service (revisions that went Stalled or were rolled back) |
//! | `paved_restores_total` | namespace, application, service (returns to Ready after a Stalled) |
//! | `paved_time_to_restore_seconds_total` | namespace, application, service (sum of the times to restore) |
//! | `paved_lead_time_seconds` (gauge) | namespace, application, service (latest deploy with a `paved.dev/commit-time`) |
//! | `paved_usage_cpu_cores` (gauge) | namespace, application, service (all pods, the latest poll of metrics.k8s.io) |
//! | `paved_usage_memory_bytes` (gauge) | namespace, application, service (all pods, working set) |
//! | `paved_usage_available` (gauge) | | (1 while the cluster serves metrics.k8s.io) |
//!
//! The insights, scores and delivery figures are read from the objects' status,
//! and the usage figures from the usage poller's latest sample of each Service,
//! at each scrape ([`super::object_series`]), so a restarted controller resumes
//! the delivery counters where status left them (Prometheus sees a counter
//! appear, not a reset to zero) and a series goes with its object.
//!
//! The work queue is Paved's own (`runtime::fair`: turns shared between
//! namespaces), so its depth is `paved_reconciles_queued`.

use std::fmt;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use super::object_series::ObjectSeries;
use crate::insights::InsightSettings;
use crate::reconcile::PublishedStores;

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
    /// The controller's own families (held by prometheus-client behind locks).
    registry: Registry,
    /// The per-object series, read from the stores at each scrape: most of a
    /// scrape at scale (11.8 MB for 10,000 Services, all series 1.2 KB per
    /// Service), and no lock held while they are written, so they are
    /// streamed ([`Metrics::encode_chunks`]).
    objects: Registry,
    reconciles: Family<KindLabel, Counter>,
    errors: Family<ErrorLabels, Counter>,
    stalls: Family<ErrorLabels, Counter>,
    duration: Family<KindLabel, Histogram, fn() -> Histogram>,
    running: Family<KindLabel, Gauge>,
    queued: Family<KindLabel, Gauge>,
    managed: Family<KindLabel, Gauge>,
    store_objects: Family<KindLabel, Gauge>,
    writes: Family<ResourceLabel, Counter>,
    status_conflicts: Family<KindLabel, Counter>,
    progress_deferred: Family<KindLabel, Counter>,
    leader: Gauge,
    catalog_lists: Counter,
    watch_errors: Family<ResourceLabel, Counter>,
    watch_relists: Family<ResourceLabel, Counter>,
    watches: Family<ResourceLabel, Gauge>,
    watches_failing: Gauge,
    watches_listing: Gauge,
    usage_available: Gauge,
}

impl Default for Metrics {
    /// Metrics with no stores to read per-object series from (tests).
    fn default() -> Self {
        Metrics::new(PublishedStores::default(), InsightSettings::default())
    }
}

impl Metrics {
    /// The controller's metrics; the per-object series are read from `stores`
    /// at each scrape ([`super::object_series`]).
    pub fn new(stores: PublishedStores, insights: InsightSettings) -> Self {
        let mut registry = Registry::with_prefix("paved");
        let mut objects = Registry::with_prefix("paved");
        objects.register_collector(Box::new(ObjectSeries { stores, insights }));
        let reconciles = Family::<KindLabel, Counter>::default();
        let errors = Family::<ErrorLabels, Counter>::default();
        let stalls = Family::<ErrorLabels, Counter>::default();
        let duration = Family::<KindLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            duration_histogram,
        );
        let running = Family::<KindLabel, Gauge>::default();
        let queued = Family::<KindLabel, Gauge>::default();
        let managed = Family::<KindLabel, Gauge>::default();
        let store_objects = Family::<KindLabel, Gauge>::default();
        let writes = Family::<ResourceLabel, Counter>::default();
        let status_conflicts = Family::<KindLabel, Counter>::default();
        let progress_deferred = Family::<KindLabel, Counter>::default();
        let leader = Gauge::default();
        let catalog_lists = Counter::default();
        let watch_errors = Family::<ResourceLabel, Counter>::default();
        let watch_relists = Family::<ResourceLabel, Counter>::default();
        let watches = Family::<ResourceLabel, Gauge>::default();
        let watches_failing = Gauge::default();
        let watches_listing = Gauge::default();
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
            "reconciles_running",
            "Reconciles in flight, by kind; at the concurrency limit, further objects wait in the queue",
            running.clone(),
        );
        registry.register(
            "reconciles_queued",
            "Reconciles waiting for a turn (the work queue's depth), by kind",
            queued.clone(),
        );
        registry.register(
            "objects_managed",
            "Custom resources Paved manages, by kind",
            managed.clone(),
        );
        registry.register(
            "store_objects",
            "Objects held in Paved's in-memory stores (one per watched kind), by kind",
            store_objects.clone(),
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
            "progress_deferred",
            "Progress-only status writes put off (paced per object, or the kind's shared budget spent); news is never put off",
            progress_deferred.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the leader Lease",
            leader.clone(),
        );
        registry.register(
            "catalog_lists",
            "Lists of every Environment, Application and Service for /catalog/backstage (requests that come together share one)",
            catalog_lists.clone(),
        );
        registry.register(
            "watch_errors",
            "Watch requests that failed (and were retried), by resource",
            watch_errors.clone(),
        );
        registry.register(
            "watch_relists",
            "Full lists of a watched kind: one when its watch starts, then one each time the watch lost its place (410 Gone) and restarted from a list, by resource",
            watch_relists.clone(),
        );
        registry.register(
            "watches",
            "Watches Paved holds open (or is retrying), by resource",
            watches.clone(),
        );
        registry.register(
            "watches_failing",
            "Watches whose last attempt failed; /readyz is not ready while above 0",
            watches_failing.clone(),
        );
        registry.register(
            "watches_listing",
            "Watches not through their first full list yet; /readyz is not ready while above 0 (a standby holds none)",
            watches_listing.clone(),
        );
        let usage_available = Gauge::default();
        registry.register(
            "usage_available",
            "1 while the cluster serves metrics.k8s.io (usage figures in status), else 0",
            usage_available.clone(),
        );
        Metrics {
            registry,
            objects,
            usage_available,
            reconciles,
            errors,
            stalls,
            duration,
            running,
            queued,
            managed,
            store_objects,
            writes,
            status_conflicts,
            progress_deferred,
            leader,
            catalog_lists,
            watch_errors,
            watch_relists,
            watches,
            watches_failing,
            watches_listing,
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
            .running
            .get_or_create(&KindLabel {
                kind: self.kind.into(),
            })
            .dec();
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
        self.running
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
        ReconcileTimer {
            metrics: self,
            kind,
            start: Instant::now(),
        }
    }

    /// Reconciles of `kind` waiting for a turn (`runtime::fair`).
    pub fn set_queued(&self, kind: &str, waiting: usize) {
        self.queued
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(waiting as i64);
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

    /// A progress-only status write put off.
    pub fn progress_deferred(&self, kind: &str) {
        self.progress_deferred
            .get_or_create(&KindLabel { kind: kind.into() })
            .inc();
    }

    pub fn set_managed(&self, kind: &str, count: usize) {
        self.managed
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(count as i64);
    }

    /// How many objects the store of `kind` holds now.
    pub fn set_store_objects(&self, kind: &str, count: usize) {
        self.store_objects
            .get_or_create(&KindLabel { kind: kind.into() })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// One set of lists for `/catalog/backstage`.
    pub fn catalog_listed(&self) {
        self.catalog_lists.inc();
    }

    pub fn watch_failed(&self, resource: &str) {
        self.watch_errors
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .inc();
    }

    /// A watch of `resource` listed its kind in full (a start or a restart).
    pub fn watch_relisted(&self, resource: &str) {
        self.watch_relists
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .inc();
    }

    /// One more (`1`) or one fewer (`-1`) watch of `resource` held.
    pub fn watches_held(&self, resource: &str, change: i64) {
        self.watches
            .get_or_create(&ResourceLabel {
                resource: resource.into(),
            })
            .inc_by(change);
    }

    /// One more (`1`) or one fewer (`-1`) watch whose last attempt failed.
    pub fn watches_failing(&self, change: i64) {
        self.watches_failing.inc_by(change);
    }

    /// Watches whose last attempt failed.
    pub fn failing_watches(&self) -> i64 {
        self.watches_failing.get()
    }

    /// One more (`1`) or one fewer (`-1`) watch not through its first list yet.
    pub fn watches_listing(&self, change: i64) {
        self.watches_listing.inc_by(change);
    }

    /// Watches not through their first list yet.
    pub fn listing_watches(&self) -> i64 {
        self.watches_listing.get()
    }

    /// Whether the cluster serves metrics.k8s.io (the usage poller, after each
    /// poll). The usage series themselves are read from its records at each
    /// scrape ([`super::object_series`]).
    pub fn set_usage_available(&self, available: bool) {
        self.usage_available.set(i64::from(available));
    }

    /// OpenMetrics text exposition, whole (tests; `/metrics` streams it).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        self.encode_chunks(usize::MAX, |chunk| {
            out.push_str(&chunk);
            true
        })
        .expect("writing to a String");
        out
    }

    /// The OpenMetrics text exposition, handed to `send` in chunks of about
    /// `chunk` bytes as they fill (`send` returns false when the reader is
    /// gone, which ends the encoding with an error). At 10,000 Services the
    /// exposition is 11.8 MB; built whole for each scrape, it was the largest
    /// single allocation in a heap profile. The families are written to memory first
    /// (prometheus-client holds their locks while it writes, and `send` may
    /// wait on a slow reader); the per-object series, the bulk, hold no lock
    /// and go out chunk by chunk.
    pub fn encode_chunks(&self, chunk: usize, send: impl FnMut(String) -> bool) -> fmt::Result {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut families = String::new();
        encode_registry(&mut families, &self.registry)?;
        let mut out = Chunks {
            buffer: families,
            chunk,
            send,
        };
        out.flush_if_full()?;
        encode_registry(&mut out, &self.objects)?;
        encode_eof(&mut out)?;
        out.chunk = 0;
        out.flush_if_full()
    }
}

/// A `fmt::Write` that hands its text on in chunks (see [`Metrics::encode_chunks`]).
struct Chunks<F> {
    buffer: String,
    chunk: usize,
    send: F,
}

impl<F: FnMut(String) -> bool> Chunks<F> {
    fn flush_if_full(&mut self) -> fmt::Result {
        if self.buffer.is_empty() || self.buffer.len() < self.chunk {
            return Ok(());
        }
        let capacity = self.chunk.saturating_add(1024).min(1 << 20);
        let full = std::mem::replace(&mut self.buffer, String::with_capacity(capacity));
        if (self.send)(full) {
            Ok(())
        } else {
            Err(fmt::Error)
        }
    }
}

impl<F: FnMut(String) -> bool> fmt::Write for Chunks<F> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        self.buffer.push_str(text);
        self.flush_if_full()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_goes_out_in_chunks_that_make_it_whole_and_stops_when_the_reader_goes() {
        let metrics = Metrics::default();
        metrics.watches_listing(1);
        let whole = metrics.encode();
        assert!(whole.len() > 1024 && whole.ends_with("# EOF\n"), "{whole}");
        let mut chunks = Vec::new();
        metrics
            .encode_chunks(256, |chunk| {
                chunks.push(chunk);
                true
            })
            .unwrap();
        assert!(chunks.len() > 3, "{} chunks", chunks.len());
        // The families go first, whole; then each chunk of the per-object
        // series is sent once it reaches the size (at most one write past it).
        assert!(
            chunks[1..]
                .iter()
                .all(|c| !c.is_empty() && c.len() < 256 + 512)
        );
        assert_eq!(chunks.concat(), whole);
        // A reader gone after two chunks: nothing more is encoded or sent.
        let mut sent = 0;
        let result = metrics.encode_chunks(256, |_| {
            sent += 1;
            sent < 2
        });
        assert!(result.is_err());
        assert_eq!(sent, 2);
    }

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
            "paved_catalog_lists_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
        assert!(
            !text
                .contains("paved_reconcile_errors_total{kind=\"Service\",reason=\"HostConflict\"}"),
            "a stall is not an error:\n{text}"
        );
    }

    #[test]
    fn a_reconcile_counts_as_running_until_it_ends_even_when_it_panics() {
        let metrics = Metrics::default();
        let first = metrics.reconcile_started("Service");
        let second = metrics.reconcile_started("Service");
        let other = metrics.reconcile_started("Environment");
        let text = metrics.encode();
        assert!(
            text.contains("paved_reconciles_running{kind=\"Service\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("paved_reconciles_running{kind=\"Environment\"} 1"),
            "{text}"
        );
        drop(first);
        // A reconcile that panics unwinds through its timer.
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _timer = second;
            panic!("reconcile panicked");
        }));
        assert!(panicked.is_err());
        drop(other);
        let text = metrics.encode();
        assert!(
            text.contains("paved_reconciles_running{kind=\"Service\"} 0")
                && text.contains("paved_reconciles_running{kind=\"Environment\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("paved_reconciles_total{kind=\"Service\"} 2"),
            "{text}"
        );
    }

    #[test]
    fn store_sizes_and_watches_held_are_published_by_kind_and_follow_their_latest_value() {
        let metrics = Metrics::default();
        metrics.set_store_objects("Deployment", 10_000);
        metrics.set_store_objects("Deployment", 9_999);
        metrics.set_store_objects("Namespace", 0);
        metrics.watches_held("deployments.apps", 1);
        metrics.watches_held("secrets", 1);
        metrics.watches_held("secrets", -1);
        metrics.watch_relisted("deployments.apps");
        metrics.watch_relisted("deployments.apps");
        let text = metrics.encode();
        for line in [
            "paved_store_objects{kind=\"Deployment\"} 9999",
            "paved_store_objects{kind=\"Namespace\"} 0",
            "paved_watches{resource=\"deployments.apps\"} 1",
            "paved_watches{resource=\"secrets\"} 0",
            "paved_watch_relists_total{resource=\"deployments.apps\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }
}
