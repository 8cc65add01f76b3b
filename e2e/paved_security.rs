//! Restricted by default: every pod Paved renders for the examples is admitted
//! by the API server's PodSecurity admission at `restricted`; a Service that
//! opts out (`spec.security.level: baseline`) is refused there, and an
//! Environment enforcing `restricted` stalls it before anything is written.
//! Probes and the default memory limit are checked on the pods Paved runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, Pod};
use kube::api::{Api, ListParams, PostParams};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::day2_cli::paved_bin;
use crate::paved_support::{
    Cleanup, TestEnvironment, condition, first_container, holds_for, image, is_absent, labels,
    merge_patch, wait_condition, wait_exists, wait_object, wait_ready,
};
use crate::support::{WAIT, client, unique, wait_until};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// `paved render -f` over `files` (relative to examples/): every document it prints.
fn render(files: &[&str]) -> Vec<Value> {
    let mut command = std::process::Command::new(paved_bin());
    command.arg("render");
    for file in files {
        command.arg("-f").arg(examples().join(file));
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", paved_bin().display()));
    assert!(
        output.status.success(),
        "paved render {files:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_yaml::Deserializer::from_slice(&output.stdout)
        .map(|document| serde_yaml::Value::deserialize(document).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect()
}

fn of_kind<'a>(documents: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    documents.iter().filter(move |d| d["kind"] == kind)
}

/// A namespace of the test's own, enforcing PodSecurity `restricted`.
async fn restricted_namespace(cleanup: &mut Cleanup) -> Api<Pod> {
    let client = client().await;
    let name = unique("psa-restricted");
    cleanup.namespaces.push(name.clone());
    let namespace: Namespace = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("test namespace");
    Api::namespaced(client, &name)
}

/// The pod a Deployment's ReplicaSet would create, as a server-side dry-run in
/// `pods`' namespace: Ok, or the API server's refusal.
async fn dry_run_pod(pods: &Api<Pod>, deployment: &Value) -> Result<(), String> {
    let template = &deployment["spec"]["template"];
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {
            "generateName": format!("{}-", deployment["metadata"]["name"].as_str().unwrap()),
            "labels": template["metadata"]["labels"],
        },
        "spec": template["spec"],
    }))
    .map_err(|e| format!("not a pod template: {e}"))?;
    let params = PostParams {
        dry_run: true,
        field_manager: None,
    };
    pods.create(&params, &pod)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// The rendered Deployments, `namespace/name`, each with its dry-run verdict.
async fn verdicts(pods: &Api<Pod>, documents: &[Value]) -> BTreeMap<String, Result<(), String>> {
    let mut verdicts = BTreeMap::new();
    for deployment in of_kind(documents, "Deployment") {
        let id = format!(
            "{}/{}",
            deployment["metadata"]["namespace"].as_str().unwrap(),
            deployment["metadata"]["name"].as_str().unwrap()
        );
        verdicts.insert(id, dry_run_pod(pods, deployment).await);
    }
    verdicts
}

#[tokio::test]
async fn every_pod_paved_renders_for_the_examples_is_admitted_under_podsecurity_restricted() {
    let mut cleanup = Cleanup::default();
    let pods = restricted_namespace(&mut cleanup).await;

    let shop = render(&[
        "00-environments.yaml",
        "staging/00-config.yaml",
        "staging/10-application.yaml",
        "staging/20-services.yaml",
        "production/00-config.yaml",
        "production/10-application.yaml",
        "production/20-services.yaml",
    ]);
    let gitops = render(&[
        "gitops/platform/environments/staging.yaml",
        "gitops/platform/environments/production.yaml",
        "gitops/teams/checkout/application.yaml",
        "gitops/teams/checkout/services.yaml",
    ]);
    let shop_verdicts = verdicts(&pods, &shop).await;
    let gitops_verdicts = verdicts(&pods, &gitops).await;
    assert_eq!(
        shop_verdicts.keys().collect::<Vec<_>>(),
        [
            "production/api",
            "production/web",
            "production/worker",
            "staging/api",
            "staging/web",
            "staging/worker"
        ],
        "the six Deployments of the shop example"
    );
    assert_eq!(gitops_verdicts.len(), 2, "{gitops_verdicts:?}");
    let refused: Vec<_> = shop_verdicts
        .iter()
        .chain(&gitops_verdicts)
        .filter(|(_, verdict)| verdict.is_err())
        .collect();
    assert!(
        refused.is_empty(),
        "PodSecurity restricted refused: {refused:#?}"
    );

    // The production namespace enforces what its pods pass.
    let production = of_kind(&shop, "Namespace")
        .find(|n| n["metadata"]["name"] == "production")
        .expect("the production Namespace");
    assert_eq!(
        production["metadata"]["labels"]["pod-security.kubernetes.io/enforce"],
        "restricted"
    );
    let staging = of_kind(&shop, "Namespace")
        .find(|n| n["metadata"]["name"] == "staging")
        .expect("the staging Namespace");
    assert!(
        staging["metadata"]["labels"]
            .get("pod-security.kubernetes.io/enforce")
            .is_none()
    );

    // Probes: HTTP where the example has a health path, TCP for the port-less
    // worker... which has no port, so none; and liveness differs from readiness.
    for deployment in of_kind(&shop, "Deployment") {
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let name = deployment["metadata"]["name"].as_str().unwrap();
        if name == "worker" {
            for probe in ["readinessProbe", "livenessProbe", "startupProbe"] {
                assert!(
                    container.get(probe).is_none(),
                    "worker {probe}: {container}"
                );
            }
        } else {
            assert_eq!(
                container["readinessProbe"]["httpGet"]["port"], "http",
                "{name}"
            );
            assert_ne!(container["readinessProbe"], container["livenessProbe"]);
            assert!(container["startupProbe"].is_object(), "{name}");
        }
    }

    // Hostile: the same check refuses a pod that is not restricted, so the
    // admissions above are PodSecurity's verdict, not a namespace that admits all.
    let mut careless = of_kind(&shop, "Deployment").next().unwrap().clone();
    careless["spec"]["template"]["spec"]["containers"][0]["securityContext"] = json!({});
    let refusal = dry_run_pod(&pods, &careless)
        .await
        .expect_err("a container keeping its capabilities is refused");
    assert!(refusal.contains("restricted"), "{refusal}");
}

/// Renders a Service opting out in a development Environment (allowed there).
fn opted_out_render() -> Vec<Value> {
    let dir = std::env::temp_dir().join(unique("paved-optout"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("shop.yaml");
    std::fs::write(
        &file,
        r#"
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: lab}
spec: {type: development, domain: lab.example.test}
---
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: legacy, namespace: lab}
spec: {owner: team-legacy}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: root-app, namespace: lab}
spec:
  application: legacy
  image: registry.example.test/root-app:1
  ports: [{name: http, port: 80}]
  security: {level: baseline, runAsUser: 0, runAsNonRoot: false}
"#,
    )
    .unwrap();
    let documents = render(&[file.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    documents
}

#[tokio::test]
async fn a_service_opting_out_renders_a_pod_podsecurity_restricted_refuses() {
    let mut cleanup = Cleanup::default();
    let pods = restricted_namespace(&mut cleanup).await;
    let documents = opted_out_render();
    let deployment = of_kind(&documents, "Deployment")
        .next()
        .expect("a development Environment renders the opted-out Service");
    let refusal = dry_run_pod(&pods, deployment)
        .await
        .expect_err("PodSecurity restricted refuses a root pod");
    assert!(
        refusal.contains("runAsNonRoot") || refusal.contains("runAsUser"),
        "{refusal}"
    );
}

#[tokio::test]
async fn a_restricted_environment_stalls_a_service_that_opts_out_and_writes_no_deployment() {
    let env = TestEnvironment::create_with(
        "psa-guard",
        json!({"guardrails": {"podSecurity": "restricted"}}),
    )
    .await;
    let namespace = wait_exists(&Api::<Namespace>::all(env.client.clone()), &env.namespace).await;
    assert_eq!(
        labels(&namespace.metadata)
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "legacy",
        json!({
            "application": "shop",
            "image": image("legacy", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "security": {"level": "baseline", "runAsUser": 0, "runAsNonRoot": false},
        }),
    )
    .await;
    let stalled = wait_condition(
        &env.services(),
        "legacy",
        "Stalled",
        "True",
        Some("PodSecurityForbidden"),
    )
    .await;
    let message = condition(&stalled, "Ready").unwrap().message;
    for mention in ["spec.security.level", "restricted", &env.name] {
        assert!(message.contains(mention), "names {mention}: {message}");
    }
    let deployments = env.api::<Deployment>();
    holds_for(
        "no Deployment for the refused Service",
        Duration::from_secs(3),
        || async {
            if is_absent(&deployments, "legacy").await {
                Ok(())
            } else {
                Err("a Deployment legacy exists".to_string())
            }
        },
    )
    .await;

    // What the message says to change: drop the opt-out. The pods then run, so
    // PodSecurity admitted them for real, with the default memory limit.
    merge_patch(
        &env.services(),
        "legacy",
        json!({"spec": {"security": null}}),
    )
    .await;
    wait_ready(&env.services(), "legacy").await;
    let deployment = wait_exists(&deployments, "legacy").await;
    let pod_spec = deployment.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod_spec.security_context.unwrap().run_as_non_root,
        Some(true)
    );
    assert_eq!(pod_spec.automount_service_account_token, Some(false));
    let pods = env.api::<Pod>();
    let pod = wait_until("a pod of legacy", WAIT, || async {
        pods.list(&ListParams::default().labels("paved.dev/service=legacy"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .into_iter()
            .next()
            .ok_or_else(|| "no pod yet".to_string())
    })
    .await;
    let limits = pod.spec.unwrap().containers[0]
        .resources
        .clone()
        .and_then(|r| r.limits)
        .unwrap_or_default();
    assert_eq!(
        limits.get("memory").map(|q| q.0.as_str()),
        Some("512Mi"),
        "the LimitRange's default memory limit: {limits:?}"
    );
    let range = wait_exists(&env.api::<LimitRange>(), "paved-defaults").await;
    assert_eq!(
        range.spec.unwrap().limits[0].default.clone().unwrap()["memory"].0,
        "512Mi"
    );
}

fn probe_is(object: &kube::api::DynamicObject, kind: &str) -> Result<(), String> {
    let probe = &object.data["status"]["probe"];
    (probe == kind)
        .then_some(())
        .ok_or_else(|| format!("status.probe {probe}"))
}

#[tokio::test]
async fn a_service_without_ports_or_health_gets_no_probe_and_its_status_says_so() {
    let env = TestEnvironment::create("psa-probe").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "worker",
        json!({"application": "shop", "image": image("worker", "1")}),
    )
    .await;
    env.apply_service(
        "cache",
        json!({"application": "shop", "image": image("cache", "1"), "ports": [{"name": "redis", "port": 6379}]}),
    )
    .await;
    let worker = wait_ready(&env.services(), "worker").await;
    assert_eq!(worker.data["status"]["probe"], "None", "Ready all the same");
    let container = first_container(&wait_exists(&env.api::<Deployment>(), "worker").await);
    assert!(container.readiness_probe.is_none() && container.liveness_probe.is_none());

    wait_object(&env.services(), "cache", "status.probe TCPSocket", |o| {
        probe_is(o, "TCPSocket")
    })
    .await;
    let container = first_container(&wait_exists(&env.api::<Deployment>(), "cache").await);
    for probe in [
        &container.readiness_probe,
        &container.liveness_probe,
        &container.startup_probe,
    ] {
        let port = &probe.as_ref().unwrap().tcp_socket.as_ref().unwrap().port;
        assert_eq!(
            *port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String("redis".into())
        );
    }

    // Giving it a health path turns the probes into HTTP ones.
    merge_patch(
        &env.services(),
        "cache",
        json!({"spec": {"health": {"path": "/ready", "port": "redis"}}}),
    )
    .await;
    wait_object(&env.services(), "cache", "status.probe HTTPGet", |o| {
        probe_is(o, "HTTPGet")
    })
    .await;
}
