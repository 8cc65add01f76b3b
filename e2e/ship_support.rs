//! Helpers of the shipping tests (`ship_*`): they run the real tools a platform
//! team runs over Paved's objects — Lua for Argo CD's health checks, jq for
//! Port's mappings, yq to read the shipped YAML — so what is proven is the
//! shipped file, not a copy of it.

use std::path::{Path, PathBuf};
use std::process::Command;

use kube::api::DynamicObject;
use serde_json::Value;

/// The repository's root (this package lives in `e2e/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("e2e/ has a parent")
        .to_path_buf()
}

/// Runs `program` with `args`, returns its stdout; panics with its stderr when
/// it is missing or fails, naming the Debian package that provides it.
pub fn run_tool(program: &str, args: &[&str], package: &str) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {program} ({e}): install the Debian package {package} (.ci/install-deps)")
    });
    if !output.status.success() {
        panic!(
            "{program} {args:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A YAML file of the repository as JSON (through yq, which wraps jq).
pub fn yaml_file_as_json(relative: &str) -> Value {
    let path = repo_root().join(relative);
    let text = run_tool("yq", &["-c", ".", path.to_str().unwrap()], "yq");
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("yq output of {relative} is not JSON: {e}"))
}

/// A fresh directory for the files a test hands to a tool.
pub fn scratch_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("paved-e2e-{}-{n}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// The object as `kubectl get -o json` shows it (what Argo CD and Port's exporter read).
pub fn object_json(object: &DynamicObject) -> Value {
    serde_json::to_value(object).expect("object serializes")
}
