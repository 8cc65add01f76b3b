//! Status as a pure function: what each kind's `status` should be, given the
//! previous status, what was resolved and what the cluster reports. Here: the
//! condition helpers (kstatus: Ready, Reconciling, Stalled) and the Service's
//! status; [`application`] and [`environment`] beside them.
//!
//! Reconcilers compare the result with the current status and write only when
//! they differ. Nothing here reads a clock except through the `now` argument,
//! and `lastTransitionTime` moves only when a condition's status changes, so an
//! unchanged world yields an identical status and no write.

mod application;
mod environment;

pub use application::application_status;
pub use environment::{EnvironmentObservation, environment_status, environment_status_observed};

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;

use crate::api::gateway_api::{HttpRoute, ParentReference};
use crate::api::service::{DependencyStatus, ReplicaCounts, RevisionRecord};
use crate::api::{Condition, Service, ServiceStatus};
use crate::error::Error;
use crate::names::{conditions, reasons};

/// How many revisions `status.history` keeps.
pub const HISTORY_LIMIT: usize = 10;

/// A condition as computed, before `lastTransitionTime` is carried over.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Desired {
    pub type_: &'static str,
    pub status: bool,
    pub reason: &'static str,
    pub message: String,
}

/// Ready=True.
pub fn ready(reason: &'static str, message: impl Into<String>) -> Vec<Desired> {
    vec![Desired {
        type_: conditions::READY,
        status: true,
        reason,
        message: message.into(),
    }]
}

/// Ready=False + Reconciling=True: work in flight.
pub fn reconciling(reason: &'static str, message: impl Into<String>) -> Vec<Desired> {
    let message = message.into();
    vec![
        Desired {
            type_: conditions::READY,
            status: false,
            reason,
            message: message.clone(),
        },
        Desired {
            type_: conditions::RECONCILING,
            status: true,
            reason,
            message,
        },
    ]
}

/// Ready=False + Stalled=True: needs a change from the user.
pub fn stalled(error: &Error) -> Vec<Desired> {
    stalled_because(error.reason(), error.to_string())
}

/// Ready=False + Stalled=True for a reason that is not an [`Error`] of Paved's
/// own (what Kubernetes reports on a child, a stalled Service of an Application).
pub fn stalled_because(reason: &'static str, message: impl Into<String>) -> Vec<Desired> {
    let message = message.into();
    vec![
        Desired {
            type_: conditions::READY,
            status: false,
            reason,
            message: message.clone(),
        },
        Desired {
            type_: conditions::STALLED,
            status: true,
            reason,
            message,
        },
    ]
}

/// Ready=False after a transient failure, retried; kept apart from Stalled.
pub fn failing(error: &Error) -> Vec<Desired> {
    vec![Desired {
        type_: conditions::READY,
        status: false,
        reason: error.reason(),
        message: error.to_string(),
    }]
}

/// Merge desired conditions into the previous ones: keep `lastTransitionTime`
/// when the status did not change; drop condition types no longer desired
/// (kstatus: Reconciling and Stalled are present only while true).
pub fn merge_conditions(
    previous: &[Condition],
    desired: Vec<Desired>,
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    desired
        .into_iter()
        .map(|d| {
            let status = if d.status { "True" } else { "False" }.to_string();
            let last_transition_time = previous
                .iter()
                .find(|c| c.type_ == d.type_ && c.status == status)
                .and_then(|c| c.last_transition_time.clone())
                .or_else(|| Some(now.to_string()));
            Condition {
                type_: d.type_.to_string(),
                status,
                reason: d.reason.to_string(),
                message: d.message,
                last_transition_time,
                observed_generation: generation,
            }
        })
        .collect()
}

// --- Service ----------------------------------------------------------------

/// What the Service reconcile learned, for its status.
pub struct ServiceObservation<'a> {
    /// Ok: the children were applied (with this config hash, URL and endpoint). Err: why not.
    pub outcome: Result<AppliedService, &'a Error>,
    /// The Deployment as the cluster reports it (absent when never created).
    pub deployment: Option<&'a Deployment>,
    /// Dependencies and their readiness (best effort when stalled).
    pub dependencies: Vec<DependencyStatus>,
    /// The HTTPRoute as the cluster reports it (Environments with `spec.gateway`).
    pub route: Option<&'a HttpRoute>,
}

/// What was applied for a Service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppliedService {
    pub config_hash: String,
    pub url: Option<String>,
    pub endpoint: Option<String>,
    /// Name of the Environment when it is stopped (the Deployment was applied at zero).
    pub stopped_by: Option<String>,
    /// Referenced Secret/ConfigMap keys that do not exist (and are not optional),
    /// as `Secret db key password`.
    pub missing_config: Vec<String>,
    /// An HTTPRoute was applied: the Service is Ready only once a Gateway accepts it.
    pub route_expected: bool,
}

/// What the Gateways report on a Service's HTTPRoute (`status.parents`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RouteState {
    /// A Gateway it names accepts it and resolves its backend.
    Accepted,
    /// No Gateway has reported on the current generation yet.
    Pending(String),
    /// Refused: no Gateway accepts it, or one cannot resolve its backend. The
    /// message carries the Gateway's own words.
    Refused(&'static str, String),
}

/// [`RouteState`] of a live route, from the conditions its parents' controllers
/// wrote for its current generation (older ones describe an earlier spec).
pub fn route_state(route: Option<&HttpRoute>) -> RouteState {
    let Some(route) = route else {
        return RouteState::Pending("waiting for the HTTPRoute to be created".into());
    };
    let namespace = route.namespace().unwrap_or_default();
    let name = format!("HTTPRoute {namespace}/{}", route.name_any());
    let generation = route.metadata.generation;
    let parents = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let gateway = |parent: &ParentReference| {
        format!(
            "Gateway {}/{}{}",
            parent.namespace.as_deref().unwrap_or(&namespace),
            parent.name,
            parent
                .section_name
                .as_ref()
                .map(|s| format!(" (listener {s})"))
                .unwrap_or_default()
        )
    };
    let mut accepted = false;
    let mut refused = Vec::new();
    let mut unresolved = Vec::new();
    for parent in &route.spec.parent_refs {
        let conditions = parents
            .iter()
            .filter(|p| p.parent_ref.same_parent(parent, &namespace))
            .flat_map(|p| &p.conditions)
            .filter(|c| {
                generation.is_none()
                    || c.observed_generation.is_none()
                    || c.observed_generation >= generation
            });
        let mut parent_accepted = false;
        let mut parent_unresolved = None;
        for condition in conditions {
            let words = || {
                format!(
                    "{}: {}: {}",
                    gateway(parent),
                    condition.reason,
                    one_line(&condition.message)
                )
            };
            match (condition.type_.as_str(), condition.status.as_str()) {
                ("Accepted", "True") => parent_accepted = true,
                ("Accepted", "False") => refused.push(words()),
                ("ResolvedRefs", "False") => parent_unresolved = Some(words()),
                _ => {}
            }
        }
        if parent_accepted {
            accepted = true;
            unresolved.extend(parent_unresolved);
        }
    }
    if !unresolved.is_empty() {
        return RouteState::Refused(
            reasons::ROUTE_REFS_NOT_RESOLVED,
            format!(
                "{name} is accepted but its backend is not resolved: {}; check the Service's ports and the Gateway's permissions",
                unresolved.join("; ")
            ),
        );
    }
    if accepted {
        return RouteState::Accepted;
    }
    if !refused.is_empty() {
        return RouteState::Refused(
            reasons::ROUTE_NOT_ACCEPTED,
            format!(
                "no Gateway accepts {name}: {}; change spec.expose.host or the Environment's spec.gateway, or ask the Gateway's owner to allow it",
                refused.join("; ")
            ),
        );
    }
    let waiting: Vec<String> = route.spec.parent_refs.iter().map(gateway).collect();
    RouteState::Pending(format!(
        "waiting for {} to accept {name} (no status from its controller yet: is the Gateway there, and its GatewayClass's controller running?)",
        waiting.join(", ")
    ))
}

/// The first line of a message from another controller, for a one-line condition.
fn one_line(message: &str) -> &str {
    message
        .lines()
        .next()
        .unwrap_or_default()
        .trim_end_matches('.')
}

/// Why a Deployment's rollout cannot progress, as Kubernetes reports it on the
/// Deployment: `ReplicaFailure=True` (pods refused: a ResourceQuota, a
/// LimitRange, admission) or `Progressing=False` with `ProgressDeadlineExceeded`.
/// Reason and a message carrying Kubernetes' own words.
pub fn rollout_failure(deployment: &Deployment) -> Option<(&'static str, String)> {
    let name = deployment.metadata.name.as_deref().unwrap_or_default();
    let conditions = deployment.status.as_ref()?.conditions.as_ref()?;
    let describe = |c: &k8s_openapi::api::apps::v1::DeploymentCondition| {
        let reason = c.reason.as_deref().unwrap_or_default();
        let message = c.message.as_deref().unwrap_or_default();
        format!("{reason}: {message}")
    };
    if let Some(failure) = conditions
        .iter()
        .find(|c| c.type_ == "ReplicaFailure" && c.status == "True")
    {
        return Some((
            reasons::REPLICA_FAILURE,
            format!(
                "Deployment {name} cannot create pods ({}); {}",
                describe(failure),
                refused_pods_advice(failure.message.as_deref().unwrap_or_default())
            ),
        ));
    }
    conditions
        .iter()
        .find(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        })
        .map(|deadline| {
            (
                reasons::PROGRESS_DEADLINE_EXCEEDED,
                format!(
                    "Deployment {name} made no progress within its deadline ({}); look at its pods (kubectl describe) and change the image, resources or configuration",
                    describe(deadline)
                ),
            )
        })
}

/// What to change when the API server refuses a Deployment's pods, from its
/// words (the `ReplicaFailure` condition's message, which quotes the refusal of
/// the last pod creation): each admission check that refuses pods names itself.
fn refused_pods_advice(message: &str) -> &'static str {
    if message.contains("exceeded quota") {
        "raise the namespace's ResourceQuota, or lower the Service's replicas or resources"
    } else if message.contains("violates PodSecurity") {
        "the namespace's PodSecurity enforce label refuses the pod (kubectl get namespace <namespace> --show-labels): drop spec.security.level: baseline so the pod is built for restricted, or have the label changed"
    } else if message.contains("error looking up service account") {
        "the namespace lacks the ServiceAccount the pods run as: the controller-manager makes `default` in every new namespace, so check that it runs (kubectl get serviceaccount -n <namespace>)"
    } else if message.contains("per Container") || message.contains("per Pod") {
        "bring the Service's resources within the namespace's LimitRange (kubectl describe limitrange -n <namespace>)"
    } else {
        "fix what refuses them (a ResourceQuota or LimitRange of the namespace, an admission policy, the Service's resources or replicas)"
    }
}

/// Replica counts and rollout completeness of a Deployment.
pub fn deployment_replicas(deployment: &Deployment) -> (ReplicaCounts, bool) {
    let desired = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let status = deployment.status.clone().unwrap_or_default();
    let counts = ReplicaCounts {
        desired,
        ready: status.ready_replicas.unwrap_or(0),
        available: status.available_replicas.unwrap_or(0),
        updated: status.updated_replicas.unwrap_or(0),
    };
    let observed =
        status.observed_generation.unwrap_or(0) >= deployment.metadata.generation.unwrap_or(1);
    // Old pods still around (status.replicas > desired) mean the rollout is not over.
    let no_old_pods = status.replicas.unwrap_or(0) <= desired;
    let complete = observed
        && counts.updated >= desired
        && counts.available >= desired
        && counts.ready >= desired
        && no_old_pods;
    (counts, complete)
}

pub fn service_status(
    service: &Service,
    observation: ServiceObservation<'_>,
    now: &str,
) -> ServiceStatus {
    let previous = service.status.clone().unwrap_or_default();
    let generation = service.metadata.generation;
    let mut status = ServiceStatus {
        observed_generation: generation,
        dependencies: observation.dependencies,
        revision: previous.revision,
        history: previous.history.clone(),
        url: previous.url.clone(),
        endpoint: previous.endpoint.clone(),
        image: previous.image.clone(),
        probe: previous.probe,
        ..ServiceStatus::default()
    };

    let (counts, complete) = observation
        .deployment
        .map(deployment_replicas)
        .unwrap_or_default();
    status.replicas = counts.clone();

    let desired = match observation.outcome {
        Err(error) if error.is_stalled() => stalled(error),
        Err(error) => failing(error),
        Ok(applied) => {
            status.url = applied.url;
            status.endpoint = applied.endpoint;
            status.image = Some(service.spec.image.clone());
            status.probe = crate::children::probes(&service.spec).kind;
            record_revision(&mut status, &service.spec.image, &applied.config_hash, now);
            let failure = observation
                .deployment
                .filter(|_| !complete)
                .and_then(rollout_failure);
            let route = if applied.route_expected {
                route_state(observation.route)
            } else {
                RouteState::Accepted
            };
            if !applied.missing_config.is_empty() {
                stalled_because(
                    reasons::CONFIG_NOT_FOUND,
                    format!(
                        "{} referenced in spec.env (or the Application's env) does not exist in namespace {}; create it, or mark the reference optional",
                        applied.missing_config.join(", "),
                        service.metadata.namespace.as_deref().unwrap_or_default()
                    ),
                )
            } else if let Some(environment) = &applied.stopped_by {
                stopped_conditions(environment, complete)
            } else if let Some((reason, message)) = failure {
                stalled_because(reason, message)
            } else if let RouteState::Refused(reason, message) = route {
                stalled_because(reason, message)
            } else if let (true, RouteState::Pending(message)) = (complete, &route) {
                reconciling(reasons::WAITING_FOR_GATEWAY, message.clone())
            } else if complete {
                ready(
                    reasons::AVAILABLE,
                    format!(
                        "{} of {} pods available, running {}",
                        counts.available, counts.desired, service.spec.image
                    ),
                )
            } else {
                reconciling(
                    reasons::ROLLING_OUT,
                    format!(
                        "rolling out {}: {} of {} pods updated, {} available",
                        service.spec.image, counts.updated, counts.desired, counts.available
                    ),
                )
            }
        }
    };
    status.conditions = merge_conditions(&previous.conditions, desired, generation, now);
    status
}

/// A Service of a stopped Environment: Ready=True once no pod is left (stopped is
/// the state asked for: kstatus Current, Argo CD Healthy, the Application and
/// Environment count it as ready), Reconciling while pods still terminate.
fn stopped_conditions(environment: &str, gone: bool) -> Vec<Desired> {
    if gone {
        ready(
            reasons::STOPPED,
            format!(
                "stopped: Environment {environment} is stopped, so no pod runs; `paved start {environment}` (spec.lifecycle.stopped: false) restores the declared replicas"
            ),
        )
    } else {
        reconciling(
            reasons::STOPPING,
            format!(
                "stopping with Environment {environment}: scaling to zero, waiting for the pods to terminate"
            ),
        )
    }
}

/// Bump the revision when the image or configuration differs from the latest one.
fn record_revision(status: &mut ServiceStatus, image: &str, config_hash: &str, now: &str) {
    let current = status.history.first();
    if current.is_some_and(|r| r.image == image && r.config_hash == config_hash) {
        return;
    }
    status.revision += 1;
    status.history.insert(
        0,
        RevisionRecord {
            revision: status.revision,
            image: image.to_string(),
            config_hash: config_hash.to_string(),
            deployed_at: now.to_string(),
        },
    );
    status.history.truncate(HISTORY_LIMIT);
}

/// `name (Reason: message)` of each Service that is Stalled on its current generation.
pub fn stalled_services<'a>(services: impl Iterator<Item = &'a Service>) -> Vec<String> {
    services
        .filter_map(|s| {
            let status = s.status.as_ref()?;
            let stalled = status
                .conditions
                .iter()
                .find(|c| c.type_ == conditions::STALLED && c.status == "True")?;
            let current = status.observed_generation.is_none()
                || status.observed_generation == s.metadata.generation;
            current.then(|| {
                format!(
                    "{} ({}: {})",
                    kube::ResourceExt::name_any(s),
                    stalled.reason,
                    stalled.message
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use crate::resolve::tests::{service, shop};
    use kube::ResourceExt;

    fn deployment(replicas: i32, ready: i32, generation: i64, observed: i64) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                ..DeploymentSpec::default()
            }),
            status: Some(DeploymentStatus {
                observed_generation: Some(observed),
                replicas: Some(replicas),
                ready_replicas: Some(ready),
                available_replicas: Some(ready),
                updated_replicas: Some(replicas),
                ..DeploymentStatus::default()
            }),
        }
    }

    fn applied() -> AppliedService {
        AppliedService {
            config_hash: "abc".into(),
            url: None,
            endpoint: Some("api.staging.svc.cluster.local:8080".into()),
            stopped_by: None,
            missing_config: vec![],
            route_expected: false,
        }
    }

    #[test]
    fn a_stopped_service_is_ready_with_reason_stopped_once_its_pods_are_gone_and_keeps_its_revision()
     {
        let mut api = service("staging", "api", "shop");
        api.metadata.generation = Some(1);
        let running = deployment(2, 2, 1, 1);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(applied()),
                deployment: Some(&running),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status.revision, 1);
        api.status = Some(status);

        let stopped = AppliedService {
            stopped_by: Some("staging".into()),
            ..applied()
        };
        let mut terminating = deployment(0, 0, 2, 2);
        terminating.status.as_mut().unwrap().replicas = Some(2);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(stopped.clone()),
                deployment: Some(&terminating),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:01:00Z",
        );
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("False", "Stopping")
        );
        assert_eq!(status.conditions[1].type_, "Reconciling");

        let gone = deployment(0, 0, 2, 2);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(stopped),
                deployment: Some(&gone),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:02:00Z",
        );
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", "Stopped")
        );
        assert!(status.conditions[0].message.contains("paved start staging"));
        assert_eq!(status.replicas.desired, 0);
        assert_eq!((status.revision, status.history.len()), (1, 1));
    }

    #[test]
    fn a_service_is_ready_only_when_the_deployment_has_all_pods_available() {
        let mut api = service("staging", "api", "shop");
        api.metadata.generation = Some(1);
        let rolling = deployment(2, 1, 1, 1);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(applied()),
                deployment: Some(&rolling),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[1].type_, "Reconciling");
        assert_eq!(
            status.replicas,
            ReplicaCounts {
                desired: 2,
                ready: 1,
                available: 1,
                updated: 2
            }
        );

        let done = deployment(2, 2, 1, 1);
        api.status = Some(status);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(applied()),
                deployment: Some(&done),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:01:00Z",
        );
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(
            (
                status.conditions[0].status.as_str(),
                status.conditions[0].reason.as_str()
            ),
            ("True", "Available")
        );
        assert_eq!(status.revision, 1);
    }

    #[test]
    fn refused_pods_get_the_advice_of_the_check_that_refused_them() {
        // The API server's own messages, as the ReplicaSet controller quotes
        // them in the Deployment's ReplicaFailure condition.
        let cases = [
            (
                r#"pods "web-5d8f7c9b6d-x2x9z" is forbidden: exceeded quota: no-pods, requested: pods=1, used: pods=0, limited: pods=0"#,
                "raise the namespace's ResourceQuota",
            ),
            (
                r#"pods "web-5d8f7c9b6d-x2x9z" is forbidden: error looking up service account shop/default: serviceaccount "default" not found"#,
                "lacks the ServiceAccount",
            ),
            (
                r#"pods "web-5d8f7c9b6d-x2x9z" is forbidden: violates PodSecurity "restricted:latest": runAsNonRoot != true (pod or container "web" must set securityContext.runAsNonRoot=true)"#,
                "PodSecurity enforce label",
            ),
            (
                r#"pods "web-5d8f7c9b6d-x2x9z" is forbidden: maximum memory usage per Container is 256Mi, but limit is 512Mi"#,
                "within the namespace's LimitRange",
            ),
            (
                r#"admission webhook "policy.example.com" denied the request: images must come from the company registry"#,
                "an admission policy",
            ),
        ];
        for (refusal, advice) in cases {
            let mut refused = with_condition(
                deployment(1, 0, 1, 1),
                "ReplicaFailure",
                "True",
                "FailedCreate",
            );
            refused
                .status
                .as_mut()
                .unwrap()
                .conditions
                .as_mut()
                .unwrap()[0]
                .message = Some(refusal.into());
            let (reason, message) = rollout_failure(&refused).unwrap();
            assert_eq!(reason, "ReplicaFailure");
            assert!(
                message.contains(refusal),
                "Kubernetes' words kept: {message}"
            );
            assert!(message.contains(advice), "{advice:?} in: {message}");
        }
    }

    fn with_condition(mut d: Deployment, type_: &str, status: &str, reason: &str) -> Deployment {
        d.metadata.name = Some("api".into());
        d.status.as_mut().unwrap().conditions =
            Some(vec![k8s_openapi::api::apps::v1::DeploymentCondition {
                type_: type_.into(),
                status: status.into(),
                reason: Some(reason.into()),
                message: Some(format!("kubernetes says {reason}")),
                ..Default::default()
            }]);
        d
    }

    #[test]
    fn a_rollout_kubernetes_cannot_progress_stalls_the_service_with_its_words_and_recovers() {
        let mut api = service("staging", "api", "shop");
        api.metadata.generation = Some(1);
        let observe = |d: &Deployment, api: &Service| {
            service_status(
                api,
                ServiceObservation {
                    outcome: Ok(applied()),
                    deployment: Some(d),
                    dependencies: vec![],
                    route: None,
                },
                "2026-01-01T00:00:00Z",
            )
        };
        let refused = with_condition(
            deployment(2, 0, 1, 1),
            "ReplicaFailure",
            "True",
            "FailedCreate",
        );
        let status = observe(&refused, &api);
        let stalled = status
            .conditions
            .iter()
            .find(|c| c.type_ == "Stalled")
            .unwrap();
        assert_eq!(stalled.reason, "ReplicaFailure");
        assert!(
            stalled.message.contains("kubernetes says FailedCreate"),
            "{}",
            stalled.message
        );
        assert!(!status.conditions.iter().any(|c| c.type_ == "Reconciling"));

        let deadline = with_condition(
            deployment(2, 1, 1, 1),
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
        );
        let status = observe(&deadline, &api);
        assert_eq!(status.conditions[1].reason, "ProgressDeadlineExceeded");

        // Still progressing: no stall; recovered: Ready.
        let progressing = with_condition(
            deployment(2, 1, 1, 1),
            "Progressing",
            "True",
            "ReplicaSetUpdated",
        );
        assert_eq!(
            observe(&progressing, &api).conditions[1].type_,
            "Reconciling"
        );
        api.status = Some(status);
        let done = deployment(2, 2, 1, 1);
        let status = observe(&done, &api);
        assert_eq!(status.conditions.len(), 1);
        assert_eq!(status.conditions[0].reason, "Available");
    }

    #[test]
    fn a_missing_config_reference_stalls_the_service_and_names_it() {
        let api = service("staging", "api", "shop");
        let done = deployment(1, 1, 1, 1);
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(AppliedService {
                    missing_config: vec!["Secret db key password".into()],
                    ..applied()
                }),
                deployment: Some(&done),
                dependencies: vec![],
                route: None,
            },
            "t",
        );
        assert_eq!(status.conditions[1].type_, "Stalled");
        assert_eq!(status.conditions[1].reason, "ConfigNotFound");
        assert!(
            status.conditions[1]
                .message
                .contains("Secret db key password")
        );
    }

    #[test]
    fn an_application_and_environment_with_a_stalled_service_are_stalled_not_reconciling() {
        let mut snapshot = shop();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        api.metadata.generation = Some(2);
        let error = Error::HostConflict {
            host: "h".into(),
            holder: "x/y".into(),
        };
        api.status = Some(ServiceStatus {
            observed_generation: Some(2),
            conditions: merge_conditions(&[], stalled(&error), Some(2), "t"),
            ..ServiceStatus::default()
        });
        snapshot.services.retain(|s| s.name_any() != "api");
        snapshot.services.push(std::sync::Arc::new(api.clone()));

        let app = snapshot.application("staging", "shop").unwrap();
        let status = application_status(app, &snapshot, Ok(()), "t");
        let types: Vec<(&str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            types,
            [("Ready", "ServiceStalled"), ("Stalled", "ServiceStalled")]
        );
        assert!(status.conditions[1].message.contains("api (HostConflict"));

        let env = snapshot.environments[0].clone();
        let status = environment_status_observed(&env, &snapshot, Ok(()), Default::default(), "t");
        assert_eq!(status.conditions[1].reason, "ServiceStalled");

        // A change the controller has not looked at yet may fix it: not stalled.
        api.metadata.generation = Some(3);
        snapshot.services.retain(|s| s.name_any() != "api");
        snapshot.services.push(std::sync::Arc::new(api));
        let app = snapshot.application("staging", "shop").unwrap();
        let status = application_status(app, &snapshot, Ok(()), "t");
        assert_eq!(status.conditions[1].type_, "Reconciling");
    }

    #[test]
    fn a_deployment_whose_new_generation_is_not_observed_is_not_ready() {
        let stale = deployment(1, 1, 2, 1);
        assert!(!deployment_replicas(&stale).1);
    }

    #[test]
    fn an_unchanged_world_gives_an_identical_status() {
        let mut api = service("staging", "api", "shop");
        api.metadata.generation = Some(3);
        let done = deployment(1, 1, 1, 1);
        let observe = || ServiceObservation {
            outcome: Ok(applied()),
            deployment: Some(&done),
            dependencies: vec![],
            route: None,
        };
        let first = service_status(&api, observe(), "2026-01-01T00:00:00Z");
        api.status = Some(first.clone());
        let second = service_status(&api, observe(), "2026-01-01T09:00:00Z");
        assert_eq!(first, second);
    }

    #[test]
    fn a_new_image_bumps_the_revision_and_keeps_a_bounded_history() {
        let mut api = service("staging", "api", "shop");
        let done = deployment(1, 1, 1, 1);
        for version in 0..15 {
            api.spec.image = format!("ghcr.io/acme/api:{version}");
            let status = service_status(
                &api,
                ServiceObservation {
                    outcome: Ok(applied()),
                    deployment: Some(&done),
                    dependencies: vec![],
                    route: None,
                },
                &format!("2026-01-01T00:00:{version:02}Z"),
            );
            api.status = Some(status);
        }
        let status = api.status.unwrap();
        assert_eq!(status.revision, 15);
        assert_eq!(status.history.len(), HISTORY_LIMIT);
        assert_eq!(status.history[0].image, "ghcr.io/acme/api:14");
        assert_eq!(status.history[0].revision, 15);
    }

    #[test]
    fn a_stalled_service_says_why_and_keeps_its_revision() {
        let api = service("staging", "api", "shop");
        let error = Error::ApplicationNotFound {
            application: "shop".into(),
            namespace: "staging".into(),
        };
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Err(&error),
                deployment: None,
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:00:00Z",
        );
        let types: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            types,
            vec![
                ("Ready", "False", "ApplicationNotFound"),
                ("Stalled", "True", "ApplicationNotFound")
            ]
        );
        assert_eq!(status.revision, 0);
    }

    #[test]
    fn last_transition_time_moves_only_when_the_status_changes() {
        let previous = merge_conditions(&[], ready("Available", "ok"), Some(1), "t1");
        let same = merge_conditions(&previous, ready("Available", "still ok"), Some(2), "t2");
        assert_eq!(same[0].last_transition_time.as_deref(), Some("t1"));
        let changed = merge_conditions(&same, reconciling("RollingOut", "x"), Some(2), "t3");
        assert_eq!(changed[0].last_transition_time.as_deref(), Some("t3"));
    }

    fn route(generation: i64, parents: Vec<(&str, &str, &str, i64)>) -> HttpRoute {
        use crate::api::gateway_api::{HttpRouteSpec, HttpRouteStatus, RouteParentStatus};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
        let gateway = ParentReference {
            group: Some("gateway.networking.k8s.io".into()),
            kind: Some("Gateway".into()),
            namespace: Some("infra".into()),
            name: "shared".into(),
            section_name: None,
        };
        let mut route = HttpRoute::new(
            "web",
            HttpRouteSpec {
                parent_refs: vec![gateway.clone()],
                ..Default::default()
            },
        );
        route.metadata.namespace = Some("staging".into());
        route.metadata.generation = Some(generation);
        let conditions = parents
            .into_iter()
            .map(|(type_, status, reason, observed)| Condition {
                type_: type_.into(),
                status: status.into(),
                reason: reason.into(),
                message: format!("{reason} said the gateway.\nsecond line"),
                observed_generation: Some(observed),
                last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
            })
            .collect();
        route.status = Some(HttpRouteStatus {
            parents: vec![RouteParentStatus {
                // As a controller writes it back: group and kind left to their defaults.
                parent_ref: ParentReference {
                    group: None,
                    kind: None,
                    ..gateway
                },
                controller_name: "paved.dev/e2e-gateway".into(),
                conditions,
            }],
        });
        route
    }

    #[test]
    fn a_route_no_gateway_accepts_is_refused_with_the_gateways_own_words_on_one_line() {
        let refused = route(
            2,
            vec![
                ("Accepted", "False", "NotAllowedByListeners", 2),
                ("ResolvedRefs", "True", "ResolvedRefs", 2),
            ],
        );
        let RouteState::Refused(reason, message) = route_state(Some(&refused)) else {
            panic!("refused");
        };
        assert_eq!(reason, "RouteNotAccepted");
        assert!(message.contains("Gateway infra/shared: NotAllowedByListeners: NotAllowedByListeners said the gateway"), "{message}");
        assert!(!message.contains('\n'));
    }

    #[test]
    fn an_accepted_route_with_an_unresolved_backend_is_refused_and_an_accepted_one_is_not() {
        let unresolved = route(
            1,
            vec![
                ("Accepted", "True", "Accepted", 1),
                ("ResolvedRefs", "False", "BackendNotFound", 1),
            ],
        );
        assert!(matches!(
            route_state(Some(&unresolved)),
            RouteState::Refused("RouteRefsNotResolved", _)
        ));
        let accepted = route(
            1,
            vec![
                ("Accepted", "True", "Accepted", 1),
                ("ResolvedRefs", "True", "ResolvedRefs", 1),
            ],
        );
        assert_eq!(route_state(Some(&accepted)), RouteState::Accepted);
    }

    #[test]
    fn conditions_about_an_older_generation_of_the_route_count_as_no_answer_yet() {
        // Accepted for generation 1; the host moved (generation 2) and nobody answered yet.
        let stale = route(2, vec![("Accepted", "True", "Accepted", 1)]);
        assert!(matches!(route_state(Some(&stale)), RouteState::Pending(_)));
        assert!(matches!(route_state(None), RouteState::Pending(_)));
    }

    #[test]
    fn a_service_whose_route_is_refused_is_stalled_and_one_waiting_for_a_gateway_is_reconciling() {
        let mut api = service("staging", "api", "shop");
        api.metadata.generation = Some(1);
        let running = deployment(2, 2, 1, 1);
        let applied = AppliedService {
            route_expected: true,
            ..applied()
        };
        let refused = route(
            1,
            vec![("Accepted", "False", "NoMatchingListenerHostname", 1)],
        );
        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(applied.clone()),
                deployment: Some(&running),
                dependencies: vec![],
                route: Some(&refused),
            },
            "2026-01-01T00:00:00Z",
        );
        let ready = &status.conditions[0];
        assert_eq!(
            (ready.type_.as_str(), ready.status.as_str()),
            ("Ready", "False")
        );
        assert_eq!(ready.reason, "RouteNotAccepted");
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Stalled" && c.status == "True")
        );

        let status = service_status(
            &api,
            ServiceObservation {
                outcome: Ok(applied),
                deployment: Some(&running),
                dependencies: vec![],
                route: None,
            },
            "2026-01-01T00:00:00Z",
        );
        assert_eq!(status.conditions[0].reason, "WaitingForGateway");
        assert!(
            status
                .conditions
                .iter()
                .any(|c| c.type_ == "Reconciling" && c.status == "True")
        );
    }
}
