//! The three custom resources of `paved.dev/v1alpha1`, one file per kind, plus the
//! pieces they share (environment variables, conditions), and the one foreign kind
//! Paved writes that k8s-openapi lacks ([`gateway_api::HttpRoute`]).
//!
//! Types, schema attributes, printer columns and CEL rules only: no I/O here.
//! Everything the apiserver can reject by itself is declared on these types, so
//! bad input fails at `kubectl apply` rather than in the controller.

pub mod application;
pub mod cost;
pub mod delivery;
pub mod environment;
pub mod gateway_api;
pub mod scorecard;
pub mod service;
pub mod shared_text;
pub mod usage;

pub use application::{Application, ApplicationSpec, ApplicationStatus};
pub use environment::{AccessRole, Environment, EnvironmentSpec, EnvironmentStatus};
pub use service::{Service, ServiceSpec, ServiceStatus};

use kube::KubeSchema;

use serde::{Deserialize, Serialize};

/// Regex of an RFC 1123 DNS label: lowercase alphanumerics and '-', starting and ending alphanumeric.
pub const DNS_LABEL_PATTERN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
/// Regex of an RFC 1123 DNS subdomain: dot-separated DNS labels.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// An environment variable for the Service's containers.
///
/// Exactly one of `value` or `valueFrom` is used; a variable with neither is set to "".
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.value) && has(self.valueFrom))").message("set either value or valueFrom, not both"))]
pub struct EnvVar {
    /// Name of the variable, a C identifier such as `LOG_LEVEL`.
    #[schemars(
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Literal value of the variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Read the value from a key of a Secret or ConfigMap in the same namespace.
    /// A change of the referenced data rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_from: Option<EnvVarSource>,
}

/// Where an environment variable's value comes from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretKeyRef) != has(self.configMapKeyRef)").message("set exactly one of secretKeyRef or configMapKeyRef"))]
pub struct EnvVarSource {
    /// A key of a Secret in the Service's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_ref: Option<KeyRef>,
    /// A key of a ConfigMap in the Service's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_map_key_ref: Option<KeyRef>,
}

/// A key inside a named Secret or ConfigMap.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct KeyRef {
    /// Name of the Secret or ConfigMap.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(max = 253)
    )]
    pub name: String,
    /// Key inside its data.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
    /// When true, a missing Secret/ConfigMap or key is not an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optional: Option<bool>,
}

/// A condition following the Kubernetes API conventions and kstatus.
///
/// `Ready` is always present; `Reconciling` and `Stalled` are present only while true.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Ready, Reconciling or Stalled.
    #[serde(rename = "type")]
    pub type_: String,
    /// "True", "False" or "Unknown".
    pub status: String,
    /// CamelCase reason, stable enough to alert on.
    pub reason: String,
    /// What happened and, when something is wrong, what to change.
    #[serde(default)]
    pub message: String,
    /// When the status last changed (RFC 3339). It does not move while the status stays the same.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_transition_time: Option<String>,
    /// The metadata.generation this condition was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
