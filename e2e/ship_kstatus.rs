//! kstatus: the library kpt, Flux's health checks and cli-utils' appliers read
//! status with (`sigs.k8s.io/cli-utils/pkg/kstatus/status`, run by the Go
//! program `e2e/tools/kstatus`) agrees with Paved's conditions on live
//! objects: Current when Ready, Failed when Stalled — an Application and an
//! Environment included when one of their Services is — and InProgress while a
//! change is pending or rolling out.

use kube::api::DynamicObject;
use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, describe_status, environments, image, wait_condition, wait_ready,
};
use crate::ship_support::{kstatus, object_json, repo_root};

/// kstatus's verdicts on `objects`, asserted one by one against `want`.
fn assert_kstatus(objects: &[(&DynamicObject, &str)]) {
    let json: Vec<Value> = objects.iter().map(|(o, _)| object_json(o)).collect();
    for ((object, want), (status, message)) in objects.iter().zip(kstatus(&json)) {
        assert_eq!(
            &status,
            want,
            "kstatus says {} {} is {status} ({message}); {}",
            object
                .types
                .as_ref()
                .map(|t| t.kind.as_str())
                .unwrap_or_default(),
            object.metadata.name.as_deref().unwrap_or_default(),
            describe_status(object)
        );
    }
}

#[tokio::test]
async fn kstatus_reads_paved_objects_as_current_when_ready_failed_when_stalled_and_in_progress_while_pending()
 {
    let env = TestEnvironment::create("ship-kstatus").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    let web = wait_ready(&env.services(), "web").await;
    let shop = wait_ready(&env.applications(), "shop").await;
    let environment = wait_ready(&environments(&env.client), &env.name).await;
    assert_kstatus(&[
        (&web, "Current"),
        (&shop, "Current"),
        (&environment, "Current"),
    ]);

    // A change not yet observed (the same live objects, one generation ahead).
    let mut pending = vec![];
    for object in [&web, &shop, &environment] {
        let mut ahead = object_json(object);
        ahead["metadata"]["generation"] = json!(object.metadata.generation.unwrap() + 1);
        pending.push(ahead);
    }
    for (status, message) in kstatus(&pending) {
        assert_eq!(status, "InProgress", "{message}");
    }

    // A rollout in progress (no node has 64 CPUs), and the Application waiting for it.
    env.apply_service(
        "batch",
        json!({"application": "shop", "image": image("batch", "1"), "resources": {"requests": {"cpu": "64"}}}),
    )
    .await;
    let batch = wait_condition(&env.services(), "batch", "Reconciling", "True", None).await;
    let shop = wait_condition(&env.applications(), "shop", "Reconciling", "True", None).await;
    assert_kstatus(&[(&batch, "InProgress"), (&shop, "InProgress")]);

    // Stalled: a Service whose host is outside the domain. Its Application —
    // whose only unready Service it is — and the Environment are Failed too:
    // waiting cannot help, so `kubectl wait`, Flux and kpt must not wait.
    env.apply_application("admin", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "console",
        json!({"application": "admin", "image": image("console", "1"), "ports": [{"name": "http", "port": 8080}], "expose": {"host": "console.example.org"}}),
    )
    .await;
    let console = wait_condition(
        &env.services(),
        "console",
        "Stalled",
        "True",
        Some("HostOutsideDomain"),
    )
    .await;
    let admin = wait_condition(
        &env.applications(),
        "admin",
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;
    let environment = wait_condition(
        &environments(&env.client),
        &env.name,
        "Stalled",
        "True",
        Some("ServiceStalled"),
    )
    .await;
    assert_kstatus(&[
        (&console, "Failed"),
        (&admin, "Failed"),
        (&environment, "Failed"),
    ]);

    // Fixed: everything that only waited on it is Current again.
    env.apply_service(
        "console",
        json!({"application": "admin", "image": image("console", "1"), "ports": [{"name": "http", "port": 8080}], "expose": {"host": format!("console.{}", env.domain)}}),
    )
    .await;
    let console = wait_ready(&env.services(), "console").await;
    let admin = wait_ready(&env.applications(), "admin").await;
    let environment = wait_ready(&environments(&env.client), &env.name).await;
    assert_kstatus(&[
        (&console, "Current"),
        (&admin, "Current"),
        (&environment, "Current"),
    ]);
}

/// The captured live objects of `e2e/integrations/fixtures/argocd` get from
/// kstatus the verdict that matches the Argo CD health in their name, with no
/// cluster needed: Healthy → Current, Degraded → Failed, Progressing → InProgress.
#[test]
fn kstatus_agrees_with_the_argocd_health_of_every_captured_fixture() {
    let dir = repo_root().join("e2e/integrations/fixtures/argocd");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    let mut objects: Vec<Value> = files
        .iter()
        .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect();
    // kstatus judges a status without observedGeneration by its conditions
    // alone, and an object without conditions as Current: the fixtures of a
    // status not yet written are Argo CD's concern only (its script says
    // Progressing), not kstatus's.
    let keep: Vec<bool> = objects
        .iter()
        .map(|o| !o["status"]["observedGeneration"].is_null())
        .collect();
    let mut kept = keep.iter();
    files.retain(|_| *kept.next().unwrap());
    let mut kept = keep.iter();
    objects.retain(|_| *kept.next().unwrap());
    for (path, (status, message)) in files.iter().zip(kstatus(&objects)) {
        let file = path.file_name().unwrap().to_string_lossy();
        let want = match file.split('-').nth(1).unwrap() {
            "Healthy" => "Current",
            "Degraded" => "Failed",
            "Progressing" => "InProgress",
            other => panic!("{file}: unknown health {other}"),
        };
        assert_eq!(status, want, "{file}: {message}");
    }
    assert!(files.len() >= 9, "only {} fixtures", files.len());
}
