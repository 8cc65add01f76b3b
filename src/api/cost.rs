//! The cost estimate as it appears in the status of all three kinds. Computed
//! by [`crate::cost`] from requests (and from usage, when the cluster serves
//! metrics) and the prices an admin sets; absent when no price is set.

use serde::{Deserialize, Serialize};

/// A monthly estimate (730 hours) from what the pods request, at the admin's
/// prices. An estimate: requests are not usage, and autoscaled Services are
/// counted at their minimum.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CostEstimate {
    /// Currency (or unit) of the prices, e.g. USD.
    pub currency: String,
    /// Per month as declared (running): pods × (CPU cores requested × price per
    /// CPU-hour + GiB of memory requested × price per GiB-hour) × 730, two decimals.
    pub monthly_requested: String,
    /// Per month right now: 0 while stopped, else `monthlyRequested`.
    pub monthly: String,
    /// While stopped: what stopping saves per month (= `monthlyRequested`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saved_by_stopping: Option<String>,
    /// CPU cores requested, as declared (all pods).
    pub cpu: String,
    /// GiB of memory requested, as declared (all pods).
    pub memory_gib: String,
    /// Per month from usage: (CPU cores used × price per CPU-hour + GiB used ×
    /// price per GiB-hour) × 730, from `status.usage` (what the pods use now,
    /// read from metrics.k8s.io); absent without metrics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly_from_usage: Option<String>,
    /// CPU cores used now (all pods), the basis of `monthlyFromUsage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_used: Option<String>,
    /// GiB of memory used now (all pods), the basis of `monthlyFromUsage`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gib_used: Option<String>,
}
