//! Shared helpers of the e2e tests: a client for the local cluster, unique
//! names, and bounded waits that fail with what they last saw.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// How long a wait may take before the test fails. Generous: CI machines are
/// small and a cold apiserver is slow; a passing test returns as soon as the
/// condition holds.
pub const WAIT: Duration = Duration::from_secs(90);

pub fn kubeconfig_path() -> PathBuf {
    if let Some(path) = std::env::var_os("KUBECONFIG") {
        return PathBuf::from(path);
    }
    let cache = std::env::var_os("PAVED_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/paved"));
    cache.join("cluster/kubeconfig")
}

async fn config() -> kube::Config {
    let path = kubeconfig_path();
    let kubeconfig = Kubeconfig::read_from(&path).unwrap_or_else(|e| {
        panic!(
            "no local cluster: cannot read {} ({e}); start it with `make cluster-up`",
            path.display()
        )
    });
    kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig of the local cluster is valid")
}

/// A cluster-admin client.
pub async fn client() -> Client {
    Client::try_from(config().await).expect("client for the local cluster")
}

/// A client that impersonates `user` in `groups`: what that person could do.
pub async fn client_as(user: &str, groups: &[&str]) -> Client {
    let mut config = config().await;
    config.auth_info.impersonate = Some(user.to_string());
    config.auth_info.impersonate_groups =
        (!groups.is_empty()).then(|| groups.iter().map(|g| g.to_string()).collect());
    Client::try_from(config).expect("impersonating client")
}

/// A name no other test (or earlier run) uses: `<prefix>-<pid>-<n>`.
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id() % 100_000;
    format!("{prefix}-{pid}-{n}")
}

/// Polls `probe` until it returns `Ok(value)` or `timeout` passes; the panic
/// message says what was awaited and the last reason it was not yet true.
pub async fn wait_until<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut last = String::from("never checked");
    while start.elapsed() < timeout {
        match probe().await {
            Ok(value) => return value,
            Err(reason) => last = reason,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("timed out after {timeout:?} waiting for {what}; last seen: {last}");
}

/// Whether an API error is a 404.
pub fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.code == 404)
}
