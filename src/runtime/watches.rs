//! Watch streams that recover on their own, each at its own pace.
//!
//! kube-runtime's `Controller` merges its trigger streams and applies one
//! backoff to the merged stream: each watch error pauses every watch, growing to
//! 30 s. After an API server restart about a dozen watches relist in turn, so
//! changes waited for minutes. Here every watch has its own short backoff, and
//! its errors stop at the watch: they are counted
//! (`paved_watch_errors_total{resource}`), logged at WARN, and a watch whose last
//! attempt failed counts in `paved_watches_failing` (so `/readyz` says not
//! ready) until it delivers again. The merged stream never sees an error.
//!
//! Each watch counts in `paved_watches{resource}` while its stream lives, and
//! each full list it makes (at start, and after losing its place: 410 Gone) in
//! `paved_watch_relists_total{resource}`: on a large cluster a relist is what
//! a watch restart costs.
//!
//! Until its first list is through (`InitDone`), a watch counts in
//! `paved_watches_listing`: the leader's `/readyz` says ready only once every
//! store it reconciles from is complete, so "ready" after a restart means
//! "working from a full picture", not "the process runs". A standby holds no
//! watch and stays ready. A relist after 410 Gone does not count again: the
//! store is complete meanwhile (the old picture until the new one replaces it).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use kube::Resource;
use kube::api::Api;
use kube::runtime::utils::Backoff;
use kube::runtime::{WatchStreamExt, watcher};
use serde::de::DeserializeOwned;

use super::metrics::Metrics;

/// A watch of `api`, retried with [`WatchBackoff`]; errors are counted and dropped.
pub fn watch<K>(
    api: Api<K>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + use<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let resource = resource_name::<K>();
    metrics.watches_held(&resource, 1);
    metrics.watches_listing(1);
    let state = Arc::new(WatchState {
        metrics: metrics.clone(),
        resource,
        failing: AtomicBool::new(false),
        listing: AtomicBool::new(true),
        started: Instant::now(),
        listed_objects: AtomicUsize::new(0),
    });
    // Lists served whole from the API server's watch cache (resourceVersion
    // 0), as client-go's informers do, and decoded as they arrive: a start or
    // a relist of thousands of objects costs no read of etcd; the watch then
    // brings whatever changed since (see [`super::list_watch`]).
    super::list_watch::list_watch(api, config)
        .backoff(WatchBackoff::default())
        .filter_map(move |event| {
            let state = state.clone();
            async move {
                match event {
                    Ok(event) => {
                        state.flowing();
                        match event {
                            watcher::Event::Init => state.metrics.watch_relisted(&state.resource),
                            watcher::Event::InitApply(_) => state.one_listed(),
                            watcher::Event::InitDone => state.listed(),
                            _ => {}
                        }
                        Some(Ok(event))
                    }
                    Err(error) => {
                        state.failed(&error);
                        None
                    }
                }
            }
        })
}

/// The resource a watch of `K` reads, as `kubectl get` names it: the plural,
/// then the group unless it is the core group (`deployments.apps`,
/// `services.paved.dev`, `services`). The kind alone would not tell Paved's
/// Services from the core ones, which have their own watch.
pub fn resource_name<K>() -> String
where
    K: Resource,
    K::DynamicType: Default,
{
    let dynamic = K::DynamicType::default();
    let (plural, group) = (K::plural(&dynamic), K::group(&dynamic));
    if group.is_empty() {
        plural.into_owned()
    } else {
        format!("{plural}.{group}")
    }
}

struct WatchState {
    metrics: Arc<Metrics>,
    resource: String,
    failing: AtomicBool,
    /// Not through its first list yet.
    listing: AtomicBool,
    /// When the watch started, and the objects its first list has brought so
    /// far: logged once it is through (what a restart waits for).
    started: Instant,
    listed_objects: AtomicUsize,
}

impl WatchState {
    fn failed(&self, error: &watcher::Error) {
        self.metrics.watch_failed(&self.resource);
        tracing::warn!(resource = %self.resource, %error, "watch failed; retrying");
        if !self.failing.swap(true, Ordering::Relaxed) {
            self.metrics.watches_failing(1);
        }
    }

    fn one_listed(&self) {
        if self.listing.load(Ordering::Relaxed)
            && self.listed_objects.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::debug!(
                resource = %self.resource,
                seconds = format!("{:.2}", self.started.elapsed().as_secs_f64()),
                "watch's first listed object"
            );
        }
    }

    fn listed(&self) {
        if self.listing.swap(false, Ordering::Relaxed) {
            self.metrics.watches_listing(-1);
            tracing::info!(
                resource = %self.resource,
                objects = self.listed_objects.load(Ordering::Relaxed),
                seconds = format!("{:.2}", self.started.elapsed().as_secs_f64()),
                "watch listed"
            );
        }
    }

    fn flowing(&self) {
        if self.failing.swap(false, Ordering::Relaxed) {
            self.metrics.watches_failing(-1);
            tracing::info!(resource = %self.resource, "watch recovered");
        }
    }
}

impl Drop for WatchState {
    fn drop(&mut self) {
        self.metrics.watches_held(&self.resource, -1);
        if *self.failing.get_mut() {
            self.metrics.watches_failing(-1);
        }
        if *self.listing.get_mut() {
            self.metrics.watches_listing(-1);
        }
    }
}

/// Exponential from 200 ms to 4 s with up to 25 % jitter, reset by any event:
/// a watch retries within seconds of the API server's return.
#[derive(Debug)]
pub struct WatchBackoff {
    next: Duration,
}

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(4);

impl Default for WatchBackoff {
    fn default() -> Self {
        WatchBackoff { next: FIRST_RETRY }
    }
}

impl Iterator for WatchBackoff {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let delay = self.next;
        self.next = (delay * 2).min(LONGEST_RETRY);
        let noise = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.subsec_nanos() % 256)
            .unwrap_or(0);
        Some(delay + delay * noise / 1024)
    }
}

impl Backoff for WatchBackoff {
    fn reset(&mut self) {
        self.next = FIRST_RETRY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client whose API server lists no ConfigMaps and ends every watch at
    /// once with 410 Gone, so the watcher must list again each time.
    fn client_whose_watches_lose_their_place() -> kube::Client {
        use kube::client::Body;
        let service = tower::service_fn(|request: http::Request<Body>| async move {
            let watching = request
                .uri()
                .query()
                .is_some_and(|q| q.contains("watch=true"));
            let body = if watching {
                r#"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#.to_string() + "\n"
            } else {
                r#"{"kind":"ConfigMapList","apiVersion":"v1","metadata":{"resourceVersion":"7"},"items":[]}"#.to_string()
            };
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::from(body.into_bytes())))
        });
        kube::Client::new(service, "default")
    }

    #[test]
    fn a_watch_is_named_by_its_resource_so_paved_services_and_core_services_differ() {
        use crate::slim::Slim;
        use k8s_openapi::api::apps::v1::Deployment;
        use k8s_openapi::api::core::v1::{Secret, Service as CoreService};
        use kube::core::PartialObjectMeta;
        assert_eq!(resource_name::<crate::api::Service>(), "services.paved.dev");
        assert_eq!(resource_name::<Slim<CoreService>>(), "services");
        assert_eq!(resource_name::<Slim<Deployment>>(), "deployments.apps");
        assert_eq!(resource_name::<PartialObjectMeta<Secret>>(), "secrets");
    }

    #[tokio::test]
    async fn a_watch_counts_as_held_while_it_lives_and_each_list_after_a_410_as_a_relist() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let metrics = Arc::new(Metrics::default());
        let api = Api::<ConfigMap>::all(client_whose_watches_lose_their_place());
        let mut stream = Box::pin(watch(api, watcher::Config::default(), &metrics));
        let mut lists = 0;
        while lists < 3 {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the watch lists again within its backoff")
                .expect("the stream goes on");
            if matches!(event, Ok(watcher::Event::Init)) {
                lists += 1;
            }
        }
        let text = metrics.encode();
        assert!(
            text.contains("paved_watches{resource=\"configmaps\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("paved_watch_relists_total{resource=\"configmaps\"} 3"),
            "{text}"
        );
        drop(stream);
        let text = metrics.encode();
        assert!(
            text.contains("paved_watches{resource=\"configmaps\"} 0"),
            "{text}"
        );
    }

    /// A client whose API server refuses every request (500).
    fn client_that_always_fails() -> kube::Client {
        use kube::client::Body;
        let service = tower::service_fn(|_request: http::Request<Body>| async move {
            let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"down","reason":"InternalError","code":500}"#;
            let mut response = http::Response::new(Body::from(body.as_bytes().to_vec()));
            *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
            Ok::<_, std::convert::Infallible>(response)
        });
        kube::Client::new(service, "default")
    }

    #[tokio::test]
    async fn a_watch_counts_as_listing_until_its_first_list_is_through_and_not_on_a_relist() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let metrics = Arc::new(Metrics::default());
        let api = Api::<ConfigMap>::all(client_whose_watches_lose_their_place());
        let mut stream = Box::pin(watch(api, watcher::Config::default(), &metrics));
        assert_eq!(metrics.listing_watches(), 1, "listing from the start");
        let mut lists_done = 0;
        while lists_done < 3 {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("the watch lists within its backoff")
                .expect("the stream goes on");
            match event {
                Ok(watcher::Event::InitDone) => lists_done += 1,
                // Relists after 410 Gone: the store stays complete meanwhile.
                Ok(watcher::Event::Init) if lists_done > 0 => {
                    assert_eq!(metrics.listing_watches(), 0, "a relist counted again");
                }
                Ok(watcher::Event::Init) => assert_eq!(metrics.listing_watches(), 1),
                _ => {}
            }
            if lists_done > 0 {
                assert_eq!(metrics.listing_watches(), 0);
            }
        }
        drop(stream);
        assert_eq!(metrics.listing_watches(), 0, "dropped after listing");
    }

    #[tokio::test]
    async fn a_watch_that_cannot_list_stays_listing_and_failing_until_it_is_dropped() {
        use k8s_openapi::api::core::v1::ConfigMap;
        let metrics = Arc::new(Metrics::default());
        let api = Api::<ConfigMap>::all(client_that_always_fails());
        let mut stream = Box::pin(watch(api, watcher::Config::default(), &metrics));
        // Errors are dropped by the wrapper: at most the list's start (Init) comes out.
        let deadline = tokio::time::Instant::now() + Duration::from_millis(1500);
        while let Ok(event) = tokio::time::timeout_at(deadline, stream.next()).await {
            assert!(
                matches!(event, Some(Ok(watcher::Event::Init))),
                "a failing list delivered {event:?}"
            );
        }
        assert_eq!(metrics.listing_watches(), 1);
        assert_eq!(metrics.failing_watches(), 1);
        drop(stream);
        assert_eq!(metrics.listing_watches(), 0);
        assert_eq!(metrics.failing_watches(), 0);
    }

    #[test]
    fn the_backoff_grows_to_a_few_seconds_and_resets() {
        let mut backoff = WatchBackoff::default();
        let delays: Vec<Duration> = (&mut backoff).take(8).collect();
        assert!(delays[0] < Duration::from_millis(260));
        assert!(delays.iter().all(|d| *d <= LONGEST_RETRY * 5 / 4));
        assert!(delays[7] >= LONGEST_RETRY);
        backoff.reset();
        assert!(backoff.next().unwrap() < Duration::from_millis(260));
    }
}
