//! The reconcilers: thin pipelines over the pure modules.
//!
//! ```text
//! resolve (plan) → validate (plan) → build (build) → apply (apply) → status (status)
//! ```
//!
//! Each reconciler reads what it needs from the reflector stores in [`Context`]
//! (no list calls), applies children with server-side apply as `paved`, and
//! writes status only when it differs from what is already there.

pub mod application;
pub mod apply;
pub mod environment;
pub mod preview;
pub mod service;

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Client, Resource, ResourceExt};

use crate::api::{Application, Condition, Environment, Service};
use crate::names::{actions, annotations, conditions, reasons};
use crate::plan::Snapshot;
use crate::runtime::metrics::Metrics;

/// Reflector stores: Paved's in-memory view of the cluster.
#[derive(Clone)]
pub struct Stores {
    pub environments: Store<Environment>,
    pub applications: Store<Application>,
    pub services: Store<Service>,
    /// Namespaces labelled `paved.dev/environment`.
    pub namespaces: Store<Namespace>,
    /// Children, labelled `app.kubernetes.io/managed-by=paved`.
    pub deployments: Store<Deployment>,
    pub core_services: Store<CoreService>,
    pub ingresses: Store<Ingress>,
    pub autoscalers: Store<HorizontalPodAutoscaler>,
    pub disruption_budgets: Store<PodDisruptionBudget>,
    /// Children of Environments (access and guardrails), same label.
    pub role_bindings: Store<RoleBinding>,
    pub resource_quotas: Store<ResourceQuota>,
    pub limit_ranges: Store<LimitRange>,
    pub network_policies: Store<NetworkPolicy>,
}

impl Stores {
    /// Wait until every store has its initial list, so a reconcile never mistakes
    /// "not loaded yet" for "does not exist".
    pub async fn wait_until_ready(&self) {
        let _ = futures::join!(
            self.environments.wait_until_ready(),
            self.applications.wait_until_ready(),
            self.services.wait_until_ready(),
            self.namespaces.wait_until_ready(),
            self.deployments.wait_until_ready(),
            self.core_services.wait_until_ready(),
            self.ingresses.wait_until_ready(),
            self.autoscalers.wait_until_ready(),
            self.disruption_budgets.wait_until_ready(),
            self.role_bindings.wait_until_ready(),
            self.resource_quotas.wait_until_ready(),
            self.limit_ranges.wait_until_ready(),
            self.network_policies.wait_until_ready(),
        );
    }

    /// Whether `namespace` is being deleted (its Environment is going away):
    /// nothing inside it is worth reconciling or reporting any more.
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&kube::runtime::reflector::ObjectRef::new(namespace))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }

    /// The current [`Snapshot`]; a namespace counts as owned only when it carries
    /// the UID mark of an existing Environment that names it.
    pub fn snapshot(&self) -> Snapshot {
        let environments = self.environments.state();
        let owned_namespaces: BTreeMap<String, String> = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter_map(|ns| {
                let mark = ns.annotations().get(annotations::CREATED_BY_ENVIRONMENT)?;
                let env = environments.iter().find(|e| {
                    e.metadata.uid.as_ref() == Some(mark) && e.namespace_name() == ns.name_any()
                })?;
                Some((ns.name_any(), env.name_any()))
            })
            .collect();
        Snapshot {
            environments,
            applications: self.applications.state(),
            services: self.services.state(),
            owned_namespaces,
        }
    }
}

/// Shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub stores: Stores,
    /// Labels of the ingress controller's namespace, allowed in by an
    /// Environment's `networkIsolation` NetworkPolicy.
    pub ingress_namespace_labels: BTreeMap<String, String>,
}

/// Current time as RFC 3339, second precision; only written when a value changes.
pub fn now() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
        .to_string()
}

/// Publish an Event when something goes wrong (Ready turns False for a reason that
/// is not routine progress) and when it recovers from that. Routine progress
/// (rolling out, then available) is visible in status and costs no Event write.
pub async fn publish_on_transition<K>(
    ctx: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let ready = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == conditions::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let Some(current) = after.iter().find(|c| c.type_ == conditions::READY) else {
        return;
    };
    if ready(before) == ready(after) {
        return;
    }
    let is_problem = |status: &str, reason: &str| status == "False" && !is_progress(reason);
    let was_problem = ready(before).is_some_and(|(status, reason)| is_problem(&status, &reason));
    let stalled = after.iter().any(|c| c.type_ == conditions::STALLED);
    let type_ = if is_problem(&current.status, &current.reason) {
        EventType::Warning
    } else if was_problem {
        EventType::Normal
    } else {
        return;
    };
    let event = Event {
        type_,
        reason: current.reason.clone(),
        note: Some(truncate(&current.message, 1000)),
        action: if stalled {
            actions::VALIDATE
        } else {
            actions::RECONCILE
        }
        .into(),
        secondary: None,
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}

/// Reasons that mean "work in flight", not "something is wrong".
fn is_progress(reason: &str) -> bool {
    matches!(
        reason,
        reasons::ROLLING_OUT
            | reasons::PROVISIONING
            | reasons::SERVICES_NOT_READY
            | reasons::STOPPING
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}
