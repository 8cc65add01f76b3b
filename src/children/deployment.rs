//! Service → Deployment, and how many pods it asks for.
//!
//! Replicas, in order: a stopped Environment holds every Deployment at 0; with
//! autoscaling the field is left out so the HPA owns it; otherwise the Service's
//! `replicas`, else 2 in a `production` Environment and 1 elsewhere.

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar as K8sEnvVar, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{child_annotations, child_labels, child_metadata, selector_labels};
use crate::api::Environment;
use crate::api::environment::EnvironmentType;
use crate::names::annotations;
use crate::resolve::ResolvedService;

/// Pods of a production Service that declares neither `replicas` nor `autoscaling`:
/// one pod would make every node drain or rollout an outage.
pub const PRODUCTION_DEFAULT_REPLICAS: i32 = 2;

/// Whether the Environment's workloads are to be scaled to zero. `status.stopped`
/// is the Environment reconciler's verdict (hand and schedule); `spec.lifecycle.stopped`
/// is honoured at once too, so a stop never waits for that status write.
pub fn environment_stopped(environment: &Environment) -> bool {
    environment.status.as_ref().is_some_and(|s| s.stopped)
        || environment
            .spec
            .lifecycle
            .as_ref()
            .and_then(|l| l.stopped)
            .unwrap_or(false)
}

/// `spec.replicas` of the Deployment; `None` leaves it to the HPA.
pub fn desired_replicas(resolved: &ResolvedService<'_>) -> Option<i32> {
    let spec = &resolved.service.spec;
    if environment_stopped(resolved.environment) {
        return Some(0);
    }
    if spec.autoscaling.is_some() {
        return None;
    }
    Some(spec.replicas.unwrap_or(
        if resolved.environment.spec.type_ == EnvironmentType::Production {
            PRODUCTION_DEFAULT_REPLICAS
        } else {
            1
        },
    ))
}

/// The Deployment running a Service, with [`desired_replicas`].
pub fn render_deployment(
    resolved: &ResolvedService<'_>,
    env: Vec<K8sEnvVar>,
    config_hash: &str,
) -> Deployment {
    let service = resolved.service;
    let spec = &service.spec;

    let mut pod_annotations = child_annotations(service);
    pod_annotations.insert(annotations::CONFIG_HASH.into(), config_hash.into());
    if let Some(restarted_at) = &spec.restarted_at {
        pod_annotations.insert(annotations::RESTARTED_AT.into(), restarted_at.clone());
    }

    let probe = spec.health.as_ref().map(|health| Probe {
        http_get: Some(HTTPGetAction {
            path: Some(health.path.clone()),
            port: IntOrString::String(health.port.clone()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    });

    let container = Container {
        name: service.name_any(),
        image: Some(spec.image.clone()),
        command: spec.command.clone(),
        args: spec.args.clone(),
        ports: non_empty(
            spec.ports
                .iter()
                .map(|port| ContainerPort {
                    name: Some(port.name.clone()),
                    container_port: port.port,
                    protocol: Some(port.protocol.unwrap_or_default().as_str().into()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        env: non_empty(env),
        resources: spec.resources.clone(),
        readiness_probe: probe.clone(),
        liveness_probe: probe,
        ..Container::default()
    };

    Deployment {
        metadata: child_metadata(resolved),
        spec: Some(DeploymentSpec {
            replicas: desired_replicas(resolved),
            selector: LabelSelector {
                match_labels: Some(selector_labels(service)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(child_labels(resolved)),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // Dependencies are injected explicitly; docker-link style variables only add noise.
                    enable_service_links: Some(false),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

fn non_empty<T>(items: Vec<T>) -> Option<Vec<T>> {
    if items.is_empty() { None } else { Some(items) }
}

/// Labels used by a Deployment's pods, for tests and render output.
#[cfg(test)]
pub fn pod_labels(deployment: &Deployment) -> std::collections::BTreeMap<String, String> {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::api::service::{Autoscaling, Health};
    use crate::children::{ReferencedConfig, render_service_children};
    use crate::resolve::resolve_service;
    use crate::resolve::tests::shop;

    #[test]
    fn a_service_becomes_a_deployment_with_its_image_ports_probes_and_config_hash() {
        let snapshot = shop();
        let mut web = snapshot.service("staging", "web").unwrap().clone();
        web.spec.replicas = Some(3);
        web.spec.health = Some(Health {
            path: "/healthz".into(),
            port: "http".into(),
        });
        web.spec.restarted_at = Some("2026-11-23T10:00:00Z".into());
        let children = render_service_children(
            &resolve_service(&snapshot, &web).unwrap(),
            &ReferencedConfig::new(),
        );
        let yaml = serde_yaml::to_value(&children.deployment).unwrap();
        let expected: serde_yaml::Value = serde_yaml::from_str(&format!(
            r#"
metadata:
  name: web
  namespace: staging
spec:
  replicas: 3
  selector: {{matchLabels: {{paved.dev/service: web}}}}
  template:
    metadata:
      annotations:
        cortex.io/tag: web
        paved.dev/config-hash: "{hash}"
        paved.dev/restarted-at: "2026-11-23T10:00:00Z"
    spec:
      enableServiceLinks: false
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0.0
          ports: [{{name: http, containerPort: 8080, protocol: TCP}}]
          env: [{{name: API_URL, value: "http://api.staging.svc.cluster.local:8080"}}]
          readinessProbe: {{httpGet: {{path: /healthz, port: http}}}}
          livenessProbe: {{httpGet: {{path: /healthz, port: http}}}}
"#,
            hash = children.config_hash
        ))
        .unwrap();
        assert!(
            crate::reconcile::converge::is_subset(
                &serde_json::to_value(&expected).unwrap(),
                &serde_json::to_value(&yaml).unwrap()
            ),
            "{}",
            serde_yaml::to_string(&yaml).unwrap()
        );
        assert_eq!(pod_labels(&children.deployment)["paved.dev/service"], "web");
    }

    #[test]
    fn with_autoscaling_the_deployment_leaves_replicas_to_the_hpa() {
        let snapshot = shop();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        api.spec.autoscaling = Some(Autoscaling {
            min: 2,
            max: 10,
            cpu_utilization: Some(70),
        });
        let children = render_service_children(
            &resolve_service(&snapshot, &api).unwrap(),
            &ReferencedConfig::new(),
        );
        assert_eq!(children.deployment.spec.as_ref().unwrap().replicas, None);
        let json = serde_json::to_value(&children.deployment).unwrap();
        assert!(json["spec"].get("replicas").is_none());
        let hpa = children.autoscaler.unwrap();
        let spec = hpa.spec.unwrap();
        assert_eq!((spec.min_replicas, spec.max_replicas), (Some(2), 10));
        assert_eq!(spec.scale_target_ref.kind, "Deployment");
        assert_eq!(spec.scale_target_ref.name, "api");
    }

    fn in_environment(
        snapshot: &crate::resolve::Snapshot,
        change: impl Fn(&mut Environment),
    ) -> crate::resolve::Snapshot {
        let mut snapshot = snapshot.clone();
        let mut environment = snapshot.environments[0].as_ref().clone();
        change(&mut environment);
        snapshot.environments = vec![std::sync::Arc::new(environment)];
        snapshot
    }

    fn production(environment: &mut Environment) {
        environment.spec.type_ = EnvironmentType::Production;
    }

    fn stopped_by_hand(environment: &mut Environment) {
        environment.spec.lifecycle = Some(crate::api::environment::EnvironmentLifecycle {
            stopped: Some(true),
            ..Default::default()
        });
    }

    fn replicas_of(
        snapshot: &crate::resolve::Snapshot,
        service: &crate::api::Service,
    ) -> Option<i32> {
        desired_replicas(&resolve_service(snapshot, service).unwrap())
    }

    #[test]
    fn production_runs_two_pods_unless_the_service_says_otherwise() {
        let snapshot = in_environment(&shop(), production);
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        assert_eq!(replicas_of(&snapshot, &api), Some(2));
        api.spec.replicas = Some(1);
        assert_eq!(replicas_of(&snapshot, &api), Some(1));
        api.spec.replicas = None;
        api.spec.autoscaling = Some(Autoscaling {
            min: 1,
            max: 4,
            cpu_utilization: None,
        });
        assert_eq!(replicas_of(&snapshot, &api), None);
        let staging = shop();
        assert_eq!(
            replicas_of(&staging, staging.service("staging", "api").unwrap()),
            Some(1)
        );
    }

    #[test]
    fn a_stopped_environment_holds_the_deployment_at_zero_and_drops_the_hpa() {
        let mut api = shop().service("staging", "api").unwrap().clone();
        api.spec.autoscaling = Some(Autoscaling {
            min: 2,
            max: 10,
            cpu_utilization: None,
        });
        for stop in [
            stopped_by_hand as fn(&mut Environment),
            |e: &mut Environment| {
                e.status = Some(crate::api::EnvironmentStatus {
                    stopped: true,
                    ..Default::default()
                })
            },
        ] {
            let snapshot = in_environment(&shop(), stop);
            let children = render_service_children(
                &resolve_service(&snapshot, &api).unwrap(),
                &ReferencedConfig::new(),
            );
            assert_eq!(children.deployment.spec.unwrap().replicas, Some(0));
            assert!(children.autoscaler.is_none());
        }
        // Started again: replicas left to the HPA, which comes back as declared.
        let snapshot = shop();
        let children = render_service_children(
            &resolve_service(&snapshot, &api).unwrap(),
            &ReferencedConfig::new(),
        );
        assert_eq!(children.deployment.spec.unwrap().replicas, None);
        assert_eq!(
            children.autoscaler.unwrap().spec.unwrap().min_replicas,
            Some(2)
        );
    }

    #[test]
    fn stopping_does_not_change_the_pod_template_so_starting_rolls_nothing() {
        let api = shop().service("staging", "api").unwrap().clone();
        let running = shop();
        let stopped = in_environment(&running, stopped_by_hand);
        let render = |snapshot: &crate::resolve::Snapshot| {
            render_service_children(
                &resolve_service(snapshot, &api).unwrap(),
                &ReferencedConfig::new(),
            )
        };
        let (before, during) = (render(&running), render(&stopped));
        assert_eq!(before.config_hash, during.config_hash);
        assert_eq!(
            before.deployment.spec.unwrap().template,
            during.deployment.spec.unwrap().template
        );
    }

    #[test]
    fn without_replicas_or_autoscaling_one_pod_runs_and_no_hpa_exists() {
        let snapshot = shop();
        let api = snapshot.service("staging", "api").unwrap();
        let children = render_service_children(
            &resolve_service(&snapshot, api).unwrap(),
            &ReferencedConfig::new(),
        );
        assert_eq!(children.deployment.spec.unwrap().replicas, Some(1));
        assert!(children.autoscaler.is_none());
        assert!(children.ingress.is_none());
    }
}
