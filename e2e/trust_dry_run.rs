//! Arbitrary valid specs render objects the API server accepts. A seeded sample
//! of Environments, Applications and Services, each first admitted by the CRD
//! schema (a server-side dry-run of the Paved objects themselves, so the sample
//! is valid input), is rendered by `paved render`; every rendered object, and
//! the pod each Deployment would create, is then sent to the API server as a
//! server-side dry-run. Pods of Services that do not opt out go to a namespace
//! enforcing PodSecurity `restricted`. The seed is fixed: a failure names the
//! sample, and the same run reproduces it.

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::pinned_kind;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::day2_cli::paved_bin;
use crate::paved_support::{Cleanup, applications, environments, services};
use crate::support::{client, unique};

/// Samples per run; `PAVED_DRY_RUN_SAMPLES` sets more for a longer hunt.
fn samples() -> u64 {
    std::env::var("PAVED_DRY_RUN_SAMPLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

/// xorshift64*: a few lines instead of a dependency, and the same sequence on
/// every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// In `low..=high`.
    fn within(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[(self.next() % options.len() as u64) as usize]
    }
    /// A DNS label of `low..=high` characters.
    fn label_between(&mut self, low: u64, high: u64) -> String {
        let len = self.within(low, high);
        self.label(len)
    }
    /// A DNS label of `len` characters: starts with a letter, ends with a letter
    /// or digit, and has no `--` (so that it is also an IANA service name when
    /// short enough).
    fn label(&mut self, len: u64) -> String {
        const CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789-";
        let mut label = String::new();
        for i in 0..len {
            let set = if i == 0 {
                &CHARS[..26]
            } else if i + 1 == len || label.ends_with('-') {
                &CHARS[..36]
            } else {
                CHARS
            };
            label.push(set[(self.next() % set.len() as u64) as usize] as char);
        }
        label
    }
}

/// One sample: the manifests (Environment first) and whether its pods must
/// pass PodSecurity `restricted`.
struct Sample {
    manifests: Vec<Value>,
    restricted: bool,
}

fn sample(rng: &mut Rng, name: &str, namespace: &str) -> Sample {
    let production = rng.chance(30);
    let type_ = if production {
        "production"
    } else {
        rng.pick(&["development", "staging", "preview"])
    };
    let enforce_restricted = production || rng.chance(30);
    // Long labels on purpose: every label within 63 characters, the domain well within 253.
    let domain = format!(
        "{}.{}.example.test",
        rng.label_between(1, 63),
        rng.label_between(1, 20)
    );
    let mut spec = json!({"type": type_, "namespace": namespace, "domain": domain});
    if rng.chance(50) {
        let mut ingress =
            json!({"className": rng.pick(&["nginx", "envoy-gateway", "traefik.internal"])});
        if rng.chance(50) {
            ingress["tls"] = json!({"clusterIssuer": "letsencrypt"});
        }
        spec["ingress"] = ingress;
    }
    if rng.chance(50) {
        spec["access"] = json!([
            {"group": format!("team-{}", rng.label(8)), "role": rng.pick(&["developer", "viewer"])},
            {"user": format!("{}@example.test", rng.label(6)), "role": "viewer"}
        ]);
    }
    let mut guardrails = json!({});
    if rng.chance(60) {
        guardrails["quota"] = json!({
            "cpu": format!("{}", rng.within(1, 64)),
            "memory": format!("{}Gi", rng.within(1, 256)),
            "pods": format!("{}", rng.within(1, 500)),
        });
    }
    if rng.chance(60) {
        let request = rng.within(16, 1024);
        let mut resources = json!({"requests": {"cpu": format!("{}m", rng.within(10, 1000)), "memory": format!("{request}Mi")}});
        if rng.chance(50) {
            resources["limits"] = json!({"memory": format!("{}Mi", request + rng.within(0, 1024))});
        }
        guardrails["defaults"] = json!({"resources": resources});
    }
    if rng.chance(50) {
        guardrails["networkIsolation"] = json!(rng.chance(50));
    }
    if enforce_restricted {
        guardrails["podSecurity"] = json!("restricted");
    }
    spec["guardrails"] = guardrails;
    if !production && rng.chance(50) {
        spec["lifecycle"] =
            json!({"ttl": format!("{}h", rng.within(1, 720)), "stopped": rng.chance(20)});
    }
    let environment = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Environment",
        "metadata": {"name": name}, "spec": spec,
    });
    let application = json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Application",
        "metadata": {"name": "app", "namespace": namespace},
        "spec": {"owner": format!("team-{}", rng.label(5)), "env": [{"name": "LOG_LEVEL", "value": "info"}]},
    });
    let mut manifests = vec![environment, application];
    let opted_out = !enforce_restricted && rng.chance(40);
    let mut names: Vec<String> = Vec::new();
    for i in 0..rng.within(1, 3) {
        let service = format!("s{i}-{}", rng.label_between(1, 20));
        manifests.push(service_manifest(
            rng,
            &service,
            namespace,
            &domain,
            &names,
            opted_out && i == 0,
        ));
        names.push(service);
    }
    Sample {
        manifests,
        restricted: !opted_out,
    }
}

fn service_manifest(
    rng: &mut Rng,
    name: &str,
    namespace: &str,
    domain: &str,
    earlier: &[String],
    opt_out: bool,
) -> Value {
    let mut spec = json!({"application": "app", "image": format!("registry.example.test/{name}:{}", rng.within(1, 99))});
    let mut ports = Vec::new();
    let mut numbers = std::collections::BTreeSet::new();
    for j in 0..rng.within(0, 3) {
        let number = rng.within(1, 65535);
        if !numbers.insert(number) {
            continue;
        }
        let protocol = if j > 0 && rng.chance(30) {
            "UDP"
        } else {
            "TCP"
        };
        ports.push(json!({"name": format!("p{j}-{}", rng.label_between(1, 12)), "port": number, "protocol": protocol}));
    }
    if !ports.is_empty() {
        if rng.chance(60) {
            let port = ports[(rng.next() % ports.len() as u64) as usize]["name"].clone();
            spec["health"] = json!({"path": format!("/{}", rng.label(6)), "port": port});
        }
        if rng.chance(60) {
            spec["expose"] = if rng.chance(50) {
                json!({})
            } else {
                json!({"host": format!("{}.{domain}", rng.label_between(1, 63)), "path": "/"})
            };
        }
        spec["ports"] = json!(ports);
    }
    if rng.chance(50) {
        let min = rng.within(1, 3);
        spec["autoscaling"] =
            json!({"min": min, "max": rng.within(min, 10), "cpuUtilization": rng.within(10, 90)});
    } else {
        spec["replicas"] = json!(rng.within(0, 5));
    }
    if rng.chance(70) {
        let memory = rng.within(16, 2048);
        let mut resources = json!({"requests": {"cpu": format!("{}m", rng.within(10, 2000)), "memory": format!("{memory}Mi")}});
        if rng.chance(50) {
            resources["limits"] = json!({"memory": format!("{}Mi", memory + rng.within(0, 2048))});
        }
        spec["resources"] = resources;
    }
    let mut env = vec![json!({"name": "FEATURE_FLAG", "value": rng.label(10)})];
    if rng.chance(30) {
        env.push(json!({"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password", "optional": true}}}));
    }
    spec["env"] = json!(env);
    let depends: Vec<&String> = earlier.iter().filter(|_| rng.chance(50)).collect();
    if !depends.is_empty() {
        spec["dependsOn"] = json!(depends);
    }
    if opt_out {
        spec["security"] = json!({"level": "baseline", "runAsUser": 0, "runAsNonRoot": false});
    } else if rng.chance(40) {
        spec["security"] = json!({
            "runAsUser": rng.within(1, 65535),
            "readOnlyRootFilesystem": rng.chance(50),
            "kubernetesApi": rng.chance(30),
        });
    }
    json!({
        "apiVersion": "paved.dev/v1alpha1", "kind": "Service",
        "metadata": {"name": name, "namespace": namespace}, "spec": spec,
    })
}

fn dry_run() -> PostParams {
    PostParams {
        dry_run: true,
        field_manager: None,
    }
}

fn render(manifests: &[Value]) -> Result<Vec<Value>, String> {
    let dir = std::env::temp_dir().join(unique("paved-dry-run"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sample.yaml");
    let text: Vec<String> = manifests
        .iter()
        .map(|m| serde_yaml::to_string(m).unwrap())
        .collect();
    std::fs::write(&file, text.join("---\n")).unwrap();
    let output = std::process::Command::new(paved_bin())
        .arg("render")
        .arg("-f")
        .arg(&file)
        .output();
    let _ = std::fs::remove_dir_all(&dir);
    let output = output.map_err(|e| format!("running {}: {e}", paved_bin().display()))?;
    if !output.status.success() {
        return Err(format!(
            "paved render failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(serde_yaml::Deserializer::from_slice(&output.stdout)
        .map(|document| serde_yaml::Value::deserialize(document).unwrap())
        .filter(|v| !v.is_null())
        .map(|v| serde_json::to_value(v).unwrap())
        .collect())
}

async fn namespace(cleanup: &mut Cleanup, labels: Value) -> String {
    let name = unique("dry-run");
    cleanup.namespaces.push(name.clone());
    let object: Namespace =
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).unwrap();
    Api::<Namespace>::all(client().await)
        .create(&PostParams::default(), &object)
        .await
        .expect("test namespace");
    name
}

/// Every rendered object as a server-side dry-run in `namespace` (a rendered
/// Namespace under a fresh name), and each Deployment's pod in `pods_in`.
async fn admit(documents: &[Value], namespace: &str, pods_in: &str) -> Vec<String> {
    let client = client().await;
    let mut refused = Vec::new();
    for document in documents {
        let mut object: DynamicObject = serde_json::from_value(document.clone()).unwrap();
        let kind = document["kind"].as_str().unwrap_or_default().to_string();
        let (group, version) = match document["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .split_once('/')
        {
            Some((group, version)) => (group.to_string(), version.to_string()),
            None => (
                String::new(),
                document["apiVersion"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            ),
        };
        let id = format!(
            "{kind} {}",
            object.metadata.name.clone().unwrap_or_default()
        );
        let (resource, _) =
            match pinned_kind(&client, &GroupVersionKind::gvk(&group, &version, &kind)).await {
                Ok(found) => found,
                Err(e) => {
                    refused.push(format!("{id}: not served: {e}"));
                    continue;
                }
            };
        let result = if kind == "Namespace" {
            object.metadata.name = Some(unique("dry-run-ns"));
            Api::<DynamicObject>::all_with(client.clone(), &resource)
                .create(&dry_run(), &object)
                .await
        } else {
            object.metadata.namespace = Some(namespace.to_string());
            Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
                .create(&dry_run(), &object)
                .await
        };
        if let Err(e) = result {
            refused.push(format!("{id}: {e}"));
        }
        if kind == "Deployment" {
            let template = &document["spec"]["template"];
            let pod = json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"generateName": "dry-run-", "labels": template["metadata"]["labels"]},
                "spec": template["spec"],
            });
            let pods: Api<k8s_openapi::api::core::v1::Pod> =
                Api::namespaced(client.clone(), pods_in);
            match serde_json::from_value(pod) {
                Ok(pod) => {
                    if let Err(e) = pods.create(&dry_run(), &pod).await {
                        refused.push(format!("pod of {id} in {pods_in}: {e}"));
                    }
                }
                Err(e) => refused.push(format!("pod of {id}: not a pod: {e}")),
            }
        }
    }
    refused
}

#[tokio::test]
async fn arbitrary_valid_specs_render_objects_the_api_server_admits() {
    let mut cleanup = Cleanup::default();
    let target = namespace(&mut cleanup, json!({})).await;
    let restricted = namespace(
        &mut cleanup,
        json!({"pod-security.kubernetes.io/enforce": "restricted"}),
    )
    .await;
    let plain = namespace(&mut cleanup, json!({})).await;
    let client = client().await;
    let prefix = unique("dry");
    let mut rng = Rng(0x05ee_d0f9_a7ed);
    let mut failures = Vec::new();
    let mut objects = 0;
    for index in 0..samples() {
        let name = format!("{prefix}-{index}");
        let sample = sample(&mut rng, &name, &target);
        // The sample is valid input: the CRD schema (OpenAPI and CEL) admits each object.
        for manifest in &sample.manifests {
            let object: DynamicObject = serde_json::from_value(manifest.clone()).unwrap();
            let admitted = match manifest["kind"].as_str() {
                Some("Environment") => environments(&client).create(&dry_run(), &object).await,
                Some("Application") => {
                    applications(&client, &target)
                        .create(&dry_run(), &object)
                        .await
                }
                _ => services(&client, &target).create(&dry_run(), &object).await,
            };
            if let Err(e) = admitted {
                failures.push(format!(
                    "sample {index}: the schema refused {}: {e}\n{manifest:#}",
                    manifest["kind"]
                ));
            }
        }
        let documents = match render(&sample.manifests) {
            Ok(documents) => documents,
            Err(e) => {
                failures.push(format!("sample {index}: {e}"));
                continue;
            }
        };
        assert!(
            documents.iter().any(|d| d["kind"] == "Deployment"),
            "sample {index} rendered no Deployment"
        );
        objects += documents.len();
        let pods_in = if sample.restricted {
            &restricted
        } else {
            &plain
        };
        for refusal in admit(&documents, &target, pods_in).await {
            failures.push(format!("sample {index}: {refusal}"));
        }
    }
    println!(
        "FIGURE dry-run: {} samples, {objects} rendered objects, {} refused",
        samples(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} refusals:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
