//! `make bench-scale`: how each figure of one controller grows with the number
//! of Services (issue 16). Figures, not assertions, except correctness: a run
//! whose end state is wrong fails.
//!
//! For each size of the sweep (PAVED_SCALE_SIZES, default "100,1000,10000";
//! Environments: one per 100 Services, 1 to 100), on the local control plane
//! and with a controller this bench starts itself (PAVED_BIN, a release build):
//!
//! 1. converge: the direct, floor and Paved phases of `make bench` (see
//!    e2e/benches/scale.rs), one run each, with the Services done over time;
//!    at sizes up to PAVED_SCALE_ROUNDS_UP_TO (100) PAVED_SCALE_ROUNDS (3)
//!    rounds of the three in turn, the ratios the medians over the rounds (a
//!    converge of a few seconds varies by a tenth between runs);
//! 2. correctness: every Service Ready, exactly the children `paved render`
//!    gives for the manifests, and none else in the run's namespaces;
//! 3. memory: the controller's peak (`VmHWM`) and settled (`VmRSS`) resident
//!    memory, against its own idle figure before the run;
//! 4. watches: Paved's watches counted by the API server
//!    (`apiserver_longrunning_requests{verb="WATCH"}` with and without the
//!    controller), beside Paved's own `paved_watches`;
//! 5. idle: PAVED_SCALE_IDLE_SECONDS (default the restart's resync, 60 s, plus
//!    20: past every object's requeue) with nothing changing: API writes and CPU;
//! 6. latency: PAVED_SCALE_CHANGES (default 200) image changes, one at a time,
//!    each on another Service and on an idle cluster (the one before has come to
//!    rest: pods rolled, Service Ready): from the change's apply until the
//!    bench's watch sees the Deployment with the new image; p50 and p99;
//! 7. restart: SIGTERM, then a new controller on the converged cluster: seconds
//!    to ready, and the writes it makes until its reconciles settle (its own
//!    `paved_writes_total`, and the API server's counters).
//!
//! Every phase (direct, floor, Paved with the steps after it) runs on a fresh
//! cluster (`bench-scale.sh --fresh`, PAVED_SCALE_FRESH): nothing is deleted
//! between phases or sizes. At the end: a table, the memory slope across sizes,
//! and everything as JSON in PAVED_SCALE_OUT/result.json (the chart is drawn
//! from it by `paved-bench-chart`). Other settings: PAVED_BENCH_CONCURRENCY
//! (16), PAVED_SCALE_LISTEN (the controller's metrics address), PAVED_SCALE_LOG
//! (its log file).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use common::*;

fn text_setting(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

/// A fresh cluster for the next phase: `bench-scale.sh --fresh` (PAVED_SCALE_FRESH)
/// stops the cluster, starts it again with empty etcd data and installs the CRDs.
/// Every phase so starts from the same cluster, and nothing of a phase has to be
/// deleted (deleting 10,000 Services' objects takes longer than making them, and
/// loads the control plane that the next phase measures). Returns a client of the
/// new cluster (the old one's connections are gone) once the control plane is idle.
async fn fresh_cluster(for_what: &str) -> Client {
    let script = text_setting("PAVED_SCALE_FRESH", "e2e/bench-scale.sh");
    let started = Instant::now();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&script)
            .arg("--fresh")
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("{script} --fresh: {e}"))
    })
    .await
    .expect("the fresh cluster's script");
    assert!(
        output.status.success(),
        "a fresh cluster for {for_what} failed ({})",
        output.status
    );
    let pids = String::from_utf8_lossy(&output.stdout).trim().to_string();
    *CLUSTER_PIDS.lock().unwrap() = pids.clone();
    set_pids(pids);
    let client = Client::try_default()
        .await
        .expect("KUBECONFIG of the local cluster");
    // A control plane just started works for a while (bootstrap controllers,
    // discovery, the CRDs' OpenAPI), then stays above a tenth of a core for
    // minutes (metrics-server's scrapes, kwok's node leases): every phase starts
    // once it is below QUIET_CORES.
    wait_until_quiet(QUIET_CORES, Duration::from_secs(60)).await;
    println!(
        "fresh:    a new cluster for {for_what} in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    client
}

/// Below this many cores (the cluster's processes together, over 2 s), a fresh
/// cluster counts as at rest: see [`fresh_cluster`].
const QUIET_CORES: f64 = 0.33;

/// The bench's handle on the cluster of one phase.
async fn bench_on(client: Client, services: usize, concurrency: usize) -> Bench {
    Bench {
        namespaces: Api::<Namespace>::all(client.clone()),
        discovery: Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery"),
        client,
        environments: (services / 100).clamp(1, 100),
        services,
        concurrency,
    }
}

/// A controller process this bench started.
struct Controller {
    child: Child,
    listen: String,
}

impl Controller {
    /// Starts `paved run --resync-seconds <resync>` and waits until it leads
    /// (`paved_leader 1`) and `/readyz` answers 200, which a leader does once
    /// every watch has listed (a standby is ready before it leads); returns it
    /// and the seconds that took.
    fn start(bin: &str, listen: &str, log: &str, resync: u64) -> (Controller, f64) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the controller's log file");
        // Anything already there (a controller left by an earlier run) would
        // answer for this one: its metrics, its readiness.
        assert!(
            std::net::TcpStream::connect(listen).is_err(),
            "something already listens on {listen} (a controller left by an earlier run?): stop it first"
        );
        let started = Instant::now();
        let child = Command::new(bin)
            // Its own process group, stopped as a whole: a wrapper (PAVED_BIN,
            // such as heaptrack) does not pass signals on to the controller.
            .process_group(0)
            .args([
                "run",
                "--listen",
                listen,
                "--resync-seconds",
                &resync.to_string(),
            ])
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        let mut controller = Controller {
            child,
            listen: listen.to_string(),
        };
        loop {
            let metrics = controller.metrics();
            if metric_sum(&metrics, "paved_leader") == 1.0
                && metric_sum(&metrics, "paved_watches") > 0.0
                && http_get(listen, "/readyz").is_some_and(|(code, _)| code == 200)
            {
                break;
            }
            if let Ok(Some(status)) = controller.child.try_wait() {
                panic!("the controller exited before it was ready: {status}");
            }
            assert!(
                started.elapsed() < Duration::from_secs(300),
                "the controller was not ready within 300 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        (controller, started.elapsed().as_secs_f64())
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn metrics(&self) -> String {
        http_get(&self.listen, "/metrics")
            .map(|(_, body)| body)
            .unwrap_or_default()
    }

    /// SIGTERM to its process group (a graceful stop, as on a rolling update),
    /// then waits for the exit; SIGKILL to the group after 30 s.
    fn stop(mut self) {
        let group = format!("-{}", self.pid());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// A bench that panics (a failed check) leaves no controller behind: one left
/// running would hold the metrics address, and the next run would refuse to
/// start.
impl Drop for Controller {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let group = format!("-{}", self.pid());
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
            let _ = self.child.wait();
        }
    }
}

/// A plain HTTP/1.0 GET on the loopback: (status, body).
fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let code = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())?;
    Some((code, body))
}

/// Sum of the samples of metric `name` (any labels) in a text exposition.
fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .sum::<f64>()
        + 0.0 // an empty sum is -0.0
}

/// A metric's samples by their `kind` label.
fn metric_by_kind(text: &str, name: &str) -> BTreeMap<String, f64> {
    let mut by_kind = BTreeMap::new();
    for line in text.lines() {
        let Some(labels) = line.strip_prefix(name).and_then(|l| l.strip_prefix('{')) else {
            continue;
        };
        let kind = labels
            .split_once("kind=\"")
            .and_then(|(_, rest)| rest.split_once('"'))
            .map(|(kind, _)| kind.to_string());
        let value = line
            .rsplit_once(' ')
            .and_then(|(_, v)| v.parse::<f64>().ok());
        if let (Some(kind), Some(value)) = (kind, value) {
            *by_kind.entry(kind).or_insert(0.0) += value;
        }
    }
    by_kind
}

/// The controller's reconciles and their seconds (wall time, including the API
/// calls they wait on) by kind, between two readings of its metrics.
fn work_by_kind(before: &str, after: &str) -> Value {
    let count = |text| metric_by_kind(text, "paved_reconcile_duration_seconds_count");
    let seconds = |text| metric_by_kind(text, "paved_reconcile_duration_seconds_sum");
    let (c0, c1, s0, s1) = (count(before), count(after), seconds(before), seconds(after));
    let mut work = serde_json::Map::new();
    for (kind, n) in &c1 {
        work.insert(
            kind.clone(),
            json!({
                "reconciles": n - c0.get(kind).copied().unwrap_or(0.0),
                "seconds": s1.get(kind).copied().unwrap_or(0.0) - s0.get(kind).copied().unwrap_or(0.0),
            }),
        );
    }
    Value::Object(work)
}

/// `VmHWM` (peak) or `VmRSS` (now) of `pid`, in MiB.
fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / 1024.0)
}

/// Watches open on the API server (all clients), by resource.
async fn watches_open(client: &Client) -> BTreeMap<String, f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let mut open = BTreeMap::new();
    for line in text.lines().filter(|l| {
        l.starts_with("apiserver_longrunning_requests{") && l.contains("verb=\"WATCH\"")
    }) {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let resource = labels
            .split("resource=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_default()
            .to_string();
        *open.entry(resource).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    open
}

fn difference(
    with: &BTreeMap<String, f64>,
    without: &BTreeMap<String, f64>,
) -> BTreeMap<String, f64> {
    with.iter()
        .map(|(k, v)| (k.clone(), v - without.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v != 0.0)
        .collect()
}

fn cpu_of(name: &str, before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> f64 {
    after.get(name).copied().unwrap_or(0.0) - before.get(name).copied().unwrap_or(0.0)
}

/// CPU seconds of every process the bench tracks (the controller, each process
/// of the cluster, the bench's own client) between two readings, and their sum.
fn phase_cpu(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> Value {
    let used: BTreeMap<&str, f64> = after
        .keys()
        .map(|name| (name.as_str(), cpu_of(name, before, after)))
        .collect();
    let mut cpu: serde_json::Map<String, Value> = used
        .iter()
        .map(|(name, s)| (name.to_string(), json!(s)))
        .collect();
    for name in ["controller", "kube-apiserver", "etcd"] {
        cpu.entry(name).or_insert(json!(0.0));
    }
    cpu.insert("all".into(), json!(used.values().sum::<f64>()));
    Value::Object(cpu)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The cluster's processes (from the last fresh cluster) and the controller, for [`cpu_seconds`].
fn track(controller: &Controller) {
    let cluster = CLUSTER_PIDS.lock().unwrap().clone();
    set_pids(format!("controller={},{cluster}", controller.pid()));
}

/// The processes of the cluster [`fresh_cluster`] started last, as "name=pid,...".
static CLUSTER_PIDS: std::sync::Mutex<String> = std::sync::Mutex::new(String::new());

/// Paved's children in the run's namespaces, by (kind, namespace, name).
async fn children_in_run(
    client: &Client,
    discovery: &Discovery,
    prefix: &str,
) -> BTreeSet<(String, String, String)> {
    let mut found = BTreeSet::new();
    let managed = ListParams::default().labels("app.kubernetes.io/managed-by=paved");
    for (group, version, kind) in [
        ("apps", "v1", "Deployment"),
        ("", "v1", "Service"),
        ("networking.k8s.io", "v1", "Ingress"),
        ("autoscaling", "v2", "HorizontalPodAutoscaler"),
        ("policy", "v1", "PodDisruptionBudget"),
        ("rbac.authorization.k8s.io", "v1", "RoleBinding"),
        ("", "v1", "ResourceQuota"),
        ("", "v1", "LimitRange"),
        ("networking.k8s.io", "v1", "NetworkPolicy"),
    ] {
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let Some((resource, _)) = discovery.resolve_gvk(&gvk) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let list = api.list(&managed).await.expect("list children");
        for o in list.items {
            let namespace = o.namespace().unwrap_or_default();
            if namespace.starts_with(&format!("{prefix}-")) {
                found.insert((kind.to_string(), namespace, o.name_any()));
            }
        }
    }
    found
}

/// Every Service Ready, exactly the rendered children, no orphans; panics otherwise.
/// Returns the seconds until every Service was Ready (from the call).
async fn check_end_state(b: &Bench, prefix: &str) -> (f64, usize) {
    let started = Instant::now();
    // One watch, not a list of every Service every 2 s: at 10,000 those lists
    // loaded the API server the rollout was waiting on.
    let services = run_services(&b.client, prefix).await;
    let deadline = Duration::from_secs(300 + b.services as u64 / 5);
    loop {
        let list = services.state();
        let not_ready: Vec<String> = list
            .iter()
            .filter(|o| {
                !o.data["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .map(|o| format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()))
            .collect();
        if list.len() == b.services && not_ready.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < deadline,
            "correctness: not every Service became Ready: {} Services, {} not Ready (first: {:?})",
            list.len(),
            not_ready.len(),
            not_ready.first()
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    drop(services);
    let ready = started.elapsed().as_secs_f64();
    let expected: BTreeSet<(String, String, String)> =
        render(&manifests(prefix, b.environments, b.services))
            .into_iter()
            .filter(|o| o["kind"] != "Namespace")
            .map(|o| {
                (
                    o["kind"].as_str().unwrap_or_default().to_string(),
                    o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                    o["metadata"]["name"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                )
            })
            .collect();
    let found = children_in_run(&b.client, &b.discovery, prefix).await;
    let missing: Vec<_> = expected.difference(&found).take(5).collect();
    let orphans: Vec<_> = found.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && orphans.is_empty(),
        "correctness: {} children expected, {} found; missing {:?}; not expected {:?}",
        expected.len(),
        found.len(),
        missing,
        orphans
    );
    (ready, found.len())
}

/// A Deployment as the bench's watch saw it arrive.
struct Sighting {
    namespace: String,
    name: String,
    image: String,
    /// The pod template's `paved.dev/config-hash`.
    config_hash: String,
    /// Rolled out: the controller-manager saw this generation, and every replica
    /// is updated and available, none of an older template left.
    rolled: bool,
    at: Instant,
}

type Sightings = tokio::sync::mpsc::UnboundedReceiver<Sighting>;

/// The bench's own watch of Deployment images, and the task that runs it (to
/// stop before its cluster goes).
fn watch_deployment_images(client: &Client) -> (Sightings, tokio::task::JoinHandle<()>) {
    let (send, receive) = tokio::sync::mpsc::unbounded_channel();
    let api = Api::<Deployment>::all(client.clone());
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=paved");
    let task = tokio::spawn(async move {
        let mut events = Box::pin(watcher(api, config).default_backoff().applied_objects());
        while let Some(event) = events.next().await {
            if let Ok(d) = event {
                let at = Instant::now();
                if send.send(sighting(&d, at)).is_err() {
                    return;
                }
            }
        }
    });
    (receive, task)
}

fn sighting(d: &Deployment, at: Instant) -> Sighting {
    let template = d.spec.as_ref().map(|s| &s.template);
    let image = template
        .and_then(|t| t.spec.as_ref())
        .and_then(|s| s.containers.first())
        .and_then(|c| c.image.clone())
        .unwrap_or_default();
    let config_hash = template
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.annotations.as_ref())
        .and_then(|a| a.get("paved.dev/config-hash").cloned())
        .unwrap_or_default();
    let wanted = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let rolled = d.status.as_ref().is_some_and(|st| {
        st.observed_generation >= d.metadata.generation
            && st.updated_replicas.unwrap_or(0) == wanted
            && st.available_replicas.unwrap_or(0) == wanted
            && st.replicas.unwrap_or(0) == wanted
    });
    Sighting {
        namespace: d.namespace().unwrap_or_default(),
        name: d.name_any(),
        image,
        config_hash,
        rolled,
        at,
    }
}

/// The run's Service documents, to change one at a time.
fn service_docs(b: &Bench, prefix: &str) -> Vec<Value> {
    manifests(prefix, b.environments, b.services)
        .into_iter()
        .filter(|d| d["kind"] == "Service")
        .collect()
}

/// One image change (change `k`, tag `<tag>.<k>`) on the `k`-th Service of a
/// spread over the run: seconds from the apply until the Deployment carries it.
/// With `at_rest`, it returns only once the change has come to rest (its pods
/// rolled, the Service Ready at its generation), so that the next change lands
/// on an idle cluster, not on this one's rollout.
async fn image_change(
    b: &Bench,
    docs: &[Value],
    k: usize,
    stride: usize,
    tag: &str,
    at_rest: bool,
    sightings: &mut Sightings,
) -> f64 {
    let gvk = GroupVersionKind::gvk("paved.dev", "v1alpha1", "Service");
    let resource = ApiResource::from_gvk(&gvk);
    let params = PatchParams::apply("bench").force();
    let mut doc = docs[(k * stride + k / b.services.max(1)) % docs.len()].clone();
    let namespace = doc["metadata"]["namespace"].as_str().unwrap().to_string();
    let name = doc["metadata"]["name"].as_str().unwrap().to_string();
    let image = format!("registry.invalid/bench/{name}:{tag}.{k}");
    doc["spec"]["image"] = json!(image);
    while sightings.try_recv().is_ok() {}
    let api: Api<DynamicObject> = Api::namespaced_with(b.client.clone(), &namespace, &resource);
    let start = Instant::now();
    api.patch(&name, &params, &Patch::Apply(&doc))
        .await
        .expect("apply an image change");
    loop {
        let seen = tokio::time::timeout(Duration::from_secs(60), sightings.recv())
            .await
            .expect("the Deployment carries the new image within 60 s")
            .expect("the Deployment watch goes on");
        if seen.namespace == namespace && seen.name == name && seen.image == image {
            let latency = seen.at.duration_since(start).as_secs_f64();
            if at_rest {
                come_to_rest(&api, &name, &image, seen.rolled, sightings).await;
            }
            return latency;
        }
    }
}

/// Waits until the Deployment `name` (of `api`'s namespace) carrying `image` has
/// rolled out (`rolled`: already seen so) and its Service is Ready at its
/// generation (what Paved writes once the rollout is done), at most 120 s.
async fn come_to_rest(
    api: &Api<DynamicObject>,
    name: &str,
    image: &str,
    mut rolled: bool,
    sightings: &mut Sightings,
) {
    let start = Instant::now();
    let limit = Duration::from_secs(120);
    while !rolled {
        let seen = tokio::time::timeout(limit.saturating_sub(start.elapsed()), sightings.recv())
            .await
            .expect("an image change rolls out within 120 s")
            .expect("the Deployment watch goes on");
        rolled = seen.name == name && seen.image == image && seen.rolled;
    }
    loop {
        let service = api.get(name).await.expect("the Service");
        let status = &service.data["status"];
        let ready = status["conditions"].as_array().is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        });
        if ready && status["observedGeneration"].as_i64() == service.metadata.generation {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{name} is not Ready within 120 s of its image change"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `changes` image changes, one at a time, each on another Service (spread over
/// the run): seconds from the apply until the Deployment carries the image.
async fn change_latencies(
    b: &Bench,
    prefix: &str,
    changes: usize,
    sightings: &mut Sightings,
) -> Vec<f64> {
    let docs = service_docs(b, prefix);
    let stride = (b.services / changes.max(1)).max(1);
    let mut latencies = Vec::new();
    for k in 0..changes {
        latencies.push(image_change(b, &docs, k, stride, "2.0", true, sightings).await);
    }
    latencies
}

/// `changes` Secret changes, one at a time, going round the Services that read
/// a Secret: seconds from the apply until the Deployment's pod template carries
/// the new config hash (Paved's part), and until its pods have rolled (the
/// cluster's: a new ReplicaSet, its pod available, the old one gone).
async fn secret_latencies(
    b: &Bench,
    prefix: &str,
    changes: usize,
    sightings: &mut Sightings,
) -> (Vec<f64>, Vec<f64>) {
    let readers: Vec<usize> = (0..b.services).filter(|s| reads_secret(*s)).collect();
    let (mut patched, mut rolled) = (Vec::new(), Vec::new());
    if readers.is_empty() {
        return (patched, rolled);
    }
    let params = PatchParams::apply("bench").force();
    for k in 0..changes {
        let s = readers[k % readers.len()];
        let secret = secret(prefix, b.environments, s, &format!("change-{k}"));
        let namespace = secret["metadata"]["namespace"]
            .as_str()
            .unwrap()
            .to_string();
        let name = format!("svc-{s}");
        let deployments = Api::<Deployment>::namespaced(b.client.clone(), &namespace);
        // From a Deployment at rest (an image change may still be rolling it).
        let waited = Instant::now();
        let before = loop {
            let now = sighting(
                &deployments.get(&name).await.expect("the Deployment"),
                Instant::now(),
            );
            if now.rolled {
                break now;
            }
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "{namespace}/{name} did not finish rolling out before Secret change {k}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let secrets =
            Api::<k8s_openapi::api::core::v1::Secret>::namespaced(b.client.clone(), &namespace);
        while sightings.try_recv().is_ok() {}
        let start = Instant::now();
        secrets
            .patch(&format!("{name}-config"), &params, &Patch::Apply(&secret))
            .await
            .expect("apply a Secret change");
        let mut hash_at = None;
        loop {
            let seen = tokio::time::timeout(Duration::from_secs(120), sightings.recv())
                .await
                .expect("the Deployment rolls within 120 s of a Secret change")
                .expect("the Deployment watch goes on");
            if seen.namespace != namespace
                || seen.name != name
                || seen.config_hash == before.config_hash
            {
                continue;
            }
            let at = seen.at.duration_since(start).as_secs_f64();
            hash_at.get_or_insert(at);
            if seen.rolled {
                patched.push(hash_at.unwrap());
                rolled.push(at);
                break;
            }
        }
    }
    (patched, rolled)
}

/// Image changes on the converged run, one at a time, for as long as `busy`
/// (another `busy_services` Services in their own Environments, created and
/// converged by the controller: `paved_phase`) runs. Returns the latencies and
/// the busy Services' converge time.
async fn busy_latencies(
    b: &Bench,
    prefix: &str,
    busy_prefix: &str,
    busy_services: usize,
    sightings: &mut Sightings,
) -> (Vec<f64>, f64) {
    let busy = Bench {
        client: b.client.clone(),
        discovery: Discovery::new(b.client.clone())
            .run()
            .await
            .expect("discovery"),
        namespaces: b.namespaces.clone(),
        environments: (busy_services / 100).clamp(1, 100),
        services: busy_services,
        concurrency: b.concurrency,
    };
    let done = std::sync::atomic::AtomicBool::new(false);
    let creating = async {
        let phase = paved_phase(&busy, busy_prefix, None).await;
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        phase.reflected.as_secs_f64()
    };
    let changing = async {
        let docs = service_docs(b, prefix);
        let stride = (b.services / 97).max(1);
        let mut latencies = Vec::new();
        let mut k = 0;
        while !done.load(std::sync::atomic::Ordering::Relaxed) {
            latencies.push(image_change(b, &docs, k, stride, "3.0", false, sightings).await);
            k += 1;
        }
        latencies
    };
    let (converged, latencies) = tokio::join!(creating, changing);
    (latencies, converged)
}

/// Waits until the controller has reconciled, since it started, at least
/// `objects` of each kind (every object looked at once after a restart);
/// returns the seconds that took (from the call), at most `limit`.
async fn reconciled_once(
    controller: &Controller,
    objects: &[(&str, usize)],
    limit: Duration,
) -> f64 {
    let start = Instant::now();
    while start.elapsed() < limit {
        let text = controller.metrics();
        let done = objects.iter().all(|(kind, n)| {
            metric_sum(&text, &format!("paved_reconciles_total{{kind=\"{kind}\"}}")) >= *n as f64
        });
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    start.elapsed().as_secs_f64()
}

/// Waits (at most `limit`) until every Service of the run shows usage figures
/// of all its pods (`status.usage.available`, `pods` at `spec.replicas`: a
/// new pod is measured after a metrics-server scrape or two); returns how many do.
async fn wait_for_usage(b: &Bench, prefix: &str, limit: Duration) -> usize {
    let started = Instant::now();
    let services = run_services(&b.client, prefix).await;
    loop {
        let measured = services
            .state()
            .iter()
            .filter(|o| {
                let usage = &o.data["status"]["usage"];
                usage["available"] == true
                    && usage["pods"].as_i64() >= o.data["spec"]["replicas"].as_i64()
            })
            .count();
        if measured >= b.services || started.elapsed() >= limit {
            return measured;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Waits until the controller's writes (`paved_writes_total`) stop for `quiet`
/// (at most `limit`): its work on the last change is done. (Not its
/// reconciles: with a short resync, objects are looked at again all the time,
/// without a write.)
async fn settle(controller: &Controller, quiet: Duration, limit: Duration) -> f64 {
    let start = Instant::now();
    let mut last = -1.0;
    let mut since = Instant::now();
    while start.elapsed() < limit {
        let now = metric_sum(&controller.metrics(), "paved_writes_total");
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() >= quiet {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    since.duration_since(start).as_secs_f64()
}

/// The wall time of each step of one size, printed as it ends.
struct Steps {
    last: Instant,
    done: Vec<(String, f64)>,
}

impl Steps {
    fn new() -> Steps {
        Steps {
            last: Instant::now(),
            done: Vec::new(),
        }
    }

    fn end(&mut self, name: &str) {
        let seconds = self.last.elapsed().as_secs_f64();
        self.last = Instant::now();
        println!("step:     {name} {seconds:.1}s");
        self.done.push((name.to_string(), seconds));
    }

    fn json(&self) -> Value {
        json!(
            self.done
                .iter()
                .map(|(name, s)| json!([name, (s * 10.0).round() / 10.0]))
                .collect::<Vec<_>>()
        )
    }
}

fn downsample(samples: Vec<(f64, usize)>, keep: usize) -> Vec<(f64, usize)> {
    if samples.len() <= keep {
        return samples;
    }
    let step = samples.len() as f64 / keep as f64;
    let mut out: Vec<(f64, usize)> = (0..keep)
        .map(|i| samples[(i as f64 * step) as usize])
        .collect();
    out.push(*samples.last().unwrap());
    out
}

fn series(samples: Vec<(f64, usize)>) -> Value {
    json!(
        downsample(samples, 200)
            .into_iter()
            .map(|(t, n)| json!([(t * 1000.0).round() / 1000.0, n]))
            .collect::<Vec<_>>()
    )
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let (mx, my) = (
        points.iter().map(|p| p.0).sum::<f64>() / n,
        points.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = points.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    (sxx > 0.0).then(|| sxy / sxx)
}

/// The converge times of one round of the three phases.
struct Round {
    direct: f64,
    floor: f64,
    paved: f64,
}

/// The direct and the floor phase of one round, each on a fresh cluster, with
/// their times and CPU seconds before and after (progress recorded when given).
async fn baseline_phases(
    run: &str,
    services: usize,
    concurrency: usize,
    progress: Option<(&Progress, &Progress)>,
    steps: &mut Steps,
) -> (
    (Duration, BTreeMap<String, f64>, BTreeMap<String, f64>),
    (Duration, BTreeMap<String, f64>, BTreeMap<String, f64>),
) {
    let bench = bench_on(
        fresh_cluster("the direct phase").await,
        services,
        concurrency,
    )
    .await;
    steps.end("fresh cluster");
    let direct = direct_phase(
        &bench,
        &format!("{run}-direct"),
        run,
        progress.map(|(direct, _)| direct),
    )
    .await;
    steps.end("direct");
    let client = fresh_cluster("the floor phase").await;
    install_floor_crd(&client).await;
    let bench = bench_on(client, services, concurrency).await;
    steps.end("fresh cluster");
    let floor = floor_phase(
        &bench,
        &format!("{run}-floor"),
        run,
        progress.map(|(_, floor)| floor),
    )
    .await;
    steps.end("floor");
    (direct, floor)
}

#[tokio::main]
async fn main() {
    let sizes = list_setting("PAVED_SCALE_SIZES", "100,1000,10000");
    let concurrency = setting("PAVED_BENCH_CONCURRENCY", 16);
    // Converging runs with the controller's default resync; the restart, and
    // so the idle window after it, with a short one (an idle hour compressed).
    let converge_resync = setting("PAVED_SCALE_CONVERGE_RESYNC_SECONDS", 600) as u64;
    let resync = setting("PAVED_SCALE_RESYNC_SECONDS", 60) as u64;
    let baselines = setting("PAVED_SCALE_BASELINES", 1) != 0;
    // A converge of a few seconds (100 Services: 2 to 4 s) varies by a tenth
    // between runs on this machine (sessions 25 to 28: paved/floor 0.81 to
    // 1.05 at 100): sizes up to PAVED_SCALE_ROUNDS_UP_TO run the three phases
    // PAVED_SCALE_ROUNDS times, in turn, and the ratios are the medians.
    let rounds = setting("PAVED_SCALE_ROUNDS", 3).max(1);
    let rounds_up_to = setting("PAVED_SCALE_ROUNDS_UP_TO", 100);
    let idle_seconds = setting("PAVED_SCALE_IDLE_SECONDS", resync as usize + 20) as u64;
    let changes = setting("PAVED_SCALE_CHANGES", 200);
    let secret_changes = setting("PAVED_SCALE_SECRET_CHANGES", 50);
    let busy_services = setting("PAVED_SCALE_BUSY", 1000);
    let bin = text_setting("PAVED_BIN", "target/release/paved");
    let listen = text_setting("PAVED_SCALE_LISTEN", "127.0.0.1:18090");
    let log = text_setting("PAVED_SCALE_LOG", "/tmp/paved-bench-scale.log");
    let out_dir = text_setting("PAVED_SCALE_OUT", "target/bench-scale");
    std::fs::create_dir_all(&out_dir).expect("PAVED_SCALE_OUT");
    println!(
        "bench-scale: sizes {sizes:?}, concurrency {concurrency}, controller --resync-seconds {converge_resync} while converging, {resync} from its restart on, idle window {idle_seconds} s, {changes} image changes, {secret_changes} Secret changes, {busy_services} busy Services; {rounds} rounds of the converge at sizes up to {rounds_up_to}; every phase on a fresh cluster"
    );
    let mut results = Vec::new();
    let sweep_started = Instant::now();
    for &services in &sizes {
        let mut steps = Steps::new();
        let environments = (services / 100).clamp(1, 100);
        let run = format!("s{}n{services}", std::process::id() % 100_000);
        println!("== {services} Services in {environments} Environments");

        // 1. Converge: direct, floor, Paved, each on a fresh cluster (no
        // controller runs in the first two). Small sizes first run
        // `rounds - 1` extra rounds of the three (Paved's stopped after its
        // converge); the last round goes on with the steps below.
        let (direct_progress, floor_progress, paved_progress) = (
            Progress::default(),
            Progress::default(),
            Progress::default(),
        );
        let rounds = if baselines && services <= rounds_up_to {
            rounds
        } else {
            1
        };
        let mut earlier_rounds = Vec::new();
        for round in 1..rounds {
            let (direct, floor) =
                baseline_phases(&run, services, concurrency, None, &mut steps).await;
            let bench = bench_on(fresh_cluster("Paved").await, services, concurrency).await;
            let (controller, _) = Controller::start(&bin, &listen, &log, converge_resync);
            track(&controller);
            wait_until_quiet(QUIET_CORES, Duration::from_secs(60)).await;
            steps.end("fresh cluster, controller started");
            let paved = paved_phase(&bench, &format!("{run}-paved"), None).await;
            controller.stop();
            steps.end("paved");
            let seconds = Round {
                direct: direct.0.as_secs_f64(),
                floor: floor.0.as_secs_f64(),
                paved: paved.reflected.as_secs_f64(),
            };
            println!(
                "round {round} of {rounds}: direct {:.2}s, floor {:.2}s, paved {:.2}s: paved/floor {:.2}x",
                seconds.direct,
                seconds.floor,
                seconds.paved,
                seconds.paved / seconds.floor
            );
            earlier_rounds.push(seconds);
        }
        let ((direct, direct_cpu0, direct_cpu1), (floor, floor_cpu0, floor_cpu1)) = if baselines {
            baseline_phases(
                &run,
                services,
                concurrency,
                Some((&direct_progress, &floor_progress)),
                &mut steps,
            )
            .await
        } else {
            println!(
                "baselines: skipped (PAVED_SCALE_BASELINES=0): paved/direct and paved/floor are not measured"
            );
            let none = (Duration::ZERO, BTreeMap::new(), BTreeMap::new());
            (none.clone(), none)
        };
        // Not measured: NaN, not 0 s (which would make the ratios infinite).
        let seconds = |d: Duration| if baselines { d.as_secs_f64() } else { f64::NAN };
        let (direct_s, floor_s) = (seconds(direct), seconds(floor));
        let bench = bench_on(fresh_cluster("Paved").await, services, concurrency).await;
        let client = bench.client.clone();
        // The bench's own watch of Deployment images, open before any watch count.
        let (mut sightings, sightings_task) = watch_deployment_images(&client);
        let (controller, _) = Controller::start(&bin, &listen, &log, converge_resync);
        track(&controller);
        // The same threshold as for a fresh cluster (a controller at rest adds little).
        wait_until_quiet(QUIET_CORES, Duration::from_secs(60)).await;
        let rss_idle = memory_mib(controller.pid(), "VmRSS:");
        steps.end("fresh cluster, controller started");
        // Quiet for longer than an Application's or Environment's progress
        // writes may wait (src/reconcile/status_writer.rs: all of a kind share
        // AGGREGATE_PROGRESS_PER_SECOND, 2, at least one per 2 s each): what a
        // change left to write is written before the next step counts writes.
        let paced =
            Duration::from_secs_f64((environments as f64 / 2.0).max(2.0)) + Duration::from_secs(1);
        let prefix = format!("{run}-paved");
        let metrics_before_paved = controller.metrics();
        let paved = paved_phase(&bench, &prefix, Some(&paved_progress)).await;
        let paved_work = work_by_kind(&metrics_before_paved, &controller.metrics());
        let converge = paved.reflected.as_secs_f64();
        let writes: f64 = paved.writes_by_resource.values().sum();
        println!(
            "converge: direct {:.1}s, floor {:.1}s, paved {converge:.1}s: paved/direct {:.2}x, paved/floor {:.2}x; {:.2} writes per Service",
            direct_s,
            floor_s,
            converge / direct_s,
            converge / floor_s,
            writes / services as f64
        );
        println!("work:     the controller's reconciles while converging, by kind: {paved_work}");
        let mut all_rounds = earlier_rounds;
        all_rounds.push(Round {
            direct: direct_s,
            floor: floor_s,
            paved: converge,
        });
        let (over_direct, over_floor) = (
            median(all_rounds.iter().map(|r| r.paved / r.direct).collect()),
            median(all_rounds.iter().map(|r| r.paved / r.floor).collect()),
        );
        if all_rounds.len() > 1 {
            println!(
                "rounds:   paved/floor {} (median {over_floor:.2}x), paved/direct median {over_direct:.2}x",
                all_rounds
                    .iter()
                    .map(|r| format!("{:.2}x", r.paved / r.floor))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        steps.end("paved");

        // 2. Correctness.
        let (ready_after, children) = check_end_state(&bench, &prefix).await;
        println!(
            "correct:  every Service Ready ({ready_after:.0}s after converging), exactly the {children} rendered children, no others"
        );

        // 3. Memory, converged.
        let rss_peak = memory_mib(controller.pid(), "VmHWM:");
        let rss_settled = memory_mib(controller.pid(), "VmRSS:");
        println!(
            "memory:   peak {rss_peak:.1} MiB, settled {rss_settled:.1} MiB, idle before the run {rss_idle:.1} MiB: {:.1} KiB per Service (settled - idle)",
            (rss_settled - rss_idle) * 1024.0 / services as f64
        );
        steps.end("correctness");

        // 4b. The usage poller's first figures (metrics.k8s.io measures new pods
        // after a scrape or two): written once per Service, before the idle window.
        let usage_writes_before = metric_sum(&controller.metrics(), "paved_writes_total");
        let usage_started = Instant::now();
        let measured = wait_for_usage(&bench, &prefix, Duration::from_secs(300)).await;
        settle(
            &controller,
            paced.max(Duration::from_secs(5)),
            Duration::from_secs(180),
        )
        .await;
        let first_usage_writes =
            metric_sum(&controller.metrics(), "paved_writes_total") - usage_writes_before;
        println!(
            "usage:    {measured} of {services} Services show usage after {:.0}s; the first figures cost {first_usage_writes:.0} writes ({:.2} per Service)",
            usage_started.elapsed().as_secs_f64(),
            first_usage_writes / services as f64
        );
        steps.end("first usage figures");

        // 4 and 7. Watches (with and without the controller) and a restart.
        let own_watches = metric_sum(&controller.metrics(), "paved_watches");
        let with = watches_open(&client).await;
        let peak_before_restart = memory_mib(controller.pid(), "VmHWM:");
        controller.stop();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let without = watches_open(&client).await;
        let watches = difference(&with, &without);
        let watch_count: f64 = watches.values().sum();
        println!(
            "watches:  the API server holds {watch_count:.0} watches of Paved's ({} by its own paved_watches): {watches:?}",
            own_watches
        );
        let writes_before = apiserver_writes(&client).await;
        let (controller, to_ready) = Controller::start(&bin, &listen, &log, resync);
        track(&controller);
        let reconciled = reconciled_once(
            &controller,
            &[
                ("Environment", environments),
                ("Application", environments),
                ("Service", services),
            ],
            Duration::from_secs(600),
        )
        .await
            + to_ready;
        // As long as a paced write the restart caused may wait: it is counted.
        settle(&controller, paced, Duration::from_secs(60)).await;
        let restart_metrics = controller.metrics();
        let restart_own_writes = metric_sum(&restart_metrics, "paved_writes_total");
        let restart_reconciles = metric_sum(&restart_metrics, "paved_reconciles_total");
        let restart_api_writes = paved_writes(&writes_before, &apiserver_writes(&client).await);
        let restart_peak = memory_mib(controller.pid(), "VmHWM:");
        println!(
            "restart:  leader and ready (every watch listed) in {to_ready:.2}s, every object reconciled {reconciled:.1}s after start ({restart_reconciles:.0} reconciles); writes: {restart_own_writes:.0} (its paved_writes_total), API writes to Paved's kinds {:.0} {restart_api_writes:?}; peak {restart_peak:.1} MiB",
            restart_api_writes.values().sum::<f64>().abs()
        );
        steps.end("watches and restart");

        // 5. Idle window, past every object's resync (from the restart on, `resync`).
        let metrics_before = controller.metrics();
        let reconciles_before = metric_sum(&metrics_before, "paved_reconciles_total");
        let writes_before = apiserver_writes(&client).await;
        let cpu_before = cpu_seconds();
        tokio::time::sleep(Duration::from_secs(idle_seconds)).await;
        let cpu_after = cpu_seconds();
        let idle_api_writes = paved_writes(&writes_before, &apiserver_writes(&client).await);
        let metrics_after = controller.metrics();
        let idle_own_writes = metric_sum(&metrics_after, "paved_writes_total")
            - metric_sum(&metrics_before, "paved_writes_total");
        let idle_reconciles =
            metric_sum(&metrics_after, "paved_reconciles_total") - reconciles_before;
        let idle_cpu = cpu_of("controller", &cpu_before, &cpu_after);
        println!(
            "idle:     {idle_seconds}s (resync {resync}s): {idle_reconciles:.0} reconciles; Paved wrote {idle_own_writes:.0} (its paved_writes_total), API writes to Paved's kinds {:.0} {idle_api_writes:?}; controller CPU {idle_cpu:.2}s",
            idle_api_writes.values().sum::<f64>().abs()
        );
        println!(
            "idle:     steady state: {:.2} status writes per Service per hour (usage polled every 60 s, resync {resync}s)",
            idle_own_writes / services as f64 * 3600.0 / idle_seconds as f64
        );
        steps.end("idle");

        // 6. Latency of a change: an image, then a Secret.
        let mut latencies = change_latencies(&bench, &prefix, changes, &mut sightings).await;
        latencies.sort_by(f64::total_cmp);
        let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
        println!(
            "latency:  {} image changes, Deployment patched after p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            latencies.len(),
            p50 * 1000.0,
            p99 * 1000.0,
            latencies.last().copied().unwrap_or(f64::NAN) * 1000.0
        );
        steps.end("image changes");
        let (mut secret_patched, mut secret_rolled) =
            secret_latencies(&bench, &prefix, secret_changes, &mut sightings).await;
        secret_patched.sort_by(f64::total_cmp);
        secret_rolled.sort_by(f64::total_cmp);
        let secret = json!({
            "changes": secret_patched.len(),
            "services": (0..services).filter(|s| reads_secret(*s)).count(),
            "patched": {"p50": percentile(&secret_patched, 50.0) * 1000.0, "p99": percentile(&secret_patched, 99.0) * 1000.0,
                "max": secret_patched.last().copied().unwrap_or(f64::NAN) * 1000.0},
            "rolled": {"p50": percentile(&secret_rolled, 50.0) * 1000.0, "p99": percentile(&secret_rolled, 99.0) * 1000.0,
                "max": secret_rolled.last().copied().unwrap_or(f64::NAN) * 1000.0},
        });
        println!(
            "secret:   {} Secret changes on {} Services: pod template's config hash after p50 {:.0} ms, p99 {:.0} ms; pods rolled after p50 {:.0} ms, p99 {:.0} ms",
            secret["changes"],
            secret["services"],
            secret["patched"]["p50"].as_f64().unwrap_or(f64::NAN),
            secret["patched"]["p99"].as_f64().unwrap_or(f64::NAN),
            secret["rolled"]["p50"].as_f64().unwrap_or(f64::NAN),
            secret["rolled"]["p99"].as_f64().unwrap_or(f64::NAN),
        );
        // What the last change left to write, before the busy step (which
        // counts no writes: a paced progress write may come later).
        settle(&controller, Duration::from_secs(2), Duration::from_secs(60)).await;
        steps.end("secret changes");

        // 6, busy: image changes while other Services are created.
        let busy_prefix = format!("{run}-busy");
        let (mut busy, busy_converge) = if busy_services > 0 {
            busy_latencies(&bench, &prefix, &busy_prefix, busy_services, &mut sightings).await
        } else {
            (Vec::new(), f64::NAN)
        };
        busy.sort_by(f64::total_cmp);
        let (busy_p50, busy_p99) = (percentile(&busy, 50.0), percentile(&busy, 99.0));
        if busy_services > 0 {
            println!(
                "busy:     {} image changes while {busy_services} other Services were created ({busy_converge:.1}s to converge them): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
                busy.len(),
                busy_p50 * 1000.0,
                busy_p99 * 1000.0,
                busy.last().copied().unwrap_or(f64::NAN) * 1000.0
            );
            steps.end("busy changes");
        }

        // Nothing to delete: the next size, or the end of the bench, drops this cluster.
        controller.stop();
        sightings_task.abort();
        steps.end("controller stopped");
        let total: f64 = steps.done.iter().map(|(_, s)| s).sum();
        println!(
            "steps:    {total:.0}s for {services} Services: {}",
            steps
                .done
                .iter()
                .map(|(n, s)| format!("{n} {s:.0}s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        results.push(json!({
            "services": services,
            "environments": environments,
            "converge_seconds": {"direct": direct_s, "floor": floor_s, "paved": converge},
            // The median over the rounds (one round: this one's ratio).
            "paved_over_direct": over_direct,
            "paved_over_floor": over_floor,
            "rounds": all_rounds.iter().map(|r| json!({
                "direct": r.direct, "floor": r.floor, "paved": r.paved,
                "paved_over_floor": r.paved / r.floor,
            })).collect::<Vec<_>>(),
            "writes_per_service": writes / services as f64,
            "writes_by_resource": paved.writes_by_resource,
            "paved_work": paved_work,
            "converge_resync_seconds": converge_resync,
            "cpu_seconds": {
                "direct": phase_cpu(&direct_cpu0, &direct_cpu1),
                "floor": phase_cpu(&floor_cpu0, &floor_cpu1),
                "paved": phase_cpu(&paved.cpu_start, &paved.cpu_end),
                "idle": phase_cpu(&cpu_before, &cpu_after),
            },
            "progress": {
                "direct": series(direct_progress.samples()),
                "floor": series(floor_progress.samples()),
                "paved": series(paved_progress.samples()),
            },
            "correct": {"ready_seconds_after_converging": ready_after, "children": children},
            "memory_mib": {
                "idle_before": rss_idle,
                "peak": peak_before_restart.max(rss_peak),
                "settled": rss_settled,
                "peak_after_restart": restart_peak,
                "kib_per_service": (rss_settled - rss_idle) * 1024.0 / services as f64,
            },
            "idle": {
                "seconds": idle_seconds,
                "resync_seconds": resync,
                "reconciles": idle_reconciles,
                "own_writes": idle_own_writes,
                "api_writes": idle_api_writes.values().sum::<f64>().abs(),
                "controller_cpu_seconds": idle_cpu,
                "writes_per_service_per_hour": idle_own_writes / services as f64 * 3600.0 / idle_seconds as f64,
            },
            "first_usage": {"services_measured": measured, "writes": first_usage_writes},
            "latency_ms": {
                "changes": latencies.len(),
                "p50": p50 * 1000.0,
                "p99": p99 * 1000.0,
                "max": latencies.last().copied().unwrap_or(f64::NAN) * 1000.0,
            },
            "secret_latency_ms": secret,
            "busy_latency_ms": {
                "busy_services": busy_services,
                "busy_converge_seconds": busy_converge,
                "changes": busy.len(),
                "p50": busy_p50 * 1000.0,
                "p99": busy_p99 * 1000.0,
                "max": busy.last().copied().unwrap_or(f64::NAN) * 1000.0,
            },
            "watches": {"count": watch_count, "own_metric": own_watches, "by_resource": watches},
            "restart": {
                "seconds_to_ready": to_ready,
                "seconds_to_reconcile_all": reconciled,
                "reconciles": restart_reconciles,
                "own_writes": restart_own_writes,
                "api_writes": restart_api_writes.values().sum::<f64>().abs(),
                "api_writes_by_resource": restart_api_writes,
            },
            "step_seconds": steps.json(),
            "size_seconds": total,
        }));
        // Written after each size: a later size that fails keeps the earlier figures.
        write_result(&out_dir, &results, sweep_started);
    }

    let summary = write_result(&out_dir, &results, sweep_started);
    print_table(&results, &summary);
    println!("figures: {out_dir}/result.json");
}

/// result.json: every size's figures and the memory slope across sizes.
fn write_result(out_dir: &str, results: &[Value], started: Instant) -> Value {
    let points: Vec<(f64, f64)> = results
        .iter()
        .map(|r| {
            (
                r["services"].as_f64().unwrap_or(0.0),
                r["memory_mib"]["peak"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let settled: Vec<(f64, f64)> = results
        .iter()
        .map(|r| {
            (
                r["services"].as_f64().unwrap_or(0.0),
                r["memory_mib"]["settled"].as_f64().unwrap_or(0.0),
            )
        })
        .collect();
    let summary = json!({
        "peak_kib_per_service_slope": slope(&points).map(|s| s * 1024.0),
        "settled_kib_per_service_slope": slope(&settled).map(|s| s * 1024.0),
        "sweep_seconds": started.elapsed().as_secs_f64(),
    });
    let machine = json!({
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "memory_gib": std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            m.lines().next()?.split_whitespace().nth(1)?.parse::<f64>().ok()
        }).map(|kib| (kib / 1024.0 / 1024.0).round()),
    });
    let doc = json!({"sizes": results, "summary": summary, "machine": machine});
    std::fs::write(
        format!("{out_dir}/result.json"),
        serde_json::to_string_pretty(&doc).unwrap(),
    )
    .expect("write result.json");
    summary
}

fn print_table(results: &[Value], summary: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!(
        "-- summary (one run per size, except paved/direct and paved/floor: the medians of the rounds at small sizes; latencies in ms, p50/p99)"
    );
    println!(
        "{:>8} {:>8} {:>7} {:>7} {:>8} {:>7} {:>7} {:>6} {:>6} {:>6} {:>9} {:>11} {:>11} {:>9} {:>7} {:>7}",
        "Services",
        "paved s",
        "/direct",
        "/floor",
        "peak MiB",
        "KiB/Svc",
        "restart",
        "rst wr",
        "idle wr",
        "idle cpu",
        "image",
        "secret hash",
        "secret pods",
        "busy",
        "watches",
        "size s"
    );
    for r in results {
        let pair = |v: &Value| format!("{:.0}/{:.0}", f(&v["p50"]), f(&v["p99"]));
        println!(
            "{:>8} {:>8.1} {:>6.2}x {:>6.2}x {:>8.1} {:>7.1} {:>6.2}s {:>6.0} {:>6.0} {:>5.2}s {:>9} {:>11} {:>11} {:>9} {:>7.0} {:>7.0}",
            r["services"].as_u64().unwrap_or(0),
            f(&r["converge_seconds"]["paved"]),
            f(&r["paved_over_direct"]),
            f(&r["paved_over_floor"]),
            f(&r["memory_mib"]["peak"]),
            f(&r["memory_mib"]["kib_per_service"]),
            f(&r["restart"]["seconds_to_ready"]),
            f(&r["restart"]["own_writes"]),
            f(&r["idle"]["own_writes"]),
            f(&r["idle"]["controller_cpu_seconds"]),
            pair(&r["latency_ms"]),
            pair(&r["secret_latency_ms"]["patched"]),
            pair(&r["secret_latency_ms"]["rolled"]),
            pair(&r["busy_latency_ms"]),
            f(&r["watches"]["count"]),
            f(&r["size_seconds"]),
        );
    }
    println!(
        "memory slope across sizes: peak {} KiB per Service, settled {} KiB per Service",
        summary["peak_kib_per_service_slope"]
            .as_f64()
            .map_or("n/a".into(), |s| format!("{s:.1}")),
        summary["settled_kib_per_service_slope"]
            .as_f64()
            .map_or("n/a".into(), |s| format!("{s:.1}")),
    );
}
