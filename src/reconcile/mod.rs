//! The reconcilers: thin pipelines over the pure modules.
//!
//! ```text
//! resolve (resolve) → validate (resolve) → build (children) → apply (apply) → status (status)
//! ```
//!
//! Each reconciler reads what it needs from the reflector stores in [`Context`]
//! (no list calls), applies children with server-side apply as `paved`, and
//! writes status only when it differs from what is already there.

pub mod application;
pub mod apply;
pub mod environment;
pub mod preview;
pub mod service;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, Patch};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use crate::api::{Application, Condition, Environment, Service};
use crate::error::{Error, Result};
use crate::names::{actions, annotations, conditions, reasons};
use crate::resolve::Snapshot;
use crate::runtime::metrics::Metrics;

/// Reflector stores: Paved's in-memory view of the cluster.
#[derive(Clone)]
pub struct Stores {
    pub environments: Store<Environment>,
    pub applications: Store<Application>,
    pub services: Store<Service>,
    /// Namespaces labelled `paved.dev/environment`.
    pub namespaces: Store<Namespace>,
    /// Children, labelled `app.kubernetes.io/managed-by=paved`.
    pub deployments: Store<Deployment>,
    pub core_services: Store<CoreService>,
    pub ingresses: Store<Ingress>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    /// Children of Environments (access and guardrails), same label.
    pub role_bindings: Store<RoleBinding>,
    pub resource_quotas: Store<ResourceQuota>,
    pub limit_ranges: Store<LimitRange>,
    pub network_policies: Store<NetworkPolicy>,
    /// Turns true once every store above holds its initial list.
    pub loaded: tokio::sync::watch::Receiver<bool>,
}

/// Opens the gate of [`Stores::wait_until_ready`] once every store is loaded.
///
/// `Store::wait_until_ready` cannot be awaited by many reconciles at once: it is a
/// oneshot that keeps only the last poller's waker, so with a full queue at start-up
/// all but one waiting reconcile were never woken and the controller hung (and so
/// did its graceful shutdown). This single waiter also re-polls every 100 ms, because
/// each controller's runner waits on its own store too and may take that one waker.
pub struct StoresLoaded {
    pub stores: Stores,
    pub gate: tokio::sync::watch::Sender<bool>,
}

impl StoresLoaded {
    pub async fn run(self) {
        let stores = &self.stores;
        macro_rules! load {
            ($($store:ident),* $(,)?) => {$(
                while tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    stores.$store.wait_until_ready(),
                )
                .await
                .is_err()
                {}
            )*};
        }
        load!(
            environments,
            applications,
            services,
            namespaces,
            deployments,
            core_services,
            ingresses,
            autoscalers,
            disruption_budgets,
            role_bindings,
            resource_quotas,
            limit_ranges,
            network_policies,
        );
        tracing::debug!("every store holds its initial list");
        let _ = self.gate.send(true);
    }
}

impl Stores {
    /// Wait until every store has its initial list, so a reconcile never mistakes
    /// "not loaded yet" for "does not exist". Any number of reconciles may wait
    /// at once: they wait on the [`StoresLoaded`] gate, not on the stores.
    /// False when the controllers stop before the stores were loaded: then there
    /// is nothing a reconcile may conclude, and it must do nothing.
    pub async fn wait_until_ready(&self) -> bool {
        let mut loaded = self.loaded.clone();
        loaded.wait_for(|loaded| *loaded).await.is_ok()
    }

    /// Whether `namespace` is being deleted (its Environment is going away):
    /// nothing inside it is worth reconciling or reporting any more.
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&kube::runtime::reflector::ObjectRef::new(namespace))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }

    /// The current [`Snapshot`]; a namespace counts as owned only when it carries
    /// the UID mark of an existing Environment that names it.
    pub fn snapshot(&self) -> Snapshot {
        let environments = self.environments.state();
        let owned_namespaces: BTreeMap<String, String> = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter_map(|ns| {
                let mark = ns.annotations().get(annotations::CREATED_BY_ENVIRONMENT)?;
                let env = environments.iter().find(|e| {
                    e.metadata.uid.as_ref() == Some(mark) && e.namespace_name() == ns.name_any()
                })?;
                Some((ns.name_any(), env.name_any()))
            })
            .collect();
        Snapshot {
            environments,
            applications: self.applications.state(),
            services: self.services.state(),
            owned_namespaces,
        }
    }
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
    pub status_pacer: StatusPacer,
    /// Children Paved just created, until the stores have them.
    pub own_writes: apply::OwnWrites,
}

/// The status of a Paved kind, as far as writing it goes.
pub trait CatalogStatus: serde::Serialize + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn observed_generation(&self) -> Option<i64>;
}

macro_rules! catalog_status {
    ($($status:ty),*) => {$(
        impl CatalogStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
        }
    )*};
}
catalog_status!(
    crate::api::ServiceStatus,
    crate::api::ApplicationStatus,
    crate::api::EnvironmentStatus
);

/// How often a status may be rewritten for progress alone (pod counts, ready
/// counts, messages). A new generation or a condition that changes its status or
/// reason is written at once; progress waits out the rest of the interval, so a
/// busy object costs at most one progress write per interval, not one per event.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// How long Paved trusts its own last status write over the store's copy.
const OWN_WRITE_MEMORY: Duration = Duration::from_secs(10);

/// The status Paved last wrote for each object (by UID) and when: paces progress
/// writes ([`PROGRESS_INTERVAL`]) and bridges the store's lag behind them.
#[derive(Default)]
pub struct StatusPacer {
    written: Mutex<HashMap<String, (Instant, serde_json::Value)>>,
}

impl StatusPacer {
    /// How long a progress-only write must still wait (None: write now).
    fn wait(&self, uid: &str) -> Option<Duration> {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let since = written.get(uid)?.0.elapsed();
        PROGRESS_INTERVAL
            .checked_sub(since)
            .filter(|d| !d.is_zero())
    }

    fn record<S: serde::Serialize>(&self, uid: &str, status: &S) {
        let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        if written.len() >= 4096 {
            written.retain(|_, (at, _)| at.elapsed() < OWN_WRITE_MEMORY);
        }
        let status = serde_json::to_value(status).unwrap_or_default();
        written.insert(uid.to_string(), (Instant::now(), status));
    }

    /// The status Paved wrote in the last [`OWN_WRITE_MEMORY`], when the store's copy
    /// (`seen`) is not it and is not of a newer generation. Paved is the only writer of
    /// its status, so then the store has not caught up yet: an event of a child can
    /// overtake the event of the status write. Starting from the store's copy would
    /// write the same status again (and restart its history with a new timestamp).
    pub fn newer_than<S>(&self, uid: &str, seen: Option<&S>) -> Option<S>
    where
        S: CatalogStatus + serde::de::DeserializeOwned,
    {
        let written = self.written.lock().unwrap_or_else(|e| e.into_inner());
        let (at, value) = written.get(uid)?;
        if at.elapsed() >= OWN_WRITE_MEMORY {
            return None;
        }
        let own: S = serde_json::from_value(value.clone()).ok()?;
        match seen {
            Some(seen) if *seen == own => None,
            Some(seen) if seen.observed_generation() > own.observed_generation() => None,
            _ => Some(own),
        }
    }
}

/// Whether `after` says something new about the object, beyond progress.
fn is_news<S: CatalogStatus>(before: &S, after: &S) -> bool {
    let essence = |status: &S| {
        let mut conditions: Vec<(String, String, String)> = status
            .conditions()
            .iter()
            .map(|c| (c.type_.clone(), c.status.clone(), c.reason.clone()))
            .collect();
        conditions.sort();
        (status.observed_generation(), conditions)
    };
    essence(before) != essence(after)
}

/// What [`write_status`] did.
#[derive(Debug, PartialEq)]
pub enum StatusWrite {
    /// Nothing differs.
    Unchanged,
    Written,
    /// Progress only, written too recently: reconcile again after this long.
    Deferred(Duration),
}

impl StatusWrite {
    /// The requeue to ask for: `otherwise`, or sooner when a write is deferred.
    pub fn requeue(&self, otherwise: Duration) -> Duration {
        match self {
            StatusWrite::Deferred(wait) => (*wait).min(otherwise),
            _ => otherwise,
        }
    }
}

/// Write `status` when it differs from `before`, paced by [`StatusPacer`];
/// publishes an Event on a Ready transition.
///
/// The write is a JSON patch that sets the whole of `status` (`add` replaces an
/// existing member): the same result as a forced server-side apply of it, as
/// Paved is the only writer of status, at a fraction of the API server's cost
/// (no YAML decoding of the body, no field-by-field merge). Status is written
/// about once per Service, so this is a good part of what Paved adds to the
/// children's own cost.
pub async fn write_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    before: &S,
    status: &S,
) -> Result<StatusWrite>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: CatalogStatus,
{
    if before == status {
        return Ok(StatusWrite::Unchanged);
    }
    let uid = object.meta().uid.clone().unwrap_or_default();
    if !is_news(before, status) {
        if let Some(wait) = ctx.status_pacer.wait(&uid) {
            return Ok(StatusWrite::Deferred(wait));
        }
    }
    let value = serde_json::to_value(status).map_err(|source| Error::Serialization {
        object: format!("{} {}", K::kind(&()), object.name_any()),
        source,
    })?;
    let patch = json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
            value,
        },
    )]);
    let name = object.name_any();
    let params = kube::api::PatchParams {
        field_manager: Some(crate::names::FIELD_MANAGER.into()),
        ..Default::default()
    };
    api.patch_status(&name, &params, &Patch::<()>::Json(patch))
        .await
        .map_err(Error::kube(
            "status",
            match object.namespace() {
                Some(namespace) => format!("{} {namespace}/{name}", K::kind(&())),
                None => format!("{} {name}", K::kind(&())),
            },
        ))?;
    ctx.status_pacer.record(&uid, status);
    ctx.metrics.wrote(&format!("{}Status", K::kind(&())));
    publish_on_transition(ctx, object, before.conditions(), status.conditions()).await;
    Ok(StatusWrite::Written)
}

/// Current time as RFC 3339, second precision; only written when a value changes.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
        .to_string()
}

/// Publish an Event when something goes wrong (Ready turns False for a reason that
/// is not routine progress) and when it recovers from that. Routine progress
/// (rolling out, then available) is visible in status and costs no Event write.
pub async fn publish_on_transition<K>(
    ctx: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let ready = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == conditions::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let Some(current) = after.iter().find(|c| c.type_ == conditions::READY) else {
        return;
    };
    if ready(before) == ready(after) {
        return;
    }
    let is_problem = |status: &str, reason: &str| status == "False" && !is_progress(reason);
    let was_problem = ready(before).is_some_and(|(status, reason)| is_problem(&status, &reason));
    let stalled = after.iter().any(|c| c.type_ == conditions::STALLED);
    let type_ = if is_problem(&current.status, &current.reason) {
        EventType::Warning
    } else if was_problem {
        EventType::Normal
    } else {
        return;
    };
    let event = Event {
        type_,
        reason: current.reason.clone(),
        note: Some(truncate(&current.message, 1000)),
        action: if stalled {
            actions::VALIDATE
        } else {
            actions::RECONCILE
        }
        .into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}

/// Reasons that mean "work in flight", not "something is wrong".
fn is_progress(reason: &str) -> bool {
    matches!(
        reason,
        reasons::ROLLING_OUT
            | reasons::PROVISIONING
            | reasons::SERVICES_NOT_READY
            | reasons::STOPPING
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::ServiceStatus;

    fn status(generation: i64, ready: &str, reason: &str, message: &str) -> ServiceStatus {
        ServiceStatus {
            observed_generation: Some(generation),
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: ready.into(),
                reason: reason.into(),
                message: message.into(),
                last_transition_time: None,
                observed_generation: Some(generation),
            }],
            ..ServiceStatus::default()
        }
    }

    #[test]
    fn progress_is_not_news_but_a_generation_or_a_condition_change_is() {
        let rolling = status(1, "False", "RollingOut", "0 of 1 pods updated");
        let further = status(1, "False", "RollingOut", "1 of 1 pods updated");
        assert!(!is_news(&rolling, &further));
        assert!(is_news(&rolling, &status(2, "False", "RollingOut", "")));
        assert!(is_news(&rolling, &status(1, "True", "Available", "")));
        assert!(is_news(
            &rolling,
            &status(1, "False", "ImagePullFailed", "")
        ));
    }

    #[test]
    fn the_pacer_defers_only_within_the_interval_after_a_write() {
        let pacer = StatusPacer::default();
        assert_eq!(pacer.wait("uid-a"), None, "never written: write now");
        pacer.record("uid-a", &status(1, "False", "RollingOut", ""));
        let wait = pacer.wait("uid-a").expect("just written: wait");
        assert!(wait <= PROGRESS_INTERVAL && wait > Duration::ZERO);
        assert_eq!(pacer.wait("uid-b"), None, "another object is not held back");
    }

    /// Many reconciles waiting at once all go on once every store is loaded (with
    /// kube-runtime's `Store::wait_until_ready` only the last waiter was woken).
    #[tokio::test]
    async fn every_waiting_reconcile_goes_on_once_the_stores_are_loaded() {
        use futures::StreamExt;
        use kube::runtime::reflector::store;
        use kube::runtime::watcher::Event;

        let (environments, mut w1) = store::<Environment>();
        let (applications, mut w2) = store::<Application>();
        let (services, mut w3) = store::<Service>();
        let (namespaces, mut w4) = store();
        let (deployments, mut w5) = store();
        let (core_services, mut w6) = store();
        let (ingresses, mut w7) = store();
        let (autoscalers, mut w8) = store();
        let (disruption_budgets, mut w9) = store();
        let (role_bindings, mut w10) = store();
        let (resource_quotas, mut w11) = store();
        let (limit_ranges, mut w12) = store();
        let (network_policies, mut w13) = store();
        let (gate, loaded) = tokio::sync::watch::channel(false);
        let stores = Stores {
            environments,
            applications,
            services,
            namespaces,
            deployments,
            core_services,
            ingresses,
            autoscalers,
            disruption_budgets,
            role_bindings,
            resource_quotas,
            limit_ranges,
            network_policies,
            loaded,
        };
        let opener = tokio::spawn(
            StoresLoaded {
                stores: stores.clone(),
                gate,
            }
            .run(),
        );
        // 50 waiters in one FuturesUnordered, like a controller's runner slots.
        let mut waiters: futures::stream::FuturesUnordered<_> = (0..50)
            .map(|_| {
                let stores = stores.clone();
                async move { stores.wait_until_ready().await }
            })
            .collect();
        let early = tokio::time::timeout(Duration::from_millis(200), waiters.next()).await;
        assert!(
            early.is_err(),
            "nobody may go on before the stores are loaded"
        );

        w1.apply_watcher_event(&Event::InitDone);
        w2.apply_watcher_event(&Event::InitDone);
        w3.apply_watcher_event(&Event::InitDone);
        w4.apply_watcher_event(&Event::InitDone);
        w5.apply_watcher_event(&Event::InitDone);
        w6.apply_watcher_event(&Event::InitDone);
        w7.apply_watcher_event(&Event::InitDone);
        w8.apply_watcher_event(&Event::InitDone);
        w9.apply_watcher_event(&Event::InitDone);
        w10.apply_watcher_event(&Event::InitDone);
        w11.apply_watcher_event(&Event::InitDone);
        w12.apply_watcher_event(&Event::InitDone);
        w13.apply_watcher_event(&Event::InitDone);
        let woken: Vec<bool> = tokio::time::timeout(Duration::from_secs(5), waiters.collect())
            .await
            .expect("every waiter woken");
        assert_eq!(woken, vec![true; 50]);
        opener.await.unwrap();
    }

    #[test]
    fn a_store_behind_its_own_last_write_is_bridged_by_that_write() {
        let pacer = StatusPacer::default();
        let written = status(1, "False", "RollingOut", "0 of 1 pods updated");
        pacer.record("uid-a", &written);
        // The store has not seen the write yet: no status, or an older one.
        assert_eq!(
            pacer.newer_than::<ServiceStatus>("uid-a", None),
            Some(written.clone())
        );
        let older = status(0, "False", "RollingOut", "");
        assert_eq!(
            pacer.newer_than("uid-a", Some(&older)),
            Some(written.clone())
        );
        // Caught up, or a newer generation seen: the store is right.
        assert_eq!(pacer.newer_than("uid-a", Some(&written)), None);
        let newer = status(2, "False", "RollingOut", "");
        assert_eq!(pacer.newer_than("uid-a", Some(&newer)), None);
        assert_eq!(pacer.newer_than::<ServiceStatus>("uid-b", None), None);
    }

    #[test]
    fn a_deferred_write_asks_for_the_sooner_requeue() {
        let deferred = StatusWrite::Deferred(Duration::from_secs(1));
        assert_eq!(
            deferred.requeue(Duration::from_secs(600)),
            Duration::from_secs(1)
        );
        assert_eq!(
            StatusWrite::Written.requeue(Duration::from_secs(600)),
            Duration::from_secs(600)
        );
    }
}
