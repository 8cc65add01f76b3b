//! Gateway API exposure, as a user sees it: an Environment with `spec.gateway`
//! gives each exposed Service an HTTPRoute (owned by the Service, same host rules
//! and conflicts as Ingresses) attached to a shared Gateway; what the Gateway's
//! controller says about the route (`Accepted`, `ResolvedRefs`) decides whether
//! the Service is Ready; switching between ingress and gateway leaves no orphan.
//!
//! The Gateways here are served by the local cluster's stand-in controller
//! (`e2e/test_gateway.rs`, GatewayClass `paved-e2e`), which sets route status as
//! the Gateway API spec says.

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::paved_support::{
    Cleanup, TestEnvironment, apply, condition, environment_manifest, environments, image,
    wait_condition, wait_exists, wait_gone, wait_object, wait_ready,
};
use crate::support::{client, unique};

fn routes_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
        "httproutes",
    )
}

pub(crate) fn routes(env: &TestEnvironment) -> Api<DynamicObject> {
    Api::namespaced_with(env.client.clone(), &env.namespace, &routes_resource())
}

fn gateways(client: &Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(
        client.clone(),
        namespace,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "Gateway"),
            "gateways",
        ),
    )
}

/// A platform team's shared Gateway in a namespace of its own (deleted with the
/// returned guard): class `paved-e2e`, one HTTP listener for `hostname`,
/// admitting routes from every namespace.
pub(crate) async fn shared_gateway(hostname: &str) -> (String, Cleanup) {
    let client = client().await;
    let namespace = unique("gw");
    let cleanup = Cleanup {
        environments: vec![],
        namespaces: vec![namespace.clone()],
    };
    Api::<Namespace>::all(client.clone())
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": namespace}})).unwrap(),
        )
        .await
        .unwrap();
    apply(&gateways(&client, &namespace), gateway_manifest(hostname)).await;
    (namespace, cleanup)
}

fn gateway_manifest(hostname: &str) -> Value {
    json!({
        "apiVersion": "gateway.networking.k8s.io/v1",
        "kind": "Gateway",
        "metadata": {"name": "edge"},
        "spec": {
            "gatewayClassName": "paved-e2e",
            "listeners": [{
                "name": "http", "protocol": "HTTP", "port": 80, "hostname": hostname,
                "allowedRoutes": {"namespaces": {"from": "All"}},
            }],
        },
    })
}

pub(crate) fn gateway_spec(gateway_namespace: &str) -> Value {
    json!({"gateway": {"parentRefs": [{"namespace": gateway_namespace, "name": "edge"}]}})
}

pub(crate) async fn shop(env: &TestEnvironment) {
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
}

pub(crate) fn web(expose: Value) -> Value {
    json!({
        "application": "shop",
        "image": image("web", "1"),
        "ports": [{"name": "http", "port": 8080}],
        "expose": expose,
    })
}

#[tokio::test]
async fn an_exposed_service_of_a_gateway_environment_gets_an_accepted_route_and_loses_it_with_the_service()
 {
    let (gateway_namespace, _gateway) = shared_gateway("*.example.test").await;
    let env = TestEnvironment::create_with("gw-route", gateway_spec(&gateway_namespace)).await;
    shop(&env).await;
    env.apply_service("web", web(json!({}))).await;
    env.apply_service(
        "api",
        web(json!({"host": format!("api.{}", env.domain), "path": "/v1"})),
    )
    .await;
    let service = wait_ready(&env.services(), "web").await;
    // A careless second claim of web's host, a second later (claims order by
    // creationTimestamp, to the second): the first claimant keeps it.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    env.apply_service("copy", web(json!({"host": format!("web.{}", env.domain)})))
        .await;
    assert_eq!(
        service.data["status"]["url"],
        json!(format!("https://web.{}", env.domain)),
        "behind a Gateway the URL is https: its listeners terminate TLS"
    );
    let route = wait_exists(&routes(&env), "web").await;
    assert_eq!(
        route.data["spec"]["hostnames"],
        json!([format!("web.{}", env.domain)])
    );
    let parent = &route.data["spec"]["parentRefs"][0];
    assert_eq!(parent["namespace"], json!(gateway_namespace));
    assert_eq!(parent["name"], json!("edge"));
    let rule = &route.data["spec"]["rules"][0];
    assert_eq!(
        rule["matches"][0]["path"],
        json!({"type": "PathPrefix", "value": "/"})
    );
    assert_eq!(rule["backendRefs"][0]["name"], json!("web"));
    assert_eq!(rule["backendRefs"][0]["port"], json!(8080));
    let owner = &route.owner_references()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    assert_eq!(owner.controller, Some(true));
    assert_eq!(route.labels()["backstage.io/kubernetes-id"], "shop");
    assert_eq!(route.labels()["app.kubernetes.io/managed-by"], "paved");
    assert_eq!(route.annotations()["cortex.io/tag"], "web");
    let accepted = &route.data["status"]["parents"][0];
    assert_eq!(accepted["controllerName"], json!("paved.dev/e2e-gateway"));

    let api = wait_ready(&env.services(), "api").await;
    assert_eq!(
        api.data["status"]["url"],
        json!(format!("https://api.{}/v1", env.domain))
    );
    let api_route = wait_exists(&routes(&env), "api").await;
    assert_eq!(
        api_route.data["spec"]["rules"][0]["matches"][0]["path"]["value"],
        json!("/v1")
    );

    // The host web holds is refused to the later claimant, which gets no route.
    let copy = wait_condition(
        &env.services(),
        "copy",
        "Stalled",
        "True",
        Some("HostConflict"),
    )
    .await;
    assert!(condition(&copy, "Ready").unwrap().message.contains("web"));
    assert!(routes(&env).get_opt("copy").await.unwrap().is_none());
    // No Ingress for anyone in a gateway Environment.
    assert!(
        env.api::<Ingress>()
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // Deleting the Service takes its route with it.
    env.services()
        .delete("web", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_gone(&routes(&env), "web").await;
    // And the host goes to the next claimant, on a route of its own.
    let copy_route = wait_exists(&routes(&env), "copy").await;
    assert_eq!(
        copy_route.data["spec"]["hostnames"],
        json!([format!("web.{}", env.domain)])
    );
}

#[tokio::test]
async fn a_route_the_gateway_refuses_leaves_the_service_not_ready_with_the_gateways_own_message() {
    // The platform team's listener serves another domain only.
    let (gateway_namespace, _gateway) = shared_gateway("*.elsewhere.example.org").await;
    let env = TestEnvironment::create_with("gw-refused", gateway_spec(&gateway_namespace)).await;
    shop(&env).await;
    env.apply_service("web", web(json!({}))).await;

    let refused = wait_condition(
        &env.services(),
        "web",
        "Stalled",
        "True",
        Some("RouteNotAccepted"),
    )
    .await;
    let ready = condition(&refused, "Ready").unwrap();
    assert_eq!(ready.status, "False");
    assert!(
        ready
            .message
            .contains(&format!("Gateway {gateway_namespace}/edge"))
            && ready.message.contains("NoMatchingListenerHostname")
            && ready.message.contains("match no listener hostname"),
        "the Gateway's own words: {}",
        ready.message
    );
    assert!(!ready.message.contains('\n'));
    // The Application and Environment roll the stall up rather than wait for ever.
    wait_condition(&env.applications(), "shop", "Stalled", "True", None).await;

    // The platform team widens the listener: the same route is accepted, no change by the user.
    apply(
        &gateways(&env.client, &gateway_namespace),
        gateway_manifest("*.example.test"),
    )
    .await;
    wait_ready(&env.services(), "web").await;

    // A Gateway that does not exist: nobody answers, the Service says what it waits for.
    apply(
        &environments(&env.client),
        environment_manifest(
            &env.name,
            json!({"type": "development", "domain": env.domain,
                   "gateway": {"parentRefs": [{"namespace": gateway_namespace, "name": "missing"}]}}),
        ),
    )
    .await;
    let waiting = wait_condition(
        &env.services(),
        "web",
        "Reconciling",
        "True",
        Some("WaitingForGateway"),
    )
    .await;
    assert!(
        condition(&waiting, "Ready")
            .unwrap()
            .message
            .contains(&format!("Gateway {gateway_namespace}/missing")),
        "{:?}",
        condition(&waiting, "Ready")
    );
}

#[tokio::test]
async fn switching_an_environment_from_ingress_to_gateway_and_back_leaves_no_orphan() {
    let (gateway_namespace, _gateway) = shared_gateway("*.example.test").await;
    let env = TestEnvironment::create("gw-switch").await;
    shop(&env).await;
    env.apply_service("web", web(json!({}))).await;
    wait_exists(&env.api::<Ingress>(), "web").await;
    wait_ready(&env.services(), "web").await;

    let ingress_spec = json!({"type": "development", "domain": env.domain});
    let mut gateway_spec = gateway_spec(&gateway_namespace);
    gateway_spec["type"] = json!("development");
    gateway_spec["domain"] = json!(env.domain);

    apply(
        &environments(&env.client),
        environment_manifest(&env.name, gateway_spec.clone()),
    )
    .await;
    wait_exists(&routes(&env), "web").await;
    wait_gone(&env.api::<Ingress>(), "web").await;
    wait_object(
        &env.services(),
        "web",
        "web Ready behind the Gateway",
        |s| {
            let ready = condition(s, "Ready").ok_or("no Ready")?;
            (ready.status == "True"
                && s.data["status"]["url"] == json!(format!("https://web.{}", env.domain)))
            .then_some(())
            .ok_or_else(|| format!("{ready:?}"))
        },
    )
    .await;

    apply(
        &environments(&env.client),
        environment_manifest(&env.name, ingress_spec),
    )
    .await;
    wait_exists(&env.api::<Ingress>(), "web").await;
    wait_gone(&routes(&env), "web").await;
    wait_ready(&env.services(), "web").await;

    // Both at once is refused at admission, with a message that says which to keep.
    let mut both = gateway_spec;
    both["ingress"] = json!({"className": "nginx"});
    let refused = environments(&env.client)
        .patch(
            &env.name,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&environment_manifest(&env.name, both)),
        )
        .await
        .expect_err("ingress and gateway together");
    assert!(refused.to_string().contains("not both"), "{refused}");
}

#[tokio::test]
async fn a_gateway_environment_refuses_the_same_parent_twice_and_an_empty_list_at_admission() {
    let client = client().await;
    let name = unique("gw-schema");
    for (parent_refs, expected) in [
        (
            json!([{"namespace": "infra", "name": "edge"}, {"namespace": "infra", "name": "edge"}]),
            "different Gateway",
        ),
        (json!([]), "parentRefs"),
        (
            json!([{"namespace": "Infra!", "name": "edge"}]),
            "namespace",
        ),
    ] {
        let refused = environments(&client)
            .patch(
                &name,
                &PatchParams::apply("e2e-user").force(),
                &Patch::Apply(&environment_manifest(
                    &name,
                    json!({"domain": format!("{name}.example.test"), "gateway": {"parentRefs": parent_refs}}),
                )),
            )
            .await
            .expect_err("refused at admission");
        assert!(
            refused.to_string().contains(expected),
            "{parent_refs}: {refused}"
        );
    }
    // The same Gateway through two listeners is two parents, and fine.
    let _cleanup = Cleanup {
        environments: vec![name.clone()],
        namespaces: vec![],
    };
    apply(
        &environments(&client),
        environment_manifest(
            &name,
            json!({"domain": format!("{name}.example.test"), "gateway": {"parentRefs": [
                {"namespace": "infra", "name": "edge", "sectionName": "http"},
                {"namespace": "infra", "name": "edge", "sectionName": "https"},
            ]}}),
        ),
    )
    .await;
}

#[tokio::test]
async fn a_preview_of_a_gateway_environment_gets_routes_on_its_own_domain() {
    let (gateway_namespace, _gateway) = shared_gateway("*.example.test").await;
    let base = TestEnvironment::create_with("gw-base", gateway_spec(&gateway_namespace)).await;
    shop(&base).await;
    base.apply_service("web", web(json!({"host": format!("shop.{}", base.domain)})))
        .await;
    wait_ready(&base.services(), "web").await;

    let mut preview_spec = gateway_spec(&gateway_namespace);
    preview_spec["type"] = json!("preview");
    preview_spec["cloneFrom"] = json!({"environment": base.name});
    let preview = TestEnvironment::create_with("gw-preview", preview_spec).await;
    let route = wait_exists(&routes(&preview), "web").await;
    assert_eq!(
        route.data["spec"]["hostnames"],
        json!([format!("shop.{}", preview.domain)]),
        "the host moves to the preview's domain, as with Ingresses"
    );
    wait_ready(&preview.services(), "web").await;
    // The base keeps its own.
    let base_route = wait_exists(&routes(&base), "web").await;
    assert_eq!(
        base_route.data["spec"]["hostnames"],
        json!([format!("shop.{}", base.domain)])
    );
}
