//! Events on Paved's own objects: when something goes wrong and when it recovers.

use kube::Resource;
use kube::runtime::events::{Event, EventType};

use super::Context;
use crate::api::Condition;
use crate::names::{actions, conditions, reasons};

/// Publish an Event when something goes wrong (Ready turns False for a reason that
/// is not routine progress) and when it recovers from that. Routine progress
/// (rolling out, then available) is visible in status and costs no Event write.
pub async fn publish_on_transition<K>(
    ctx: &Context,
    object: &K,
    before: &[Condition],
    after: &[Condition],
) where
    K: Resource<DynamicType = ()>,
{
    let Some(event) = transition_event(before, after) else {
        return;
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}

/// The Event a change of conditions from `before` to `after` calls for, if any.
fn transition_event<'a>(before: &'a [Condition], after: &'a [Condition]) -> Option<Event> {
    let ready =
        |conditions: &'a [Condition]| conditions.iter().find(|c| c.type_ == conditions::READY);
    let current = ready(after)?;
    let previous = ready(before);
    if previous.is_some_and(|p| (&p.status, &p.reason) == (&current.status, &current.reason)) {
        return None;
    }
    let is_problem = |status: &str, reason: &str| status == "False" && !is_progress(reason);
    let was_problem = previous.is_some_and(|p| is_problem(&p.status, &p.reason));
    let stalled = after.iter().any(|c| c.type_ == conditions::STALLED);
    let type_ = if is_problem(&current.status, &current.reason) {
        EventType::Warning
    } else if was_problem {
        EventType::Normal
    } else {
        return None;
    };
    Some(Event {
        type_,
        reason: current.reason.clone(),
        note: Some(truncate(&current.message, 1000)),
        action: if stalled {
            actions::VALIDATE
        } else {
            actions::RECONCILE
        }
        .into(),
        secondary: None,
    })
}

/// Reasons that mean "work in flight", not "something is wrong". `Pending` is
/// the CRDs' default status of an object not reconciled yet: its first real
/// status is no recovery (that cost one Event write per object created).
fn is_progress(reason: &str) -> bool {
    matches!(
        reason,
        reasons::PENDING
            | reasons::ROLLING_OUT
            | reasons::PROVISIONING
            | reasons::SERVICES_NOT_READY
            | reasons::STOPPING
    )
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready(status: &str, reason: &str) -> Vec<Condition> {
        vec![Condition {
            type_: conditions::READY.into(),
            status: status.into(),
            reason: reason.into(),
            message: format!("{reason} here"),
            last_transition_time: None,
            observed_generation: None,
        }]
    }

    /// What the API server shows of an object Paved has not reconciled yet.
    fn pending() -> Vec<Condition> {
        ready("False", reasons::PENDING)
    }

    #[test]
    fn an_object_s_first_status_after_the_crd_default_publishes_nothing() {
        for first in [
            ready("False", reasons::ROLLING_OUT),
            ready("True", reasons::AVAILABLE),
            ready("True", reasons::ALL_SERVICES_READY),
            ready("True", reasons::NAMESPACE_READY),
        ] {
            assert!(
                transition_event(&pending(), &first).is_none(),
                "{:?}",
                first[0].reason
            );
        }
    }

    #[test]
    fn a_problem_publishes_a_warning_and_its_end_a_normal_event() {
        let conflict = ready("False", reasons::CHILD_CONFLICT);
        let warning = transition_event(&pending(), &conflict).expect("a warning");
        assert_eq!(warning.type_, EventType::Warning);
        assert_eq!(warning.reason, reasons::CHILD_CONFLICT);
        let recovered = transition_event(&conflict, &ready("False", reasons::ROLLING_OUT))
            .expect("the recovery");
        assert_eq!(recovered.type_, EventType::Normal);
        assert_eq!(recovered.reason, reasons::ROLLING_OUT);
    }

    #[test]
    fn routine_progress_and_unchanged_ready_publish_nothing() {
        let rolling = ready("False", reasons::ROLLING_OUT);
        let available = ready("True", reasons::AVAILABLE);
        assert!(transition_event(&rolling, &available).is_none());
        assert!(transition_event(&available, &rolling).is_none());
        assert!(transition_event(&available, &available).is_none());
        assert!(transition_event(&[], &available).is_none());
    }
}
