//! Every failure Kubernetes reports on a child, and every input that can never
//! converge, is a condition in kstatus terms: `Stalled=True` with a reason and
//! a message that names the cause (Kubernetes' own words for a child), the
//! Application and Environment Stalled with their Service, back to Ready once
//! fixed — and nothing loops while it is so.

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, ResourceQuota, Secret};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::json;

use crate::paved_support::{
    TestEnvironment, condition, describe_status, environment_manifest, environments, holds_for,
    image, merge_patch, wait_condition, wait_ready,
};
use crate::ship_support::{kstatus, object_json};
use crate::support::unique;

fn stalled_message(object: &DynamicObject) -> String {
    condition(object, "Stalled")
        .map(|c| c.message)
        .unwrap_or_default()
}

/// The object's resourceVersion does not move for `period`: no controller
/// keeps rewriting it (a loop would).
async fn stays_unwritten(api: &Api<DynamicObject>, name: &str, period: Duration) {
    let before = api.get(name).await.unwrap();
    let version = before.metadata.resource_version.clone();
    holds_for(&format!("{name} to be left alone"), period, || async {
        let now = api.get(name).await.map_err(|e| e.to_string())?;
        if now.metadata.resource_version == version {
            Ok(())
        } else {
            Err(format!("rewritten: {}", describe_status(&now)))
        }
    })
    .await;
}

/// A ResourceQuota that refuses the pods: the Deployment reports
/// `ReplicaFailure`, and the Service says so in Kubernetes' words instead of
/// rolling out for ever; kstatus and so `kubectl wait`/Flux/kpt see Failed.
/// (Paved renders no `progressDeadlineSeconds`, so `ProgressDeadlineExceeded`,
/// 10 minutes by default, is covered by the unit tests of status.rs only.)
#[tokio::test]
async fn a_quota_that_refuses_the_pods_stalls_the_service_in_kubernetes_words_until_it_is_lifted() {
    let env = TestEnvironment::create("fail-quota").await;
    let quotas: Api<ResourceQuota> = env.api();
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "no-pods"},
                "spec": {"hard": {"pods": "0"}},
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;

    let web = wait_condition(
        &env.services(),
        "web",
        "Stalled",
        "True",
        Some("ReplicaFailure"),
    )
    .await;
    let message = stalled_message(&web);
    assert!(
        message.contains("exceeded quota: no-pods") && message.contains("FailedCreate"),
        "the Service carries Kubernetes' own reason and message: {message}"
    );
    assert!(
        message.contains("raise the namespace's ResourceQuota"),
        "and says what to change for this refusal, not for every kind: {message}"
    );
    assert!(
        condition(&web, "Reconciling").is_none(),
        "not Reconciling while no progress is possible: {}",
        describe_status(&web)
    );
    let shop = wait_condition(
        &env.applications(),
        "shop",
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;
    assert!(stalled_message(&shop).contains("web (ReplicaFailure"));
    assert!(condition(&shop, "Reconciling").is_none());
    let environment = wait_condition(
        &environments(&env.client),
        &env.name,
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;
    let verdicts = kstatus(&[
        object_json(&web),
        object_json(&shop),
        object_json(&environment),
    ]);
    assert!(
        verdicts.iter().all(|(status, _)| status == "Failed"),
        "{verdicts:?}"
    );

    // Lifted: the ReplicaSet creates the pod, and all three are Ready again.
    quotas
        .delete("no-pods", &DeleteParams::default())
        .await
        .unwrap();
    let web = wait_ready(&env.services(), "web").await;
    assert!(
        condition(&web, "Stalled").is_none(),
        "{}",
        describe_status(&web)
    );
    wait_ready(&env.applications(), "shop").await;
    wait_ready(&environments(&env.client), &env.name).await;
}

/// A Secret or ConfigMap key the pods read through `valueFrom` that does not
/// exist: the pods could not start, so the Service is not Ready but Stalled
/// with a condition naming each missing key (an `optional` one is fine), and
/// Ready once they exist.
#[tokio::test]
async fn a_missing_secret_or_config_map_key_is_a_condition_that_names_it() {
    let env = TestEnvironment::create("fail-config").await;
    let config_maps: Api<ConfigMap> = env.api();
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "settings"}, "data": {"other": "x"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "api",
        json!({
            "application": "shop", "image": image("api", "1"),
            "env": [
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "TUNING", "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "level", "optional": true}}},
            ],
        }),
    )
    .await;
    let api = wait_condition(
        &env.services(),
        "api",
        "Stalled",
        "True",
        Some("ConfigNotFound"),
    )
    .await;
    let message = stalled_message(&api);
    assert!(
        message.contains("Secret db key password")
            && message.contains("ConfigMap settings key mode")
            && !message.contains("tuning"),
        "{message}"
    );
    assert_eq!(
        condition(&api, "Ready").map(|c| c.status).as_deref(),
        Some("False")
    );
    wait_condition(
        &env.applications(),
        "shop",
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;

    // One of two created: the condition names only what is still missing.
    let secrets: Api<Secret> = env.api();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    crate::support::wait_until(
        "the condition to drop the Secret",
        crate::support::WAIT,
        || async {
            let api = env.services().get("api").await.map_err(|e| e.to_string())?;
            let message = stalled_message(&api);
            if message.contains("ConfigMap settings key mode") && !message.contains("Secret db") {
                Ok(())
            } else {
                Err(describe_status(&api))
            }
        },
    )
    .await;
    config_maps
        .patch(
            "settings",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"data": {"mode": "fast"}})),
        )
        .await
        .unwrap();
    wait_ready(&env.services(), "api").await;
    wait_ready(&env.applications(), "shop").await;
}

/// `dependsOn` cycles — two Services naming each other, three in a ring — are
/// a condition on each member naming the cycle (one naming itself is refused
/// at admission); a Service that merely
/// depends on a member is not in it; nothing is rewritten while it lasts, and
/// breaking the cycle makes them Ready.
#[tokio::test]
async fn a_depends_on_cycle_is_a_condition_on_each_member_and_nothing_loops() {
    let env = TestEnvironment::create("fail-cycle").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let service = |depends_on: &[&str]| json!({"application": "shop", "image": image("s", "1"), "ports": [{"name": "http", "port": 8080}], "dependsOn": depends_on});
    env.apply_service("ping", service(&["pong"])).await;
    env.apply_service("pong", service(&["ping"])).await;
    env.apply_service("one", service(&["two"])).await;
    env.apply_service("two", service(&["three"])).await;
    env.apply_service("three", service(&["one"])).await;
    env.apply_service("fan", service(&["ping"])).await;
    let refused = env
        .services()
        .patch(
            "narcissus",
            &kube::api::PatchParams::apply(crate::paved_support::USER_MANAGER),
            &kube::api::Patch::Apply(crate::paved_support::service_manifest(
                "narcissus",
                service(&["narcissus"]),
            )),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(e)) if e.code == 422 && e.message.contains("cannot depend on itself")),
        "a Service depending on itself is refused at admission: {refused:?}"
    );

    for (name, cycle) in [
        ("ping", "ping -> pong -> ping"),
        ("pong", "pong -> ping -> pong"),
        ("one", "one -> two -> three -> one"),
        ("three", "three -> one -> two -> three"),
    ] {
        let object = wait_condition(
            &env.services(),
            name,
            "Stalled",
            "True",
            Some("DependencyCycle"),
        )
        .await;
        assert!(
            stalled_message(&object).contains(cycle),
            "{}",
            describe_status(&object)
        );
    }
    let fan = wait_ready(&env.services(), "fan").await;
    assert!(condition(&fan, "Stalled").is_none());
    let shop = wait_condition(
        &env.applications(),
        "shop",
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;
    assert!(condition(&shop, "Reconciling").is_none());
    for name in ["ping", "pong", "one", "two", "three"] {
        stays_unwritten(&env.services(), name, Duration::from_secs(3)).await;
    }

    env.apply_service("pong", service(&[])).await;
    env.apply_service("three", service(&[])).await;
    for name in ["ping", "pong", "one", "two", "three", "fan"] {
        wait_ready(&env.services(), name).await;
    }
    wait_ready(&env.applications(), "shop").await;
}

/// `cloneFrom` cycles — a preview cloned from itself, two previews cloned from
/// each other — are a condition naming the cycle; nothing is copied and
/// nothing is rewritten while it lasts; pointing one at a real base ends it.
#[tokio::test]
async fn a_clone_from_cycle_is_a_condition_and_nothing_is_copied_or_loops() {
    let base = TestEnvironment::create_with("fail-clone-base", json!({"type": "staging"})).await;
    base.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    base.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1")}),
    )
    .await;
    wait_ready(&base.services(), "api").await;

    let client = base.client.clone();
    let envs = environments(&client);
    let mut cleanup = crate::paved_support::Cleanup::default();
    let mirror = unique("fail-clone-mirror");
    let left = unique("fail-clone-left");
    let right = unique("fail-clone-right");
    cleanup
        .environments
        .extend([mirror.clone(), left.clone(), right.clone()]);
    let preview = |name: &str, from: &str| {
        environment_manifest(
            name,
            json!({"type": "preview", "domain": format!("{name}.example.test"), "cloneFrom": {"environment": from}}),
        )
    };
    crate::paved_support::apply(&envs, preview(&mirror, &mirror)).await;
    crate::paved_support::apply(&envs, preview(&left, &right)).await;
    crate::paved_support::apply(&envs, preview(&right, &left)).await;

    for (name, cycle) in [
        (&mirror, format!("{mirror} -> {mirror}")),
        (&left, format!("{left} -> {right} -> {left}")),
        (&right, format!("{right} -> {left} -> {right}")),
    ] {
        let object = wait_condition(&envs, name, "Stalled", "True", Some("CloneCycle")).await;
        assert!(
            stalled_message(&object).contains(&cycle),
            "{}",
            describe_status(&object)
        );
        let copied = crate::paved_support::services(&client, name)
            .list(&Default::default())
            .await
            .unwrap();
        assert!(copied.items.is_empty(), "{name} copied nothing");
    }
    for name in [&mirror, &left, &right] {
        stays_unwritten(&envs, name, Duration::from_secs(3)).await;
    }

    // Out of the cycle: left follows the real base and gets its Service.
    merge_patch(
        &envs,
        &left,
        json!({"spec": {"cloneFrom": {"environment": base.name}}}),
    )
    .await;
    wait_ready(&envs, &left).await;
    wait_ready(&crate::paved_support::services(&client, &left), "api").await;
}
