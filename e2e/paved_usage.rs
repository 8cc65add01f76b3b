//! Real usage as a user meets it: the local cluster serves `metrics.k8s.io`
//! (metrics-server over kwok's simulated usage, see e2e/cluster/up.sh), and a
//! Service's pods' usage, set with a kwok `ResourceUsage` per pod, shows in
//! the status of the Service (sum, busiest pod, against requests), its
//! Application and its Environment (against the quota), in the cost from
//! usage and in the `paved_usage_*` metrics; a move below the step writes no
//! status; a Service far below its requests becomes `over-provisioned` with a
//! suggested request, one with no CPU in a development Environment `idle`.
//!
//! The e2e controller (e2e/run.sh) polls every 5 s and judges over 20 s, with
//! thresholds kwok's default usage (1m, 1Mi) never meets: only the Services
//! here, which ask for 4 cores and 4Gi, can be over-provisioned.

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

use crate::paved_support::{TestEnvironment, holds_for, metric_sum, scrape_metrics, wait_object};
use crate::support::{WAIT, wait_until};

fn resource_usage_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kwok.x-k8s.io", "v1alpha1", "ResourceUsage"),
        "resourceusages",
    )
}

/// Two pods, each asking for 4 cores and 4Gi: a lot, so that a little use is
/// "far below" even with the e2e controller's minimum saving (3 cores, 3Gi).
fn generous() -> Value {
    json!({
        "application": "shop",
        "image": "registry.example.test/generous:1.0",
        "replicas": 2,
        "ports": [{"name": "http", "port": 8080}],
        "health": {"path": "/healthz", "port": "http"},
        "resources": {"requests": {"cpu": "4", "memory": "4Gi"}, "limits": {"memory": "8Gi"}},
    })
}

/// Two pods asking for 500m and 512Mi each: what they use below is far from
/// the e2e controller's minimum saving, so no usage insight moves their status
/// while the step rule is watched.
fn modest() -> Value {
    json!({
        "application": "shop",
        "image": "registry.example.test/modest:1.0",
        "replicas": 2,
        "ports": [{"name": "http", "port": 8080}],
        "health": {"path": "/healthz", "port": "http"},
        "resources": {"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    })
}

/// The running pods of a Service, by name, once there are `count`.
async fn pods_of(env: &TestEnvironment, service: &str, count: usize) -> Vec<String> {
    let pods: Api<Pod> = env.api();
    wait_until(
        &format!("{count} running pods of {service}"),
        WAIT,
        || async {
            let list = pods
                .list(&ListParams::default().labels(&format!("paved.dev/service={service}")))
                .await
                .map_err(|e| e.to_string())?;
            let running: Vec<String> = list
                .items
                .iter()
                .filter(|p| {
                    p.metadata.deletion_timestamp.is_none()
                        && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
                })
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            (running.len() == count)
                .then_some(running.clone())
                .ok_or(format!("running {running:?}"))
        },
    )
    .await
}

/// Set what one pod uses (every container), as kwok serves it to metrics-server.
async fn set_usage(env: &TestEnvironment, pod: &str, cpu: &str, memory: &str) {
    let usages = Api::<DynamicObject>::namespaced_with(
        env.client.clone(),
        &env.namespace,
        &resource_usage_resource(),
    );
    let usage = json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "ResourceUsage",
        "metadata": {"name": pod, "namespace": env.namespace},
        "spec": {"usages": [{"usage": {"cpu": {"value": cpu}, "memory": {"value": memory}}}]}
    });
    usages
        .patch(
            pod,
            &PatchParams::apply("paved-e2e").force(),
            &Patch::Apply(usage),
        )
        .await
        .expect("ResourceUsage applied");
}

fn usage(object: &DynamicObject) -> &Value {
    &object.data["status"]["usage"]
}

fn rules(object: &DynamicObject) -> Vec<String> {
    object.data["status"]["scorecard"]["insights"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| i["rule"].as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn insight<'a>(object: &'a DynamicObject, rule: &str) -> Option<&'a Value> {
    object.data["status"]["scorecard"]["insights"]
        .as_array()?
        .iter()
        .find(|i| i["rule"] == rule)
}

/// `250m` → 250.
fn millicores(value: &Value) -> i64 {
    value
        .as_str()
        .and_then(|v| v.strip_suffix('m'))
        .and_then(|v| v.parse().ok())
        .unwrap_or(-1)
}

#[tokio::test]
async fn a_services_real_usage_shows_in_status_cost_and_metrics_and_moves_only_by_a_step() {
    let env = TestEnvironment::create_with(
        "usage",
        json!({"guardrails": {"quota": {"cpu": "16", "memory": "32Gi", "pods": "20"}}}),
    )
    .await;
    let ns = env.namespace.clone();
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("api", modest()).await;
    let services = env.services();
    let pods = pods_of(&env, "api", 2).await;
    set_usage(&env, &pods[0], "200m", "300Mi").await;
    set_usage(&env, &pods[1], "100m", "100Mi").await;

    // Sum and busiest pod, next to the requests: 2 × 500m, 2 × 512Mi.
    let api = wait_object(&services, "api", "api's usage figures", |s| {
        let u = usage(s);
        let cpu = millicores(&u["cpu"]["used"]);
        (u["available"] == true
            && u["pods"] == 2
            && (285..=315).contains(&cpu)
            && u["memory"]["used"] == "400Mi")
            .then_some(())
            .ok_or(format!("usage {u}"))
    })
    .await;
    let u = usage(&api);
    assert!(
        (190..=210).contains(&millicores(&u["cpu"]["peakPod"])),
        "{u}"
    );
    assert_eq!(u["memory"]["peakPod"], "300Mi", "{u}");
    assert_eq!(u["cpu"]["requested"], "1000m", "{u}");
    assert_eq!(u["memory"]["requested"], "1024Mi", "{u}");
    assert_eq!(u["memory"]["limit"], "2048Mi", "{u}");
    assert!(
        u["cpu"].get("limit").is_none(),
        "no CPU limit, none shown: {u}"
    );
    let percent = u["cpu"]["percentOfRequested"].as_i64().unwrap_or(-1);
    assert!((28..=31).contains(&percent), "{u}");
    assert_eq!(u["memory"]["percentOfRequested"], 39, "{u}");
    assert!(u["sampledAt"].is_string(), "{u}");

    // The cost from usage: (0.3 cores × 0.04 + 400/1024 GiB × 0.005) × 730 ≈ 10.19,
    // next to the estimate from requests.
    let cost = &api.data["status"]["cost"];
    let from_usage: f64 = cost["monthlyFromUsage"].as_str().unwrap().parse().unwrap();
    assert!((9.5..=10.9).contains(&from_usage), "{cost}");
    // 2 × (0.5 × 0.04 + 0.5 × 0.005) × 730
    assert_eq!(cost["monthlyRequested"], "32.85", "{cost}");
    // Backstage's entity carries what status shows.
    let shown = (
        cost["monthlyFromUsage"].clone(),
        usage(&api)["memory"]["used"].clone(),
    );
    wait_until("api's usage and cost in Backstage", WAIT, || async {
        let annotations =
            crate::paved_support::backstage_component(&ns, "api")["metadata"]["annotations"]
                .clone();
        let seen = (
            annotations["paved.dev/cost-monthly-from-usage"].clone(),
            annotations["paved.dev/usage-memory"].clone(),
        );
        (seen == shown
            && annotations["paved.dev/cost-monthly-requested"] == "32.85"
            && annotations["paved.dev/cost-currency"] == "USD")
            .then_some(())
            .ok_or(format!("{annotations}"))
    })
    .await;

    // The Application and the Environment sum it; the Environment against its quota.
    wait_object(&env.applications(), "shop", "shop's usage", |a| {
        let u = usage(a);
        (u["pods"] == 2 && u["memory"]["used"] == "400Mi" && u["cpu"]["requested"] == "1000m")
            .then_some(())
            .ok_or(format!("usage {u}"))
    })
    .await;
    let environments = crate::paved_support::environments(&env.client);
    let environment = wait_object(&environments, &env.name, "the environment's usage", |e| {
        let u = usage(e);
        (u["pods"] == 2 && u["memory"]["used"] == "400Mi")
            .then_some(())
            .ok_or(format!("usage {u}"))
    })
    .await;
    let u = usage(&environment);
    assert_eq!(u["cpu"]["quota"], "16000m", "{u}");
    assert_eq!(u["memory"]["quota"], "32768Mi", "{u}");
    assert_eq!(u["memory"]["percentOfQuota"], 1, "{u}");
    assert!(environment.data["status"]["cost"]["monthlyFromUsage"].is_string());

    // The metrics follow every poll.
    let cpu_series = || {
        metric_sum(
            &scrape_metrics(),
            "paved_usage_cpu_cores",
            &[
                ("namespace", &ns),
                ("service", "api"),
                ("application", "shop"),
            ],
        )
    };
    // (Waited for, not read once: a test restarting the controller in parallel
    // leaves a moment without gauges, until the new leader's first poll.)
    wait_until("the usage series", WAIT, || async {
        let memory = metric_sum(
            &scrape_metrics(),
            "paved_usage_memory_bytes",
            &[("namespace", &ns), ("service", "api")],
        );
        let available = metric_sum(&scrape_metrics(), "paved_usage_available", &[]);
        (memory == 400.0 * 1024.0 * 1024.0
            && (0.28..=0.32).contains(&cpu_series())
            && available == 1.0)
            .then_some(())
            .ok_or(format!(
                "memory {memory}, cpu {}, available {available}",
                cpu_series()
            ))
    })
    .await;

    // A move below the step (300Mi → 310Mi: 2.5 % of 400Mi) writes no status,
    // though the metric shows it.
    let version = wait_object(&services, "api", "api settled", |_| Ok(()))
        .await
        .metadata
        .resource_version;
    set_usage(&env, &pods[0], "200m", "310Mi").await;
    wait_until("the metric to show the small move", WAIT, || async {
        let memory = metric_sum(
            &scrape_metrics(),
            "paved_usage_memory_bytes",
            &[("namespace", &ns), ("service", "api")],
        );
        (memory == 410.0 * 1024.0 * 1024.0)
            .then_some(())
            .ok_or(format!("{memory}"))
    })
    .await;
    holds_for(
        "api's status to stay put over two polls",
        std::time::Duration::from_secs(11),
        || {
            let services = services.clone();
            let version = version.clone();
            async move {
                let now = services.get("api").await.map_err(|e| e.to_string())?;
                (now.metadata.resource_version == version)
                    .then_some(())
                    .ok_or(format!("api was written again: {}", usage(&now)))
            }
        },
    )
    .await;

    // A step (the busy pod doubles) is written.
    set_usage(&env, &pods[0], "600m", "310Mi").await;
    wait_object(&services, "api", "api's usage after a step", |s| {
        let cpu = millicores(&usage(s)["cpu"]["used"]);
        (660..=740)
            .contains(&cpu)
            .then_some(())
            .ok_or(format!("usage {}", usage(s)))
    })
    .await;
}

#[tokio::test]
async fn a_service_far_below_its_requests_is_over_provisioned_and_one_without_cpu_is_idle() {
    let env = TestEnvironment::create("usage-idle").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let mut quiet = generous();
    quiet["replicas"] = json!(1);
    env.apply_service("quiet", quiet).await;
    let services = env.services();
    let pod = pods_of(&env, "quiet", 1).await.remove(0);
    set_usage(&env, &pod, "40m", "100Mi").await;

    // 40m of 4 cores and 100Mi of 4Gi, for the e2e controller's 20 s.
    let quiet = wait_object(&services, "quiet", "quiet over-provisioned", |s| {
        insight(s, "over-provisioned").map(|_| ()).ok_or(format!(
            "rules {:?}, usage {}",
            rules(s),
            usage(s)
        ))
    })
    .await;
    let message = insight(&quiet, "over-provisioned").unwrap()["message"]
        .as_str()
        .unwrap()
        .to_string();
    // The suggestion is the most a pod used, plus half again: about 60m (kwok's CPU
    // wavers by a few percent), and exactly 160Mi (100Mi × 1.5, rounded up to 16Mi).
    let suggested = message
        .split("CPU of its 4000m request for 20s+, suggested request ")
        .nth(1)
        .map(|rest| millicores(&json!(rest.split([';', ':']).next().unwrap())))
        .unwrap_or(-1);
    assert!((55..=70).contains(&suggested), "{message}");
    assert!(
        message.contains("100Mi memory of its 4096Mi request for 20s+, suggested request 160Mi")
            && message.contains("lower spec.resources.requests"),
        "{message}"
    );
    let cpu = &usage(&quiet)["cpu"];
    assert!(cpu["lowSince"].is_string(), "{cpu}");
    assert!((36..=46).contains(&millicores(&cpu["lowPeakPod"])), "{cpu}");
    assert!(
        !rules(&quiet).contains(&"idle".to_string()),
        "40m is no idle pod"
    );
    let series = |rule: &str| {
        metric_sum(
            &scrape_metrics(),
            "paved_insights",
            &[
                ("namespace", &env.namespace),
                ("name", "quiet"),
                ("rule", rule),
            ],
        )
    };
    wait_until("the over-provisioned series", WAIT, || async {
        (series("over-provisioned") == 1.0)
            .then_some(())
            .ok_or(format!("{}", series("over-provisioned")))
    })
    .await;

    // No CPU at all, in a development Environment: idle, with what to do about it.
    set_usage(&env, &pod, "0", "100Mi").await;
    let quiet = wait_object(&services, "quiet", "quiet idle", |s| {
        insight(s, "idle")
            .map(|_| ())
            .ok_or(format!("rules {:?}, usage {}", rules(s), usage(s)))
    })
    .await;
    let idle = insight(&quiet, "idle").unwrap();
    assert_eq!(idle["level"], "warning");
    assert!(
        idle["message"]
            .as_str()
            .unwrap()
            .starts_with("no pod used more than 0m CPU for 20s+: stop the Environment"),
        "{idle}"
    );
    assert!(usage(&quiet)["idleSince"].is_string());
    wait_until("the idle series", WAIT, || async {
        (series("idle") == 1.0)
            .then_some(())
            .ok_or(format!("{}", series("idle")))
    })
    .await;
    // Rolled up: the Application names the Service.
    wait_object(&env.applications(), "shop", "shop's idle insight", |a| {
        a.data["status"]["scorecard"]["insights"]
            .as_array()
            .is_some_and(|i| {
                i.iter()
                    .any(|i| i["rule"] == "idle" && i["service"] == "quiet")
            })
            .then_some(())
            .ok_or(format!("{}", a.data["status"]["scorecard"]))
    })
    .await;

    // Busy again: both insights go, from status and metrics.
    set_usage(&env, &pod, "3500m", "3900Mi").await;
    wait_object(&services, "quiet", "quiet busy", |s| {
        let rules = rules(s);
        (!rules.contains(&"idle".to_string()) && !rules.contains(&"over-provisioned".to_string()))
            .then_some(())
            .ok_or(format!("rules {rules:?}, usage {}", usage(s)))
    })
    .await;
    assert_eq!(series("idle") + series("over-provisioned"), 0.0);
}

/// Whether the controller's HTTP endpoint answers `/readyz` with 200.
fn controller_ready() -> Result<(), String> {
    use std::io::{Read, Write};
    let base =
        std::env::var("PAVED_E2E_METRICS").unwrap_or_else(|_| "http://127.0.0.1:18080".to_string());
    let address = base.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = std::net::TcpStream::connect(address).map_err(|e| e.to_string())?;
    write!(stream, "GET /readyz HTTP/1.0\r\nHost: {address}\r\n\r\n").map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    response
        .lines()
        .next()
        .filter(|head| head.contains(" 200"))
        .map(|_| ())
        .ok_or(response)
}

/// Every object of the test's own, by kind and name, with its resourceVersion
/// and status.
async fn own_objects(env: &TestEnvironment) -> std::collections::BTreeMap<String, (String, Value)> {
    let mut objects = std::collections::BTreeMap::new();
    let lists = [
        ("Service", env.services()),
        ("Application", env.applications()),
    ];
    for (kind, api) in lists {
        for object in api.list(&ListParams::default()).await.unwrap().items {
            objects.insert(
                format!(
                    "{kind}/{}",
                    object.metadata.name.clone().unwrap_or_default()
                ),
                (
                    object.metadata.resource_version.clone().unwrap_or_default(),
                    object.data["status"].clone(),
                ),
            );
        }
    }
    let environment = crate::paved_support::environments(&env.client)
        .get(&env.name)
        .await
        .unwrap();
    objects.insert(
        format!("Environment/{}", env.name),
        (
            environment
                .metadata
                .resource_version
                .clone()
                .unwrap_or_default(),
            environment.data["status"].clone(),
        ),
    );
    objects
}

/// The fields of two statuses that differ, one line each.
fn status_changes(before: &Value, after: &Value, path: &str, out: &mut Vec<String>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for key in keys {
                status_changes(
                    b.get(key).unwrap_or(&Value::Null),
                    a.get(key).unwrap_or(&Value::Null),
                    &format!("{path}.{key}"),
                    out,
                );
            }
        }
        (b, a) if b != a => out.push(format!("{path}: {b} -> {a}")),
        _ => {}
    }
}

/// Objects written since `before`, with what changed in their status.
async fn written_since(
    env: &TestEnvironment,
    before: &std::collections::BTreeMap<String, (String, Value)>,
) -> Result<(), String> {
    let now = own_objects(env).await;
    let mut changes = Vec::new();
    for (name, (version, status)) in &now {
        match before.get(name) {
            Some((was, _)) if was == version => {}
            Some((_, was)) => {
                let mut fields = Vec::new();
                status_changes(was, status, "status", &mut fields);
                changes.push(format!("{name} written: {fields:?}"));
            }
            None => changes.push(format!("{name} is new")),
        }
    }
    changes.is_empty().then_some(()).ok_or(changes.join("\n"))
}

/// Needs e2e/run.sh's restart loop (`PAVED_E2E_CONTROLLER_PID_FILE`); skipped
/// otherwise. As in the scale bench: Services showing usage, some of them
/// rolled to a new image, everything settled; then the controller is stopped
/// and a new one (empty memory: no usage records, no availability) takes
/// over. Nothing changed in the cluster, so nothing of this test's may be
/// written, through the new controller's first reconciles and its first polls.
#[tokio::test]
async fn a_controller_restart_that_changes_nothing_writes_no_status() {
    let Some(pid_file) = std::env::var_os("PAVED_E2E_CONTROLLER_PID_FILE") else {
        eprintln!("skipped: PAVED_E2E_CONTROLLER_PID_FILE is not set (see e2e/run.sh)");
        return;
    };
    let env = TestEnvironment::create("usage-restart").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    let names = ["one", "two", "three", "four"];
    for name in names {
        let mut spec = modest();
        spec["image"] = json!(crate::paved_support::image(name, "1.0"));
        env.apply_service(name, spec).await;
    }
    let services = env.services();
    // Two pods each, at kwok's default use; two of them at a usage of their own.
    for name in names {
        pods_of(&env, name, 2).await;
    }
    for pod in pods_of(&env, "one", 2).await {
        set_usage(&env, &pod, "120m", "90Mi").await;
    }
    for name in names {
        wait_object(&services, name, "usage shown", |s| {
            let u = usage(s);
            (u["available"] == true && u["pods"] == 2)
                .then_some(())
                .ok_or(format!("usage {u}"))
        })
        .await;
    }
    // And one whose usage insight (a streak read back from status) must not flip.
    let mut quiet = generous();
    quiet["replicas"] = json!(1);
    env.apply_service("quiet", quiet).await;
    let pod = pods_of(&env, "quiet", 1).await.remove(0);
    set_usage(&env, &pod, "40m", "100Mi").await;
    wait_object(&services, "quiet", "quiet over-provisioned", |s| {
        insight(s, "over-provisioned").map(|_| ()).ok_or(format!(
            "rules {:?}, usage {}",
            rules(s),
            usage(s)
        ))
    })
    .await;
    // Two of them roll to a new image (new pods, new revisions, a deploy each).
    for name in ["one", "two"] {
        crate::paved_support::merge_patch(
            &services,
            name,
            json!({"spec": {"image": crate::paved_support::image(name, "2.0")}}),
        )
        .await;
    }
    for name in ["one", "two"] {
        wait_object(&services, name, "rolled to 2.0 with usage shown", |s| {
            let u = usage(s);
            let deploys = &s.data["status"]["delivery"];
            // one's old pods ran at 120m each, its new ones at kwok's default:
            // until metrics-server has measured the new pods (a scrape or two
            // after the rollout, later on a busy machine) their first sample
            // is still to come, a real change that the restart below would
            // show. two's pods run at the default before and after.
            let new_pods_measured = name != "one" || u["cpu"]["peakPod"] != "120m";
            (crate::paved_support::condition(s, "Ready").is_some_and(|c| c.status == "True")
                && s.data["status"]["observedGeneration"] == s.metadata.generation.unwrap_or(0)
                && u["pods"] == 2
                && new_pods_measured)
                .then_some(())
                .ok_or(format!("usage {u}, delivery {deploys}"))
        })
        .await;
    }
    // Settled: nothing of ours written over three polls (5 s each).
    let settled = wait_until("everything settled", WAIT, || async {
        let before = own_objects(&env).await;
        tokio::time::sleep(std::time::Duration::from_secs(16)).await;
        written_since(&env, &before).await.map(|()| before)
    })
    .await;

    restart_controller(&pid_file).await;
    // Its first reconciles and three polls: nothing written.
    holds_for(
        "no status written after the restart",
        std::time::Duration::from_secs(17),
        || written_since(&env, &settled),
    )
    .await;

    // A restart just after a rollout, while metrics-server has not measured
    // the new pods yet (it scrapes every 10 s here, and a pod needs two
    // scrapes): the new pods use what the old ones did (kwok's default), so
    // there is nothing new to show, and no poll may show the Service without
    // pods in between.
    crate::paved_support::merge_patch(
        &services,
        "three",
        json!({"spec": {"image": crate::paved_support::image("three", "2.0")}}),
    )
    .await;
    let rolled = wait_object(&services, "three", "three rolled to 2.0", |s| {
        (crate::paved_support::condition(s, "Ready").is_some_and(|c| c.status == "True")
            && s.data["status"]["observedGeneration"] == s.metadata.generation.unwrap_or(0)
            && s.data["status"]["replicas"]["updated"] == 2
            && s.data["status"]["replicas"]["ready"] == 2)
            .then_some(())
            .ok_or(format!("replicas {}", s.data["status"]["replicas"]))
    })
    .await;
    assert_eq!(usage(&rolled)["pods"], 2, "{}", usage(&rolled));
    // The rollout's own writes done: the Application and the Environment count
    // the deploy (they are paced, a second or two behind).
    let deployed = rolled.data["status"]["delivery"]["lastDeployAt"].clone();
    let counted = |o: &DynamicObject| {
        (o.data["status"]["delivery"]["lastDeployAt"] == deployed)
            .then_some(())
            .ok_or(format!("delivery {}", o.data["status"]["delivery"]))
    };
    wait_object(&env.applications(), "shop", "the deploy counted", counted).await;
    let environments = crate::paved_support::environments(&env.client);
    wait_object(&environments, &env.name, "the deploy counted", counted).await;
    let measured = measured_pods(&env, "three").await;
    assert!(
        measured < 2,
        "metrics-server measured {measured} of three's new pods already: too late to restart in the gap"
    );
    restart_controller(&pid_file).await;
    let after_rollout = own_objects(&env).await;
    holds_for(
        "no usage dip and no write after a restart in a rollout",
        std::time::Duration::from_secs(22),
        || async {
            let three = services.get("three").await.map_err(|e| e.to_string())?;
            if usage(&three)["pods"] != 2 {
                return Err(format!("three shows {}", usage(&three)));
            }
            written_since(&env, &after_rollout).await
        },
    )
    .await;
}

/// How many of a Service's pods metrics-server serves figures for.
async fn measured_pods(env: &TestEnvironment, service: &str) -> usize {
    let pod_metrics = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics"),
        "pods",
    );
    Api::<DynamicObject>::namespaced_with(env.client.clone(), &env.namespace, &pod_metrics)
        .list(&ListParams::default().labels(&format!("paved.dev/service={service}")))
        .await
        .expect("metrics.k8s.io served")
        .items
        .len()
}

/// SIGTERM the controller e2e/run.sh runs in a loop; returns once its
/// successor answers `/readyz`.
async fn restart_controller(pid_file: &std::ffi::OsString) {
    let pid = std::fs::read_to_string(pid_file).expect("controller pid file");
    let stopped = std::process::Command::new("kill")
        .args(["-TERM", pid.trim()])
        .status()
        .expect("kill");
    assert!(stopped.success(), "could not stop controller {pid}");
    wait_until("a new controller, ready", WAIT, || async {
        let now = std::fs::read_to_string(pid_file).map_err(|e| e.to_string())?;
        if now.trim() == pid.trim() {
            return Err("the old controller still runs".to_string());
        }
        controller_ready()
    })
    .await;
}
