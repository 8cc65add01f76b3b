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

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    let state = Arc::new(WatchState {
        metrics: metrics.clone(),
        resource: K::kind(&K::DynamicType::default()).to_string(),
        failing: AtomicBool::new(false),
    });
    watcher(api, config)
        .backoff(WatchBackoff::default())
        .filter_map(move |event| {
            let state = state.clone();
            async move {
                match event {
                    Ok(event) => {
                        state.flowing();
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

struct WatchState {
    metrics: Arc<Metrics>,
    resource: String,
    failing: AtomicBool,
}

impl WatchState {
    fn failed(&self, error: &watcher::Error) {
        self.metrics.watch_failed(&self.resource);
        tracing::warn!(resource = %self.resource, %error, "watch failed; retrying");
        if !self.failing.swap(true, Ordering::Relaxed) {
            self.metrics.watches_failing(1);
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
        if *self.failing.get_mut() {
            self.metrics.watches_failing(-1);
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
