//! Per-object exponential backoff for writes the API server refused.
//!
//! A refused write (HTTP 400, 403, 422) is `Stalled`, but its cause may lie in
//! another object (a quota, a policy, an admission webhook), so Paved tries
//! again: after 5 s, then doubling up to 5 min. A success, or a new
//! `metadata.generation` (the user changed the spec), starts again from 5 s.
//!
//! The backoff counts time, not reconciles: a refusal that comes before the
//! announced wait has (nearly) passed (the object was woken early by a watch
//! event, a re-check or a resync) keeps the wait as it is, so how often an
//! object happens to be woken never inflates its backoff.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The first wait after a refused write.
pub const FIRST: Duration = Duration::from_secs(5);
/// The longest wait.
pub const MAX: Duration = Duration::from_secs(300);

/// Where one object stands in its backoff.
#[derive(Debug, Clone, Copy)]
struct Entry {
    generation: Option<i64>,
    /// Refusals counted so far (the exponent of the next wait).
    counted: u32,
    /// The wait announced by the last counted refusal, and when it was counted.
    wait: Duration,
    since: Instant,
}

/// Refusals per object (by UID), and the generation they were at.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, Entry>>,
}

fn nth_wait(counted: u32) -> Duration {
    FIRST
        .checked_mul(1u32 << counted.min(16))
        .unwrap_or(MAX)
        .min(MAX)
}

impl Backoff {
    /// One more refusal of `uid` at `generation`: how long to wait before the next try.
    pub fn failed(&self, uid: &str, generation: Option<i64>) -> Duration {
        self.failed_at(uid, generation, Instant::now())
    }

    fn failed_at(&self, uid: &str, generation: Option<i64>, now: Instant) -> Duration {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let entry = failures.entry(uid.to_string()).or_insert(Entry {
            generation,
            counted: 0,
            wait: Duration::ZERO,
            since: now,
        });
        if entry.generation != generation {
            *entry = Entry {
                generation,
                counted: 0,
                wait: Duration::ZERO,
                since: now,
            };
        }
        // Woken before 90 % of the announced wait: not the retry itself.
        let elapsed = now.saturating_duration_since(entry.since);
        if entry.counted > 0 && elapsed < entry.wait.mul_f64(0.9) {
            return entry.wait;
        }
        let wait = nth_wait(entry.counted);
        entry.counted = entry.counted.saturating_add(1);
        entry.wait = wait;
        entry.since = now;
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

    /// Refusals of `uid`, each once its announced wait has passed.
    fn retried(backoff: &Backoff, uid: &str, generation: Option<i64>, times: usize) -> Vec<u64> {
        let mut now = Instant::now();
        (0..times)
            .map(|_| {
                let wait = backoff.failed_at(uid, generation, now);
                now += wait;
                wait.as_secs()
            })
            .collect()
    }

    #[test]
    fn waits_double_from_five_seconds_up_to_five_minutes() {
        let backoff = Backoff::default();
        assert_eq!(
            retried(&backoff, "a", Some(1), 9),
            vec![5, 10, 20, 40, 80, 160, 300, 300, 300]
        );
        // Other objects have their own count.
        assert_eq!(backoff.failed("b", Some(1)).as_secs(), 5);
    }

    #[test]
    fn refusals_while_the_wait_runs_do_not_make_it_longer() {
        let backoff = Backoff::default();
        let start = Instant::now();
        assert_eq!(backoff.failed_at("a", Some(1), start).as_secs(), 5);
        // Woken every second by other events: the wait stays 5 s.
        for s in 1..4 {
            let wait = backoff.failed_at("a", Some(1), start + Duration::from_secs(s));
            assert_eq!(wait.as_secs(), 5, "after {s} s");
        }
        // The retry itself, a little early, counts.
        let retry = start + Duration::from_millis(4600);
        assert_eq!(backoff.failed_at("a", Some(1), retry).as_secs(), 10);
        assert_eq!(
            backoff
                .failed_at("a", Some(1), retry + Duration::from_secs(3))
                .as_secs(),
            10
        );
        assert_eq!(
            backoff
                .failed_at("a", Some(1), retry + Duration::from_secs(10))
                .as_secs(),
            20
        );
    }

    #[test]
    fn a_success_or_a_spec_change_starts_again() {
        let backoff = Backoff::default();
        retried(&backoff, "a", Some(1), 2);
        backoff.succeeded("a");
        assert_eq!(retried(&backoff, "a", Some(1), 2), vec![5, 10]);
        assert_eq!(backoff.failed("a", Some(2)).as_secs(), 5);
    }

    #[test]
    fn a_thousand_failures_neither_overflow_nor_exceed_the_maximum() {
        let backoff = Backoff::default();
        let waits = retried(&backoff, "a", None, 1000);
        assert!(waits.iter().all(|w| Duration::from_secs(*w) <= MAX));
        assert_eq!(waits.last(), Some(&MAX.as_secs()));
    }
}
