//! Bad input is rejected at admission by the CRD schema (OpenAPI and CEL), with
//! a 422 whose message names the field: `kubectl apply` fails, nothing is stored.
//!
//! Creates are dry runs in the `default` namespace: the apiserver validates them
//! fully and stores nothing. Each case starts from a manifest that is accepted
//! (checked by the first tests), so a rejection is caused by the one bad field.

use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::paved_support::{
    Cleanup, application_manifest, applications, apply, environment_manifest, environments,
    service_manifest, services,
};
use crate::support::{client, unique};

fn valid_environment(name: &str) -> Value {
    environment_manifest(
        name,
        json!({"type": "staging", "domain": "staging.example.test", "ingress": {"className": "nginx"}}),
    )
}

fn valid_application() -> Value {
    application_manifest(
        "checkout",
        json!({
            "owner": "team-checkout",
            "lifecycle": "production",
            "links": [{"title": "Repository", "url": "https://github.com/acme/checkout"}],
            "env": [{"name": "LOG_LEVEL", "value": "info"}]
        }),
    )
}

fn valid_service() -> Value {
    service_manifest(
        "checkout-api",
        json!({
            "application": "checkout",
            "image": "ghcr.io/acme/checkout-api:1.4.2",
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9090}],
            "env": [{"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}],
            "replicas": 2,
            "resources": {"requests": {"cpu": "200m", "memory": "256Mi"}},
            "health": {"path": "/healthz", "port": "http"},
            "expose": {"host": "checkout.staging.example.test", "path": "/"},
            "dependsOn": ["payments-api"],
            "restartedAt": "2026-11-23T10:00:00Z"
        }),
    )
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: None,
    }
}

async fn create(api: &Api<DynamicObject>, manifest: &Value) -> Result<DynamicObject, kube::Error> {
    let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
    api.create(&dry_run(), &object).await
}

/// Asserts a 422 Invalid whose message contains every one of `mentions`.
fn assert_invalid(result: Result<DynamicObject, kube::Error>, mentions: &[&str]) {
    match result {
        Ok(object) => panic!(
            "accepted, but should be rejected: {}",
            serde_json::to_string(&object).unwrap()
        ),
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "422 Unprocessable Entity, got {status:?}");
            for mention in mentions {
                assert!(
                    status.message.contains(mention),
                    "the message names {mention}: {}",
                    status.message
                );
            }
        }
        Err(other) => panic!("expected a 422 from the apiserver, got {other}"),
    }
}

async fn rejects_environment(change: impl FnOnce(&mut Value), mentions: &[&str]) {
    let mut manifest = valid_environment(&unique("pschema-env"));
    change(&mut manifest);
    assert_invalid(
        create(&environments(&client().await), &manifest).await,
        mentions,
    );
}

async fn rejects_application(change: impl FnOnce(&mut Value), mentions: &[&str]) {
    let mut manifest = valid_application();
    change(&mut manifest);
    assert_invalid(
        create(&applications(&client().await, "default"), &manifest).await,
        mentions,
    );
}

async fn rejects_service(change: impl FnOnce(&mut Value), mentions: &[&str]) {
    let mut manifest = valid_service();
    change(&mut manifest);
    assert_invalid(
        create(&services(&client().await, "default"), &manifest).await,
        mentions,
    );
}

#[tokio::test]
async fn the_valid_manifests_the_rejection_cases_start_from_are_accepted() {
    let client = client().await;
    create(
        &environments(&client),
        &valid_environment(&unique("pschema-env")),
    )
    .await
    .expect("valid Environment");
    create(&applications(&client, "default"), &valid_application())
        .await
        .expect("valid Application");
    create(&services(&client, "default"), &valid_service())
        .await
        .expect("valid Service");
    let mut autoscaled = valid_service();
    autoscaled["spec"]
        .as_object_mut()
        .unwrap()
        .remove("replicas");
    autoscaled["spec"]["autoscaling"] = json!({"min": 2, "max": 10, "cpuUtilization": 70});
    create(&services(&client, "default"), &autoscaled)
        .await
        .expect("valid autoscaled Service");
    let mut minimal = service_manifest(
        "worker",
        json!({"application": "checkout", "image": "ghcr.io/acme/worker:1"}),
    );
    create(&services(&client, "default"), &minimal)
        .await
        .expect("a Service needs only application and image");
    minimal["spec"]["expose"] = json!({});
    assert_invalid(
        create(&services(&client, "default"), &minimal).await,
        &["port"],
    );
}

#[tokio::test]
async fn an_environment_type_outside_the_enum_is_rejected() {
    rejects_environment(|m| m["spec"]["type"] = json!("qa"), &["spec.type", "qa"]).await;
}

#[tokio::test]
async fn an_environment_namespace_that_is_not_a_dns_label_is_rejected() {
    rejects_environment(
        |m| m["spec"]["namespace"] = json!("Checkout_Staging"),
        &["spec.namespace"],
    )
    .await;
}

#[tokio::test]
async fn an_environment_domain_that_is_not_a_dns_name_is_rejected() {
    rejects_environment(
        |m| m["spec"]["domain"] = json!("https://staging.example.test/"),
        &["spec.domain"],
    )
    .await;
}

#[tokio::test]
async fn an_environment_name_that_cannot_be_a_namespace_is_rejected_unless_spec_namespace_is_set() {
    let name = format!("{}.eu", unique("pschema-dotted"));
    rejects_environment(|m| m["metadata"]["name"] = json!(name), &["namespace"]).await;
    let mut manifest = valid_environment(&name);
    manifest["spec"]["namespace"] = json!(unique("pschema-ns"));
    create(&environments(&client().await), &manifest)
        .await
        .expect("a dotted name with spec.namespace is fine");
}

#[tokio::test]
async fn an_environment_namespace_cannot_be_changed_after_creation() {
    let client = client().await;
    let name = unique("pschema-immutable");
    let mut guard = Cleanup::default();
    guard.environments.push(name.clone());
    let first_namespace = unique("pschema-first");
    guard.namespaces.push(first_namespace.clone());
    let mut manifest = valid_environment(&name);
    manifest["spec"]["namespace"] = json!(first_namespace);
    apply(&environments(&client), manifest.clone()).await;

    manifest["spec"]["namespace"] = json!(unique("pschema-second"));
    let result = environments(&client)
        .patch(
            &name,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&manifest),
        )
        .await;
    assert_invalid(result, &["spec.namespace", "immutable"]);
    // Removing it is a change too.
    manifest["spec"]
        .as_object_mut()
        .unwrap()
        .remove("namespace");
    let result = environments(&client)
        .patch(
            &name,
            &PatchParams::apply("e2e-user").force(),
            &Patch::Apply(&manifest),
        )
        .await;
    assert_invalid(result, &["namespace", "immutable"]);
    let stored = environments(&client).get(&name).await.unwrap();
    assert_eq!(
        stored.data["spec"]["namespace"],
        json!(first_namespace),
        "nothing was stored"
    );
}

#[tokio::test]
async fn an_application_lifecycle_outside_the_enum_is_rejected() {
    rejects_application(
        |m| m["spec"]["lifecycle"] = json!("retired"),
        &["spec.lifecycle", "retired"],
    )
    .await;
}

#[tokio::test]
async fn an_application_without_an_owner_or_with_a_link_that_is_not_a_url_is_rejected() {
    rejects_application(
        |m| {
            m["spec"].as_object_mut().unwrap().remove("owner");
        },
        &["spec.owner"],
    )
    .await;
    rejects_application(
        |m| m["spec"]["links"][0]["url"] = json!("github.com/acme"),
        &["spec.links[0].url"],
    )
    .await;
}

#[tokio::test]
async fn a_port_above_65535_is_rejected() {
    rejects_service(
        |m| m["spec"]["ports"][0]["port"] = json!(70000),
        &["spec.ports[0].port"],
    )
    .await;
}

#[tokio::test]
async fn duplicate_port_names_are_rejected() {
    rejects_service(
        |m| m["spec"]["ports"][1]["name"] = json!("http"),
        &["spec.ports"],
    )
    .await;
}

#[tokio::test]
async fn duplicate_port_numbers_are_rejected() {
    rejects_service(
        |m| m["spec"]["ports"][1]["port"] = json!(8080),
        &["spec.ports", "unique"],
    )
    .await;
}

#[tokio::test]
async fn a_port_name_that_is_not_a_dns_label_is_rejected() {
    rejects_service(
        |m| m["spec"]["ports"][0]["name"] = json!("HTTP_Main"),
        &["spec.ports[0].name"],
    )
    .await;
}

/// Found by `trust_dry_run`: a DNS label passed the schema, then every
/// Deployment and core Service write was refused (IANA service names allow no
/// `--` and need a letter).
#[tokio::test]
async fn a_port_name_with_consecutive_hyphens_or_no_letter_is_rejected() {
    for name in ["a--b", "8080", "-http", "http-"] {
        rejects_service(
            |m| m["spec"]["ports"][0]["name"] = json!(name),
            &["spec.ports[0].name"],
        )
        .await;
        rejects_service(
            |m| {
                m["spec"]["ports"][0]["name"] = json!(name);
                m["spec"]["health"]["port"] = json!(name);
            },
            &["spec.health.port"],
        )
        .await;
    }
}

#[tokio::test]
async fn replicas_together_with_autoscaling_is_rejected() {
    rejects_service(
        |m| m["spec"]["autoscaling"] = json!({"min": 2, "max": 4}),
        &["replicas", "autoscaling"],
    )
    .await;
}

#[tokio::test]
async fn autoscaling_with_min_above_max_is_rejected() {
    rejects_service(
        |m| {
            m["spec"].as_object_mut().unwrap().remove("replicas");
            m["spec"]["autoscaling"] = json!({"min": 5, "max": 2});
        },
        &["spec.autoscaling", "min", "max"],
    )
    .await;
}

#[tokio::test]
async fn negative_replicas_are_rejected() {
    rejects_service(|m| m["spec"]["replicas"] = json!(-1), &["spec.replicas"]).await;
}

#[tokio::test]
async fn an_exposed_host_that_is_not_a_dns_name_is_rejected() {
    rejects_service(
        |m| m["spec"]["expose"]["host"] = json!("Checkout_Staging!"),
        &["spec.expose.host"],
    )
    .await;
}

#[tokio::test]
async fn a_service_name_that_cannot_be_a_dns_label_is_rejected() {
    rejects_service(|m| m["metadata"]["name"] = json!("checkout.api"), &["name"]).await;
}

#[tokio::test]
async fn an_application_reference_that_is_not_a_name_is_rejected() {
    rejects_service(
        |m| m["spec"]["application"] = json!("Checkout App"),
        &["spec.application"],
    )
    .await;
}

#[tokio::test]
async fn a_dependency_that_is_not_a_service_name_is_rejected() {
    rejects_service(
        |m| m["spec"]["dependsOn"] = json!(["Payments_API"]),
        &["spec.dependsOn"],
    )
    .await;
}

#[tokio::test]
async fn a_service_depending_on_itself_is_rejected() {
    rejects_service(
        |m| m["spec"]["dependsOn"] = json!(["checkout-api"]),
        &["dependsOn"],
    )
    .await;
}

#[tokio::test]
async fn an_env_var_with_both_value_and_value_from_is_rejected() {
    rejects_service(
        |m| m["spec"]["env"][0]["value"] = json!("hunter2"),
        &["spec.env[0]", "value"],
    )
    .await;
}

#[tokio::test]
async fn a_health_check_on_an_undeclared_port_is_rejected() {
    rejects_service(
        |m| m["spec"]["health"]["port"] = json!("admin"),
        &["spec.health.port"],
    )
    .await;
}

#[tokio::test]
async fn running_as_root_without_the_baseline_opt_out_is_rejected() {
    rejects_service(
        |m| m["spec"]["security"] = json!({"runAsUser": 0}),
        &["spec.security", "baseline"],
    )
    .await;
    rejects_service(
        |m| m["spec"]["security"] = json!({"runAsNonRoot": false, "level": "restricted"}),
        &["spec.security", "baseline"],
    )
    .await;
    rejects_service(
        |m| m["spec"]["security"] = json!({"level": "privileged"}),
        &["spec.security.level"],
    )
    .await;
    // The same fields with the explicit opt-out are accepted.
    let mut root = valid_service();
    root["spec"]["security"] =
        json!({"level": "baseline", "runAsUser": 0, "runAsNonRoot": false, "kubernetesApi": true});
    create(&services(&client().await, "default"), &root)
        .await
        .expect("a Service opting out with level: baseline");
}

#[tokio::test]
async fn a_production_environment_cannot_lower_its_pod_security() {
    rejects_environment(
        |m| {
            m["spec"]["type"] = json!("production");
            m["spec"]["guardrails"] = json!({"podSecurity": "baseline"});
        },
        &["production", "podSecurity"],
    )
    .await;
    let mut staging = valid_environment(&unique("pschema-env"));
    staging["spec"]["guardrails"] = json!({"podSecurity": "baseline"});
    create(&environments(&client().await), &staging)
        .await
        .expect("a staging Environment may enforce baseline");
}

// --- issue 11: DNS limits, quantities, class names, ttl ----------------------

/// `n` labels of `len` characters (`a…a.b…b…`), joined by dots.
fn host_of(labels: &[usize]) -> String {
    labels
        .iter()
        .enumerate()
        .map(|(i, len)| {
            std::iter::repeat_n((b'a' + (i % 26) as u8) as char, *len).collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[tokio::test]
async fn a_domain_of_a_single_label_such_as_com_or_localhost_is_rejected() {
    for domain in ["com", "localhost", "test"] {
        rejects_environment(|m| m["spec"]["domain"] = json!(domain), &["spec.domain"]).await;
    }
}

#[tokio::test]
async fn a_domain_label_over_63_characters_or_a_domain_over_253_is_rejected() {
    let long_label = format!("{}.example.test", host_of(&[64]));
    rejects_environment(
        |m| m["spec"]["domain"] = json!(long_label),
        &["spec.domain"],
    )
    .await;
    // 4 labels of 63 + 3 dots = 255 characters.
    let long_name = host_of(&[63, 63, 63, 63]);
    rejects_environment(|m| m["spec"]["domain"] = json!(long_name), &["spec.domain"]).await;
    // The limits themselves are fine: 63 per label, 253 in all.
    let mut manifest = valid_environment(&unique("pschema-env"));
    manifest["spec"]["domain"] = json!(host_of(&[63, 63, 63, 61]));
    assert_eq!(host_of(&[63, 63, 63, 61]).len(), 253);
    create(&environments(&client().await), &manifest)
        .await
        .expect("labels of 63 and a name of 253 are within DNS limits");
}

#[tokio::test]
async fn an_exposed_host_with_a_64_character_label_or_254_characters_is_rejected() {
    let long_label = format!("{}.staging.example.test", host_of(&[64]));
    rejects_service(
        |m| m["spec"]["expose"]["host"] = json!(long_label),
        &["spec.expose.host"],
    )
    .await;
    let long_name = host_of(&[63, 63, 63, 62]);
    assert_eq!(long_name.len(), 254);
    rejects_service(
        |m| m["spec"]["expose"]["host"] = json!(long_name),
        &["spec.expose.host"],
    )
    .await;
    let mut manifest = valid_service();
    manifest["spec"]["expose"]["host"] = json!(format!("{}.staging.example.test", host_of(&[63])));
    create(&services(&client().await, "default"), &manifest)
        .await
        .expect("a 63-character label is fine");
}

#[tokio::test]
async fn a_quota_or_default_that_is_not_a_quantity_is_rejected() {
    for (field, value) in [
        ("cpu", json!("lots")),
        ("memory", json!("12 GB")),
        ("memory", json!("-1Gi")),
        ("pods", json!(-3)),
    ] {
        rejects_environment(
            |m| m["spec"]["guardrails"] = json!({"quota": {field: value}}),
            &["spec.guardrails.quota", field],
        )
        .await;
    }
    rejects_environment(
        |m| {
            m["spec"]["guardrails"] =
                json!({"defaults": {"resources": {"requests": {"memory": "a lot"}}}})
        },
        &["spec.guardrails.defaults.resources.requests"],
    )
    .await;
    rejects_environment(
        |m| {
            m["spec"]["guardrails"] =
                json!({"defaults": {"resources": {"limits": {"cpu": "1.5.0"}}}})
        },
        &["spec.guardrails.defaults.resources.limits"],
    )
    .await;
    let mut manifest = valid_environment(&unique("pschema-env"));
    manifest["spec"]["guardrails"] = json!({
        "quota": {"cpu": "4", "memory": "8Gi", "pods": 20},
        "defaults": {"resources": {"requests": {"cpu": "100m", "memory": "1000Mi"}, "limits": {"memory": "1Gi"}}}
    });
    create(&environments(&client().await), &manifest)
        .await
        .expect("quantities as strings and integers are fine");
}

#[tokio::test]
async fn an_ingress_class_name_that_is_not_a_valid_name_is_rejected() {
    for class in ["Nginx", "nginx class", "nginx_internal", "-nginx"] {
        rejects_environment(
            |m| m["spec"]["ingress"]["className"] = json!(class),
            &["spec.ingress.className"],
        )
        .await;
    }
}

#[tokio::test]
async fn a_ttl_under_one_minute_is_rejected() {
    for ttl in ["0s", "59s", "0d0h0m30s", "00m5s", "0m"] {
        rejects_environment(
            |m| m["spec"]["lifecycle"] = json!({"ttl": ttl}),
            &["spec.lifecycle.ttl", "at least 1m"],
        )
        .await;
    }
    for ttl in ["1m", "60s", "90s", "1h", "0d1h", "7d"] {
        let mut manifest = valid_environment(&unique("pschema-env"));
        manifest["spec"]["lifecycle"] = json!({"ttl": ttl});
        create(&environments(&client().await), &manifest)
            .await
            .unwrap_or_else(|e| panic!("ttl {ttl} is at least 1m: {e}"));
    }
}

#[tokio::test]
async fn a_production_environment_with_a_ttl_is_rejected() {
    rejects_environment(
        |m| {
            m["spec"]["type"] = json!("production");
            m["spec"]["lifecycle"] = json!({"ttl": "72h"});
        },
        &["production", "ttl"],
    )
    .await;
}

#[tokio::test]
async fn a_delegated_domain_outside_the_environments_domain_is_rejected() {
    rejects_environment(
        |m| m["spec"]["delegatedDomains"] = json!(["staging.other.test"]),
        &["delegatedDomains"],
    )
    .await;
    // Text that merely ends with the domain is not under it.
    rejects_environment(
        |m| m["spec"]["delegatedDomains"] = json!(["xstaging.example.test"]),
        &["delegatedDomains"],
    )
    .await;
}
