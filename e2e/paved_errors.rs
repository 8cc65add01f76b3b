//! Input only the controller can judge (a host outside the domain, a missing
//! Application or dependency, a host another Service holds, a namespace no
//! Environment owns) gives `Ready=False` / `Stalled=True` with a reason and a
//! message, and an Event; nothing is deleted or overwritten.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress, IngressRule};
use kube::api::{Api, DynamicObject, ListParams, PostParams};
use serde_json::{Value, json};

use crate::paved_support::TestEnvironment;
use crate::paved_support::{
    Cleanup, application_manifest, applications, apply, condition, describe_status,
    first_container, holds_for, image, is_absent, service_manifest, services, wait_condition,
    wait_event, wait_exists, wait_object, wait_ready,
};
use crate::support::{WAIT, unique, wait_until};

fn web(application: &str, expose: Value) -> Value {
    json!({
        "application": application,
        "image": image("web", "1"),
        "ports": [{"name": "http", "port": 8080}],
        "expose": expose
    })
}

/// Waits for `Ready=False` with `reason` on the current generation, then checks
/// `Stalled=True` with the same reason, that both say what is wrong (the
/// message mentions `mentions`), and that a Warning Event was recorded.
async fn assert_refused(
    client: &kube::Client,
    api: &Api<DynamicObject>,
    name: &str,
    reason: &str,
    mentions: &str,
) -> DynamicObject {
    let object = wait_condition(api, name, "Ready", "False", Some(reason)).await;
    let ready = condition(&object, "Ready").unwrap();
    assert!(
        ready.message.contains(mentions),
        "the Ready message mentions {mentions}: {ready:?}"
    );
    let stalled = condition(&object, "Stalled");
    assert!(
        stalled
            .as_ref()
            .is_some_and(|c| c.status == "True" && c.reason == reason),
        "Stalled=True ({reason}) as it needs a change from the user; {}",
        describe_status(&object)
    );
    let event = wait_event(
        client,
        object.metadata.namespace.as_deref(),
        object.metadata.uid.as_deref().unwrap(),
        reason,
    )
    .await;
    assert_eq!(event.type_.as_deref(), Some("Warning"), "event: {event:?}");
    assert!(
        event.message.as_deref().is_some_and(|m| !m.is_empty()),
        "event message: {event:?}"
    );
    object
}

fn ingress_host(ingress: &Ingress) -> Option<String> {
    let rules: Vec<IngressRule> = ingress.spec.clone()?.rules?;
    rules.first()?.host.clone()
}

#[tokio::test]
async fn a_host_outside_the_domain_is_refused_and_the_existing_deployment_and_ingress_are_kept() {
    let env = TestEnvironment::create("perr-host").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("web", web("shop", json!({}))).await;
    let services = env.services();
    wait_ready(&services, "web").await;
    let good_host = format!("web.{}", env.domain);
    let deployment = wait_exists(&env.api::<Deployment>(), "web").await;
    let ingress = wait_exists(&env.api::<Ingress>(), "web").await;
    assert_eq!(ingress_host(&ingress), Some(good_host.clone()));

    env.apply_service("web", web("shop", json!({"host": "web.elsewhere.test"})))
        .await;
    assert_refused(
        &env.client,
        &services,
        "web",
        "HostOutsideDomain",
        "web.elsewhere.test",
    )
    .await;
    let kept_deployment = env
        .api::<Deployment>()
        .get("web")
        .await
        .expect("the Deployment is kept");
    assert_eq!(
        kept_deployment.metadata.uid, deployment.metadata.uid,
        "the same Deployment, not a new one"
    );
    let kept_ingress = env
        .api::<Ingress>()
        .get("web")
        .await
        .expect("the Ingress is kept");
    assert_eq!(kept_ingress.metadata.uid, ingress.metadata.uid);
    assert_eq!(
        ingress_host(&kept_ingress),
        Some(good_host.clone()),
        "the Ingress keeps the old host"
    );

    // Ending with the domain's text is not being under the domain.
    let lookalike = format!("evil{}", env.domain);
    env.apply_service("web", web("shop", json!({"host": lookalike})))
        .await;
    assert_refused(
        &env.client,
        &services,
        "web",
        "HostOutsideDomain",
        &lookalike,
    )
    .await;
    assert_eq!(
        ingress_host(&env.api::<Ingress>().get("web").await.unwrap()),
        Some(good_host)
    );

    // Fixing the host recovers.
    let new_host = format!("shop.{}", env.domain);
    env.apply_service("web", web("shop", json!({"host": new_host})))
        .await;
    wait_ready(&services, "web").await;
    wait_until("the Ingress to move to the new host", WAIT, || async {
        let ingress = env
            .api::<Ingress>()
            .get("web")
            .await
            .map_err(|e| e.to_string())?;
        let host = ingress_host(&ingress);
        (host.as_deref() == Some(new_host.as_str()))
            .then_some(())
            .ok_or_else(|| format!("host {host:?}"))
    })
    .await;
}

#[tokio::test]
async fn a_service_of_a_missing_application_is_refused_and_keeps_its_children_until_the_application_exists()
 {
    let env = TestEnvironment::create("perr-app").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("api", web("shop", json!({}))).await;
    let services = env.services();
    wait_ready(&services, "api").await;
    let deployment = env.api::<Deployment>().get("api").await.unwrap();

    env.apply_service("api", web("ghost", json!({}))).await;
    assert_refused(
        &env.client,
        &services,
        "api",
        "ApplicationNotFound",
        "ghost",
    )
    .await;
    let kept = env
        .api::<Deployment>()
        .get("api")
        .await
        .expect("the Deployment is kept");
    assert_eq!(kept.metadata.uid, deployment.metadata.uid);
    assert!(
        !is_absent(&env.api::<CoreService>(), "api").await,
        "the core Service is kept"
    );
    assert!(
        !is_absent(&env.api::<Ingress>(), "api").await,
        "the Ingress is kept"
    );

    env.apply_application("ghost", json!({"owner": "team-ghost"}))
        .await;
    wait_ready(&services, "api").await;
    wait_until(
        "the Deployment to be labelled with the new application",
        WAIT,
        || async {
            let d = env
                .api::<Deployment>()
                .get("api")
                .await
                .map_err(|e| e.to_string())?;
            let app = d
                .metadata
                .labels
                .unwrap_or_default()
                .get("paved.dev/application")
                .cloned();
            (app.as_deref() == Some("ghost"))
                .then_some(())
                .ok_or_else(|| format!("paved.dev/application={app:?}"))
        },
    )
    .await;
}

#[tokio::test]
async fn a_service_created_for_a_missing_application_is_refused_with_application_not_found() {
    let env = TestEnvironment::create("perr-noapp").await;
    env.apply_service("api", web("nowhere", json!({}))).await;
    assert_refused(
        &env.client,
        &env.services(),
        "api",
        "ApplicationNotFound",
        "nowhere",
    )
    .await;
}

#[tokio::test]
async fn a_dependency_on_a_missing_service_is_refused_until_that_service_exists() {
    let env = TestEnvironment::create("perr-dep").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let checkout = |depends: Value| {
        json!({
            "application": "shop",
            "image": image("checkout", "1"),
            "ports": [{"name": "http", "port": 8080}],
            "dependsOn": depends
        })
    };
    env.apply_service("checkout", checkout(json!([]))).await;
    let services = env.services();
    wait_ready(&services, "checkout").await;
    let deployment = env.api::<Deployment>().get("checkout").await.unwrap();

    env.apply_service("checkout", checkout(json!(["payments-api"])))
        .await;
    let refused = assert_refused(
        &env.client,
        &services,
        "checkout",
        "DependencyNotFound",
        "payments-api",
    )
    .await;
    assert_eq!(
        refused.data["status"]["dependencies"],
        json!([{"name": "payments-api", "ready": false}]),
        "status.dependencies: {}",
        refused.data["status"]
    );
    let kept = env
        .api::<Deployment>()
        .get("checkout")
        .await
        .expect("the Deployment is kept");
    assert_eq!(kept.metadata.uid, deployment.metadata.uid);

    env.apply_service(
        "payments-api",
        json!({"application": "shop", "image": image("payments", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    wait_ready(&services, "payments-api").await;
    wait_ready(&services, "checkout").await;
    // The dependency's readiness follows its own status write: wait for it
    // rather than race the controller.
    wait_object(
        &services,
        "checkout",
        "checkout to see payments-api ready",
        |o| {
            (o.data["status"]["dependencies"] == json!([{"name": "payments-api", "ready": true}]))
                .then_some(())
                .ok_or_else(|| format!("dependencies {}", o.data["status"]["dependencies"]))
        },
    )
    .await;
    let deployment = env.api::<Deployment>().get("checkout").await.unwrap();
    assert!(
        first_container(&deployment)
            .env
            .iter()
            .flatten()
            .any(|e| e.name == "PAYMENTS_API_URL"),
        "the dependency's URL is injected once it exists"
    );
}

#[tokio::test]
async fn an_application_and_a_service_outside_any_environment_stall_with_not_in_environment_and_get_no_children()
 {
    // A real Environment exists, and the loose namespace even carries its label:
    // a label anyone can set does not make a namespace the Environment's.
    let env = TestEnvironment::create("perr-owner").await;
    let client = env.client.clone();
    let namespace = unique("perr-loose");
    let mut guard = Cleanup::default();
    guard.namespaces.push(namespace.clone());
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {
                "name": namespace,
                "labels": {"paved.dev/environment": env.name}
            }}))
            .unwrap(),
        )
        .await
        .unwrap();
    let applications = applications(&client, &namespace);
    let services = services(&client, &namespace);
    apply(
        &applications,
        application_manifest("shop", json!({"owner": "team-shop"})),
    )
    .await;
    apply(
        &services,
        service_manifest("web", web("shop", json!({"host": "web.example.test"}))),
    )
    .await;

    for (kind, api) in [("Application", &applications), ("Service", &services)] {
        let name = if kind == "Application" { "shop" } else { "web" };
        let stalled = wait_condition(api, name, "Stalled", "True", Some("NotInEnvironment")).await;
        let ready = condition(&stalled, "Ready").expect("Ready is always present");
        assert_eq!(ready.status, "False", "{kind} Ready: {ready:?}");
        let message = condition(&stalled, "Stalled").unwrap().message;
        assert!(
            message.contains(&namespace),
            "{kind}: the message names the namespace: {message}"
        );
    }
    let web = services.get("web").await.unwrap();
    wait_event(
        &client,
        Some(&namespace),
        web.metadata.uid.as_deref().unwrap(),
        "NotInEnvironment",
    )
    .await;

    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=paved");
    let none = |count: usize, kind: &str| {
        assert_eq!(count, 0, "no {kind} in a namespace no Environment owns")
    };
    none(
        Api::<Deployment>::namespaced(client.clone(), &namespace)
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
        "Deployment",
    );
    none(
        Api::<CoreService>::namespaced(client.clone(), &namespace)
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
        "Service",
    );
    none(
        Api::<Ingress>::namespaced(client.clone(), &namespace)
            .list(&managed)
            .await
            .unwrap()
            .items
            .len(),
        "Ingress",
    );
    assert!(
        is_absent(
            &Api::<Deployment>::namespaced(client.clone(), &namespace),
            "web"
        )
        .await
    );
}

#[tokio::test]
async fn of_two_services_claiming_one_host_the_first_keeps_it_and_the_second_gets_host_conflict_until_it_is_released()
 {
    let env = TestEnvironment::create("perr-claim").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let host = format!("shop.{}", env.domain);
    // The first claimant sorts last by name, so a claim decided by name would lose.
    env.apply_service("zz-first", web("shop", json!({"host": host})))
        .await;
    let services = env.services();
    let first = wait_ready(&services, "zz-first").await;
    let first_ingress = wait_exists(&env.api::<Ingress>(), "zz-first").await;
    assert_eq!(ingress_host(&first_ingress), Some(host.clone()));
    // creationTimestamp has one-second resolution: make the order unambiguous.
    let created = first.metadata.creation_timestamp.clone().unwrap().0;
    wait_until("a second to pass since the first claim", WAIT, || async {
        let age = k8s_openapi::jiff::Timestamp::now().duration_since(created);
        (age > k8s_openapi::jiff::SignedDuration::from_millis(1500))
            .then_some(())
            .ok_or_else(|| format!("age {age:?}"))
    })
    .await;

    env.apply_service("aa-second", web("shop", json!({"host": host})))
        .await;
    assert_refused(
        &env.client,
        &services,
        "aa-second",
        "HostConflict",
        "zz-first",
    )
    .await;
    assert!(
        is_absent(&env.api::<Ingress>(), "aa-second").await,
        "the second claimant gets no Ingress"
    );

    holds_for(
        "the first claimant to keep its host and stay Ready",
        Duration::from_secs(3),
        || async {
            let first = services.get("zz-first").await.map_err(|e| e.to_string())?;
            let ready = condition(&first, "Ready").map(|c| c.status);
            let ingress = env
                .api::<Ingress>()
                .get("zz-first")
                .await
                .map_err(|e| e.to_string())?;
            if ready.as_deref() == Some("True")
                && ingress_host(&ingress).as_deref() == Some(host.as_str())
            {
                Ok(())
            } else {
                Err(format!(
                    "Ready {ready:?}, host {:?}",
                    ingress_host(&ingress)
                ))
            }
        },
    )
    .await;
    assert_eq!(
        env.api::<Ingress>()
            .get("zz-first")
            .await
            .unwrap()
            .metadata
            .resource_version,
        first_ingress.metadata.resource_version,
        "the first claimant's Ingress was not rewritten"
    );

    // The host is released with its holder: the remaining claimant gets it.
    services
        .delete("zz-first", &Default::default())
        .await
        .unwrap();
    wait_ready(&services, "aa-second").await;
    wait_until(
        "the second claimant's Ingress on the host",
        WAIT,
        || async {
            let ingress = env
                .api::<Ingress>()
                .get_opt("aa-second")
                .await
                .map_err(|e| e.to_string())?;
            let found = ingress.as_ref().and_then(ingress_host);
            (found.as_deref() == Some(host.as_str()))
                .then_some(())
                .ok_or_else(|| format!("host {found:?}"))
        },
    )
    .await;
}
