//! What `make bench` (e2e/benches/scale.rs) and `make bench-scale`
//! (e2e/benches/scale_sweep.rs) share: the manifests, the direct, floor and
//! Paved phases, the API server's counters and the processes' CPU.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Service as CoreService};
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use kube::discovery::Discovery;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, ResourceExt};
use serde::Deserialize;
use serde_json::{Value, json};

/// A whole-number setting from the environment, or `default` when unset. A
/// value that is not a whole number stops the bench with what to change: a
/// typo must not run an hour with the default instead.
pub fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v.trim().parse().unwrap_or_else(|_| {
            eprintln!(
                "{name}={v:?} is not a whole number; set it to one (default {default}), or unset it"
            );
            std::process::exit(2)
        }),
    }
}

/// A list of whole numbers from the environment (`100,1000,10000`; commas or
/// spaces), or `default` when unset; an entry that is not a whole number, or an
/// empty list, stops the bench with what to change.
pub fn list_setting(name: &str, default: &str) -> Vec<usize> {
    let v = std::env::var(name).unwrap_or_else(|_| default.to_string());
    let parsed: Result<Vec<usize>, _> = v
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect();
    match parsed {
        Ok(list) if !list.is_empty() => list,
        _ => {
            eprintln!(
                "{name}={v:?} is not a list of whole numbers; set it like {default:?}, or unset it"
            );
            std::process::exit(2)
        }
    }
}

pub const RUN_LABEL: &str = "paved.dev/bench";

/// Services done over time in one phase: `(seconds since the phase's clock
/// started, Services done)`, for the chart of `make bench-scale`.
#[derive(Clone, Default)]
pub struct Progress(std::sync::Arc<std::sync::Mutex<Vec<(f64, usize)>>>);

impl Progress {
    pub fn record(&self, start: Instant, done: usize) {
        let mut samples = self.0.lock().unwrap();
        if samples.last().is_none_or(|(_, last)| *last != done) {
            samples.push((start.elapsed().as_secs_f64(), done));
        }
    }

    /// One more Service done.
    pub fn one_more(&self, start: Instant) {
        let mut samples = self.0.lock().unwrap();
        let done = samples.last().map_or(0, |(_, n)| *n) + 1;
        samples.push((start.elapsed().as_secs_f64(), done));
    }

    pub fn samples(&self) -> Vec<(f64, usize)> {
        self.0.lock().unwrap().clone()
    }
}

/// The processes whose CPU [`cpu_seconds`] reads, as "name=pid,..." (set by a
/// bench that starts and restarts the controller itself); PAVED_BENCH_PIDS otherwise.
static PIDS: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

pub fn set_pids(pids: String) {
    *PIDS.lock().unwrap() = Some(pids);
}

/// The processes [`cpu_seconds`] reads: those of [`set_pids`], else
/// PAVED_BENCH_PIDS; `None` when neither is set.
fn tracked_pids() -> Option<String> {
    PIDS.lock()
        .unwrap()
        .clone()
        .or_else(|| std::env::var("PAVED_BENCH_PIDS").ok())
}

/// Whether Service `s` of a run reads a key of its own Secret (`svc-<s>-config`,
/// see [`secrets`]): one in [`SECRET_EVERY`], so a Secret change rolls one Service.
pub fn reads_secret(s: usize) -> bool {
    s % SECRET_EVERY == 1
}

pub const SECRET_EVERY: usize = 50;

/// The Secret of Service `s` (in its Environment's namespace) with `token`.
pub fn secret(prefix: &str, environments: usize, s: usize, token: &str) -> Value {
    let env = format!("{prefix}-{}", s % environments);
    json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": format!("svc-{s}-config"), "namespace": env, "labels": {RUN_LABEL: prefix}},
        "stringData": {"token": token}
    })
}

/// The Secrets that the run's Services read ([`reads_secret`]): applied in every
/// phase once its namespaces exist, before the clock, so the phases stay alike.
pub fn secrets(prefix: &str, environments: usize, services: usize) -> Vec<Value> {
    (0..services)
        .filter(|s| reads_secret(*s))
        .map(|s| secret(prefix, environments, s, "0"))
        .collect()
}

/// The Paved manifests of one run: per environment, an Environment, an
/// Application and its Services; every third Service is exposed, and one in
/// [`SECRET_EVERY`] reads a key of its own Secret ([`secrets`]).
pub fn manifests(prefix: &str, environments: usize, services: usize) -> Vec<Value> {
    let mut docs = Vec::new();
    for e in 0..environments {
        let env = format!("{prefix}-{e}");
        docs.push(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "Environment",
            "metadata": {"name": env, "labels": {RUN_LABEL: prefix}},
            "spec": {"type": "development", "domain": format!("{env}.bench.example.com")}
        }));
        docs.push(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "Application",
            "metadata": {"name": "shop", "namespace": env, "labels": {RUN_LABEL: prefix}},
            "spec": {"owner": "team-bench", "lifecycle": "experimental"}
        }));
    }
    for s in 0..services {
        let env = format!("{prefix}-{}", s % environments);
        let mut spec = json!({
            "application": "shop",
            "image": format!("registry.invalid/bench/svc-{s}:1.0.0"),
            "ports": [{"name": "http", "port": 8080}],
            "replicas": 1,
            "env": [{"name": "INDEX", "value": s.to_string()}]
        });
        if s % 3 == 0 {
            spec["expose"] = json!({});
        }
        if reads_secret(s) {
            spec["env"].as_array_mut().unwrap().push(json!({
                "name": "TOKEN",
                "valueFrom": {"secretKeyRef": {"name": format!("svc-{s}-config"), "key": "token"}}
            }));
        }
        docs.push(json!({
            "apiVersion": "paved.dev/v1alpha1", "kind": "Service",
            "metadata": {"name": format!("svc-{s}"), "namespace": env, "labels": {RUN_LABEL: prefix}},
            "spec": spec
        }));
    }
    docs
}

/// The children Paved would create for `docs`, by running `paved render`.
pub fn render(docs: &[Value]) -> Vec<Value> {
    let bin = std::env::var("PAVED_BIN").unwrap_or_else(|_| "target/release/paved".into());
    let input = docs
        .iter()
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect::<Vec<_>>()
        .join("---\n");
    let dir = std::env::temp_dir().join(format!("paved-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("manifests.yaml");
    std::fs::write(&file, input).unwrap();
    let out = std::process::Command::new(&bin)
        .args(["render", "-f"])
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running {bin} render: {e}"));
    assert!(
        out.status.success(),
        "paved render failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| {
            serde_yaml::from_value::<Value>(serde_yaml::Value::deserialize(d).unwrap()).unwrap()
        })
        .filter(|v| !v.is_null())
        .collect()
}

pub async fn apply_all(
    client: &Client,
    discovery: &Discovery,
    objects: Vec<Value>,
    concurrency: usize,
    manager: &str,
) {
    apply_all_counted(client, discovery, objects, concurrency, manager, None).await
}

/// [`apply_all`], and each Deployment applied counts in `progress` as one
/// Service done (the direct phase's figure for the chart).
pub async fn apply_all_counted(
    client: &Client,
    discovery: &Discovery,
    objects: Vec<Value>,
    concurrency: usize,
    manager: &str,
    progress: Option<(&Progress, Instant)>,
) {
    let params = PatchParams::apply(manager).force();
    let results: Vec<Result<(), String>> = stream::iter(objects)
        .map(|obj| {
            let client = client.clone();
            let params = params.clone();
            async move {
                let (api, kind, name) = api_of(client, discovery, &obj)?;
                api.patch(&name, &params, &Patch::Apply(&obj))
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("{kind} {name}: {e}"))?;
                if let Some((progress, start)) = progress
                    && kind == "Deployment"
                {
                    progress.one_more(start);
                }
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    let errors: Vec<_> = results.into_iter().filter_map(Result::err).collect();
    assert!(
        errors.is_empty(),
        "{} applies failed, first: {}",
        errors.len(),
        errors[0]
    );
}

/// The API of `obj`'s kind (in its namespace when the kind is namespaced), its
/// kind and its name.
fn api_of(
    client: Client,
    discovery: &Discovery,
    obj: &Value,
) -> Result<(Api<DynamicObject>, String, String), String> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default().to_string();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, &kind);
    let (resource, caps) = discovery
        .resolve_gvk(&gvk)
        .ok_or_else(|| format!("unknown kind {api_version} {kind}"))?;
    let name = obj["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let api = match obj["metadata"]["namespace"].as_str() {
        Some(ns) if caps.scope == kube::discovery::Scope::Namespaced => {
            Api::namespaced_with(client, ns, &resource)
        }
        _ => Api::all_with(client, &resource),
    };
    Ok((api, kind, name))
}

/// Sum of the API server's write requests per (group, resource, subresource).
pub async fn apiserver_writes(client: &Client) -> BTreeMap<(String, String, String), f64> {
    let req = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(req).await.expect("apiserver /metrics");
    let mut sums = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| l.starts_with("apiserver_request_total{"))
    {
        let (labels, value) = line.rsplit_once(' ').unwrap();
        let label = |key: &str| {
            let pat = format!("{key}=\"");
            labels.find(&pat).map(|i| {
                let rest = &labels[i + pat.len()..];
                rest[..rest.find('"').unwrap()].to_string()
            })
        };
        let verb = label("verb").unwrap_or_default();
        if !matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "APPLY" | "DELETE") {
            continue;
        }
        let key = (
            label("group").unwrap_or_default(),
            label("resource").unwrap_or_default(),
            label("subresource").unwrap_or_default(),
        );
        *sums.entry(key).or_insert(0.0) += value.parse::<f64>().unwrap_or(0.0);
    }
    sums
}

/// Writes that only Paved (or the bench client) makes: Paved's kinds with their
/// status, and the children's main resources (the controller-manager writes
/// only their status subresources, which are left out).
pub fn paved_writes(
    before: &BTreeMap<(String, String, String), f64>,
    after: &BTreeMap<(String, String, String), f64>,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .filter(|((group, resource, sub), _)| {
            group == "paved.dev"
                || (sub.is_empty()
                    && matches!(
                        (group.as_str(), resource.as_str()),
                        ("apps", "deployments")
                            | ("", "services")
                            | ("networking.k8s.io", "ingresses")
                            | ("autoscaling", "horizontalpodautoscalers")
                    ))
        })
        .map(|(k @ (group, resource, sub), v)| {
            let mut name = resource.clone();
            if !group.is_empty() {
                name = format!("{name}.{group}");
            }
            if !sub.is_empty() {
                name = format!("{name}/{sub}");
            }
            (name, v - before.get(k).copied().unwrap_or(0.0))
        })
        .filter(|(_, delta)| *delta > 0.0)
        .collect()
}

pub fn peak_rss_mib() -> Option<f64> {
    let pid = std::env::var("PAVED_BENCH_CONTROLLER_PID").ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// CPU seconds (user + system) so far of each process named in PAVED_BENCH_PIDS
/// ("name=pid,name=pid"), and of this bench process itself.
pub fn cpu_seconds() -> BTreeMap<String, f64> {
    let ticks = 100.0; // USER_HZ, 100 on Linux
    let read = |pid: &str| -> Option<f64> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Fields after the command name, which is in parentheses.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let user: f64 = fields.get(11)?.parse().ok()?;
        let system: f64 = fields.get(12)?.parse().ok()?;
        Some((user + system) / ticks)
    };
    let mut cpu = BTreeMap::new();
    for pair in tracked_pids().unwrap_or_default().split(',') {
        if let Some((name, pid)) = pair.split_once('=')
            && let Some(seconds) = read(pid)
        {
            cpu.insert(name.to_string(), seconds);
        }
    }
    if let Some(seconds) = read("self") {
        cpu.insert("bench client".to_string(), seconds);
    }
    cpu
}

/// Waits (up to 2 minutes) until the processes of PAVED_BENCH_PIDS together use
/// less than a tenth of a core over 2 seconds; without them, waits 5 seconds.
pub async fn wait_until_idle() {
    wait_until_quiet(0.1, Duration::from_secs(120)).await
}

/// Waits (up to `limit`) until the processes of PAVED_BENCH_PIDS together use
/// less than `cores` over 2 seconds; without them, waits 5 seconds.
pub async fn wait_until_quiet(cores: f64, limit: Duration) {
    if tracked_pids().is_none() {
        tokio::time::sleep(Duration::from_secs(5)).await;
        return;
    }
    let window = Duration::from_secs(2);
    let start = Instant::now();
    loop {
        let before = cpu_seconds();
        tokio::time::sleep(window).await;
        let after = cpu_seconds();
        let used: f64 = after
            .iter()
            .filter(|(name, _)| name.as_str() != "bench client")
            .map(|(name, s)| s - before.get(name).copied().unwrap_or(0.0))
            .sum();
        if used < cores * window.as_secs_f64() || start.elapsed() > limit {
            return;
        }
    }
}

pub fn cpu_line(
    label: &str,
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
) -> String {
    let used: Vec<(String, f64)> = after
        .iter()
        .map(|(name, s)| (name.clone(), s - before.get(name).copied().unwrap_or(0.0)))
        .collect();
    let total: f64 = used.iter().map(|(_, s)| s).sum();
    let parts: Vec<String> = used
        .iter()
        .map(|(name, s)| format!("{name} {s:.1}"))
        .collect();
    format!(
        "cpu:     {label}: {total:.1} CPU-s in all ({})",
        parts.join(", ")
    )
}

/// A store kept current by a watch in the background, listed once; the watch
/// stops when it is dropped (a watch left running would follow the bench onto
/// the next phase's fresh cluster and load the API server being measured).
pub struct Watched<K: kube::Resource + 'static>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    task: tokio::task::JoinHandle<()>,
}

impl<K: kube::Resource + 'static> std::ops::Deref for Watched<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    type Target = Store<K>;
    fn deref(&self) -> &Store<K> {
        &self.store
    }
}

impl<K: kube::Resource + 'static> Drop for Watched<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// [`Watched`] `api`: returns once the store is listed.
pub async fn watched<K>(api: Api<K>, config: watcher::Config, dyntype: K::DynamicType) -> Watched<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let writer = reflector::store::Writer::new(dyntype);
    let store = writer.as_reader();
    let task = tokio::spawn(
        reflector::reflector(writer, watcher::watcher(api, config))
            .default_backoff()
            .for_each(|_| futures::future::ready(())),
    );
    store.wait_until_ready().await.expect("watch started");
    Watched { store, task }
}

/// The run's Services (label [`RUN_LABEL`] = `prefix`), [`Watched`]: the bench
/// reads them from one watch, not by listing thousands of them over and over.
pub async fn run_services(client: &Client, prefix: &str) -> Watched<DynamicObject> {
    let (api, config, resource) = run_services_watch(client, prefix);
    watched(api, config, resource).await
}

/// What a watch of the run's Services reads: the API, its label selector, and
/// the resource (a [`DynamicObject`]'s type).
fn run_services_watch(
    client: &Client,
    prefix: &str,
) -> (Api<DynamicObject>, watcher::Config, ApiResource) {
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk("paved.dev", "v1alpha1", "Service"));
    (
        Api::all_with(client.clone(), &resource),
        watcher::Config::default().labels(&format!("{RUN_LABEL}={prefix}")),
        resource,
    )
}

/// Runs `check` every 250 ms until it passes; past `timeout`, panics with
/// what it waited for and the last error.
pub async fn wait_for(
    what: &str,
    timeout: Duration,
    mut check: impl AsyncFnMut() -> Result<(), String>,
) {
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(e) if start.elapsed() > timeout => panic!("timed out waiting for {what}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
}

/// What every phase works with.
pub struct Bench {
    pub client: Client,
    pub discovery: Discovery,
    pub namespaces: Api<Namespace>,
    pub environments: usize,
    pub services: usize,
    pub concurrency: usize,
}

/// Creates the phase's namespaces (`<prefix>-<n>`), labelled with the round's `run`.
pub async fn create_namespaces(b: &Bench, prefix: &str, run: &str, manager: &str) {
    for e in 0..b.environments {
        let name = format!("{prefix}-{e}");
        let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": &name, "labels": {RUN_LABEL: run}}});
        b.namespaces
            .patch(&name, &PatchParams::apply(manager), &Patch::Apply(&ns))
            .await
            .unwrap();
    }
}

/// The rendered children without their owner references, which would point at
/// Services that do not exist (the direct phase) or are of another kind (floor).
pub fn without_owners(children: Vec<Value>) -> Vec<Value> {
    children
        .into_iter()
        .filter(|o| o["kind"] != "Namespace")
        .map(|mut o| {
            if let Some(m) = o["metadata"].as_object_mut() {
                m.remove("ownerReferences");
            }
            o
        })
        .collect()
}

/// Phase 1: the rendered children applied by a plain server-side-apply client
/// (left in place: the caller deletes them, [`delete_namespaces`], or starts the
/// next phase on a fresh cluster). Returns the apply time and the CPU seconds before and after it.
pub async fn direct_phase(
    b: &Bench,
    direct_prefix: &str,
    run: &str,
    progress: Option<&Progress>,
) -> (Duration, BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let docs = manifests(direct_prefix, b.environments, b.services);
    let children = without_owners(render(&docs));
    create_namespaces(b, direct_prefix, run, "bench-direct").await;
    let secrets = secrets(direct_prefix, b.environments, b.services);
    apply_all(
        &b.client,
        &b.discovery,
        secrets,
        b.concurrency,
        "bench-direct",
    )
    .await;
    let child_count = children.len();
    let cpu_direct_start = cpu_seconds();
    let start = Instant::now();
    apply_all_counted(
        &b.client,
        &b.discovery,
        children,
        b.concurrency,
        "bench-direct",
        progress.map(|p| (p, start)),
    )
    .await;
    let direct = start.elapsed();
    let cpu_direct = cpu_seconds();
    println!(
        "direct:  {child_count} children applied in {:.2}s",
        direct.as_secs_f64()
    );
    (direct, cpu_direct_start, cpu_direct)
}

/// Deletes the namespaces labelled with this round's `run`, waits until they are
/// gone, then until the control plane is idle (the garbage collector catching up).
pub async fn delete_namespaces(namespaces: &Api<Namespace>, run: &str) {
    let mine = ListParams::default().labels(&format!("{RUN_LABEL}={run}"));
    if let Ok(list) = namespaces.list(&mine).await {
        for ns in list.items {
            let _ = namespaces
                .delete(&ns.name_any(), &DeleteParams::default())
                .await;
        }
    }
    wait_for(
        "the namespaces to be deleted",
        Duration::from_secs(900),
        async || {
            tokio::time::sleep(Duration::from_secs(1)).await;
            match namespaces.list(&mine).await {
                Ok(list) if list.items.is_empty() => Ok(()),
                Ok(list) => Err(format!("{} left", list.items.len())),
                Err(e) => Err(e.to_string()),
            }
        },
    )
    .await;
    wait_until_idle().await;
}

/// API group of the floor phase's copy of the Service CRD: same schema and
/// validation rules, but no controller watches it.
pub const FLOOR_GROUP: &str = "floor.bench.paved.dev";

/// Removes the floor phase's CRD (and so its objects) after a bench.
pub async fn remove_floor_crd(client: &Client) {
    let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let _ = api
        .delete(&format!("services.{FLOOR_GROUP}"), &DeleteParams::default())
        .await;
}

/// Installs the floor phase's copy of Paved's Service CRD (crds/), under
/// [`FLOOR_GROUP`] and outside the `paved` category, and restarts the
/// controller-manager so that its garbage collector knows the kind.
pub async fn install_floor_crd(client: &Client) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../crds/services.paved.dev.yaml"
    );
    let text = std::fs::read_to_string(path).expect("crds/services.paved.dev.yaml");
    let mut crd: Value = serde_yaml::from_str(&text).expect("CRD YAML");
    crd["metadata"] = json!({"name": format!("services.{FLOOR_GROUP}")});
    crd["spec"]["group"] = json!(FLOOR_GROUP);
    let names = crd["spec"]["names"].as_object_mut().expect("names");
    names.remove("categories");
    names.remove("shortNames");
    let gvk = GroupVersionKind::gvk("apiextensions.k8s.io", "v1", "CustomResourceDefinition");
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let name = format!("services.{FLOOR_GROUP}");
    api.patch(&name, &PatchParams::apply("bench"), &Patch::Apply(&crd))
        .await
        .expect("apply the floor CRD");
    wait_for(
        "the floor CRD to be established",
        Duration::from_secs(60),
        async || {
            let crd = api.get(&name).await.map_err(|e| e.to_string())?;
            let established = crd.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Established" && c["status"] == "True")
                });
            if established {
                Ok(())
            } else {
                Err("not established".into())
            }
        },
    )
    .await;
    // The floor's children are owned by floor Services, as Paved's are by
    // Paved's: the controller-manager's garbage collector reads which kinds
    // exist when it starts and then every 30 s, and until it knows the floor's
    // kind it fails on each such child, retries, and looks each owner up (the
    // same reason `bench-scale.sh --fresh` restarts it after Paved's CRDs).
    restart_controller_manager();
    wait_until_quiet(0.33, Duration::from_secs(60)).await;
}

/// Restarts the local cluster's controller-manager (`e2e/cluster/restart.sh`,
/// which returns once it answers on /healthz) and follows its new process in
/// [`cpu_seconds`].
fn restart_controller_manager() {
    let cluster = concat!(env!("CARGO_MANIFEST_DIR"), "/cluster");
    let script = r#"source "$1/lib.sh" && "$1/restart.sh" kube-controller-manager >/dev/null && cat "$CLUSTER_DIR/pids/kube-controller-manager.pid""#;
    let out = std::process::Command::new("bash")
        .args(["-c", script, "restart", cluster])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("running e2e/cluster/restart.sh");
    assert!(
        out.status.success(),
        "restarting the controller-manager failed ({})",
        out.status
    );
    let pid = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let pids = tracked_pids().unwrap_or_default();
    let pids: Vec<String> = pids
        .split(',')
        .filter(|pair| !pair.is_empty() && !pair.starts_with("kube-controller-manager="))
        .map(str::to_string)
        .chain([format!("kube-controller-manager={pid}")])
        .collect();
    set_pids(pids.join(","));
}

/// The status Paved writes for a new Service, field for field (the shape of
/// `src/status`, as read back from a Paved Service of this bench): rolling out
/// (its first write) or, with `ready`, available (its write once the
/// Deployment is). The conditions, the catalog fields, the scorecard's four
/// insights that a bench Service draws, and the delivery counters. Its size is
/// what the API server stores, encodes and sends to every watch, so the floor
/// writes as much as Paved does (about 1.8 KB), not a sketch of it.
pub fn floor_status(service: &Value, namespace: &str, ready: bool) -> Value {
    let name = service["metadata"]["name"].as_str().unwrap_or_default();
    let image = service["spec"]["image"].as_str().unwrap_or_default();
    let at = "2026-01-01T00:00:00Z";
    let (conditions, pods) = if ready {
        let available = format!("1 of 1 pods available, running {image}");
        (
            json!([{"type": "Ready", "status": "True", "reason": "Available",
                    "message": available, "lastTransitionTime": at, "observedGeneration": 1}]),
            1,
        )
    } else {
        let rolling = format!("rolling out {image}: 0 of 1 pods updated, 0 available");
        (
            json!([
                {"type": "Ready", "status": "False", "reason": "RollingOut",
                 "message": rolling, "lastTransitionTime": at, "observedGeneration": 1},
                {"type": "Reconciling", "status": "True", "reason": "RollingOut",
                 "message": rolling, "lastTransitionTime": at, "observedGeneration": 1},
            ]),
            0,
        )
    };
    let mut status = json!({
        "observedGeneration": 1,
        "conditions": conditions,
        "image": image,
        "replicas": {"desired": 1, "ready": pods, "available": pods, "updated": pods},
        "endpoint": format!("{name}.{namespace}.svc.cluster.local:8080"),
        "dependencies": [],
        "revision": 1,
        "history": [{"revision": 1, "image": image, "configHash": "0123456789abcdef", "deployedAt": at}],
        "probe": "TCPSocket",
        "scorecard": {
            "score": 50, "critical": 0, "warning": 2, "info": 2,
            "insights": [
                {"rule": "health-check", "level": "warning",
                 "message": "only a TCP probe checks the pods: declare spec.health (an HTTP path and port) so hung pods are restarted and kept out of rotation"},
                {"rule": "resource-requests", "level": "warning",
                 "message": "no cpu or memory request set (by the Service or the Environment's defaults): set spec.resources.requests.cpu and .memory so pods are scheduled, and costed, by what they need"},
                {"rule": "image-digest", "level": "info",
                 "message": format!("image {image} is pinned by tag only: add the digest (image:tag@sha256:...) so a re-pushed tag cannot change what runs")},
                {"rule": "memory-limit", "level": "info",
                 "message": "only Paved's built-in default memory limit (512Mi) applies: set spec.resources.limits.memory to what the Service needs, so a leak kills one pod and a big heap is not killed for nothing"},
            ],
        },
        "delivery": {
            "since": at, "deploys": 1, "lastDeployAt": at, "failures": 0,
            "changeFailureRate": "0.00", "restores": 0, "timeToRestoreSecondsTotal": 0,
            "leadTimes": 0, "leadTimeSecondsTotal": 0,
        },
    });
    if service["spec"].get("expose").is_some() {
        status["url"] = json!(format!("http://{name}.{namespace}.bench.example.com"));
    }
    status
}

/// The floor: what Paved's design asks of the API server, written by a plain
/// client with no controller logic. Per Service: the Service object (in a copy of
/// the CRD no controller watches); for each rendered child, the read of its name
/// (DESIGN.md: before the first write to a child's name, what is there must be
/// the owner's) and its write with a controller ownerReference to the Service;
/// then its first status write of Paved's size ([`floor_status`]), at the same
/// concurrency. The Environments' children are written before the clock, as
/// in the Paved phase. And, as the design's Ready condition needs: one watch of the
/// floor's Deployments, and the Ready status write of each Service whose
/// Deployment is available once its first status is written (those that
/// become available within the phase; Paved's later ones fall outside its
/// phase too). Paved's own time can approach this, not the direct phase's.
/// Not in it: the Applications' and Environments' status, the watches of the
/// other kinds, the reconciles. Left in place, like the direct phase's.
/// Returns the time and the CPU seconds before and after.
pub async fn floor_phase(
    b: &Bench,
    prefix: &str,
    run: &str,
    progress: Option<&Progress>,
) -> (Duration, BTreeMap<String, f64>, BTreeMap<String, f64>) {
    let (client, discovery) = (&b.client, &b.discovery);
    let docs = manifests(prefix, b.environments, b.services);
    let children = without_owners(render(&docs));
    let service_docs: Vec<Value> = docs
        .into_iter()
        .filter(|d| d["kind"] == "Service")
        .collect();
    // One unit of work per Service: its object, its children, its status.
    let units: std::collections::HashSet<(String, String)> =
        service_docs.iter().map(key_of).collect();
    let (of_services, of_environments): (Vec<Value>, Vec<Value>) = children
        .into_iter()
        .partition(|child| units.contains(&key_of(child)));
    let mut children_of: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
    for child in of_services {
        children_of.entry(key_of(&child)).or_default().push(child);
    }
    // The Environments' own children (the namespace's LimitRange of default
    // requests and limits, which admission then applies to every pod) exist
    // before the clock, as in the Paved phase, whose Environments are
    // reconciled before its Services are applied.
    create_namespaces(b, prefix, run, "bench-floor").await;
    apply_all(
        client,
        discovery,
        of_environments,
        b.concurrency,
        "bench-floor",
    )
    .await;
    let secrets = secrets(prefix, b.environments, b.services);
    apply_all(client, discovery, secrets, b.concurrency, "bench-floor").await;
    let resource =
        ApiResource::from_gvk(&GroupVersionKind::gvk(FLOOR_GROUP, "v1alpha1", "Service"));
    let params = PatchParams::apply("bench-floor").force();
    let service_docs: Vec<Value> = service_docs
        .into_iter()
        .map(|mut service| {
            service["apiVersion"] = json!(format!("{FLOOR_GROUP}/v1alpha1"));
            service
        })
        .collect();
    let ready = ReadyWrites::start(b, prefix, &resource, &service_docs);
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let errors: Vec<String> = stream::iter(service_docs)
        .map(|service| {
            let (namespace, name) = key_of(&service);
            let children = children_of
                .remove(&(namespace.clone(), name.clone()))
                .unwrap_or_default();
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            let params = params.clone();
            let ready = &ready;
            async move {
                let _turn = ready.turn().await;
                let object = api
                    .patch(&name, &params, &Patch::Apply(&service))
                    .await
                    .map_err(|e| format!("Service {name}: {e}"))?;
                // Owned by their Service, as Paved's children are (the
                // garbage collector tracks them), each written after the read
                // that Paved's design asks before the first write to a name:
                // what is there, and who controls it?
                let owner = json!([{
                    "apiVersion": format!("{FLOOR_GROUP}/v1alpha1"),
                    "kind": "Service",
                    "name": &name,
                    "uid": object.metadata.uid,
                    "controller": true,
                    "blockOwnerDeletion": true,
                }]);
                for mut child in children {
                    child["metadata"]["ownerReferences"] = owner.clone();
                    let (child_api, kind, child_name) = api_of(client.clone(), discovery, &child)?;
                    let there = child_api
                        .get_metadata_opt(&child_name)
                        .await
                        .map_err(|e| format!("reading {kind} {child_name}: {e}"))?;
                    if there.is_some() {
                        return Err(format!("{kind} {child_name} exists already"));
                    }
                    child_api
                        .patch(&child_name, &params, &Patch::Apply(&child))
                        .await
                        .map_err(|e| format!("{kind} {child_name}: {e}"))?;
                }
                let status = status_patch(floor_status(&service, &namespace, false));
                api.patch_status(&name, &PatchParams::default(), &Patch::<()>::Json(status))
                    .await
                    .map_err(|e| format!("status of {name}: {e}"))?;
                ready.first_written((namespace, name));
                if let Some(progress) = progress {
                    progress.one_more(start);
                }
                Ok::<(), String>(())
            }
        })
        .buffer_unordered(b.concurrency)
        .filter_map(|r| futures::future::ready(r.err()))
        .collect()
        .await;
    let floor = start.elapsed();
    let cpu_end = cpu_seconds();
    let (ready_written, ready_errors) = ready.stop();
    assert!(
        errors.is_empty(),
        "{} floor writes failed, first: {}",
        errors.len(),
        errors[0]
    );
    assert!(
        ready_errors.is_empty(),
        "{} floor Ready writes failed, first: {}",
        ready_errors.len(),
        ready_errors[0]
    );
    println!(
        "floor:   {} Services with children and status written in {:.2}s ({ready_written} Ready within it)",
        b.services,
        floor.as_secs_f64()
    );
    (floor, cpu_start, cpu_end)
}

/// The `(namespace, name)` of a manifest (empty when it has none).
fn key_of(manifest: &Value) -> (String, String) {
    let field = |f: &str| {
        manifest["metadata"][f]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    (field("namespace"), field("name"))
}

/// A JSON patch that sets `status` whole (as Paved's status writes do).
fn status_patch(status: Value) -> json_patch::Patch {
    json_patch::Patch(vec![json_patch::PatchOperation::Add(
        json_patch::AddOperation {
            path: json_patch::jsonptr::PointerBuf::from_tokens(["status"]),
            value: status,
        },
    )])
}

/// The floor's part of a controller that the design's Ready condition needs:
/// one watch of the run's Deployments (as Paved's, whole objects with their
/// status) and, per Service, the Ready status write of Paved's size once its
/// Deployment is available and its first status is written, whichever comes
/// second, within the phase's concurrency. Stopped at the end of the phase
/// ([`ReadyWrites::stop`]).
struct ReadyWrites {
    state: std::sync::Arc<std::sync::Mutex<ReadyState>>,
    /// The phase's concurrency, shared by the Services' first writes and the
    /// Ready writes, as Paved's Service reconciles share `--concurrency`.
    turns: std::sync::Arc<tokio::sync::Semaphore>,
    send: tokio::sync::mpsc::UnboundedSender<(String, String)>,
    watch: tokio::task::JoinHandle<()>,
    writes: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct ReadyState {
    first_written: std::collections::HashSet<(String, String)>,
    available: std::collections::HashSet<(String, String)>,
    written: usize,
    errors: Vec<String>,
}

impl ReadyWrites {
    fn start(b: &Bench, prefix: &str, resource: &ApiResource, services: &[Value]) -> ReadyWrites {
        let state = std::sync::Arc::new(std::sync::Mutex::new(ReadyState::default()));
        let turns = std::sync::Arc::new(tokio::sync::Semaphore::new(b.concurrency));
        let (send, receive) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
        let docs: std::collections::HashMap<(String, String), Value> =
            services.iter().map(|s| (key_of(s), s.clone())).collect();
        let deployments: Api<Deployment> = Api::all(b.client.clone());
        let selector = format!("app.kubernetes.io/managed-by=paved,{RUN_LABEL}={prefix}");
        let watch = {
            let state = state.clone();
            let send = send.clone();
            tokio::spawn(
                watcher::watcher(deployments, watcher::Config::default().labels(&selector))
                    .default_backoff()
                    .applied_objects()
                    .for_each(move |deployment| {
                        if let Ok(deployment) = deployment
                            && is_available(&deployment)
                        {
                            let key = (
                                deployment.namespace().unwrap_or_default(),
                                deployment.name_any(),
                            );
                            let mut state = state.lock().unwrap();
                            if state.available.insert(key.clone())
                                && state.first_written.contains(&key)
                            {
                                let _ = send.send(key);
                            }
                        }
                        futures::future::ready(())
                    }),
            )
        };
        let writes = {
            let (state, client, resource) = (state.clone(), b.client.clone(), resource.clone());
            let (concurrency, turns) = (b.concurrency, turns.clone());
            let keys = stream::unfold(receive, async |mut receive| {
                receive.recv().await.map(|key| (key, receive))
            });
            tokio::spawn(
                keys.map(move |(namespace, name)| {
                    let api: Api<DynamicObject> =
                        Api::namespaced_with(client.clone(), &namespace, &resource);
                    let service = docs[&(namespace.clone(), name.clone())].clone();
                    let (state, turns) = (state.clone(), turns.clone());
                    async move {
                        let _turn = turns.acquire().await.expect("never closed");
                        let status = status_patch(floor_status(&service, &namespace, true));
                        let written = api
                            .patch_status(
                                &name,
                                &PatchParams::default(),
                                &Patch::<()>::Json(status),
                            )
                            .await;
                        let mut state = state.lock().unwrap();
                        match written {
                            Ok(_) => state.written += 1,
                            Err(e) => state.errors.push(format!("Ready status of {name}: {e}")),
                        }
                    }
                })
                .buffer_unordered(concurrency)
                .for_each(|()| futures::future::ready(())),
            )
        };
        ReadyWrites {
            state,
            turns,
            send,
            watch,
            writes,
        }
    }

    /// One of the phase's concurrent turns ([`ReadyWrites::turns`]).
    async fn turn(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.turns.acquire().await.expect("never closed")
    }

    /// The Service's first status is written: its Ready write follows now if
    /// its Deployment is available already, else when the watch sees it so.
    fn first_written(&self, key: (String, String)) {
        let mut state = self.state.lock().unwrap();
        if state.first_written.insert(key.clone()) && state.available.contains(&key) {
            let _ = self.send.send(key);
        }
    }

    /// Stops the watch and the writes; returns the Ready writes made and the
    /// failed ones.
    fn stop(self) -> (usize, Vec<String>) {
        self.watch.abort();
        self.writes.abort();
        let mut state = self.state.lock().unwrap();
        (state.written, std::mem::take(&mut state.errors))
    }
}

/// Whether a Deployment's current generation is rolled out and available.
fn is_available(deployment: &Deployment) -> bool {
    let (Some(spec), Some(status)) = (&deployment.spec, &deployment.status) else {
        return false;
    };
    let desired = spec.replicas.unwrap_or(1);
    status.observed_generation >= deployment.metadata.generation
        && status.updated_replicas.unwrap_or(0) >= desired
        && status.available_replicas.unwrap_or(0) >= desired
}

/// What one Paved phase measured.
pub struct PavedPhase {
    pub applied: Duration,
    pub reflected: Duration,
    pub writes_by_resource: BTreeMap<String, f64>,
    pub cpu_start: BTreeMap<String, f64>,
    pub cpu_end: BTreeMap<String, f64>,
}

/// Phase 3: Environments and Applications first (untimed), then the Services,
/// timed until every status reflects its generation and all children exist.
pub async fn paved_phase(b: &Bench, prefix: &str, progress: Option<&Progress>) -> PavedPhase {
    let (client, discovery, namespaces) = (&b.client, &b.discovery, &b.namespaces);
    let (environments, services, concurrency) = (b.environments, b.services, b.concurrency);
    let docs = manifests(prefix, environments, services);
    let (setup, services_docs): (Vec<Value>, Vec<Value>) =
        docs.into_iter().partition(|d| d["kind"] != "Service");
    let (envs, apps): (Vec<Value>, Vec<Value>) =
        setup.into_iter().partition(|d| d["kind"] == "Environment");
    apply_all(client, discovery, envs, concurrency, "bench").await;
    for e in 0..environments {
        let ns = format!("{prefix}-{e}");
        wait_for(
            "the Environment namespaces",
            Duration::from_secs(60),
            async || {
                namespaces
                    .get(&ns)
                    .await
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            },
        )
        .await;
    }
    apply_all(client, discovery, apps, concurrency, "bench").await;
    let secrets = secrets(prefix, environments, services);
    apply_all(client, discovery, secrets, concurrency, "bench").await;

    let before = apiserver_writes(client).await;
    // Completion is seen through one watch of the run's Services, started
    // before the clock and counted event by event: the end is seen when its
    // event comes (not up to a check's interval late), and the bench's own work
    // stays small, as in the floor phase, which has no watch at all. Paved
    // writes a generation into status only after that generation's children
    // were applied; one list of each at the end checks that they exist.
    let mut reflections = Reflections::start(client, prefix).await;
    let cpu_start = cpu_seconds();
    let start = Instant::now();
    let (applied, reflected) = tokio::join!(
        async {
            apply_all(client, discovery, services_docs, concurrency, "bench").await;
            start.elapsed()
        },
        // 1 s per Service past 600 s: a bound for a broken run, not a target.
        reflections.wait(
            services,
            start,
            progress,
            Duration::from_secs(600 + services as u64)
        ),
    );
    let cpu_end = cpu_seconds();
    drop(reflections);
    // Should a child be missing after all, the phase ends when it exists.
    let reflected = match children_missing(client, prefix, services).await {
        None => reflected,
        Some(_) => {
            wait_for(
                "every Service's children",
                Duration::from_secs(600),
                async || {
                    children_missing(client, prefix, services)
                        .await
                        .map_or(Ok(()), Err)
                },
            )
            .await;
            start.elapsed()
        }
    };
    // Let in-flight status writes land before reading the counters.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = apiserver_writes(client).await;
    let mut writes_by_resource = paved_writes(&before, &after);
    if let Some(bench_applies) = writes_by_resource.get_mut("services.paved.dev") {
        *bench_applies -= services as f64; // the bench's own Service applies
    }
    PavedPhase {
        applied,
        reflected,
        writes_by_resource,
        cpu_start,
        cpu_end,
    }
}

/// The run's Services (label [`RUN_LABEL`] = `prefix`) whose status reflects
/// their generation, counted from one watch as its events come.
pub struct Reflections {
    events:
        futures::stream::BoxStream<'static, Result<watcher::Event<DynamicObject>, watcher::Error>>,
    reflecting: std::collections::HashMap<(String, String), bool>,
}

impl Reflections {
    /// Returns once the watch has listed what exists.
    pub async fn start(client: &Client, prefix: &str) -> Reflections {
        let (api, config, _) = run_services_watch(client, prefix);
        let mut reflections = Reflections {
            events: watcher::watcher(api, config).default_backoff().boxed(),
            reflecting: Default::default(),
        };
        while let Some(event) = reflections.events.next().await {
            if let Ok(watcher::Event::InitDone) = event {
                return reflections;
            }
        }
        panic!("the watch of the run's Services ended before it listed them")
    }

    fn count(&self) -> usize {
        self.reflecting.values().filter(|r| **r).count()
    }

    /// Follows the watch until `services` Services reflect their generation;
    /// returns the time since `start` when the last one did.
    pub async fn wait(
        &mut self,
        services: usize,
        start: Instant,
        progress: Option<&Progress>,
        timeout: Duration,
    ) -> Duration {
        let mut done = self.count();
        while done < services {
            let event = tokio::time::timeout(timeout.saturating_sub(start.elapsed()), self.events.next())
                .await
                .unwrap_or_else(|_| {
                    panic!("timed out waiting for every Service's status to reflect its generation: {done}/{services} do")
                })
                .expect("the watch of the run's Services ended");
            let (object, deleted) = match event {
                Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => (o, false),
                Ok(watcher::Event::Delete(o)) => (o, true),
                // A relist (after an error) sends every object again.
                Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => continue,
            };
            let key = (object.namespace().unwrap_or_default(), object.name_any());
            let generation = object.metadata.generation.unwrap_or(-1);
            let reflects = !deleted
                && object.data["status"]["observedGeneration"].as_i64() == Some(generation);
            let was = if deleted {
                self.reflecting.remove(&key)
            } else {
                self.reflecting.insert(key, reflects)
            }
            .unwrap_or(false);
            match (was, reflects) {
                (false, true) => done += 1,
                (true, false) => done -= 1,
                _ => continue,
            }
            if let Some(progress) = progress {
                progress.record(start, done);
            }
        }
        start.elapsed()
    }
}

/// What is missing of the run's children (Deployments and core Services, one
/// each per Service), read by one metadata list of each; None when nothing is.
pub async fn children_missing(client: &Client, prefix: &str, services: usize) -> Option<String> {
    let deployments = children_in_run(Api::<Deployment>::all(client.clone()), prefix).await;
    let core_services = children_in_run(Api::<CoreService>::all(client.clone()), prefix).await;
    match (deployments, core_services) {
        (Ok(d), Ok(s)) if d >= services && s >= services => None,
        (Ok(d), Ok(s)) => Some(format!("{d} Deployments, {s} Services of {services}")),
        (Err(e), _) | (_, Err(e)) => Some(format!("listing the children: {e}")),
    }
}

/// How many of Paved's children of kind `K` are in the run's namespaces.
async fn children_in_run<K>(api: Api<K>, prefix: &str) -> Result<usize, kube::Error>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let params = ListParams::default().labels("app.kubernetes.io/managed-by=paved");
    let in_run = format!("{prefix}-");
    Ok(api
        .list_metadata(&params)
        .await?
        .items
        .iter()
        .filter(|o| {
            o.metadata
                .namespace
                .as_deref()
                .is_some_and(|n| n.starts_with(&in_run))
        })
        .count())
}

/// Deletes a Paved phase's Environments and waits until they and their
/// namespaces are gone: the controller must see the deletions through
/// (finalizers), or the next phase starts on a cluster still busy with this one.
pub async fn delete_paved(client: &Client, prefix: &str, environments: usize) {
    let env_api: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &ApiResource::from_gvk(&GroupVersionKind::gvk(
            "paved.dev",
            "v1alpha1",
            "Environment",
        )),
    );
    for e in 0..environments {
        let _ = env_api
            .delete(&format!("{prefix}-{e}"), &DeleteParams::default())
            .await;
    }
    let mine = ListParams::default().labels(&format!("{RUN_LABEL}={prefix}"));
    wait_for(
        "the Environments to be deleted",
        Duration::from_secs(300),
        async || match env_api.list(&mine).await {
            Ok(list) if list.items.is_empty() => Ok(()),
            Ok(list) => Err(format!("{} left", list.items.len())),
            Err(e) => Err(e.to_string()),
        },
    )
    .await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    wait_for(
        "the namespaces to be deleted",
        Duration::from_secs(600),
        async || {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let list = namespaces
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let left = list
                .items
                .iter()
                .filter(|n| {
                    n.metadata
                        .name
                        .as_ref()
                        .is_some_and(|n| n.starts_with(&format!("{prefix}-")))
                })
                .count();
            if left == 0 {
                Ok(())
            } else {
                Err(format!("{left} left"))
            }
        },
    )
    .await;
}

pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
