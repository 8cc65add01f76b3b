//! `/metrics`, `/healthz`, `/readyz`, the catalog for portals
//! (`/catalog/backstage`), and the catalog page for people (`/catalog`, see
//! `super::page`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use super::coalesce::Coalesced;
use super::metrics::Metrics;
use crate::api::{Application, Environment, Service};
use crate::catalog;

/// What the endpoints report.
pub struct Health {
    pub metrics: Arc<Metrics>,
    /// Set once the process is connected (standing by or leading); a leader is
    /// ready only once its watches have listed too (see [`Health::readiness`]).
    pub ready: AtomicBool,
    /// Set once connected: the catalog endpoint lists the CRs with it, so a
    /// standby replica serves the catalog too.
    pub catalog_client: std::sync::OnceLock<kube::Client>,
    /// The catalog page: the controllers' stores and the optional token gate.
    pub pages: Arc<super::page::Pages>,
    /// `/catalog/backstage`'s lists, shared by the requests that wait together.
    pub backstage: Arc<Coalesced<CatalogAnswer>>,
}

/// `/catalog/backstage`'s answer: the entities as YAML, or why the lists failed.
pub type CatalogAnswer = Result<bytes::Bytes, Arc<str>>;

impl Health {
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }
}

pub fn router(health: Arc<Health>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/catalog/backstage", get(backstage_catalog))
        .with_state(health.clone())
        .merge(super::page::router(health.pages.clone()))
}

/// Bytes per chunk of a streamed `/metrics` exposition.
const METRICS_CHUNK: usize = 64 * 1024;
/// Chunks encoded ahead of the reader: what a scrape holds at most, whatever
/// the number of objects.
const METRICS_CHUNKS_AHEAD: usize = 4;
/// Scrapes encoded at once; more wait their turn (each holds a blocking thread
/// while its reader takes the chunks).
static METRICS_ENCODERS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);
/// How long a scrape's reader may leave the next chunk untaken before the scrape
/// is cut off (Prometheus' default scrape timeout): a client that asks and stops
/// reading gives its turn back, so two of them cannot stall every later scrape.
const METRICS_READER_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest a scrape may hold its turn, however steadily its reader drips
/// (an exposition of 11.8 MB takes well under a second on loopback).
const METRICS_SCRAPE_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let chunks = exposition(
        health.metrics.clone(),
        Pace {
            chunk: METRICS_CHUNK,
            encoders: &METRICS_ENCODERS,
            patience: METRICS_READER_PATIENCE,
            limit: METRICS_SCRAPE_LIMIT,
        },
    );
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        axum::body::Body::from_stream(chunks),
    )
}

/// How a scrape is encoded and how long its reader may take (see the constants).
struct Pace {
    chunk: usize,
    encoders: &'static tokio::sync::Semaphore,
    patience: std::time::Duration,
    limit: std::time::Duration,
}

/// The exposition streamed as it is encoded ([`Metrics::encode_chunks`]), on a
/// blocking thread, at most [`METRICS_CHUNKS_AHEAD`] chunks ahead of the reader.
/// A reader that goes away, or takes longer than the pace allows, ends the
/// encoding; the stream then ends with an error, so the client sees a broken
/// response rather than a short exposition.
fn exposition(
    metrics: Arc<Metrics>,
    pace: Pace,
) -> impl futures::Stream<Item = Result<bytes::Bytes, std::io::Error>> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<String>(METRICS_CHUNKS_AHEAD);
    let whole = Arc::new(AtomicBool::new(false));
    let encoded = whole.clone();
    let runtime = tokio::runtime::Handle::current();
    tokio::spawn(async move {
        let Ok(_turn) = pace.encoders.acquire().await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            let deadline = std::time::Instant::now() + pace.limit;
            let sent = metrics.encode_chunks(pace.chunk, |chunk| {
                let wait = pace
                    .patience
                    .min(deadline.saturating_duration_since(std::time::Instant::now()));
                runtime.block_on(sender.send_timeout(chunk, wait)).is_ok()
            });
            encoded.store(sent.is_ok(), Ordering::SeqCst);
        })
        .await;
    });
    futures::stream::unfold(Some(receiver), move |receiver| {
        let whole = whole.clone();
        async move {
            let mut receiver = receiver?;
            match receiver.recv().await {
                Some(chunk) => Some((Ok(bytes::Bytes::from(chunk)), Some(receiver))),
                None if whole.load(Ordering::SeqCst) => None,
                None => Some((Err(std::io::Error::other("the scrape was cut off")), None)),
            }
        }
    })
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    health.readiness()
}

impl Health {
    /// `/readyz`: not ready while a watch fails, or while one is still making its
    /// first list (the leader's stores are not complete yet: a restarted leader
    /// is ready once it works from a full picture). A standby holds no watch and
    /// is ready once connected, so a rolling update of two replicas goes on.
    pub fn readiness(&self) -> (StatusCode, &'static str) {
        if self.metrics.failing_watches() > 0 {
            (StatusCode::SERVICE_UNAVAILABLE, "watches failing")
        } else if self.metrics.listing_watches() > 0 {
            (StatusCode::SERVICE_UNAVAILABLE, "watches listing")
        } else if self.ready.load(Ordering::Relaxed) {
            (StatusCode::OK, "ok")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        }
    }
}

/// Backstage entities (multi-document YAML) for a Backstage `url` location.
/// Requests that come while the lists run share the next lists' answer
/// ([`Coalesced`]): a flood of requests costs one set of lists at a time.
async fn backstage_catalog(State(health): State<Arc<Health>>) -> axum::response::Response {
    let Some(client) = health.catalog_client.get().cloned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the API server yet",
        )
            .into_response();
    };
    let metrics = health.metrics.clone();
    let list = move || {
        metrics.catalog_listed();
        list_backstage_catalog(client.clone())
    };
    match health.backstage.get(list).await {
        Some(Ok(yaml)) => ([(header::CONTENT_TYPE, "application/yaml")], yaml).into_response(),
        Some(Err(message)) => (StatusCode::BAD_GATEWAY, message.to_string()).into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "listing Paved objects failed",
        )
            .into_response(),
    }
}

/// Every Environment, Application and Service, as Backstage entities.
async fn list_backstage_catalog(client: kube::Client) -> CatalogAnswer {
    let lp = kube::api::ListParams::default();
    let (environments, applications, services) = (
        kube::Api::<Environment>::all(client.clone()),
        kube::Api::<Application>::all(client.clone()),
        kube::Api::<Service>::all(client),
    );
    let (envs, apps, services) = tokio::try_join!(
        environments.list(&lp),
        applications.list(&lp),
        services.list(&lp)
    )
    .map_err(|e| Arc::from(format!("listing Paved objects failed: {e}")))?;
    let entities = catalog::backstage_entities(&envs.items, &apps.items, &services.items);
    Ok(bytes::Bytes::from(catalog::to_yaml(&entities)))
}

/// Serve until `shutdown` resolves.
pub async fn serve(
    listen: SocketAddr,
    health: Arc<Health>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    tracing::info!(%listen, "serving /metrics, /healthz, /readyz and the catalog page at /catalog");
    axum::serve(listener, router(health))
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> Health {
        Health {
            metrics: Arc::new(Metrics::default()),
            ready: AtomicBool::new(true),
            catalog_client: std::sync::OnceLock::new(),
            pages: Arc::new(super::super::page::Pages::open(Default::default())),
            backstage: Default::default(),
        }
    }

    #[test]
    fn a_leader_is_not_ready_until_every_watch_has_listed_and_a_standby_is_ready() {
        let health = health();
        // A standby: connected, no watch.
        assert_eq!(health.readiness().0, StatusCode::OK);
        // Leading: three watches start listing.
        for _ in 0..3 {
            health.metrics.watches_listing(1);
        }
        assert_eq!(
            health.readiness(),
            (StatusCode::SERVICE_UNAVAILABLE, "watches listing")
        );
        health.metrics.watches_listing(-1);
        health.metrics.watches_listing(-1);
        assert_eq!(health.readiness().0, StatusCode::SERVICE_UNAVAILABLE);
        health.metrics.watches_listing(-1);
        assert_eq!(health.readiness(), (StatusCode::OK, "ok"));
    }

    #[test]
    fn a_failing_watch_or_a_process_not_connected_is_not_ready() {
        let health = health();
        health.metrics.watches_failing(1);
        assert_eq!(
            health.readiness(),
            (StatusCode::SERVICE_UNAVAILABLE, "watches failing")
        );
        health.metrics.watches_failing(-1);
        health.set_ready(false);
        assert_eq!(
            health.readiness(),
            (StatusCode::SERVICE_UNAVAILABLE, "not ready")
        );
    }

    /// A scrape's chunks as text; the error that ends a cut-off one as `Err`.
    fn texts(chunks: Vec<Result<bytes::Bytes, std::io::Error>>) -> Vec<Result<String, String>> {
        chunks
            .into_iter()
            .map(|c| {
                c.map(|b| String::from_utf8(b.to_vec()).unwrap())
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scraper_that_stops_reading_gives_its_turn_back_and_gets_a_broken_response() {
        use futures::StreamExt;
        use std::time::{Duration, Instant};
        let metrics = Arc::new(Metrics::default());
        metrics.watches_listing(1);
        let whole = metrics.encode();
        let mut pieces = 0;
        metrics
            .encode_chunks(64, |_| {
                pieces += 1;
                true
            })
            .unwrap();
        // Enough chunks that an unread scrape fills its channel and waits.
        assert!(pieces > METRICS_CHUNKS_AHEAD + 2, "{pieces} chunks");
        let encoders: &'static tokio::sync::Semaphore =
            Box::leak(Box::new(tokio::sync::Semaphore::new(1)));
        let pace = || Pace {
            chunk: 64,
            encoders,
            patience: Duration::from_millis(300),
            limit: Duration::from_secs(30),
        };

        // A scraper takes one chunk and stops reading: its scrape holds the only turn.
        let mut stalled = Box::pin(exposition(metrics.clone(), pace()));
        assert!(stalled.next().await.unwrap().is_ok());

        // The next scrape waits for the turn, and gets it once the stalled
        // reader's patience has run out: it comes whole.
        let started = Instant::now();
        let next = tokio::time::timeout(
            Duration::from_secs(10),
            exposition(metrics.clone(), pace()).collect::<Vec<_>>(),
        )
        .await
        .expect("a stalled scraper held the turn for ever");
        let waited = started.elapsed();
        let next: Result<String, String> = texts(next).into_iter().collect();
        assert_eq!(next.unwrap(), whole);
        assert!(
            waited >= Duration::from_millis(200),
            "waited {waited:?}: no stall"
        );

        // The stalled scraper, reading again, finds its scrape cut off: an
        // error, not a short exposition that would pass for a whole one.
        let rest = texts(stalled.collect::<Vec<_>>().await);
        assert_eq!(
            rest.last(),
            Some(&Err("the scrape was cut off".to_string())),
            "{rest:?}"
        );
        assert!(rest.iter().filter(|c| c.is_err()).count() == 1);

        // A steady reader under the same pace gets everything.
        let again = texts(
            exposition(metrics.clone(), pace())
                .collect::<Vec<_>>()
                .await,
        );
        let again: Result<String, String> = again.into_iter().collect();
        assert_eq!(again.unwrap(), whole);
    }

    #[tokio::test]
    async fn metrics_are_served_streamed_and_whole() {
        use tower::ServiceExt;
        let health = Arc::new(health());
        health.metrics.watches_listing(1);
        let response = router(health.clone())
            .oneshot(
                axum::http::Request::get("/metrics")
                    .body(axum::body::Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/openmetrics-text; version=1.0.0; charset=utf-8"
        );
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = std::str::from_utf8(&body).unwrap();
        assert_eq!(text, health.metrics.encode());
        assert!(text.contains("paved_watches_listing 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
