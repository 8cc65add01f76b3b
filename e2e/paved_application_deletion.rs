//! Deleting an Application reaches its Services at once: they stop reporting
//! Ready (ApplicationNotFound) well before any periodic resync. The Application
//! watch of the Service controller filters on generation, which a deletion
//! does not change; a deletion must trigger anyway.

use std::time::Duration;

use kube::api::DeleteParams;
use serde_json::json;

use crate::paved_support::{TestEnvironment, condition, describe_status, image, wait_ready};
use crate::support::wait_until;

#[tokio::test]
async fn deleting_an_application_updates_its_services_status_at_once() {
    let env = TestEnvironment::create("app-delete").await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "description": "The shop", "lifecycle": "experimental"}),
    )
    .await;
    for name in ["web", "worker"] {
        env.apply_service(
            name,
            json!({"application": "shop", "image": image(name, "1")}),
        )
        .await;
    }
    let services = env.services();
    for name in ["web", "worker"] {
        wait_ready(&services, name).await;
    }

    env.applications()
        .delete("shop", &DeleteParams::default())
        .await
        .expect("delete the Application");
    // Far below the resync period: only a watch event can explain it.
    for name in ["web", "worker"] {
        wait_until(
            &format!("{name} to report its Application gone"),
            Duration::from_secs(15),
            || async {
                let service = services.get(name).await.map_err(|e| e.to_string())?;
                match condition(&service, "Ready") {
                    Some(ready)
                        if ready.status != "True" && ready.reason == "ApplicationNotFound" =>
                    {
                        Ok(())
                    }
                    _ => Err(describe_status(&service)),
                }
            },
        )
        .await;
    }
}
