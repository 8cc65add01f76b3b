//! An Environment's lifecycle as pure functions of the object and a clock
//! reading: when it expires (`spec.lifecycle.ttl`), whether it is stopped
//! (`spec.lifecycle.stopped` or inside a stopped window of
//! `spec.lifecycle.schedule`), and when that flips next.
//!
//! Everything is computed from the object (creationTimestamp, spec) and `now`,
//! never from memory, so a restarted controller reaches the same answer.

use std::str::FromStr;

use croner::Cron;
use croner::parser::{CronParser, Seconds};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::api::Environment;
use crate::api::environment::StopSchedule;

/// The lifecycle part of an Environment's status.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LifecycleState {
    /// creationTimestamp + ttl, when there is a ttl.
    pub expires_at: Option<Timestamp>,
    /// The effective state: stopped by hand or by the schedule.
    pub stopped: bool,
    /// When a scheduled stop ends (None when not stopped by the schedule, or stopped by hand).
    pub stopped_until: Option<Timestamp>,
    /// When the schedule changes the effective state next.
    pub next_transition: Option<Timestamp>,
}

impl LifecycleState {
    /// Whether the Environment has expired at `now`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// The next moment something changes by itself (expiry or a schedule flip).
    pub fn next_event(&self) -> Option<Timestamp> {
        [self.expires_at, self.next_transition]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What the schedule says at a given moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleState {
    /// Inside a stopped window: the latest `stop` time is more recent than the latest `start`.
    pub stopped: bool,
    /// The next flip: the next `start` while stopped, the next `stop` while running.
    pub next_transition: Option<Timestamp>,
}

/// A schedule Paved cannot evaluate; the message says what to change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InvalidSchedule(pub String);

/// `72h`, `7d`, `1h30m`, `45s` → a duration. None for anything else (the CRD
/// schema rejects such values at admission already).
pub fn parse_ttl(ttl: &str) -> Option<SignedDuration> {
    if ttl.is_empty() {
        return None;
    }
    let mut total: i64 = 0;
    let mut digits = String::new();
    let mut last_unit = 0;
    for c in ttl.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        // Units in decreasing order, each at most once: d, h, m, s.
        let (rank, seconds) = match c {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            's' => (4, 1),
            _ => return None,
        };
        if digits.is_empty() || rank <= last_unit {
            return None;
        }
        last_unit = rank;
        let value: i64 = digits.parse().ok()?;
        total = total.checked_add(value.checked_mul(seconds)?)?;
        digits.clear();
    }
    if !digits.is_empty() {
        return None;
    }
    Some(SignedDuration::from_secs(total))
}

fn parse_cron(field: &str, expression: &str) -> Result<Cron, InvalidSchedule> {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .build()
        .parse(expression)
        .map_err(|error| {
            InvalidSchedule(format!(
                "spec.lifecycle.schedule.{field} {expression:?} is not a five-field cron expression ({error}); e.g. \"0 20 * * 1-5\""
            ))
        })
}

fn parse_time_zone(name: Option<&str>) -> Result<TimeZone, InvalidSchedule> {
    match name {
        None => Ok(TimeZone::UTC),
        Some(name) => TimeZone::get(name).map_err(|_| {
            InvalidSchedule(format!(
                "spec.lifecycle.schedule.timeZone {name:?} is not an IANA time zone; e.g. Europe/Paris or UTC"
            ))
        }),
    }
}

/// Where `now` falls in the schedule.
pub fn evaluate_schedule(
    schedule: &StopSchedule,
    now: Timestamp,
) -> Result<ScheduleState, InvalidSchedule> {
    let stop = parse_cron("stop", &schedule.stop)?;
    let start = parse_cron("start", &schedule.start)?;
    let zone = parse_time_zone(schedule.time_zone.as_deref())?;
    let now = now.to_zoned(zone);
    let previous = |cron: &Cron| {
        cron.find_previous_occurrence(&now, true)
            .ok()
            .map(|z| z.timestamp())
    };
    let next = |cron: &Cron| {
        cron.find_next_occurrence(&now, false)
            .ok()
            .map(|z| z.timestamp())
    };
    let stopped = match (previous(&stop), previous(&start)) {
        (Some(stopped_at), Some(started_at)) => stopped_at > started_at,
        (Some(_), None) => true,
        _ => false,
    };
    let next_transition = if stopped { next(&start) } else { next(&stop) };
    Ok(ScheduleState {
        stopped,
        next_transition,
    })
}

/// The Environment's lifecycle at `now`. A schedule that cannot be evaluated
/// counts as "not stopped by the schedule" and is returned as the error part.
pub fn lifecycle_state(
    environment: &Environment,
    now: Timestamp,
) -> (LifecycleState, Option<InvalidSchedule>) {
    let Some(lifecycle) = environment.spec.lifecycle.as_ref() else {
        return (LifecycleState::default(), None);
    };
    let expires_at = lifecycle
        .ttl
        .as_deref()
        .and_then(parse_ttl)
        .zip(environment.metadata.creation_timestamp.as_ref())
        .and_then(|(ttl, created)| created.0.checked_add(ttl).ok());
    let by_hand = lifecycle.stopped.unwrap_or(false);
    let (schedule, invalid) = match lifecycle.schedule.as_ref() {
        None => (None, None),
        Some(schedule) => match evaluate_schedule(schedule, now) {
            Ok(state) => (Some(state), None),
            Err(error) => (None, Some(error)),
        },
    };
    let state = match schedule {
        // Stopped by hand: the schedule changes nothing until that is lifted.
        _ if by_hand => LifecycleState {
            expires_at,
            stopped: true,
            stopped_until: None,
            next_transition: None,
        },
        Some(schedule) => LifecycleState {
            expires_at,
            stopped: schedule.stopped,
            stopped_until: schedule
                .stopped
                .then_some(schedule.next_transition)
                .flatten(),
            next_transition: schedule.next_transition,
        },
        None => LifecycleState {
            expires_at,
            ..LifecycleState::default()
        },
    };
    (state, invalid)
}

/// RFC 3339 at second precision, as written into status.
pub fn rfc3339(at: Timestamp) -> String {
    at.round(jiff::Unit::Second).unwrap_or(at).to_string()
}

/// Parse an RFC 3339 timestamp (as written by [`rfc3339`]).
pub fn parse_rfc3339(text: &str) -> Option<Timestamp> {
    Timestamp::from_str(text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::{EnvironmentLifecycle, EnvironmentSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn schedule(stop: &str, start: &str, zone: Option<&str>) -> StopSchedule {
        StopSchedule {
            stop: stop.into(),
            start: start.into(),
            time_zone: zone.map(Into::into),
        }
    }

    fn environment(lifecycle: EnvironmentLifecycle, created: &str) -> Environment {
        let mut env = Environment::new(
            "preview",
            EnvironmentSpec {
                domain: "preview.example.com".into(),
                lifecycle: Some(lifecycle),
                ..EnvironmentSpec::default()
            },
        );
        env.metadata.creation_timestamp = Some(Time(at(created)));
        env
    }

    #[test]
    fn ttls_combine_days_hours_minutes_and_seconds() {
        assert_eq!(parse_ttl("72h"), Some(SignedDuration::from_hours(72)));
        assert_eq!(parse_ttl("7d"), Some(SignedDuration::from_hours(168)));
        assert_eq!(parse_ttl("1h30m"), Some(SignedDuration::from_mins(90)));
        assert_eq!(parse_ttl("20s"), Some(SignedDuration::from_secs(20)));
        for bad in ["", "h", "72", "30m1h", "1h1h", "1w", "-1h"] {
            assert_eq!(parse_ttl(bad), None, "{bad}");
        }
    }

    #[test]
    fn expiry_is_creation_plus_ttl_and_raising_the_ttl_extends_it() {
        let mut lifecycle = EnvironmentLifecycle {
            ttl: Some("72h".into()),
            ..Default::default()
        };
        let env = environment(lifecycle.clone(), "2026-11-20T10:00:00Z");
        let (state, _) = lifecycle_state(&env, at("2026-11-21T00:00:00Z"));
        assert_eq!(state.expires_at, Some(at("2026-11-23T10:00:00Z")));
        assert!(!state.expired(at("2026-11-23T09:59:59Z")));
        assert!(state.expired(at("2026-11-23T10:00:00Z")));

        lifecycle.ttl = Some("96h".into());
        let env = environment(lifecycle, "2026-11-20T10:00:00Z");
        let (state, _) = lifecycle_state(&env, at("2026-11-23T11:00:00Z"));
        assert_eq!(state.expires_at, Some(at("2026-11-24T10:00:00Z")));
        assert!(!state.expired(at("2026-11-23T11:00:00Z")));
    }

    #[test]
    fn a_weekday_night_schedule_is_evaluated_in_its_time_zone() {
        // 20:00-07:00 Paris time on weekdays; 2026-11-23 is a Monday, Paris is UTC+1.
        let nights = schedule("0 20 * * 1-5", "0 7 * * 1-5", Some("Europe/Paris"));
        let day = evaluate_schedule(&nights, at("2026-11-23T12:00:00Z")).unwrap();
        assert!(!day.stopped);
        assert_eq!(day.next_transition, Some(at("2026-11-23T19:00:00Z")));

        let night = evaluate_schedule(&nights, at("2026-11-23T22:00:00Z")).unwrap();
        assert!(night.stopped);
        assert_eq!(night.next_transition, Some(at("2026-11-24T06:00:00Z")));
    }

    #[test]
    fn a_weekend_stays_stopped_from_friday_evening_to_monday_morning() {
        let nights = schedule("0 20 * * 1-5", "0 7 * * 1-5", Some("Europe/Paris"));
        // Saturday 2026-11-28, noon.
        let weekend = evaluate_schedule(&nights, at("2026-11-28T12:00:00Z")).unwrap();
        assert!(weekend.stopped);
        assert_eq!(weekend.next_transition, Some(at("2026-11-30T06:00:00Z")));
    }

    #[test]
    fn stopped_by_hand_wins_over_the_schedule() {
        let env = environment(
            EnvironmentLifecycle {
                stopped: Some(true),
                schedule: Some(schedule("0 20 * * *", "0 7 * * *", None)),
                ..Default::default()
            },
            "2026-11-20T10:00:00Z",
        );
        let (state, invalid) = lifecycle_state(&env, at("2026-11-23T12:00:00Z"));
        assert!(invalid.is_none());
        assert!(state.stopped);
        assert_eq!(state.stopped_until, None);
        assert_eq!(state.next_transition, None);
    }

    #[test]
    fn a_scheduled_stop_says_until_when() {
        let env = environment(
            EnvironmentLifecycle {
                schedule: Some(schedule("0 20 * * *", "0 7 * * *", None)),
                ..Default::default()
            },
            "2026-11-20T10:00:00Z",
        );
        let (state, _) = lifecycle_state(&env, at("2026-11-23T21:00:00Z"));
        assert!(state.stopped);
        assert_eq!(state.stopped_until, Some(at("2026-11-24T07:00:00Z")));
        assert_eq!(state.next_event(), Some(at("2026-11-24T07:00:00Z")));
    }

    #[test]
    fn an_unknown_time_zone_or_bad_cron_is_reported_not_guessed() {
        let bad_zone = schedule("0 20 * * *", "0 7 * * *", Some("Mars/Olympus"));
        let error = evaluate_schedule(&bad_zone, at("2026-11-23T21:00:00Z")).unwrap_err();
        assert!(error.0.contains("timeZone"));
        let bad_cron = schedule("0 25 * * *", "0 7 * * *", None);
        let error = evaluate_schedule(&bad_cron, at("2026-11-23T21:00:00Z")).unwrap_err();
        assert!(error.0.contains("schedule.stop"));
    }
}
