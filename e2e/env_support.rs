//! Helpers of the env_* tests (Environments as a product).

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, DynamicObject};

use crate::paved_support::wait_object;
use crate::support::{WAIT, wait_until};

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

/// Waits until the Deployment's spec.replicas is `want`.
pub async fn wait_replicas(deployments: &Api<Deployment>, name: &str, want: Option<i32>) {
    wait_until(
        &format!("Deployment {name} to have spec.replicas {want:?}"),
        WAIT,
        || async {
            let deployment = deployments.get(name).await.map_err(|e| e.to_string())?;
            let replicas = deployment.spec.and_then(|s| s.replicas);
            (replicas == want)
                .then_some(())
                .ok_or_else(|| format!("spec.replicas {replicas:?}"))
        },
    )
    .await;
}
