//! Drift and quiet: a deleted or hand-edited child comes back as declared, and a
//! reconcile of an unchanged Service writes nothing.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Service as CoreService;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, controller_log_mark, first_container, image, is_observed, metric_sum,
    scrape_metrics, wait_exists, wait_object, wait_ready, wait_reconcile_logged,
};
use crate::support::{WAIT, unique, wait_until};

fn web(tag: &str, replicas: i32) -> Value {
    json!({
        "application": "shop",
        "image": image("web", tag),
        "ports": [{"name": "http", "port": 8080}],
        "replicas": replicas,
        "expose": {}
    })
}

#[tokio::test]
async fn a_deleted_deployment_or_ingress_comes_back_as_declared() {
    let env = TestEnvironment::create("pdrift-del").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("web", web("1", 2)).await;
    wait_ready(&env.services(), "web").await;
    let deployments = env.api::<Deployment>();
    let ingresses = env.api::<Ingress>();
    let deployment = deployments.get("web").await.unwrap();
    let ingress = ingresses.get("web").await.unwrap();

    deployments
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    ingresses
        .delete("web", &DeleteParams::background())
        .await
        .unwrap();
    let restored = wait_until("a new Deployment web", WAIT, || async {
        match deployments
            .get_opt("web")
            .await
            .map_err(|e| e.to_string())?
        {
            Some(d)
                if d.metadata.uid != deployment.metadata.uid
                    && d.metadata.deletion_timestamp.is_none() =>
            {
                Ok(d)
            }
            Some(_) => Err("still the deleted one".to_string()),
            None => Err("not there".to_string()),
        }
    })
    .await;
    assert_eq!(
        first_container(&restored).image.as_deref(),
        Some(image("web", "1").as_str())
    );
    assert_eq!(restored.spec.as_ref().unwrap().replicas, Some(2));
    let restored_ingress = wait_until("a new Ingress web", WAIT, || async {
        match ingresses.get_opt("web").await.map_err(|e| e.to_string())? {
            Some(i) if i.metadata.uid != ingress.metadata.uid => Ok(i),
            Some(_) => Err("still the deleted one".to_string()),
            None => Err("not there".to_string()),
        }
    })
    .await;
    assert_eq!(
        restored_ingress.spec, ingress.spec,
        "the Ingress comes back as it was"
    );
    wait_ready(&env.services(), "web").await;
}

#[tokio::test]
async fn a_deployment_edited_by_another_field_manager_is_restored() {
    let env = TestEnvironment::create("pdrift-edit").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("web", web("1", 2)).await;
    wait_ready(&env.services(), "web").await;
    let deployments = env.api::<Deployment>();
    let deployment = deployments.get("web").await.unwrap();
    let container = first_container(&deployment).name;

    // Someone runs `kubectl set image` and `kubectl scale` with their own field manager, forced.
    let edit = json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 5, "template": {"spec": {"containers": [{"name": container, "image": image("hacked", "6.6.6")}]}}}
    });
    let edited = deployments
        .patch(
            "web",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&edit),
        )
        .await
        .expect("the edit is accepted");
    assert_eq!(
        first_container(&edited).image.as_deref(),
        Some(image("hacked", "6.6.6").as_str()),
        "the edit landed"
    );

    wait_until("the Deployment to be restored", WAIT, || async {
        let d = deployments.get("web").await.map_err(|e| e.to_string())?;
        let image_now = first_container(&d).image;
        let replicas = d.spec.as_ref().and_then(|s| s.replicas);
        (image_now.as_deref() == Some(image("web", "1").as_str()) && replicas == Some(2))
            .then_some(())
            .ok_or_else(|| format!("image {image_now:?}, replicas {replicas:?}"))
    })
    .await;
    let service = wait_ready(&env.services(), "web").await;
    assert_eq!(service.data["status"]["image"], json!(image("web", "1")));
}

/// The controller's reconcile counter for Services, summed over results.
fn service_reconciles() -> f64 {
    metric_sum(&scrape_metrics(), RECONCILES_METRIC, &[("kind", "Service")])
}

const RECONCILES_METRIC: &str = "paved_reconciles_total";

#[tokio::test]
async fn a_reconcile_of_an_unchanged_service_writes_nothing() {
    let env = TestEnvironment::create("pdrift-quiet").await;
    // The controller logs reconciles by name only: a name no other test uses.
    let name = unique("quiet");
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(&name, web("1", 1)).await;
    let services = env.services();
    wait_ready(&services, &name).await;
    let deployments = env.api::<Deployment>();
    // Settled: the Deployment's rollout is over and the status says so.
    wait_until("the Deployment to settle", WAIT, || async {
        let d = deployments.get(&name).await.map_err(|e| e.to_string())?;
        let s = d.status.clone().unwrap_or_default();
        (s.observed_generation == d.metadata.generation
            && s.replicas == Some(1)
            && s.ready_replicas == Some(1)
            && s.available_replicas == Some(1)
            && s.updated_replicas == Some(1))
        .then_some(())
        .ok_or_else(|| format!("{s:?}"))
    })
    .await;
    let service = wait_object(
        &services,
        &name,
        "the status to show the settled Deployment",
        |s| {
            let r = &s.data["status"]["replicas"];
            (is_observed(s)
                && r["desired"] == 1
                && r["ready"] == 1
                && r["available"] == 1
                && r["updated"] == 1)
                .then_some(())
                .ok_or_else(|| format!("replicas {r}"))
        },
    )
    .await;
    let core_before = wait_exists(&env.api::<CoreService>(), &name).await;
    let ingress_before = wait_exists(&env.api::<Ingress>(), &name).await;
    let reconciles_before = service_reconciles();
    let log_mark = controller_log_mark();

    // A change Paved watches but does not manage: it must reconcile, and find nothing to do.
    let label = json!({"metadata": {"labels": {"example.test/touched": "yes"}}});
    let touched = deployments
        .patch(&name, &PatchParams::apply("someone-else"), &Patch::Apply(&json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "labels": label["metadata"]["labels"]}
        })))
        .await
        .unwrap();
    wait_until("the controller to reconcile a Service", WAIT, || async {
        let now = service_reconciles();
        (now > reconciles_before)
            .then_some(())
            .ok_or_else(|| format!("{RECONCILES_METRIC} still {now}"))
    })
    .await;
    let logged = wait_reconcile_logged(log_mark, "Service", &name).await;

    let service_after = services.get(&name).await.unwrap();
    assert_eq!(
        service_after.metadata.resource_version, service.metadata.resource_version,
        "the Service CR (and its status) was not written; {logged}; status before {} after {}",
        service.data["status"], service_after.data["status"]
    );
    let core_after = env.api::<CoreService>().get(&name).await.unwrap();
    assert_eq!(
        core_after.metadata.resource_version, core_before.metadata.resource_version,
        "core Service not written"
    );
    let ingress_after = env.api::<Ingress>().get(&name).await.unwrap();
    assert_eq!(
        ingress_after.metadata.resource_version, ingress_before.metadata.resource_version,
        "Ingress not written"
    );
    let deployment_after = deployments.get(&name).await.unwrap();
    assert_eq!(
        deployment_after.metadata.resource_version, touched.metadata.resource_version,
        "the Deployment was not written after the label edit"
    );
    assert_eq!(
        deployment_after
            .metadata
            .labels
            .unwrap_or_default()
            .get("example.test/touched")
            .map(String::as_str),
        Some("yes"),
        "another manager's label is left alone"
    );
}
