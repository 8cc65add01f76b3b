//! Lifecycle: `ttl` (status.expiresAt = creationTimestamp + ttl, raising it
//! extends the life, the Environment deletes itself with an Event when it
//! passes) and the stop/start `schedule` (status.stopped, stoppedUntil,
//! nextTransition; a scheduled stop scales the Services to zero).

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, DynamicObject};
use serde_json::json;

use crate::env_support::wait_status;
use crate::paved_support::{
    TestEnvironment, environments, image, merge_patch, wait_condition, wait_event, wait_gone,
};
use crate::support::WAIT;

fn created(object: &DynamicObject) -> Timestamp {
    object.metadata.creation_timestamp.as_ref().unwrap().0
}

fn expires_at(object: &DynamicObject) -> Option<Timestamp> {
    object.data["status"]["expiresAt"]
        .as_str()
        .map(|t| t.parse().expect("expiresAt is RFC 3339"))
}

#[tokio::test]
async fn expiry_is_creation_plus_ttl_raising_the_ttl_extends_it_and_a_passed_ttl_deletes_at_once() {
    let env = TestEnvironment::create_with("env-ttl", json!({"lifecycle": {"ttl": "1h"}})).await;
    let api = environments(&env.client);
    let object = wait_status(&api, &env.name, "expiresAt", |o| expires_at(o).is_some()).await;
    assert_eq!(
        expires_at(&object),
        Some(created(&object) + SignedDuration::from_hours(1)),
        "expiresAt = creationTimestamp + ttl: {}",
        object.data["status"]
    );

    merge_patch(
        &api,
        &env.name,
        json!({"spec": {"lifecycle": {"ttl": "1d2h"}}}),
    )
    .await;
    wait_status(&api, &env.name, "expiresAt moved by the new ttl", |o| {
        expires_at(o) == Some(created(o) + SignedDuration::from_hours(26))
    })
    .await;

    // Under the 1m minimum: refused at admission, nothing changes.
    let refused = api
        .patch(
            &env.name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(json!({"spec": {"lifecycle": {"ttl": "1s"}}})),
        )
        .await;
    assert!(
        matches!(&refused, Err(kube::Error::Api(s)) if s.code == 422 && s.message.contains("at least 1m")),
        "{refused:?}"
    );

    // A ttl that has already passed (as after a controller that was down when
    // it expired): the expiry is computed from the object, so it goes now.
    let uid = object.metadata.uid.clone().unwrap();
    let old_enough = created(&object) + SignedDuration::from_secs(62);
    while Timestamp::now() < old_enough {
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    merge_patch(
        &api,
        &env.name,
        json!({"spec": {"lifecycle": {"ttl": "1m"}}}),
    )
    .await;
    wait_gone(&api, &env.name).await;
    wait_gone(&Api::<Namespace>::all(env.client.clone()), &env.namespace).await;
    let event = wait_event(&env.client, None, &uid, "Expired").await;
    assert!(
        event
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("ttl 1m"),
        "{event:?}"
    );
}

#[tokio::test]
async fn a_short_ttl_deletes_the_environment_and_its_namespace_when_it_passes() {
    let env = TestEnvironment::create_with("env-expire", json!({"lifecycle": {"ttl": "1m"}})).await;
    let api = environments(&env.client);
    let object = wait_condition(&api, &env.name, "Ready", "True", None).await;
    assert_eq!(
        expires_at(&object),
        Some(created(&object) + SignedDuration::from_secs(60))
    );
    let uid = object.metadata.uid.clone().unwrap();
    // Nothing but the requeue at expiresAt makes this happen.
    wait_gone(&api, &env.name).await;
    let gone_at = Timestamp::now();
    assert!(
        gone_at >= created(&object) + SignedDuration::from_secs(60),
        "not before expiresAt"
    );
    wait_gone(&Api::<Namespace>::all(env.client.clone()), &env.namespace).await;
    wait_event(&env.client, None, &uid, "Expired").await;
}

#[tokio::test]
async fn a_schedule_outside_its_stop_window_reports_the_next_stop() {
    // Stopped from 1 January 00:00 to 2 January 00:00, Paris time.
    let env = TestEnvironment::create_with(
        "env-sched-run",
        json!({"lifecycle": {"schedule": {"stop": "0 0 1 1 *", "start": "0 0 2 1 *", "timeZone": "Europe/Paris"}}}),
    )
    .await;
    let object = wait_status(
        &environments(&env.client),
        &env.name,
        "nextTransition",
        |o| o.data["status"]["nextTransition"].is_string(),
    )
    .await;
    let status = &object.data["status"];
    let now = Timestamp::now();
    let year = now.to_string()[..4].parse::<i32>().unwrap();
    // 1 January 00:00 in Paris (UTC+1 in winter) is 31 December 23:00 UTC.
    let expected = format!("{year}-12-31T23:00:00Z");
    if now < expected.parse::<Timestamp>().unwrap() {
        assert_eq!(status["nextTransition"], json!(expected), "{status}");
        assert_eq!(status["stopped"], json!(false), "{status}");
        assert!(status.get("stoppedUntil").is_none_or(|v| v.is_null()));
    }
}

#[tokio::test]
async fn a_schedule_inside_its_stop_window_stops_the_services_until_its_next_start() {
    // Stopped from the 1st of every month until 31 December, UTC: stopped now
    // (unless this runs on 31 December).
    let env = TestEnvironment::create_with(
        "env-sched-stop",
        json!({"lifecycle": {"schedule": {"stop": "0 0 1 * *", "start": "0 0 31 12 *"}}}),
    )
    .await;
    let now = Timestamp::now();
    let year = now.to_string()[..4].parse::<i32>().unwrap();
    let until = format!("{year}-12-31T00:00:00Z");
    if now >= until.parse::<Timestamp>().unwrap() {
        return;
    }
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"), "replicas": 2}),
    )
    .await;
    let api = environments(&env.client);
    let object = wait_status(&api, &env.name, "stopped by the schedule", |o| {
        o.data["status"]["stopped"] == json!(true)
    })
    .await;
    let status = &object.data["status"];
    assert_eq!(status["stoppedUntil"], json!(until), "{status}");
    assert_eq!(status["nextTransition"], json!(until), "{status}");

    let deployments = env.api::<Deployment>();
    crate::day2_stop_start::wait_replicas(&deployments, "web", Some(0)).await;
    wait_condition(&env.services(), "web", "Ready", "True", Some("Stopped")).await;

    // The schedule removed: running again, with the declared replicas.
    merge_patch(
        &api,
        &env.name,
        json!({"spec": {"lifecycle": {"schedule": null}}}),
    )
    .await;
    wait_status(&api, &env.name, "running again", |o| {
        o.data["status"]["stopped"] == json!(false)
            && o.data["status"]
                .get("stoppedUntil")
                .is_none_or(|v| v.is_null())
    })
    .await;
    crate::day2_stop_start::wait_replicas(&deployments, "web", Some(2)).await;
}

#[tokio::test]
async fn an_unknown_time_zone_is_a_stalled_condition_that_says_what_to_change() {
    let env = TestEnvironment::create_with(
        "env-sched-bad",
        json!({"lifecycle": {"schedule": {"stop": "0 20 * * *", "start": "0 7 * * *", "timeZone": "Mars/Olympus"}}}),
    )
    .await;
    let object = wait_condition(
        &environments(&env.client),
        &env.name,
        "Stalled",
        "True",
        Some("InvalidSchedule"),
    )
    .await;
    let message = crate::paved_support::condition(&object, "Stalled")
        .unwrap()
        .message;
    assert!(message.contains("timeZone"), "{message}");
    // The namespace is still this Environment's.
    assert_eq!(object.data["status"]["namespace"], json!(env.namespace));
    let _ = WAIT;
}

/// Needs e2e/run.sh to run the controller under a restart loop and export
/// `PAVED_E2E_CONTROLLER_PID_FILE` (the running controller's PID); skipped
/// otherwise. The controller is stopped (SIGTERM) before the ttl passes; the
/// process that replaces it has never seen the Environment and must still
/// delete it on time, from creationTimestamp + ttl alone.
#[tokio::test]
async fn expiry_survives_a_controller_restart() {
    let Some(pid_file) = std::env::var_os("PAVED_E2E_CONTROLLER_PID_FILE") else {
        eprintln!("skipped: PAVED_E2E_CONTROLLER_PID_FILE is not set (see e2e/run.sh)");
        return;
    };
    let env =
        TestEnvironment::create_with("env-restart", json!({"lifecycle": {"ttl": "1m"}})).await;
    let api = environments(&env.client);
    let object = wait_condition(&api, &env.name, "Ready", "True", None).await;
    let expires = created(&object) + SignedDuration::from_secs(60);
    assert_eq!(expires_at(&object), Some(expires));

    let pid = std::fs::read_to_string(&pid_file).expect("controller pid file");
    let status = std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("kill");
    assert!(status.success(), "could not stop controller {pid}");
    // The replacement starts with empty stores and no timers.
    wait_gone(&api, &env.name).await;
    assert!(Timestamp::now() >= expires, "not before expiresAt");
    let restarted = std::fs::read_to_string(&pid_file).unwrap();
    assert_ne!(
        restarted.trim(),
        pid.trim(),
        "a new controller process did it"
    );
}
