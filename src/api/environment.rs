//! `Environment` (cluster-scoped): a place where applications run — a namespace,
//! a domain under which Services are exposed, and ingress settings.

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::Condition;

/// An Environment owns one Namespace; Applications and Services live inside it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Environment",
    plural = "environments",
    shortname = "penv",
    category = "paved",
    status = "EnvironmentStatus",
    derive = "PartialEq",
    doc = "An Environment (development, staging, production, preview) owns one Namespace; Applications and Services are declared inside it.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Services", type_ = "string", json_path = ".status.services.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("has(self.spec.__namespace__) || (size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("the Environment name is used as its namespace: make it a DNS label (lowercase letters, digits and '-', at most 63 characters) or set spec.namespace"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__)").message("spec.namespace is immutable: it cannot be added or removed after creation"))]
pub struct EnvironmentSpec {
    /// Kind of environment: development, staging, production or preview.
    #[serde(default, rename = "type")]
    pub type_: EnvironmentType,
    /// Namespace this Environment owns. Defaults to the Environment's name. Immutable.
    /// Paved creates it and never adopts a namespace that already exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.namespace is immutable"))]
    pub namespace: Option<String>,
    /// DNS domain of the environment, e.g. staging.example.com. Every exposed host
    /// must be this domain or a name under it; `expose: {}` picks `<service>.<domain>`.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub domain: String,
    /// How Services of this environment are exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSettings>,
}

/// Kind of an Environment.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentType {
    #[default]
    Development,
    Staging,
    Production,
    Preview,
}

impl EnvironmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentType::Development => "development",
            EnvironmentType::Staging => "staging",
            EnvironmentType::Production => "production",
            EnvironmentType::Preview => "preview",
        }
    }
}

/// Ingress settings applied to every exposed Service of the environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSettings {
    /// IngressClass of the generated Ingresses, e.g. nginx. Unset: the cluster's default class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub class_name: Option<String>,
    /// Serve exposed hosts over TLS with a certificate from cert-manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// TLS through cert-manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// cert-manager ClusterIssuer that signs the certificates (annotation `cert-manager.io/cluster-issuer`).
    #[schemars(length(min = 1, max = 253))]
    pub cluster_issuer: String,
}

/// Observed state of an Environment: its namespace and a summary of what runs in it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// The metadata.generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Namespace owned by this Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kind of environment, copied from spec for portals.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Applications in the environment and whether all their Services are ready.
    #[serde(default)]
    pub applications: Vec<ApplicationSummary>,
    /// How many Services run in the environment and how many are ready.
    #[serde(default)]
    pub services: ServiceCounts,
    /// URLs of the exposed Services, sorted.
    #[serde(default)]
    pub urls: Vec<String>,
}

/// An Application as seen from its Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSummary {
    /// Application name.
    pub name: String,
    /// True when every Service of the Application is ready.
    pub ready: bool,
}

/// Service counts of an Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCounts {
    /// Number of Services in the environment.
    pub total: i32,
    /// Number of ready Services.
    pub ready: i32,
    /// "ready/total", for printer columns.
    #[serde(default)]
    pub summary: String,
}

impl Environment {
    /// The namespace this Environment owns: `spec.namespace`, or its name.
    pub fn namespace_name(&self) -> String {
        self.spec
            .namespace
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}
