//! Gateway API discovery: whether the cluster serves HTTPRoute, asked again
//! until it does, so CRDs installed after Paved started are noticed without a
//! restart.
//!
//! The HTTPRoute watch starts only once discovery finds the kind: a watch on a
//! kind the API server does not serve would fail for ever, count in
//! `paved_watches_failing` and keep `/readyz` unready. Until then the HTTPRoute
//! store is loaded empty (nothing can exist), so the other stores' gate opens and
//! every controller runs; a Service of a gateway Environment is Stalled with
//! `GatewayApiMissing` meanwhile. Discovery endpoints need no RBAC.

use crate::slim::Slim;
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::Client;
use kube::api::Api;
use kube::runtime::reflector::store::Writer;
use kube::runtime::watcher;

use super::metrics::Metrics;
use crate::api::gateway_api::{GROUP_VERSION, HTTPROUTES, HttpRoute};

/// How often a cluster without HTTPRoute is asked again.
pub const REDISCOVER: Duration = Duration::from_secs(10);

/// Whether the API server serves `httproutes` in `gateway.networking.k8s.io/v1`.
/// `Err` when it could not tell (not reachable, ...).
pub async fn serves_http_routes(client: &Client) -> Result<bool, kube::Error> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) => Ok(list.resources.iter().any(|r| r.name == HTTPROUTES)),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(error) => Err(error),
    }
}

/// The HTTPRoute reflector, started once discovery finds the kind. Until then
/// `writer`'s store is marked loaded and empty. `served` turns true when the watch
/// starts; `appeared` too, but only when the kind was missing first (the Service
/// controller then looks at every Service again, see [`appeared`]).
pub fn reflect_when_served(
    writer: Writer<Slim<HttpRoute>>,
    client: Client,
    config: watcher::Config,
    metrics: Arc<Metrics>,
    served: tokio::sync::watch::Sender<bool>,
    appeared: tokio::sync::watch::Sender<bool>,
) -> impl Stream<Item = Result<Slim<HttpRoute>, watcher::Error>> + Send {
    let discovered = async move {
        let mut writer = writer;
        let mut marked_empty = false;
        loop {
            let wait = match serves_http_routes(&client).await {
                Ok(true) => break,
                Ok(false) => {
                    if !marked_empty {
                        tracing::info!(
                            "the cluster does not serve HTTPRoute ({GROUP_VERSION}): Services of Environments with spec.gateway wait for the Gateway API CRDs"
                        );
                        writer.apply_watcher_event(&watcher::Event::Init);
                        writer.apply_watcher_event(&watcher::Event::InitDone);
                        marked_empty = true;
                    }
                    REDISCOVER
                }
                Err(error) => {
                    tracing::warn!(%error, "Gateway API discovery failed; retrying");
                    Duration::from_secs(2)
                }
            };
            tokio::time::sleep(wait).await;
        }
        tracing::info!("the cluster serves HTTPRoute ({GROUP_VERSION}): watching routes");
        served.send_replace(true);
        if marked_empty {
            appeared.send_replace(true);
        }
        (writer, client, config, metrics)
    };
    futures::stream::once(discovered).flat_map(|(writer, client, config, metrics)| {
        super::controllers::reflect_slim(writer, Api::all(client), config, &metrics)
    })
}

/// One item when the Gateway API appears after Paved found it missing: the
/// trigger that reconciles every Service (those Stalled on `GatewayApiMissing`
/// get their routes). Never ends.
pub fn appeared(
    mut appeared: tokio::sync::watch::Receiver<bool>,
) -> impl Stream<Item = ()> + Send + 'static {
    futures::stream::once(async move {
        let _ = appeared.wait_for(|on| *on).await;
    })
    .chain(futures::stream::pending())
}
