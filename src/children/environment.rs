//! The children of an Environment inside its namespace (access and guardrails),
//! and what they share: the namespace, Paved's labels and a controller reference
//! to the Environment.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::controller_reference;
use super::guardrails::{
    DEFAULTS_NAME, ISOLATION_NAME, QUOTA_NAME, render_limit_range, render_network_policy,
    render_resource_quota,
};
use super::tenancy::{ACCESS_ROLES, access_role_name, render_role_binding};
use crate::api::Environment;
use crate::names::labels;

/// One child at a fixed name: `None` means "must not exist".
#[derive(Clone, Debug, PartialEq)]
pub struct Named<K> {
    pub name: String,
    pub object: Option<K>,
}

impl<K> Named<K> {
    fn new(name: &str, object: Option<K>) -> Self {
        Named {
            name: name.to_string(),
            object,
        }
    }
}

/// Every child of one Environment in its namespace (the Namespace itself aside).
#[derive(Clone, Debug, PartialEq)]
pub struct EnvironmentChildren {
    /// One per access role (`paved-developer`, `paved-viewer`).
    pub role_bindings: Vec<Named<RoleBinding>>,
    pub resource_quota: Named<ResourceQuota>,
    pub limit_range: Named<LimitRange>,
    pub network_policy: Named<NetworkPolicy>,
}

/// Build every child of an Environment in its namespace.
pub fn render_environment_children(
    environment: &Environment,
    ingress_namespace_labels: &BTreeMap<String, String>,
) -> EnvironmentChildren {
    EnvironmentChildren {
        role_bindings: ACCESS_ROLES
            .into_iter()
            .map(|role| {
                Named::new(
                    &access_role_name(role),
                    render_role_binding(environment, role),
                )
            })
            .collect(),
        resource_quota: Named::new(QUOTA_NAME, render_resource_quota(environment)),
        limit_range: Named::new(DEFAULTS_NAME, render_limit_range(environment)),
        network_policy: Named::new(
            ISOLATION_NAME,
            render_network_policy(environment, ingress_namespace_labels),
        ),
    }
}

/// Metadata of a child of an Environment, in its namespace and controlled by
/// it; the caller sets the name.
pub fn environment_child_metadata(environment: &Environment) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(environment.namespace_name()),
        labels: Some(environment_child_labels(environment)),
        owner_references: controller_reference(environment).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// `app.kubernetes.io/managed-by=paved`, `paved.dev/environment=<name>`.
pub fn environment_child_labels(environment: &Environment) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_PAVED.to_string(),
        ),
        (labels::ENVIRONMENT.to_string(), environment.name_any()),
    ])
}
