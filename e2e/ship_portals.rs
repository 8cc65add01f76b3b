//! Portals: what `examples/integrations/backstage/` and `cortex/` tell users to
//! rely on holds on live children — `backstage.io/kubernetes-id` labels and the
//! `cortex.io/tag` annotation — and every custom resource the Backstage config
//! lists is served by the cluster.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service as CoreService;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta};
use serde_json::json;

use crate::paved_support::{TestEnvironment, image, wait_exists, wait_ready};
use crate::ship_support::yaml_file_as_json;

fn check_portal_keys(kind: &str, meta: &ObjectMeta, service: &str, application: &str) {
    let labels = meta.labels.clone().unwrap_or_default();
    let annotations: BTreeMap<String, String> = meta.annotations.clone().unwrap_or_default();
    assert_eq!(
        labels.get("backstage.io/kubernetes-id").map(String::as_str),
        Some(application),
        "{kind} {service}: backstage.io/kubernetes-id label"
    );
    assert_eq!(
        annotations.get("cortex.io/tag").map(String::as_str),
        Some(service),
        "{kind} {service}: cortex.io/tag annotation"
    );
}

#[tokio::test]
async fn backstage_and_cortex_find_every_child_by_the_documented_keys() {
    let env = TestEnvironment::create("ship-portals").await;
    env.apply_application(
        "checkout",
        json!({"owner": "team-checkout", "lifecycle": "production"}),
    )
    .await;
    env.apply_service(
        "checkout-api",
        json!({"application": "checkout", "image": image("checkout-api", "1"), "ports": [{"name": "http", "port": 8080}],
               "expose": {}, "autoscaling": {"min": 1, "max": 3}}),
    )
    .await;
    wait_ready(&env.services(), "checkout-api").await;

    let deployment: Deployment = wait_exists(&env.api(), "checkout-api").await;
    check_portal_keys(
        "Deployment",
        &deployment.metadata,
        "checkout-api",
        "checkout",
    );
    let template = deployment.spec.unwrap().template.metadata.unwrap();
    check_portal_keys("pod template", &template, "checkout-api", "checkout");
    let core: CoreService = wait_exists(&env.api(), "checkout-api").await;
    check_portal_keys("Service", &core.metadata, "checkout-api", "checkout");
    let ingress: Ingress = wait_exists(&env.api(), "checkout-api").await;
    check_portal_keys("Ingress", &ingress.metadata, "checkout-api", "checkout");
    let autoscaler: HorizontalPodAutoscaler = wait_exists(&env.api(), "checkout-api").await;
    check_portal_keys(
        "HorizontalPodAutoscaler",
        &autoscaler.metadata,
        "checkout-api",
        "checkout",
    );
}

#[tokio::test]
async fn backstage_custom_resources_name_served_paved_resources() {
    let config = yaml_file_as_json("examples/integrations/backstage/app-config.yaml");
    let listed = config["kubernetes"]["customResources"]
        .as_array()
        .expect("kubernetes.customResources");
    let crds: Api<CustomResourceDefinition> = Api::all(crate::support::client().await);
    let mut plurals = Vec::new();
    for entry in listed {
        let (group, version, plural) = (
            entry["group"].as_str().unwrap(),
            entry["apiVersion"].as_str().unwrap(),
            entry["plural"].as_str().unwrap(),
        );
        let crd = crds
            .get(&format!("{plural}.{group}"))
            .await
            .unwrap_or_else(|e| panic!("{plural}.{group}: {e}"));
        assert!(
            crd.spec
                .versions
                .iter()
                .any(|v| v.name == version && v.served),
            "{plural}.{group} does not serve {version}"
        );
        plurals.push(plural.to_string());
    }
    plurals.sort();
    assert_eq!(
        plurals,
        ["applications", "environments", "httproutes", "services"],
        "every Paved kind is listed, and the HTTPRoutes of Services behind a Gateway"
    );
}
