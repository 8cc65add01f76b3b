//! The write fence: the controllers' client sends a write (anything but a read)
//! only while this replica's leadership is certain, that is before the renew
//! deadline of its last successful Lease renewal. A replica that was paused,
//! starved or cut off past that deadline thus cannot write once it resumes, even
//! before it notices that it lost the Lease: another replica may take the Lease
//! only `lease_duration` after that renewal, and `renew_deadline < lease_duration`.
//!
//! The deadline is measured on the monotonic clock, which keeps running while the
//! process is stopped (SIGSTOP, a VM pause). What the fence cannot prevent is a
//! write checked just before a pause and sent after it.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use http::{Method, Request};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Until when this replica may write, and how many of its writes are in flight.
#[derive(Debug, Default)]
pub struct Fence {
    valid_until: Mutex<Option<Instant>>,
    in_flight: AtomicUsize,
    idle: Notify,
}

impl Fence {
    /// Writes are allowed until `until` (a renewal's start plus the renew deadline).
    pub fn grant_until(&self, until: Instant) {
        *self.valid_until.lock().expect("fence lock") = Some(until);
    }

    /// No write from now on.
    pub fn revoke(&self) {
        *self.valid_until.lock().expect("fence lock") = None;
    }

    /// The deadline of the current grant, if any.
    pub fn valid_until(&self) -> Option<Instant> {
        *self.valid_until.lock().expect("fence lock")
    }

    pub fn allows_writes(&self) -> bool {
        self.valid_until()
            .is_some_and(|until| Instant::now() < until)
    }

    /// Resolves once no allowed write is in flight (they may still land after a revoke).
    pub async fn drained(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            notified.await;
        }
    }

    fn start_write(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(self.clone())
    }
}

/// One allowed write on the wire; counted until its response (or its drop).
struct InFlight(Arc<Fence>);

impl Drop for InFlight {
    fn drop(&mut self) {
        if self.0.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// The error a fenced write fails with.
#[derive(Debug, thiserror::Error)]
#[error(
    "{method} {path} refused: this replica does not hold the leader Lease (renew deadline passed)"
)]
pub struct NotLeader {
    pub method: Method,
    pub path: String,
}

/// Wraps the controllers' client: writes pass only while the fence allows them.
/// Every write that passes is logged at DEBUG (target `paved::write`), so the
/// writes of two replicas can be compared.
#[derive(Clone)]
pub struct FenceLayer {
    pub fence: Arc<Fence>,
}

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Fenced {
            inner,
            fence: self.fence.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Arc<Fence>,
}

fn is_write(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B> tower::Service<Request<B>> for Fenced<S>
where
    S: tower::Service<Request<B>>,
    S::Response: Send + 'static,
    S::Error: Into<tower::BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = BoxFuture<Result<S::Response, tower::BoxError>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if !is_write(request.method()) {
            let response = self.inner.call(request);
            return Box::pin(async move { response.await.map_err(Into::into) });
        }
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        // Checked as late as possible: right before the request goes out.
        if !self.fence.allows_writes() {
            tracing::warn!(target: "paved::write", %method, %path, "write refused: not the leader");
            return Box::pin(std::future::ready(Err(NotLeader { method, path }.into())));
        }
        tracing::debug!(target: "paved::write", %method, %path, "write");
        let in_flight = self.fence.start_write();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await.map_err(Into::into);
            drop(in_flight);
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_grant_allows_writes_until_its_deadline_only() {
        let fence = Fence::default();
        assert!(!fence.allows_writes(), "no grant, no write");
        fence.grant_until(Instant::now() + Duration::from_secs(10));
        assert!(fence.allows_writes());
        // A replica resumed after a pause finds its deadline in the past.
        fence.grant_until(Instant::now() - Duration::from_millis(1));
        assert!(!fence.allows_writes());
        fence.grant_until(Instant::now() + Duration::from_secs(10));
        fence.revoke();
        assert!(!fence.allows_writes());
    }

    #[tokio::test]
    async fn reads_pass_and_writes_are_refused_without_a_grant() {
        use tower::{Layer, Service, ServiceExt};
        let fence = Arc::new(Fence::default());
        let inner = tower::service_fn(|_request: Request<()>| async {
            Ok::<_, std::convert::Infallible>("sent")
        });
        let mut service = FenceLayer {
            fence: fence.clone(),
        }
        .layer(inner);
        let get = Request::get("/api/v1/namespaces").body(()).unwrap();
        let patch = || {
            Request::patch("/apis/paved.dev/v1alpha1/services/x/status")
                .body(())
                .unwrap()
        };
        assert_eq!(
            service.ready().await.unwrap().call(get).await.unwrap(),
            "sent"
        );
        let refused = service.ready().await.unwrap().call(patch()).await;
        assert!(refused.unwrap_err().is::<NotLeader>());
        fence.grant_until(Instant::now() + Duration::from_secs(10));
        assert_eq!(
            service.ready().await.unwrap().call(patch()).await.unwrap(),
            "sent"
        );
        fence.drained().await;
    }
}
