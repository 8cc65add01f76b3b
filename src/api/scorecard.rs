//! The paved-path scorecard as it appears in the status of all three kinds:
//! a score, counts per level and the insights (what to change), bounded.
//! The rules that produce it live in [`crate::insights`].

use serde::{Deserialize, Serialize};

use super::shared_text::SharedText;

/// How much an insight matters.
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum InsightLevel {
    /// A better practice; worth doing when convenient.
    Info,
    /// A practice the platform expects; fix it soon.
    Warning,
    /// Risks an outage or an unknown deploy; a CI job can fail on it (`paved lint`).
    Critical,
}

impl InsightLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            InsightLevel::Info => "info",
            InsightLevel::Warning => "warning",
            InsightLevel::Critical => "critical",
        }
    }
}

/// One finding: which rule, how much it matters and what to change.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Insight {
    /// Rule id, e.g. `image-pinned` (the README lists every rule).
    #[schemars(with = "String")]
    pub rule: SharedText,
    /// info, warning or critical.
    pub level: InsightLevel,
    /// What to change, in one line.
    #[schemars(with = "String")]
    pub message: SharedText,
    /// The Application it is about, in an Environment's scorecard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub application: Option<String>,
    /// The Service it is about, in an Application's or Environment's scorecard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// The paved-path scorecard of a Service, Application or Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Scorecard {
    /// 0-100: the weight of the rules passed out of the weight of the rules that
    /// apply (critical 5, warning 3, info 1), rounded down. Rolled up over every
    /// Service (and Application) below.
    pub score: i32,
    /// Critical insights, all of them (also those left out of `insights`).
    #[serde(default)]
    pub critical: i32,
    /// Warning insights.
    #[serde(default)]
    pub warning: i32,
    /// Info insights.
    #[serde(default)]
    pub info: i32,
    /// The insights, most severe first (at most 20).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub insights: Vec<Insight>,
    /// How many insights were left out of `insights` to keep status small.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub omitted: i32,
}

fn is_zero(n: &i32) -> bool {
    *n == 0
}
