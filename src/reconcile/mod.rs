//! The reconcilers: thin pipelines over the pure modules.
//!
//! ```text
//! prologue → resolve (resolve) → build (children) → converge (converge) → status (status, status_writer)
//! ```
//!
//! Each reconciler reads what it needs from the reflector stores in [`Context`]
//! (no list calls), writes every child through the one [`converge::converge`]
//! (server-side apply as `paved`, never over an object Paved did not create),
//! and writes status only when it differs from what is already there.

pub mod application;
pub mod converge;
pub mod environment;
pub mod events;
pub mod preview;
pub mod service;
pub mod status_writer;
pub mod stores;

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::runtime::events::Recorder;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use kube::runtime::reflector::ObjectRef;

use crate::api::{Application, Environment, Service};
use crate::runtime::fair::FairQueue;
use crate::runtime::metrics::{Metrics, ReconcileTimer};
pub use status_writer::{OwnStatus, PROGRESS_INTERVAL, StatusWrite, now, write_status};
pub use stores::{PublishedStores, StoreWriters, Stores, StoresLoaded, new_stores};

/// A write of `object` (of `kind`) that the API server refused: the next wait of
/// its per-object backoff, logged at WARN with the API server's message (an
/// operator, and the chart's RBAC proof, read refusals in the log). The one
/// place for the reconcilers and the error policy alike.
pub fn back_off_refused<K: kube::Resource>(
    ctx: &Context,
    kind: &'static str,
    object: &K,
    error: &crate::error::Error,
) -> std::time::Duration {
    let meta = object.meta();
    let wait = ctx
        .backoff
        .failed(meta.uid.as_deref().unwrap_or_default(), meta.generation);
    tracing::warn!(kind, %error, retry_in = wait.as_secs(), "write refused; backing off");
    wait
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    /// Labels of the ingress controller's namespace, allowed in by an
    /// Environment's `networkIsolation` NetworkPolicy.
    pub ingress_namespace_labels: BTreeMap<String, String>,
    /// Thresholds and choices of the paved-path scorecard.
    pub insights: crate::insights::InsightSettings,
    /// Prices of the cost estimate; none: no estimate.
    pub prices: Option<crate::cost::Prices>,
    /// What the pods use, kept by the usage poller (`runtime::usage`); read
    /// here, never fetched in a reconcile.
    pub usage: crate::usage::UsageStore,
    /// What Paved just wrote (children and status), until the stores have it.
    pub own_writes: converge::OwnWrites,
    /// What is left of the Services' shared budget of progress-only status writes.
    pub progress_budget: status_writer::ProgressBudget,
    /// Per-object backoff of writes the API server refused.
    pub backoff: crate::retry::Backoff,
    /// Turns to reconcile, per kind, shared fairly between namespaces
    /// (`--concurrency` at once).
    pub turns: Turns,
    /// Whether the cluster serves Gateway API's HTTPRoute (rediscovered by
    /// `runtime::gateway_api`, so CRDs installed later are noticed).
    pub gateway_api: tokio::sync::watch::Receiver<bool>,
    /// How often an unchanged object is looked at again, as a safety net
    /// (`--resync-seconds`, [`DEFAULT_RESYNC`]).
    pub resync: std::time::Duration,
}

/// The work queue of each kind ([`crate::runtime::fair`]).
#[derive(Clone)]
pub struct Turns {
    pub services: Arc<FairQueue<Service>>,
    pub applications: Arc<FairQueue<Application>>,
    pub environments: Arc<FairQueue<Environment>>,
}

impl Turns {
    /// `concurrency` reconciles of each kind at once (0: no limit).
    pub fn new(concurrency: u16, metrics: &Arc<Metrics>) -> Self {
        let permits = usize::from(concurrency);
        Turns {
            services: FairQueue::new(permits, metrics.clone()),
            applications: FairQueue::new(permits, metrics.clone()),
            environments: FairQueue::new(permits, metrics.clone()),
        }
    }

    /// Shutdown: what waits for a turn ends without doing anything.
    pub fn close(&self) {
        self.services.close();
        self.applications.close();
        self.environments.close();
    }
}

/// The resync of every kind unless `--resync-seconds` says otherwise.
pub const DEFAULT_RESYNC: std::time::Duration = std::time::Duration::from_secs(600);

impl Context {
    /// When an unchanged `object` is looked at again: see [`resync_after`].
    pub fn resync_of<K: Resource>(&self, object: &K) -> std::time::Duration {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        resync_after(
            self.resync,
            object.meta().uid.as_deref().unwrap_or_default(),
            now,
        )
    }
}

/// When an unchanged object (by `uid`) is looked at again, at `now` (since the
/// epoch): at the next slot of its own, one `resync` period apart, whose phase
/// its UID gives (a slot less than a second away is skipped). Objects reconciled
/// together (every one of them, after a restart or a relist) so resync spread
/// evenly over the period, not all in the same seconds: at ten thousand
/// Services, a wave of ten thousand reconciles every period held up every
/// change that fell into it. Any one period still reconciles every object.
pub fn resync_after(
    resync: std::time::Duration,
    uid: &str,
    now: std::time::Duration,
) -> std::time::Duration {
    let period = (resync.as_millis() as u64).max(1);
    // FNV-1a: the same phase for a UID in every process.
    let phase = uid.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    }) % period;
    let into_cycle = (now.as_millis() as u64 % period + phase) % period;
    let mut wait = period - into_cycle;
    if wait < 1000 {
        wait += period;
    }
    std::time::Duration::from_millis(wait)
}

/// One of Paved's own kinds, as the [`prologue`] sees it.
pub trait Reconciled: Resource<DynamicType = ()> + Clone + Send + Sync + 'static {
    type Status: OwnStatus + DeserializeOwned + Clone + Send + Sync + 'static;
    /// The kind, for metrics.
    const KIND: &'static str;
    fn status_mut(&mut self) -> &mut Option<Self::Status>;
    fn status(&self) -> Option<&Self::Status>;
    /// The kind's work queue.
    fn queue(turns: &Turns) -> &Arc<FairQueue<Self>>;
}

macro_rules! reconciled {
    ($($kind:ty => $status:ty, $field:ident),* $(,)?) => {$(
        impl Reconciled for $kind {
            type Status = $status;
            const KIND: &'static str = stringify!($kind);
            fn status_mut(&mut self) -> &mut Option<$status> {
                &mut self.status
            }
            fn status(&self) -> Option<&$status> {
                self.status.as_ref()
            }
            fn queue(turns: &Turns) -> &Arc<FairQueue<Self>> {
                &turns.$field
            }
        }
    )*};
}
reconciled!(
    Service => crate::api::ServiceStatus, services,
    Application => crate::api::ApplicationStatus, applications,
    Environment => crate::api::EnvironmentStatus, environments,
);

/// Where a reconcile goes after the [`prologue`].
pub enum Start<K> {
    /// Reconcile this object: the store's copy, with Paved's own last status
    /// write (and the resourceVersion it left) in place of an older one the
    /// store still shows.
    Reconcile(Arc<K>),
    /// The object is being deleted.
    Deleting(Arc<K>),
    /// Nothing to do: the object's namespace is being deleted (its
    /// Environment is going away).
    Nothing,
}

/// A turn held this long or longer is logged (`paved::turns=debug`; every
/// turn, and every object queued, at `trace`).
const LONG_TURN: std::time::Duration = std::time::Duration::from_secs(2);

/// How the controllers run each reconcile: once the stores are loaded, take
/// a turn (fair between namespaces: [`crate::runtime::fair`]), run `reconcile`
/// and hold the turn until it ends. With no turn free the object is queued and
/// this ends at once: the queue wakes it when its turn comes (the
/// controllers read [`crate::runtime::fair::FairQueue::wakes`]), so nothing
/// waits inside kube-runtime holding an object.
pub async fn in_turn<K, Fut>(
    object: Arc<K>,
    ctx: Arc<Context>,
    reconcile: impl FnOnce(Arc<K>, Arc<Context>) -> Fut,
) -> crate::error::Result<kube::runtime::controller::Action>
where
    K: Reconciled,
    Fut: std::future::Future<Output = crate::error::Result<kube::runtime::controller::Action>>,
{
    use crate::runtime::fair::Turn;
    use kube::runtime::controller::Action;
    if !ctx.stores.wait_until_ready().await {
        return Ok(Action::await_change());
    }
    // What the user asked for and Paved has not acted on yet goes first.
    let urgent = object.meta().deletion_timestamp.is_some()
        || object.status().and_then(|s| s.observed_generation()) != object.meta().generation;
    // Name and namespace only: the queue holds a reference per waiting object
    // (thousands while a converge runs), and needs no version or UID.
    let mut reference = ObjectRef::from_obj(object.as_ref());
    reference.extra = Default::default();
    let permit = match K::queue(&ctx.turns).try_turn(&reference, urgent) {
        Turn::Now(permit) => permit,
        Turn::Queued => {
            log_turn(&reference, "queued", std::time::Duration::ZERO, urgent);
            return Ok(Action::await_change());
        }
        // Shutting down: the next leader reconciles it.
        Turn::Closed => return Ok(Action::await_change()),
    };
    let started = std::time::Instant::now();
    let result = reconcile(object, ctx).await;
    log_turn(&reference, "held", started.elapsed(), urgent);
    drop(permit);
    result
}

fn log_turn<K: Reconciled>(
    object: &ObjectRef<K>,
    what: &str,
    took: std::time::Duration,
    urgent: bool,
) {
    let (kind, ms) = (K::KIND, took.as_millis() as u64);
    let (namespace, name) = (object.namespace.as_deref().unwrap_or(""), &object.name);
    if took >= LONG_TURN {
        tracing::debug!(target: "paved::turns", kind, namespace, name, what, ms, urgent, "long turn");
    } else {
        tracing::trace!(target: "paved::turns", kind, namespace, name, what, ms, urgent, "turn");
    }
}

/// What every reconcile does first, in its turn ([`in_turn`]): start the
/// timer, and sort out deletion and a terminating namespace. Keep the timer
/// for the whole reconcile.
pub fn prologue<'a, K: Reconciled>(
    ctx: &'a Context,
    object: Arc<K>,
) -> (ReconcileTimer<'a>, Start<K>) {
    let timer = ctx.metrics.reconcile_started(K::KIND);
    if object.meta().deletion_timestamp.is_some() {
        return (timer, Start::Deleting(object));
    }
    if let Some(namespace) = object.namespace() {
        if ctx.stores.namespace_terminating(&namespace) {
            return (timer, Start::Nothing);
        }
    }
    let key = status_writer::status_key(object.as_ref());
    let object = match status_writer::newer_status(&ctx.own_writes, &key, object.status()) {
        Some(own) => {
            // The copy as Paved's own write left it: its status, and its version
            // (the precondition of the next status write).
            let mut bridged = (*object).clone();
            *bridged.status_mut() = Some(own.status);
            if own.resource_version.is_some() {
                bridged.meta_mut().resource_version = own.resource_version;
            }
            Arc::new(bridged)
        }
        None => object,
    };
    (timer, Start::Reconcile(object))
}

#[cfg(test)]
mod tests {
    use super::resync_after;
    use std::time::Duration;

    const RESYNC: Duration = Duration::from_secs(600);

    #[test]
    fn objects_reconciled_together_resync_spread_over_the_period() {
        // Ten thousand objects, all reconciled at the same instant (a restart).
        let now = Duration::from_secs(1_764_554_400);
        let mut per_minute = [0usize; 11];
        for n in 0..10_000 {
            let wait = resync_after(RESYNC, &format!("uid-{n}"), now);
            assert!(
                wait >= Duration::from_secs(1) && wait < RESYNC + Duration::from_secs(1),
                "{wait:?}"
            );
            per_minute[(wait.as_secs() / 60) as usize] += 1;
        }
        // About a thousand a minute over the period, not ten thousand at its end.
        for (minute, count) in per_minute[..10].iter().enumerate() {
            assert!((800..1200).contains(count), "minute {minute}: {count}");
        }
    }

    #[test]
    fn an_object_keeps_its_phase_one_period_apart() {
        let start = Duration::from_secs(1_764_554_400);
        let first = resync_after(RESYNC, "uid-a", start);
        assert_eq!(
            resync_after(RESYNC, "uid-a", start),
            first,
            "the same UID, the same phase: a restarted controller keeps it"
        );
        // Reconciled at its slot, the next is one whole period later...
        let at_slot = start + first;
        assert_eq!(resync_after(RESYNC, "uid-a", at_slot), RESYNC);
        // ...woken by an event before its slot, it still resyncs at the slot...
        let before = at_slot - Duration::from_secs(5);
        assert_eq!(
            resync_after(RESYNC, "uid-a", before),
            Duration::from_secs(5)
        );
        // ...unless the slot is less than a second away: then at the next.
        let just_before = at_slot - Duration::from_millis(500);
        assert_eq!(
            resync_after(RESYNC, "uid-a", just_before),
            RESYNC + Duration::from_millis(500)
        );
    }
}
