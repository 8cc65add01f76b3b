//! Real usage as it appears in the status of all three kinds: what the pods
//! use, read from `metrics.k8s.io` (what `kubectl top` reads), next to what
//! they request. Computed by [`crate::usage`]; refreshed only when a figure
//! moves by a step, so a figure may lag the cluster by less than that step.

use serde::{Deserialize, Serialize};

/// What the pods use, as of `sampledAt`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// Whether the cluster serves `metrics.k8s.io` (a metrics-server). When
    /// false there are no figures and `reason` says why; nothing else is affected.
    pub available: bool,
    /// Why there are no figures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Pods measured.
    #[serde(default)]
    pub pods: i32,
    /// CPU, in millicores (`250m` is a quarter of a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<ResourceUsage>,
    /// Memory (working set), in MiB (`Mi`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<ResourceUsage>,
    /// A Service's: since when every pod has used at most the idle CPU threshold
    /// (RFC 3339), as of `sampledAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_since: Option<String>,
    /// When the figures were sampled (RFC 3339). Figures are rewritten only when
    /// one moves by a step (10 %, and at least 5m CPU or 4Mi memory), or an
    /// insight starts or ends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sampled_at: Option<String>,
}

/// One resource's use against requests, limits and (an Environment's) quota.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceUsage {
    /// Used, all pods together.
    pub used: String,
    /// A Service's busiest pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_pod: Option<String>,
    /// Requested by the pods measured (each pod's request, as Kubernetes
    /// settles it, times the pods).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested: Option<String>,
    /// The limit of the pods measured, together; absent when a pod has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
    /// `used` in percent of `requested`, rounded down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_of_requested: Option<i32>,
    /// An Environment's quota (`requests.cpu` / `requests.memory` of its
    /// ResourceQuota), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<String>,
    /// `used` in percent of `quota`, rounded down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent_of_quota: Option<i32>,
    /// A Service's: since when its busiest pod has used less than the
    /// over-provisioned threshold of its request (RFC 3339), as of `sampledAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_since: Option<String>,
    /// The most a pod used since `lowSince`: what a suggested request is made from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low_peak_pod: Option<String>,
}
