//! The catalog as Backstage entities, served at `GET /catalog/backstage` for a
//! Backstage `url` location. Pure: CRs in, entities out.
//!
//! | Paved | Backstage |
//! |---|---|
//! | Environment | `Resource` (type `environment`) in namespace `default` |
//! | Application | `System`, in the Backstage namespace named after its Kubernetes namespace |
//! | Service | `Component` (type `service`) of that System, `dependsOn` its dependencies |
//!
//! Each entity carries its kind's paved-path scorecard from status as
//! annotations (`paved.dev/score`, `paved.dev/insights-critical`, `-warning`,
//! `-info`, and `paved.dev/insights`: the rule ids, comma-separated), so a
//! portal can show and sort by them without reading Kubernetes; and its
//! delivery metrics (`paved.dev/deploys`, `paved.dev/change-failures`,
//! `paved.dev/change-failure-rate`, `paved.dev/delivery-since`, and when known
//! `paved.dev/mean-time-to-restore-seconds`, `paved.dev/last-lead-time-seconds`);
//! and, on a cluster with metrics, what its pods use (`paved.dev/usage-cpu`,
//! `paved.dev/usage-memory`, `paved.dev/usage-cpu-percent-of-requested`, ...);
//! and, with prices set, the monthly estimates (`paved.dev/cost-monthly-requested`,
//! `paved.dev/cost-monthly-from-usage`, `paved.dev/cost-currency`).
//!
//! Owners are Group references (`group:default/<owner>`). The same Application
//! in staging and production becomes two Systems, `staging/shop` and
//! `production/shop`, so no two entities share a reference.

use std::collections::BTreeMap;

use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::cost::CostEstimate;
use crate::api::delivery::Delivery;
use crate::api::environment::AccessRole;
use crate::api::scorecard::Scorecard;
use crate::api::usage::Usage;
use crate::api::{Application, Environment, Service};
use crate::names::labels;

/// Owner of an Environment's Resource when none of its access grants names a
/// developer group.
pub const DEFAULT_ENVIRONMENT_OWNER: &str = "platform";

const API_VERSION: &str = "backstage.io/v1alpha1";

fn group_ref(owner: &str) -> String {
    if owner.contains(':') {
        owner.to_string()
    } else {
        format!("group:default/{owner}")
    }
}

/// The scorecard as annotations (strings, as Backstage requires); none before
/// Paved has scored the object.
fn scorecard_annotations(scorecard: Option<&Scorecard>) -> BTreeMap<String, String> {
    let Some(card) = scorecard else {
        return BTreeMap::new();
    };
    let mut rules: Vec<&str> = card.insights.iter().map(|i| i.rule.as_str()).collect();
    rules.sort_unstable();
    rules.dedup();
    BTreeMap::from([
        ("paved.dev/score".to_string(), card.score.to_string()),
        (
            "paved.dev/insights-critical".to_string(),
            card.critical.to_string(),
        ),
        (
            "paved.dev/insights-warning".to_string(),
            card.warning.to_string(),
        ),
        ("paved.dev/insights-info".to_string(), card.info.to_string()),
        ("paved.dev/insights".to_string(), rules.join(",")),
    ])
}

/// The delivery metrics as annotations; none before Paved has counted.
fn delivery_annotations(delivery: Option<&Delivery>) -> BTreeMap<String, String> {
    let Some(d) = delivery else {
        return BTreeMap::new();
    };
    let mut annotations = BTreeMap::from([
        ("paved.dev/deploys".to_string(), d.deploys.to_string()),
        (
            "paved.dev/change-failures".to_string(),
            d.failures.to_string(),
        ),
        (
            "paved.dev/change-failure-rate".to_string(),
            d.change_failure_rate.clone(),
        ),
        ("paved.dev/delivery-since".to_string(), d.since.clone()),
    ]);
    if let Some(mttr) = d.mean_time_to_restore_seconds {
        annotations.insert(
            "paved.dev/mean-time-to-restore-seconds".into(),
            mttr.to_string(),
        );
    }
    if let Some(lead) = d.last_lead_time_seconds {
        annotations.insert("paved.dev/last-lead-time-seconds".into(), lead.to_string());
    }
    annotations
}

/// What the pods use as annotations (`paved.dev/usage-cpu`, `-memory`, and
/// the percent of the requests when known); none without usage figures.
fn usage_annotations(usage: Option<&Usage>) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    let Some(usage) = usage.filter(|u| u.available) else {
        return annotations;
    };
    for (name, figures) in [("cpu", &usage.cpu), ("memory", &usage.memory)] {
        let Some(figures) = figures else { continue };
        annotations.insert(format!("paved.dev/usage-{name}"), figures.used.clone());
        if let Some(percent) = figures.percent_of_requested {
            annotations.insert(
                format!("paved.dev/usage-{name}-percent-of-requested"),
                percent.to_string(),
            );
        }
    }
    annotations
}

/// The monthly estimates as annotations (`paved.dev/cost-monthly-requested`,
/// `-monthly-from-usage` when measured, `paved.dev/cost-currency`); none
/// without prices.
fn cost_annotations(cost: Option<&CostEstimate>) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    let Some(cost) = cost else {
        return annotations;
    };
    annotations.insert(
        "paved.dev/cost-monthly-requested".into(),
        cost.monthly_requested.clone(),
    );
    if let Some(from_usage) = &cost.monthly_from_usage {
        annotations.insert(
            "paved.dev/cost-monthly-from-usage".into(),
            from_usage.clone(),
        );
    }
    annotations.insert("paved.dev/cost-currency".into(), cost.currency.clone());
    annotations
}

/// Scorecard, delivery, usage and cost annotations of a status.
fn status_annotations(
    scorecard: Option<&Scorecard>,
    delivery: Option<&Delivery>,
    usage: Option<&Usage>,
    cost: Option<&CostEstimate>,
) -> BTreeMap<String, String> {
    let mut annotations = scorecard_annotations(scorecard);
    annotations.extend(delivery_annotations(delivery));
    annotations.extend(usage_annotations(usage));
    annotations.extend(cost_annotations(cost));
    annotations
}

fn environment_entity(env: &Environment) -> Value {
    let owner = env
        .spec
        .access
        .iter()
        .find(|a| a.role == AccessRole::Developer && a.group.is_some())
        .and_then(|a| a.group.clone())
        .unwrap_or_else(|| DEFAULT_ENVIRONMENT_OWNER.into());
    json!({
        "apiVersion": API_VERSION,
        "kind": "Resource",
        "metadata": {
            "name": env.name_any(),
            "namespace": "default",
            "description": format!("Paved {} environment (namespace {})", env.spec.type_.as_str(), env.namespace_name()),
            "labels": {"paved.dev/environment-type": env.spec.type_.as_str()},
            "annotations": status_annotations(
                env.status.as_ref().and_then(|s| s.scorecard.as_ref()),
                env.status.as_ref().and_then(|s| s.delivery.as_ref()),
                env.status.as_ref().and_then(|s| s.usage.as_ref()),
                env.status.as_ref().and_then(|s| s.cost.as_ref()),
            ),
        },
        "spec": {"type": "environment", "owner": group_ref(&owner)},
    })
}

fn application_entity(app: &Application, namespace: &str) -> Value {
    let mut annotations = status_annotations(
        app.status.as_ref().and_then(|s| s.scorecard.as_ref()),
        app.status.as_ref().and_then(|s| s.delivery.as_ref()),
        app.status.as_ref().and_then(|s| s.usage.as_ref()),
        app.status.as_ref().and_then(|s| s.cost.as_ref()),
    );
    annotations.insert(labels::BACKSTAGE_KUBERNETES_ID.to_string(), app.name_any());
    let mut metadata = json!({
        "name": app.name_any(),
        "namespace": namespace,
        "annotations": annotations,
    });
    if let Some(description) = &app.spec.description {
        metadata["description"] = json!(description);
    }
    if !app.spec.links.is_empty() {
        metadata["links"] = json!(
            app.spec
                .links
                .iter()
                .map(|l| json!({"title": l.title, "url": l.url}))
                .collect::<Vec<_>>()
        );
    }
    json!({
        "apiVersion": API_VERSION,
        "kind": "System",
        "metadata": metadata,
        "spec": {
            "owner": group_ref(&app.spec.owner),
            "domain": null,
        },
    })
}

fn service_entity(service: &Service, namespace: &str, app: Option<&Application>) -> Value {
    let application = &service.spec.application;
    let mut annotations = status_annotations(
        service.status.as_ref().and_then(|s| s.scorecard.as_ref()),
        service.status.as_ref().and_then(|s| s.delivery.as_ref()),
        service.status.as_ref().and_then(|s| s.usage.as_ref()),
        service.status.as_ref().and_then(|s| s.cost.as_ref()),
    );
    annotations.extend([
        (
            labels::BACKSTAGE_KUBERNETES_ID.to_string(),
            application.clone(),
        ),
        (
            "backstage.io/kubernetes-namespace".to_string(),
            namespace.to_string(),
        ),
    ]);
    annotations.insert(
        "backstage.io/kubernetes-label-selector".into(),
        format!("{}={}", labels::SERVICE, service.name_any()),
    );
    let mut metadata = json!({
        "name": service.name_any(),
        "namespace": namespace,
        "annotations": annotations,
    });
    if let Some(url) = service.status.as_ref().and_then(|s| s.url.clone()) {
        metadata["links"] = json!([{"title": "Endpoint", "url": url}]);
    }
    let mut spec = json!({
        "type": "service",
        "lifecycle": app.map(|a| a.spec.lifecycle.as_str()).unwrap_or("experimental"),
        "owner": group_ref(app.map(|a| a.spec.owner.as_str()).unwrap_or(DEFAULT_ENVIRONMENT_OWNER)),
        "system": application,
    });
    if !service.spec.depends_on.is_empty() {
        spec["dependsOn"] = json!(
            service
                .spec
                .depends_on
                .iter()
                .map(|d| format!("component:{namespace}/{d}"))
                .collect::<Vec<_>>()
        );
    }
    json!({"apiVersion": API_VERSION, "kind": "Component", "metadata": metadata, "spec": spec})
}

/// Backstage entities for the whole catalog, in a stable order (Resources,
/// then Systems, then Components, each sorted by namespace and name).
pub fn backstage_entities(
    environments: &[Environment],
    applications: &[Application],
    services: &[Service],
) -> Vec<Value> {
    let mut entities: Vec<Value> = Vec::new();
    let mut envs: Vec<&Environment> = environments.iter().collect();
    envs.sort_by_key(|e| e.name_any());
    entities.extend(envs.into_iter().map(environment_entity));

    let key = |ns: Option<String>, name: String| (ns.unwrap_or_default(), name);
    let mut apps: Vec<&Application> = applications.iter().collect();
    apps.sort_by_key(|a| key(a.namespace(), a.name_any()));
    entities.extend(
        apps.iter()
            .map(|a| application_entity(a, &a.namespace().unwrap_or_default())),
    );

    let mut svcs: Vec<&Service> = services.iter().collect();
    svcs.sort_by_key(|s| key(s.namespace(), s.name_any()));
    for service in svcs {
        let namespace = service.namespace().unwrap_or_default();
        let app = apps.iter().copied().find(|a| {
            a.namespace().as_deref() == Some(namespace.as_str())
                && a.name_any() == service.spec.application
        });
        entities.push(service_entity(service, &namespace, app));
    }
    // `domain: null` only documents that Systems have no domain; Backstage
    // rejects nulls, so drop them.
    for entity in &mut entities {
        if let Some(spec) = entity["spec"].as_object_mut() {
            spec.retain(|_, v| !v.is_null());
        }
    }
    entities
}

/// The entities as one multi-document YAML stream, what a Backstage `url`
/// location reads.
pub fn to_yaml(entities: &[Value]) -> String {
    entities
        .iter()
        .map(|e| serde_yaml::to_string(e).expect("JSON values serialize as YAML"))
        .collect::<Vec<_>>()
        .join("---\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn fixture() -> (Vec<Environment>, Vec<Application>, Vec<Service>) {
        let env: Environment = from_yaml(
            "apiVersion: paved.dev/v1alpha1\nkind: Environment\nmetadata: {name: staging}\n\
             spec: {type: staging, domain: staging.example.com, access: [{group: team-checkout, role: developer}]}",
        );
        let app: Application = from_yaml(
            "apiVersion: paved.dev/v1alpha1\nkind: Application\nmetadata: {name: checkout, namespace: staging}\n\
             spec: {owner: team-checkout, description: Checkout, lifecycle: production, links: [{title: Repo, url: 'https://example.com/r'}]}",
        );
        let api: Service = from_yaml(
            "apiVersion: paved.dev/v1alpha1\nkind: Service\nmetadata: {name: checkout-api, namespace: staging}\n\
             spec: {application: checkout, image: 'ghcr.io/acme/api:1', dependsOn: [payments-api]}",
        );
        let payments: Service = from_yaml(
            "apiVersion: paved.dev/v1alpha1\nkind: Service\nmetadata: {name: payments-api, namespace: staging}\n\
             spec: {application: checkout, image: 'ghcr.io/acme/payments:1'}",
        );
        (vec![env], vec![app], vec![payments, api])
    }

    #[test]
    fn an_environment_becomes_a_resource_owned_by_its_developer_group() {
        let (envs, apps, svcs) = fixture();
        let entities = backstage_entities(&envs, &apps, &svcs);
        assert_eq!(entities[0]["kind"], "Resource");
        assert_eq!(entities[0]["metadata"]["name"], "staging");
        assert_eq!(entities[0]["spec"]["type"], "environment");
        assert_eq!(entities[0]["spec"]["owner"], "group:default/team-checkout");
    }

    #[test]
    fn an_application_becomes_a_system_in_its_namespace_with_its_owner_and_links() {
        let (envs, apps, svcs) = fixture();
        let system = &backstage_entities(&envs, &apps, &svcs)[1];
        assert_eq!(system["kind"], "System");
        assert_eq!(system["metadata"]["namespace"], "staging");
        assert_eq!(system["spec"]["owner"], "group:default/team-checkout");
        assert_eq!(
            system["metadata"]["links"][0]["url"],
            "https://example.com/r"
        );
        assert!(
            system["spec"].get("domain").is_none(),
            "no null fields: {system}"
        );
    }

    #[test]
    fn services_become_components_of_their_system_with_depends_on_references() {
        let (envs, apps, svcs) = fixture();
        let entities = backstage_entities(&envs, &apps, &svcs);
        let api = &entities[2];
        assert_eq!(api["kind"], "Component");
        assert_eq!(api["metadata"]["name"], "checkout-api", "sorted by name");
        assert_eq!(api["spec"]["system"], "checkout");
        assert_eq!(api["spec"]["lifecycle"], "production");
        assert_eq!(
            api["spec"]["dependsOn"],
            json!(["component:staging/payments-api"])
        );
        assert_eq!(
            api["metadata"]["annotations"][labels::BACKSTAGE_KUBERNETES_ID],
            "checkout"
        );
        assert!(entities[3]["spec"].get("dependsOn").is_none());
    }

    #[test]
    fn a_scored_service_carries_its_score_and_insight_rules_as_annotations_and_an_unscored_one_none()
     {
        let (envs, apps, mut svcs) = fixture();
        let mut card = crate::insights::service_scorecard(
            &svcs[1],
            Some(&envs[0]),
            None,
            &crate::insights::InsightSettings::default(),
        );
        assert!(card.warning > 0, "the fixture breaks some rules: {card:?}");
        card.insights.push(card.insights[0].clone());
        svcs[1].status = Some(crate::api::ServiceStatus {
            scorecard: Some(card.clone()),
            ..Default::default()
        });
        let entities = backstage_entities(&envs, &apps, &svcs);
        let annotations = &entities[2]["metadata"]["annotations"];
        assert_eq!(annotations["paved.dev/score"], card.score.to_string());
        assert_eq!(
            annotations["paved.dev/insights-warning"],
            card.warning.to_string()
        );
        let rules = annotations["paved.dev/insights"].as_str().unwrap();
        assert!(
            rules.contains("health-check") && rules.matches("health-check").count() == 1,
            "{rules}"
        );
        assert_eq!(annotations[labels::BACKSTAGE_KUBERNETES_ID], "checkout");
        assert!(
            entities[3]["metadata"]["annotations"]
                .get("paved.dev/score")
                .is_none()
        );
        assert!(
            entities[0]["metadata"]["annotations"]
                .as_object()
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn a_counted_service_carries_its_delivery_metrics_as_annotations_and_an_uncounted_one_none() {
        let (envs, apps, mut svcs) = fixture();
        svcs[1].status = Some(crate::api::ServiceStatus {
            delivery: Some(Delivery {
                since: "2026-01-01T00:00:00Z".into(),
                deploys: 4,
                failures: 1,
                change_failure_rate: "0.25".into(),
                mean_time_to_restore_seconds: Some(120),
                ..Default::default()
            }),
            ..Default::default()
        });
        let entities = backstage_entities(&envs, &apps, &svcs);
        let annotations = &entities[2]["metadata"]["annotations"];
        assert_eq!(annotations["paved.dev/deploys"], "4");
        assert_eq!(annotations["paved.dev/change-failures"], "1");
        assert_eq!(annotations["paved.dev/change-failure-rate"], "0.25");
        assert_eq!(annotations["paved.dev/mean-time-to-restore-seconds"], "120");
        assert_eq!(
            annotations["paved.dev/delivery-since"],
            "2026-01-01T00:00:00Z"
        );
        assert!(
            annotations
                .get("paved.dev/last-lead-time-seconds")
                .is_none()
        );
        assert!(
            entities[3]["metadata"]["annotations"]
                .get("paved.dev/deploys")
                .is_none()
        );
    }

    #[test]
    fn a_measured_service_carries_its_usage_as_annotations_and_one_without_metrics_none() {
        let (envs, apps, mut svcs) = fixture();
        svcs[1].status = Some(crate::api::ServiceStatus {
            usage: Some(
                serde_yaml::from_str(
                    "{available: true, pods: 2, cpu: {used: 180m, percentOfRequested: 36}, memory: {used: 212Mi}}",
                )
                .unwrap(),
            ),
            ..Default::default()
        });
        svcs[0].status = Some(crate::api::ServiceStatus {
            usage: Some(serde_yaml::from_str("{available: false, reason: none}").unwrap()),
            ..Default::default()
        });
        let entities = backstage_entities(&envs, &apps, &svcs);
        let annotations = &entities[2]["metadata"]["annotations"];
        assert_eq!(annotations["paved.dev/usage-cpu"], "180m");
        assert_eq!(
            annotations["paved.dev/usage-cpu-percent-of-requested"],
            "36"
        );
        assert_eq!(annotations["paved.dev/usage-memory"], "212Mi");
        assert!(
            annotations
                .get("paved.dev/usage-memory-percent-of-requested")
                .is_none()
        );
        assert!(
            entities[3]["metadata"]["annotations"]
                .get("paved.dev/usage-cpu")
                .is_none()
        );
    }

    #[test]
    fn the_monthly_estimates_are_annotations_and_absent_without_prices() {
        let (mut envs, apps, mut svcs) = fixture();
        let cost: CostEstimate = serde_yaml::from_str(
            "{currency: EUR, monthlyRequested: '32.85', monthly: '32.85', cpu: '1.000', memoryGib: '1.000', monthlyFromUsage: '10.19'}",
        )
        .unwrap();
        svcs[1].status = Some(crate::api::ServiceStatus {
            cost: Some(cost.clone()),
            ..Default::default()
        });
        envs[0].status = Some(crate::api::EnvironmentStatus {
            cost: Some(CostEstimate {
                monthly_from_usage: None,
                ..cost
            }),
            ..Default::default()
        });
        let entities = backstage_entities(&envs, &apps, &svcs);
        let annotations = &entities[2]["metadata"]["annotations"];
        assert_eq!(annotations["paved.dev/cost-monthly-requested"], "32.85");
        assert_eq!(annotations["paved.dev/cost-monthly-from-usage"], "10.19");
        assert_eq!(annotations["paved.dev/cost-currency"], "EUR");
        let environment = &entities[0]["metadata"]["annotations"];
        assert_eq!(environment["paved.dev/cost-monthly-requested"], "32.85");
        assert!(
            environment
                .get("paved.dev/cost-monthly-from-usage")
                .is_none(),
            "not measured, not shown"
        );
        assert!(
            entities[3]["metadata"]["annotations"]
                .get("paved.dev/cost-currency")
                .is_none(),
            "no prices, no estimate"
        );
    }

    #[test]
    fn the_yaml_stream_has_one_document_per_entity() {
        let (envs, apps, svcs) = fixture();
        let yaml = to_yaml(&backstage_entities(&envs, &apps, &svcs));
        let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 4);
    }
}
