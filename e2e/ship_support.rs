//! Helpers of the shipping tests (`ship_*`): they run the real tools a platform
//! team runs over Paved's objects — Argo CD's Lua engine for its health checks
//! and the kstatus library (Go programs in `e2e/tools/`), jq for Port's
//! mappings, yq to read the shipped YAML — so what is proven is the shipped
//! file, not a copy of it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

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

/// A Go tool of `e2e/tools/` (`argocd-health`, `kstatus`). `e2e/run.sh` builds
/// them and exports their directory as PAVED_E2E_TOOLS; without it (a bare
/// `cargo test`) the same `e2e/tools/build.sh` runs here, once.
pub fn go_tool(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| match std::env::var_os("PAVED_E2E_TOOLS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let script = repo_root().join("e2e/tools/build.sh");
            let dir = run_tool(script.to_str().unwrap(), &[], "golang (Go 1.21 or newer)");
            PathBuf::from(dir.trim())
        }
    })
    .join(name)
}

/// Runs `program` with `args` and `input` on stdin; returns each stdout line as JSON.
pub fn run_json_lines(program: &Path, args: &[&str], input: &[u8]) -> Vec<Value> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}): e2e/tools/build.sh builds it",
                program.display()
            )
        });
    child.stdin.take().unwrap().write_all(input).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{} {args:?} failed ({}): {}",
        program.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .expect("utf-8 output")
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect()
}

/// What the kstatus library says of each object: (status, message).
pub fn kstatus(objects: &[Value]) -> Vec<(String, String)> {
    let input = serde_json::to_vec(objects).unwrap();
    run_json_lines(&go_tool("kstatus"), &[], &input)
        .into_iter()
        .map(|r| {
            assert!(
                r["error"].is_null(),
                "kstatus could not compute a status: {r}"
            );
            (
                r["status"].as_str().unwrap_or_default().to_string(),
                r["message"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}
