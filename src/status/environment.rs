//! The status of an Environment: its namespace, Applications and Services, the
//! quota, its lifecycle (expiry, stop/start schedule) and, for a preview, its base.

use kube::ResourceExt;

use super::{failing, merge_conditions, ready, stalled, stalled_because, stalled_services};
use crate::api::environment::{ApplicationSummary, ServiceCounts};
use crate::api::{Environment, EnvironmentStatus, Service};
use crate::error::Error;
use crate::names::reasons;
use crate::resolve::{Snapshot, is_ready};

pub fn environment_status(
    environment: &Environment,
    snapshot: &Snapshot,
    namespace_outcome: Result<(), &Error>,
    now: &str,
) -> EnvironmentStatus {
    let previous = environment.status.clone().unwrap_or_default();
    let generation = environment.metadata.generation;
    let namespace = environment.namespace_name();

    let (desired, owned) = match namespace_outcome {
        Ok(()) => (
            ready(
                reasons::NAMESPACE_READY,
                format!("namespace {namespace} is ready"),
            ),
            true,
        ),
        Err(error) if error.is_stalled() => (stalled(error), false),
        Err(error) => (failing(error), false),
    };

    // Only report what runs in the namespace when it is really this Environment's.
    let (mut applications, services, mut urls) = if owned {
        let applications: Vec<ApplicationSummary> = snapshot
            .applications_in(&namespace)
            .map(|a| {
                // From the Services themselves, so it agrees with the counts below
                // even before the Application's own status catches up.
                let name = a.name_any();
                let ready = snapshot
                    .services_of(&namespace, &name)
                    .iter()
                    .all(|s| is_ready(s.status.as_ref().map(|st| st.conditions.as_slice())));
                ApplicationSummary { name, ready }
            })
            .collect();
        let services: Vec<&Service> = snapshot.services_in(&namespace).collect();
        let ready_count = services
            .iter()
            .filter(|s| is_ready(s.status.as_ref().map(|st| st.conditions.as_slice())))
            .count() as i32;
        let total = services.len() as i32;
        let urls: Vec<String> = services
            .iter()
            .filter_map(|s| s.status.as_ref().and_then(|st| st.url.clone()))
            .collect();
        (
            applications,
            ServiceCounts {
                total,
                ready: ready_count,
                summary: format!("{ready_count}/{total}"),
            },
            urls,
        )
    } else {
        (
            Vec::new(),
            ServiceCounts {
                summary: "0/0".into(),
                ..ServiceCounts::default()
            },
            Vec::new(),
        )
    };
    applications.sort_by(|a, b| a.name.cmp(&b.name));
    urls.sort();
    urls.dedup();

    EnvironmentStatus {
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, desired, generation, now),
        namespace: owned.then_some(namespace),
        type_: Some(environment.spec.type_.as_str().to_string()),
        applications,
        services,
        urls,
        ..EnvironmentStatus::default()
    }
}

/// What the Environment reconcile learned beyond its namespace.
#[derive(Clone, Debug, Default)]
pub struct EnvironmentObservation<'a> {
    /// Expiry and stop/start, from [`crate::lifecycle::lifecycle_state`].
    pub lifecycle: crate::lifecycle::LifecycleState,
    /// For a preview: what is copied from its base.
    pub base: Option<crate::api::environment::BaseStatus>,
    /// The quota and its use, from the ResourceQuota's status.
    pub quota: Option<crate::api::environment::QuotaUsage>,
    /// A problem only the user can fix that does not stop the namespace from
    /// working (a schedule that cannot be evaluated, a missing base): Stalled.
    pub problem: Option<&'a Error>,
    /// Whether the Environment holds its `spec.domain` ([`crate::domain::check_domain`]).
    pub holds_domain: bool,
}

/// [`environment_status`] plus lifecycle (`expiresAt`, `stopped`,
/// `stoppedUntil`, `nextTransition`), `base`, and the observation's problem.
pub fn environment_status_observed(
    environment: &Environment,
    snapshot: &Snapshot,
    namespace_outcome: Result<(), &Error>,
    observation: EnvironmentObservation<'_>,
    now: &str,
) -> EnvironmentStatus {
    use crate::lifecycle::rfc3339;
    let namespace_ok = namespace_outcome.is_ok();
    let mut status = environment_status(environment, snapshot, namespace_outcome, now);
    let lifecycle = &observation.lifecycle;
    status.expires_at = lifecycle.expires_at.map(rfc3339);
    status.stopped = lifecycle.stopped;
    status.stopped_until = lifecycle.stopped_until.map(rfc3339);
    status.next_transition = lifecycle.next_transition.map(rfc3339);
    status.base = observation.base;
    status.quota = observation.quota;
    status.domain = observation.holds_domain.then(|| {
        let domain = &environment.spec.domain;
        // Held since it was first granted; a new domain is held from now.
        let since = environment
            .status
            .as_ref()
            .and_then(|s| s.domain.as_ref())
            .filter(|claim| &claim.name == domain)
            .map_or_else(|| now.to_string(), |claim| claim.since.clone());
        crate::api::environment::DomainClaim {
            name: domain.clone(),
            since,
        }
    });
    if namespace_ok {
        let previous = environment.status.clone().unwrap_or_default();
        let generation = environment.metadata.generation;
        let namespace = environment.namespace_name();
        let mut services: Vec<&Service> = snapshot.services_in(&namespace).collect();
        services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        let stuck = stalled_services(services.into_iter());
        let desired = match observation.problem {
            Some(problem) => stalled(problem),
            None if !stuck.is_empty() => stalled_because(
                reasons::SERVICE_STALLED,
                format!(
                    "namespace {namespace} is ready, but Services need a change: {}",
                    stuck.join("; ")
                ),
            ),
            None => {
                let state = match (&status.stopped_until, lifecycle.stopped) {
                    (Some(until), _) => format!("; stopped by its schedule until {until}"),
                    (None, true) => "; stopped (spec.lifecycle.stopped)".to_string(),
                    (None, false) => String::new(),
                };
                ready(
                    reasons::NAMESPACE_READY,
                    format!("namespace {namespace} is ready{state}"),
                )
            }
        };
        status.conditions = merge_conditions(&previous.conditions, desired, generation, now);
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::shop;

    #[test]
    fn an_environment_summarises_its_namespace() {
        let snapshot = shop();
        let env = snapshot.environments[0].clone();
        let status = environment_status(&env, &snapshot, Ok(()), "t");
        assert_eq!(status.namespace.as_deref(), Some("staging"));
        assert_eq!(status.type_.as_deref(), Some("development"));
        assert_eq!(
            status.services,
            ServiceCounts {
                total: 2,
                ready: 0,
                summary: "0/2".into()
            }
        );
        assert_eq!(
            status.applications,
            vec![ApplicationSummary {
                name: "shop".into(),
                ready: false
            }]
        );
        assert_eq!(status.conditions[0].reason, "NamespaceReady");
    }

    #[test]
    fn an_environment_status_carries_its_lifecycle_and_a_missing_base_stalls_it_but_keeps_the_namespace()
     {
        let snapshot = shop();
        let env = snapshot.environments[0].clone();
        let at = |t: &str| t.parse::<jiff::Timestamp>().unwrap();
        let lifecycle = crate::lifecycle::LifecycleState {
            expires_at: Some(at("2026-11-26T10:00:00Z")),
            stopped: true,
            stopped_until: Some(at("2026-11-24T06:00:00Z")),
            next_transition: Some(at("2026-11-24T06:00:00Z")),
        };
        let status = environment_status_observed(
            &env,
            &snapshot,
            Ok(()),
            EnvironmentObservation {
                lifecycle: lifecycle.clone(),
                ..Default::default()
            },
            "t",
        );
        assert_eq!(status.expires_at.as_deref(), Some("2026-11-26T10:00:00Z"));
        assert!(status.stopped);
        assert_eq!(
            status.stopped_until.as_deref(),
            Some("2026-11-24T06:00:00Z")
        );
        assert!(
            status.conditions[0]
                .message
                .contains("stopped by its schedule until")
        );

        let missing = Error::BaseMissing {
            base: "staging".into(),
        };
        let status = environment_status_observed(
            &env,
            &snapshot,
            Ok(()),
            EnvironmentObservation {
                lifecycle,
                problem: Some(&missing),
                ..Default::default()
            },
            "t",
        );
        assert_eq!(status.namespace.as_deref(), Some("staging"));
        let reasons: Vec<(&str, &str, &str)> = status
            .conditions
            .iter()
            .map(|c| (c.type_.as_str(), c.status.as_str(), c.reason.as_str()))
            .collect();
        assert_eq!(
            reasons,
            [
                ("Ready", "False", "BaseMissing"),
                ("Stalled", "True", "BaseMissing")
            ]
        );
    }

    #[test]
    fn a_held_domain_keeps_the_time_it_was_first_granted_and_a_new_one_starts_now() {
        let snapshot = shop();
        let mut env = (*snapshot.environments[0]).clone();
        let observed = |env: &crate::api::Environment, holds_domain: bool, now: &str| {
            let observation = EnvironmentObservation {
                holds_domain,
                ..Default::default()
            };
            environment_status_observed(env, &snapshot, Ok(()), observation, now).domain
        };
        let first = observed(&env, true, "t1").unwrap();
        assert_eq!(
            (first.name.as_str(), first.since.as_str()),
            (env.spec.domain.as_str(), "t1")
        );
        env.status = Some(crate::api::EnvironmentStatus {
            domain: Some(first.clone()),
            ..Default::default()
        });
        assert_eq!(observed(&env, true, "t2"), Some(first));
        // Not held (a conflict): no claim. A changed domain is held from now.
        assert_eq!(observed(&env, false, "t2"), None);
        env.spec.domain = "other.example.test".into();
        assert_eq!(observed(&env, true, "t3").unwrap().since, "t3");
    }
}
