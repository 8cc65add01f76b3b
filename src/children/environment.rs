//! What every child of an Environment (other than its Namespace) shares:
//! its namespace, Paved's labels and a controller reference to the Environment.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::controller_reference;
use crate::api::Environment;
use crate::names::labels;

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
