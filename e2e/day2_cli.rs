//! The Day-2 commands, run as a user runs them: the built `paved` binary with the
//! local cluster's kubeconfig. `paved rollback` sets the image of a recorded
//! revision (a new revision), `paved restart` rolls the pods, `paved stop` and
//! `paved start` flip the Environment and the Deployments follow.

use std::path::PathBuf;
use std::process::Output;

use k8s_openapi::api::apps::v1::Deployment;
use serde_json::json;

use crate::day2_stop_start::{wait_replicas, wait_stopped};
use crate::paved_support::{
    TestEnvironment, apply, environments, first_container, image, service_manifest,
    template_annotations, wait_condition, wait_object, wait_ready,
};
use crate::support::{WAIT, kubeconfig_path, wait_until};

/// The `paved` binary: `$PAVED_BIN` (e2e/run.sh exports it), else the debug
/// build in `$CARGO_TARGET_DIR` or the workspace's `target/`.
pub(crate) fn paved_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("PAVED_BIN") {
        return PathBuf::from(bin);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug/paved")
}

/// Runs `paved ARGS` with the local cluster's kubeconfig, off the async runtime.
pub(crate) async fn paved(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(paved_bin())
            .args(&args)
            .env("KUBECONFIG", kubeconfig_path())
            .output()
            .unwrap_or_else(|e| panic!("running {}: {e}", paved_bin().display()))
    })
    .await
    .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn assert_success(output: &Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed ({}): stdout {} stderr {}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stdout)
}

#[tokio::test]
async fn paved_rollback_sets_the_recorded_image_back_as_a_new_revision() {
    let env = TestEnvironment::create("day2-rollback").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    // Tracked by Argo CD: the command must say the change belongs in Git.
    let manifest = |tag: &str| {
        let mut manifest = service_manifest(
            "web",
            json!({"application": "shop", "image": image("web", tag), "ports": [{"name": "http", "port": 8080}]}),
        );
        manifest["metadata"]["labels"] = json!({"app.kubernetes.io/instance": "shop-staging"});
        manifest
    };
    apply(&env.services(), manifest("1.0.0")).await;
    wait_ready(&env.services(), "web").await;
    apply(&env.services(), manifest("2.0.0")).await;
    wait_object(&env.services(), "web", "revision 2 running 2.0.0", |s| {
        (s.data["status"]["revision"] == 2
            && s.data["status"]["image"] == image("web", "2.0.0")
            && crate::paved_support::condition(s, "Ready").is_some_and(|c| c.status == "True"))
        .then_some(())
        .ok_or_else(|| format!("revision {}", s.data["status"]["revision"]))
    })
    .await;

    let output = paved(&["rollback", "web", "--to", "1", "-n", &env.namespace]).await;
    let stdout = assert_success(&output, "paved rollback");
    assert!(
        stdout.contains(&format!(
            "{} → {}",
            image("web", "2.0.0"),
            image("web", "1.0.0")
        )),
        "says what changed: {stdout}"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("hint:") && stderr.contains("app.kubernetes.io/instance=shop-staging"),
        "hints at Git under Argo CD: {stderr}"
    );

    let rolled = wait_object(&env.services(), "web", "revision 3 running 1.0.0", |s| {
        (s.data["status"]["revision"] == 3
            && s.data["status"]["history"][0]["image"] == image("web", "1.0.0"))
        .then_some(())
        .ok_or_else(|| {
            format!(
                "revision {} history {}",
                s.data["status"]["revision"], s.data["status"]["history"]
            )
        })
    })
    .await;
    assert_eq!(rolled.data["spec"]["image"], image("web", "1.0.0"));
    let history: Vec<i64> = rolled.data["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(history, vec![3, 2, 1]);
    let deployment = env.api::<Deployment>().get("web").await.unwrap();
    assert_eq!(
        first_container(&deployment).image.as_deref(),
        Some(image("web", "1.0.0").as_str())
    );
    let managers: Vec<_> = rolled
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert!(
        managers.iter().any(|m| m == "paved-cli"),
        "written as paved-cli: {managers:?}"
    );

    let unknown = paved(&["rollback", "web", "--to", "99", "-n", &env.namespace]).await;
    assert!(!unknown.status.success(), "an unknown revision fails");
    let stderr = text(&unknown.stderr);
    assert!(
        stderr.contains("no revision 99") && stderr.contains("recorded revisions: 3"),
        "names the known revisions: {stderr}"
    );
    let missing = paved(&["rollback", "nope", "--to", "1", "-n", &env.namespace]).await;
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("Service nope not found"),
        "{}",
        text(&missing.stderr)
    );
}

#[tokio::test]
async fn paved_restart_changes_the_pod_template_and_rolls_the_pods() {
    let env = TestEnvironment::create("day2-restart").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "replicas": 2}),
    )
    .await;
    wait_ready(&env.services(), "api").await;
    let deployments = env.api::<Deployment>();
    let before = template_annotations(&deployments.get("api").await.unwrap());
    assert!(!before.contains_key("paved.dev/restarted-at"));

    let output = paved(&["restart", "api", "-n", &env.namespace]).await;
    let stdout = assert_success(&output, "paved restart");
    assert!(stdout.contains("restarting"), "{stdout}");
    assert!(
        !text(&output.stderr).contains("hint:"),
        "no GitOps hint for an object no GitOps tool tracks"
    );
    let service = env.services().get("api").await.unwrap();
    let restarted_at = service.data["spec"]["restartedAt"]
        .as_str()
        .expect("spec.restartedAt set")
        .to_string();
    wait_until("the pod template to carry restartedAt", WAIT, || async {
        let annotations =
            template_annotations(&deployments.get("api").await.map_err(|e| e.to_string())?);
        (annotations.get("paved.dev/restarted-at") == Some(&restarted_at)
            && annotations.get("paved.dev/config-hash") != before.get("paved.dev/config-hash"))
        .then_some(())
        .ok_or_else(|| format!("{annotations:?}"))
    })
    .await;
    // The rollout completes: Available again with the new template.
    wait_condition(&env.services(), "api", "Ready", "True", Some("Available")).await;
}

#[tokio::test]
async fn paved_stop_and_start_flip_the_environment_and_the_deployments_follow() {
    let env = TestEnvironment::create("day2-cli-stop").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "replicas": 2}),
    )
    .await;
    let deployments = env.api::<Deployment>();
    wait_replicas(&deployments, "api", Some(2)).await;

    let stdout = assert_success(&paved(&["stop", &env.name]).await, "paved stop");
    assert!(stdout.contains("stopped"), "{stdout}");
    let environment = environments(&env.client).get(&env.name).await.unwrap();
    assert_eq!(environment.data["spec"]["lifecycle"]["stopped"], true);
    wait_replicas(&deployments, "api", Some(0)).await;
    wait_stopped(&env.services(), "api").await;

    let stdout = assert_success(&paved(&["start", &env.name]).await, "paved start");
    assert!(stdout.contains("started"), "{stdout}");
    let environment = environments(&env.client).get(&env.name).await.unwrap();
    assert_eq!(environment.data["spec"]["lifecycle"]["stopped"], false);
    wait_replicas(&deployments, "api", Some(2)).await;
    wait_condition(&env.services(), "api", "Ready", "True", Some("Available")).await;

    let missing = paved(&["stop", "no-such-environment-day2"]).await;
    assert!(!missing.status.success());
    assert!(
        text(&missing.stderr).contains("Environment no-such-environment-day2 not found"),
        "{}",
        text(&missing.stderr)
    );
}
