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
}

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

/// The exposition streamed as it is encoded ([`Metrics::encode_chunks`]), on a
/// blocking thread; a reader that goes away ends the encoding.
async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let (sender, receiver) = tokio::sync::mpsc::channel::<String>(METRICS_CHUNKS_AHEAD);
    let metrics = health.metrics.clone();
    tokio::spawn(async move {
        let Ok(_turn) = METRICS_ENCODERS.acquire().await else {
            return;
        };
        let _ = tokio::task::spawn_blocking(move || {
            metrics.encode_chunks(METRICS_CHUNK, |chunk| sender.blocking_send(chunk).is_ok())
        })
        .await;
    });
    let chunks = futures::stream::unfold(receiver, |mut receiver| async move {
        let chunk = receiver.recv().await?;
        Some((
            Ok::<_, std::convert::Infallible>(bytes::Bytes::from(chunk)),
            receiver,
        ))
    });
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        axum::body::Body::from_stream(chunks),
    )
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
async fn backstage_catalog(State(health): State<Arc<Health>>) -> axum::response::Response {
    let Some(client) = health.catalog_client.get() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not connected to the API server yet",
        )
            .into_response();
    };
    let lp = kube::api::ListParams::default();
    let (environments, applications, services) = (
        kube::Api::<Environment>::all(client.clone()),
        kube::Api::<Application>::all(client.clone()),
        kube::Api::<Service>::all(client.clone()),
    );
    let listed = tokio::try_join!(
        environments.list(&lp),
        applications.list(&lp),
        services.list(&lp)
    );
    match listed {
        Ok((envs, apps, services)) => {
            let entities = catalog::backstage_entities(&envs.items, &apps.items, &services.items);
            (
                [(header::CONTENT_TYPE, "application/yaml")],
                catalog::to_yaml(&entities),
            )
                .into_response()
        }
        Err(e) => (
            StatusCode::BAD_GATEWAY,
            format!("listing Paved objects failed: {e}"),
        )
            .into_response(),
    }
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
