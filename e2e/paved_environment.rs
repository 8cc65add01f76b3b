//! Environment → Namespace: Paved creates and labels the namespace, deletes it
//! with the Environment, and never adopts or deletes a namespace it did not create.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::paved_support::{
    TestEnvironment, apply, environment_manifest, environments, labels, wait_condition, wait_event,
    wait_gone,
};
use crate::support::{client, unique};

#[tokio::test]
async fn an_environment_gets_a_namespace_labelled_with_its_name_and_a_ready_status() {
    let env = TestEnvironment::create_with("penv-ns", json!({"type": "staging"})).await;
    let namespace = Api::<Namespace>::all(env.client.clone())
        .get(&env.namespace)
        .await
        .unwrap();
    assert_eq!(
        labels(&namespace.metadata)
            .get("paved.dev/environment")
            .map(String::as_str),
        Some(env.name.as_str()),
        "namespace labels: {:?}",
        namespace.metadata.labels
    );

    let ready = wait_condition(&environments(&env.client), &env.name, "Ready", "True", None).await;
    assert_eq!(ready.data["status"]["namespace"], json!(env.namespace));
    assert_eq!(ready.data["status"]["type"], json!("staging"));
    assert!(
        ready.data["status"]["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["type"] != "Stalled" || c["status"] != "True"),
        "a fresh Environment is not Stalled: {}",
        ready.data["status"]
    );
}

#[tokio::test]
async fn an_environment_with_spec_namespace_owns_that_namespace() {
    let client = client().await;
    let name = unique("penv-named");
    let namespace_name = unique("penv-target");
    let mut guard = crate::paved_support::Cleanup::default();
    guard.environments.push(name.clone());
    guard.namespaces.push(namespace_name.clone());
    apply(
        &environments(&client),
        environment_manifest(
            &name,
            json!({"type": "preview", "namespace": namespace_name, "domain": "pr-1.example.test"}),
        ),
    )
    .await;

    let ready = wait_condition(&environments(&client), &name, "Ready", "True", None).await;
    assert_eq!(ready.data["status"]["namespace"], json!(namespace_name));
    let namespace = Api::<Namespace>::all(client.clone())
        .get(&namespace_name)
        .await
        .unwrap();
    assert_eq!(
        labels(&namespace.metadata).get("paved.dev/environment"),
        Some(&name)
    );
    assert!(
        Api::<Namespace>::all(client.clone())
            .get_opt(&name)
            .await
            .unwrap()
            .is_none(),
        "no namespace is created under the Environment's own name when spec.namespace is set"
    );
}

#[tokio::test]
async fn deleting_an_environment_deletes_its_namespace() {
    let env = TestEnvironment::create("penv-del").await;
    wait_condition(&environments(&env.client), &env.name, "Ready", "True", None).await;
    // Something inside, as a real environment would have.
    env.api::<ConfigMap>()
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "settings"}})).unwrap(),
        )
        .await
        .unwrap();

    environments(&env.client)
        .delete(&env.name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&Api::<Namespace>::all(env.client.clone()), &env.namespace).await;
    wait_gone(&environments(&env.client), &env.name).await;
}

#[tokio::test]
async fn an_environment_pointed_at_a_foreign_namespace_stalls_and_leaves_it_untouched() {
    let client = client().await;
    let namespaces = Api::<Namespace>::all(client.clone());
    let foreign = unique("penv-foreign");
    let name = unique("penv-conflict");
    let mut guard = crate::paved_support::Cleanup::default();
    guard.environments.push(name.clone());
    guard.namespaces.push(foreign.clone());

    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": foreign, "labels": {"team": "billing"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let config_maps = Api::<ConfigMap>::namespaced(client.clone(), &foreign);
    let config_map = config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "billing-db"}, "data": {"url": "postgres://db"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let before = namespaces.get(&foreign).await.unwrap();

    apply(
        &environments(&client),
        environment_manifest(
            &name,
            json!({"type": "staging", "namespace": foreign, "domain": "billing.example.test"}),
        ),
    )
    .await;
    let stalled = wait_condition(
        &environments(&client),
        &name,
        "Stalled",
        "True",
        Some("NamespaceConflict"),
    )
    .await;
    let ready =
        crate::paved_support::condition(&stalled, "Ready").expect("Ready is always present");
    assert_eq!(ready.status, "False", "Ready while stalled: {ready:?}");
    let message = crate::paved_support::condition(&stalled, "Stalled")
        .unwrap()
        .message;
    assert!(
        message.contains(&foreign),
        "the message names the namespace: {message}"
    );
    wait_event(
        &client,
        None,
        stalled.metadata.uid.as_deref().unwrap(),
        "NamespaceConflict",
    )
    .await;

    let after = namespaces.get(&foreign).await.unwrap();
    assert_eq!(
        after.metadata.labels, before.metadata.labels,
        "labels of the foreign namespace untouched"
    );
    assert_eq!(
        after.metadata.annotations, before.metadata.annotations,
        "annotations untouched"
    );
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "the namespace was not written"
    );
    assert!(
        after
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .all(|m| m.manager.as_deref() != Some("paved")),
        "paved manages no field of the foreign namespace: {:?}",
        after
            .metadata
            .managed_fields
            .iter()
            .flatten()
            .map(|m| m.manager.clone())
            .collect::<Vec<_>>()
    );

    environments(&client)
        .delete(&name, &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&environments(&client), &name).await;
    let still = namespaces
        .get(&foreign)
        .await
        .expect("the foreign namespace survives the Environment");
    assert!(
        still.metadata.deletion_timestamp.is_none(),
        "the foreign namespace is not being deleted"
    );
    let kept = config_maps
        .get("billing-db")
        .await
        .expect("the ConfigMap inside survives");
    assert_eq!(kept.metadata.uid, config_map.metadata.uid);
    assert_eq!(kept.data, config_map.data);
}
