//! Faults: leader failover, the split-brain test, and control-plane outages.
//!
//! These tests start and stop controller replicas of their own (`$PAVED_BIN
//! run`, each with its own `/metrics` port and log), kill, stop and terminate
//! them, and restart control-plane components (`e2e/cluster/restart.sh`). They
//! must be the only Paved acting on the cluster, so they run from
//! `e2e/faults.sh` (which sets `PAVED_E2E_FAULTS=1`, one test at a time) and are
//! skipped otherwise. Each prints its figures (failover and recovery seconds).
//!
//! Where the API server writes an audit log of writes (`PAVED_E2E_AUDIT_LOG`,
//! which faults.sh sets up), "no write" is judged on what the API server
//! received, by User-Agent (`paved/<identity>`); otherwise on the replicas' own
//! write logs (DEBUG `paved::write`).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, condition, describe_status, image, is_observed, merge_patch, pod_selector,
};
use crate::support::{client, unique, wait_until};

/// Short timings, so that a failover test takes seconds: the same rules as the
/// defaults (15 s / 10 s / 2 s), scaled down.
const LEASE_DURATION: u64 = 6;
const RENEW_DEADLINE: f64 = 4.0;
const RETRY_PERIOD: f64 = 1.0;
const LEASE_NAMESPACE: &str = "default";

fn enabled(test: &str) -> bool {
    if std::env::var_os("PAVED_E2E_FAULTS").is_some() {
        return true;
    }
    eprintln!("skipped {test}: run by e2e/faults.sh (PAVED_E2E_FAULTS=1)");
    false
}

/// A controller replica run by the test; killed when dropped.
struct Replica {
    identity: String,
    port: u16,
    log: PathBuf,
    child: Child,
}

fn logs_dir() -> PathBuf {
    std::env::var_os("PAVED_E2E_FAULTS_LOGS")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
}

fn next_port() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let base: u16 = std::env::var("PAVED_E2E_FAULTS_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18100);
    base + NEXT.fetch_add(1, Ordering::Relaxed)
}

impl Replica {
    /// A replica with the short test timings.
    fn start(lease: &str, name: &str) -> Replica {
        Self::start_with(lease, name, &Self::short_timings())
    }

    fn start_with(lease: &str, name: &str, timings: &[(&str, String)]) -> Replica {
        Self::spawn(lease, name, name, timings, None)
    }

    /// A replica that reaches the API server through `relay`.
    fn start_through(
        lease: &str,
        name: &str,
        timings: &[(&str, String)],
        relay: &Relay,
    ) -> Replica {
        Self::spawn(lease, name, name, timings, Some(&relay.kubeconfig))
    }

    /// The replica `name` once more, after a crash: the same identity (a
    /// container restarted in its pod), its own log `<name>-<run>`.
    fn restart(lease: &str, name: &str, run: usize) -> Replica {
        let timings = Self::short_timings();
        Self::spawn(lease, name, &format!("{name}-{run}"), &timings, None)
    }

    fn short_timings() -> [(&'static str, String); 3] {
        [
            ("--lease-duration", LEASE_DURATION.to_string()),
            ("--renew-deadline", RENEW_DEADLINE.to_string()),
            ("--retry-period", RETRY_PERIOD.to_string()),
        ]
    }

    fn spawn(
        lease: &str,
        name: &str,
        log_name: &str,
        timings: &[(&str, String)],
        kubeconfig: Option<&PathBuf>,
    ) -> Replica {
        let bin = std::env::var("PAVED_BIN").expect("PAVED_BIN (set by e2e/faults.sh)");
        let identity = format!("{lease}-{name}");
        let port = next_port();
        let log = logs_dir().join(format!("{lease}-{log_name}.log"));
        let file = std::fs::File::create(&log).expect("replica log");
        let mut command = Command::new(bin);
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        command
            .args(["run", "--log-format", "json", "--identity", &identity])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(["--lease-name", lease, "--lease-namespace", LEASE_NAMESPACE]);
        for (flag, value) in timings {
            command.args([flag, value.as_str()]);
        }
        let child = command
            .env("RUST_LOG", "info,paved::write=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start a replica");
        Replica {
            identity,
            port,
            log,
            child,
        }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal} {}", self.identity);
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().expect("replica status").is_none()
    }

    /// `(status code, body)` of a GET on the replica's endpoint, `None` if unreachable.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let address = format!("127.0.0.1:{}", self.port);
        let mut stream = std::net::TcpStream::connect(&address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n").ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let (head, body) = response.split_once("\r\n\r\n")?;
        let code = head.split_whitespace().nth(1)?.parse().ok()?;
        Some((code, body.to_string()))
    }

    fn is_leader(&self) -> bool {
        self.get("/metrics")
            .is_some_and(|(_, body)| body.lines().any(|l| l == "paved_leader 1"))
    }

    fn metric(&self, name: &str) -> f64 {
        let body = self.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        crate::paved_support::metric_sum(&body, name, &[])
    }

    /// The writes this replica let through its fence, by the time it logged them.
    fn logged_writes(&self) -> Vec<(Timestamp, String)> {
        self.logged("write")
    }

    /// The fence's log lines (target `paved::write`) with this message.
    fn logged(&self, message: &str) -> Vec<(Timestamp, String)> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter(|l| l["target"] == "paved::write" && l["message"] == message)
            .filter_map(|l| {
                let at = l["timestamp"].as_str()?.parse().ok()?;
                let what = format!("{} {}", l["method"], l["path"]);
                Some((at, what))
            })
            .collect()
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn holder(lease: &str) -> Option<String> {
    let leases = Api::<Lease>::namespaced(client().await, LEASE_NAMESPACE);
    leases
        .get_opt(lease)
        .await
        .ok()
        .flatten()
        .and_then(|l| l.spec?.holder_identity)
        .filter(|h| !h.is_empty())
}

async fn wait_holder(lease: &str, replica: &Replica, timeout: Duration) -> Duration {
    let start = Instant::now();
    wait_until(
        &format!("{} to hold the Lease {lease}", replica.identity),
        timeout,
        || async {
            match holder(lease).await {
                Some(h) if h == replica.identity => Ok(()),
                other => Err(format!("holder {other:?}")),
            }
        },
    )
    .await;
    start.elapsed()
}

async fn wait_healthy(replica: &Replica) {
    wait_until(
        &format!("{} to answer /healthz", replica.identity),
        Duration::from_secs(30),
        || async {
            match replica.get("/healthz") {
                Some((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
}

/// An Environment, an Application and `count` Services `svc-<i>` at tag `1`.
async fn workload(prefix: &str, count: usize) -> TestEnvironment {
    let env = TestEnvironment::create(prefix).await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "description": "faults", "lifecycle": "experimental"}),
    )
    .await;
    for i in 0..count {
        env.apply_service(
            &format!("svc-{i}"),
            json!({"application": "shop", "image": image("svc", "1"), "ports": [{"name": "http", "port": 8080}]}),
        )
        .await;
    }
    env
}

/// Sets the image tag of the given Services (a spec change, a new generation).
async fn change(env: &TestEnvironment, names: &[String], tag: &str) {
    let api = env.services();
    for name in names {
        merge_patch(&api, name, json!({"spec": {"image": image("svc", tag)}})).await;
    }
}

fn names(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("svc-{i}")).collect()
}

fn converged(service: &DynamicObject) -> bool {
    is_observed(service) && condition(service, "Ready").is_some_and(|c| c.status == "True")
}

/// Waits until every Service of the environment is Ready at its generation;
/// returns how long that took.
async fn wait_converged(env: &TestEnvironment, timeout: Duration) -> Duration {
    wait_services(
        env,
        timeout,
        converged,
        "every Service Ready at its generation",
    )
    .await
}

/// Waits until Paved has reconciled every Service at its generation (whatever
/// the rollout, which is the cluster's own business); returns how long that took.
async fn wait_observed(env: &TestEnvironment, timeout: Duration) -> Duration {
    wait_services(
        env,
        timeout,
        is_observed,
        "every Service observed at its generation",
    )
    .await
}

async fn wait_services(
    env: &TestEnvironment,
    timeout: Duration,
    done: fn(&DynamicObject) -> bool,
    what: &str,
) -> Duration {
    let start = Instant::now();
    // The cluster's view of the rollout costs two more requests: it is read
    // only in the wait's last seconds, whose message is the one a timeout prints.
    let explain_from = timeout.saturating_sub(Duration::from_secs(5));
    let api = env.services();
    wait_until(what, timeout, || async {
        let list = api
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        match list.items.iter().find(|s| !done(s)) {
            None => Ok(()),
            Some(s) => {
                let name = s.metadata.name.as_deref().unwrap_or_default();
                let mut seen = format!("{name}: {}", describe_status(s));
                if start.elapsed() >= explain_from {
                    seen += &format!("; the cluster says: {}", rollout(env, name).await);
                }
                Err(seen)
            }
        }
    })
    .await;
    start.elapsed()
}

/// What the API server holds of a Service's rollout (its Deployment's status
/// and its pods' phase and readiness), so that a wait that times out says
/// whether Paved's status lags the cluster or the cluster itself is stuck.
async fn rollout(env: &TestEnvironment, name: &str) -> String {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Pod;
    let deployment = match env.api::<Deployment>().get(name).await {
        Ok(deployment) => deployment,
        Err(e) => return format!("Deployment {name}: {e}"),
    };
    let selector = pod_selector(&deployment);
    let status = deployment.status.unwrap_or_default();
    let pods = match env
        .api::<Pod>()
        .list(&ListParams::default().labels(&selector))
        .await
    {
        Ok(pods) => pods
            .items
            .iter()
            .map(|pod| {
                let status = pod.status.clone().unwrap_or_default();
                let ready = status
                    .conditions
                    .unwrap_or_default()
                    .into_iter()
                    .find(|c| c.type_ == "Ready")
                    .map(|c| format!("{} ({})", c.status, c.reason.unwrap_or_default()))
                    .unwrap_or_else(|| "unset".into());
                format!(
                    "{} on {}: {}, Ready {ready}",
                    pod.metadata.name.as_deref().unwrap_or_default(),
                    pod.spec
                        .as_ref()
                        .and_then(|s| s.node_name.as_deref())
                        .unwrap_or("no node"),
                    status.phase.unwrap_or_default()
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        Err(e) => format!("pods: {e}"),
    };
    format!(
        "Deployment generation {} observed {}, replicas {} updated {} ready {} available {}; pods [{pods}]",
        deployment.metadata.generation.unwrap_or_default(),
        status.observed_generation.unwrap_or_default(),
        status.replicas.unwrap_or_default(),
        status.updated_replicas.unwrap_or_default(),
        status.ready_replicas.unwrap_or_default(),
        status.available_replicas.unwrap_or_default(),
    )
}

// ----------------------------------------------------------------- audit log

/// One write the API server received, from its audit log.
struct AuditedWrite {
    received: Timestamp,
    verb: String,
    resource: String,
    name: String,
    code: i64,
}

fn audit_log() -> Option<PathBuf> {
    std::env::var_os("PAVED_E2E_AUDIT_LOG").map(PathBuf::from)
}

fn audited_writes(path: &PathBuf, user_agent: &str) -> Vec<AuditedWrite> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|e| e["userAgent"].as_str().is_some_and(|ua| ua == user_agent))
        .filter(|e| {
            matches!(
                e["verb"].as_str(),
                Some("create" | "update" | "patch" | "delete" | "deletecollection")
            )
        })
        .filter_map(|e| {
            Some(AuditedWrite {
                received: e["requestReceivedTimestamp"].as_str()?.parse().ok()?,
                verb: e["verb"].as_str()?.to_string(),
                resource: e["objectRef"]["resource"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                name: e["objectRef"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                code: e["responseStatus"]["code"].as_i64().unwrap_or_default(),
            })
        })
        .collect()
}

// ----------------------------------------------------------------- leader election

/// SIGKILL of the leader: the standby takes over once the lease duration has
/// passed, and a change made right after the kill lands.
#[tokio::test]
async fn a_killed_leader_is_replaced_within_the_lease_duration_and_a_change_made_right_after_lands()
{
    if !enabled("sigkill failover") {
        return;
    }
    let lease = unique("faults-kill");
    let a = Replica::start(&lease, "a");
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-kill", 2).await;
    let b = Replica::start(&lease, "b");
    wait_healthy(&b).await;
    wait_converged(&env, Duration::from_secs(60)).await;
    assert!(!b.is_leader(), "the standby does not lead");

    let killed = Instant::now();
    a.signal("KILL");
    change(&env, &names(1), "2").await;
    let taken = wait_holder(&lease, &b, Duration::from_secs(LEASE_DURATION * 3)).await;
    wait_observed(&env, Duration::from_secs(60)).await;
    let applied = killed.elapsed();
    wait_converged(&env, Duration::from_secs(60)).await;
    let landed = killed.elapsed();
    println!(
        "FIGURE sigkill failover: standby took the Lease {:.1}s after the kill (lease duration {LEASE_DURATION}s), the change made right after the kill was applied after {:.1}s and rolled out (Ready) after {:.1}s",
        taken.as_secs_f64(),
        applied.as_secs_f64(),
        landed.as_secs_f64()
    );
    let bound = LEASE_DURATION as f64 + 2.0 * RETRY_PERIOD + 1.0;
    assert!(
        taken.as_secs_f64() <= bound,
        "takeover took {taken:?}, more than {bound}s"
    );
    assert!(
        taken.as_secs_f64() >= LEASE_DURATION as f64 - 1.0,
        "the standby took the Lease after {taken:?}, before it could have expired"
    );
    drop(a);
}

/// SIGTERM of the leader (a rolling update): it releases the Lease at once and
/// the standby leads within about a second.
#[tokio::test]
async fn a_terminated_leader_hands_over_in_about_a_second() {
    if !enabled("sigterm handover") {
        return;
    }
    let lease = unique("faults-term");
    let mut a = Replica::start(&lease, "a");
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-term", 1).await;
    let b = Replica::start(&lease, "b");
    wait_healthy(&b).await;
    wait_converged(&env, Duration::from_secs(60)).await;

    let terminated = Instant::now();
    a.signal("TERM");
    let taken = wait_holder(&lease, &b, Duration::from_secs(LEASE_DURATION * 3)).await;
    change(&env, &names(1), "2").await;
    wait_converged(&env, Duration::from_secs(60)).await;
    println!(
        "FIGURE sigterm handover: standby took the Lease {:.1}s after SIGTERM (retry period {RETRY_PERIOD}s), a change after it landed after {:.1}s",
        taken.as_secs_f64(),
        terminated.elapsed().as_secs_f64()
    );
    assert!(
        taken.as_secs_f64() <= RETRY_PERIOD + 1.5,
        "handover took {taken:?}: the Lease was not released on SIGTERM"
    );
    let exited = wait_until(
        "the terminated leader to exit",
        Duration::from_secs(15),
        || {
            let status = a.child.try_wait().expect("status");
            async move { status.ok_or_else(|| "still running".to_string()) }
        },
    )
    .await;
    assert!(exited.success(), "exit status {exited}\n{}", a.log_tail());
}

/// The classic split-brain test: the leader, busy writing, is paused (SIGSTOP)
/// past the lease duration, the standby takes over, the old leader resumes.
/// From the moment another replica could have taken the Lease, the old leader
/// must not change a single object (a request already sent before the pause may
/// arrive late; the API server must refuse it); it keeps its process and /healthz, stands
/// by, and leads again when the new leader goes.
#[tokio::test]
async fn a_paused_leader_writes_nothing_once_another_replica_could_lead() {
    if !enabled("split brain") {
        return;
    }
    let count = 12;
    let lease = unique("faults-stop");
    let mut a = Replica::start(&lease, "a");
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-stop", count).await;
    let b = Replica::start(&lease, "b");
    wait_healthy(&b).await;
    wait_converged(&env, Duration::from_secs(90)).await;

    // Stop the leader while it is writing: right after its first write of a burst.
    let before = a.logged_writes().len();
    change(&env, &names(count), "2").await;
    wait_until(
        "the leader to start writing",
        Duration::from_secs(20),
        || {
            let n = a.logged_writes().len();
            async move { (n > before).then_some(()).ok_or("no write yet".to_string()) }
        },
    )
    .await;
    a.signal("STOP");
    let stopped_at = Timestamp::now();
    wait_holder(&lease, &b, Duration::from_secs(LEASE_DURATION * 3)).await;
    // The new leader works; the old one's watches queue these events for later.
    change(&env, &names(count), "3").await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    a.signal("CONT");
    let resumed_at = Timestamp::now();
    change(&env, &names(count), "4").await;
    wait_converged(&env, Duration::from_secs(90)).await;
    // Time for the resumed replica to misbehave, if it would.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Evidence 1: the writes the old leader logged as let through after it resumed.
    let logged_late: Vec<_> = a
        .logged_writes()
        .into_iter()
        .filter(|(at, _)| *at >= resumed_at)
        .collect();
    // Evidence 2: what the API server received from it, from the audit log.
    // Shown, not asserted: writes let through before the pause and stopped by
    // the fence's second check, when the connection took their body.
    let caught = a
        .logged("write refused on the wire: not the leader")
        .into_iter()
        .filter(|(at, _)| *at >= resumed_at)
        .count();
    let mut verdict = format!(
        "the old leader logged {} write(s) after it resumed ({caught} sent before the pause were refused on the wire)",
        logged_late.len()
    );
    let mut late = logged_late.len();
    if let Some(path) = audit_log() {
        let old = audited_writes(&path, &format!("paved/{}", a.identity));
        let new = audited_writes(&path, &format!("paved/{}", b.identity));
        let last_renewal = old
            .iter()
            .filter(|w| w.resource == "leases" && w.name == lease && w.code < 300)
            .filter(|w| w.received <= stopped_at)
            .map(|w| w.received)
            .max()
            .expect("the audit log shows the old leader's renewals");
        let takeover = new
            .iter()
            .filter(|w| w.resource == "leases" && w.name == lease && w.code < 300)
            .map(|w| w.received)
            .min()
            .expect("the audit log shows the new leader taking the Lease");
        let could_lead = (last_renewal
            + k8s_openapi::jiff::SignedDuration::from_secs(LEASE_DURATION as i64))
        .min(takeover);
        let stale: Vec<&AuditedWrite> = old
            .iter()
            .filter(|w| w.resource != "leases" && w.received >= could_lead)
            .collect();
        let new_writes = new
            .iter()
            .filter(|w| w.resource != "leases" && w.received >= takeover)
            .count();
        assert!(
            new_writes > 0,
            "the new leader wrote nothing after taking over: the test proves nothing"
        );
        // A request the fence checked twice before the pause can still arrive
        // after it (stopped in the instant between the second check and the
        // socket write). Only a write the API server accepted changes anything;
        // one it refused (a status write whose resourceVersion precondition
        // went stale: 409) is shown in the figure, not counted.
        let accepted = stale.iter().filter(|w| w.code < 300).count();
        verdict = format!(
            "{verdict}; the API server received {} write(s) from the old leader after {could_lead} ({accepted} accepted; another replica could lead from then; the new one took over at {takeover} and wrote {new_writes} times): {:?}",
            stale.len(),
            stale
                .iter()
                .take(10)
                .map(|w| format!(
                    "{} {} {} at {} ({})",
                    w.verb, w.resource, w.name, w.received, w.code
                ))
                .collect::<Vec<_>>()
        );
        late += accepted;
    }
    println!("FIGURE split brain: {verdict}");
    assert_eq!(late, 0, "{verdict}\n{}", a.log_tail());

    // The old leader kept its process and /healthz, and stands by.
    assert!(a.alive(), "the paused leader exited:\n{}", a.log_tail());
    assert_eq!(a.get("/healthz").map(|(c, _)| c), Some(200));
    assert!(!a.is_leader(), "the old leader still says it leads");
    // It competes again: when the new leader goes, it leads and converges a change.
    b.signal("TERM");
    let back = wait_holder(&lease, &a, Duration::from_secs(LEASE_DURATION * 3)).await;
    change(&env, &names(1), "5").await;
    wait_converged(&env, Duration::from_secs(60)).await;
    println!(
        "FIGURE split brain: the old leader took the Lease back {:.1}s after the new one stopped, and converged a change",
        back.as_secs_f64()
    );
}

// ----------------------------------------------------------------- control-plane outages

fn cluster_script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("cluster")
        .join(name)
}

/// Runs `restart.sh` in a thread; the handle gives the instant the component answered again.
fn restart_in_background(
    component: &'static str,
    down_seconds: u64,
) -> std::thread::JoinHandle<Instant> {
    std::thread::spawn(move || {
        let output = Command::new(cluster_script("restart.sh"))
            .args([component, "--down", &down_seconds.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .expect("restart.sh");
        assert!(output.status.success(), "restart.sh {component} failed");
        Instant::now()
    })
}

/// One replica (no supervisor), the API server killed and restarted while
/// changes are in flight: the watches recover each on its own, the replica
/// never exits, /readyz says not ready while they fail, the errors are
/// counted, and every change converges within seconds of the return. Run for
/// an outage shorter than the renew deadline (the controllers keep running) and
/// for one longer (they stop, and start again once the Lease is renewed).
#[tokio::test]
async fn every_change_converges_within_seconds_of_the_api_server_return() {
    if !enabled("API server restart") {
        return;
    }
    let count = 8;
    let lease = unique("faults-api");
    // Default production timings, the renew deadline stretched for the short
    // outage so that only the watches are under test there.
    let mut a = Replica::start_with(
        &lease,
        "a",
        &[
            ("--lease-duration", "40".into()),
            ("--renew-deadline", "30".into()),
            ("--retry-period", "2".into()),
        ],
    );
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-api", count).await;
    wait_converged(&env, Duration::from_secs(90)).await;
    let all = names(count);
    let (first, second) = all.split_at(count / 2);

    let errors_before = a.metric("paved_watch_errors_total");
    change(&env, first, "2").await;
    let outage = Instant::now();
    let restart = restart_in_background("kube-apiserver", 3);
    // While it is down, the replica says it is not ready and keeps /healthz.
    let mut seen_unready = false;
    while !restart.is_finished() {
        if let Some((503, _)) = a.get("/readyz") {
            seen_unready = true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let back = restart.join().expect("restart thread");
    change(&env, second, "3").await;
    // The reported fault: generations left unobserved for minutes. (Pods
    // becoming available again is kube-controller-manager's and kwok's own
    // recovery, which can take minutes here.)
    wait_observed(&env, Duration::from_secs(120)).await;
    let from_return = back.elapsed();
    println!(
        "FIGURE API server restart: unavailable {:.1}s in all, every change reconciled {:.1}s after its return",
        (back - outage).as_secs_f64(),
        from_return.as_secs_f64()
    );
    assert!(a.alive(), "the replica exited:\n{}", a.log_tail());
    assert!(seen_unready, "/readyz said ready while the watches failed");
    assert!(
        a.metric("paved_watch_errors_total") > errors_before,
        "watch errors were not counted"
    );
    assert!(
        from_return <= Duration::from_secs(20),
        "convergence took {from_return:?} after the API server's return"
    );
    wait_until(
        "/readyz to say ready again",
        Duration::from_secs(20),
        || {
            let code = a.get("/readyz").map(|(c, _)| c);
            async move { (code == Some(200)).then_some(()).ok_or(format!("{code:?}")) }
        },
    )
    .await;
}

/// An API server outage longer than the renew deadline: the leader stops its
/// controllers but keeps its process and /healthz, renews the Lease once the
/// API server is back, and converges the changes made around the outage.
#[tokio::test]
async fn a_leader_cut_off_past_its_renew_deadline_stands_by_and_leads_again() {
    if !enabled("long API server outage") {
        return;
    }
    let count = 4;
    let lease = unique("faults-long");
    let mut a = Replica::start(&lease, "a");
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-long", count).await;
    wait_converged(&env, Duration::from_secs(90)).await;

    change(&env, &names(count), "2").await;
    let down = (LEASE_DURATION + 6).max(12);
    let restart = restart_in_background("kube-apiserver", down);
    let mut healthy_throughout = true;
    let mut stood_by = false;
    while !restart.is_finished() {
        healthy_throughout &= matches!(a.get("/healthz"), Some((200, _)));
        stood_by |= a
            .get("/metrics")
            .is_some_and(|(_, m)| m.lines().any(|l| l == "paved_leader 0"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let back = restart.join().expect("restart thread");
    change(&env, &names(1), "3").await;
    // After a long outage kube-controller-manager and kwok take their own time
    // to roll the pods out; what is Paved's is to have reconciled every change.
    wait_observed(&env, Duration::from_secs(120)).await;
    let from_return = back.elapsed();
    println!(
        "FIGURE long API server outage ({down}s down, renew deadline {RENEW_DEADLINE}s): every change reconciled {:.1}s after the return",
        from_return.as_secs_f64()
    );
    assert!(a.alive(), "the replica exited:\n{}", a.log_tail());
    assert!(healthy_throughout, "/healthz failed during the outage");
    assert!(
        stood_by,
        "the leader did not stop leading past its renew deadline"
    );
    assert!(a.is_leader(), "the replica did not lead again");
    assert!(
        from_return <= Duration::from_secs(30),
        "took {from_return:?}"
    );
}

/// etcd paused (SIGSTOP) for 30 s: nothing is lost and a change made before
/// the pause, and one right after, converge soon after it resumes.
#[tokio::test]
async fn a_paused_etcd_loses_nothing() {
    if !enabled("etcd pause") {
        return;
    }
    let pid_file = std::env::var("PAVED_E2E_ETCD_PID_FILE").expect("PAVED_E2E_ETCD_PID_FILE");
    let pid = std::fs::read_to_string(&pid_file).expect("etcd pid");
    let count = 4;
    let lease = unique("faults-etcd");
    let mut a = Replica::start_with(&lease, "a", &[]);
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-etcd", count).await;
    wait_converged(&env, Duration::from_secs(90)).await;

    change(&env, &names(count), "2").await;
    let kill = |signal: &str| {
        let status = Command::new("kill")
            .args([signal, pid.trim()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} etcd");
    };
    kill("-STOP");
    tokio::time::sleep(Duration::from_secs(30)).await;
    kill("-CONT");
    let resumed = Instant::now();
    change(&env, &names(1), "3").await;
    wait_converged(&env, Duration::from_secs(120)).await;
    let took = resumed.elapsed();
    println!(
        "FIGURE etcd paused 30s: every change converged {:.1}s after it resumed",
        took.as_secs_f64()
    );
    assert!(a.alive(), "the replica exited:\n{}", a.log_tail());
    assert!(took <= Duration::from_secs(60), "took {took:?}");
}

/// A cluster without the Gateway API CRDs: Paved starts and is ready (no watch
/// on the missing kind), a Service of a gateway Environment says what is
/// missing, and once the CRDs are installed Paved notices them without a
/// restart and writes the route. The HTTPRoute CRD is deleted and put back as
/// it was, so this runs alone (faults.sh).
#[tokio::test]
async fn gateway_api_crds_installed_while_paved_runs_are_noticed_without_a_restart() {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    use kube::api::{DeleteParams, PostParams};

    if !enabled("gateway api installed later") {
        return;
    }
    let crds: Api<CustomResourceDefinition> = Api::all(client().await);
    const HTTPROUTES: &str = "httproutes.gateway.networking.k8s.io";
    let original = crds
        .get(HTTPROUTES)
        .await
        .expect("faults.sh installs the Gateway API CRDs first");
    crds.delete(HTTPROUTES, &DeleteParams::default())
        .await
        .unwrap();
    wait_until(
        "the HTTPRoute CRD to be gone",
        Duration::from_secs(60),
        || async {
            match crds.get_opt(HTTPROUTES).await {
                Ok(None) => Ok(()),
                other => Err(format!("{:?}", other.map(|c| c.is_some()))),
            }
        },
    )
    .await;

    let lease = unique("faults-gwapi");
    let paved = Replica::start(&lease, "a");
    wait_until(
        "/readyz without the Gateway API",
        Duration::from_secs(30),
        || async {
            match paved.get("/readyz") {
                Some((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        },
    )
    .await;
    let env = TestEnvironment::create_with(
        "faults-gwapi",
        json!({"gateway": {"parentRefs": [{"namespace": "paved-gateway", "name": "shared"}]}}),
    )
    .await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "1"),
               "ports": [{"name": "http", "port": 8080}], "expose": {}}),
    )
    .await;
    let missing = wait_until(
        "web Stalled on GatewayApiMissing",
        Duration::from_secs(60),
        || async {
            let web = env.services().get("web").await.map_err(|e| e.to_string())?;
            match condition(&web, "Stalled") {
                Some(c) if c.reason == "GatewayApiMissing" && is_observed(&web) => Ok(c),
                _ => Err(describe_status(&web)),
            }
        },
    )
    .await;
    assert!(
        missing.message.contains("install the Gateway API CRDs"),
        "{}",
        missing.message
    );
    // Everything but the route is there.
    let deployments: Api<k8s_openapi::api::apps::v1::Deployment> = env.api();
    assert!(deployments.get_opt("web").await.unwrap().is_some());
    assert!(
        matches!(paved.get("/readyz"), Some((200, _))),
        "still ready"
    );

    let installed = Instant::now();
    let mut again = original.clone();
    again.metadata = kube::api::ObjectMeta {
        name: original.metadata.name.clone(),
        labels: original.metadata.labels.clone(),
        annotations: original.metadata.annotations.clone(),
        ..Default::default()
    };
    again.status = None;
    crds.create(&PostParams::default(), &again).await.unwrap();
    let routes: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &env.namespace,
        &kube::api::ApiResource::from_gvk_with_plural(
            &kube::api::GroupVersionKind::gvk("gateway.networking.k8s.io", "v1", "HTTPRoute"),
            "httproutes",
        ),
    );
    wait_until(
        "web's HTTPRoute, without a restart",
        Duration::from_secs(60),
        || async {
            match routes.get_opt("web").await {
                Ok(Some(_)) => Ok(()),
                other => Err(format!("{:?}", other.map(|r| r.is_some()))),
            }
        },
    )
    .await;
    let noticed = installed.elapsed();
    wait_until(
        "web no longer GatewayApiMissing",
        Duration::from_secs(30),
        || async {
            let web = env.services().get("web").await.map_err(|e| e.to_string())?;
            let ready = condition(&web, "Ready").ok_or("no Ready")?;
            (ready.reason != "GatewayApiMissing")
                .then_some(())
                .ok_or(describe_status(&web))
        },
    )
    .await;
    println!(
        "FIGURE gateway api installed later: the route was written {:.1}s after the HTTPRoute CRD was created",
        noticed.as_secs_f64()
    );
    let mut paved = paved;
    assert!(paved.alive(), "the same process, no restart");
}

// ----------------------------------------------------------------- stale status writes

/// A TCP relay between one replica and the API server whose replica-to-server
/// direction can be held: a network stall of that replica alone. Its requests
/// wait in the relay (TLS passes through untouched) and reach the API server,
/// in order, when released; what the API server sends still reaches it.
struct Relay {
    kubeconfig: PathBuf,
    held: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Relay {
    /// A relay to the cluster's API server, and a kubeconfig `<name>.kubeconfig`
    /// (in the logs directory) that goes through it.
    fn start(name: &str) -> Relay {
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::AtomicBool;

        let original =
            std::fs::read_to_string(crate::support::kubeconfig_path()).expect("kubeconfig");
        let server = original
            .lines()
            .find_map(|l| l.trim().strip_prefix("server:"))
            .expect("a server in the kubeconfig")
            .trim()
            .to_string();
        let upstream = server
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").expect("relay port");
        let port = listener.local_addr().expect("relay address").port();
        let kubeconfig = logs_dir().join(format!("{name}.kubeconfig"));
        std::fs::write(
            &kubeconfig,
            original.replace(&server, &format!("https://127.0.0.1:{port}")),
        )
        .expect("relay kubeconfig");
        let held = std::sync::Arc::new(AtomicBool::new(false));
        let held_by_relay = held.clone();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (Ok(mut from_server), Ok(mut to_client)) =
                    (server.try_clone(), client.try_clone())
                else {
                    continue;
                };
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from_server, &mut to_client);
                    let _ = to_client.shutdown(std::net::Shutdown::Write);
                });
                let held = held_by_relay.clone();
                let (mut from_client, mut to_server) = (client, server);
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 16 * 1024];
                    loop {
                        let n = match from_client.read(&mut buffer) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        while held.load(Ordering::SeqCst) {
                            std::thread::sleep(Duration::from_millis(10));
                        }
                        if to_server.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to_server.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Relay { kubeconfig, held }
    }

    fn hold(&self) {
        self.held.store(true, Ordering::SeqCst);
    }

    fn release(&self) {
        self.held.store(false, Ordering::SeqCst);
    }
}

/// The status writes of a Service this replica let through its fence.
fn status_writes(replica: &Replica, service: &str) -> usize {
    let path = format!("/services/{service}/status");
    replica
        .logged_writes()
        .iter()
        .filter(|(_, what)| what.contains(&path))
        .count()
}

/// A leader computes a status, sends it, and is paused (SIGSTOP: a VM pause)
/// while the write is still on its way (held up in the network). The fence
/// cannot stop it: the write was allowed when it left. The standby takes over
/// and writes a newer status; then the old write arrives. It carries the
/// resourceVersion it was computed from, so the API server refuses it (409),
/// and the newer status stays.
#[tokio::test]
async fn a_status_write_held_up_past_a_failover_is_refused_and_the_newer_status_stays() {
    if !enabled("stale status write") {
        return;
    }
    let audit = audit_log().expect("PAVED_E2E_AUDIT_LOG (set by e2e/faults.sh): the test judges on what the API server received");
    let lease = unique("faults-stale");
    let relay = Relay::start(&lease);
    // A renew deadline long enough for a loaded machine to reconcile, and send,
    // before the fence closes (the relay holds the renewals too).
    const HELD_LEASE: u64 = 10;
    const HELD_RENEW_DEADLINE: u64 = 8;
    let timings = [
        ("--lease-duration", HELD_LEASE.to_string()),
        ("--renew-deadline", HELD_RENEW_DEADLINE.to_string()),
        ("--retry-period", RETRY_PERIOD.to_string()),
    ];
    let a = Replica::start_through(&lease, "a", &timings, &relay);
    wait_holder(&lease, &a, Duration::from_secs(30)).await;
    let env = workload("faults-stale", 0).await;
    // An Application that does not exist: Stalled, with no child to write, so
    // a change of the Service makes a reconcile whose only write is its status.
    let name = "late";
    let spec = |application: &str, tag: &str| json!({"application": application, "image": image("svc", tag), "ports": [{"name": "http", "port": 8080}]});
    env.apply_service(name, spec("missing", "1")).await;
    let services = env.services();
    wait_services(
        &env,
        Duration::from_secs(60),
        is_observed,
        "the Service observed",
    )
    .await;
    let b = Replica::start(&lease, "b");
    wait_healthy(&b).await;

    // Hold A's requests, then change the Service: A, still leading (its fence
    // valid), computes the status of generation 2 and sends it into the stall.
    let sent_before = status_writes(&a, name);
    relay.hold();
    let held_at = Instant::now();
    merge_patch(
        &services,
        name,
        json!({"spec": {"application": "still-missing"}}),
    )
    .await;
    wait_until(
        "the leader to send the Service's status into the stall",
        Duration::from_secs(HELD_RENEW_DEADLINE - 1),
        || {
            let sent = status_writes(&a, name);
            async move {
                (sent > sent_before)
                    .then_some(())
                    .ok_or("not sent yet".to_string())
            }
        },
    )
    .await;
    // A is paused with its write in flight (so it cannot give up on it either).
    a.signal("STOP");
    // B takes the Lease A cannot renew, and converges a newer generation.
    wait_holder(&lease, &b, Duration::from_secs(HELD_LEASE * 3)).await;
    merge_patch(&services, name, json!({"spec": spec("shop", "2")})).await;
    wait_converged(&env, Duration::from_secs(60)).await;
    let generation = services
        .get(name)
        .await
        .expect("the Service")
        .metadata
        .generation;

    // The network delivers A's held write.
    let released_at = Timestamp::now();
    relay.release();
    let held_for = held_at.elapsed();
    let late = |path: &PathBuf| {
        audited_writes(path, &format!("paved/{}", a.identity))
            .into_iter()
            .filter(|w| w.resource == "services" && w.name == name && w.received >= released_at)
            .map(|w| w.code)
            .filter(|code| *code != 0)
            .collect::<Vec<_>>()
    };
    let answered = wait_until(
        "the API server to answer the held status write",
        Duration::from_secs(10),
        || {
            let codes = late(&audit);
            async move {
                (!codes.is_empty())
                    .then_some(codes)
                    .ok_or("not yet".to_string())
            }
        },
    )
    .await;
    crate::paved_support::holds_for("the newer status to stay", Duration::from_secs(3), || {
        let services = services.clone();
        async move {
            let now = services.get(name).await.map_err(|e| e.to_string())?;
            let observed = now.data["status"]["observedGeneration"].as_i64();
            if observed == generation && converged(&now) {
                Ok(())
            } else {
                Err(format!(
                    "observedGeneration {observed:?} of generation {generation:?}: {}",
                    describe_status(&now)
                ))
            }
        }
    })
    .await;
    a.signal("CONT");
    println!(
        "FIGURE stale status write: held {:.1}s across the failover; the API server answered the old leader's late status write(s) {answered:?}",
        held_for.as_secs_f64()
    );
    assert!(
        answered.iter().all(|code| *code == 409),
        "the held status write was not refused with 409 Conflict: {answered:?}"
    );
    drop(relay);
}

// ----------------------------------------------------------------- crash consistency

/// Environments and Services per Environment of the crash-consistency test.
const CRASH_ENVIRONMENTS: usize = 3;
const CRASH_SERVICES: usize = 50;

/// What the test declared for one Service: the image tags it set, in order,
/// whether it asked for an Ingress, whether it deleted the Service.
struct Declared {
    tags: Vec<&'static str>,
    exposed: bool,
    deleted: bool,
}

fn crash_spec(exposed: bool, tag: &str) -> Value {
    let mut spec = json!({"application": "shop", "image": image("svc", tag), "ports": [{"name": "http", "port": 8080}]});
    if exposed {
        spec["expose"] = json!({});
    }
    spec
}

/// One Environment of the test, and what was declared in it, by Service name.
struct CrashEnvironment {
    env: TestEnvironment,
    declared: std::collections::BTreeMap<String, Declared>,
}

impl CrashEnvironment {
    async fn create(count: usize) -> CrashEnvironment {
        let env = workload("faults-crash", 0).await;
        let declared = (0..count)
            .map(|i| {
                let declared = Declared {
                    tags: vec!["1"],
                    exposed: i % 3 == 0,
                    deleted: false,
                };
                (format!("svc-{i}"), declared)
            })
            .collect();
        let mut this = CrashEnvironment { env, declared };
        let names: Vec<String> = this.declared.keys().cloned().collect();
        this.apply(&names).await;
        this
    }

    /// Applies the declared spec of `names`, a few at a time.
    async fn apply(&mut self, names: &[String]) {
        use futures::StreamExt;
        let env = &self.env;
        let declared = &self.declared;
        futures::stream::iter(names.iter().map(|name| {
            let d = &declared[name];
            env.apply_service(name, crash_spec(d.exposed, d.tags.last().expect("a tag")))
        }))
        .buffer_unordered(8)
        .collect::<Vec<_>>()
        .await;
    }

    /// A new tag for the Services whose index `pick` selects.
    async fn retag(&mut self, tag: &'static str, pick: fn(usize) -> bool) {
        let names: Vec<String> = self
            .declared
            .iter_mut()
            .filter(|(name, d)| !d.deleted && pick(index(name)))
            .map(|(name, d)| {
                d.tags.push(tag);
                name.clone()
            })
            .collect();
        self.apply(&names).await;
    }

    async fn delete(&mut self, pick: fn(usize) -> bool) {
        let api = self.env.services();
        for (name, d) in self.declared.iter_mut() {
            if !d.deleted && pick(index(name)) {
                d.deleted = true;
                api.delete(name, &Default::default())
                    .await
                    .unwrap_or_else(|e| panic!("deleting {name}: {e}"));
            }
        }
    }

    async fn add(&mut self, from: usize, count: usize) {
        let names: Vec<String> = (from..from + count).map(|i| format!("svc-{i}")).collect();
        for (i, name) in (from..).zip(&names) {
            self.declared.insert(
                name.clone(),
                Declared {
                    tags: vec!["1"],
                    exposed: i % 3 == 0,
                    deleted: false,
                },
            );
        }
        self.apply(&names).await;
    }
}

fn index(name: &str) -> usize {
    name.trim_start_matches("svc-").parse().expect("svc-<i>")
}

/// Waits until the replica has sent `more` writes (`resource`: of that kind
/// only) since `from`; false if it did not within the timeout (it may have had
/// nothing left to write).
async fn wait_writes(replica: &Replica, resource: Option<&str>, more: f64) -> bool {
    let written = || {
        let body = replica.get("/metrics").map(|(_, b)| b).unwrap_or_default();
        match resource {
            Some(resource) => crate::paved_support::metric_sum(
                &body,
                "paved_writes_total",
                &[("resource", resource)],
            ),
            None => crate::paved_support::metric_sum(&body, "paved_writes_total", &[]),
        }
    };
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        if written() >= more {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// What is wrong with the Services of one Environment and their children, once
/// converged: one line per problem.
async fn crash_audit(crash: &CrashEnvironment) -> Vec<String> {
    use k8s_openapi::api::apps::v1::Deployment;
    use k8s_openapi::api::core::v1::Service as CoreService;
    use k8s_openapi::api::networking::v1::Ingress;
    use kube::ResourceExt;
    let env = &crash.env;
    let mut problems = Vec::new();
    let services = env
        .services()
        .list(&ListParams::default())
        .await
        .expect("list Services")
        .items;
    let live: std::collections::BTreeMap<String, &DynamicObject> =
        services.iter().map(|s| (s.name_any(), s)).collect();
    let uids: std::collections::BTreeMap<String, String> = services
        .iter()
        .map(|s| (s.metadata.uid.clone().unwrap_or_default(), s.name_any()))
        .collect();
    for (name, declared) in &crash.declared {
        match (live.get(name), declared.deleted) {
            (Some(_), true) => problems.push(format!("{name}: deleted, still there")),
            (None, false) => problems.push(format!("{name}: missing")),
            (Some(service), false) => problems.extend(
                history_problems(service, declared)
                    .into_iter()
                    .map(|p| format!("{name}: {p}")),
            ),
            (None, true) => {}
        }
    }
    // Children, by controller owner and by label; `expected` says which
    // Services should have one.
    fn children<K>(
        problems: &mut Vec<String>,
        kind: &str,
        objects: &[K],
        uids: &std::collections::BTreeMap<String, String>,
        expected: &dyn Fn(&str) -> bool,
        declared: &std::collections::BTreeMap<String, Declared>,
    ) where
        K: kube::Resource,
    {
        use kube::ResourceExt;
        let mut by_owner: std::collections::BTreeMap<String, usize> = Default::default();
        let mut by_label: std::collections::BTreeMap<String, usize> = Default::default();
        for object in objects {
            let labels = object.labels();
            if labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str)
                != Some("paved")
            {
                continue;
            }
            let owner = object
                .owner_references()
                .iter()
                .find(|r| r.controller == Some(true));
            match owner.and_then(|o| uids.get(&o.uid)) {
                Some(service) => *by_owner.entry(service.clone()).or_default() += 1,
                None => problems.push(format!(
                    "orphan {kind} {} (controller {:?})",
                    object.name_any(),
                    owner.map(|o| format!("{} {} {}", o.kind, o.name, o.uid))
                )),
            }
            if let Some(service) = labels.get("paved.dev/service") {
                *by_label.entry(service.clone()).or_default() += 1;
            }
        }
        for (name, d) in declared {
            let want = usize::from(!d.deleted && expected(name));
            let owned = by_owner.get(name).copied().unwrap_or_default();
            let labelled = by_label.get(name).copied().unwrap_or_default();
            if (owned, labelled) != (want, want) {
                problems.push(format!(
                    "{name}: {owned} {kind}(s) by owner and {labelled} by label, expected {want}"
                ));
            }
        }
    }
    let list = ListParams::default();
    let deployments = env
        .api::<Deployment>()
        .list(&list)
        .await
        .expect("Deployments")
        .items;
    let core = env
        .api::<CoreService>()
        .list(&list)
        .await
        .expect("Services")
        .items;
    let ingresses = env
        .api::<Ingress>()
        .list(&list)
        .await
        .expect("Ingresses")
        .items;
    let declared = &crash.declared;
    children(
        &mut problems,
        "Deployment",
        &deployments,
        &uids,
        &|_| true,
        declared,
    );
    children(
        &mut problems,
        "core Service",
        &core,
        &uids,
        &|_| true,
        declared,
    );
    let exposed = |name: &str| declared.get(name).is_some_and(|d| d.exposed);
    children(
        &mut problems,
        "Ingress",
        &ingresses,
        &uids,
        &exposed,
        declared,
    );
    // No spurious rollout: a Deployment has at most one revision per declared tag.
    for deployment in &deployments {
        let name = deployment.name_any();
        let revision: usize = deployment
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .and_then(|r| r.parse().ok())
            .unwrap_or_default();
        if let Some(d) = declared.get(&name).filter(|d| revision > d.tags.len()) {
            problems.push(format!(
                "{name}: Deployment revision {revision}, more than the {} image(s) declared",
                d.tags.len()
            ));
        }
    }
    problems
}

/// `status.history` of a converged Service: consecutive revisions from 1 (no
/// duplicate, none skipped), each a change of image, in the order declared,
/// the newest the declared image.
fn history_problems(service: &DynamicObject, declared: &Declared) -> Vec<String> {
    let mut problems = Vec::new();
    if !converged(service) {
        problems.push(format!("not converged: {}", describe_status(service)));
    }
    let status = &service.data["status"];
    let revision = status["revision"].as_i64().unwrap_or_default();
    let history: Vec<(i64, String)> = status["history"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            (
                r["revision"].as_i64().unwrap_or_default(),
                r["image"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let images: Vec<String> = declared.tags.iter().map(|t| image("svc", t)).collect();
    let shown = || format!("revision {revision}, history {history:?}");
    if history.first().map(|r| r.0) != Some(revision) {
        problems.push(format!(
            "the newest history entry is not the revision: {}",
            shown()
        ));
    }
    if history.first().map(|r| &r.1) != images.last() {
        problems.push(format!(
            "the newest revision is not the declared image: {}",
            shown()
        ));
    }
    if history
        .windows(2)
        .any(|w| w[0].0 != w[1].0 + 1 || w[0].1 == w[1].1)
    {
        problems.push(format!("duplicate or skipped revisions: {}", shown()));
    }
    if history.len() < 10 && history.last().map(|r| r.0) != Some(1) {
        problems.push(format!("history does not start at revision 1: {}", shown()));
    }
    // Oldest first, the recorded images follow the declared order.
    let positions: Vec<Option<usize>> = history
        .iter()
        .rev()
        .map(|(_, image)| images.iter().position(|i| i == image))
        .collect();
    if positions.iter().any(Option::is_none) || positions.windows(2).any(|w| w[0] >= w[1]) {
        problems.push(format!(
            "history is not a subsequence of the declared images {images:?}: {}",
            shown()
        ));
    }
    problems
}

/// Crash consistency: the controller is SIGKILLed again and again (five times,
/// each at a point of its writing: creating children, rolling out changes,
/// writing statuses) while 150 Services in three Environments are created,
/// changed, deleted and added, and restarted each time (a container restart:
/// the same identity). In the end every Service is Ready at its generation,
/// has exactly the children it declares (by owner and by label), a history of
/// consecutive revisions in the declared order, no Deployment rolled more than
/// it was changed, and nothing is left of a deleted Service.
#[tokio::test]
async fn a_controller_killed_again_and_again_while_services_converge_leaves_exactly_what_they_declare()
 {
    if !enabled("crash consistency") {
        return;
    }
    let started = Instant::now();
    let lease = unique("faults-crash");
    let mut run = 0;
    let mut replica = Replica::restart(&lease, "r", run);
    wait_holder(&lease, &replica, Duration::from_secs(30)).await;
    let mut environments = Vec::new();
    for _ in 0..CRASH_ENVIRONMENTS {
        environments.push(CrashEnvironment::create(CRASH_SERVICES).await);
    }
    let mut kills = Vec::new();
    // Kill `replica` once it has written `writes` more (of `resource`), and
    // start it again.
    async fn kill_and_restart(
        replica: &mut Replica,
        lease: &str,
        run: &mut usize,
        resource: Option<&str>,
        writes: f64,
        kills: &mut Vec<String>,
    ) {
        let reached = wait_writes(replica, resource, writes).await;
        let written = replica.metric("paved_writes_total");
        replica.signal("KILL");
        let _ = replica.child.wait();
        kills.push(format!(
            "run {run}: killed after {written} writes{}",
            if reached {
                ""
            } else {
                " (threshold not reached)"
            }
        ));
        *run += 1;
        *replica = Replica::restart(lease, "r", *run);
    }
    // 1, 2: while creating the children of 150 Services.
    kill_and_restart(&mut replica, &lease, &mut run, None, 80.0, &mut kills).await;
    kill_and_restart(&mut replica, &lease, &mut run, None, 150.0, &mut kills).await;
    // 3: changes in flight: a new image for half, a tenth deleted, a few added.
    for crash in &mut environments {
        crash.retag("2", |i| i % 2 == 0).await;
        crash.delete(|i| i % 10 == 9).await;
        crash.add(CRASH_SERVICES, 5).await;
    }
    kill_and_restart(&mut replica, &lease, &mut run, None, 60.0, &mut kills).await;
    // 4: another image for a quarter, some of them before Paved saw the last.
    for crash in &mut environments {
        crash.retag("3", |i| i % 4 == 0).await;
    }
    kill_and_restart(&mut replica, &lease, &mut run, None, 40.0, &mut kills).await;
    // 5: while writing statuses.
    kill_and_restart(
        &mut replica,
        &lease,
        &mut run,
        Some("ServiceStatus"),
        20.0,
        &mut kills,
    )
    .await;
    let restarted = Instant::now();
    for crash in &environments {
        wait_converged(&crash.env, Duration::from_secs(240)).await;
    }
    let recovered = restarted.elapsed();
    // Garbage collection of deleted Services' children is the cluster's own;
    // the audit waits for it, but a duplicate or a wrong history never goes away.
    let mut problems = Vec::new();
    let audited = wait_until_clean(&environments, &mut problems).await;
    let services: usize = environments
        .iter()
        .map(|c| c.declared.values().filter(|d| !d.deleted).count())
        .sum();
    println!(
        "FIGURE crash consistency: {} SIGKILLs ({}), {services} Services converged {:.1}s after the last restart; audit clean after {:.1}s more; {:.0}s in all",
        kills.len(),
        kills.join("; "),
        recovered.as_secs_f64(),
        audited.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\n{}",
        problems.len(),
        problems
            .iter()
            .take(30)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n"),
        replica.log_tail()
    );
    assert!(
        replica.alive(),
        "the last replica exited:\n{}",
        replica.log_tail()
    );
}

/// Audits every Environment until clean (at most 60 s: garbage collection);
/// leaves the last problems found in `problems`.
async fn wait_until_clean(
    environments: &[CrashEnvironment],
    problems: &mut Vec<String>,
) -> Duration {
    let start = Instant::now();
    loop {
        problems.clear();
        for crash in environments {
            problems.extend(
                crash_audit(crash)
                    .await
                    .into_iter()
                    .map(|p| format!("{}: {p}", crash.env.namespace)),
            );
        }
        if problems.is_empty() || start.elapsed() > Duration::from_secs(60) {
            return start.elapsed();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
