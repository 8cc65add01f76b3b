//! Delivery metrics as a team meets them: a Service deployed with a commit
//! time, a new image, a `paved rollback`, an image whose pods a quota refuses
//! (Stalled) and its restore. `status.delivery` of the Service, its Application
//! and its Environment, the `paved_*` counters and the Backstage annotations
//! move with each event, and nothing moves while nothing happens.

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

use crate::day2_cli::{assert_success, paved};
use crate::paved_support::{
    TestEnvironment, apply, describe_status, environments, holds_for, image, merge_patch,
    metric_sum, scrape_metrics, service_manifest, wait_condition, wait_object, wait_ready,
};

fn delivery(object: &DynamicObject) -> Value {
    object.data["status"]["delivery"].clone()
}

/// An RFC 3339 time `seconds` ago, as a CI job would stamp its commit.
fn ago(seconds: i64) -> String {
    (Timestamp::now() - SignedDuration::from_secs(seconds))
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap()
        .to_string()
}

/// Waits until the object's `status.delivery` has every `field: value` of `expected`.
async fn wait_delivery(api: &Api<DynamicObject>, name: &str, expected: Value) -> DynamicObject {
    wait_object(
        api,
        name,
        &format!("{name}'s delivery to be {expected}"),
        |o| {
            let d = delivery(o);
            let missing: Vec<String> = expected
                .as_object()
                .unwrap()
                .iter()
                .filter(|(k, v)| d[k.as_str()] != **v)
                .map(|(k, v)| format!("{k}: want {v}, have {}", d[k.as_str()]))
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("{}; delivery {d}", missing.join(", ")))
            }
        },
    )
    .await
}

fn delivery_series(metric: &str, namespace: &str) -> f64 {
    metric_sum(
        &scrape_metrics(),
        metric,
        &[("namespace", namespace), ("service", "web")],
    )
}

#[tokio::test]
async fn deploys_a_rollback_and_a_stalled_revision_move_the_delivery_figures_metrics_and_catalog() {
    let env = TestEnvironment::create("delivery").await;
    let ns = env.namespace.clone();
    let services = env.services();
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let spec = |tag: &str| json!({"application": "shop", "image": image("web", tag), "ports": [{"name": "http", "port": 8080}]});
    let mut manifest = service_manifest("web", spec("1"));
    manifest["metadata"]["annotations"] = json!({"paved.dev/commit-time": ago(120)});
    apply(&services, manifest).await;
    let web = wait_ready(&services, "web").await;
    let first = delivery(&web);
    assert_eq!(first["deploys"], 1, "{first}");
    assert_eq!(first["failures"], 0, "{first}");
    let lead = first["lastLeadTimeSeconds"].as_i64().unwrap_or_default();
    assert!(
        (120..600).contains(&lead),
        "lead time from the commit annotation: {first}"
    );

    // A new image: one more deploy; the annotation moved with it (as CI sets both).
    merge_patch(
        &services,
        "web",
        json!({"metadata": {"annotations": {"paved.dev/commit-time": ago(30)}}, "spec": {"image": image("web", "2")}}),
    )
    .await;
    wait_ready(&services, "web").await;
    let web = wait_delivery(&services, "web", json!({"deploys": 2, "failures": 0})).await;
    let lead = delivery(&web)["lastLeadTimeSeconds"]
        .as_i64()
        .unwrap_or_default();
    assert!(
        (30..120).contains(&lead),
        "the new revision's lead time: {}",
        delivery(&web)
    );

    // Rolled back: revision 2 failed.
    let output = paved(&["rollback", "web", "--to", "1", "-n", &ns]).await;
    assert_success(&output, "paved rollback");
    wait_ready(&services, "web").await;
    wait_delivery(
        &services,
        "web",
        // The annotation still names revision 2's commit: no lead time of its own.
        json!({"deploys": 3, "failures": 1, "lastFailedRevision": 2, "changeFailureRate": "0.33", "leadTimes": 2}),
    )
    .await;

    // An image whose pods a quota refuses: the revision goes Stalled, counted once.
    let quotas: Api<ResourceQuota> = env.api();
    quotas
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    merge_patch(
        &services,
        "web",
        json!({"spec": {"image": image("web", "3")}}),
    )
    .await;
    wait_condition(&services, "web", "Stalled", "True", Some("ReplicaFailure")).await;
    let web = wait_delivery(
        &services,
        "web",
        json!({"deploys": 4, "failures": 2, "lastFailedRevision": 4, "changeFailureRate": "0.50"}),
    )
    .await;
    assert!(
        delivery(&web)["failingSince"].is_string(),
        "{}",
        describe_status(&web)
    );
    // Stalled and looked at again and again: counted once, and not rewritten.
    let version = web.metadata.resource_version.clone();
    holds_for(
        "the Stalled Service to be left alone",
        Duration::from_secs(5),
        || async {
            let now = services.get("web").await.map_err(|e| e.to_string())?;
            if now.metadata.resource_version == version {
                Ok(())
            } else {
                Err(format!("rewritten: {}", delivery(&now)))
            }
        },
    )
    .await;

    // Lifted: Ready again, one restore, timed from leaving Ready.
    quotas
        .delete("no-pods", &DeleteParams::default())
        .await
        .unwrap();
    wait_ready(&services, "web").await;
    let web = wait_delivery(&services, "web", json!({"restores": 1, "failures": 2})).await;
    let figures = delivery(&web);
    assert!(figures.get("failingSince").is_none(), "{figures}");
    let mttr = figures["meanTimeToRestoreSeconds"].as_i64();
    assert!(mttr.is_some_and(|s| (0..300).contains(&s)), "{figures}");
    assert!(
        figures["since"].is_string(),
        "says how far back it looks: {figures}"
    );

    // Rolled up: the Application and the Environment sum their Services'.
    let rolled = json!({"deploys": 4, "failures": 2, "restores": 1, "changeFailureRate": "0.50"});
    wait_delivery(&env.applications(), "shop", rolled.clone()).await;
    wait_delivery(&environments(&env.client), &env.name, rolled).await;

    // As counters, and in the Backstage catalog.
    assert_eq!(delivery_series("paved_deploys_total", &ns), 4.0);
    assert_eq!(delivery_series("paved_change_failures_total", &ns), 2.0);
    assert_eq!(delivery_series("paved_restores_total", &ns), 1.0);
    let component = crate::paved_support::backstage_component(&ns, "web");
    let annotations = &component["metadata"]["annotations"];
    assert_eq!(annotations["paved.dev/deploys"], "4", "{annotations}");
    assert_eq!(
        annotations["paved.dev/change-failure-rate"], "0.50",
        "{annotations}"
    );

    // Deleted: its series go with it (they are read from the store at each scrape).
    services
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    crate::support::wait_until(
        "web's delivery series to go",
        crate::support::WAIT,
        || async {
            let text = scrape_metrics();
            let left = metric_sum(&text, "paved_deploys_total", &[("namespace", &ns)]);
            if left == 0.0 {
                Ok(())
            } else {
                Err(format!("{left} deploys left"))
            }
        },
    )
    .await;
}
