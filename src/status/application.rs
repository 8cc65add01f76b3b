//! The status of an Application: its Services, how many are ready, and whether
//! it is in an Environment.

use kube::ResourceExt;

use super::{merge_conditions, ready, reconciling, stalled, stalled_because, stalled_services};
use crate::api::application::ServiceSummary;
use crate::api::{Application, ApplicationStatus};
use crate::error::Error;
use crate::names::reasons;
use crate::resolve::{Snapshot, is_ready};

pub fn application_status(
    application: &Application,
    snapshot: &Snapshot,
    in_environment: Result<(), &Error>,
    now: &str,
) -> ApplicationStatus {
    let previous = application.status.clone().unwrap_or_default();
    let generation = application.metadata.generation;
    let namespace = application.namespace().unwrap_or_default();
    let name = application.name_any();
    let services = snapshot.services_of(&namespace, &name);

    let summaries: Vec<ServiceSummary> = services
        .iter()
        .map(|s| {
            let status = s.status.as_ref();
            ServiceSummary {
                name: s.name_any(),
                ready: is_ready(status.map(|st| st.conditions.as_slice())),
                image: status.and_then(|st| st.image.clone()),
                url: status.and_then(|st| st.url.clone()),
            }
        })
        .collect();
    let ready_count = summaries.iter().filter(|s| s.ready).count();
    let total = summaries.len();
    let depends_on = services
        .iter()
        .map(|s| (s.name_any(), s.spec.depends_on.clone()))
        .collect();

    let stuck = stalled_services(services.iter().copied());
    let desired = match in_environment {
        Err(error) => stalled(error),
        // A Service that needs a change from the user: waiting cannot help.
        Ok(()) if !stuck.is_empty() => stalled_because(
            reasons::SERVICE_STALLED,
            format!(
                "{ready_count}/{total} Services ready; stalled: {}",
                stuck.join("; ")
            ),
        ),
        Ok(()) if ready_count == total => ready(
            reasons::ALL_SERVICES_READY,
            format!("{ready_count}/{total} Services ready"),
        ),
        Ok(()) => {
            let waiting: Vec<&str> = summaries
                .iter()
                .filter(|s| !s.ready)
                .map(|s| s.name.as_str())
                .collect();
            reconciling(
                reasons::SERVICES_NOT_READY,
                format!(
                    "{ready_count}/{total} Services ready; waiting for {}",
                    waiting.join(", ")
                ),
            )
        }
    };

    ApplicationStatus {
        observed_generation: generation,
        conditions: merge_conditions(&previous.conditions, desired, generation, now),
        owner: Some(application.spec.owner.clone()),
        lifecycle: Some(application.spec.lifecycle.as_str().to_string()),
        services: summaries,
        ready: format!("{ready_count}/{total}"),
        depends_on,
        scorecard: None,
        usage: None,
        cost: None,
        delivery: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::shop;

    #[test]
    fn an_application_counts_its_ready_services_and_records_the_dependency_graph() {
        let snapshot = shop();
        let app = snapshot.application("staging", "shop").unwrap();
        let status = application_status(app, &snapshot, Ok(()), "t");
        assert_eq!(status.ready, "0/2");
        assert_eq!(
            status
                .services
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            vec!["api", "web"]
        );
        assert_eq!(status.depends_on["web"], vec!["api".to_string()]);
        assert_eq!(status.conditions[0].reason, "ServicesNotReady");
        assert_eq!(status.owner.as_deref(), Some("team-shop"));
        assert_eq!(status.lifecycle.as_deref(), Some("experimental"));
    }
}
