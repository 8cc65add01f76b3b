//! Paved never takes what is not its own: an object a user made by hand at the
//! name of a child (a core Service, a Deployment, a guardrail) is neither
//! modified nor deleted. The Paved object stalls with `ChildConflict`, a one-line
//! message naming the object and what to do, and a Warning Event; the user's
//! object stays as it was, also once the Paved object is deleted (it never got an
//! ownerReference, so garbage collection never reaches it).

use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ResourceQuota, Service as CoreService};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, condition, environments, holds_for, image, merge_patch, wait_condition,
    wait_event, wait_exists, wait_gone, wait_ready,
};

/// What a write by anyone would change: everything but `status` and the
/// resourceVersion (which a controller's status update moves), and the field
/// managers of everything but status.
fn written_part<K: Serialize + Resource>(object: &K) -> Value {
    let meta = object.meta();
    json!({
        "spec": serde_json::to_value(object).unwrap()["spec"],
        "generation": meta.generation,
        "labels": meta.labels,
        "annotations": meta.annotations,
        "ownerReferences": meta.owner_references,
        "finalizers": meta.finalizers,
        "managers": meta.managed_fields.iter().flatten()
            .filter(|m| m.subresource.is_none())
            .map(|m| (m.manager.clone(), m.operation.clone()))
            .collect::<Vec<_>>(),
    })
}

/// The user's object keeps everything a write could change for `period`.
async fn stays_as_it_was<K>(api: &Api<K>, before: &K, period: Duration)
where
    K: Resource + Serialize + Clone + DeserializeOwned + Debug,
{
    let name = before.name_any();
    let want = written_part(before);
    holds_for(
        &format!("the user's {name} to stay exactly as it was"),
        period,
        || async {
            let now = api.get_opt(&name).await.map_err(|e| e.to_string())?;
            let now = now.ok_or("it was deleted")?;
            let have = written_part(&now);
            if have == want {
                Ok(())
            } else {
                Err(format!("changed: {have} (was {want})"))
            }
        },
    )
    .await;
    assert!(
        !before
            .meta()
            .managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some("paved")),
        "Paved never wrote it"
    );
}

/// `Ready=False` and `Stalled=True` with reason ChildConflict, a one-line message
/// naming `object` and what to do, and a Warning Event.
async fn assert_child_conflict(
    env: &TestEnvironment,
    api: &Api<DynamicObject>,
    name: &str,
    object: &str,
) -> DynamicObject {
    let stalled = wait_condition(api, name, "Stalled", "True", Some("ChildConflict")).await;
    let ready = condition(&stalled, "Ready").expect("Ready is always present");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ChildConflict")
    );
    let message = condition(&stalled, "Stalled").unwrap().message;
    assert!(message.contains(object), "names {object}: {message}");
    assert!(
        message.contains("rename") && message.contains("delete"),
        "says what to do: {message}"
    );
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(message.len() < 400, "no dump: {message}");
    let event = wait_event(
        &env.client,
        stalled.metadata.namespace.as_deref(),
        stalled.metadata.uid.as_deref().unwrap(),
        "ChildConflict",
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"), "event: {event:?}");
    stalled
}

async fn create<K>(api: &Api<K>, manifest: Value) -> K
where
    K: Resource + Serialize + Clone + DeserializeOwned + Debug,
{
    api.create(
        &PostParams::default(),
        &serde_json::from_value(manifest).unwrap(),
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn a_hand_made_core_service_is_never_taken_over_nor_deleted_with_the_paved_service_of_its_name()
 {
    let env = TestEnvironment::create("conflict-svc").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let cores = env.api::<CoreService>();
    let before = create(
        &cores,
        json!({
            "metadata": {"name": "taken", "labels": {"team": "billing"}},
            "spec": {"selector": {"app": "billing"}, "ports": [{"name": "db", "port": 5432}]},
        }),
    )
    .await;

    env.apply_service(
        "taken",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    let namespace = &env.namespace;
    assert_child_conflict(
        &env,
        &env.services(),
        "taken",
        &format!("Service {namespace}/taken"),
    )
    .await;
    stays_as_it_was(&cores, &before, Duration::from_secs(3)).await;
    let now = cores.get("taken").await.unwrap();
    assert_eq!(
        now.resource_version(),
        before.resource_version(),
        "not a single write"
    );
    assert_eq!(now.spec, before.spec);

    // Deleting the Paved Service takes its own children (the Deployment) with it,
    // and nothing of the user's.
    env.services()
        .delete("taken", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_gone(&env.services(), "taken").await;
    wait_gone(&env.api::<Deployment>(), "taken").await;
    stays_as_it_was(&cores, &before, Duration::from_secs(3)).await;
    let after = cores.get("taken").await.unwrap();
    assert_eq!(after.resource_version(), before.resource_version());
    assert_eq!(after.spec, before.spec);
}

#[tokio::test]
async fn a_hand_made_deployment_is_left_as_it_was_and_survives_the_paved_service_of_its_name() {
    let env = TestEnvironment::create("conflict-deploy").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let deployments = env.api::<Deployment>();
    create(
        &deployments,
        json!({
            "metadata": {"name": "taken", "labels": {"team": "billing"}},
            "spec": {
                "replicas": 0,
                "selector": {"matchLabels": {"app": "billing"}},
                "template": {
                    "metadata": {"labels": {"app": "billing"}},
                    "spec": {"containers": [{"name": "db", "image": image("billing", "7")}]},
                },
            },
        }),
    )
    .await;
    let before = wait_until_rolled_out(&deployments).await;

    env.apply_service(
        "taken",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    let namespace = &env.namespace;
    assert_child_conflict(
        &env,
        &env.services(),
        "taken",
        &format!("Deployment {namespace}/taken"),
    )
    .await;
    stays_as_it_was(&deployments, &before, Duration::from_secs(3)).await;

    env.services()
        .delete("taken", &DeleteParams::foreground())
        .await
        .unwrap();
    wait_gone(&env.services(), "taken").await;
    // Paved's own child of that Service went with it: garbage collection ran.
    wait_gone(&env.api::<CoreService>(), "taken").await;
    stays_as_it_was(&deployments, &before, Duration::from_secs(3)).await;
}

#[tokio::test]
async fn a_hand_made_resource_quota_in_the_way_of_the_guardrails_is_neither_changed_nor_deleted() {
    let env = TestEnvironment::create("conflict-quota").await;
    let environments = environments(&env.client);
    wait_ready(&environments, &env.name).await;
    let quotas = env.api::<ResourceQuota>();
    create(
        &quotas,
        json!({"metadata": {"name": "paved-quota"}, "spec": {"hard": {"pods": "3"}}}),
    )
    .await;
    let before = wait_until_quota_counted(&quotas).await;

    merge_patch(
        &environments,
        &env.name,
        json!({"spec": {"guardrails": {"quota": {"cpu": "4", "memory": "8Gi", "pods": "20"}}}}),
    )
    .await;
    let namespace = &env.namespace;
    assert_child_conflict(
        &env,
        &environments,
        &env.name,
        &format!("ResourceQuota {namespace}/paved-quota"),
    )
    .await;
    stays_as_it_was(&quotas, &before, Duration::from_secs(3)).await;

    // No quota wanted any more: Paved does not delete one it did not create.
    merge_patch(
        &environments,
        &env.name,
        json!({"spec": {"guardrails": {"quota": null}}}),
    )
    .await;
    wait_ready(&environments, &env.name).await;
    stays_as_it_was(&quotas, &before, Duration::from_secs(3)).await;
    wait_exists(&quotas, "paved-quota").await;
}

/// The quota once the API server's quota controller has filled in its status.
async fn wait_until_quota_counted(quotas: &Api<ResourceQuota>) -> ResourceQuota {
    crate::support::wait_until(
        "the quota controller to count paved-quota",
        crate::support::WAIT,
        || async {
            let quota = quotas.get("paved-quota").await.map_err(|e| e.to_string())?;
            let counted = quota
                .status
                .as_ref()
                .and_then(|s| s.used.as_ref())
                .is_some();
            if counted {
                Ok(quota)
            } else {
                Err("no status.used yet".to_string())
            }
        },
    )
    .await
}

/// The Deployment once the deployment controller has taken it in (it adds its
/// revision annotation and status): what stays from then on is the user's.
async fn wait_until_rolled_out(deployments: &Api<Deployment>) -> Deployment {
    crate::support::wait_until(
        "the deployment controller to take in taken",
        crate::support::WAIT,
        || async {
            let deployment = deployments.get("taken").await.map_err(|e| e.to_string())?;
            let revised = deployment
                .annotations()
                .contains_key("deployment.kubernetes.io/revision");
            let observed = deployment
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                == deployment.metadata.generation;
            if revised && observed {
                Ok(deployment)
            } else {
                Err("not yet".to_string())
            }
        },
    )
    .await
}
