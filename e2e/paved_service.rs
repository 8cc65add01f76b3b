//! Service → Deployment, core Service, Ingress (when exposed) and HPA (when
//! autoscaling): named after the Service, owned by it, labelled for portals,
//! configured from the Service, its Application and its dependencies, and rolled
//! when image or configuration change.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service as CoreService};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::paved_support::{
    PAVED_MANAGER, TestEnvironment, annotations, apply, condition, describe_status,
    first_container, holds_for, image, is_absent, is_observed, labels, merge_patch, pod_selector,
    service_manifest, template_annotations, wait_condition, wait_exists, wait_gone, wait_object,
    wait_ready,
};
use crate::support::{WAIT, wait_until};

fn application(owner: &str) -> Value {
    json!({"owner": owner, "description": "The shop", "lifecycle": "production"})
}

/// The labels, annotation, owner and field manager DESIGN.md requires on every child.
fn assert_child_conventions(
    kind: &str,
    meta: &ObjectMeta,
    env: &TestEnvironment,
    app: &str,
    service: &DynamicObject,
) {
    let service_name = service.metadata.name.as_deref().unwrap();
    assert_eq!(
        meta.name.as_deref(),
        Some(service_name),
        "{kind} is named after the Service"
    );
    let labels = labels(meta);
    let expected = [
        ("app.kubernetes.io/name", service_name),
        ("app.kubernetes.io/part-of", app),
        ("app.kubernetes.io/managed-by", "paved"),
        ("paved.dev/environment", env.name.as_str()),
        ("paved.dev/application", app),
        ("paved.dev/service", service_name),
        ("backstage.io/kubernetes-id", app),
    ];
    for (key, value) in expected {
        assert_eq!(
            labels.get(key).map(String::as_str),
            Some(value),
            "{kind} label {key}; labels: {labels:?}"
        );
    }
    assert_eq!(
        annotations(meta).get("cortex.io/tag").map(String::as_str),
        Some(service_name),
        "{kind} annotation cortex.io/tag; annotations: {:?}",
        meta.annotations
    );

    let controllers: Vec<_> = meta
        .owner_references
        .iter()
        .flatten()
        .filter(|o| o.controller == Some(true))
        .collect();
    assert_eq!(
        controllers.len(),
        1,
        "{kind} has one controller owner: {:?}",
        meta.owner_references
    );
    let owner = controllers[0];
    assert_eq!(
        owner.api_version, "paved.dev/v1alpha1",
        "{kind} owner: {owner:?}"
    );
    assert_eq!(owner.kind, "Service", "{kind} owner: {owner:?}");
    assert_eq!(owner.name, service_name, "{kind} owner: {owner:?}");
    assert_eq!(
        Some(&owner.uid),
        service.metadata.uid.as_ref(),
        "{kind} owner uid is the Service CR's"
    );

    assert!(
        meta.managed_fields
            .iter()
            .flatten()
            .any(|m| m.manager.as_deref() == Some(PAVED_MANAGER)
                && m.operation.as_deref() == Some("Apply")),
        "{kind} is server-side applied by field manager {PAVED_MANAGER}: {:?}",
        meta.managed_fields
            .iter()
            .flatten()
            .map(|m| (&m.manager, &m.operation))
            .collect::<Vec<_>>()
    );
}

/// Keys Argo CD, Helm and kubectl use to track ownership: never on a child.
fn assert_nothing_of_argo_cd_or_helm(kind: &str, meta: Option<&ObjectMeta>) {
    let Some(meta) = meta else { return };
    let keys = labels(meta)
        .into_keys()
        .chain(annotations(meta).into_keys());
    for key in keys {
        let forbidden = key == "app.kubernetes.io/instance"
            || [
                "argocd.argoproj.io/",
                "helm.sh/",
                "meta.helm.sh/",
                "kubectl.kubernetes.io/",
            ]
            .iter()
            .any(|prefix| key.starts_with(prefix));
        assert!(
            !forbidden,
            "{kind} carries {key}, copied from a parent: Argo CD would prune it"
        );
    }
}

#[tokio::test]
async fn a_service_gets_a_deployment_core_service_ingress_and_hpa_named_after_it_owned_by_it_and_labelled()
 {
    let env = TestEnvironment::create("psvc-children").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    let service = env
        .apply_service(
            "web",
            json!({
                "application": "shop",
                "image": image("web", "1.0.0"),
                "ports": [{"name": "http", "port": 8080}],
                "autoscaling": {"min": 2, "max": 5, "cpuUtilization": 70},
                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                "health": {"path": "/healthz", "port": "http"},
                "expose": {}
            }),
        )
        .await;

    let deployment = wait_exists(&env.api::<Deployment>(), "web").await;
    let core = wait_exists(&env.api::<CoreService>(), "web").await;
    let ingress = wait_exists(&env.api::<Ingress>(), "web").await;
    let hpa = wait_exists(&env.api::<HorizontalPodAutoscaler>(), "web").await;
    assert_child_conventions("Deployment", &deployment.metadata, &env, "shop", &service);
    assert_child_conventions("core Service", &core.metadata, &env, "shop", &service);
    assert_child_conventions("Ingress", &ingress.metadata, &env, "shop", &service);
    assert_child_conventions("HPA", &hpa.metadata, &env, "shop", &service);

    // Deployment: the image, the port, the health check as probes.
    let container = first_container(&deployment);
    assert_eq!(
        container.image.as_deref(),
        Some(image("web", "1.0.0").as_str())
    );
    assert!(
        container
            .ports
            .iter()
            .flatten()
            .any(|p| p.container_port == 8080),
        "container ports: {:?}",
        container.ports
    );
    let readiness = container
        .readiness_probe
        .as_ref()
        .and_then(|p| p.http_get.as_ref())
        .expect("a readiness probe");
    assert_eq!(readiness.path.as_deref(), Some("/healthz"));
    assert!(
        matches!(
            &readiness.port,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(8080)
        ) || matches!(&readiness.port, k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(s) if s == "http"),
        "readiness probe port: {:?}",
        readiness.port
    );
    assert!(
        container.liveness_probe.is_some(),
        "health gives a liveness probe too"
    );
    let requests = container
        .resources
        .as_ref()
        .and_then(|r| r.requests.clone())
        .unwrap_or_default();
    assert_eq!(
        requests.get("cpu").map(|q| q.0.as_str()),
        Some("100m"),
        "requests: {requests:?}"
    );

    // Core Service: the port, selecting the Deployment's pods.
    let core_spec = core.spec.clone().unwrap();
    let core_ports = core_spec.ports.clone().unwrap_or_default();
    assert_eq!(core_ports.len(), 1, "core Service ports: {core_ports:?}");
    assert_eq!(core_ports[0].port, 8080);
    assert_eq!(core_ports[0].name.as_deref(), Some("http"));
    let selector = core_spec.selector.clone().unwrap_or_default();
    let pod_labels = deployment
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap_or_default();
    assert!(!selector.is_empty(), "the core Service selects pods");
    assert!(
        selector.iter().all(|(k, v)| pod_labels.get(k) == Some(v)),
        "core Service selector {selector:?} matches the pod labels {pod_labels:?}"
    );

    // Ingress: expose {} gives <service>.<domain> and /.
    let rules = ingress.spec.clone().unwrap().rules.unwrap_or_default();
    assert_eq!(rules.len(), 1, "ingress rules: {rules:?}");
    assert_eq!(
        rules[0].host.as_deref(),
        Some(format!("web.{}", env.domain).as_str())
    );
    let paths = &rules[0].http.as_ref().unwrap().paths;
    assert_eq!(paths[0].path.as_deref(), Some("/"));
    let backend = paths[0]
        .backend
        .service
        .as_ref()
        .expect("a service backend");
    assert_eq!(backend.name, "web");
    let backend_port = backend.port.as_ref().unwrap();
    assert!(
        backend_port.number == Some(8080) || backend_port.name.as_deref() == Some("http"),
        "backend port: {backend_port:?}"
    );

    // HPA: bounds, target and CPU utilisation.
    let hpa_spec = hpa.spec.clone().unwrap();
    assert_eq!(hpa_spec.min_replicas, Some(2));
    assert_eq!(hpa_spec.max_replicas, 5);
    assert_eq!(hpa_spec.scale_target_ref.kind, "Deployment");
    assert_eq!(hpa_spec.scale_target_ref.name, "web");
    assert_eq!(
        hpa_spec.scale_target_ref.api_version.as_deref(),
        Some("apps/v1")
    );
    let utilization = hpa_spec
        .metrics
        .iter()
        .flatten()
        .filter_map(|m| m.resource.as_ref())
        .find(|r| r.name == "cpu")
        .and_then(|r| r.target.average_utilization);
    assert_eq!(utilization, Some(70), "HPA metrics: {:?}", hpa_spec.metrics);
}

#[tokio::test]
async fn argo_cd_helm_and_kubectl_keys_on_the_parents_are_not_copied_to_the_children() {
    let env = TestEnvironment::create("psvc-argo").await;
    let tracking = json!({
        "labels": {
            "argocd.argoproj.io/instance": "shop-staging",
            "app.kubernetes.io/instance": "shop-staging",
            "helm.sh/chart": "shop-1.2.3"
        },
        "annotations": {
            "argocd.argoproj.io/tracking-id": "shop-staging:paved.dev/Service:ns/web",
            "meta.helm.sh/release-name": "shop",
            "kubectl.kubernetes.io/last-applied-configuration": "{}"
        }
    });
    let mut app = crate::paved_support::application_manifest("shop", application("team-shop"));
    app["metadata"]
        .as_object_mut()
        .unwrap()
        .extend(tracking.as_object().unwrap().clone());
    apply(&env.applications(), app).await;
    let mut manifest = service_manifest(
        "web",
        json!({
            "application": "shop",
            "image": image("web", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "autoscaling": {"min": 1, "max": 3},
            "expose": {}
        }),
    );
    manifest["metadata"]
        .as_object_mut()
        .unwrap()
        .extend(tracking.as_object().unwrap().clone());
    let service = apply(&env.services(), manifest).await;
    assert_eq!(
        labels(&service.metadata)
            .get("helm.sh/chart")
            .map(String::as_str),
        Some("shop-1.2.3")
    );

    let deployment = wait_exists(&env.api::<Deployment>(), "web").await;
    let core = wait_exists(&env.api::<CoreService>(), "web").await;
    let ingress = wait_exists(&env.api::<Ingress>(), "web").await;
    let hpa = wait_exists(&env.api::<HorizontalPodAutoscaler>(), "web").await;
    // The children are Paved's, so the check means something.
    assert_child_conventions("Deployment", &deployment.metadata, &env, "shop", &service);
    assert_nothing_of_argo_cd_or_helm("Deployment", Some(&deployment.metadata));
    assert_nothing_of_argo_cd_or_helm(
        "pod template",
        deployment.spec.as_ref().unwrap().template.metadata.as_ref(),
    );
    assert_nothing_of_argo_cd_or_helm("core Service", Some(&core.metadata));
    assert_nothing_of_argo_cd_or_helm("Ingress", Some(&ingress.metadata));
    assert_nothing_of_argo_cd_or_helm("HPA", Some(&hpa.metadata));
}

#[tokio::test]
async fn with_autoscaling_the_deployment_paved_applies_has_no_replicas_and_the_hpa_scales_it() {
    let env = TestEnvironment::create("psvc-hpa").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    env.apply_service(
        "api",
        json!({
            "application": "shop",
            "image": image("api", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "autoscaling": {"min": 3, "max": 6},
            "resources": {"requests": {"cpu": "50m"}}
        }),
    )
    .await;
    let deployments = env.api::<Deployment>();
    let deployment = wait_exists(&deployments, "api").await;
    let paved_fields: Vec<_> = deployment
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|m| {
            m.manager.as_deref() == Some(PAVED_MANAGER) && m.operation.as_deref() == Some("Apply")
        })
        .collect();
    assert_eq!(
        paved_fields.len(),
        1,
        "one Apply entry of manager paved: {:?}",
        deployment.metadata.managed_fields
    );
    let fields = &paved_fields[0].fields_v1.as_ref().expect("fieldsV1").0;
    assert!(
        fields["f:spec"].is_object(),
        "paved manages the Deployment spec: {fields}"
    );
    assert!(
        fields["f:spec"].get("f:replicas").is_none(),
        "paved must not own spec.replicas: {}",
        fields["f:spec"]
    );

    // The HPA raises the Deployment to its minimum, and Paved does not take it back.
    wait_until(
        "the HPA to scale the Deployment to its minimum of 3",
        WAIT,
        || async {
            let d = deployments.get("api").await.map_err(|e| e.to_string())?;
            let replicas = d.spec.and_then(|s| s.replicas);
            (replicas == Some(3))
                .then_some(())
                .ok_or_else(|| format!("spec.replicas {replicas:?}"))
        },
    )
    .await;
    let ready = wait_object(&env.services(), "api", "3 ready replicas in status", |s| {
        let replicas = &s.data["status"]["replicas"];
        (replicas["desired"] == 3 && replicas["ready"] == 3)
            .then_some(())
            .ok_or_else(|| format!("replicas {replicas}"))
    })
    .await;
    assert!(is_observed(&ready));
    let deployment = deployments.get("api").await.unwrap();
    assert_eq!(
        deployment.spec.unwrap().replicas,
        Some(3),
        "Paved left the HPA's replicas alone"
    );
}

/// A new object starts from the CRD's default status (Ready=False, reason
/// Pending); its way to Ready is routine progress, so it costs no Event write
/// (it cost one per object created: 10,000 Events for 10,000 Services).
#[tokio::test]
async fn new_objects_on_their_way_to_ready_publish_no_event() {
    let env = TestEnvironment::create("psvc-quiet").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    let service = wait_ready(&env.services(), "web").await;
    let application = wait_ready(&env.applications(), "shop").await;
    let environment = wait_ready(&crate::paved_support::environments(&env.client), &env.name).await;
    let uids: Vec<(String, String)> = [service, application, environment]
        .iter()
        .map(|o| {
            (
                format!(
                    "{} {}",
                    o.types.as_ref().map_or("", |t| t.kind.as_str()),
                    o.name_any()
                ),
                o.metadata.uid.clone().expect("a uid"),
            )
        })
        .collect();
    // An Event is published right after the status write that shows Ready.
    holds_for(
        "no Event on any of them",
        std::time::Duration::from_secs(3),
        || async {
            for (what, uid) in &uids {
                let events = crate::paved_support::events_of(&env.client, None, uid).await;
                if let Some(event) = events.first() {
                    return Err(format!(
                        "{what}: {} events, the first {:?}: {:?}",
                        events.len(),
                        event.reason,
                        event.message
                    ));
                }
            }
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_with_fixed_replicas_and_no_expose_gets_no_ingress_and_no_hpa() {
    let env = TestEnvironment::create("psvc-fixed").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    env.apply_service(
        "worker",
        json!({"application": "shop", "image": image("worker", "1"), "ports": [{"name": "metrics", "port": 9090}], "replicas": 3}),
    )
    .await;
    let service = wait_ready(&env.services(), "worker").await;
    let deployment = env.api::<Deployment>().get("worker").await.unwrap();
    assert_eq!(deployment.spec.unwrap().replicas, Some(3));
    assert!(
        env.api::<CoreService>()
            .get_opt("worker")
            .await
            .unwrap()
            .is_some(),
        "ports give a core Service"
    );
    assert!(
        is_absent(&env.api::<Ingress>(), "worker").await,
        "no Ingress without expose"
    );
    assert!(
        is_absent(&env.api::<HorizontalPodAutoscaler>(), "worker").await,
        "no HPA without autoscaling"
    );
    assert!(
        service.data["status"]["url"].is_null(),
        "no url without expose: {}",
        service.data["status"]
    );
}

#[tokio::test]
async fn an_environment_with_an_ingress_class_and_tls_gives_exposed_services_that_class_and_a_certificate()
 {
    let env = TestEnvironment::create_with(
        "psvc-tls",
        json!({"ingress": {"className": "nginx", "tls": {"clusterIssuer": "letsencrypt"}}}),
    )
    .await;
    env.apply_application("shop", application("team-shop"))
        .await;
    env.apply_service(
        "web",
        json!({
            "application": "shop",
            "image": image("web", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "expose": {"host": format!("shop.{}", env.domain), "path": "/store"}
        }),
    )
    .await;
    let host = format!("shop.{}", env.domain);
    let ingress = wait_exists(&env.api::<Ingress>(), "web").await;
    let spec = ingress.spec.clone().unwrap();
    assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
    let rules = spec.rules.unwrap_or_default();
    assert_eq!(rules[0].host.as_deref(), Some(host.as_str()));
    assert_eq!(
        rules[0].http.as_ref().unwrap().paths[0].path.as_deref(),
        Some("/store")
    );
    let tls = spec.tls.unwrap_or_default();
    assert_eq!(tls.len(), 1, "one TLS entry: {tls:?}");
    assert_eq!(tls[0].hosts.clone().unwrap_or_default(), vec![host.clone()]);
    assert!(
        tls[0].secret_name.as_deref().is_some_and(|s| !s.is_empty()),
        "a TLS secret name: {tls:?}"
    );
    assert_eq!(
        annotations(&ingress.metadata)
            .get("cert-manager.io/cluster-issuer")
            .map(String::as_str),
        Some("letsencrypt")
    );
    let service = wait_ready(&env.services(), "web").await;
    let url = service.data["status"]["url"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        url.starts_with(&format!("https://{host}/store")),
        "status.url is https with the path: {url}"
    );
}

fn env_value<'a>(container: &'a k8s_openapi::api::core::v1::Container, name: &str) -> Vec<&'a str> {
    container
        .env
        .iter()
        .flatten()
        .filter(|e| e.name == name)
        .map(|e| e.value.as_deref().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn depends_on_injects_url_variables_and_the_application_env_is_merged_under_the_services_own()
{
    let env = TestEnvironment::create("psvc-env").await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "env": [{"name": "LOG_LEVEL", "value": "info"}, {"name": "REGION", "value": "app-region"}]}),
    )
    .await;
    env.apply_service(
        "payments-api",
        json!({"application": "shop", "image": image("payments", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    env.apply_service(
        "checkout",
        json!({
            "application": "shop",
            "image": image("checkout", "1"),
            "ports": [{"name": "http", "port": 8081}],
            "env": [{"name": "REGION", "value": "service-region"}, {"name": "FEATURE", "value": "on"}],
            "dependsOn": ["payments-api"]
        }),
    )
    .await;

    let deployments = env.api::<Deployment>();
    let deployment = wait_until(
        "checkout's Deployment with PAYMENTS_API_URL",
        WAIT,
        || async {
            let d = deployments
                .get_opt("checkout")
                .await
                .map_err(|e| e.to_string())?
                .ok_or("no Deployment yet")?;
            (!env_value(&first_container(&d), "PAYMENTS_API_URL").is_empty())
                .then_some(d.clone())
                .ok_or_else(|| format!("env: {:?}", first_container(&d).env))
        },
    )
    .await;
    let container = first_container(&deployment);
    let url = env_value(&container, "PAYMENTS_API_URL");
    assert_eq!(url.len(), 1, "one PAYMENTS_API_URL: {:?}", container.env);
    assert!(
        url[0].contains("payments-api") && url[0].contains("8080"),
        "the URL reaches payments-api:8080: {}",
        url[0]
    );
    assert_eq!(
        env_value(&container, "LOG_LEVEL"),
        vec!["info"],
        "the Application's env is merged in"
    );
    assert_eq!(
        env_value(&container, "REGION"),
        vec!["service-region"],
        "the Service's own value wins, once"
    );
    assert_eq!(env_value(&container, "FEATURE"), vec!["on"]);
    let payments = deployments.get("payments-api").await.unwrap();
    assert_eq!(
        env_value(&first_container(&payments), "LOG_LEVEL"),
        vec!["info"],
        "every Service of the Application"
    );
    assert!(
        env_value(&first_container(&payments), "CHECKOUT_URL").is_empty(),
        "dependencies are not symmetric"
    );

    // A change of the Application's env reaches its Services' Deployments.
    merge_patch(
        &env.applications(),
        "shop",
        json!({"spec": {"env": [{"name": "LOG_LEVEL", "value": "debug"}]}}),
    )
    .await;
    wait_until("LOG_LEVEL=debug in checkout's Deployment", WAIT, || async {
        let d = deployments
            .get("checkout")
            .await
            .map_err(|e| e.to_string())?;
        let container = first_container(&d);
        let level = env_value(&container, "LOG_LEVEL");
        (level == vec!["debug"])
            .then_some(())
            .ok_or_else(|| format!("LOG_LEVEL {level:?}"))
    })
    .await;
}

#[tokio::test]
async fn a_service_is_ready_only_once_its_pods_are_ready() {
    let env = TestEnvironment::create("psvc-ready").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    let spec = |cpu: &str| {
        json!({
            "application": "shop",
            "image": image("big", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "replicas": 1,
            "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}}
        })
    };
    // No kwok node has 1000 CPUs: the pod cannot be scheduled.
    env.apply_service("big", spec("1000")).await;
    let deployment = wait_exists(&env.api::<Deployment>(), "big").await;
    let pods = env.api::<Pod>();
    let selector = pod_selector(&deployment);
    wait_until("the pod to be Unschedulable", WAIT, || async {
        let list = pods
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| e.to_string())?;
        let unschedulable = list.items.iter().any(|p| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .into_iter()
                .flatten()
                .any(|c| {
                    c.type_ == "PodScheduled"
                        && c.status == "False"
                        && c.reason.as_deref() == Some("Unschedulable")
                })
        });
        unschedulable
            .then_some(())
            .ok_or_else(|| format!("{} pods, none unschedulable yet", list.items.len()))
    })
    .await;
    let services = env.services();
    wait_condition(&services, "big", "Ready", "False", None).await;
    holds_for(
        "Ready=False and 0 ready replicas while the pod cannot run",
        std::time::Duration::from_secs(5),
        || async {
            let s = services.get("big").await.map_err(|e| e.to_string())?;
            let ready = condition(&s, "Ready").ok_or("no Ready condition")?;
            let replicas = &s.data["status"]["replicas"];
            if ready.status == "False" && replicas["ready"] == 0 && replicas["desired"] == 1 {
                Ok(())
            } else {
                Err(format!("replicas {replicas}; {}", describe_status(&s)))
            }
        },
    )
    .await;
    let reconciling = condition(&services.get("big").await.unwrap(), "Reconciling");
    assert_eq!(
        reconciling.map(|c| c.status).as_deref(),
        Some("True"),
        "Reconciling=True while the rollout is in flight"
    );

    env.apply_service("big", spec("100m")).await;
    let ready = wait_ready(&services, "big").await;
    let replicas = &ready.data["status"]["replicas"];
    assert_eq!(replicas["desired"], 1, "status.replicas: {replicas}");
    assert_eq!(
        replicas["ready"], replicas["desired"],
        "status.replicas: {replicas}"
    );
    assert_eq!(
        replicas["available"], replicas["desired"],
        "status.replicas: {replicas}"
    );
    assert!(
        condition(&ready, "Reconciling").is_none_or(|c| c.status != "True"),
        "no longer Reconciling: {}",
        describe_status(&ready)
    );
}

#[tokio::test]
async fn changing_the_image_rolls_out_a_new_revision_and_keeps_a_bounded_history() {
    let env = TestEnvironment::create("psvc-rollout").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    let spec = |tag: &str| json!({"application": "shop", "image": image("api", tag), "ports": [{"name": "http", "port": 8080}]});
    env.apply_service("api", spec("v1")).await;
    let services = env.services();
    let first = wait_ready(&services, "api").await;
    assert_eq!(first.data["status"]["image"], json!(image("api", "v1")));
    let first_revision = first.data["status"]["revision"]
        .as_i64()
        .expect("status.revision");
    assert!(first_revision >= 1, "first revision: {first_revision}");
    let history = first.data["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 1, "history: {history:?}");
    assert_eq!(history[0]["image"], json!(image("api", "v1")));

    env.apply_service("api", spec("v2")).await;
    let second = wait_object(
        &services,
        "api",
        "status.image v2 and the next revision",
        |s| {
            let status = &s.data["status"];
            (is_observed(s)
                && status["image"] == json!(image("api", "v2"))
                && status["revision"] == first_revision + 1)
                .then_some(())
                .ok_or_else(|| format!("image {} revision {}", status["image"], status["revision"]))
        },
    )
    .await;
    let deployment = env.api::<Deployment>().get("api").await.unwrap();
    assert_eq!(
        first_container(&deployment).image.as_deref(),
        Some(image("api", "v2").as_str())
    );
    let history = second.data["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(history.len(), 2, "history: {history:?}");
    assert_eq!(
        history[0]["image"],
        json!(image("api", "v2")),
        "newest first: {history:?}"
    );
    assert_eq!(history[0]["revision"], first_revision + 1);
    assert_eq!(history[1]["image"], json!(image("api", "v1")));
    assert_eq!(history[1]["revision"], first_revision);
    for record in &history {
        assert!(
            record["configHash"].as_str().is_some_and(|h| !h.is_empty()),
            "configHash: {record}"
        );
        assert!(
            record["deployedAt"]
                .as_str()
                .is_some_and(|t| t.parse::<k8s_openapi::jiff::Timestamp>().is_ok()),
            "deployedAt is RFC 3339: {record}"
        );
    }
    wait_ready(&services, "api").await;

    // Many more revisions: the history stays bounded, newest first.
    let revisions = 14;
    for n in 3..=revisions {
        let tag = format!("v{n}");
        env.apply_service("api", spec(&tag)).await;
        wait_object(&services, "api", &format!("revision of image {tag}"), |s| {
            let status = &s.data["status"];
            (is_observed(s) && status["image"] == json!(image("api", &tag)))
                .then_some(())
                .ok_or_else(|| format!("image {}", status["image"]))
        })
        .await;
    }
    let last = services.get("api").await.unwrap();
    assert_eq!(
        last.data["status"]["revision"],
        first_revision + revisions - 1
    );
    let history = last.data["status"]["history"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        !history.is_empty() && history.len() <= 10,
        "history is bounded (at most 10, per the API docs) after {revisions} revisions: {} entries",
        history.len()
    );
    assert_eq!(
        history[0]["image"],
        json!(image("api", &format!("v{revisions}")))
    );
    let numbers: Vec<i64> = history
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert!(
        numbers.windows(2).all(|w| w[0] > w[1]),
        "newest first: {numbers:?}"
    );
}

/// Waits until the pod template differs from `before`, then until the
/// Deployment rolled: a new ReplicaSet with every replica updated.
async fn wait_template_change_and_roll(
    env: &TestEnvironment,
    name: &str,
    before: &BTreeMap<String, String>,
    what: &str,
) -> BTreeMap<String, String> {
    let deployments = env.api::<Deployment>();
    let changed = wait_until(
        &format!("the pod template to change after {what}"),
        WAIT,
        || async {
            let d = deployments.get(name).await.map_err(|e| e.to_string())?;
            let now = template_annotations(&d);
            (now != *before)
                .then_some(now.clone())
                .ok_or_else(|| format!("template annotations still {now:?}"))
        },
    )
    .await;
    let replica_sets = env.api::<ReplicaSet>();
    wait_until(&format!("the pods to roll after {what}"), WAIT, || async {
        let d = deployments.get(name).await.map_err(|e| e.to_string())?;
        let generation = d.metadata.generation.unwrap_or_default();
        let status = d.status.clone().unwrap_or_default();
        let replicas = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
        let sets = replica_sets
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let current = sets.items.iter().any(|rs| {
            rs.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.name == name)
                && rs
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .and_then(|t| t.metadata.as_ref())
                    .and_then(|m| m.annotations.clone())
                    .unwrap_or_default()
                    == changed
                && rs.status.as_ref().map(|s| s.ready_replicas.unwrap_or(0)) == Some(replicas)
        });
        (current
            && status.observed_generation == Some(generation)
            && status.updated_replicas == Some(replicas))
        .then_some(())
        .ok_or_else(|| format!("new ReplicaSet ready: {current}, status {status:?}"))
    })
    .await;
    changed
}

#[tokio::test]
async fn setting_restarted_at_rolls_the_pods() {
    let env = TestEnvironment::create("psvc-restart").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    let spec = |restarted: Option<&str>| {
        let mut spec = json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}]});
        if let Some(at) = restarted {
            spec["restartedAt"] = json!(at);
        }
        spec
    };
    env.apply_service("api", spec(None)).await;
    wait_ready(&env.services(), "api").await;
    let before = template_annotations(&env.api::<Deployment>().get("api").await.unwrap());

    env.apply_service("api", spec(Some("2026-11-23T10:00:00Z")))
        .await;
    let after_first =
        wait_template_change_and_roll(&env, "api", &before, "setting restartedAt").await;
    env.apply_service("api", spec(Some("2026-11-24T10:00:00Z")))
        .await;
    wait_template_change_and_roll(&env, "api", &after_first, "changing restartedAt").await;
    wait_ready(&env.services(), "api").await;
}

#[tokio::test]
async fn changing_a_referenced_config_map_or_secret_rolls_the_pods() {
    let env = TestEnvironment::create("psvc-config").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    let config_maps = env.api::<ConfigMap>();
    let secrets = env.api::<Secret>();
    config_maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "settings"}, "data": {"mode": "fast"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    secrets
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "db"}, "stringData": {"password": "first-secret-value"}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    env.apply_service(
        "api",
        json!({
            "application": "shop",
            "image": image("api", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "env": [
                {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
                {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}}
            ]
        }),
    )
    .await;
    wait_ready(&env.services(), "api").await;
    let deployment = env.api::<Deployment>().get("api").await.unwrap();
    let container = first_container(&deployment);
    let password = container
        .env
        .iter()
        .flatten()
        .find(|e| e.name == "DB_PASSWORD")
        .expect("DB_PASSWORD in the pod");
    assert_eq!(
        password
            .value_from
            .as_ref()
            .and_then(|v| v.secret_key_ref.as_ref())
            .map(|r| (r.name.as_str(), r.key.as_str())),
        Some(("db", "password")),
        "the secret is referenced, not copied: {password:?}"
    );
    let before = template_annotations(&deployment);
    let as_text = serde_json::to_string(&deployment).unwrap();
    assert!(
        !as_text.contains("first-secret-value"),
        "a secret's value never lands in the Deployment"
    );

    let merge = PatchParams::default();
    config_maps
        .patch(
            "settings",
            &merge,
            &Patch::Merge(json!({"data": {"mode": "safe"}})),
        )
        .await
        .unwrap();
    let after_config_map =
        wait_template_change_and_roll(&env, "api", &before, "the ConfigMap changed").await;

    secrets
        .patch(
            "db",
            &merge,
            &Patch::Merge(json!({"stringData": {"password": "second-secret-value"}})),
        )
        .await
        .unwrap();
    wait_template_change_and_roll(&env, "api", &after_config_map, "the Secret changed").await;
    let deployment = env.api::<Deployment>().get("api").await.unwrap();
    assert!(
        !serde_json::to_string(&deployment)
            .unwrap()
            .contains("second-secret-value")
    );
}

#[tokio::test]
async fn deleting_a_service_removes_its_children() {
    let env = TestEnvironment::create("psvc-delete").await;
    env.apply_application("shop", application("team-shop"))
        .await;
    env.apply_service(
        "web",
        json!({
            "application": "shop",
            "image": image("web", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "autoscaling": {"min": 1, "max": 2},
            "expose": {}
        }),
    )
    .await;
    wait_exists(&env.api::<Deployment>(), "web").await;
    wait_exists(&env.api::<CoreService>(), "web").await;
    wait_exists(&env.api::<Ingress>(), "web").await;
    wait_exists(&env.api::<HorizontalPodAutoscaler>(), "web").await;

    env.services()
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    wait_gone(&env.services(), "web").await;
    wait_gone(&env.api::<Deployment>(), "web").await;
    wait_gone(&env.api::<CoreService>(), "web").await;
    wait_gone(&env.api::<Ingress>(), "web").await;
    wait_gone(&env.api::<HorizontalPodAutoscaler>(), "web").await;
    // The Application and the Environment are untouched.
    assert!(env.applications().get_opt("shop").await.unwrap().is_some());
}
