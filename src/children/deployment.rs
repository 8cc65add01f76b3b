//! Service → Deployment, and how many pods it asks for.
//!
//! Replicas, in order: a stopped Environment holds every Deployment at 0; with
//! autoscaling the field is left out so the HPA owns it; otherwise the Service's
//! `replicas`, else 2 in a `production` Environment and 1 elsewhere.
//!
//! The pod passes PodSecurity `restricted` unless the Service opts out with
//! `spec.security.level: baseline` ([`check_pod_security`] refuses that where the
//! Environment enforces `restricted`). Probes: readiness, a more tolerant
//! liveness, and a startup probe, on `spec.health` or else the first TCP port.
//! Memory: a request above the Environment's default limit without a limit of
//! its own gets the request as its limit (the LimitRange would refuse the pod).

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, Container, ContainerPort, EnvVar as K8sEnvVar, HTTPGetAction, PodSecurityContext,
    PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile, SecurityContext,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{child_annotations, child_labels, child_metadata, selector_labels};
use crate::api::Environment;
use crate::api::environment::EnvironmentType;
use crate::api::service::{PodSecurityLevel, ProbeKind, Security, ServiceSpec};
use crate::error::{Error, Result};
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

    let probes = probes(spec);

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
        resources: resources(spec, resolved.environment),
        readiness_probe: probes.readiness,
        liveness_probe: probes.liveness,
        startup_probe: probes.startup,
        security_context: container_security_context(spec.security.as_ref()),
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
                    automount_service_account_token: Some(
                        spec.security
                            .as_ref()
                            .and_then(|s| s.kubernetes_api)
                            .unwrap_or(false),
                    ),
                    security_context: Some(pod_security_context(spec.security.as_ref())),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// Refuse a Service whose pod would not pass the PodSecurity level its
/// Environment enforces (today: `level: baseline` under `restricted`), before
/// anything is written: the API server would refuse its pods anyway, silently,
/// at the ReplicaSet.
pub fn check_pod_security(spec: &ServiceSpec, environment: &Environment) -> Result<()> {
    let Some(enforced) = environment.enforced_pod_security() else {
        return Ok(());
    };
    let asked = Security::level(spec.security.as_ref());
    if asked >= enforced {
        return Ok(());
    }
    let why = if environment.spec.type_ == EnvironmentType::Production {
        "it is a production Environment".to_string()
    } else {
        format!("its spec.guardrails.podSecurity is {}", enforced.as_str())
    };
    Err(Error::PodSecurityForbidden {
        environment: environment.metadata.name.clone().unwrap_or_default(),
        enforced: enforced.as_str(),
        asked: asked.as_str(),
        why,
    })
}

/// Pod-level: non-root (restricted), seccomp `RuntimeDefault` (every level), the
/// user and group asked for.
fn pod_security_context(security: Option<&Security>) -> PodSecurityContext {
    let restricted = Security::level(security) == PodSecurityLevel::Restricted;
    let run_as_non_root = security.and_then(|s| s.run_as_non_root);
    PodSecurityContext {
        run_as_non_root: if restricted {
            Some(true)
        } else {
            run_as_non_root
        },
        run_as_user: security.and_then(|s| s.run_as_user),
        run_as_group: security.and_then(|s| s.run_as_group),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".into(),
            localhost_profile: None,
        }),
        ..PodSecurityContext::default()
    }
}

/// Container-level: no privilege escalation and no capabilities (restricted),
/// a read-only root filesystem when asked; None when there is nothing to say.
fn container_security_context(security: Option<&Security>) -> Option<SecurityContext> {
    let restricted = Security::level(security) == PodSecurityLevel::Restricted;
    let context = SecurityContext {
        allow_privilege_escalation: restricted.then_some(false),
        capabilities: restricted.then(|| Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: None,
        }),
        read_only_root_filesystem: security.and_then(|s| s.read_only_root_filesystem),
        ..SecurityContext::default()
    };
    (context != SecurityContext::default()).then_some(context)
}

/// The three probes of a container, and which kind they are.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Probes {
    pub kind: Option<ProbeKind>,
    pub readiness: Option<Probe>,
    pub liveness: Option<Probe>,
    pub startup: Option<Probe>,
}

/// Readiness answers fast (out of rotation after 3 failures 5 s apart); liveness
/// restarts only after 6 failures 20 s apart (two minutes), so a slow moment is
/// not a restart; the startup probe gives a slow start five minutes before
/// liveness counts. On `spec.health` (HTTP GET), else on the first TCP port,
/// else none.
pub fn probes(spec: &ServiceSpec) -> Probes {
    let (kind, http_get, tcp_socket) = match (&spec.health, first_tcp_port(spec)) {
        (Some(health), _) => (
            ProbeKind::HttpGet,
            Some(HTTPGetAction {
                path: Some(health.path.clone()),
                port: IntOrString::String(health.port.clone()),
                ..HTTPGetAction::default()
            }),
            None,
        ),
        (None, Some(port)) => (
            ProbeKind::TcpSocket,
            None,
            Some(TCPSocketAction {
                port: IntOrString::String(port.to_string()),
                host: None,
            }),
        ),
        (None, None) => {
            return Probes {
                kind: Some(ProbeKind::None),
                ..Probes::default()
            };
        }
    };
    let probe = |period: i32, timeout: i32, failures: i32| Probe {
        http_get: http_get.clone(),
        tcp_socket: tcp_socket.clone(),
        period_seconds: Some(period),
        timeout_seconds: Some(timeout),
        failure_threshold: Some(failures),
        ..Probe::default()
    };
    Probes {
        kind: Some(kind),
        readiness: Some(probe(5, 2, 3)),
        liveness: Some(probe(20, 5, 6)),
        startup: Some(probe(5, 2, 60)),
    }
}

/// Name of the first TCP port (a TCP probe cannot check UDP or SCTP).
fn first_tcp_port(spec: &ServiceSpec) -> Option<&str> {
    spec.ports
        .iter()
        .find(|p| p.protocol.unwrap_or_default() == crate::api::service::Protocol::Tcp)
        .map(|p| p.name.as_str())
}

/// The Service's resources, with one fix: a memory request above the
/// Environment's default memory limit, without a limit of its own, gets the
/// request as its limit (the LimitRange would otherwise give it a limit below
/// its request and the API server would refuse every pod).
fn resources(spec: &ServiceSpec, environment: &Environment) -> Option<ResourceRequirements> {
    let mut resources = spec.resources.clone()?;
    let request = resources
        .requests
        .as_ref()
        .and_then(|r| r.get("memory"))
        .cloned();
    let has_limit = resources
        .limits
        .as_ref()
        .is_some_and(|l| l.contains_key("memory"));
    if let Some(request) = request.filter(|_| !has_limit) {
        let default = super::guardrails::default_memory_limit(environment);
        let above = match (
            super::guardrails::quantity_value(&request.0),
            super::guardrails::quantity_value(&default.0),
        ) {
            (Some(request), Some(default)) => request > default,
            _ => true,
        };
        if above {
            resources
                .limits
                .get_or_insert_with(Default::default)
                .insert("memory".into(), request);
        }
    }
    Some(resources)
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

    fn deployment_of(
        snapshot: &crate::resolve::Snapshot,
        service: &crate::api::Service,
    ) -> Deployment {
        render_service_children(
            &resolve_service(snapshot, service).unwrap(),
            &ReferencedConfig::new(),
        )
        .deployment
    }

    fn pod_spec(deployment: &Deployment) -> &PodSpec {
        deployment
            .spec
            .as_ref()
            .unwrap()
            .template
            .spec
            .as_ref()
            .unwrap()
    }

    #[test]
    fn by_default_the_pod_is_restricted_and_has_no_service_account_token() {
        let snapshot = shop();
        let api = snapshot.service("staging", "api").unwrap();
        let deployment = deployment_of(&snapshot, api);
        let json = serde_json::to_value(pod_spec(&deployment)).unwrap();
        assert_eq!(
            json["securityContext"],
            serde_json::json!({"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert_eq!(
            json["containers"][0]["securityContext"],
            serde_json::json!({"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}})
        );
        assert_eq!(json["automountServiceAccountToken"], false);
    }

    #[test]
    fn the_security_fields_reach_the_pod_and_baseline_drops_only_the_restricted_settings() {
        let snapshot = shop();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        api.spec.security = Some(Security {
            run_as_user: Some(10001),
            run_as_group: Some(10001),
            read_only_root_filesystem: Some(true),
            kubernetes_api: Some(true),
            ..Security::default()
        });
        let deployment = deployment_of(&snapshot, &api);
        let json = serde_json::to_value(pod_spec(&deployment)).unwrap();
        assert_eq!(json["automountServiceAccountToken"], true);
        assert_eq!(json["securityContext"]["runAsNonRoot"], true);
        assert_eq!(json["securityContext"]["runAsUser"], 10001);
        assert_eq!(json["securityContext"]["runAsGroup"], 10001);
        let container = &json["containers"][0]["securityContext"];
        assert_eq!(container["readOnlyRootFilesystem"], true);
        assert_eq!(container["allowPrivilegeEscalation"], false);

        api.spec.security = Some(Security {
            level: Some(PodSecurityLevel::Baseline),
            run_as_user: Some(0),
            run_as_non_root: Some(false),
            ..Security::default()
        });
        let deployment = deployment_of(&snapshot, &api);
        let json = serde_json::to_value(pod_spec(&deployment)).unwrap();
        assert_eq!(
            json["securityContext"],
            serde_json::json!({"runAsNonRoot": false, "runAsUser": 0, "seccompProfile": {"type": "RuntimeDefault"}})
        );
        assert!(json["containers"][0].get("securityContext").is_none());
        assert_eq!(json["automountServiceAccountToken"], false);
    }

    #[test]
    fn an_environment_enforcing_restricted_refuses_a_baseline_service_and_says_what_to_change() {
        use crate::api::environment::Guardrails;
        let snapshot = shop();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        api.spec.security = Some(Security {
            level: Some(PodSecurityLevel::Baseline),
            ..Security::default()
        });
        // Staging without podSecurity guardrails: the opt-out is allowed.
        assert!(resolve_service(&snapshot, &api).is_ok());

        let production = in_environment(&shop(), production);
        let error = resolve_service(&production, &api).unwrap_err();
        assert!(error.is_stalled());
        assert_eq!(error.reason(), "PodSecurityForbidden");
        let message = error.to_string();
        assert!(message.contains("spec.security.level"), "{message}");
        assert!(message.contains("production"), "{message}");

        let guarded = in_environment(&shop(), |e| {
            e.spec.guardrails = Some(Guardrails {
                pod_security: Some(PodSecurityLevel::Restricted),
                ..Guardrails::default()
            })
        });
        let error = resolve_service(&guarded, &api).unwrap_err();
        assert_eq!(error.reason(), "PodSecurityForbidden");
        assert!(
            error
                .to_string()
                .contains("guardrails.podSecurity is restricted")
        );

        let lenient = in_environment(&shop(), |e| {
            e.spec.guardrails = Some(Guardrails {
                pod_security: Some(PodSecurityLevel::Baseline),
                ..Guardrails::default()
            })
        });
        assert!(resolve_service(&lenient, &api).is_ok());
        // A restricted Service is welcome everywhere.
        api.spec.security = None;
        for snapshot in [&production, &guarded, &lenient] {
            assert!(resolve_service(snapshot, &api).is_ok());
        }
    }

    #[test]
    fn liveness_is_more_tolerant_than_readiness_and_a_startup_probe_guards_slow_starts() {
        let mut spec = shop().service("staging", "api").unwrap().spec.clone();
        spec.health = Some(Health {
            path: "/healthz".into(),
            port: "http".into(),
        });
        let probes = probes(&spec);
        assert_eq!(probes.kind, Some(ProbeKind::HttpGet));
        let (readiness, liveness, startup) = (
            probes.readiness.unwrap(),
            probes.liveness.unwrap(),
            probes.startup.unwrap(),
        );
        assert_ne!(readiness, liveness);
        let patience = |p: &Probe| p.period_seconds.unwrap() * p.failure_threshold.unwrap();
        assert!(patience(&liveness) > patience(&readiness));
        assert!(patience(&startup) >= 5 * 60);
        for probe in [&readiness, &liveness, &startup] {
            let get = probe.http_get.as_ref().unwrap();
            assert_eq!(get.path.as_deref(), Some("/healthz"));
            assert_eq!(get.port, IntOrString::String("http".into()));
        }
    }

    #[test]
    fn without_health_the_first_tcp_port_is_probed_and_without_one_nothing_is() {
        use crate::api::service::{Port, Protocol};
        let mut spec = shop().service("staging", "api").unwrap().spec.clone();
        spec.ports = vec![
            Port {
                name: "dns".into(),
                port: 53,
                protocol: Some(Protocol::Udp),
            },
            Port {
                name: "admin".into(),
                port: 9000,
                protocol: None,
            },
        ];
        let probes = probes(&spec);
        assert_eq!(probes.kind, Some(ProbeKind::TcpSocket));
        for probe in [&probes.readiness, &probes.liveness, &probes.startup] {
            let probe = probe.as_ref().unwrap();
            assert!(probe.http_get.is_none());
            assert_eq!(
                probe.tcp_socket.as_ref().unwrap().port,
                IntOrString::String("admin".into())
            );
        }
        assert_ne!(probes.readiness, probes.liveness);

        spec.ports.truncate(1);
        assert_eq!(
            super::probes(&spec),
            Probes {
                kind: Some(ProbeKind::None),
                ..Probes::default()
            }
        );
        spec.ports.clear();
        assert_eq!(super::probes(&spec).kind, Some(ProbeKind::None));
    }

    #[test]
    fn a_memory_request_above_the_default_limit_becomes_its_own_limit() {
        use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
        let snapshot = shop();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        let memory = |deployment: &Deployment| {
            let resources = pod_spec(deployment).containers[0].resources.clone();
            let get = |map: Option<std::collections::BTreeMap<String, Quantity>>| {
                map.and_then(|m| m.get("memory").map(|q| q.0.clone()))
            };
            resources
                .map(|r| (get(r.requests), get(r.limits)))
                .unwrap_or_default()
        };
        // Nothing set: nothing written, the LimitRange gives the defaults.
        assert_eq!(memory(&deployment_of(&snapshot, &api)), (None, None));
        let with_request = |request: &str| ResourceRequirements {
            requests: Some([("memory".to_string(), Quantity(request.into()))].into()),
            ..ResourceRequirements::default()
        };
        api.spec.resources = Some(with_request("256Mi"));
        assert_eq!(
            memory(&deployment_of(&snapshot, &api)),
            (Some("256Mi".into()), None),
            "below the 512Mi default limit: left to the LimitRange"
        );
        api.spec.resources = Some(with_request("2Gi"));
        assert_eq!(
            memory(&deployment_of(&snapshot, &api)),
            (Some("2Gi".into()), Some("2Gi".into()))
        );
        let mut own_limit = with_request("2Gi");
        own_limit.limits = Some([("memory".to_string(), Quantity("3Gi".into()))].into());
        api.spec.resources = Some(own_limit);
        assert_eq!(
            memory(&deployment_of(&snapshot, &api)),
            (Some("2Gi".into()), Some("3Gi".into()))
        );
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
