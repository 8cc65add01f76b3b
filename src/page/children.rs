//! A Service's children as one line each on its page: what a person checks
//! first (ready pods, the host, the autoscaler's range). Pure: objects in.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service as CoreService;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::ResourceExt;

use super::ChildState;
use crate::api::gateway_api::HttpRoute;

pub fn deployment(deployment: &Deployment) -> ChildState {
    let status = deployment.status.clone().unwrap_or_default();
    let wanted = deployment
        .spec
        .as_ref()
        .and_then(|s| s.replicas)
        .unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    let stuck = status.conditions.unwrap_or_default().into_iter().find(|c| {
        c.status == "False"
            && (c.type_ == "Progressing" || c.type_ == "ReplicaFailure" || c.type_ == "Available")
    });
    let mut state = format!(
        "{ready}/{wanted} ready, {} updated",
        status.updated_replicas.unwrap_or(0)
    );
    if let Some(condition) = &stuck {
        state.push_str(&format!(
            "; {}: {}",
            condition.reason.as_deref().unwrap_or(&condition.type_),
            condition.message.as_deref().unwrap_or("")
        ));
    }
    ChildState {
        kind: "Deployment",
        name: deployment.name_any(),
        state,
        healthy: ready >= wanted && stuck.is_none(),
    }
}

pub fn core_service(service: &CoreService) -> ChildState {
    let spec = service.spec.clone().unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| p.port.to_string())
        .collect();
    ChildState {
        kind: "Service",
        name: service.name_any(),
        state: format!(
            "{} {} port {}",
            spec.type_.as_deref().unwrap_or("ClusterIP"),
            spec.cluster_ip.as_deref().unwrap_or("-"),
            ports.join(", ")
        ),
        healthy: true,
    }
}

pub fn ingress(ingress: &Ingress) -> ChildState {
    let hosts: Vec<String> = ingress
        .spec
        .as_ref()
        .and_then(|s| s.rules.as_ref())
        .map(|rules| rules.iter().filter_map(|r| r.host.clone()).collect())
        .unwrap_or_default();
    ChildState {
        kind: "Ingress",
        name: ingress.name_any(),
        state: format!("host {}", hosts.join(", ")),
        healthy: true,
    }
}

/// Hosts, and whether every Gateway accepted the route (the first refusal's reason otherwise).
pub fn http_route(route: &HttpRoute) -> ChildState {
    let parents = route
        .status
        .as_ref()
        .map(|s| s.parents.as_slice())
        .unwrap_or_default();
    let refusal = parents.iter().find_map(|p| {
        p.conditions
            .iter()
            .find(|c| c.status != "True" && (c.type_ == "Accepted" || c.type_ == "ResolvedRefs"))
            .map(|c| format!("{} by {}: {}", c.reason, p.parent_ref.name, c.message))
    });
    let verdict = match (&refusal, parents.is_empty()) {
        (Some(refusal), _) => refusal.clone(),
        (None, true) => "no Gateway has reported on it yet".to_string(),
        (None, false) => "accepted".to_string(),
    };
    ChildState {
        kind: "HTTPRoute",
        name: route.name_any(),
        state: format!("host {}; {verdict}", route.spec.hostnames.join(", ")),
        healthy: refusal.is_none() && !parents.is_empty(),
    }
}

pub fn autoscaler(hpa: &HorizontalPodAutoscaler) -> ChildState {
    let spec = hpa.spec.clone().unwrap_or_default();
    let current = hpa
        .status
        .as_ref()
        .and_then(|s| s.current_replicas)
        .unwrap_or(0);
    ChildState {
        kind: "HorizontalPodAutoscaler",
        name: hpa.name_any(),
        state: format!(
            "{}..{} replicas, {current} now",
            spec.min_replicas.unwrap_or(1),
            spec.max_replicas
        ),
        healthy: true,
    }
}

pub fn disruption_budget(pdb: &PodDisruptionBudget) -> ChildState {
    let status = pdb.status.clone().unwrap_or_default();
    ChildState {
        kind: "PodDisruptionBudget",
        name: pdb.name_any(),
        state: format!(
            "{} of {} healthy, {} disruptions allowed",
            status.current_healthy, status.expected_pods, status.disruptions_allowed
        ),
        healthy: status.current_healthy >= status.desired_healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deployment_that_cannot_progress_shows_why_and_is_unhealthy() {
        let deployment: Deployment = serde_yaml::from_str(
            "metadata: {name: api}\nspec: {replicas: 2, selector: {}, template: {}}\n\
             status: {readyReplicas: 1, updatedReplicas: 2, conditions: [{type: Progressing, status: 'False', \
             reason: ProgressDeadlineExceeded, message: 'ReplicaSet \"api-1\" has timed out progressing.'}]}",
        )
        .unwrap();
        let child = deployment_state(&deployment);
        assert!(!child.healthy);
        assert!(
            child
                .state
                .starts_with("1/2 ready, 2 updated; ProgressDeadlineExceeded"),
            "{}",
            child.state
        );
    }

    fn deployment_state(d: &Deployment) -> ChildState {
        deployment(d)
    }
}
