//! `paved-test-gateway`: a minimal Gateway API controller for the local cluster,
//! which has no data plane. It owns the GatewayClasses whose `controllerName` is
//! `paved.dev/e2e-gateway` and does what a real implementation does with status,
//! nothing else:
//!
//! - GatewayClass: `Accepted=True`.
//! - Gateway of such a class: `Accepted=True`, `Programmed=True`.
//! - HTTPRoute: for each `parentRef` to such a Gateway, one `status.parents` entry
//!   with this controller's name, as the Gateway API spec says:
//!   `Accepted` False with `NoMatchingParent` (no listener of that `sectionName`),
//!   `NotAllowedByListeners` (no listener admits routes from the route's
//!   namespace: `allowedRoutes.namespaces.from` Same, All or a Selector's
//!   matchLabels) or `NoMatchingListenerHostname` (no route hostname matches a
//!   listener's `hostname`, wildcards included), else True; `ResolvedRefs` False
//!   with `RefNotPermitted` (a backend in another namespace: ReferenceGrants are
//!   not implemented), `InvalidKind` (not a core Service) or `BackendNotFound`
//!   (no such Service, or no such port on it), else True. Entries of other
//!   controllers are kept; its own entries for parents it no longer serves are
//!   removed.
//!
//! Event-driven (a watch on each kind it reads, then every route is recomputed)
//! and it writes only what changed. `make dev` and the e2e cluster run it.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const CONTROLLER_NAME: &str = "paved.dev/e2e-gateway";
const GROUP: &str = "gateway.networking.k8s.io";

fn resource(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(GROUP, "v1", kind), plural)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let classes = resource("GatewayClass", "gatewayclasses");
    let gateways = resource("Gateway", "gateways");
    let routes = resource("HTTPRoute", "httproutes");
    let changes = futures::stream::select_all(vec![
        watch(Api::<DynamicObject>::all_with(client.clone(), &classes)),
        watch(Api::<DynamicObject>::all_with(client.clone(), &gateways)),
        watch(Api::<DynamicObject>::all_with(client.clone(), &routes)),
        watch(Api::<Service>::all(client.clone())),
        watch(Api::<Namespace>::all(client.clone())),
    ]);
    // A resync as a safety net, beside the watches.
    let ticks = futures::stream::unfold((), |_| async {
        tokio::time::sleep(Duration::from_secs(10)).await;
        Some(((), ()))
    });
    let mut wake = futures::stream::select(changes, ticks).boxed();
    eprintln!("paved-test-gateway: serving GatewayClasses with controllerName {CONTROLLER_NAME}");
    while wake.next().await.is_some() {
        // Fold a burst of events into one pass.
        tokio::time::sleep(Duration::from_millis(50)).await;
        while let Some(Some(())) = futures::FutureExt::now_or_never(wake.next()) {}
        if let Err(error) = sync(&client, &classes, &gateways, &routes).await {
            eprintln!("paved-test-gateway: {error}");
        }
    }
    Ok(())
}

/// `()` for every event of a watch (errors are retried by the watcher's backoff).
fn watch<K>(api: Api<K>) -> futures::stream::BoxStream<'static, ()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash,
{
    use kube::runtime::WatchStreamExt;
    watcher(api, watcher::Config::default())
        .default_backoff()
        .filter_map(|event| async move { event.ok().map(|_| ()) })
        .boxed()
}

fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap()
        .to_string()
}

fn condition(type_: &str, ok: bool, reason: &str, message: &str, generation: i64) -> Value {
    json!({
        "type": type_,
        "status": if ok { "True" } else { "False" },
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": now(),
    })
}

/// Conditions compared without their timestamps: a pass that changes nothing writes nothing.
fn same_conditions(a: &Value, b: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        strip_times(&mut v);
        v
    };
    strip(a) == strip(b)
}

fn strip_times(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.remove("lastTransitionTime");
            map.values_mut().for_each(strip_times);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_times),
        _ => {}
    }
}

async fn patch_status(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    status: Value,
) -> kube::Result<()> {
    let name = object.name_any();
    api.patch_status(
        &name,
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await
    .map(|_| ())
}

async fn sync(
    client: &Client,
    classes: &ApiResource,
    gateways: &ApiResource,
    routes: &ApiResource,
) -> kube::Result<()> {
    let class_api = Api::<DynamicObject>::all_with(client.clone(), classes);
    let ours: Vec<DynamicObject> = class_api
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|c| c.data["spec"]["controllerName"] == CONTROLLER_NAME)
        .collect();
    for class in &ours {
        let generation = class.metadata.generation.unwrap_or(1);
        let conditions = json!([condition(
            "Accepted",
            true,
            "Accepted",
            "handled by the Paved e2e test gateway (no data plane)",
            generation
        )]);
        if !same_conditions(&class.data["status"]["conditions"], &conditions) {
            patch_status(&class_api, class, json!({"conditions": conditions})).await?;
        }
    }
    let our_classes: Vec<String> = ours.iter().map(|c| c.name_any()).collect();

    let all_gateways = Api::<DynamicObject>::all_with(client.clone(), gateways)
        .list(&ListParams::default())
        .await?
        .items;
    let our_gateways: BTreeMap<(String, String), DynamicObject> = all_gateways
        .into_iter()
        .filter(|g| {
            g.data["spec"]["gatewayClassName"]
                .as_str()
                .is_some_and(|c| our_classes.iter().any(|o| o == c))
        })
        .map(|g| ((g.namespace().unwrap_or_default(), g.name_any()), g))
        .collect();
    for ((namespace, _), gateway) in &our_gateways {
        let generation = gateway.metadata.generation.unwrap_or(1);
        let conditions = json!([
            condition(
                "Accepted",
                true,
                "Accepted",
                "accepted by the Paved e2e test gateway",
                generation
            ),
            condition(
                "Programmed",
                true,
                "Programmed",
                "programmed (the test gateway has no data plane)",
                generation
            ),
        ]);
        if !same_conditions(&gateway.data["status"]["conditions"], &conditions) {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), namespace, gateways);
            patch_status(&api, gateway, json!({"conditions": conditions})).await?;
        }
    }

    let namespaces: BTreeMap<String, Namespace> = Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|n| (n.name_any(), n))
        .collect();
    let services: BTreeMap<(String, String), Service> = Api::<Service>::all(client.clone())
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .map(|s| ((s.namespace().unwrap_or_default(), s.name_any()), s))
        .collect();
    for route in Api::<DynamicObject>::all_with(client.clone(), routes)
        .list(&ListParams::default())
        .await?
        .items
    {
        let namespace = route.namespace().unwrap_or_default();
        let generation = route.metadata.generation.unwrap_or(1);
        let mut parents: Vec<Value> = route.data["status"]["parents"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|p| p["controllerName"] != CONTROLLER_NAME)
            .collect();
        let resolved = resolved_refs(&route, &namespace, &services);
        for parent in route.data["spec"]["parentRefs"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            let group = parent["group"].as_str().unwrap_or(GROUP);
            let kind = parent["kind"].as_str().unwrap_or("Gateway");
            if group != GROUP || kind != "Gateway" {
                continue;
            }
            let gateway_namespace = parent["namespace"]
                .as_str()
                .unwrap_or(&namespace)
                .to_string();
            let Some(gateway) = our_gateways.get(&(
                gateway_namespace,
                parent["name"].as_str().unwrap_or_default().to_string(),
            )) else {
                continue;
            };
            let (accepted, reason, message) =
                accepted(&route, &namespace, &parent, gateway, &namespaces);
            parents.push(json!({
                "parentRef": parent,
                "controllerName": CONTROLLER_NAME,
                "conditions": [
                    condition("Accepted", accepted, reason, &message, generation),
                    condition("ResolvedRefs", resolved.0, resolved.1, &resolved.2, generation),
                ],
            }));
        }
        let before = route.data["status"]["parents"].clone();
        let before = if before.is_null() { json!([]) } else { before };
        if !same_conditions(&before, &Value::Array(parents.clone())) {
            let api = Api::<DynamicObject>::namespaced_with(client.clone(), &namespace, routes);
            if let Err(error) = patch_status(&api, &route, json!({"parents": parents})).await {
                eprintln!(
                    "paved-test-gateway: HTTPRoute {namespace}/{}: {error}",
                    route.name_any()
                );
            }
        }
    }
    Ok(())
}

/// `Accepted` of a route on one Gateway: which listeners admit it.
fn accepted(
    route: &DynamicObject,
    namespace: &str,
    parent: &Value,
    gateway: &DynamicObject,
    namespaces: &BTreeMap<String, Namespace>,
) -> (bool, &'static str, String) {
    let gateway_name = format!(
        "{}/{}",
        gateway.namespace().unwrap_or_default(),
        gateway.name_any()
    );
    let listeners: Vec<Value> = gateway.data["spec"]["listeners"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|l| {
            parent["sectionName"]
                .as_str()
                .is_none_or(|s| l["name"] == s)
        })
        .collect();
    if listeners.is_empty() {
        return (
            false,
            "NoMatchingParent",
            format!(
                "Gateway {gateway_name} has no listener named {}",
                parent["sectionName"]
            ),
        );
    }
    let allowed: Vec<&Value> = listeners
        .iter()
        .filter(|l| {
            allows_namespace(
                l,
                namespace,
                &gateway.namespace().unwrap_or_default(),
                namespaces,
            )
        })
        .collect();
    if allowed.is_empty() {
        return (
            false,
            "NotAllowedByListeners",
            format!(
                "no listener of Gateway {gateway_name} allows routes from namespace {namespace} (allowedRoutes)"
            ),
        );
    }
    let hostnames: Vec<String> = route.data["spec"]["hostnames"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let matching = allowed.iter().any(|l| match l["hostname"].as_str() {
        None => true,
        Some(pattern) => {
            hostnames.is_empty() || hostnames.iter().any(|h| hostname_matches(pattern, h))
        }
    });
    if !matching {
        let patterns: Vec<&str> = allowed
            .iter()
            .filter_map(|l| l["hostname"].as_str())
            .collect();
        return (
            false,
            "NoMatchingListenerHostname",
            format!(
                "hostnames {} match no listener hostname of Gateway {gateway_name} ({})",
                hostnames.join(", "),
                patterns.join(", ")
            ),
        );
    }
    (
        true,
        "Accepted",
        format!("accepted by Gateway {gateway_name}"),
    )
}

fn allows_namespace(
    listener: &Value,
    namespace: &str,
    gateway_namespace: &str,
    namespaces: &BTreeMap<String, Namespace>,
) -> bool {
    let from = &listener["allowedRoutes"]["namespaces"];
    match from["from"].as_str().unwrap_or("Same") {
        "All" => true,
        "Selector" => {
            let labels = namespaces
                .get(namespace)
                .map(|n| n.labels().clone())
                .unwrap_or_default();
            from["selector"]["matchLabels"]
                .as_object()
                .is_some_and(|want| {
                    want.iter()
                        .all(|(k, v)| labels.get(k).map(String::as_str) == v.as_str())
                })
        }
        _ => namespace == gateway_namespace,
    }
}

/// Gateway API hostname matching: exact, or `*.example.com` for any name with
/// at least one more label in front.
fn hostname_matches(pattern: &str, host: &str) -> bool {
    match pattern.strip_prefix("*.") {
        Some(suffix) => host
            .strip_suffix(suffix)
            .is_some_and(|front| front.ends_with('.') && front.len() > 1),
        None => pattern == host,
    }
}

/// `ResolvedRefs` of a route: every backend a core Service in its namespace, with that port.
fn resolved_refs(
    route: &DynamicObject,
    namespace: &str,
    services: &BTreeMap<(String, String), Service>,
) -> (bool, &'static str, String) {
    for rule in route.data["spec"]["rules"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for backend in rule["backendRefs"].as_array().cloned().unwrap_or_default() {
            let name = backend["name"].as_str().unwrap_or_default();
            if !backend["group"].as_str().unwrap_or("").is_empty()
                || backend["kind"].as_str().unwrap_or("Service") != "Service"
            {
                return (
                    false,
                    "InvalidKind",
                    format!("backend {name} is not a core Service"),
                );
            }
            if backend["namespace"]
                .as_str()
                .is_some_and(|n| n != namespace)
            {
                return (
                    false,
                    "RefNotPermitted",
                    format!(
                        "backend {name} is in another namespace and the test gateway implements no ReferenceGrant"
                    ),
                );
            }
            let Some(service) = services.get(&(namespace.to_string(), name.to_string())) else {
                return (
                    false,
                    "BackendNotFound",
                    format!("Service {namespace}/{name} does not exist"),
                );
            };
            let port = backend["port"].as_i64();
            let has_port = service
                .spec
                .as_ref()
                .and_then(|s| s.ports.as_ref())
                .is_some_and(|ports| ports.iter().any(|p| Some(i64::from(p.port)) == port));
            if !has_port {
                return (
                    false,
                    "BackendNotFound",
                    format!("Service {namespace}/{name} has no port {}", backend["port"]),
                );
            }
        }
    }
    (true, "ResolvedRefs", "every backend resolved".into())
}

#[cfg(test)]
mod tests {
    use super::hostname_matches;

    #[test]
    fn a_wildcard_listener_matches_names_below_it_but_not_itself() {
        assert!(hostname_matches("*.example.com", "web.example.com"));
        assert!(hostname_matches("*.example.com", "a.b.example.com"));
        assert!(!hostname_matches("*.example.com", "example.com"));
        assert!(!hostname_matches("*.example.com", "webexample.com"));
        assert!(hostname_matches("web.example.com", "web.example.com"));
        assert!(!hostname_matches("web.example.com", "api.example.com"));
    }
}
