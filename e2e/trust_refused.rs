//! Issue 11, "what admission cannot catch is a one-line condition": writes the
//! API server refuses for a reason a retry of the same request cannot fix.
//!
//! - 403: an object-count ResourceQuota in the namespace forbids Ingresses. No
//!   schema of Paved's can know it (it is another object); the Service is
//!   Stalled with the API server's message, tried again less and less often,
//!   and recovers after the quota is gone and the spec changes.
//! - 422: LimitRange defaults whose request exceeds the limit. CEL could compare
//!   the two quantities; it is left to the API server here on purpose, as the
//!   one input known to reach a 422 from a Paved write.

use std::time::Duration;

use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

use crate::paved_support::{
    TestEnvironment, condition, describe_status, environments, image, is_absent, merge_patch,
    metric_sum, scrape_metrics, wait_condition, wait_ready,
};
use crate::support::wait_until;

/// The wait announced in a WriteRefused message ("... tries again in 20s").
fn retry_in(message: &str) -> Option<u64> {
    message
        .rsplit_once("tries again in ")?
        .1
        .trim_end_matches('s')
        .parse()
        .ok()
}

fn assert_one_line_from_the_api_server(message: &str, mentions: &[&str]) {
    assert!(!message.contains('\n'), "one line: {message}");
    for debug in ["Status {", "ErrorResponse", "Api(", "Some("] {
        assert!(
            !message.contains(debug),
            "no Debug dump ({debug}): {message}"
        );
    }
    for mention in mentions {
        assert!(message.contains(mention), "mentions {mention}: {message}");
    }
    assert!(
        message.len() < 1200,
        "{} characters: {message}",
        message.len()
    );
}

#[tokio::test]
async fn an_ingress_forbidden_by_a_quota_stalls_the_service_with_the_api_servers_message_and_retries_less_and_less_often()
 {
    let env = TestEnvironment::create("trefused-quota").await;
    let quotas = env.api::<ResourceQuota>();
    let quota: ResourceQuota = serde_json::from_value(json!({
        "metadata": {"name": "no-ingress"},
        "spec": {"hard": {"count/ingresses.networking.k8s.io": "0"}}
    }))
    .unwrap();
    quotas.create(&PostParams::default(), &quota).await.unwrap();
    wait_until(
        "the quota to be counted",
        Duration::from_secs(60),
        || async {
            let q = quotas.get("no-ingress").await.map_err(|e| e.to_string())?;
            q.status
                .and_then(|s| s.hard)
                .filter(|h| !h.is_empty())
                .map(|_| ())
                .ok_or_else(|| "no status.hard yet".to_string())
        },
    )
    .await;

    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let spec = json!({
        "application": "shop",
        "image": image("web", "1"),
        "ports": [{"name": "http", "port": 8080}],
        "expose": {}
    });
    env.apply_service("web", spec.clone()).await;
    let services = env.services();
    let object = wait_condition(&services, "web", "Stalled", "True", Some("WriteRefused")).await;
    let stalled = condition(&object, "Stalled").unwrap();
    assert_one_line_from_the_api_server(
        &stalled.message,
        &["Ingress", "403 Forbidden", "exceeded quota: no-ingress"],
    );
    assert!(is_absent(&env.api::<Ingress>(), "web").await);

    // Not every 5 s for ever: each new try announces a longer wait.
    let mut waits: Vec<u64> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while waits.len() < 3 {
        let object = services.get("web").await.unwrap();
        assert!(
            std::time::Instant::now() < deadline,
            "three growing retry intervals within 120 s; waits so far {waits:?}; {}",
            describe_status(&object)
        );
        let message = condition(&object, "Stalled")
            .map(|c| c.message)
            .unwrap_or_default();
        if let Some(wait) = retry_in(&message)
            && waits.last() != Some(&wait)
        {
            waits.push(wait);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        waits.windows(2).all(|w| w[0] < w[1]),
        "each retry waits longer: {waits:?}"
    );
    assert!(waits.iter().all(|w| (5..=300).contains(w)), "{waits:?}");

    // Stalls are counted apart from errors.
    let metrics = scrape_metrics();
    assert!(
        metric_sum(
            &metrics,
            "paved_reconcile_stalls_total",
            &[("kind", "Service"), ("reason", "WriteRefused")]
        ) >= 2.0
    );
    assert_eq!(
        metric_sum(
            &metrics,
            "paved_reconcile_errors_total",
            &[("reason", "WriteRefused")]
        ),
        0.0
    );

    // Fixed elsewhere, and the spec changes: tried again at once, from scratch.
    quotas
        .delete("no-ingress", &DeleteParams::default())
        .await
        .unwrap();
    let mut changed = spec;
    changed["replicas"] = json!(2);
    env.apply_service("web", changed).await;
    wait_ready(&services, "web").await;
    assert!(!is_absent(&env.api::<Ingress>(), "web").await);
}

#[tokio::test]
async fn a_limit_range_the_api_server_refuses_stalls_the_environment_with_a_one_line_422() {
    let env = TestEnvironment::create_with(
        "trefused-limits",
        json!({"guardrails": {"defaults": {"resources": {
            "requests": {"memory": "1Gi"},
            "limits": {"memory": "512Mi"}
        }}}}),
    )
    .await;
    let api = environments(&env.client);
    let object = wait_condition(&api, &env.name, "Stalled", "True", Some("WriteRefused")).await;
    let stalled = condition(&object, "Stalled").unwrap();
    assert_one_line_from_the_api_server(
        &stalled.message,
        &[
            "LimitRange",
            "422 Invalid",
            "spec.limits[0].defaultRequest[memory]",
            "is greater than default limit value 512Mi",
        ],
    );
    assert!(retry_in(&stalled.message).is_some(), "{stalled:?}");

    // Fixing the spec recovers.
    merge_patch(
        &api,
        &env.name,
        json!({"spec": {"guardrails": {"defaults": {"resources": {"limits": {"memory": "2Gi"}}}}}}),
    )
    .await;
    wait_ready(&api, &env.name).await;
}
