//! Per-object exponential backoff for writes the API server refused.
//!
//! A refused write (HTTP 400, 403, 422) is `Stalled`, but its cause may lie in
//! another object (a quota, a policy, an admission webhook), so Paved tries
//! again: after 5 s, then doubling up to 5 min. A success, or a new
//! `metadata.generation` (the user changed the spec), starts again from 5 s.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The first wait after a refused write.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(300);

/// Failures in a row per object (by UID), and the generation they were at.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, (Option<i64>, u32)>>,
}

impl Backoff {
    /// One more refusal of `uid` at `generation`: how long to wait before the next try.
    pub fn failed(&self, uid: &str, generation: Option<i64>) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(uid.to_string()).or_insert((generation, 0));
        if entry.0 != generation {
            *entry = (generation, 0);
        }
        let wait = FIRST
            .checked_mul(1u32 << entry.1.min(16))
            .unwrap_or(MAX)
            .min(MAX);
        entry.1 = entry.1.saturating_add(1);
        wait
    }

    /// `uid` reconciled without a refusal: start again from [`FIRST`] next time.
    pub fn succeeded(&self, uid: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        failures.remove(uid);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_five_seconds_up_to_five_minutes() {
        let backoff = Backoff::default();
        let waits: Vec<u64> = (0..9)
            .map(|_| backoff.failed("a", Some(1)).as_secs())
            .collect();
        assert_eq!(waits, vec![5, 10, 20, 40, 80, 160, 300, 300, 300]);
        // Other objects have their own count.
        assert_eq!(backoff.failed("b", Some(1)).as_secs(), 5);
    }

    #[test]
    fn a_success_or_a_spec_change_starts_again() {
        let backoff = Backoff::default();
        backoff.failed("a", Some(1));
        backoff.failed("a", Some(1));
        backoff.succeeded("a");
        assert_eq!(backoff.failed("a", Some(1)).as_secs(), 5);
        assert_eq!(backoff.failed("a", Some(1)).as_secs(), 10);
        assert_eq!(backoff.failed("a", Some(2)).as_secs(), 5);
    }

    #[test]
    fn a_thousand_failures_neither_overflow_nor_exceed_the_maximum() {
        let backoff = Backoff::default();
        for _ in 0..1000 {
            assert!(backoff.failed("a", None) <= MAX);
        }
    }
}
