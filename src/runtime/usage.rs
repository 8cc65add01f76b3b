//! The usage poller: every interval it asks the API server whether it serves
//! `metrics.k8s.io/v1beta1` pods (a metrics-server; discovery needs no RBAC,
//! so one installed while Paved runs is found without a restart), lists the
//! PodMetrics of Paved's pods (label `paved.dev/service`), folds them per
//! Service ([`crate::usage::fold`]) and wakes the Services whose shown figures
//! moved by a step. Reconciles only read the [`UsageStore`]: none waits on
//! metrics, and a cluster without them loses nothing but the figures.
//!
//! Runs with the controllers (so only on the leader). One list per interval
//! for the whole cluster, whatever the number of Services.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use kube::api::ListParams;
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};

use super::metrics::Metrics;
use crate::api::Service;
use crate::children::guardrails::quantity_value;
use crate::names::labels;
use crate::reconcile::Stores;
use crate::usage::{Availability, PodUsage, ServiceKey, Steps, Thresholds, UsageStore};

/// The API group and version of PodMetrics.
pub const GROUP_VERSION: &str = "metrics.k8s.io/v1beta1";
/// Failed polls in a row before status says the metrics are unavailable (a
/// single failure keeps the figures: metrics-server restarts happen).
const FAILURES_BEFORE_UNAVAILABLE: u32 = 3;

/// What the poller reads of a PodMetrics object: its namespace, its Service
/// label and its containers' CPU and memory, decoded into nothing more (a
/// cluster's list holds one per pod, and the rest of each is never read).
#[derive(Clone, Debug, serde::Deserialize)]
pub struct PodMetrics {
    metadata: PodMetricsMeta,
    #[serde(default)]
    containers: Vec<ContainerMetrics>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct PodMetricsMeta {
    namespace: Option<String>,
    #[serde(default)]
    labels: PodLabels,
}

/// Of a pod's labels, only [`labels::SERVICE`] (the others are skipped unread).
#[derive(Clone, Debug, Default, serde::Deserialize)]
struct PodLabels {
    #[serde(rename = "paved.dev/service")]
    service: Option<String>,
}

#[derive(Clone, Debug, serde::Deserialize)]
struct ContainerMetrics {
    #[serde(default)]
    usage: ContainerUsage,
}

#[derive(Clone, Debug, Default, serde::Deserialize)]
struct ContainerUsage {
    cpu: Option<String>,
    memory: Option<String>,
}

/// What one PodMetrics says: the pod's Service and its containers' use summed.
/// None for a pod without the label.
pub fn pod_usage(object: &PodMetrics) -> Option<PodUsage> {
    let service = object.metadata.labels.service.as_ref()?;
    let sum = |resource: fn(&ContainerUsage) -> &Option<String>| -> f64 {
        object
            .containers
            .iter()
            .filter_map(|c| resource(&c.usage).as_deref())
            .filter_map(quantity_value)
            .sum()
    };
    Some(PodUsage {
        namespace: object.metadata.namespace.clone()?,
        service: service.clone(),
        cpu: sum(|u| &u.cpu),
        memory: sum(|u| &u.memory),
    })
}

/// A PodMetricsList read item by item: each PodMetrics becomes its
/// [`PodUsage`] (or nothing) as soon as it is decoded, so the list of every
/// pod in the cluster never exists as objects at once (one per pod: 10,000
/// at the bench's largest size).
#[derive(Debug, Default, serde::Deserialize)]
struct PodMetricsList {
    /// Go writes an empty list as `null`.
    #[serde(default)]
    items: Option<PodUsages>,
}

#[derive(Debug, Default)]
struct PodUsages(Vec<PodUsage>);

impl<'de> serde::Deserialize<'de> for PodUsages {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Items;
        impl<'de> serde::de::Visitor<'de> for Items {
            type Value = PodUsages;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a list of PodMetrics")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<PodUsages, A::Error> {
                let mut usages = Vec::new();
                while let Some(object) = seq.next_element::<PodMetrics>()? {
                    usages.extend(pod_usage(&object));
                }
                Ok(PodUsages(usages))
            }
        }
        deserializer.deserialize_seq(Items)
    }
}

/// Read every Paved pod's use. `Ok(None)`: the cluster does not serve the API.
async fn read(client: &Client) -> Result<Option<Vec<PodUsage>>, String> {
    match client.list_api_group_resources(GROUP_VERSION).await {
        Ok(list) if list.resources.iter().any(|r| r.name == "pods") => {}
        Ok(_) => return Ok(None),
        Err(kube::Error::Api(status)) if status.code == 404 => return Ok(None),
        Err(error) => return Err(format!("{GROUP_VERSION} discovery failed: {error}")),
    }
    let failed = |error: String| format!("listing {GROUP_VERSION} pods failed: {error}");
    let request = kube::core::Request::new(format!("/apis/{GROUP_VERSION}/pods"))
        .list(&ListParams::default().labels(labels::SERVICE))
        .map_err(|error| failed(error.to_string()))?;
    // The body is decoded as it arrives (kube's `request` would hold it whole,
    // three times over: its chunks, them joined, and a copy as text; 10,000
    // pods' figures are about 5 MB).
    let body = super::list_watch::body_reader(client, request)
        .await
        .map_err(|error| failed(error.to_string()))?;
    let list: PodMetricsList = tokio::task::spawn_blocking(move || serde_json::from_reader(body))
        .await
        .map_err(|error| failed(error.to_string()))?
        .map_err(|error| failed(error.to_string()))?;
    Ok(Some(list.items.map(|items| items.0).unwrap_or_default()))
}

/// Each Service's ready pods, from its Deployment (named after it): what a
/// poll should find measured.
fn ready_pods(stores: &Stores) -> BTreeMap<ServiceKey, u32> {
    stores
        .deployments
        .state()
        .iter()
        .filter_map(|deployment| {
            #[derive(serde::Deserialize)]
            struct Ready {
                status: Option<k8s_openapi::api::apps::v1::DeploymentStatus>,
            }
            let ready = deployment.read::<Ready>()?.status?.ready_replicas?;
            let meta = deployment.meta();
            Some((
                (meta.namespace.clone()?, meta.name.clone()?),
                u32::try_from(ready).unwrap_or(0),
            ))
        })
        .collect()
}

/// How the poller runs.
#[derive(Clone, Debug)]
pub struct PollSettings {
    pub interval: Duration,
    pub thresholds: Thresholds,
    pub steps: Steps,
}

/// The channel the poller wakes Services through, and the stream a controller
/// reads them from (`reconcile_on`).
pub fn wake_channel() -> (
    tokio::sync::mpsc::UnboundedSender<ObjectRef<Service>>,
    impl Stream<Item = ObjectRef<Service>> + Send + 'static,
) {
    let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
    (sender, super::taps::received(receiver))
}

/// Poll until `stop` resolves.
pub async fn run(
    client: Client,
    stores: Stores,
    usage: UsageStore,
    settings: PollSettings,
    metrics: Arc<Metrics>,
    wake: tokio::sync::mpsc::UnboundedSender<ObjectRef<Service>>,
    stop: impl Future<Output = ()> + Send,
) {
    let poll = async {
        if !stores.wait_until_ready().await {
            return;
        }
        let mut failures = 0;
        loop {
            let availability = match read(&client).await {
                Ok(Some(pods)) => {
                    failures = 0;
                    let samples = crate::usage::aggregate(pods);
                    let snapshot = stores.snapshot();
                    let ready = ready_pods(&stores);
                    let moved = usage.update(|records| {
                        crate::usage::fold(
                            &snapshot,
                            records,
                            &samples,
                            &ready,
                            jiff::Timestamp::now(),
                            &settings.thresholds,
                            &settings.steps,
                        )
                    });
                    metrics.set_usage_available(true);
                    for (namespace, name) in moved {
                        let _ = wake.send(ObjectRef::new(&name).within(&namespace));
                    }
                    Some(Availability::Available)
                }
                Ok(None) => {
                    failures = 0;
                    Some(Availability::Unavailable(format!(
                        "the cluster does not serve {GROUP_VERSION} (install metrics-server for usage figures)"
                    )))
                }
                Err(reason) => {
                    failures += 1;
                    tracing::warn!(%reason, failures, "reading usage failed");
                    (failures >= FAILURES_BEFORE_UNAVAILABLE)
                        .then_some(Availability::Unavailable(reason))
                }
            };
            if let Some(availability) = availability {
                if availability != Availability::Available {
                    metrics.set_usage_available(false);
                    // Figures start again from the first sample when metrics return.
                    usage.update(|records| records.clear());
                }
                if usage.set_availability(availability.clone()) {
                    tracing::info!(?availability, "usage availability changed");
                    // Every Service says so (their Applications and Environments follow).
                    for service in stores.services.state() {
                        let _ = wake.send(ObjectRef::from_obj(service.as_ref()));
                    }
                }
            }
            tokio::time::sleep(settings.interval).await;
        }
    };
    futures::future::select(Box::pin(poll), Box::pin(stop)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_metrics_object_is_read_as_its_services_pod_with_containers_summed() {
        let object: PodMetrics = serde_json::from_value(serde_json::json!({
            "apiVersion": "metrics.k8s.io/v1beta1",
            "kind": "PodMetrics",
            "metadata": {"name": "api-7d9-x", "namespace": "shop", "labels": {"paved.dev/service": "api"}},
            "timestamp": "2026-01-01T00:00:00Z",
            "window": "15s",
            "containers": [
                {"name": "app", "usage": {"cpu": "250m", "memory": "64Mi"}},
                {"name": "sidecar", "usage": {"cpu": "1500000n", "memory": "1024Ki"}}
            ]
        }))
        .unwrap();
        let pod = pod_usage(&object).unwrap();
        assert_eq!(
            (pod.namespace.as_str(), pod.service.as_str()),
            ("shop", "api")
        );
        assert!((pod.cpu - 0.2515).abs() < 1e-9, "{}", pod.cpu);
        assert_eq!(pod.memory, 65.0 * 1024.0 * 1024.0);
        let mut unlabelled = object.clone();
        unlabelled.metadata.labels.service = None;
        assert_eq!(pod_usage(&unlabelled), None);
    }

    #[test]
    fn a_list_is_read_as_the_usage_of_its_labelled_pods_and_a_null_list_as_none() {
        let pod = |name: &str, labels: serde_json::Value| {
            serde_json::json!({
                "metadata": {"name": name, "namespace": "shop", "labels": labels},
                "containers": [{"name": "app", "usage": {"cpu": "100m", "memory": "1Ki"}}]
            })
        };
        let list: PodMetricsList = serde_json::from_value(serde_json::json!({
            "kind": "PodMetricsList",
            "apiVersion": GROUP_VERSION,
            "metadata": {},
            "items": [
                // The key the decoder reads is the label Paved sets.
                pod("api-x", serde_json::json!({(labels::SERVICE): "api", "pod-template-hash": "7d9"})),
                pod("other", serde_json::json!({"app": "other"})),
                pod("web-y", serde_json::json!({(labels::SERVICE): "web"})),
            ]
        }))
        .unwrap();
        let pods = list.items.unwrap().0;
        let names: Vec<&str> = pods.iter().map(|p| p.service.as_str()).collect();
        assert_eq!(names, ["api", "web"]);
        assert!((pods[0].cpu - 0.1).abs() < 1e-9);
        assert_eq!(pods[1].memory, 1024.0);
        let empty: PodMetricsList =
            serde_json::from_str(r#"{"kind":"PodMetricsList","metadata":{},"items":null}"#)
                .unwrap();
        assert!(empty.items.is_none());
    }
}
