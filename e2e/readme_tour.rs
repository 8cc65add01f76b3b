//! The README's commands, run as a reader copies them: every line of its `sh`
//! blocks that starts with `kubectl` or `paved`, in the README's order, by
//! bash from the repository's root, against the example shop `make dev`
//! applies. A command that still errors after the wait a reader would give it
//! fails the test, with its output. The test reads README.md itself, so a
//! command added to or changed in the README is tested as written.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::day2_cli::paved_bin;
use crate::support::kubeconfig_path;

/// How long a command may keep failing before the test gives up on it: the
/// controller needs a moment after an apply, as it does for a reader.
const PATIENCE: Duration = Duration::from_secs(90);

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Each `kubectl` and `paved` line of the ```sh blocks, in order.
pub fn readme_commands(readme: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_sh = false;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        if let Some(fence) = trimmed.strip_prefix("```") {
            in_sh = !in_sh && fence.trim() == "sh";
            continue;
        }
        if in_sh && (trimmed.starts_with("kubectl ") || trimmed.starts_with("paved ")) {
            commands.push(trimmed.to_string());
        }
    }
    commands
}

/// A directory holding `kubectl` (the one e2e/run.sh resolved) and `paved`
/// (this checkout's build), put first on PATH for the commands.
fn tools_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("paved-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubectl = std::env::var_os("PAVED_E2E_KUBECTL")
        .map(PathBuf::from)
        .or_else(|| which("kubectl"))
        .expect("a kubectl: e2e/run.sh exports PAVED_E2E_KUBECTL");
    for (name, target) in [("kubectl", kubectl), ("paved", paved_bin())] {
        let link = dir.join(name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&target, &link)
            .unwrap_or_else(|e| panic!("linking {}: {e}", target.display()));
    }
    dir
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn bash(tools: &Path, command: &str) -> Output {
    let path = std::env::join_paths(std::iter::once(tools.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    Command::new("bash")
        .args(["-o", "pipefail", "-c", command])
        .current_dir(root())
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig_path())
        .output()
        .expect("bash")
}

/// Runs `command` until it exits 0 or [`PATIENCE`] passes; the last failure.
async fn run_patiently(tools: &Path, command: &str) -> Result<Output, Output> {
    let start = Instant::now();
    loop {
        let (tools, line) = (tools.to_path_buf(), command.to_string());
        let output = tokio::task::spawn_blocking(move || bash(&tools, &line))
            .await
            .unwrap();
        if output.status.success() {
            return Ok(output);
        }
        if start.elapsed() > PATIENCE {
            return Err(output);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Deletes the preview the README creates, even when the test fails.
struct DeletePreview(PathBuf);

impl Drop for DeletePreview {
    fn drop(&mut self) {
        if std::env::var_os("PAVED_E2E_KEEP_OBJECTS").is_none() {
            bash(
                &self.0,
                "kubectl delete penv pr-123 --ignore-not-found --wait=false",
            );
        }
    }
}

#[test]
fn the_readme_parser_finds_the_commands_of_sh_blocks_only() {
    let readme = "```sh\nkubectl get penv   # c\nmake dev\n  paved stop x\n```\n```yaml\nkubectl no\n```\n`kubectl inline`\n```sh\npaved crd\n```\n";
    assert_eq!(
        readme_commands(readme),
        ["kubectl get penv   # c", "paved stop x", "paved crd"]
    );
}

#[tokio::test]
async fn every_kubectl_and_paved_command_of_the_readme_runs_against_the_example_shop() {
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    let commands = readme_commands(&readme);
    // A parser that finds nothing would pass: the README has a tour's worth.
    assert!(
        commands.len() >= 20,
        "only {} commands found in README.md: {commands:?}",
        commands.len()
    );
    for tool in ["kubectl ", "paved "] {
        assert!(
            commands.iter().any(|c| c.starts_with(tool)),
            "no {tool}command found"
        );
    }
    let tools = tools_dir();
    let _preview = DeletePreview(tools.clone());

    // The README rolls staging's api back to revision 1: on a cluster kept from
    // an earlier run its history (10 revisions) no longer has one, so it starts anew.
    let fresh_api = "kubectl -n staging delete psvc api --ignore-not-found --wait=true";
    if let Err(out) = run_patiently(&tools, fresh_api).await {
        panic!("{fresh_api}: {}", String::from_utf8_lossy(&out.stderr));
    }
    // What `make dev` applies (e2e/dev.sh): namespaced objects apply once their
    // Environment's namespace exists.
    let shop = "kubectl apply --server-side --force-conflicts -R -f examples/00-environments.yaml -f examples/staging -f examples/production";
    if let Err(out) = run_patiently(&tools, shop).await {
        panic!("{shop}: {}", String::from_utf8_lossy(&out.stderr));
    }

    for command in &commands {
        match run_patiently(&tools, command).await {
            Ok(out) => eprintln!(
                "$ {command}\n{}",
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .take(8)
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Err(out) => panic!(
                "the README's `{command}` fails for {}s:\nstdout: {}\nstderr: {}",
                PATIENCE.as_secs(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    }
}
