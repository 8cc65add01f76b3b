//! Previews: an Environment with `cloneFrom` gets copies of its base's
//! Applications and Services (labelled, owned by the preview), with overrides
//! applied and hosts moved to its own domain; the copies follow the base; an
//! object a user creates (or takes over) in the preview takes precedence; and
//! when the base is deleted the preview keeps running and says the base is gone.

use k8s_openapi::api::apps::v1::Deployment;
use kube::ResourceExt;
use kube::api::{DeleteParams, DynamicObject};
use serde_json::{Value, json};

use crate::env_support::wait_status;
use crate::paved_support::{
    TestEnvironment, environments, image, labels, service_manifest, wait_condition, wait_exists,
    wait_object, wait_ready,
};

fn spec_image(object: &DynamicObject) -> String {
    object.data["spec"]["image"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn wait_image(env: &TestEnvironment, service: &str, want: &str) -> DynamicObject {
    wait_object(
        &env.services(),
        service,
        &format!("{}/{service} to run {want}", env.namespace),
        |o| {
            (spec_image(o) == want)
                .then_some(())
                .ok_or_else(|| format!("image {}", spec_image(o)))
        },
    )
    .await
}

fn list(status: &Value, field: &str) -> Vec<String> {
    status["base"][field]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(String::from))
        .collect()
}

#[tokio::test]
async fn a_preview_follows_its_base_with_overrides_user_objects_win_and_it_outlives_its_base() {
    let base = TestEnvironment::create_with("env-base", json!({"type": "staging"})).await;
    base.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    base.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    base.apply_service(
        "web",
        json!({
            "application": "shop", "image": image("web", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "expose": {"host": format!("shop.{}", base.domain)},
            "dependsOn": ["api"],
        }),
    )
    .await;
    wait_ready(&base.services(), "web").await;

    let preview = TestEnvironment::create_with(
        "env-preview",
        json!({"type": "preview", "cloneFrom": {
            "environment": base.name,
            "overrides": [{"service": "api", "image": image("api", "pr-1"), "env": [{"name": "FEATURE", "value": "on"}]}],
        }}),
    )
    .await;

    // Copies, labelled and owned by the preview, overrides applied, host moved.
    let app = wait_exists(&preview.applications(), "shop").await;
    assert_eq!(labels(&app.metadata)["paved.dev/cloned-from"], base.name);
    let api = wait_image(&preview, "api", &image("api", "pr-1")).await;
    assert_eq!(
        api.data["spec"]["env"],
        json!([{"name": "FEATURE", "value": "on"}])
    );
    assert_eq!(api.owner_references()[0].kind, "Environment");
    assert_eq!(api.owner_references()[0].name, preview.name);
    let web = wait_image(&preview, "web", &image("web", "1")).await;
    assert_eq!(
        web.data["spec"]["expose"]["host"],
        json!(format!("shop.{}", preview.domain))
    );
    // And they run, in the preview's own namespace.
    let web = wait_ready(&preview.services(), "web").await;
    assert_eq!(
        web.data["status"]["url"],
        json!(format!("http://shop.{}", preview.domain))
    );
    wait_exists(&preview.api::<Deployment>(), "api").await;
    let status = wait_status(
        &environments(&preview.client),
        &preview.name,
        "base copied",
        |o| list(&o.data["status"], "services").len() == 2,
    )
    .await
    .data["status"]
        .clone();
    assert_eq!(status["base"]["present"], json!(true), "{status}");
    assert_eq!(list(&status, "applications"), ["shop"]);
    assert_eq!(list(&status, "services"), ["api", "web"]);
    assert_eq!(list(&status, "overridden"), ["api"]);

    // A change in the base reaches the preview.
    base.apply_service(
        "web",
        json!({
            "application": "shop", "image": image("web", "2"),
            "ports": [{"name": "http", "port": 8080}],
            "expose": {"host": format!("shop.{}", base.domain)},
            "dependsOn": ["api"],
        }),
    )
    .await;
    wait_image(&preview, "web", &image("web", "2")).await;

    // A Service the user created in the preview first takes precedence.
    preview
        .apply_service(
            "cart",
            json!({"application": "shop", "image": image("cart", "mine")}),
        )
        .await;
    base.apply_service(
        "cart",
        json!({"application": "shop", "image": image("cart", "1")}),
    )
    .await;
    wait_status(
        &environments(&preview.client),
        &preview.name,
        "cart shadowed",
        |o| list(&o.data["status"], "shadowed").contains(&"Service/cart".to_string()),
    )
    .await;
    let cart = preview.services().get("cart").await.unwrap();
    assert_eq!(spec_image(&cart), image("cart", "mine"));
    assert!(!labels(&cart.metadata).contains_key("paved.dev/cloned-from"));

    // A Service removed from the base is removed from the preview; the
    // user's own one of the same name is not.
    base.apply_service(
        "gone",
        json!({"application": "shop", "image": image("gone", "1")}),
    )
    .await;
    wait_exists(&preview.services(), "gone").await;
    base.services()
        .delete("gone", &DeleteParams::background())
        .await
        .unwrap();
    crate::paved_support::wait_gone(&preview.services(), "gone").await;
    base.services()
        .delete("cart", &DeleteParams::background())
        .await
        .unwrap();
    crate::paved_support::holds_for(
        "the user's cart stays in the preview",
        std::time::Duration::from_secs(3),
        || async {
            preview
                .services()
                .get_opt("cart")
                .await
                .map_err(|e| e.to_string())?
                .map(|_| ())
                .ok_or_else(|| "cart was deleted".to_string())
        },
    )
    .await;

    // A user (or Argo CD) deploying their own version over a copy takes it over.
    crate::paved_support::apply(
        &preview.services(),
        service_manifest(
            "web",
            json!({
                "application": "shop", "image": image("web", "pr-1"),
                "ports": [{"name": "http", "port": 8080}], "expose": {}, "dependsOn": ["api"],
            }),
        ),
    )
    .await;
    base.apply_service(
        "web",
        json!({
            "application": "shop", "image": image("web", "3"),
            "ports": [{"name": "http", "port": 8080}],
            "expose": {"host": format!("shop.{}", base.domain)},
            "dependsOn": ["api"],
        }),
    )
    .await;
    wait_status(
        &environments(&preview.client),
        &preview.name,
        "web shadowed",
        |o| list(&o.data["status"], "shadowed").contains(&"Service/web".to_string()),
    )
    .await;
    assert_eq!(
        spec_image(&preview.services().get("web").await.unwrap()),
        image("web", "pr-1"),
        "the user's version is not overwritten"
    );

    // The base goes away: the preview keeps running and says so.
    environments(&base.client)
        .delete(&base.name, &DeleteParams::background())
        .await
        .unwrap();
    let stalled = wait_condition(
        &environments(&preview.client),
        &preview.name,
        "Stalled",
        "True",
        Some("BaseMissing"),
    )
    .await;
    assert_eq!(stalled.data["status"]["base"]["present"], json!(false));
    let message = crate::paved_support::condition(&stalled, "Ready")
        .unwrap()
        .message;
    assert!(message.contains(&base.name), "{message}");
    crate::paved_support::wait_gone(
        &kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(base.client.clone()),
        &base.namespace,
    )
    .await;
    // Still there, still running the copies.
    let api = preview.services().get("api").await.unwrap();
    assert_eq!(spec_image(&api), image("api", "pr-1"));
    wait_exists(&preview.api::<Deployment>(), "api").await;
    wait_ready(&preview.services(), "api").await;
}
