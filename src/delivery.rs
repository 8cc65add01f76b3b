//! Delivery metrics from Paved's own history: what a Service's status already
//! records (revisions, conditions) turned into counters. Pure: the status
//! before and after a reconcile in, the new figures out.
//!
//! Every figure moves on an event only (a new revision, a revision that goes
//! Stalled or is rolled back, a return to Ready), never because time passes:
//! an unchanged Service yields the same figures and so no status write. The
//! counters run from `since`; a rate over a window (deploys per day, failures
//! per week) is the reader's division, or Prometheus' `increase()` over the
//! counters of [`crate::runtime::metrics`].

use k8s_openapi::jiff::Timestamp;

use crate::api::delivery::Delivery;
use crate::api::{Condition, Service, ServiceStatus};
use crate::names::{annotations, conditions};

fn condition<'a>(status: &'a ServiceStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn is_true(status: &ServiceStatus, type_: &str) -> bool {
    condition(status, type_).is_some_and(|c| c.status == "True")
}

/// Whole seconds from `from` to `to` (RFC 3339 both), never negative; None
/// when either does not parse.
fn seconds_between(from: &str, to: &str) -> Option<i64> {
    let from: Timestamp = from.parse().ok()?;
    let to: Timestamp = to.parse().ok()?;
    Some((to.as_second() - from.as_second()).max(0))
}

/// `failures / deploys`, two decimals.
fn rate(failures: i64, deploys: i64) -> String {
    if deploys <= 0 {
        return "0.00".into();
    }
    format!("{:.2}", failures as f64 / deploys as f64)
}

/// The figures a Service starts from the first time Paved counts: the
/// revisions its history still holds (an upgraded Paved does not start at zero).
fn seeded(before: &ServiceStatus, now: &str) -> Delivery {
    Delivery {
        since: before
            .history
            .last()
            .map_or_else(|| now.to_string(), |r| r.deployed_at.clone()),
        deploys: before.history.len() as i64,
        last_deploy_at: before.history.first().map(|r| r.deployed_at.clone()),
        ..Delivery::default()
    }
}

/// The Service's delivery figures after a reconcile took its status from
/// `before` to `after` (`after.delivery` is ignored), at `now` (RFC 3339).
pub fn service_delivery(
    service: &Service,
    before: &ServiceStatus,
    after: &ServiceStatus,
    now: &str,
) -> Delivery {
    let mut delivery = before
        .delivery
        .clone()
        .unwrap_or_else(|| seeded(before, now));
    let count_failure = |delivery: &mut Delivery, revision: i64| {
        if revision >= 1
            && delivery
                .last_failed_revision
                .is_none_or(|last| last < revision)
        {
            delivery.failures += 1;
            delivery.last_failed_revision = Some(revision);
        }
    };

    let new_revisions = after.revision - before.revision;
    if new_revisions > 0 {
        delivery.deploys += new_revisions;
        delivery.last_deploy_at = after.history.first().map(|r| r.deployed_at.clone());
        // Back to the image and configuration of an earlier revision (`paved
        // rollback`, or a revert in Git): the revision it replaces failed.
        let rolled_back = after.history.first().is_some_and(|new| {
            before
                .history
                .iter()
                .skip(1)
                .any(|old| old.image == new.image && old.config_hash == new.config_hash)
        });
        if rolled_back {
            count_failure(&mut delivery, before.revision);
        }
        let commit_time = service
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(annotations::COMMIT_TIME));
        let new_commit = commit_time.filter(|t| delivery.last_commit_time.as_ref() != Some(*t));
        if let Some((commit, lead)) = new_commit.and_then(|t| Some((t, seconds_between(t, now)?))) {
            delivery.last_commit_time = Some(commit.clone());
            delivery.lead_times += 1;
            delivery.lead_time_seconds_total += lead;
            delivery.last_lead_time_seconds = Some(lead);
        }
    }

    let ready = condition(after, conditions::READY);
    // Stalled before any revision was applied (a refused manifest): never
    // deployed, so no failure and nothing to restore.
    if is_true(after, conditions::STALLED) && after.revision >= 1 {
        count_failure(&mut delivery, after.revision);
        if delivery.failing_since.is_none() {
            // When it left Ready: Ready=False's transition time.
            delivery.failing_since = Some(
                ready
                    .filter(|c| c.status == "False")
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| now.to_string()),
            );
        }
    } else if ready.is_some_and(|c| c.status == "True") {
        if let Some(since) = delivery.failing_since.take() {
            let restored = seconds_between(&since, now).unwrap_or(0);
            delivery.restores += 1;
            delivery.time_to_restore_seconds_total += restored;
            delivery.last_time_to_restore_seconds = Some(restored);
        }
    }
    delivery.mean_time_to_restore_seconds =
        (delivery.restores > 0).then(|| delivery.time_to_restore_seconds_total / delivery.restores);
    delivery.change_failure_rate = rate(delivery.failures, delivery.deploys);
    delivery
}

/// The roll-up over some Services' figures (an Application's, an
/// Environment's): sums, the earliest `since`, the latest deploy, the longest
/// latest times; None when no Service has figures yet.
pub fn rolled_up<'a>(figures: impl IntoIterator<Item = &'a Delivery>) -> Option<Delivery> {
    let mut total: Option<Delivery> = None;
    for d in figures {
        let t = total.get_or_insert_with(|| Delivery {
            since: d.since.clone(),
            ..Delivery::default()
        });
        // RFC 3339 in UTC as Paved writes it: text order is time order.
        t.since = t.since.clone().min(d.since.clone());
        t.deploys += d.deploys;
        t.last_deploy_at = t.last_deploy_at.clone().max(d.last_deploy_at.clone());
        t.failures += d.failures;
        t.restores += d.restores;
        t.time_to_restore_seconds_total += d.time_to_restore_seconds_total;
        t.last_time_to_restore_seconds = t
            .last_time_to_restore_seconds
            .max(d.last_time_to_restore_seconds);
        t.lead_times += d.lead_times;
        t.lead_time_seconds_total += d.lead_time_seconds_total;
        t.last_lead_time_seconds = t.last_lead_time_seconds.max(d.last_lead_time_seconds);
        t.failing_since = match (t.failing_since.take(), d.failing_since.clone()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let mut total = total?;
    total.mean_time_to_restore_seconds =
        (total.restores > 0).then(|| total.time_to_restore_seconds_total / total.restores);
    total.change_failure_rate = rate(total.failures, total.deploys);
    Some(total)
}

/// The roll-up of the Services whose status carries figures.
pub fn services_delivery<'a>(services: impl IntoIterator<Item = &'a Service>) -> Option<Delivery> {
    rolled_up(
        services
            .into_iter()
            .filter_map(|s| s.status.as_ref()?.delivery.as_ref()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::service::RevisionRecord;

    fn web(commit_time: Option<&str>) -> Service {
        let mut service: Service = serde_yaml::from_str(
            "metadata: {name: web, namespace: shop}\nspec: {application: shop, image: web:1}",
        )
        .unwrap();
        if let Some(t) = commit_time {
            service.metadata.annotations =
                Some([(annotations::COMMIT_TIME.to_string(), t.to_string())].into());
        }
        service
    }

    /// A status at `revision` whose history holds `images` (newest first), with
    /// Ready (and Stalled) as given, Ready having last moved at `moved`.
    fn status(
        revision: i64,
        images: &[&str],
        ready: bool,
        stalled: bool,
        moved: &str,
    ) -> ServiceStatus {
        let condition = |type_: &str, status: bool| Condition {
            type_: type_.into(),
            status: if status { "True" } else { "False" }.into(),
            reason: "R".into(),
            message: String::new(),
            last_transition_time: Some(moved.into()),
            observed_generation: None,
        };
        let mut conditions = vec![condition(conditions::READY, ready)];
        if stalled {
            conditions.push(condition(conditions::STALLED, true));
        }
        ServiceStatus {
            revision,
            conditions,
            history: images
                .iter()
                .enumerate()
                .map(|(i, image)| RevisionRecord {
                    revision: revision - i as i64,
                    image: (*image).into(),
                    config_hash: "c".into(),
                    deployed_at: format!("2026-01-01T00:0{}:00Z", revision - i as i64),
                })
                .collect(),
            ..ServiceStatus::default()
        }
    }

    /// `after` with `before`'s figures, as the next reconcile sees it.
    fn carried(mut after: ServiceStatus, delivery: &Delivery) -> ServiceStatus {
        after.delivery = Some(delivery.clone());
        after
    }

    const T0: &str = "2026-01-01T00:00:00Z";

    #[test]
    fn a_new_service_counts_its_first_deploy_and_its_lead_time_from_the_commit_annotation() {
        let after = status(1, &["web:1"], false, false, T0);
        let d = service_delivery(
            &web(Some("2025-12-31T23:58:00Z")),
            &ServiceStatus::default(),
            &after,
            "2026-01-01T00:01:00Z",
        );
        assert_eq!((d.deploys, d.failures, d.restores), (1, 0, 0));
        assert_eq!(d.since, "2026-01-01T00:01:00Z");
        assert_eq!(d.last_lead_time_seconds, Some(180));
        assert_eq!((d.lead_times, d.lead_time_seconds_total), (1, 180));
        assert_eq!(d.change_failure_rate, "0.00");
    }

    #[test]
    fn an_unchanged_service_keeps_identical_figures_however_much_time_passes() {
        let before = status(2, &["web:2", "web:1"], true, false, T0);
        let first = service_delivery(&web(Some(T0)), &before, &before, "2026-01-01T01:00:00Z");
        let before = carried(before, &first);
        let later = service_delivery(&web(Some(T0)), &before, &before, "2026-03-01T00:00:00Z");
        assert_eq!(first, later, "time alone moves nothing");
        assert_eq!(
            later.last_lead_time_seconds, None,
            "no new revision, no lead time"
        );
    }

    #[test]
    fn a_paved_that_starts_counting_seeds_from_the_history_it_kept() {
        let before = status(14, &["web:14", "web:13", "web:12"], true, false, T0);
        let d = service_delivery(&web(None), &before, &before, "2026-02-01T00:00:00Z");
        assert_eq!(d.deploys, 3);
        assert_eq!(d.since, before.history[2].deployed_at);
        assert_eq!(
            d.last_deploy_at.as_deref(),
            Some(before.history[0].deployed_at.as_str())
        );
    }

    #[test]
    fn a_rollback_to_an_earlier_revision_counts_the_replaced_revision_as_failed_once() {
        let v2 = status(2, &["web:2", "web:1"], true, false, T0);
        let seeded = service_delivery(&web(None), &v2, &v2, T0);
        let before = carried(v2, &seeded);
        let back = status(3, &["web:1", "web:2", "web:1"], false, false, T0);
        let d = service_delivery(&web(None), &before, &back, T0);
        assert_eq!((d.deploys, d.failures), (3, 1));
        assert_eq!(d.last_failed_revision, Some(2));
        assert_eq!(d.change_failure_rate, "0.33");
        assert_eq!(d.failing_since, None, "a rollback is no outage of its own");
        // Rolled forward to web:2 again and back: the third revision fails too,
        // but the second is never counted twice.
        let before = carried(back, &d);
        let forward = status(4, &["web:2", "web:1", "web:2", "web:1"], true, false, T0);
        let d = service_delivery(&web(None), &before, &forward, T0);
        assert_eq!(
            (d.deploys, d.failures),
            (4, 2),
            "web:2 is also an earlier revision: rev 3 replaced"
        );
    }

    #[test]
    fn a_stalled_revision_counts_once_and_its_return_to_ready_is_a_restore_from_leaving_ready() {
        let v1 = status(1, &["web:1"], true, false, T0);
        let seeded = service_delivery(&web(None), &v1, &v1, T0);
        let before = carried(v1, &seeded);
        // v2 rolls out (Ready=False since 00:10), then stalls at 00:12.
        let rolling = status(2, &["web:2", "web:1"], false, false, "2026-01-01T00:10:00Z");
        let d = service_delivery(&web(None), &before, &rolling, "2026-01-01T00:10:00Z");
        assert_eq!((d.deploys, d.failures), (2, 0));
        let before = carried(rolling, &d);
        let stalled = status(2, &["web:2", "web:1"], false, true, "2026-01-01T00:10:00Z");
        let d = service_delivery(&web(None), &before, &stalled, "2026-01-01T00:12:00Z");
        assert_eq!(d.failures, 1);
        assert_eq!(d.failing_since.as_deref(), Some("2026-01-01T00:10:00Z"));
        let before = carried(stalled.clone(), &d);
        let again = service_delivery(&web(None), &before, &stalled, "2026-01-01T00:20:00Z");
        assert_eq!(
            again, d,
            "still Stalled: the same revision is not counted again"
        );
        let ready = status(2, &["web:2", "web:1"], true, false, "2026-01-01T00:25:00Z");
        let d = service_delivery(&web(None), &before, &ready, "2026-01-01T00:25:00Z");
        assert_eq!((d.restores, d.time_to_restore_seconds_total), (1, 900));
        assert_eq!(d.mean_time_to_restore_seconds, Some(900));
        assert_eq!(d.failing_since, None);
        assert_eq!(d.change_failure_rate, "0.50");
    }

    #[test]
    fn a_revision_under_a_commit_time_already_counted_has_no_lead_time_of_its_own() {
        let commit = Some("2026-01-01T00:00:00Z");
        let v1 = status(1, &["web:1"], true, false, T0);
        let first = service_delivery(
            &web(commit),
            &ServiceStatus::default(),
            &v1,
            "2026-01-01T00:01:00Z",
        );
        let before = carried(v1, &first);
        // A configuration change (or a rollback) with the annotation left as it was.
        let config = status(2, &["web:1", "web:1"], false, false, T0);
        let d = service_delivery(&web(commit), &before, &config, "2026-01-01T05:00:00Z");
        assert_eq!(d.deploys, 2);
        assert_eq!((d.lead_times, d.last_lead_time_seconds), (1, Some(60)));
    }

    #[test]
    fn a_service_stalled_before_its_first_revision_has_no_failure_and_nothing_to_restore() {
        let refused = status(0, &[], false, true, T0);
        let d = service_delivery(&web(None), &ServiceStatus::default(), &refused, T0);
        assert_eq!(
            (d.deploys, d.failures, d.failing_since.as_deref()),
            (0, 0, None)
        );
        let before = carried(refused, &d);
        let ready = status(1, &["web:1"], true, false, "2026-01-01T01:00:00Z");
        let d = service_delivery(&web(None), &before, &ready, "2026-01-01T01:00:00Z");
        assert_eq!((d.deploys, d.failures, d.restores), (1, 0, 0));
    }

    #[test]
    fn a_commit_time_that_does_not_parse_or_lies_in_the_future_is_no_negative_lead_time() {
        let after = status(1, &["web:1"], false, false, T0);
        let d = service_delivery(
            &web(Some("yesterday")),
            &ServiceStatus::default(),
            &after,
            T0,
        );
        assert_eq!((d.lead_times, d.last_lead_time_seconds), (0, None));
        let d = service_delivery(
            &web(Some("2027-01-01T00:00:00Z")),
            &ServiceStatus::default(),
            &after,
            T0,
        );
        assert_eq!(d.last_lead_time_seconds, Some(0));
    }

    #[test]
    fn a_roll_up_sums_counts_and_keeps_the_earliest_since_and_the_worst_latest_times() {
        let a = Delivery {
            since: "2026-01-02T00:00:00Z".into(),
            deploys: 3,
            failures: 1,
            restores: 1,
            time_to_restore_seconds_total: 100,
            last_time_to_restore_seconds: Some(100),
            ..Delivery::default()
        };
        let b = Delivery {
            since: "2026-01-01T00:00:00Z".into(),
            deploys: 1,
            failures: 1,
            restores: 1,
            time_to_restore_seconds_total: 300,
            last_time_to_restore_seconds: Some(300),
            failing_since: Some("2026-01-03T00:00:00Z".into()),
            ..Delivery::default()
        };
        let total = rolled_up([&a, &b]).unwrap();
        assert_eq!(total.since, b.since);
        assert_eq!((total.deploys, total.failures, total.restores), (4, 2, 2));
        assert_eq!(total.change_failure_rate, "0.50");
        assert_eq!(total.mean_time_to_restore_seconds, Some(200));
        assert_eq!(total.last_time_to_restore_seconds, Some(300));
        assert_eq!(total.failing_since, b.failing_since);
        assert_eq!(rolled_up(std::iter::empty()), None);
    }
}
