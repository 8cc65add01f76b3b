//! `Application` (namespaced): the catalog's "system". It groups Services, carries
//! ownership, and shares environment variables with all its Services. It has no
//! children; its status is the application's page in a portal.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, EnvVar};

/// An Application groups Services and carries ownership.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Application",
    plural = "applications",
    namespaced,
    shortname = "papp",
    category = "paved",
    status = "ApplicationStatus",
    derive = "PartialEq",
    doc = "An Application groups the Services of one system in an Environment's namespace and carries its ownership; its status aggregates them.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Services", type_ = "string", json_path = ".status.ready"),
    printcolumn(name = "Owner", type_ = "string", json_path = ".spec.owner"),
    printcolumn(name = "Lifecycle", type_ = "string", json_path = ".spec.lifecycle"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')").message("Application names are used as label values: lowercase letters, digits and '-', at most 63 characters"),
)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSpec {
    /// Team or person that owns the application (a Backstage group or user).
    #[schemars(length(min = 1, max = 253))]
    pub owner: String,
    /// One line saying what the application does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Lifecycle stage: experimental, production or deprecated.
    #[serde(default)]
    pub lifecycle: Lifecycle,
    /// Links shown in portals (repository, runbook, dashboard, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub links: Vec<Link>,
    /// Environment variables shared by all Services of the application. A Service's
    /// own variable of the same name wins.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,
}

/// Lifecycle stage of an Application, as in the Backstage catalog.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    #[default]
    Experimental,
    Production,
    Deprecated,
}

impl Lifecycle {
    pub fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Experimental => "experimental",
            Lifecycle::Production => "production",
            Lifecycle::Deprecated => "deprecated",
        }
    }
}

/// A titled link.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Link {
    /// Text of the link.
    #[schemars(length(min = 1, max = 128))]
    pub title: String,
    /// An http(s) URL.
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub url: String,
}

/// Observed state of an Application: its Services, their readiness and dependencies.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationStatus {
    /// The metadata.generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Owner, copied from spec for portals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Lifecycle, copied from spec for portals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<String>,
    /// The Services of this Application, sorted by name.
    #[serde(default)]
    pub services: Vec<ServiceSummary>,
    /// Ready Services out of all Services, as "n/m".
    #[serde(default)]
    pub ready: String,
    /// Dependency graph: for each Service, the Services it depends on.
    #[serde(default)]
    pub depends_on: BTreeMap<String, Vec<String>>,
    /// The paved-path scorecard: the Application's own rules and its Services'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<super::scorecard::Scorecard>,
    /// CPU and memory its Services' pods use, summed, next to their requests and limits, from metrics.k8s.io (what `kubectl top` reads); `available: false`
    /// and a reason when the cluster serves no metrics (README: "Usage").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::usage::Usage>,
    /// Monthly cost estimate from requests (and from usage), when an admin set prices (README: "Cost").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::CostEstimate>,
    /// Delivery metrics: deploys, change failures, time to restore, lead time,
    /// counted from `since` (README: "Delivery metrics").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<super::delivery::Delivery>,
}

/// A Service as seen from its Application.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSummary {
    /// Service name.
    pub name: String,
    /// Whether the Service is Ready.
    pub ready: bool,
    /// Image it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Public URL, when exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}
