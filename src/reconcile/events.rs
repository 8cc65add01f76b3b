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
    let ready = |conditions: &[Condition]| {
        conditions
            .iter()
            .find(|c| c.type_ == conditions::READY)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let Some(current) = after.iter().find(|c| c.type_ == conditions::READY) else {
        return;
    };
    if ready(before) == ready(after) {
        return;
    }
    let is_problem = |status: &str, reason: &str| status == "False" && !is_progress(reason);
    let was_problem = ready(before).is_some_and(|(status, reason)| is_problem(&status, &reason));
    let stalled = after.iter().any(|c| c.type_ == conditions::STALLED);
    let type_ = if is_problem(&current.status, &current.reason) {
        EventType::Warning
    } else if was_problem {
        EventType::Normal
    } else {
        return;
    };
    let event = Event {
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
    };
    if let Err(error) = ctx.recorder.publish(&event, &object.object_ref(&())).await {
        tracing::warn!(%error, "could not publish event");
    }
}

/// Reasons that mean "work in flight", not "something is wrong".
fn is_progress(reason: &str) -> bool {
    matches!(
        reason,
        reasons::ROLLING_OUT
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
