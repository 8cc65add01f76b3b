//! Production defaults: in an Environment of `type: production`, a Service that
//! does not say how many pods it wants runs two, and every Service that may run
//! more than one gets a PodDisruptionBudget (maxUnavailable 1) as a child —
//! removed again when it no longer applies.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use crate::day2_stop_start::wait_replicas;
use crate::paved_support::{
    PAVED_MANAGER, TestEnvironment, environments, image, is_absent, labels, merge_patch,
    wait_exists, wait_gone, wait_ready,
};
use crate::support::{WAIT, wait_until};

fn application() -> Value {
    json!({"owner": "team-shop", "lifecycle": "production"})
}

fn service(name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "application": "shop",
        "image": image(name, "1.0.0"),
        "ports": [{"name": "http", "port": 8080}],
    });
    for (key, value) in extra.as_object().expect("object") {
        spec[key] = value.clone();
    }
    spec
}

#[tokio::test]
async fn a_production_service_runs_two_pods_by_default_with_a_disruption_budget_and_explicit_replicas_win()
 {
    let env = TestEnvironment::create_with("day2-prod", json!({"type": "production"})).await;
    env.apply_application("shop", application()).await;
    env.apply_service("web", service("web", json!({}))).await;
    env.apply_service("single", service("single", json!({"replicas": 1})))
        .await;
    env.apply_service("wide", service("wide", json!({"replicas": 3})))
        .await;

    let deployments = env.api::<Deployment>();
    let budgets = env.api::<PodDisruptionBudget>();
    wait_replicas(&deployments, "web", Some(2)).await;
    wait_replicas(&deployments, "single", Some(1)).await;
    wait_replicas(&deployments, "wide", Some(3)).await;
    let web = wait_ready(&env.services(), "web").await;
    assert_eq!(web.data["status"]["replicas"]["available"], 2);
    wait_ready(&env.services(), "single").await;
    wait_ready(&env.services(), "wide").await;

    let budget = wait_exists(&budgets, "web").await;
    let spec = budget.spec.clone().expect("budget spec");
    assert_eq!(
        spec.max_unavailable,
        Some(IntOrString::Int(1)),
        "two pods stay drainable one at a time"
    );
    assert_eq!(spec.min_available, None);
    assert_eq!(
        spec.selector
            .and_then(|s| s.match_labels)
            .unwrap_or_default()
            .get("paved.dev/service")
            .map(String::as_str),
        Some("web"),
        "the budget selects the Service's pods"
    );
    let owner = budget
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .expect("a controller owner");
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str()),
        ("Service", "web")
    );
    assert_eq!(Some(&owner.uid), web.metadata.uid.as_ref());
    let budget_labels = labels(&budget.metadata);
    assert_eq!(budget_labels["app.kubernetes.io/managed-by"], "paved");
    assert_eq!(budget_labels["paved.dev/environment"], env.name);
    assert_eq!(budget_labels["backstage.io/kubernetes-id"], "shop");
    assert!(
        budget
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(PAVED_MANAGER)
                && m.operation.as_deref() == Some("Apply")),
        "server-side applied by {PAVED_MANAGER}"
    );
    // With two healthy pods and maxUnavailable 1, one eviction is allowed right now.
    wait_until("the budget to allow one disruption", WAIT, || async {
        let budget = budgets.get("web").await.map_err(|e| e.to_string())?;
        let allowed = budget.status.map(|s| s.disruptions_allowed);
        (allowed == Some(1))
            .then_some(())
            .ok_or_else(|| format!("disruptionsAllowed {allowed:?}"))
    })
    .await;
    wait_exists(&budgets, "wide").await;
    assert!(
        is_absent(&budgets, "single").await,
        "a Service at one pod gets no budget"
    );

    // Scaled down to one pod explicitly: the budget is removed.
    merge_patch(&env.services(), "web", json!({"spec": {"replicas": 1}})).await;
    wait_replicas(&deployments, "web", Some(1)).await;
    wait_gone(&budgets, "web").await;
}

#[tokio::test]
async fn leaving_production_removes_the_budgets_and_the_two_pod_default() {
    let env = TestEnvironment::create_with("day2-prod-leave", json!({"type": "production"})).await;
    env.apply_application("shop", application()).await;
    env.apply_service(
        "api",
        service(
            "api",
            json!({"autoscaling": {"min": 1, "max": 4}, "resources": {"requests": {"cpu": "50m"}}}),
        ),
    )
    .await;
    env.apply_service("web", service("web", json!({}))).await;
    let deployments = env.api::<Deployment>();
    let budgets = env.api::<PodDisruptionBudget>();
    wait_exists(&budgets, "api").await;
    wait_exists(&budgets, "web").await;
    wait_replicas(&deployments, "web", Some(2)).await;

    merge_patch(
        &environments(&env.client),
        &env.name,
        json!({"spec": {"type": "staging"}}),
    )
    .await;
    wait_gone(&budgets, "api").await;
    wait_gone(&budgets, "web").await;
    wait_replicas(&deployments, "web", Some(1)).await;
    wait_ready(&env.services(), "web").await;
}
