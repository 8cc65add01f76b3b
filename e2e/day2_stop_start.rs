//! Stop and start, Service side: `spec.lifecycle.stopped: true` on the
//! Environment scales every Deployment to zero and removes the HPAs, deleting
//! nothing else; the Services say `Stopped` (Ready=True, so Argo CD and kstatus
//! see the state that was asked for). Set back to false, the declared replicas
//! and the HPAs come back exactly, and the pods are not rolled for it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{Pod, Service as CoreService};
use kube::Api;
use kube::api::{DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::paved_support::{
    PAVED_MANAGER, TestEnvironment, condition, environments, image, merge_patch,
    template_annotations, wait_condition, wait_exists, wait_gone, wait_object, wait_ready,
};
use crate::support::{WAIT, wait_until};

pub async fn wait_replicas(deployments: &Api<Deployment>, name: &str, want: Option<i32>) {
    wait_until(
        &format!("Deployment {name} to have spec.replicas {want:?}"),
        WAIT,
        || async {
            let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
            let replicas = deployment.spec.and_then(|s| s.replicas);
            (replicas == want)
                .then_some(())
                .ok_or_else(|| format!("spec.replicas {replicas:?}"))
        },
    )
    .await;
}

pub async fn wait_no_pods(env: &TestEnvironment, service: &str) {
    let pods = env.api::<Pod>();
    wait_until(
        &format!("the pods of {service} to be gone"),
        WAIT,
        || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("paved.dev/service={service}")))
                .await
                .map_err(|e| e.to_string())?;
            list.items
                .is_empty()
                .then_some(())
                .ok_or_else(|| format!("{} pods left", list.items.len()))
        },
    )
    .await;
}

/// Waits until the Service reports `Stopped` (Ready=True) with no pod desired.
pub async fn wait_stopped(services: &Api<DynamicObject>, name: &str) -> DynamicObject {
    let stopped = wait_condition(services, name, "Ready", "True", Some("Stopped")).await;
    assert_eq!(stopped.data["status"]["replicas"]["desired"], 0);
    assert!(
        condition(&stopped, "Stalled").is_none(),
        "a stopped Service is not stalled"
    );
    stopped
}

fn hpa_spec(hpa: &HorizontalPodAutoscaler) -> Value {
    serde_json::to_value(hpa.spec.as_ref().expect("hpa spec")).unwrap()
}

/// Whether Paved's own Apply entry on the Deployment owns spec.replicas.
fn paved_owns_replicas(deployment: &Deployment) -> bool {
    deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.manager.as_deref() == Some(PAVED_MANAGER) && m.operation.as_deref() == Some("Apply")
        })
        .any(|m| {
            m.fields_v1
                .as_ref()
                .is_some_and(|f| f.0["f:spec"].get("f:replicas").is_some())
        })
}

#[tokio::test]
async fn stop_then_start_restores_fixed_replicas_and_hpas_exactly_and_deletes_nothing_else() {
    let env = TestEnvironment::create("day2-stop").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "fixed",
        json!({"application": "shop", "image": image("fixed", "1"), "ports": [{"name": "http", "port": 8080}], "replicas": 3, "expose": {}}),
    )
    .await;
    env.apply_service(
        "auto",
        json!({
            "application": "shop", "image": image("auto", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "autoscaling": {"min": 2, "max": 5, "cpuUtilization": 60},
            "resources": {"requests": {"cpu": "50m"}}
        }),
    )
    .await;
    let deployments = env.api::<Deployment>();
    let hpas = env.api::<HorizontalPodAutoscaler>();
    wait_replicas(&deployments, "fixed", Some(3)).await;
    wait_replicas(&deployments, "auto", Some(2)).await;
    let fixed_before = wait_ready(&env.services(), "fixed").await;
    let auto_before = wait_object(&env.services(), "auto", "auto Ready with 2 pods", |s| {
        (condition(s, "Ready").is_some_and(|c| c.status == "True")
            && s.data["status"]["replicas"]["ready"] == 2)
            .then_some(())
            .ok_or_else(|| format!("replicas {}", s.data["status"]["replicas"]))
    })
    .await;
    let hpa_before = hpa_spec(&wait_exists(&hpas, "auto").await);
    let template_before = template_annotations(&deployments.get("fixed").await.unwrap());

    // --- stop ---------------------------------------------------------------
    merge_patch(
        &environments(&env.client),
        &env.name,
        json!({"spec": {"lifecycle": {"stopped": true}}}),
    )
    .await;
    wait_replicas(&deployments, "fixed", Some(0)).await;
    wait_replicas(&deployments, "auto", Some(0)).await;
    wait_gone(&hpas, "auto").await;
    wait_no_pods(&env, "fixed").await;
    wait_no_pods(&env, "auto").await;
    let fixed_stopped = wait_stopped(&env.services(), "fixed").await;
    wait_stopped(&env.services(), "auto").await;
    assert!(
        condition(&fixed_stopped, "Ready")
            .unwrap()
            .message
            .contains(&format!("paved start {}", env.name)),
        "the message says how to start again"
    );
    // Nothing else deleted: the core Services and the Ingress stay.
    wait_exists(&env.api::<CoreService>(), "fixed").await;
    wait_exists(&env.api::<CoreService>(), "auto").await;
    wait_exists(
        &env.api::<k8s_openapi::api::networking::v1::Ingress>(),
        "fixed",
    )
    .await;
    assert_eq!(
        fixed_stopped.data["status"]["revision"], fixed_before.data["status"]["revision"],
        "stopping is not a new revision"
    );
    // The Application counts a stopped Service as ready: nothing is wrong.
    wait_ready(&env.applications(), "shop").await;

    // --- start --------------------------------------------------------------
    merge_patch(
        &environments(&env.client),
        &env.name,
        json!({"spec": {"lifecycle": {"stopped": false}}}),
    )
    .await;
    wait_replicas(&deployments, "fixed", Some(3)).await;
    let hpa_after = hpa_spec(&wait_exists(&hpas, "auto").await);
    assert_eq!(hpa_after, hpa_before, "the HPA comes back as declared");
    // The HPA, not Paved, brings the autoscaled Deployment back to its minimum.
    wait_replicas(&deployments, "auto", Some(2)).await;
    let auto_deployment = deployments.get("auto").await.unwrap();
    assert!(
        !paved_owns_replicas(&auto_deployment),
        "after start, replicas of the autoscaled Deployment belong to the HPA again"
    );
    let fixed_after =
        wait_condition(&env.services(), "fixed", "Ready", "True", Some("Available")).await;
    let auto_after = wait_object(&env.services(), "auto", "auto Available with 2 pods", |s| {
        (condition(s, "Ready").is_some_and(|c| c.status == "True" && c.reason == "Available")
            && s.data["status"]["replicas"]["ready"] == 2)
            .then_some(())
            .ok_or_else(|| format!("replicas {}", s.data["status"]["replicas"]))
    })
    .await;
    assert_eq!(fixed_after.data["status"]["replicas"]["available"], 3);
    assert_eq!(
        template_annotations(&deployments.get("fixed").await.unwrap()),
        template_before,
        "stop/start does not change the pod template"
    );
    assert_eq!(
        fixed_after.data["status"]["revision"], fixed_before.data["status"]["revision"],
        "starting is not a new revision"
    );
    assert_eq!(
        auto_after.data["status"]["revision"], auto_before.data["status"]["revision"],
        "starting is not a new revision"
    );
}

#[tokio::test]
async fn a_service_created_in_a_stopped_environment_starts_at_zero_and_runs_when_started() {
    let env =
        TestEnvironment::create_with("day2-stopped-new", json!({"lifecycle": {"stopped": true}}))
            .await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "late",
        json!({"application": "shop", "image": image("late", "1"), "replicas": 2}),
    )
    .await;
    let deployments = env.api::<Deployment>();
    wait_replicas(&deployments, "late", Some(0)).await;
    wait_stopped(&env.services(), "late").await;

    merge_patch(
        &environments(&env.client),
        &env.name,
        json!({"spec": {"lifecycle": {"stopped": false}}}),
    )
    .await;
    wait_replicas(&deployments, "late", Some(2)).await;
    wait_condition(&env.services(), "late", "Ready", "True", Some("Available")).await;
}
