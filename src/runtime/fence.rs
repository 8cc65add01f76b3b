//! The write fence: the controllers' client sends a write (anything but a read)
//! only while this replica's leadership is certain, that is before the renew
//! deadline of its last successful Lease renewal. A replica that was paused,
//! starved or cut off past that deadline thus cannot write once it resumes, even
//! before it notices that it lost the Lease: another replica may take the Lease
//! only `lease_duration` after that renewal, and `renew_deadline < lease_duration`.
//!
//! The deadline is measured on the monotonic clock, which keeps running while the
//! process is stopped (SIGSTOP, a VM pause). The fence sits at the bottom of
//! the client, below its retries, and checks a write twice: when it is sent to
//! the connection pool and when the connection takes its body. What it cannot
//! prevent is a pause in the instant between that second check and the socket
//! write; only a fencing token checked by the API server could, and Kubernetes
//! has none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Method, Request};
use kube::client::Body;
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

/// The controllers' client: kube's own stack (base URI, retries, auth, extra
/// headers, the same TLS and timeouts) with the fence at its bottom, right
/// above the connection pool. Below the retry layer, so a retry of a write is
/// checked again; and checked once more when the connection polls the body,
/// that is after any connect or TLS handshake and before the request's head
/// leaves hyper's write buffer (HTTP/1 buffers the head until the body's first
/// frame, and drops both if the body fails).
pub fn fenced_client(config: kube::Config, fence: Arc<Fence>) -> Result<kube::Client, kube::Error> {
    use kube::client::ConfigExt;
    use kube::client::retry::RetryPolicy;
    use tower::ServiceBuilder;
    use tower::retry::RetryLayer;

    if let Some(proxy) = &config.proxy_url {
        return Err(kube::Error::ProxyProtocolUnsupported {
            proxy_url: Box::new(proxy.clone()),
        });
    }
    let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
    http.enforce_http(false);
    let mut connector =
        hyper_timeout::TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    connector.set_reset_reader_on_write(config.reset_reader_on_write);
    let pool = hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
        .build::<_, Gated>(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(
            config
                .default_retry
                .then(|| RetryLayer::new(RetryPolicy::server_retry())),
        )
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .layer(FenceLayer { fence })
        .service(pool);
    Ok(kube::client::ClientBuilder::new(service, config.default_namespace).build())
}

/// The fence as a layer right above the connection pool: writes pass only
/// while the fence allows them. Every write that passes is logged at DEBUG
/// (target `paved::write`), so the writes of two replicas can be compared.
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

impl<S> tower::Service<Request<Body>> for Fenced<S>
where
    S: tower::Service<Request<Gated>>,
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

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        if !is_write(request.method()) {
            let response = self.inner.call(request.map(Gated::open));
            return Box::pin(async move { response.await.map_err(Into::into) });
        }
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        if !self.fence.allows_writes() {
            tracing::warn!(target: "paved::write", %method, %path, "write refused: not the leader");
            return Box::pin(std::future::ready(Err(NotLeader { method, path }.into())));
        }
        tracing::debug!(target: "paved::write", %method, %path, "write");
        let in_flight = self.fence.start_write();
        let fence = self.fence.clone();
        let response = self
            .inner
            .call(request.map(|body| Gated::fenced(body, fence, method, path)));
        Box::pin(async move {
            let response = response.await.map_err(Into::into);
            drop(in_flight);
            response
        })
    }
}

/// A request body that asks the fence once more when the connection first
/// polls it: a write checked just before a pause (or a slow connect) and sent
/// after it fails here instead of reaching the API server. What remains is the
/// instant between this poll and the socket write, within one poll of the
/// connection task.
pub struct Gated {
    body: Body,
    /// The fence and the request, until the first poll; `None` for reads.
    check: Option<(Arc<Fence>, Method, String)>,
}

impl Gated {
    fn open(body: Body) -> Self {
        Self { body, check: None }
    }

    fn fenced(body: Body, fence: Arc<Fence>, method: Method, path: String) -> Self {
        Self {
            body,
            check: Some((fence, method, path)),
        }
    }
}

impl http_body::Body for Gated {
    type Data = Bytes;
    type Error = tower::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if let Some((fence, method, path)) = self.check.take()
            && !fence.allows_writes()
        {
            tracing::warn!(target: "paved::write", %method, %path, "write refused on the wire: not the leader");
            return Poll::Ready(Some(Err(NotLeader { method, path }.into())));
        }
        Pin::new(&mut self.body).poll_frame(cx).map_err(Into::into)
    }

    /// Not at its end before the check: hyper then polls a write's body (every
    /// write Paved sends has one: kube sends even a delete's options as JSON).
    fn is_end_stream(&self) -> bool {
        self.check.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
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

    /// A stand-in for the connection pool: it takes a request's body only once
    /// the test lets it (a connect, a TLS handshake, a pause), and answers with
    /// the bytes it would have sent.
    fn pool(
        wire: Arc<tokio::sync::Semaphore>,
    ) -> impl tower::Service<
        Request<Gated>,
        Response = Vec<u8>,
        Error = tower::BoxError,
        Future = impl Future<Output = Result<Vec<u8>, tower::BoxError>> + Send,
    > + Clone {
        use http_body::Body as _;
        tower::service_fn(move |request: Request<Gated>| {
            let wire = wire.clone();
            async move {
                wire.acquire().await?.forget();
                let mut body = request.into_body();
                let mut sent = Vec::new();
                while let Some(frame) =
                    std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
                {
                    sent.extend_from_slice(&frame?.into_data().expect("a data frame"));
                }
                Ok(sent)
            }
        })
    }

    #[tokio::test]
    async fn a_write_passes_only_if_the_fence_allows_it_both_when_sent_and_when_it_goes_on_the_wire()
     {
        use tower::{Layer, Service, ServiceExt};
        let fence = Arc::new(Fence::default());
        let wire = Arc::new(tokio::sync::Semaphore::new(0));
        let mut service = FenceLayer {
            fence: fence.clone(),
        }
        .layer(pool(wire.clone()));
        let patch = || {
            Request::patch("/apis/paved.dev/v1alpha1/namespaces/a/services/x/status")
                .body(Body::from(b"{}".to_vec()))
                .unwrap()
        };

        // Reads pass without a grant.
        wire.add_permits(1);
        let get = Request::get("/api/v1/namespaces")
            .body(Body::empty())
            .unwrap();
        assert_eq!(service.ready().await.unwrap().call(get).await.unwrap(), b"");
        // No grant: refused before the pool.
        let refused = service.ready().await.unwrap().call(patch()).await;
        assert!(refused.unwrap_err().is::<NotLeader>());
        // A grant: the body goes out.
        fence.grant_until(Instant::now() + Duration::from_secs(10));
        wire.add_permits(1);
        let sent = service.ready().await.unwrap().call(patch()).await.unwrap();
        assert_eq!(sent, b"{}");
        // Allowed when handed to the pool, past the deadline when the
        // connection takes the body (the process was paused in between).
        let pending = service.ready().await.unwrap().call(patch());
        fence.grant_until(Instant::now() - Duration::from_millis(1));
        wire.add_permits(1);
        let late = pending.await.unwrap_err();
        assert!(late.is::<NotLeader>(), "the late write went out: {late}");
        fence.drained().await;
    }

    /// The same with hyper's own pool on loopback: a write allowed when sent
    /// whose connection is ready only after the deadline sends not one byte.
    #[tokio::test]
    async fn a_write_whose_connection_comes_after_the_deadline_sends_nothing() {
        use tokio::io::AsyncReadExt;
        use tower::{Layer, Service, ServiceExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut bytes = Vec::new();
            // Until the client closes the connection, or for a second.
            let _ =
                tokio::time::timeout(Duration::from_secs(1), socket.read_to_end(&mut bytes)).await;
            bytes
        });
        // A slow connect, as after a pause or a TLS handshake.
        let slow = tower::service_fn(move |_uri: http::Uri| {
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                let stream = tokio::net::TcpStream::connect(address).await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
            })
        });
        let pool = hyper_util::client::legacy::Builder::new(hyper_util::rt::TokioExecutor::new())
            .build::<_, Gated>(slow);
        let fence = Arc::new(Fence::default());
        fence.grant_until(Instant::now() + Duration::from_millis(100));
        let mut service = FenceLayer {
            fence: fence.clone(),
        }
        .layer(pool);
        let patch = Request::patch(format!(
            "http://{address}/apis/apps/v1/namespaces/a/deployments/x"
        ))
        .body(Body::from(br#"{"spec":{"replicas":0}}"#.to_vec()))
        .unwrap();
        let sent = tokio::time::timeout(
            Duration::from_secs(10),
            service.ready().await.unwrap().call(patch),
        );
        let (sent, bytes) = tokio::join!(sent, received);
        let bytes = bytes.unwrap();
        assert!(
            bytes.is_empty(),
            "the API server would have received: {:?}",
            String::from_utf8_lossy(&bytes)
        );
        let error = sent
            .expect("the write ends")
            .expect_err("the write went out after the deadline");
        assert!(
            std::iter::successors(Some(&*error as &(dyn std::error::Error + 'static)), |e| e
                .source())
            .any(|e| e.is::<NotLeader>()),
            "not refused by the fence: {error:?}"
        );
    }

    /// The controllers' whole client against a loopback server that answers
    /// 503 slowly: kube retries a 503, and the retry, sent once the deadline
    /// has passed, never leaves the process.
    #[tokio::test]
    async fn a_retry_after_the_deadline_is_not_sent() {
        use std::sync::atomic::AtomicUsize;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut buffer = vec![0; 4096];
                    // One request per connection is enough here: count its head.
                    while let Ok(n) = socket.read(&mut buffer).await {
                        if n == 0 {
                            break;
                        }
                        if buffer[..n].starts_with(b"PATCH ") {
                            counted.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(300)).await;
                            let answer =
                                b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n";
                            if socket.write_all(answer).await.is_err() {
                                break;
                            }
                        }
                    }
                });
            }
        });
        let config = kube::Config::new(format!("http://{address}").parse().unwrap());
        assert!(config.default_retry, "kube retries by default");
        let fence = Arc::new(Fence::default());
        fence.grant_until(Instant::now() + Duration::from_millis(100));
        let client = fenced_client(config, fence).unwrap();
        let patch = Request::patch("/apis/apps/v1/namespaces/a/deployments/x")
            .body(br#"{"spec":{"replicas":0}}"#.to_vec())
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), client.request_text(patch))
            .await
            .expect("the write ends");
        assert!(answer.is_err(), "a 503 and then a refusal: {answer:?}");
        assert_eq!(
            requests.load(Ordering::SeqCst),
            1,
            "the server received a retry sent after the deadline"
        );
    }
}
