//! Port: the exporter configuration in `examples/integrations/port/` maps live
//! Paved objects to entities of the shipped blueprints. Every jq expression is
//! run with the real `jq` over objects read from the local cluster, and each
//! result is checked against the blueprint it lands in (property types, enum
//! values, relation targets, identifier syntax).

use std::collections::BTreeMap;
use std::process::Command;

use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, application_resource, environment_resource, image, service_resource,
    wait_object, wait_ready,
};
use crate::ship_support::{object_json, repo_root, yaml_file_as_json};

const CLUSTER_NAME: &str = "e2e-cluster";

/// `jq -c EXPR` over `input`, with the exporter's CLUSTER_NAME in the environment.
fn jq(expression: &str, input: &Value) -> Value {
    let mut child = Command::new("jq")
        .args(["-c", expression])
        .env("CLUSTER_NAME", CLUSTER_NAME)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("jq is installed (Debian package jq)");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "jq {expression:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("jq {expression:?} printed no single JSON value ({e})"))
}

/// One entity as Port's exporter would build it from `object`.
#[derive(Debug)]
struct Entity {
    identifier: String,
    title: String,
    blueprint: String,
    properties: BTreeMap<String, Value>,
    relations: BTreeMap<String, Value>,
}

fn map_entity(mapping: &Value, object: &Value) -> Entity {
    let string = |field: &str| match jq(
        mapping[field]
            .as_str()
            .unwrap_or_else(|| panic!("mapping has {field}")),
        object,
    ) {
        Value::String(s) => s,
        other => panic!("{field} must map to a string, got {other}"),
    };
    let evaluate_all = |field: &str| -> BTreeMap<String, Value> {
        mapping[field]
            .as_object()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| (k.clone(), jq(v.as_str().expect("jq expression"), object)))
                    .collect()
            })
            .unwrap_or_default()
    };
    Entity {
        identifier: string("identifier"),
        title: string("title"),
        blueprint: string("blueprint"),
        properties: evaluate_all("properties"),
        relations: evaluate_all("relations"),
    }
}

/// Port accepts identifiers of these characters only.
fn valid_identifier(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@_.+:\\/=-".contains(c))
}

fn check_against_blueprint(entity: &Entity, blueprints: &[Value]) {
    let blueprint = blueprints
        .iter()
        .find(|b| b["identifier"] == entity.blueprint.as_str())
        .unwrap_or_else(|| panic!("no blueprint {} in blueprints.json", entity.blueprint));
    assert!(
        valid_identifier(&entity.identifier),
        "identifier {:?} is not valid in Port",
        entity.identifier
    );
    let schema = &blueprint["schema"]["properties"];
    let required: Vec<&Value> = blueprint["schema"]["required"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    for (name, value) in &entity.properties {
        let declared = &schema[name];
        assert!(
            declared.is_object(),
            "{}: property {name} is not in the blueprint",
            entity.blueprint
        );
        // null leaves a property unset in Port: fine unless it is required.
        if value.is_null() && !required.contains(&&json!(name)) {
            continue;
        }
        let matches = match declared["type"].as_str().unwrap() {
            "string" => value.is_string(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            other => panic!("unexpected blueprint type {other}"),
        };
        assert!(
            matches,
            "{}.{name} = {value} does not match type {}",
            entity.blueprint, declared["type"]
        );
        if let Some(allowed) = declared["enum"].as_array() {
            assert!(
                allowed.contains(value),
                "{}.{name} = {value} is not one of {allowed:?}",
                entity.blueprint
            );
        }
    }
    for required in blueprint["schema"]["required"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert!(
            entity.properties.contains_key(required.as_str().unwrap()),
            "{}: required {required} unmapped",
            entity.blueprint
        );
    }
    for (name, value) in &entity.relations {
        let relation = &blueprint["relations"][name];
        assert!(
            relation.is_object(),
            "{}: relation {name} is not in the blueprint",
            entity.blueprint
        );
        let targets: Vec<&Value> = if relation["many"] == true {
            value
                .as_array()
                .unwrap_or_else(|| panic!("{name} is many: expected an array, got {value}"))
                .iter()
                .collect()
        } else {
            vec![value]
        };
        for target in targets {
            assert!(
                target.as_str().is_some_and(valid_identifier),
                "{}: relation {name} = {target} is no identifier",
                entity.blueprint
            );
        }
    }
}

#[tokio::test]
async fn port_exporter_mappings_turn_live_objects_into_valid_entities() {
    let env = TestEnvironment::create("ship-port").await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production", "description": "The shop",
               "links": [{"title": "Repository", "url": "https://git.example.test/shop"}]}),
    )
    .await;
    env.apply_service("payments", json!({"application": "shop", "image": image("payments", "2"), "ports": [{"name": "http", "port": 8080}]})).await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}],
               "expose": {}, "dependsOn": ["payments"], "replicas": 2,
               "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}),
    )
    .await;
    wait_ready(&env.services(), "payments").await;
    wait_ready(&env.services(), "web").await;
    wait_ready(&env.applications(), "shop").await;
    // The usage figures (kwok's default use, 1m and 1Mi a pod) reach every kind.
    let measured = |pods: i64| {
        move |o: &DynamicObject| {
            let usage = &o.data["status"]["usage"];
            (usage["available"] == true && usage["pods"] == pods)
                .then_some(())
                .ok_or(format!("usage {usage}"))
        }
    };
    wait_object(&env.services(), "web", "web measured", measured(2)).await;
    wait_object(&env.applications(), "shop", "shop measured", measured(3)).await;
    wait_object(
        &crate::paved_support::environments(&env.client),
        &env.name,
        "the environment measured",
        measured(3),
    )
    .await;

    let root = repo_root();
    let config = yaml_file_as_json("examples/integrations/port/exporter-config.yaml");
    let blueprints: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(root.join("examples/integrations/port/blueprints.json")).unwrap(),
    )
    .expect("blueprints.json is JSON");

    let mut entities: BTreeMap<String, Entity> = BTreeMap::new();
    let mut statuses: BTreeMap<String, Value> = BTreeMap::new();
    for resource in config["resources"].as_array().expect("resources") {
        let kind = resource["kind"].as_str().unwrap();
        let (api_resource, namespaced): (ApiResource, bool) = match kind {
            "paved.dev/v1alpha1/environments" => (environment_resource(), false),
            "paved.dev/v1alpha1/applications" => (application_resource(), true),
            "paved.dev/v1alpha1/services" => (service_resource(), true),
            other => panic!("unexpected kind {other} in the exporter config"),
        };
        let api: Api<DynamicObject> = if namespaced {
            Api::namespaced_with(env.client.clone(), &env.namespace, &api_resource)
        } else {
            Api::all_with(env.client.clone(), &api_resource)
        };
        let objects = api.list(&ListParams::default()).await.unwrap().items;
        let ours = objects
            .into_iter()
            .filter(|o| !namespaced || o.metadata.namespace.as_deref() == Some(&env.namespace));
        let ours: Vec<DynamicObject> = if namespaced {
            ours.collect()
        } else {
            ours.filter(|o| o.metadata.name.as_deref() == Some(env.name.as_str()))
                .collect()
        };
        assert!(!ours.is_empty(), "no {kind} of this test to map");
        for object in ours {
            let json = object_json(&object);
            assert_eq!(
                jq(resource["selector"]["query"].as_str().unwrap(), &json),
                json!(true),
                "selector of {kind}"
            );
            for mapping in resource["port"]["entity"]["mappings"].as_array().unwrap() {
                let entity = map_entity(mapping, &json);
                check_against_blueprint(&entity, &blueprints);
                statuses.insert(entity.identifier.clone(), json["status"].clone());
                entities.insert(entity.identifier.clone(), entity);
            }
        }
    }

    // What a Port user sees, spot-checked against the live objects.
    let ns = &env.namespace;
    let environment = &entities[&format!("{ns}-{CLUSTER_NAME}")];
    assert_eq!(environment.title, env.name);
    assert_eq!(environment.properties["type"], json!("development"));
    assert_eq!(
        environment.properties["ready"],
        json!(true),
        "{environment:?}"
    );
    let app = &entities[&format!("shop-{ns}-{CLUSTER_NAME}")];
    assert_eq!(app.properties["owner"], json!("team-shop"));
    assert_eq!(app.properties["servicesReady"], json!("2/2"));
    assert_eq!(
        app.properties["links"],
        json!([{"title": "Repository", "url": "https://git.example.test/shop"}])
    );
    assert_eq!(app.relations["environment"], json!(environment.identifier));
    let web = &entities[&format!("web-{ns}-{CLUSTER_NAME}")];
    assert_eq!(web.properties["image"], json!(image("web", "1")));
    assert_eq!(web.properties["ready"], json!(true));
    assert_eq!(web.properties["health"], json!("Available"));
    assert_eq!(web.properties["replicasAvailable"], json!(2));
    assert_eq!(web.properties["deploys"], json!(1), "one revision so far");
    assert_eq!(web.properties["changeFailureRate"].as_f64(), Some(0.0));
    assert!(
        web.properties["url"]
            .as_str()
            .unwrap()
            .contains(&format!("web.{}", env.domain)),
        "{web:?}"
    );
    assert_eq!(web.relations["application"], json!(app.identifier));
    assert_eq!(
        web.relations["dependsOn"],
        json!([format!("payments-{ns}-{CLUSTER_NAME}")])
    );
    // Usage and cost: the figures status shows, as numbers, on every kind.
    let web_usage = &statuses[&web.identifier]["usage"];
    assert_eq!(
        web.properties["cpuPercentOfRequested"],
        web_usage["cpu"]["percentOfRequested"]
    );
    assert!(
        web_usage["cpu"]["percentOfRequested"].is_number(),
        "{web_usage}"
    );
    assert!(
        web.properties["memoryPercentOfRequested"].is_number(),
        "{web:?}"
    );
    for entity in [environment, app, web] {
        let status = &statuses[&entity.identifier];
        let number = |text: &Value, unit: &str| -> Value {
            let text = text
                .as_str()
                .unwrap_or_else(|| panic!("{text} in {status}"));
            json!(text.trim_end_matches(unit).parse::<f64>().unwrap())
        };
        let p = &entity.properties;
        assert_eq!(p["usageAvailable"], json!(true), "{entity:?}");
        assert_eq!(
            p["cpuUsedMillicores"].as_f64(),
            number(&status["usage"]["cpu"]["used"], "m").as_f64(),
            "{entity:?}"
        );
        assert_eq!(
            p["memoryUsedMiB"].as_f64(),
            number(&status["usage"]["memory"]["used"], "Mi").as_f64(),
            "{entity:?}"
        );
        assert!(p["memoryUsedMiB"].as_f64().unwrap() >= 2.0, "{entity:?}");
        assert_eq!(
            p["monthlyCostFromUsage"].as_f64(),
            number(&status["cost"]["monthlyFromUsage"], "").as_f64(),
            "{entity:?}"
        );
        assert!(
            p["monthlyCostRequested"].as_f64().unwrap() > 0.0,
            "{entity:?}"
        );
        assert_eq!(p["costCurrency"], json!("USD"));
    }
    assert_eq!(
        environment.properties["cpuPercentOfQuota"],
        statuses[&environment.identifier]["usage"]["cpu"]
            .get("percentOfQuota")
            .cloned()
            .unwrap_or(Value::Null)
    );

    // Every relation points at an entity the same exporter produces.
    for entity in entities.values() {
        for value in entity.relations.values() {
            for target in value
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![value.clone()])
            {
                assert!(
                    entities.contains_key(target.as_str().unwrap()),
                    "{} relates to {target}, which is not exported",
                    entity.identifier
                );
            }
        }
    }
}
