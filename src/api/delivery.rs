//! Delivery metrics as they appear in the status of all three kinds: counters
//! that run from `since` and move only on events (a new revision, a Stalled
//! revision, a rollback, a return to Ready), never because time passes, so an
//! unchanged Service is never rewritten for them. Rates over a window are the
//! reader's (or Prometheus') business. Computed by [`crate::delivery`].

use serde::{Deserialize, Serialize};

/// Deploys, change failures, time to restore and lead time of a Service, or
/// their roll-up over an Application's or Environment's Services.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// Since when every count runs (RFC 3339): the oldest revision Paved still
    /// kept when it started counting (the first revision of a new Service). In a
    /// roll-up, the earliest of its Services'.
    pub since: String,
    /// New revisions (image or configuration changed) since `since`.
    pub deploys: i64,
    /// When the latest revision was deployed (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_deploy_at: Option<String>,
    /// Revisions that went Stalled, or were rolled back (replaced by the image
    /// and configuration of an earlier revision); each revision counts once.
    pub failures: i64,
    /// `failures / deploys`, two decimals ("0.00" before any deploy).
    pub change_failure_rate: String,
    /// Failures restored: a Service that went Stalled and came back to Ready.
    #[serde(default)]
    pub restores: i64,
    /// Sum of the times to restore, in seconds: each from the Service leaving
    /// Ready (Ready's lastTransitionTime) to its return to Ready.
    #[serde(default)]
    pub time_to_restore_seconds_total: i64,
    /// `timeToRestoreSecondsTotal / restores`, rounded down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean_time_to_restore_seconds: Option<i64>,
    /// Time to restore of the latest restore (a roll-up: the longest latest one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_time_to_restore_seconds: Option<i64>,
    /// Deploys that carried a new `paved.dev/commit-time` annotation (RFC 3339):
    /// a revision under the commit time already counted (a rollback, a
    /// configuration change) has no lead time of its own.
    #[serde(default)]
    pub lead_times: i64,
    /// Sum of the lead times, in seconds: commit time to the new revision.
    #[serde(default)]
    pub lead_time_seconds_total: i64,
    /// Lead time of the latest deploy that carried a commit time (a roll-up: the
    /// longest latest one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_lead_time_seconds: Option<i64>,
    /// A Service's: the commit time whose lead time was counted last.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit_time: Option<String>,
    /// A Service's: the newest revision counted as a failure (each counts once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_failed_revision: Option<i64>,
    /// A Service's: while it is Stalled (or has not yet come back), when it
    /// left Ready. In a roll-up: the earliest over the Services still down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<String>,
}
