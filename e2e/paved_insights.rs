//! The paved-path scorecard as a user meets it: a careless and a careful
//! Service in production, their insights and scores in status, rolled up to the
//! Application and Environment, as metrics and in the Backstage catalog; a fix
//! clears the insight everywhere. And `paved lint`, offline, failing CI on a
//! critical insight.

use std::time::Duration;

use kube::api::DeleteParams;
use serde_json::{Value, json};

use crate::day2_cli::paved_bin;
use crate::paved_support::{
    TestEnvironment, holds_for, merge_patch, metric_sum, scrape_metrics, wait_object,
};
use crate::support::{WAIT, wait_until};

/// Every rule the careless Service breaks in production.
const CARELESS_RULES: [&str; 6] = [
    "image-pinned",
    "production-replicas",
    "health-check",
    "production-disruption-budget",
    "resource-requests",
    "memory-limit",
];

fn careless() -> Value {
    json!({
        "application": "shop",
        "image": "registry.example.test/careless:latest",
        "replicas": 1,
        "ports": [{"name": "http", "port": 8080}],
    })
}

fn careful() -> Value {
    json!({
        "application": "shop",
        "image": "registry.example.test/careful:1.0@sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945",
        "ports": [{"name": "http", "port": 8080}],
        "health": {"path": "/healthz", "port": "http"},
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}, "limits": {"memory": "128Mi"}},
    })
}

fn rules(scorecard: &Value) -> Vec<String> {
    scorecard["insights"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["rule"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn insight_series(namespace: &str, name: &str, rule: &str) -> f64 {
    metric_sum(
        &scrape_metrics(),
        "paved_insights",
        &[
            ("kind", "Service"),
            ("namespace", namespace),
            ("name", name),
            ("rule", rule),
        ],
    )
}

#[tokio::test]
async fn a_careless_production_service_gets_critical_insights_in_status_metrics_and_catalog_until_fixed()
 {
    let env = TestEnvironment::create_with("pins", json!({"type": "production"})).await;
    let ns = env.namespace.clone();
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("careless", careless()).await;
    env.apply_service("careful", careful()).await;
    let services = env.services();

    let careless = wait_object(&services, "careless", "careless scored", |s| {
        let card = &s.data["status"]["scorecard"];
        (card["critical"] == 2)
            .then_some(())
            .ok_or(format!("scorecard {card}"))
    })
    .await;
    let card = &careless.data["status"]["scorecard"];
    assert_eq!(rules(card), CARELESS_RULES, "most severe first: {card}");
    assert_eq!(
        (card["warning"].as_i64(), card["info"].as_i64()),
        (Some(3), Some(1)),
        "{card}"
    );
    assert!(
        card["score"].as_i64().unwrap() < 30,
        "only pod-security-restricted passes: {card}"
    );
    let pinned = &card["insights"][0];
    assert_eq!(pinned["level"], "critical");
    assert!(
        pinned["message"]
            .as_str()
            .unwrap()
            .contains("follows latest: pin spec.image to a version tag"),
        "{pinned}"
    );
    let careful = wait_object(&services, "careful", "careful scored and settled", |s| {
        let status = &s.data["status"];
        let settled = status["replicas"]["available"] == 2
            && crate::paved_support::condition(s, "Ready").is_some_and(|c| c.status == "True");
        (status["scorecard"]["score"] == 100 && settled)
            .then_some(())
            .ok_or(format!("scorecard {}", status["scorecard"]))
    })
    .await;
    assert!(
        careful.data["status"]["scorecard"]
            .get("insights")
            .is_none(),
        "{}",
        careful.data["status"]["scorecard"]
    );

    // Rolled up: the Application names the Service each insight is about, and adds its own.
    // Weights passed / weights that apply: careless 6/26 (pod-security-restricted, and
    // over-provisioned once the cluster's metrics measure its pod), careful 27/27, the
    // Application's own rules 0/4: 33/57 (idle does not apply in production).
    let rolled_up = 33 * 100 / 57;
    let app = wait_object(&env.applications(), "shop", "shop scored", |a| {
        let card = &a.data["status"]["scorecard"];
        (card["critical"] == 2 && card["info"] == 2 && card["score"] == rolled_up)
            .then_some(())
            .ok_or(format!("scorecard {card}"))
    })
    .await;
    let app_card = &app.data["status"]["scorecard"];
    let insights = app_card["insights"].as_array().unwrap();
    assert!(
        insights
            .iter()
            .any(|i| i["rule"] == "application-links" && i.get("service").is_none())
    );
    assert!(
        insights
            .iter()
            .any(|i| i["rule"] == "image-pinned" && i["service"] == "careless")
    );
    let environments = crate::paved_support::environments(&env.client);
    wait_object(&environments, &env.name, "environment scored", |e| {
        let card = &e.data["status"]["scorecard"];
        (card["critical"] == 2 && card["score"] == app_card["score"])
            .then_some(())
            .ok_or(format!("scorecard {card}, application {app_card}"))
    })
    .await;

    // Cost at the e2e controller's prices (0.04 per CPU-hour, 0.005 per GiB-hour, e2e/run.sh):
    // careful 2 pods × (0.05 × 0.04 + 0.0625 × 0.005) × 730 = 3.38; careless 1 pod with no
    // request but the LimitRange's 128Mi: 0.125 × 0.005 × 730 = 0.46; together 3.83.
    let cost_of = |object: &kube::api::DynamicObject| object.data["status"]["cost"].clone();
    assert_eq!(
        cost_of(&careful)["monthlyRequested"],
        "3.38",
        "{}",
        cost_of(&careful)
    );
    assert_eq!(cost_of(&careful)["currency"], "USD");
    wait_object(&environments, &env.name, "environment costed", |e| {
        let cost = cost_of(e);
        (cost["monthly"] == "3.83")
            .then_some(())
            .ok_or(format!("cost {cost}"))
    })
    .await;

    // Metrics and the catalog.
    wait_until("the image-pinned series", WAIT, || async {
        let value = insight_series(&ns, "careless", "image-pinned");
        (value == 1.0).then_some(()).ok_or(format!("{value}"))
    })
    .await;
    let scores = scrape_metrics();
    assert_eq!(
        metric_sum(
            &scores,
            "paved_score",
            &[("kind", "Service"), ("namespace", &ns), ("name", "careful")]
        ),
        100.0
    );
    assert_eq!(
        metric_sum(
            &scores,
            "paved_insights",
            &[("namespace", &ns), ("name", "careful")]
        ),
        0.0
    );
    // The Application's own rules are its series (its Services' are theirs), and
    // its score is the rolled-up one status shows.
    let application = |rule: &'static str| {
        let ns = ns.clone();
        move || {
            let labels = [
                ("kind", "Application"),
                ("namespace", ns.as_str()),
                ("name", "shop"),
                ("rule", rule),
            ];
            metric_sum(&scrape_metrics(), "paved_insights", &labels)
        }
    };
    assert_eq!(application("application-links")(), 1.0);
    assert_eq!(application("image-pinned")(), 0.0);
    wait_until("the Application's rolled-up score series", WAIT, || async {
        let labels = [
            ("kind", "Application"),
            ("namespace", ns.as_str()),
            ("name", "shop"),
        ];
        let score = metric_sum(&scrape_metrics(), "paved_score", &labels);
        (score == f64::from(rolled_up))
            .then_some(())
            .ok_or(format!("{score}, status says {rolled_up}"))
    })
    .await;
    let component = crate::paved_support::backstage_component(&ns, "careless");
    let annotations = &component["metadata"]["annotations"];
    assert_eq!(
        annotations["paved.dev/insights-critical"], "2",
        "{annotations}"
    );
    assert!(
        annotations["paved.dev/insights"]
            .as_str()
            .unwrap()
            .contains("image-pinned")
    );

    // An unchanged world writes no status: the scorecard does not churn, nor
    // does the usage once the metrics have measured both pods (held over a poll
    // of the e2e controller, every 5 s).
    let careful = wait_object(&services, "careful", "careful's pods measured", |s| {
        let usage = &s.data["status"]["usage"];
        (usage["pods"] == 2)
            .then_some(())
            .ok_or(format!("usage {usage}"))
    })
    .await;
    let version = careful.metadata.resource_version.clone();
    holds_for("careful's status stays put", Duration::from_secs(6), || {
        let services = services.clone();
        let version = version.clone();
        async move {
            let now = services.get("careful").await.map_err(|e| e.to_string())?;
            (now.metadata.resource_version == version)
                .then_some(())
                .ok_or_else(|| "careful was written again".to_string())
        }
    })
    .await;

    // The fix: a pinned image clears the insight from status and metrics.
    merge_patch(
        &services,
        "careless",
        json!({"spec": {"image": "registry.example.test/careless:1.4.2"}}),
    )
    .await;
    wait_object(&services, "careless", "image-pinned cleared", |s| {
        let card = &s.data["status"]["scorecard"];
        let rules = rules(card);
        (!rules.contains(&"image-pinned".to_string())
            && rules.contains(&"image-digest".to_string()))
        .then_some(())
        .ok_or(format!("scorecard {card}"))
    })
    .await;
    wait_until("the image-pinned series to go", WAIT, || async {
        let value = insight_series(&ns, "careless", "image-pinned");
        (value == 0.0).then_some(()).ok_or(format!("{value}"))
    })
    .await;

    // A deleted Service leaves no series behind.
    services
        .delete("careless", &DeleteParams::default())
        .await
        .unwrap();
    wait_until("careless's series to go", WAIT, || async {
        let left = metric_sum(
            &scrape_metrics(),
            "paved_insights",
            &[("namespace", &ns), ("name", "careless")],
        );
        (left == 0.0)
            .then_some(())
            .ok_or(format!("{left} series left"))
    })
    .await;

    // Stopped, the Environment costs nothing now and says what stopping saves.
    merge_patch(
        &environments,
        &env.name,
        json!({"spec": {"lifecycle": {"stopped": true}}}),
    )
    .await;
    wait_object(
        &environments,
        &env.name,
        "stopped environment costed",
        |e| {
            let cost = cost_of(e);
            (cost["monthly"] == "0.00"
                && cost["savedByStopping"] == "3.38"
                && cost["monthlyRequested"] == "3.38")
                .then_some(())
                .ok_or(format!("cost {cost}"))
        },
    )
    .await;
}

fn lint(manifest: &str, extra: &[&str]) -> std::process::Output {
    let dir = std::env::temp_dir().join(crate::support::unique("paved-lint"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("manifests.yaml");
    std::fs::write(&file, manifest).unwrap();
    let output = std::process::Command::new(paved_bin())
        .arg("lint")
        .arg("-f")
        .arg(&file)
        .args(extra)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    output
}

fn manifests(service: Value) -> String {
    let documents = [
        json!({"apiVersion": "paved.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "production"}, "spec": {"type": "production", "domain": "shop.example.com"}}),
        json!({"apiVersion": "paved.dev/v1alpha1", "kind": "Application", "metadata": {"name": "shop", "namespace": "production"}, "spec": {"owner": "team-shop", "description": "The shop", "links": [{"title": "Repo", "url": "https://example.com/shop"}]}}),
        json!({"apiVersion": "paved.dev/v1alpha1", "kind": "Service", "metadata": {"name": "web", "namespace": "production"}, "spec": service}),
    ];
    documents
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n")
}

#[test]
fn paved_lint_fails_a_pull_request_on_a_critical_insight_and_passes_a_careful_one() {
    let bad = lint(&manifests(careless()), &[]);
    let stdout = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    assert!(
        stdout.contains(
            "critical image-pinned: image registry.example.test/careless:latest follows latest"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("2 critical, 3 warning, 1 info"), "{stdout}");

    assert_eq!(
        lint(&manifests(careless()), &["--fail-on", "never"])
            .status
            .code(),
        Some(0)
    );
    // Disabling the critical rules leaves warnings, which fail only at --fail-on warning.
    let relaxed = ["--insights-disable", "image-pinned,production-replicas"];
    assert_eq!(
        lint(&manifests(careless()), &relaxed).status.code(),
        Some(0)
    );
    assert_eq!(
        lint(
            &manifests(careless()),
            &[relaxed[0], relaxed[1], "--fail-on", "warning"]
        )
        .status
        .code(),
        Some(1)
    );

    let good = lint(&manifests(careful()), &[]);
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert_eq!(good.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("Service production/web: score 100"),
        "{stdout}"
    );

    // A typo in a rule id, or input that is no YAML, is an error of its own (2).
    let typo = lint(
        &manifests(careful()),
        &["--insights-disable", "image-pined"],
    );
    assert_eq!(typo.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&typo.stderr).contains("unknown insight rule"));
    assert_eq!(lint("kind: [unclosed", &[]).status.code(), Some(2));
}
