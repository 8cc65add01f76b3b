//! Argo CD: the health checks shipped in `examples/gitops/argocd-cm.yaml` (and
//! the chart's README) give each Paved kind the right health, proven by running
//! them in Argo CD's own Lua engine (gopher-lua, Lua 5.1, without the standard
//! libraries, as Argo CD runs them unless `useOpenLibs` is set; see
//! `e2e/tools/argocd-health`) over objects the running controller put in each
//! state on the local cluster.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject};
use serde_json::{Value, json};

use crate::paved_support::{
    Cleanup, TestEnvironment, application_manifest, applications, apply, environment_manifest,
    environments, image, service_manifest, services, wait_condition, wait_ready,
};
use crate::ship_support::{
    go_tool, object_json, repo_root, run_json_lines, run_tool, scratch_dir, yaml_file_as_json,
};
use crate::support::{client, unique};

const ARGOCD_CM: &str = "examples/gitops/argocd-cm.yaml";

fn health_script(kind: &str) -> String {
    let config = yaml_file_as_json(ARGOCD_CM);
    let group = if kind == "HTTPRoute" {
        "gateway.networking.k8s.io"
    } else {
        "paved.dev"
    };
    let key = format!("resource.customizations.health.{group}_{kind}");
    config["data"][&key]
        .as_str()
        .unwrap_or_else(|| panic!("{ARGOCD_CM} has no {key}"))
        .to_string()
}

/// Argo CD's verdict on `object`: (status, message), from the shipped script
/// run in Argo CD's own Lua engine as Argo CD sets it up without
/// `useOpenLibs` (e2e/tools/argocd-health). A script Argo CD cannot evaluate
/// (Argo CD then shows the resource Unknown with the Lua error) fails the test.
fn argocd_health(kind: &str, object: &Value) -> (String, String) {
    match run_health_script(&health_script(kind), object, false) {
        Ok(health) => health,
        Err(error) => panic!(
            "Argo CD cannot evaluate the {kind} health script on {} (it would show Unknown): {error}",
            object["metadata"]["name"]
        ),
    }
}

/// Runs `script` over `object` in Argo CD's Lua engine; Err is the Lua error.
fn run_health_script(
    script: &str,
    object: &Value,
    open_libs: bool,
) -> Result<(String, String), String> {
    let dir = scratch_dir("argocd-health");
    let path = dir.join("health.lua");
    std::fs::write(&path, script).unwrap();
    let mut args = vec![];
    if open_libs {
        args.push("-open-libs");
    }
    args.push(path.to_str().unwrap());
    let input = serde_json::to_vec(object).unwrap();
    let result = run_json_lines(&go_tool("argocd-health"), &args, &input).remove(0);
    let _ = std::fs::remove_dir_all(&dir);
    match result["error"].as_str() {
        Some(error) => Err(error.to_string()),
        None => Ok((
            result["status"].as_str().unwrap_or_default().to_string(),
            result["message"].as_str().unwrap_or_default().to_string(),
        )),
    }
}

/// Every state a live object passes through before its status catches up, made
/// from a live `object`: a new generation not yet observed, a status not yet
/// written at all, a status written without observedGeneration or conditions.
/// Each must be Progressing, and must not make the script fail.
fn assert_pending_states_are_progressing(kind: &str, object: &Value) {
    let generation = object["metadata"]["generation"].as_i64().unwrap_or(1);
    let mut ahead = object.clone();
    ahead["metadata"]["generation"] = json!(generation + 1);
    let (status, message) = argocd_health(kind, &ahead);
    assert_eq!(
        (
            status.as_str(),
            message.contains(&format!("observe generation {}", generation + 1))
        ),
        ("Progressing", true),
        "{kind} with generation > observedGeneration: {message}"
    );
    let mut unwritten = object.clone();
    unwritten.as_object_mut().unwrap().remove("status");
    assert_eq!(
        argocd_health(kind, &unwritten).0,
        "Progressing",
        "{kind} without status"
    );
    let mut empty = object.clone();
    empty["status"] = json!({});
    assert_eq!(
        argocd_health(kind, &empty).0,
        "Progressing",
        "{kind} with status {{}}"
    );
    let mut no_conditions = object.clone();
    no_conditions["status"] = json!({"observedGeneration": generation});
    assert_eq!(
        argocd_health(kind, &no_conditions).0,
        "Progressing",
        "{kind} observed but without conditions"
    );
}

/// Committed fixtures: live objects this test captured (PAVED_E2E_SAVE_FIXTURES=1),
/// named `<Kind>-<expected health>-<case>.json`, so the scripts are also checked
/// without a cluster.
const FIXTURES: &str = "e2e/integrations/fixtures/argocd";

fn assert_health(kind: &str, object: &DynamicObject, want: &str, message_contains: &str) {
    let mut json = object_json(object);
    if std::env::var_os("PAVED_E2E_SAVE_FIXTURES").is_some() {
        let name = object.metadata.name.clone().unwrap_or_default();
        // Names carry the test's unique suffix; the fixture names the case instead.
        let case = name
            .split('-')
            .take_while(|part| part.parse::<u64>().is_err())
            .collect::<Vec<_>>()
            .join("-");
        json["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        let dir = repo_root().join(FIXTURES);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("{kind}-{want}-{case}.json")),
            serde_json::to_string_pretty(&json).unwrap() + "\n",
        )
        .unwrap();
    }
    let (status, message) = argocd_health(kind, &json);
    assert_eq!(
        status,
        want,
        "{kind} {} should be {want} in Argo CD, the health check says {status} ({message}); status was {}",
        object.metadata.name.as_deref().unwrap_or_default(),
        json["status"]
    );
    assert!(
        message.contains(message_contains),
        "{kind} health message {message:?} should mention {message_contains:?}"
    );
}

#[tokio::test]
async fn argocd_health_checks_follow_the_conditions_of_live_objects() {
    let env = TestEnvironment::create("ship-argo").await;

    // Healthy: an Application whose Service is available.
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production"}),
    )
    .await;
    env.apply_service("web", json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]})).await;
    let web = wait_ready(&env.services(), "web").await;
    assert_health("Service", &web, "Healthy", "Available");
    let shop = wait_ready(&env.applications(), "shop").await;
    assert_health("Application", &shop, "Healthy", "");
    let environment = wait_ready(&environments(&env.client), &env.name).await;
    assert_health("Environment", &environment, "Healthy", "");

    // The same live objects in the states before their status catches up: a
    // new generation Paved has not acted on yet, a status not yet written.
    assert_pending_states_are_progressing("Service", &object_json(&web));
    assert_pending_states_are_progressing("Application", &object_json(&shop));
    assert_pending_states_are_progressing("Environment", &object_json(&environment));

    // Progressing: a rollout whose pods cannot be scheduled (no node has 64 CPUs),
    // and the Application waiting for it.
    env.apply_service(
        "batch",
        json!({"application": "shop", "image": image("batch", "1"), "resources": {"requests": {"cpu": "64"}}}),
    )
    .await;
    let batch = wait_condition(&env.services(), "batch", "Reconciling", "True", None).await;
    assert_health("Service", &batch, "Progressing", "RollingOut");
    let shop = wait_condition(&env.applications(), "shop", "Ready", "False", None).await;
    assert_health("Application", &shop, "Progressing", "batch");

    // Degraded: a Service of an Application that does not exist.
    env.apply_service(
        "orphan",
        json!({"application": "missing", "image": image("orphan", "1")}),
    )
    .await;
    let orphan = wait_condition(&env.services(), "orphan", "Stalled", "True", None).await;
    assert_health("Service", &orphan, "Degraded", "ApplicationNotFound");

    // Degraded: an Application outside any Environment's namespace.
    let client = client().await;
    let mut cleanup = Cleanup::default();
    let plain = unique("ship-argo-plain");
    cleanup.namespaces.push(plain.clone());
    Api::<Namespace>::all(client.clone())
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": plain}})).unwrap(),
        )
        .await
        .unwrap();
    apply(
        &applications(&client, &plain),
        application_manifest(
            "stray",
            json!({"owner": "team-x", "lifecycle": "experimental"}),
        ),
    )
    .await;
    let stray = wait_condition(
        &applications(&client, &plain),
        "stray",
        "Stalled",
        "True",
        None,
    )
    .await;
    assert_health("Application", &stray, "Degraded", "NotInEnvironment");
    apply(
        &services(&client, &plain),
        service_manifest(
            "stray-svc",
            json!({"application": "stray", "image": image("s", "1")}),
        ),
    )
    .await;
    let stray_service = wait_condition(
        &services(&client, &plain),
        "stray-svc",
        "Stalled",
        "True",
        None,
    )
    .await;
    assert_health("Service", &stray_service, "Degraded", "NotInEnvironment");

    // Degraded: an Environment whose namespace exists and is not Paved's.
    let taken = unique("ship-argo-taken");
    cleanup.namespaces.push(taken.clone());
    cleanup.environments.push(taken.clone());
    Api::<Namespace>::all(client.clone())
        .create(
            &Default::default(),
            &serde_json::from_value(json!({"metadata": {"name": taken}})).unwrap(),
        )
        .await
        .unwrap();
    apply(
        &environments(&client),
        environment_manifest(
            &taken,
            json!({"type": "preview", "domain": "taken.example.test"}),
        ),
    )
    .await;
    let conflicted = wait_condition(&environments(&client), &taken, "Stalled", "True", None).await;
    assert_health("Environment", &conflicted, "Degraded", "NamespaceConflict");

    // An object Paved has never seen (no status) is Progressing, not Healthy.
    let fresh = json!({"apiVersion": "paved.dev/v1alpha1", "kind": "Environment", "metadata": {"name": "new", "generation": 1}});
    assert_eq!(argocd_health("Environment", &fresh).0, "Progressing");
}

/// The engine the scripts are tested in is Argo CD's, not a friendlier one: the
/// string library is missing unless `useOpenLibs` is set, with Argo CD's error,
/// and a script may use only what Argo CD opens (base, table).
#[test]
fn the_argocd_engine_lacks_the_string_library_unless_use_open_libs_is_set() {
    let object = json!({"apiVersion": "paved.dev/v1alpha1", "kind": "Service", "metadata": {"name": "x", "generation": 2}});
    let format = r#"return {status = "Healthy", message = string.format("generation %d", obj.metadata.generation)}"#;
    let error = run_health_script(format, &object, false).unwrap_err();
    assert!(
        error.contains("attempt to index a non-table object(nil) with key 'format'"),
        "{error}"
    );
    assert_eq!(
        run_health_script(format, &object, true),
        Ok(("Healthy".to_string(), "generation 2".to_string()))
    );
    for missing in ["string", "math", "io", "coroutine", "debug"] {
        let probe = format!(r#"return {{status = {missing} == nil and "Healthy" or "Degraded"}}"#);
        assert_eq!(
            run_health_script(&probe, &object, false).map(|h| h.0),
            Ok("Healthy".to_string()),
            "{missing} must not be there"
        );
    }
    let allowed = r#"local t = {} table.insert(t, tostring(obj.metadata.generation)) for _, v in ipairs(t) do if type(v) == "string" then return {status = "Healthy", message = "generation " .. obj.metadata.generation} end end"#;
    assert_eq!(
        run_health_script(allowed, &object, false),
        Ok(("Healthy".to_string(), "generation 2".to_string()))
    );
    let invalid = r#"return {status = "Fine"}"#;
    assert_eq!(
        run_health_script(invalid, &object, false).map(|h| h.0),
        Ok("Unknown".to_string())
    );
}

/// The chart's README documents the same argocd-cm data as examples/gitops.
#[test]
fn the_chart_readme_ships_the_same_argocd_health_checks() {
    let readme = std::fs::read_to_string(repo_root().join("charts/paved/README.md"))
        .expect("charts/paved/README.md");
    let start = readme
        .find("<!-- argocd-cm:begin -->")
        .expect("README marks the argocd-cm snippet");
    let end = readme
        .find("<!-- argocd-cm:end -->")
        .expect("README marks the end of the argocd-cm snippet");
    let block = &readme[start..end];
    let yaml = block
        .split("```yaml")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("a ```yaml block");
    let dir = scratch_dir("readme-argocd-cm");
    let path = dir.join("argocd-cm.yaml");
    std::fs::write(&path, yaml).unwrap();
    let from_readme: Value =
        serde_json::from_str(&run_tool("yq", &["-c", ".", path.to_str().unwrap()], "yq")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let shipped = yaml_file_as_json(ARGOCD_CM);
    assert_eq!(
        from_readme["data"], shipped["data"],
        "charts/paved/README.md and {ARGOCD_CM} differ"
    );
}

/// Names of the field managers that own anything under `spec` of `object`.
fn spec_owners(object: &DynamicObject) -> Vec<String> {
    object
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter(|entry| entry.subresource.as_deref().unwrap_or_default().is_empty())
        .filter(|entry| {
            entry
                .fields_v1
                .as_ref()
                .is_some_and(|f| f.0.get("f:spec").is_some())
        })
        .filter_map(|entry| entry.manager.clone())
        .collect()
}

/// What keeps an Argo CD app in sync: Paved owns no field of a user's `spec`,
/// and applying the same manifests again (what a sync does) changes nothing:
/// same generation, same spec.
#[tokio::test]
async fn a_sync_of_the_same_manifests_finds_nothing_paved_changed() {
    let env = TestEnvironment::create("ship-sync").await;
    let tracking = |kind: &str, name: &str| json!({"argocd.argoproj.io/tracking-id": format!("team-shop:paved.dev/{kind}:{}/{name}", env.namespace)});
    let mut application = application_manifest(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production"}),
    );
    application["metadata"]["annotations"] = tracking("Application", "shop");
    application["metadata"]["labels"] = json!({"app.kubernetes.io/instance": "team-shop"});
    let mut service = service_manifest(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}], "expose": {}}),
    );
    service["metadata"]["annotations"] = tracking("Service", "web");
    service["metadata"]["labels"] = json!({"app.kubernetes.io/instance": "team-shop"});
    apply(&env.applications(), application.clone()).await;
    apply(&env.services(), service.clone()).await;
    let web = wait_ready(&env.services(), "web").await;
    let shop = wait_ready(&env.applications(), "shop").await;
    let environment = wait_ready(&environments(&env.client), &env.name).await;

    for object in [&web, &shop, &environment] {
        let name = object.metadata.name.clone().unwrap_or_default();
        assert_eq!(
            spec_owners(object),
            [crate::paved_support::USER_MANAGER],
            "{name}: only the GitOps manager may own spec fields"
        );
    }
    // The sync: the same manifests, by the same manager.
    let again_web = apply(&env.services(), service).await;
    let again_shop = apply(&env.applications(), application).await;
    for (before, after) in [(&web, &again_web), (&shop, &again_shop)] {
        let name = before.metadata.name.clone().unwrap_or_default();
        assert_eq!(
            before.metadata.generation, after.metadata.generation,
            "{name}: a repeated sync bumped the generation"
        );
        assert_eq!(
            before.data["spec"], after.data["spec"],
            "{name}: spec differs from the manifest"
        );
    }
}

/// The committed fixtures (live objects captured by the test above) get the
/// health their file name says, with no cluster needed.
#[test]
fn argocd_health_checks_give_each_captured_fixture_its_health() {
    let dir = repo_root().join(FIXTURES);
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let file = path.file_name().unwrap().to_string_lossy().to_string();
        let Some(stem) = file.strip_suffix(".json") else {
            continue;
        };
        let mut parts = stem.splitn(3, '-');
        let (kind, want) = (parts.next().unwrap(), parts.next().unwrap());
        let object: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let (status, message) = argocd_health(kind, &object);
        assert_eq!(status, want, "{file}: {message}");
        checked += 1;
    }
    assert!(checked >= 11, "only {checked} fixtures in {FIXTURES}");
}

/// The object a user's `kubectl apply` gets back, before Paved looked at it:
/// the API server fills in the CRDs' default status (not Ready, Reconciling,
/// observedGeneration 0), so kstatus (kpt, Flux, cli-utils) says InProgress
/// instead of Current, and Argo CD says Progressing, until Paved writes.
#[tokio::test]
async fn a_brand_new_object_is_in_progress_for_kstatus_and_argo_cd_until_paved_first_writes_its_status()
 {
    let client = client().await;
    let mut cleanup = Cleanup::default();
    let name = unique("ship-new");
    cleanup.environments.push(name.clone());
    let domain = format!("{name}.example.test");
    let environment = apply(
        &environments(&client),
        environment_manifest(&name, json!({"type": "development", "domain": domain})),
    )
    .await;
    crate::paved_support::wait_exists(&Api::<Namespace>::all(client.clone()), &name).await;
    let application = apply(
        &applications(&client, &name),
        application_manifest("shop", json!({"owner": "team-shop"})),
    )
    .await;
    let service = apply(
        &services(&client, &name),
        service_manifest(
            "web",
            json!({"application": "shop", "image": image("web", "1")}),
        ),
    )
    .await;
    let created: Vec<(&str, Value)> = vec![
        ("Environment", object_json(&environment)),
        ("Application", object_json(&application)),
        ("Service", object_json(&service)),
    ];
    let objects: Vec<Value> = created.iter().map(|(_, o)| o.clone()).collect();
    for ((kind, object), (status, message)) in
        created.iter().zip(crate::ship_support::kstatus(&objects))
    {
        assert_eq!(
            object["status"]["observedGeneration"], 0,
            "{kind} as created: {}",
            object["status"]
        );
        assert_eq!(status, "InProgress", "kstatus on a new {kind}: {message}");
        let (health, message) = argocd_health(kind, object);
        assert_eq!(health, "Progressing", "Argo CD on a new {kind}: {message}");
    }
    // Then Paved's own status replaces the default entirely.
    let web = wait_ready(&services(&client, &name), "web").await;
    let conditions = web.data["status"]["conditions"].as_array().unwrap().clone();
    assert!(
        conditions.iter().all(|c| c["reason"] != "Pending"),
        "no default condition left: {conditions:?}"
    );
    drop(cleanup);
}

/// The HTTPRoute of a Service behind a Gateway: Healthy once its Gateway accepts
/// it, Degraded with the Gateway's own words when refused, Progressing before any
/// answer or when the answer is about an older generation.
#[tokio::test]
async fn argocd_health_of_an_http_route_follows_what_its_gateway_says() {
    use crate::expose_gateway::{gateway_spec, routes, shared_gateway, shop, web};

    let (accepting, _accepting) = shared_gateway("*.example.test").await;
    let env = TestEnvironment::create_with("ship-argo-gw", gateway_spec(&accepting)).await;
    shop(&env).await;
    env.apply_service("web", web(json!({}))).await;
    wait_ready(&env.services(), "web").await;
    let route = object_json(&routes(&env).get("web").await.unwrap());
    assert_eq!(
        argocd_health("HTTPRoute", &route).0,
        "Healthy",
        "{}",
        route["status"]
    );
    let mut ahead = route.clone();
    ahead["metadata"]["generation"] = json!(route["metadata"]["generation"].as_i64().unwrap() + 1);
    assert_eq!(
        argocd_health("HTTPRoute", &ahead).0,
        "Progressing",
        "a newer generation"
    );
    let mut unwritten = route.clone();
    unwritten.as_object_mut().unwrap().remove("status");
    assert_eq!(
        argocd_health("HTTPRoute", &unwritten).0,
        "Progressing",
        "no status"
    );

    let (refusing, _refusing) = shared_gateway("*.elsewhere.example.org").await;
    let refused_env = TestEnvironment::create_with("ship-argo-gwr", gateway_spec(&refusing)).await;
    shop(&refused_env).await;
    refused_env.apply_service("web", web(json!({}))).await;
    wait_condition(
        &refused_env.services(),
        "web",
        "Stalled",
        "True",
        Some("RouteNotAccepted"),
    )
    .await;
    let refused = object_json(&routes(&refused_env).get("web").await.unwrap());
    let (status, message) = argocd_health("HTTPRoute", &refused);
    assert_eq!(status, "Degraded", "{message}");
    assert!(message.contains("NoMatchingListenerHostname"), "{message}");
}
