//! The catalog page (`/catalog` on the controller's HTTP port) in a real
//! browser: headless Chromium (Debian's `chromium`, installed by
//! `.ci/install-deps`) loads each page from the controller under test, runs
//! its script, and prints the DOM; the tests check what a person looks for and
//! that what a user wrote never runs. Screenshots land in the e2e output
//! directory ($PAVED_E2E_OUTPUT, printed by e2e/run.sh) for a person to look at.
//!
//! The token gate (`--page-require-token`) is proven on a second `paved run`
//! that stands by behind a Lease someone else holds: it answers the gate, then
//! "standing by", and never reconciles.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::env_support::wait_status;
use crate::paved_support::{
    TestEnvironment, condition, environments, image, wait_condition, wait_ready,
};
use crate::ship_support::scratch_dir;
use crate::support::{WAIT, client, unique, wait_until};

fn controller_base() -> String {
    std::env::var("PAVED_E2E_METRICS").unwrap_or_else(|_| "http://127.0.0.1:18080".to_string())
}

/// Where screenshots go: $PAVED_E2E_OUTPUT (e2e/run.sh sets it), else a temp dir.
fn output_dir() -> PathBuf {
    let dir = std::env::var_os("PAVED_E2E_OUTPUT")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("paved-e2e-output"))
        .join("page");
    std::fs::create_dir_all(&dir).expect("e2e output dir");
    dir
}

fn chromium(args: &[&str]) -> String {
    let profile = scratch_dir("chromium-profile");
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let output = command.output().unwrap_or_else(|e| {
        panic!("chromium does not start ({e}): install Debian's chromium (.ci/install-deps does)")
    });
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The DOM after the page loaded and its script ran, as the browser serializes it.
fn dump_dom(path: &str) -> String {
    chromium(&["--dump-dom", &format!("{}{path}", controller_base())])
}

/// A screenshot of `path` in the e2e output directory.
fn screenshot(path: &str, file: &str) -> PathBuf {
    let target = output_dir().join(file);
    chromium(&[
        "--hide-scrollbars",
        "--window-size=1280,900",
        &format!("--screenshot={}", target.display()),
        &format!("{}{path}", controller_base()),
    ]);
    let size = std::fs::metadata(&target).map(|m| m.len()).unwrap_or(0);
    assert!(size > 1000, "no screenshot at {}", target.display());
    eprintln!("screenshot: {}", target.display());
    target
}

/// The DOM of `path` once `ready` holds for it (the page reads the controller's
/// caches, which follow the API server by a watch event).
async fn dom_when(path: &str, what: &str, ready: impl Fn(&str) -> bool) -> String {
    wait_until(what, WAIT, || async {
        let dom = dump_dom(path);
        if ready(&dom) { Ok(dom) } else { Err(dom) }
    })
    .await
}

#[tokio::test]
async fn the_overview_in_a_browser_shows_the_environments_column_and_each_services_health_version_and_url()
 {
    let env = TestEnvironment::create_with("page-overview", json!({"type": "staging"})).await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": image("web", "2.3.1"), "ports": [{"name": "http", "port": 8080}], "expose": {}}),
    )
    .await;
    wait_ready(&env.services(), "web").await;

    let service_link = format!("/catalog/services/{}/web", env.namespace);
    let dom = dom_when("/catalog", "the overview to show web Ready", |dom| {
        dom.contains(&service_link)
            && dom
                .split(&service_link)
                .nth(1)
                .is_some_and(|after| after.starts_with("\"><span class=\"health ok\">Ready"))
    })
    .await;
    let column = format!("data-environment=\"{}\"", env.name);
    assert!(dom.contains(&column), "a column for the Environment");
    assert!(dom.contains(&env.domain), "the column shows the domain");
    assert!(dom.contains(">2.3.1<"), "the version is the image tag");
    assert!(
        dom.contains(&format!("href=\"http://web.{}\"", env.domain)),
        "the Service's URL is a link"
    );
    assert!(
        dom.contains(&format!("href=\"/catalog/environments/{}\"", env.name)),
        "the column links to the Environment's page"
    );
    assert!(dom.contains("<title>Catalog · Paved</title>"));
    screenshot("/catalog", "overview.png");

    let env_page = dump_dom(&format!("/catalog/environments/{}", env.name));
    assert!(env_page.contains(&service_link), "{env_page}");
    screenshot(
        &format!("/catalog/environments/{}", env.name),
        "environment.png",
    );
    let service_page = dump_dom(&service_link);
    assert!(
        service_page.contains("<svg class=\"timeline\""),
        "the revision timeline is drawn"
    );
    assert!(
        service_page.contains(">Deployment<"),
        "its children are listed"
    );
    assert!(
        service_page.contains("<code>health-check</code>"),
        "what to change: web declares no health check"
    );
    assert!(
        service_page.contains("Cost (estimate per month)"),
        "the cost from the prices e2e/run.sh sets"
    );
    screenshot(&service_link, "service.png");
}

#[tokio::test]
async fn a_stalled_services_page_shows_the_message_that_says_what_to_change() {
    let env = TestEnvironment::create("page-stalled").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}],
               "expose": {"host": "api.elsewhere.example.org"}}),
    )
    .await;
    let stalled = wait_condition(
        &env.services(),
        "api",
        "Stalled",
        "True",
        Some("HostOutsideDomain"),
    )
    .await;
    let message = condition(&stalled, "Stalled").unwrap().message;

    let path = format!("/catalog/services/{}/api", env.namespace);
    let dom = dom_when(&path, "the Service page to show Stalled", |dom| {
        dom.contains("health bad\">Stalled")
    })
    .await;
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    assert!(
        dom.contains(&escaped),
        "the Stalled message {message:?} in {dom}"
    );
    assert!(dom.contains(">HostOutsideDomain<"));
    screenshot(&path, "service-stalled.png");
}

#[tokio::test]
async fn a_previews_page_shows_its_base_and_what_its_overrides_change() {
    let base = TestEnvironment::create_with("page-base", json!({"type": "staging"})).await;
    base.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    base.apply_service(
        "api",
        json!({"application": "shop", "image": image("api", "1"), "ports": [{"name": "http", "port": 8080}]}),
    )
    .await;
    wait_ready(&base.services(), "api").await;
    let preview = TestEnvironment::create_with(
        "page-preview",
        json!({"type": "preview", "lifecycle": {"ttl": "2h"}, "cloneFrom": {
            "environment": base.name,
            "overrides": [{"service": "api", "image": image("api", "pr-42"), "env": [{"name": "FEATURE", "value": "on"}]}],
        }}),
    )
    .await;
    wait_status(
        &environments(&preview.client),
        &preview.name,
        "base copied",
        |o| o.data["status"]["base"]["services"] == json!(["api"]),
    )
    .await;

    let path = format!("/catalog/environments/{}", preview.name);
    let dom = dom_when(&path, "the preview's page to show its copies", |dom| {
        dom.contains("Copied from the base: 1 Applications, 1 Services")
    })
    .await;
    assert!(
        dom.contains(&format!("href=\"/catalog/environments/{}\"", base.name)),
        "links to its base"
    );
    assert!(dom.contains(&image("api", "pr-42")), "the overridden image");
    assert!(dom.contains("FEATURE=on"), "the overridden env");
    assert!(dom.contains("deletes itself at"), "its ttl");
    screenshot(&path, "environment-preview.png");

    let overview = dump_dom("/catalog");
    assert!(
        overview.contains(&format!("data-environment=\"{}\"", preview.name))
            && overview.contains("expires "),
        "the preview's column says it expires"
    );
}

/// Would set the title and add an element if it ran.
const PAYLOAD: &str =
    "document.title='pwned';document.body.appendChild(document.createElement('pwned-marker'))";

#[tokio::test]
async fn a_hostile_description_and_link_stay_text_and_never_run_in_the_browser() {
    let env = TestEnvironment::create("page-hostile").await;
    // The CRD admits any http(s) URL without whitespace: one that tries to
    // close the href attribute and open an element.
    let hostile_url = "https://example.test/\"><img/src=x/onerror=document.title='pwned'>";
    env.apply_application(
        "shop",
        json!({"owner": "team-shop",
               "description": format!("<img src=x onerror=\"{PAYLOAD}\"><script>{PAYLOAD}</script>"),
               "links": [{"title": format!("<script>{PAYLOAD}</script>"), "url": hostile_url}]}),
    )
    .await;
    wait_condition(&env.applications(), "shop", "Ready", "True", None).await;

    let path = format!("/catalog/applications/{}/shop", env.namespace);
    let dom = dom_when(&path, "the Application page", |dom| {
        dom.contains("class=\"description\"")
    })
    .await;
    assert!(
        dom.contains(&format!(
            "<title>Application {}/shop · Paved</title>",
            env.namespace
        )),
        "the title was not changed: {dom}"
    );
    assert!(!dom.contains("<pwned-marker"), "the payload ran: {dom}");
    assert!(!dom.contains("<img"), "an element was injected: {dom}");
    assert_eq!(
        dom.matches("<script").count(),
        1,
        "only the page's own script: {dom}"
    );
    assert!(
        dom.contains("&lt;img src=x onerror="),
        "the description is shown as text"
    );
    assert!(
        dom.contains("href=\"https://example.test/&quot;&gt;&lt;img/src=x/onerror=document.title='pwned'&gt;\""),
        "the link stays one escaped href: {dom}"
    );
    screenshot(&path, "application-hostile.png");
}

/// A free port on loopback for a second controller.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn http_status(address: &str, path: &str, token: Option<&str>) -> u16 {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("gated controller reachable");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {address}\r\n{auth}\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {response}"))
}

fn create_token(namespace: &str, service_account: &str) -> String {
    let kubectl = std::env::var("PAVED_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let output = Command::new(kubectl)
        .args([
            "create",
            "token",
            service_account,
            "-n",
            namespace,
            "--duration",
            "10m",
        ])
        .output()
        .expect("kubectl runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn with_require_token_the_page_answers_only_a_token_allowed_to_list_the_kinds_shown() {
    let client = client().await;
    let env = TestEnvironment::create("page-token").await;
    let name = unique("page-reader");
    // Two ServiceAccounts: one may list the three kinds, one may not.
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), &env.namespace);
    for account in ["reader", "stranger"] {
        accounts
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": account}})).unwrap(),
            )
            .await
            .unwrap();
    }
    let roles = Api::<ClusterRole>::all(client.clone());
    let bindings = Api::<ClusterRoleBinding>::all(client.clone());
    roles
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "rules": [{"apiGroups": ["paved.dev"], "resources": ["environments", "applications", "services"], "verbs": ["list"]}],
        })).unwrap())
        .await
        .unwrap();
    bindings
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": name},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": env.namespace}],
        })).unwrap())
        .await
        .unwrap();
    // A Lease someone else holds for an hour: the gated replica stands by.
    let leases = Api::<Lease>::namespaced(client.clone(), "default");
    let now = k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime(
        k8s_openapi::jiff::Timestamp::now(),
    );
    let lease = Lease {
        metadata: kube::api::ObjectMeta {
            name: Some(name.clone()),
            ..Default::default()
        },
        spec: Some(k8s_openapi::api::coordination::v1::LeaseSpec {
            holder_identity: Some("someone-else".into()),
            lease_duration_seconds: Some(3600),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            ..Default::default()
        }),
    };
    leases.create(&PostParams::default(), &lease).await.unwrap();

    let address = format!("127.0.0.1:{}", free_port());
    let binary = std::env::var("PAVED_BIN").expect("PAVED_BIN (e2e/run.sh sets it)");
    let log = std::fs::File::create(output_dir().join("paved-gated.log")).unwrap();
    let _gated = Killed(
        Command::new(binary)
            .args(["run", "--listen", &address, "--page-require-token", "true"])
            .args([
                "--lease-name",
                &name,
                "--lease-namespace",
                "default",
                "--lease-duration",
                "3600",
            ])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("paved starts"),
    );
    wait_until(
        "the gated replica to listen",
        Duration::from_secs(30),
        || async {
            std::net::TcpStream::connect(&address)
                .map(|_| ())
                .map_err(|e| e.to_string())
        },
    )
    .await;

    let reader = create_token(&env.namespace, "reader");
    let stranger = create_token(&env.namespace, "stranger");
    assert_eq!(http_status(&address, "/catalog", None), 401, "no token");
    assert_eq!(
        http_status(&address, "/catalog", Some("not-a-token")),
        403,
        "a token the API server rejects"
    );
    assert_eq!(
        http_status(&address, "/catalog", Some(&stranger)),
        403,
        "a token without list"
    );
    // Past the gate: the replica stands by (503), it does not lead.
    wait_until(
        "the reader to pass the gate",
        Duration::from_secs(30),
        || async {
            match http_status(&address, "/catalog", Some(&reader)) {
                503 => Ok(()),
                other => Err(format!("HTTP {other}")),
            }
        },
    )
    .await;
    assert_eq!(
        http_status(
            &address,
            &format!("/catalog/environments/{}", env.name),
            Some(&reader)
        ),
        503
    );
    assert_eq!(
        http_status(&address, "/catalog/assets/page.css", None),
        200,
        "static assets are public"
    );
    assert_eq!(
        http_status(&address, "/metrics", None),
        200,
        "metrics stay ungated"
    );

    drop(_gated);
    let _ = bindings.delete(&name, &DeleteParams::default()).await;
    let _ = roles.delete(&name, &DeleteParams::default()).await;
    let _ = leases.delete(&name, &DeleteParams::default()).await;
}
