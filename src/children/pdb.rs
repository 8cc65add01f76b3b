//! Service + production Environment → PodDisruptionBudget (policy/v1).
//!
//! In a `production` Environment every Service that may run more than one pod
//! gets a budget of `maxUnavailable: 1`: node drains and cluster upgrades evict
//! its pods one at a time, and a two-pod Service (the production default) stays
//! drainable (`minAvailable: 1` would do the same at two pods, but block every
//! drain of a Service someone scaled to one). Unhealthy pods may always be
//! evicted (`unhealthyPodEvictionPolicy: AlwaysAllow`), so a crash-looping pod
//! never pins a node. A Service explicitly at one pod (or zero) gets none: the
//! budget would protect nothing. Stopping the Environment keeps the budget
//! (nothing is deleted by a stop; with no pods it allows every eviction anyway).

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{child_metadata, selector_labels};
use crate::api::environment::EnvironmentType;
use crate::api::service::ServiceSpec;
use crate::resolve::ResolvedService;

/// The budget of a production Service, or `None` when it must not exist.
pub fn render_disruption_budget(resolved: &ResolvedService<'_>) -> Option<PodDisruptionBudget> {
    if resolved.environment.spec.type_ != EnvironmentType::Production
        || !may_run_several_pods(&resolved.service.spec)
    {
        return None;
    }
    Some(PodDisruptionBudget {
        metadata: child_metadata(resolved),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(resolved.service)),
                ..LabelSelector::default()
            }),
            unhealthy_pod_eviction_policy: Some("AlwaysAllow".into()),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    })
}

/// Unset replicas (production default 2), two or more, or an HPA that may go above one.
pub fn may_run_several_pods(spec: &ServiceSpec) -> bool {
    match (&spec.autoscaling, spec.replicas) {
        (Some(autoscaling), _) => autoscaling.max > 1,
        (None, Some(replicas)) => replicas > 1,
        (None, None) => true,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::api::service::Autoscaling;
    use crate::resolve::resolve_service;
    use crate::resolve::tests::shop;

    fn production() -> crate::resolve::Snapshot {
        let mut snapshot = shop();
        let mut environment = snapshot.environments[0].as_ref().clone();
        environment.spec.type_ = EnvironmentType::Production;
        snapshot.environments = vec![Arc::new(environment)];
        snapshot
    }

    #[test]
    fn a_production_service_gets_a_budget_of_one_unavailable_pod_owned_by_it() {
        let snapshot = production();
        let api = snapshot.service("staging", "api").unwrap();
        let budget = render_disruption_budget(&resolve_service(&snapshot, api).unwrap()).unwrap();
        let expected: serde_json::Value = serde_yaml::from_str(
            r#"
metadata:
  name: api
  namespace: staging
  labels: {app.kubernetes.io/managed-by: paved, paved.dev/service: api, paved.dev/environment: staging}
  annotations: {cortex.io/tag: api}
  ownerReferences: [{kind: Service, name: api, controller: true}]
spec:
  maxUnavailable: 1
  selector: {matchLabels: {paved.dev/service: api}}
  unhealthyPodEvictionPolicy: AlwaysAllow
"#,
        )
        .unwrap();
        let actual = serde_json::to_value(&budget).unwrap();
        assert!(
            crate::reconcile::converge::is_subset(&expected, &actual),
            "{}",
            serde_yaml::to_string(&actual).unwrap()
        );
    }

    #[test]
    fn no_budget_outside_production_or_for_a_service_that_runs_one_pod() {
        let staging = shop();
        let api = staging.service("staging", "api").unwrap();
        assert!(render_disruption_budget(&resolve_service(&staging, api).unwrap()).is_none());

        let snapshot = production();
        let mut api = snapshot.service("staging", "api").unwrap().clone();
        let budget = |api: &crate::api::Service| {
            render_disruption_budget(&resolve_service(&snapshot, api).unwrap()).is_some()
        };
        api.spec.replicas = Some(1);
        assert!(!budget(&api));
        api.spec.replicas = Some(3);
        assert!(budget(&api));
        api.spec.replicas = None;
        api.spec.autoscaling = Some(Autoscaling {
            min: 1,
            max: 1,
            cpu_utilization: None,
        });
        assert!(!budget(&api));
        api.spec.autoscaling.as_mut().unwrap().max = 5;
        assert!(budget(&api));
    }
}
