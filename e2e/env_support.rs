//! Helpers of the env_* tests (Environments as a product).

use kube::api::{Api, DynamicObject};

use crate::paved_support::wait_object;

/// Waits until the object's status satisfies `holds`.
pub async fn wait_status<F>(
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    holds: F,
) -> DynamicObject
where
    F: Fn(&DynamicObject) -> bool,
{
    wait_object(api, name, &format!("{name}: {what}"), |o| {
        if holds(o) {
            Ok(())
        } else {
            Err(format!("status {}", o.data["status"]))
        }
    })
    .await
}
