//! Writing the status of Paved's own kinds: only when it differs, progress paced,
//! bridged over the store's lag behind Paved's own last write (the one own-write
//! memory of [`super::converge::OwnWrites`]), an Event on a Ready transition.
//!
//! Every status write carries the resourceVersion of the copy it was computed
//! from, so the API server refuses it (409) once the object has changed since:
//! a stale writer (a paused old leader, a request held up in the network) never
//! overwrites a newer status. A bridged copy computes from Paved's own last
//! write, so it carries the resourceVersion that write returned. A refused
//! write is no error: the reconcile looks again in [`CONFLICT_RETRY`], from the
//! store's fresh copy.

use std::time::Duration;

use kube::api::{Api, Patch};
use kube::{Resource, ResourceExt};

use super::Context;
use super::converge::{OWN_WRITE_MEMORY, ObjectKey, OwnWrites};
use super::events::publish_on_transition;
use crate::api::Condition;
use crate::error::{Error, Result};

/// The status of a Paved kind, as far as writing it goes.
pub trait OwnStatus: serde::Serialize + PartialEq {
    fn conditions(&self) -> &[Condition];
    fn observed_generation(&self) -> Option<i64>;
}

macro_rules! own_status {
    ($($status:ty),*) => {$(
        impl OwnStatus for $status {
            fn conditions(&self) -> &[Condition] {
                &self.conditions
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
        }
    )*};
}
own_status!(
    crate::api::ServiceStatus,
    crate::api::ApplicationStatus,
    crate::api::EnvironmentStatus
);

/// How often a status may be rewritten for progress alone (pod counts, ready
/// counts, messages). A new generation or a condition that changes its status or
/// reason is written at once; progress waits out the rest of the interval, so a
/// busy object costs at most one progress write per interval, not one per event.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// Progress writes per second that all Applications together may make, and all
/// Environments together: each summarises many Services in a large status (every
/// Service by name), so during a rollout across many Environments one progress
/// write per object per [`PROGRESS_INTERVAL`] would cost the API server more than
/// the Services themselves (at 100 Environments, 100 writes of 10 KiB a second).
/// With more objects of the kind than this rate fills in a [`PROGRESS_INTERVAL`],
/// each waits longer between progress writes; news is written at once all the same.
pub const AGGREGATE_PROGRESS_PER_SECOND: f64 = 2.0;

/// Progress writes per second that all Services rolling out (`Reconciling=True`)
/// together may make, beyond a burst of [`SERVICE_PROGRESS_BURST`]: one Service rolling out shows its pod
/// counts every [`PROGRESS_INTERVAL`], but when thousands roll out at once (a
/// fresh cluster, a base image bumped everywhere), their progress writes would
/// double the status writes and delay everyone's news. Out of budget, a
/// progress write waits [`PROGRESS_OUT_OF_BUDGET`] (or the next event);
/// news is written at once all the same.
pub const SERVICE_PROGRESS_PER_SECOND: f64 = 5.0;
pub const SERVICE_PROGRESS_BURST: f64 = 20.0;
pub const PROGRESS_OUT_OF_BUDGET: Duration = Duration::from_secs(30);

/// The token bucket of Services' progress writes ([`SERVICE_PROGRESS_PER_SECOND`]).
pub struct ProgressBudget {
    bucket: std::sync::Mutex<(f64, std::time::Instant)>,
}

impl Default for ProgressBudget {
    fn default() -> Self {
        ProgressBudget {
            bucket: std::sync::Mutex::new((SERVICE_PROGRESS_BURST, std::time::Instant::now())),
        }
    }
}

impl ProgressBudget {
    /// Takes one progress write from the budget at `now`; false when it is spent.
    pub fn take(&self, now: std::time::Instant) -> bool {
        let mut bucket = self.bucket.lock().unwrap_or_else(|e| e.into_inner());
        let (tokens, at) = *bucket;
        let refilled = (tokens
            + now.saturating_duration_since(at).as_secs_f64() * SERVICE_PROGRESS_PER_SECOND)
            .min(SERVICE_PROGRESS_BURST);
        let taken = refilled >= 1.0;
        *bucket = (if taken { refilled - 1.0 } else { refilled }, now.max(at));
        taken
    }
}

/// How long an object of a kind with `peers` objects waits between progress
/// writes: [`PROGRESS_INTERVAL`] for a Service; for an aggregate kind (`peers`
/// given), long enough that all of them together stay within
/// [`AGGREGATE_PROGRESS_PER_SECOND`].
pub fn progress_interval(peers: Option<usize>) -> Duration {
    let shared = peers.map_or(Duration::ZERO, |n| {
        Duration::from_secs_f64(n as f64 / AGGREGATE_PROGRESS_PER_SECOND)
    });
    PROGRESS_INTERVAL.max(shared)
}

/// [`progress_interval`] of an object of kind `K`: Applications and
/// Environments share their kind's budget, each Service has its own.
fn interval_of<K: Resource<DynamicType = ()>>(ctx: &Context) -> Duration {
    let peers = match K::kind(&()).as_ref() {
        "Application" => Some(ctx.stores.applications.len()),
        "Environment" => Some(ctx.stores.environments.len()),
        _ => None,
    };
    progress_interval(peers)
}

/// How long [`write_status`] defers `status` (None: it writes it now, or finds
/// nothing to write), judged on the part of it that can be news: its
/// conditions and observed generation. Progress waits out the object's
/// [`progress_interval`] and, for a Service rolling out, takes one write from
/// the shared [`ProgressBudget`] (so call this once per write it allows).
///
/// [`write_status`] asks this, and so does an aggregate before it computes the
/// costly rest of its status (scorecard, usage, cost, delivery over every
/// Service), which is progress and nothing else: while a write is deferred, a
/// reconcile woken by each Service event would compute it for nothing.
pub fn deferred<K, S>(ctx: &Context, object: &K, before: &S, status: &S) -> Option<Duration>
where
    K: Resource<DynamicType = ()>,
    S: OwnStatus + Clone + Send + Sync + 'static,
{
    if is_news(before, status) {
        return None;
    }
    let paced = progress_wait::<S>(&ctx.own_writes, &status_key(object), interval_of::<K>(ctx));
    // A rollout's progress also shares a budget across Services (aggregates
    // pace by their count); other progress (usage figures) does not.
    let wait = paced.or_else(|| {
        (K::kind(&()) == "Service"
            && rolling_out(status)
            && !ctx.progress_budget.take(std::time::Instant::now()))
        .then_some(PROGRESS_OUT_OF_BUDGET)
    })?;
    ctx.metrics.progress_deferred(&K::kind(&()));
    Some(wait)
}

/// How soon a reconcile whose status write was refused as stale looks again:
/// long enough for the store to receive the newer object.
pub const CONFLICT_RETRY: Duration = Duration::from_secs(1);

/// A status Paved wrote, and the resourceVersion the API server gave the object
/// for it: the copy a reconcile bridged to this status stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct WrittenStatus<S> {
    pub status: S,
    pub resource_version: Option<String>,
}

/// The key of an object's status in the own-write memory: by UID, so a new
/// object of the same name never inherits what Paved wrote for an old one.
pub fn status_key<K: Resource<DynamicType = ()>>(object: &K) -> ObjectKey {
    status_key_of::<K>(object.meta().uid.as_deref().unwrap_or_default())
}

fn status_key_of<K: Resource<DynamicType = ()>>(uid: &str) -> ObjectKey {
    ObjectKey {
        kind: format!("{}Status", K::kind(&())),
        namespace: None,
        name: uid.to_string(),
    }
}

/// How long a progress-only write must still wait (None: write now): paces
/// progress writes to one per `interval` ([`progress_interval`]).
fn progress_wait<S: Send + Sync + 'static>(
    own: &OwnWrites,
    key: &ObjectKey,
    interval: Duration,
) -> Option<Duration> {
    let (since, _) = own.last::<WrittenStatus<S>>(key)?;
    interval.checked_sub(since).filter(|d| !d.is_zero())
}

/// The status Paved wrote in the last [`OWN_WRITE_MEMORY`], when the store's copy
/// (`seen`) is not it and is not of a newer generation. Paved is the only writer of
/// its status, so then the store has not caught up yet: an event of a child can
/// overtake the event of the status write. Starting from the store's copy would
/// write the same status again (and restart its history with a new timestamp).
///
/// Should the store's copy be newer after all (another writer's status), the
/// bridged copy's resourceVersion is then stale: its write is refused, which
/// drops the bridge, and the next reconcile starts from the store.
pub fn newer_status<S>(
    own: &OwnWrites,
    key: &ObjectKey,
    seen: Option<&S>,
) -> Option<WrittenStatus<S>>
where
    S: OwnStatus + Clone + Send + Sync + 'static,
{
    let (since, written) = own.last::<WrittenStatus<S>>(key)?;
    if since >= OWN_WRITE_MEMORY {
        return None;
    }
    match seen {
        Some(seen) if *seen == written.status => None,
        Some(seen) if seen.observed_generation() > written.status.observed_generation() => None,
        _ => Some((*written).clone()),
    }
}

/// Whether `after` says something new about the object, beyond progress.
fn is_news<S: OwnStatus>(before: &S, after: &S) -> bool {
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

/// The top-level members of the status that differ (for the debug log of a write).
fn changed_members<S: serde::Serialize>(before: &S, after: &S) -> Vec<String> {
    let members = |status: &S| match serde_json::to_value(status) {
        Ok(serde_json::Value::Object(map)) => map,
        _ => serde_json::Map::new(),
    };
    let (before, after) = (members(before), members(after));
    let mut keys: Vec<String> = before.keys().chain(after.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    keys.retain(|key| before.get(key) != after.get(key));
    keys
}

/// Whether the status says a rollout is under way (`Reconciling=True`).
fn rolling_out<S: OwnStatus>(status: &S) -> bool {
    status
        .conditions()
        .iter()
        .any(|c| c.type_ == crate::names::conditions::RECONCILING && c.status == "True")
}

/// What [`write_status`] did.
#[derive(Debug, PartialEq)]
pub enum StatusWrite {
    /// Nothing differs.
    Unchanged,
    Written,
    /// Progress only, written too recently: reconcile again after this long.
    Deferred(Duration),
    /// Refused (409): the object changed after the copy the status was computed
    /// from. Reconcile again in [`CONFLICT_RETRY`].
    Stale,
}

impl StatusWrite {
    /// The requeue to ask for: `otherwise`, or sooner when a write is deferred.
    pub fn requeue(&self, otherwise: Duration) -> Duration {
        match self {
            StatusWrite::Deferred(wait) => (*wait).min(otherwise),
            StatusWrite::Stale => CONFLICT_RETRY.min(otherwise),
            _ => otherwise,
        }
    }
}

/// The status write: a JSON patch that sets the whole of `status` (`add`
/// replaces an existing member), the same result as a forced server-side apply
/// of it, as Paved is the only writer of status, at a fraction of the API
/// server's cost (no YAML decoding of the body, no field-by-field merge).
///
/// With the `resource_version` of the copy it was computed from, the patch sets
/// `metadata.resourceVersion` too, which makes it conditional: the API server
/// refuses it with 409 Conflict unless the object is still at that version
/// (a `test` operation would fail with an unspecific 422 instead).
fn status_patch(status: serde_json::Value, resource_version: Option<&str>) -> json_patch::Patch {
    let add = |tokens: &[&str], value| {
        json_patch::PatchOperation::Add(json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(tokens.iter().copied()),
            value,
        })
    };
    let precondition =
        resource_version.map(|version| add(&["metadata", "resourceVersion"], version.into()));
    json_patch::Patch(
        precondition
            .into_iter()
            .chain([add(&["status"], status)])
            .collect(),
    )
}

/// Write `status` when it differs from `before`, paced by [`PROGRESS_INTERVAL`],
/// on the condition that `object` is still at the resourceVersion it was read
/// at; publishes an Event on a Ready transition. Status is written about once
/// per Service, so this is a good part of what Paved adds to the children's own
/// cost.
pub async fn write_status<K, S>(
    ctx: &Context,
    api: &Api<K>,
    object: &K,
    before: &S,
    status: &S,
) -> Result<StatusWrite>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
    S: OwnStatus + Clone + Send + Sync + 'static,
{
    if before == status {
        return Ok(StatusWrite::Unchanged);
    }
    if let Some(wait) = deferred(ctx, object, before, status) {
        return Ok(StatusWrite::Deferred(wait));
    }
    let key = status_key(object);
    let value = serde_json::to_value(status).map_err(|source| Error::Serialization {
        object: format!("{} {}", K::kind(&()), object.name_any()),
        source,
    })?;
    let patch = status_patch(value, object.meta().resource_version.as_deref());
    let name = object.name_any();
    let described = match object.namespace() {
        Some(namespace) => format!("{} {namespace}/{name}", K::kind(&())),
        None => format!("{} {name}", K::kind(&())),
    };
    let params = kube::api::PatchParams {
        field_manager: Some(crate::names::FIELD_MANAGER.into()),
        ..Default::default()
    };
    let written = match api
        .patch_status(&name, &params, &Patch::<()>::Json(patch))
        .await
    {
        Ok(written) => written,
        Err(kube::Error::Api(refusal)) if refusal.code == 409 => {
            // Whatever the bridge held is older than the object now: start over
            // from the store.
            ctx.own_writes.forget(&key);
            ctx.metrics.status_conflict(&K::kind(&()));
            tracing::info!(
                object = %described,
                read_at = object.meta().resource_version.as_deref().unwrap_or_default(),
                retry_in_ms = CONFLICT_RETRY.as_millis() as u64,
                "status not written: the object changed after the copy it was computed from"
            );
            return Ok(StatusWrite::Stale);
        }
        Err(source) => return Err(Error::kube("status", described)(source)),
    };
    ctx.own_writes.remember_for(
        key,
        WrittenStatus {
            status: status.clone(),
            resource_version: written.meta().resource_version.clone(),
        },
        // Kept as long as the next progress write waits.
        interval_of::<K>(ctx),
    );
    ctx.metrics.wrote(&format!("{}Status", K::kind(&())));
    // Its fields are computed only when debug is on (the macro checks first).
    tracing::debug!(
        object = %described,
        news = is_news(before, status),
        changed = %changed_members(before, status).join(","),
        conditions = %status
            .conditions()
            .iter()
            .map(|c| format!("{}={}/{}", c.type_, c.status, c.reason))
            .collect::<Vec<_>>()
            .join(","),
        "status written"
    );
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Service, ServiceStatus};

    fn key(uid: &str) -> ObjectKey {
        status_key_of::<Service>(uid)
    }

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
    fn progress_is_deferred_only_within_the_interval_after_a_write() {
        let own = OwnWrites::default();
        let (a, b) = (key("uid-a"), key("uid-b"));
        assert_eq!(
            progress_wait::<ServiceStatus>(&own, &a, PROGRESS_INTERVAL),
            None,
            "never written: write now"
        );
        own.remember(
            a.clone(),
            written(status(1, "False", "RollingOut", ""), "7"),
        );
        let wait = progress_wait::<ServiceStatus>(&own, &a, PROGRESS_INTERVAL)
            .expect("just written: wait");
        assert!(wait <= PROGRESS_INTERVAL && wait > Duration::ZERO);
        let longer = progress_wait::<ServiceStatus>(&own, &a, Duration::from_secs(50))
            .expect("just written: wait");
        assert!(longer > PROGRESS_INTERVAL && longer <= Duration::from_secs(50));
        assert_eq!(
            progress_wait::<ServiceStatus>(&own, &b, PROGRESS_INTERVAL),
            None,
            "another object is not held back"
        );
    }

    #[test]
    fn aggregates_share_a_budget_of_progress_writes_and_services_do_not() {
        assert_eq!(progress_interval(None), PROGRESS_INTERVAL);
        // A few Applications: each as often as a Service.
        assert_eq!(progress_interval(Some(1)), PROGRESS_INTERVAL);
        assert_eq!(progress_interval(Some(4)), PROGRESS_INTERVAL);
        // Many: all of them together at AGGREGATE_PROGRESS_PER_SECOND.
        for n in [10, 100, 1000] {
            let interval = progress_interval(Some(n));
            let per_second = n as f64 / interval.as_secs_f64();
            assert!(
                (per_second - AGGREGATE_PROGRESS_PER_SECOND).abs() < 1e-9,
                "{n} objects: {per_second} progress writes a second"
            );
        }
    }

    #[test]
    fn only_a_rollout_draws_on_the_budget() {
        let mut rolling = status(1, "False", "RollingOut", "0 of 1 pods updated");
        rolling.conditions.push(Condition {
            type_: "Reconciling".into(),
            status: "True".into(),
            ..rolling.conditions[0].clone()
        });
        assert!(rolling_out(&rolling));
        // Ready, its usage figures moving: not a rollout.
        assert!(!rolling_out(&status(
            1,
            "True",
            "Available",
            "1 of 1 pods available"
        )));
    }

    #[test]
    fn services_progress_writes_share_a_token_bucket() {
        let budget = ProgressBudget::default();
        let start = std::time::Instant::now();
        let burst = (0..100).filter(|_| budget.take(start)).count();
        assert_eq!(burst, SERVICE_PROGRESS_BURST as usize, "a burst, then none");
        assert!(!budget.take(start + Duration::from_millis(100)));
        // One second later: the rate's worth again, and no more.
        let later = start + Duration::from_secs(1);
        let refilled = (0..100).filter(|_| budget.take(later)).count();
        assert_eq!(refilled, SERVICE_PROGRESS_PER_SECOND as usize);
        // A long quiet refills the burst, not more.
        let quiet = later + Duration::from_secs(3600);
        assert_eq!(
            (0..100).filter(|_| budget.take(quiet)).count(),
            SERVICE_PROGRESS_BURST as usize
        );
    }

    #[test]
    fn a_store_behind_its_own_last_write_is_bridged_by_that_write() {
        let own = OwnWrites::default();
        let (a, b) = (key("uid-a"), key("uid-b"));
        let status_written = status(1, "False", "RollingOut", "0 of 1 pods updated");
        let written = written(status_written.clone(), "7");
        own.remember(a.clone(), written.clone());
        // The store has not seen the write yet: no status, or an older one. The
        // bridged copy stands for the object as the write left it (version 7).
        assert_eq!(
            newer_status::<ServiceStatus>(&own, &a, None),
            Some(written.clone())
        );
        let older = status(0, "False", "RollingOut", "");
        assert_eq!(newer_status(&own, &a, Some(&older)), Some(written.clone()));
        // Caught up, or a newer generation seen: the store is right.
        assert_eq!(newer_status(&own, &a, Some(&status_written)), None);
        let newer = status(2, "False", "RollingOut", "");
        assert_eq!(newer_status(&own, &a, Some(&newer)), None);
        assert_eq!(newer_status::<ServiceStatus>(&own, &b, None), None);
    }

    fn written(status: ServiceStatus, resource_version: &str) -> WrittenStatus<ServiceStatus> {
        WrittenStatus {
            status,
            resource_version: Some(resource_version.into()),
        }
    }

    #[test]
    fn a_status_write_is_conditional_on_the_resource_version_it_was_computed_from() {
        let status = serde_json::json!({"observedGeneration": 3});
        let patch = serde_json::to_value(status_patch(status.clone(), Some("4711"))).unwrap();
        assert_eq!(
            patch,
            serde_json::json!([
                {"op": "add", "path": "/metadata/resourceVersion", "value": "4711"},
                {"op": "add", "path": "/status", "value": {"observedGeneration": 3}},
            ])
        );
        // Applied to the object as the API server holds it, the patch keeps the
        // version it was computed from: the server refuses it (409) when that is
        // no longer the object's.
        let mut moved_on = serde_json::json!({"metadata": {"resourceVersion": "4712"}, "status": {"observedGeneration": 4}});
        json_patch::patch(&mut moved_on, &status_patch(status.clone(), Some("4711"))).unwrap();
        assert_eq!(moved_on["metadata"]["resourceVersion"], "4711");
        assert_eq!(moved_on["status"], status);
        // A copy without a version (never one from the API server) writes unconditionally.
        let unconditional = serde_json::to_value(status_patch(status, None)).unwrap();
        assert_eq!(unconditional.as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_refused_stale_write_looks_again_within_a_second() {
        assert_eq!(
            StatusWrite::Stale.requeue(Duration::from_secs(600)),
            CONFLICT_RETRY
        );
        assert!(CONFLICT_RETRY <= Duration::from_secs(1));
        assert_eq!(
            StatusWrite::Stale.requeue(Duration::from_millis(200)),
            Duration::from_millis(200)
        );
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
