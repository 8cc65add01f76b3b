//! Helpers of the Paved e2e tests. They treat Paved as a black box, like a user
//! with `kubectl`: the three kinds are plain JSON applied server-side, children
//! are read with k8s-openapi types, and every wait is bounded and says what it
//! last saw.
//!
//! Each test gets its own [`TestEnvironment`] (a unique Environment, namespace
//! and domain), deleted when the test ends, passed or failed.

use std::fmt::Debug;

use k8s_openapi::api::core::v1::{Event, Namespace, ServiceAccount};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::support::{WAIT, client, is_not_found, unique, wait_until};

pub const API_VERSION: &str = "paved.dev/v1alpha1";
/// The field manager of the person (or GitOps tool) applying the manifests.
pub const USER_MANAGER: &str = "e2e-user";
/// The field manager Paved applies children with (DESIGN.md, "Children conventions").
pub const PAVED_MANAGER: &str = "paved";

pub fn environment_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("paved.dev", "v1alpha1", "Environment"),
        "environments",
    )
}
pub fn application_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("paved.dev", "v1alpha1", "Application"),
        "applications",
    )
}
pub fn service_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("paved.dev", "v1alpha1", "Service"),
        "services",
    )
}

pub fn environments(client: &Client) -> Api<DynamicObject> {
    Api::all_with(client.clone(), &environment_resource())
}
pub fn applications(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &application_resource())
}
pub fn services(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &service_resource())
}

/// `kubectl apply --server-side --force-conflicts` of one manifest (which carries
/// apiVersion, kind and metadata.name).
pub async fn apply(api: &Api<DynamicObject>, manifest: Value) -> DynamicObject {
    let name = manifest["metadata"]["name"]
        .as_str()
        .expect("manifest has a name")
        .to_string();
    api.patch(
        &name,
        &PatchParams::apply(USER_MANAGER).force(),
        &Patch::Apply(&manifest),
    )
    .await
    .unwrap_or_else(|e| panic!("applying {name}: {e}"))
}

/// `kubectl patch --type merge`.
pub async fn merge_patch(api: &Api<DynamicObject>, name: &str, patch: Value) -> DynamicObject {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap_or_else(|e| panic!("patching {name} with {patch}: {e}"))
}

pub fn environment_manifest(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "Environment", "metadata": {"name": name}, "spec": spec})
}
pub fn application_manifest(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "Application", "metadata": {"name": name}, "spec": spec})
}
pub fn service_manifest(name: &str, spec: Value) -> Value {
    json!({"apiVersion": API_VERSION, "kind": "Service", "metadata": {"name": name}, "spec": spec})
}

/// A condition as read from `status.conditions`.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub status: String,
    pub reason: String,
    pub message: String,
}

pub fn condition(object: &DynamicObject, type_: &str) -> Option<Condition> {
    object.data["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
        .map(|c| Condition {
            status: c["status"].as_str().unwrap_or_default().to_string(),
            reason: c["reason"].as_str().unwrap_or_default().to_string(),
            message: c["message"].as_str().unwrap_or_default().to_string(),
        })
}

/// A Deployment's pod selector as a label selector string (`k=v,k=v`), to
/// list its pods.
pub fn pod_selector(deployment: &k8s_openapi::api::apps::v1::Deployment) -> String {
    deployment
        .spec
        .as_ref()
        .expect("a Deployment has a spec")
        .selector
        .match_labels
        .iter()
        .flatten()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One line per condition, for failure messages.
pub fn describe_status(object: &DynamicObject) -> String {
    let generation = object.metadata.generation.unwrap_or_default();
    let observed = &object.data["status"]["observedGeneration"];
    let conditions: Vec<String> = object.data["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            format!(
                "{}={} ({}: {})",
                c["type"], c["status"], c["reason"], c["message"]
            )
        })
        .collect();
    format!(
        "generation {generation}, observedGeneration {observed}, conditions [{}]",
        conditions.join("; ")
    )
}

/// Whether the status was computed from the current spec.
pub fn is_observed(object: &DynamicObject) -> bool {
    object.data["status"]["observedGeneration"].as_i64() == object.metadata.generation
}

/// Waits until the object's status reflects its current generation and its
/// condition `type_` has `status` (and `reason`, when given); returns the object.
pub async fn wait_condition(
    api: &Api<DynamicObject>,
    name: &str,
    type_: &str,
    status: &str,
    reason: Option<&str>,
) -> DynamicObject {
    let what = format!(
        "{name} to have {type_}={status}{}",
        reason.map(|r| format!(" ({r})")).unwrap_or_default()
    );
    wait_until(&what, WAIT, || async {
        let object = api.get(name).await.map_err(|e| e.to_string())?;
        let matches = is_observed(&object)
            && condition(&object, type_)
                .is_some_and(|c| c.status == status && reason.is_none_or(|r| c.reason == r));
        if matches {
            Ok(object)
        } else {
            Err(describe_status(&object))
        }
    })
    .await
}

pub async fn wait_ready(api: &Api<DynamicObject>, name: &str) -> DynamicObject {
    wait_condition(api, name, "Ready", "True", None).await
}

/// Waits until `probe` holds for the object, returning it.
pub async fn wait_object<F>(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    probe: F,
) -> DynamicObject
where
    F: Fn(&DynamicObject) -> Result<(), String>,
{
    wait_until(what, WAIT, || async {
        let object = api.get(name).await.map_err(|e| e.to_string())?;
        probe(&object)
            .map(|()| object.clone())
            .map_err(|e| format!("{e}; {}", describe_status(&object)))
    })
    .await
}

/// Waits until the object exists and returns it.
pub async fn wait_exists<K>(api: &Api<K>, name: &str) -> K
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    wait_until(
        &format!("{} {name} to exist", type_name::<K>()),
        WAIT,
        || async {
            match api.get_opt(name).await {
                Ok(Some(object)) => Ok(object),
                Ok(None) => Err("not found".to_string()),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await
}

/// Waits until a get of the object answers 404.
pub async fn wait_gone<K>(api: &Api<K>, name: &str)
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    wait_until(
        &format!("{} {name} to be gone", type_name::<K>()),
        WAIT,
        || async {
            match api.get(name).await {
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e.to_string()),
                Ok(object) => Err(format!(
                    "still there (deletionTimestamp {:?})",
                    object
                        .meta()
                        .deletion_timestamp
                        .as_ref()
                        .map(|t| t.0.to_string())
                )),
            }
        },
    )
    .await
}

/// `Deployment` for `k8s_openapi::api::apps::v1::Deployment`.
fn type_name<K>() -> &'static str {
    std::any::type_name::<K>()
        .rsplit("::")
        .next()
        .unwrap_or_default()
}

/// Whether the object has a 404 right now.
pub async fn is_absent<K>(api: &Api<K>, name: &str) -> bool
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    match api.get_opt(name).await {
        Ok(found) => found.is_none(),
        Err(e) => panic!("reading {name}: {e}"),
    }
}

/// Warning or Normal Events recorded on the object with `uid`.
pub async fn events_of(client: &Client, namespace: Option<&str>, uid: &str) -> Vec<Event> {
    let api: Api<Event> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    api.list(&ListParams::default().fields(&format!("involvedObject.uid={uid}")))
        .await
        .expect("events list")
        .items
}

/// Waits until an Event with `reason` is recorded on the object.
pub async fn wait_event(
    client: &Client,
    namespace: Option<&str>,
    uid: &str,
    reason: &str,
) -> Event {
    wait_until(&format!("an Event with reason {reason}"), WAIT, || async {
        let events = events_of(client, namespace, uid).await;
        events
            .iter()
            .find(|e| e.reason.as_deref() == Some(reason))
            .cloned()
            .ok_or_else(|| {
                let seen: Vec<_> = events
                    .iter()
                    .map(|e| e.reason.clone().unwrap_or_default())
                    .collect();
                format!("events seen: {seen:?}")
            })
    })
    .await
}

pub fn labels(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> std::collections::BTreeMap<String, String> {
    meta.labels.clone().unwrap_or_default()
}

pub fn annotations(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> std::collections::BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

/// An Environment of one test: unique name, namespace (= name) and domain.
/// Dropping it deletes the Environment (and so its namespace) and any extra
/// namespaces the test registered, even when the test panicked.
pub struct TestEnvironment {
    pub client: Client,
    pub name: String,
    pub namespace: String,
    pub domain: String,
    /// Held for its Drop.
    _cleanup: Cleanup,
}

impl TestEnvironment {
    /// An Environment of type development with domain `<name>.example.test`,
    /// returned once its namespace exists with its default ServiceAccount.
    pub async fn create(prefix: &str) -> Self {
        Self::create_with(prefix, json!({})).await
    }

    /// Like [`create`](Self::create), with extra fields merged into the spec.
    pub async fn create_with(prefix: &str, extra_spec: Value) -> Self {
        let client = client().await;
        let name = unique(prefix);
        let domain = format!("{name}.example.test");
        let mut spec = json!({"type": "development", "domain": domain});
        for (key, value) in extra_spec.as_object().expect("spec object") {
            spec[key] = value.clone();
        }
        let mut cleanup = Cleanup::default();
        cleanup.environments.push(name.clone());
        apply(&environments(&client), environment_manifest(&name, spec)).await;
        let namespaces = Api::<Namespace>::all(client.clone());
        wait_exists(&namespaces, &name).await;
        // Pods need it, and the controller-manager makes it: a Deployment made
        // before it has a ReplicaSet whose refused pod creations back off
        // exponentially (seen after a fault test's 12 s API server outage, when
        // it came late: no pod 90 s on).
        let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &name);
        wait_exists(&accounts, "default").await;
        TestEnvironment {
            client,
            namespace: name.clone(),
            name,
            domain,
            _cleanup: cleanup,
        }
    }

    pub fn applications(&self) -> Api<DynamicObject> {
        applications(&self.client, &self.namespace)
    }
    pub fn services(&self) -> Api<DynamicObject> {
        services(&self.client, &self.namespace)
    }
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    pub async fn apply_application(&self, name: &str, spec: Value) -> DynamicObject {
        apply(&self.applications(), application_manifest(name, spec)).await
    }
    pub async fn apply_service(&self, name: &str, spec: Value) -> DynamicObject {
        apply(&self.services(), service_manifest(name, spec)).await
    }
}

/// Deletes what a test created when it is dropped. Drop cannot await, so the
/// deletions run on a runtime of their own in a short-lived thread.
#[derive(Default)]
pub struct Cleanup {
    pub environments: Vec<String>,
    pub namespaces: Vec<String>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if std::env::var_os("PAVED_E2E_KEEP_OBJECTS").is_some() {
            return;
        }
        let environment_names = std::mem::take(&mut self.environments);
        let namespace_names = std::mem::take(&mut self.namespaces);
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = client().await;
                for name in environment_names {
                    let _ = environments(&client)
                        .delete(&name, &DeleteParams::background())
                        .await;
                }
                for name in namespace_names {
                    let _ = Api::<Namespace>::all(client.clone())
                        .delete(&name, &DeleteParams::background())
                        .await;
                }
            });
        })
        .join();
    }
}

/// An image reference; kwok never pulls images, so it need not exist.
pub fn image(name: &str, tag: &str) -> String {
    format!("registry.example.test/{name}:{tag}")
}

/// Reads `$PAVED_E2E_METRICS/metrics` (plain HTTP on loopback).
pub fn scrape_metrics() -> String {
    controller_http_get("/metrics")
}

/// Every entity of the controller's Backstage catalog (`GET /catalog/backstage`).
pub fn backstage_entities() -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&controller_http_get("/catalog/backstage"))
        .map(|d| serde::Deserialize::deserialize(d).expect("entity YAML"))
        .collect()
}

/// The Backstage Component of the Service `namespace/name`; panics when absent.
pub fn backstage_component(namespace: &str, name: &str) -> Value {
    backstage_entities()
        .into_iter()
        .find(|e| {
            e["kind"] == "Component"
                && e["metadata"]["namespace"] == namespace
                && e["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("{name} in the catalog"))
}

/// GET `path` from the controller's HTTP endpoint (`$PAVED_E2E_METRICS`,
/// plain HTTP on loopback); panics unless the answer is 200.
pub fn controller_http_get(path: &str) -> String {
    use std::io::{Read, Write};
    let base =
        std::env::var("PAVED_E2E_METRICS").unwrap_or_else(|_| "http://127.0.0.1:18080".to_string());
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    // A test may restart the controller (paved_usage.rs, env_lifecycle.rs):
    // its successor listens within a few seconds.
    let started = std::time::Instant::now();
    let mut stream = loop {
        match std::net::TcpStream::connect(address) {
            Ok(stream) => break stream,
            Err(e) if started.elapsed() > std::time::Duration::from_secs(15) => {
                panic!("controller endpoint {address} unreachable: {e}")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(200)),
        }
    };
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200"),
        "GET {path}: {head}\n{body}"
    );
    body.to_string()
}

/// Sum of the samples of `metric` (all label sets matching every `label=value`
/// in `matching`) in a Prometheus text exposition.
pub fn metric_sum(exposition: &str, metric: &str, matching: &[(&str, &str)]) -> f64 {
    exposition
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, labels.trim_end_matches('}')),
                None => (series, ""),
            };
            (name == metric
                && matching
                    .iter()
                    .all(|(k, v)| labels.split(',').any(|l| l == format!("{k}=\"{v}\""))))
            .then(|| value.parse::<f64>().ok())
            .flatten()
        })
        .sum()
}

/// Asserts that `probe` holds at every poll during `period`. For claims of the
/// form "stays so", checked once the cause is observable, never as a bare sleep.
pub async fn holds_for<F, Fut>(what: &str, period: std::time::Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = std::time::Instant::now();
    while start.elapsed() < period {
        if let Err(seen) = probe().await {
            panic!(
                "expected {what} to hold for {period:?}, but after {:?}: {seen}",
                start.elapsed()
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

/// The Deployment's pod template annotations (where Paved puts the config hash).
pub fn template_annotations(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
) -> std::collections::BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.annotations.clone())
        .unwrap_or_default()
}

/// The first container of a Deployment's pod template.
pub fn first_container(
    deployment: &k8s_openapi::api::apps::v1::Deployment,
) -> k8s_openapi::api::core::v1::Container {
    deployment
        .spec
        .as_ref()
        .expect("deployment spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0]
        .clone()
}

/// Where the controller started by `e2e/run.sh` logs.
fn controller_log_path() -> std::path::PathBuf {
    std::env::var_os("PAVED_E2E_CONTROLLER_LOG")
        .map(std::path::PathBuf::from)
        .expect("PAVED_E2E_CONTROLLER_LOG is set by e2e/run.sh")
}

/// Current length of the controller's log: a mark to read new lines from.
pub fn controller_log_mark() -> u64 {
    std::fs::metadata(controller_log_path())
        .map(|m| m.len())
        .unwrap_or(0)
}

/// Waits until the controller logs, after `mark`, the end of a reconcile of a
/// `kind` named `name` (the log names objects without their namespace, so pass
/// a unique name); returns the line.
pub async fn wait_reconcile_logged(mark: u64, kind: &str, name: &str) -> String {
    let path = controller_log_path();
    wait_until(
        &format!("the controller to log a reconcile of {kind} {name}"),
        WAIT,
        || async {
            let log = std::fs::read(&path).map_err(|e| e.to_string())?;
            let new =
                String::from_utf8_lossy(log.get(mark as usize..).unwrap_or_default()).to_string();
            new.lines()
                .find(|line| is_reconcile_line(line, kind, name))
                .map(str::to_string)
                .ok_or_else(|| {
                    format!(
                        "{} new log lines, none about a reconcile of {name}",
                        new.lines().count()
                    )
                })
        },
    )
    .await
}

/// `reconciled kind="Service" object=web` (text) or the same fields in JSON.
fn is_reconcile_line(line: &str, kind: &str, name: &str) -> bool {
    let named = |value: &str| {
        line.match_indices(value).any(|(at, _)| {
            let after = line[at + value.len()..].chars().next();
            !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '-')
        })
    };
    line.contains("reconciled") && named(kind) && named(name)
}
