//! Issue 11, "a domain belongs to one Environment", as a tenant who tries to
//! capture other tenants' hosts: a public suffix as domain, or a domain equal
//! to, above or under another Environment's, gets a condition on the later
//! Environment and no host for its Services; the first Environment keeps its
//! hosts. Single-label domains never get this far: the schema refuses them
//! (`paved_schema::a_domain_of_a_single_label_such_as_com_or_localhost_is_rejected`).

use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{Api, DeleteParams};
use serde_json::{Value, json};

use crate::paved_support::{
    Cleanup, TestEnvironment, apply, condition, environment_manifest, environments, image,
    is_absent, services, wait_condition, wait_exists, wait_ready,
};
use crate::support::{WAIT, client, unique, wait_until};

fn web(expose: Value) -> Value {
    json!({
        "application": "shop",
        "image": image("web", "1"),
        "ports": [{"name": "http", "port": 8080}],
        "expose": expose
    })
}

fn ingress_host(ingress: &Ingress) -> Option<String> {
    ingress.spec.as_ref()?.rules.as_ref()?.first()?.host.clone()
}

/// An Environment with an arbitrary domain, deleted when the guard drops.
async fn environment_with_domain(prefix: &str, domain: &str, guard: &mut Cleanup) -> String {
    let name = unique(prefix);
    guard.environments.push(name.clone());
    apply(
        &environments(&client().await),
        environment_manifest(&name, json!({"type": "development", "domain": domain})),
    )
    .await;
    name
}

#[tokio::test]
async fn a_public_suffix_domain_is_stalled_and_its_services_get_no_ingress() {
    for domain in ["co.uk", "github.io"] {
        let env = TestEnvironment::create_with("tdom-psl", json!({"domain": domain})).await;
        let object = wait_condition(
            &environments(&env.client),
            &env.name,
            "Stalled",
            "True",
            Some("PublicSuffixDomain"),
        )
        .await;
        let stalled = condition(&object, "Stalled").unwrap();
        assert!(stalled.message.contains(domain), "{stalled:?}");
        assert!(!stalled.message.contains('\n'), "{stalled:?}");

        env.apply_application("shop", json!({"owner": "team-shop"}))
            .await;
        env.apply_service("web", web(json!({}))).await;
        wait_condition(
            &env.services(),
            "web",
            "Stalled",
            "True",
            Some("PublicSuffixDomain"),
        )
        .await;
        assert!(
            is_absent(&env.api::<Ingress>(), "web").await,
            "no Ingress for web.{domain}"
        );
    }
}

#[tokio::test]
async fn a_later_environment_with_an_equal_parent_or_child_domain_is_stalled_and_the_first_keeps_its_hosts()
 {
    // Under a parent of its own, so that the parent overlaps only this test's
    // Environments (every test's domain lies under example.test).
    let base = format!("{}.example.test", unique("tdom-base"));
    let first_domain = format!("shop.{base}");
    let first = TestEnvironment::create_with("tdom-first", json!({"domain": first_domain})).await;
    first
        .apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    first.apply_service("web", web(json!({}))).await;
    wait_ready(&first.services(), "web").await;

    // Claims are ordered by creationTimestamp, which has second precision, then
    // by name: the later Environments must be created in a later second than
    // the first, or "tdom-equal" would sort before "tdom-first".
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut guard = Cleanup::default();
    let parent_domain = base.clone();
    let equal = environment_with_domain("tdom-equal", &first_domain, &mut guard).await;
    let parent = environment_with_domain("tdom-parent", &parent_domain, &mut guard).await;
    let child =
        environment_with_domain("tdom-child", &format!("team.{}", first_domain), &mut guard).await;
    let api = environments(&first.client);
    for later in [&equal, &parent, &child] {
        let object = wait_condition(&api, later, "Stalled", "True", Some("DomainConflict")).await;
        let stalled = condition(&object, "Stalled").unwrap();
        assert!(
            stalled
                .message
                .contains(&format!("Environment {}", first.name)),
            "the condition names the Environment that holds the domain: {stalled:?}"
        );
        assert!(!stalled.message.contains('\n'));
    }
    // The first Environment is untouched.
    let holder = wait_ready(&api, &first.name).await;
    assert!(condition(&holder, "Stalled").is_none());

    // The capture attempt: the later parent asks first for a host under the
    // first Environment's domain; the rightful owner still gets it.
    let parent_services = services(&first.client, &parent);
    wait_exists(
        &Api::<k8s_openapi::api::core::v1::Namespace>::all(first.client.clone()),
        &parent,
    )
    .await;
    apply(
        &crate::paved_support::applications(&first.client, &parent),
        crate::paved_support::application_manifest("shop", json!({"owner": "team-evil"})),
    )
    .await;
    let stolen_host = format!("shop.{}", first_domain);
    apply(
        &parent_services,
        crate::paved_support::service_manifest("shop", web(json!({"host": stolen_host}))),
    )
    .await;
    wait_condition(
        &parent_services,
        "shop",
        "Stalled",
        "True",
        Some("DomainConflict"),
    )
    .await;
    assert!(
        is_absent(
            &Api::<Ingress>::namespaced(first.client.clone(), &parent),
            "shop"
        )
        .await,
        "the later Environment's Service gets no Ingress"
    );
    first.apply_service("shop", web(json!({}))).await;
    wait_ready(&first.services(), "shop").await;
    let ingress = wait_exists(&first.api::<Ingress>(), "shop").await;
    assert_eq!(ingress_host(&ingress), Some(stolen_host));
    let web_ingress = wait_exists(&first.api::<Ingress>(), "web").await;
    assert_eq!(
        ingress_host(&web_ingress),
        Some(format!("web.{}", first_domain)),
        "the first Environment's Services keep their hosts"
    );

    // Resolved: once the holder is gone, one of the three (all overlap each
    // other) takes the domain, the first in claim order, and the two others
    // now name it.
    api.delete(&first.name, &DeleteParams::background())
        .await
        .unwrap();
    let later = [equal.clone(), parent.clone(), child.clone()];
    let new_holder = wait_until(
        "one of the later Environments to take the domain",
        WAIT,
        || async {
            for name in &later {
                let object = api.get(name).await.map_err(|e| e.to_string())?;
                if condition(&object, "Ready").is_some_and(|c| c.status == "True") {
                    return Ok(name.clone());
                }
            }
            Err("none Ready yet".to_string())
        },
    )
    .await;
    for name in later.iter().filter(|n| **n != new_holder) {
        wait_until(
            &format!("{name} to name the new holder {new_holder}"),
            WAIT,
            || async {
                let object = api.get(name).await.map_err(|e| e.to_string())?;
                match condition(&object, "Stalled") {
                    Some(c)
                        if c.reason == "DomainConflict"
                            && c.message.contains(&format!("Environment {new_holder}")) =>
                    {
                        Ok(())
                    }
                    other => Err(format!("{other:?}")),
                }
            },
        )
        .await;
    }
}

#[tokio::test]
async fn a_delegated_subdomain_is_the_childs_and_the_parent_cannot_serve_hosts_in_it() {
    let delegated = |domain: &str| format!("staging.{domain}");
    let name = unique("tdom-deleg");
    let domain = format!("{name}.example.test");
    let parent = TestEnvironment::create_with(
        "tdom-deleg",
        json!({"domain": domain, "delegatedDomains": [delegated(&domain)]}),
    )
    .await;
    let mut guard = Cleanup::default();
    let child = environment_with_domain("tdom-delegchild", &delegated(&domain), &mut guard).await;
    wait_ready(&environments(&parent.client), &child).await;
    wait_ready(&environments(&parent.client), &parent.name).await;

    parent
        .apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    parent
        .apply_service(
            "web",
            web(json!({"host": format!("web.{}", delegated(&domain))})),
        )
        .await;
    wait_condition(
        &parent.services(),
        "web",
        "Stalled",
        "True",
        Some("HostInDelegatedDomain"),
    )
    .await;
    assert!(is_absent(&parent.api::<Ingress>(), "web").await);
}

#[tokio::test]
async fn an_older_environment_that_moves_its_domain_onto_a_held_one_is_stalled_and_the_holder_keeps_its_hosts()
 {
    let base = format!("{}.example.test", unique("tdom-move"));
    let shop_domain = format!("shop.{base}");
    // The mover exists first, with a domain of its own: older in creation order.
    let mover =
        TestEnvironment::create_with("tdom-mover", json!({"domain": format!("mover.{base}")}))
            .await;
    let api = environments(&mover.client);
    wait_ready(&api, &mover.name).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let holder = TestEnvironment::create_with("tdom-holder", json!({"domain": shop_domain})).await;
    holder
        .apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    holder.apply_service("web", web(json!({}))).await;
    wait_ready(&holder.services(), "web").await;
    let held = wait_ready(&api, &holder.name).await;
    let claim = held.data["status"]["domain"].clone();
    assert_eq!(claim["name"], shop_domain, "{claim}");

    // The capture attempt: the older Environment takes the holder's domain.
    crate::paved_support::merge_patch(&api, &mover.name, json!({"spec": {"domain": shop_domain}}))
        .await;
    let object = wait_condition(&api, &mover.name, "Stalled", "True", Some("DomainConflict")).await;
    let stalled = condition(&object, "Stalled").unwrap();
    assert!(
        stalled
            .message
            .contains(&format!("Environment {}", holder.name)),
        "{stalled:?}"
    );
    assert!(
        object.data["status"]["domain"].is_null(),
        "the mover holds nothing"
    );
    let after = wait_ready(&api, &holder.name).await;
    assert_eq!(
        after.data["status"]["domain"], claim,
        "the claim keeps its time"
    );
    mover
        .apply_application("shop", json!({"owner": "team-evil"}))
        .await;
    mover.apply_service("web", web(json!({}))).await;
    wait_condition(
        &mover.services(),
        "web",
        "Stalled",
        "True",
        Some("DomainConflict"),
    )
    .await;
    assert!(is_absent(&mover.api::<Ingress>(), "web").await);
    let ingress = wait_exists(&holder.api::<Ingress>(), "web").await;
    assert_eq!(ingress_host(&ingress), Some(format!("web.{shop_domain}")));
}
