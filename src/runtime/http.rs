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
    /// Set once the process is connected and either standing by or leading with warm caches.
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

async fn metrics(State(health): State<Arc<Health>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        health.metrics.encode(),
    )
}

async fn readyz(State(health): State<Arc<Health>>) -> impl IntoResponse {
    let failing = health.metrics.failing_watches();
    if failing > 0 {
        (StatusCode::SERVICE_UNAVAILABLE, "watches failing")
    } else if health.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
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
