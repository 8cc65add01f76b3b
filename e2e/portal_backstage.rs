//! The Backstage catalog endpoint (`GET /catalog/backstage`): what a Backstage
//! `url` location would read, checked for content against the live objects and
//! validated by Backstage's own `@backstage/catalog-model` validators (npm, in
//! e2e/integrations/backstage; `.ci/install-deps` installs them).

use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::paved_support::{TestEnvironment, backstage_entities, image, wait_ready};
use crate::ship_support::repo_root;

fn entities_of(namespace: &str, environment: &str) -> Vec<Value> {
    backstage_entities()
        .into_iter()
        .filter(|e: &Value| {
            e["metadata"]["namespace"] == namespace
                || (e["kind"] == "Resource" && e["metadata"]["name"] == environment)
        })
        .collect()
}

fn validate_with_backstage(entities: &[Value]) -> String {
    let dir = repo_root().join("e2e/integrations/backstage");
    assert!(
        dir.join("node_modules/@backstage/catalog-model").exists(),
        "run `npm ci --prefix e2e/integrations/backstage` (.ci/install-deps does)"
    );
    let yaml = entities
        .iter()
        .map(|e| serde_yaml::to_string(e).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let mut child = Command::new("node")
        .arg("validate.mjs")
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "Backstage rejects the entities:\n{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    report
}

#[tokio::test]
async fn the_backstage_catalog_lists_environment_system_and_components_that_backstage_accepts() {
    let env = TestEnvironment::create_with(
        "portal-bs",
        json!({"access": [{"group": "team-shop", "role": "developer"}]}),
    )
    .await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production", "description": "The shop",
               "links": [{"title": "Repository", "url": "https://example.test/shop"}]}),
    )
    .await;
    env.apply_service("api", json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}]}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}],
               "dependsOn": ["api"], "expose": {}}),
    )
    .await;
    wait_ready(&env.services(), "web").await;

    let entities = entities_of(&env.namespace, &env.name);
    let find = |kind: &str, name: &str| {
        entities
            .iter()
            .find(|e| e["kind"] == kind && e["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in {entities:#?}"))
            .clone()
    };
    let resource = find("Resource", &env.name);
    assert_eq!(resource["spec"]["type"], "environment");
    assert_eq!(resource["spec"]["owner"], "group:default/team-shop");
    let system = find("System", "shop");
    assert_eq!(system["spec"]["owner"], "group:default/team-shop");
    assert_eq!(system["metadata"]["description"], "The shop");
    let web = find("Component", "web");
    assert_eq!(web["spec"]["system"], "shop");
    assert_eq!(web["spec"]["lifecycle"], "production");
    assert_eq!(
        web["spec"]["dependsOn"],
        json!([format!("component:{}/api", env.namespace)])
    );
    assert_eq!(
        web["metadata"]["annotations"]["backstage.io/kubernetes-id"],
        "shop"
    );
    assert_eq!(
        web["metadata"]["links"][0]["url"],
        format!("http://web.{}", env.domain)
    );
    find("Component", "api");
    assert_eq!(entities.len(), 4, "{entities:#?}");

    let report = validate_with_backstage(&entities);
    assert!(report.contains("4 entities, 0 invalid"), "{report}");
}

/// Whoever reaches the port may ask for the catalog, and every answer lists
/// every Environment, Application and Service. A flood of requests at once
/// must not become a flood of lists (each held whole in the controller's
/// memory, and the API server's work): requests that come together share one,
/// and none is answered from a list older than the request itself.
#[tokio::test]
async fn a_flood_of_catalog_requests_shares_lists_and_each_answer_holds_what_was_applied_before_it()
{
    use crate::paved_support::{metric_sum, scrape_metrics};
    const REQUESTS: usize = 64;
    let env = TestEnvironment::create("portal-flood").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;

    let lists = || metric_sum(&scrape_metrics(), "paved_catalog_lists_total", &[]);
    // Another test may restart the controller (its counter starts again at 0):
    // a flood it cut in two is run again.
    for _attempt in 0..3 {
        let before = lists();
        let start = std::sync::Arc::new(std::sync::Barrier::new(REQUESTS));
        let floods: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let start = start.clone();
                std::thread::spawn(move || {
                    start.wait();
                    backstage_entities()
                })
            })
            .collect();
        let answers: Vec<Vec<Value>> = floods.into_iter().map(|t| t.join().unwrap()).collect();
        let after = lists();
        if after < before {
            continue;
        }
        for entities in &answers {
            assert!(
                entities.iter().any(|e| e["kind"] == "Component"
                    && e["metadata"]["namespace"] == env.namespace.as_str()
                    && e["metadata"]["name"] == "api"),
                "an answer without the Service applied before the request: {} entities",
                entities.len()
            );
        }
        // One list per request would be 64 (and more with other tests' reads).
        let made = after - before;
        eprintln!("FIGURE catalog: {made} sets of lists for {REQUESTS} requests at once");
        assert!(
            (1.0..=16.0).contains(&made),
            "{made} sets of lists for {REQUESTS} requests at once"
        );
        return;
    }
    panic!("the controller restarted during every flood");
}
