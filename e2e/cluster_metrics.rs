//! The local cluster's metrics pipeline, as a consumer of `metrics.k8s.io`
//! (Paved's usage figures, `kubectl top`) sees it: a pod's simulated usage,
//! set with a kwok `ResourceUsage` named after the pod (or, by default, the
//! pod's `kwok.x-k8s.io/usage-cpu` / `-memory` annotations), is what
//! metrics-server serves for that pod, and a change of it shows within a few
//! scrapes (`--metric-resolution 10s` in e2e/cluster/up.sh).

use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::support::{WAIT, client, is_not_found, unique, wait_until};

fn pod_metrics_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    )
}

fn resource_usage_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "ResourceUsage"),
        "resourceusages",
    )
}

/// A quantity as a number of base units (cores, bytes): the forms
/// metrics-server writes (`250023559n`, `250m`, `64Mi`, `67108864`).
fn quantity(q: &str) -> f64 {
    let suffixes: [(&str, f64); 9] = [
        ("n", 1e-9),
        ("u", 1e-6),
        ("m", 1e-3),
        ("Ki", 1024.0),
        ("Mi", 1024.0 * 1024.0),
        ("Gi", 1024.0 * 1024.0 * 1024.0),
        ("k", 1e3),
        ("M", 1e6),
        ("G", 1e9),
    ];
    for (suffix, factor) in suffixes {
        if let Some(number) = q.strip_suffix(suffix) {
            return number.parse::<f64>().unwrap_or(f64::NAN) * factor;
        }
    }
    q.parse().unwrap_or(f64::NAN)
}

/// CPU within 5% (kwok integrates CPU time between two scrapes whose clocks
/// are not the same), memory exact.
fn close(cpu: f64, want_cpu: f64, memory: f64, want_memory: f64) -> bool {
    (cpu - want_cpu).abs() <= want_cpu * 0.05 && memory == want_memory
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

async fn create_pod(client: &kube::Client, ns: &str, name: &str, annotations: Value) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"containers": [
            {"name": "app", "image": "registry.invalid/usage:1"},
            {"name": "sidecar", "image": "registry.invalid/sidecar:1"}
        ]}
    }))
    .unwrap();
    Api::<Pod>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &pod)
        .await
        .expect("pod created");
}

/// The usage metrics.k8s.io serves for each container of a pod, by name:
/// (CPU cores, memory bytes).
async fn container_usage(
    metrics: &Api<DynamicObject>,
    pod: &str,
) -> Result<Vec<(String, f64, f64)>, String> {
    let m = metrics.get(pod).await.map_err(|e| e.to_string())?;
    let containers = m.data["containers"]
        .as_array()
        .ok_or_else(|| format!("no containers in {}", m.data))?;
    Ok(containers
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                quantity(c["usage"]["cpu"].as_str().unwrap_or_default()),
                quantity(c["usage"]["memory"].as_str().unwrap_or_default()),
            )
        })
        .collect())
}

/// Waits until metrics.k8s.io serves `want` ((container, CPU, memory)) for the pod.
async fn wait_for_usage(metrics: &Api<DynamicObject>, pod: &str, want: &[(&str, f64, f64)]) {
    wait_until(
        &format!("PodMetrics of {pod} to show {want:?}"),
        WAIT,
        || async {
            let got = container_usage(metrics, pod).await?;
            let all = want.iter().all(|(name, cpu, memory)| {
                got.iter()
                    .any(|(n, c, m)| n == name && close(*c, *cpu, *m, *memory))
            });
            all.then_some(()).ok_or_else(|| format!("served {got:?}"))
        },
    )
    .await;
}

fn kubectl() -> String {
    std::env::var("PAVED_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into())
}

/// `kubectl top pod NAME --containers`: (container, CPU cores, memory bytes) per line.
fn kubectl_top(ns: &str, pod: &str) -> Result<Vec<(String, f64, f64)>, String> {
    let out = Command::new(kubectl())
        .args(["top", "pod", pod, "-n", ns, "--containers", "--no-headers"])
        .output()
        .map_err(|e| format!("running kubectl: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    Ok(text
        .lines()
        .filter_map(
            |line| match line.split_whitespace().collect::<Vec<_>>()[..] {
                [_pod, container, cpu, memory, ..] => {
                    Some((container.to_string(), quantity(cpu), quantity(memory)))
                }
                _ => None,
            },
        )
        .collect())
}

#[tokio::test]
async fn a_pods_resource_usage_is_what_metrics_k8s_io_and_kubectl_top_serve_and_a_change_follows() {
    let client = client().await;
    let ns = unique("metrics-usage");
    create_namespace(&client, &ns).await;
    let pod = "busy";
    create_pod(&client, &ns, pod, json!({})).await;

    // The shape the README documents: per container, a default for the others.
    let usages =
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &resource_usage_resource());
    let usage = |app_cpu: &str, app_memory: &str| {
        json!({
            "apiVersion": "kwok.x-k8s.io/v1alpha1",
            "kind": "ResourceUsage",
            "metadata": {"name": pod, "namespace": ns},
            "spec": {"usages": [
                {"containers": ["app"], "usage": {"cpu": {"value": app_cpu}, "memory": {"value": app_memory}}},
                {"usage": {"cpu": {"value": "10m"}, "memory": {"value": "8Mi"}}}
            ]}
        })
    };
    let apply = PatchParams::apply("paved-e2e").force();
    usages
        .patch(pod, &apply, &Patch::Apply(usage("250m", "64Mi")))
        .await
        .expect("ResourceUsage applied");

    let metrics =
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &pod_metrics_resource());
    const MI: f64 = 1024.0 * 1024.0;
    wait_for_usage(
        &metrics,
        pod,
        &[("app", 0.25, 64.0 * MI), ("sidecar", 0.010, 8.0 * MI)],
    )
    .await;

    // What a person sees: kubectl top rounds CPU up to whole millicores.
    let top = wait_until("kubectl top to show the app's usage", WAIT, || async {
        let rows = kubectl_top(&ns, pod)?;
        rows.iter()
            .find(|(c, cpu, memory)| {
                c == "app" && (0.25..=0.26).contains(cpu) && *memory == 64.0 * MI
            })
            .map(|_| rows.clone())
            .ok_or_else(|| format!("kubectl top printed {rows:?}"))
    })
    .await;
    assert!(
        top.iter()
            .any(|(c, cpu, _)| c == "sidecar" && (0.010..=0.011).contains(cpu)),
        "kubectl top shows the sidecar's own usage: {top:?}"
    );

    // Busier: the figures follow.
    usages
        .patch(pod, &apply, &Patch::Apply(usage("1500m", "512Mi")))
        .await
        .expect("ResourceUsage changed");
    wait_for_usage(
        &metrics,
        pod,
        &[("app", 1.5, 512.0 * MI), ("sidecar", 0.010, 8.0 * MI)],
    )
    .await;

    // A deleted pod's metrics go with it.
    Api::<Pod>::namespaced(client.clone(), &ns)
        .delete(pod, &DeleteParams::default().grace_period(0))
        .await
        .expect("pod deleted");
    wait_until("PodMetrics of the deleted pod to be gone", WAIT, || async {
        match metrics.get(pod).await {
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok(m) => Err(format!("still served: {}", m.data)),
        }
    })
    .await;
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
}

#[tokio::test]
async fn without_a_resource_usage_a_pod_uses_its_usage_annotations_or_one_millicore_and_one_mebibyte()
 {
    let client = client().await;
    let ns = unique("metrics-default");
    create_namespace(&client, &ns).await;
    create_pod(
        &client,
        &ns,
        "annotated",
        json!({"kwok.x-k8s.io/usage-cpu": "40m", "kwok.x-k8s.io/usage-memory": "100Mi"}),
    )
    .await;
    create_pod(&client, &ns, "plain", json!({})).await;

    let metrics =
        Api::<DynamicObject>::namespaced_with(client.clone(), &ns, &pod_metrics_resource());
    const MI: f64 = 1024.0 * 1024.0;
    // The annotations apply to each container of the pod.
    wait_for_usage(
        &metrics,
        "annotated",
        &[("app", 0.040, 100.0 * MI), ("sidecar", 0.040, 100.0 * MI)],
    )
    .await;
    wait_for_usage(
        &metrics,
        "plain",
        &[("app", 0.001, MI), ("sidecar", 0.001, MI)],
    )
    .await;

    // The namespace's list holds both, nothing else.
    let list = metrics
        .list(&Default::default())
        .await
        .expect("PodMetrics listed");
    let mut names: Vec<_> = list
        .items
        .iter()
        .filter_map(|m| m.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["annotated", "plain"]);
    let _ = Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await;
}
