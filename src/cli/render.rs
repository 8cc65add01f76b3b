//! `paved render -f FILE|DIR`: the objects Paved would create for some manifests,
//! without a cluster. Same resolve/validate/build code as the controller; the
//! only differences are that every Environment is assumed to own its namespace,
//! Secret/ConfigMap data is unknown (the config hash covers the references only)
//! and owner references are left out when the manifests carry no UIDs.

use std::sync::Arc;

use kube::ResourceExt;
use serde::Deserialize;

use crate::api::{Application, Environment, Service};
use crate::children::{
    EnvironmentChildren, ReferencedConfig, ServiceChildren, render_environment_children,
    render_namespace, render_service_children,
};
use crate::reconcile::converge::body_with_digest;
use crate::resolve::{Snapshot, resolve_service};

/// Result of rendering: YAML documents, plus one message per object that could not be rendered.
#[derive(Debug, Default)]
pub struct Rendered {
    pub yaml: String,
    pub problems: Vec<String>,
}

/// The text of `-f` arguments, as kubectl reads them: a file, `-` for stdin, or a
/// directory, whose `.yaml`, `.yml` and `.json` files are read in name order
/// (not recursively). Documents of different files are kept apart.
pub fn read_manifests(paths: &[std::path::PathBuf]) -> Result<String, String> {
    let mut input = String::new();
    for path in paths {
        let files = if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut files: Vec<_> = entries
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|file| {
                    file.is_file()
                        && file
                            .extension()
                            .is_some_and(|ext| ext == "yaml" || ext == "yml" || ext == "json")
                })
                .collect();
            files.sort();
            if files.is_empty() {
                return Err(format!("{}: no .yaml, .yml or .json files", path.display()));
            }
            files
        } else {
            vec![path.clone()]
        };
        for file in files {
            let text = if file.as_os_str() == "-" {
                std::io::read_to_string(std::io::stdin())
            } else {
                std::fs::read_to_string(&file)
            };
            input.push_str(&text.map_err(|e| format!("{}: {e}", file.display()))?);
            input.push_str("\n---\n");
        }
    }
    Ok(input)
}

/// Parse a multi-document YAML stream of Environments, Applications and Services.
/// Other kinds are ignored; a document without a namespace gets `default_namespace`.
pub fn parse(input: &str) -> Result<Snapshot, String> {
    let mut environments = Vec::new();
    let mut applications = Vec::new();
    let mut services = Vec::new();
    for document in serde_yaml::Deserializer::from_str(input) {
        let value = serde_yaml::Value::deserialize(document).map_err(|e| e.to_string())?;
        if value.is_null() {
            continue;
        }
        let kind = value
            .get("kind")
            .and_then(|k| k.as_str())
            .unwrap_or_default()
            .to_string();
        let api_version = value
            .get("apiVersion")
            .and_then(|k| k.as_str())
            .unwrap_or_default();
        if !api_version.starts_with("paved.dev/") {
            continue;
        }
        let err = |e: serde_yaml::Error| format!("{kind}: {e}");
        match kind.as_str() {
            "Environment" => environments.push(Arc::new(
                serde_yaml::from_value::<Environment>(value).map_err(err)?,
            )),
            "Application" => applications.push(Arc::new(
                serde_yaml::from_value::<Application>(value).map_err(err)?,
            )),
            "Service" => services.push(Arc::new(
                serde_yaml::from_value::<Service>(value).map_err(err)?,
            )),
            _ => {}
        }
    }
    Ok(Snapshot::assuming_owned_namespaces(
        environments,
        applications,
        services,
    ))
}

/// Render every object Paved would create for the snapshot.
pub fn render(snapshot: &Snapshot) -> Rendered {
    let mut rendered = Rendered::default();
    let mut push = |object: serde_json::Value| {
        rendered.yaml.push_str("---\n");
        rendered
            .yaml
            .push_str(&serde_yaml::to_string(&object).expect("objects serialize"));
    };
    let ingress_namespace = crate::children::guardrails::parse_label_selector(
        crate::children::guardrails::DEFAULT_INGRESS_NAMESPACE_SELECTOR,
    )
    .unwrap_or_default();
    for environment in &snapshot.environments {
        push(body_with_digest(&render_namespace(environment)).expect("serializable"));
        // Access and guardrails (previews' copies need the base's live objects: not rendered).
        let EnvironmentChildren {
            role_bindings,
            resource_quota,
            limit_range,
            network_policy,
        } = render_environment_children(environment, &ingress_namespace);
        for binding in role_bindings.iter().filter_map(|b| b.object.as_ref()) {
            push(body_with_digest(binding).expect("serializable"));
        }
        if let Some(quota) = &resource_quota.object {
            push(body_with_digest(quota).expect("serializable"));
        }
        if let Some(range) = &limit_range.object {
            push(body_with_digest(range).expect("serializable"));
        }
        if let Some(policy) = &network_policy.object {
            push(body_with_digest(policy).expect("serializable"));
        }
    }
    let mut problems = Vec::new();
    for service in &snapshot.services {
        match resolve_service(snapshot, service) {
            Ok(resolved) => {
                let ServiceChildren {
                    deployment,
                    core_service,
                    ingress,
                    http_route,
                    autoscaler,
                    disruption_budget,
                    config_hash: _,
                } = render_service_children(&resolved, &ReferencedConfig::new());
                push(body_with_digest(&deployment).expect("serializable"));
                if let Some(core) = &core_service {
                    push(body_with_digest(core).expect("serializable"));
                }
                if let Some(ingress) = &ingress {
                    push(body_with_digest(ingress).expect("serializable"));
                }
                if let Some(route) = &http_route {
                    push(body_with_digest(route).expect("serializable"));
                }
                if let Some(hpa) = &autoscaler {
                    push(body_with_digest(hpa).expect("serializable"));
                }
                if let Some(budget) = &disruption_budget {
                    push(body_with_digest(budget).expect("serializable"));
                }
            }
            Err(error) => problems.push(format!(
                "Service {}/{}: {} ({})",
                service.namespace().unwrap_or_default(),
                service.name_any(),
                error,
                error.reason()
            )),
        }
    }
    rendered.problems = problems;
    rendered
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"
apiVersion: paved.dev/v1alpha1
kind: Environment
metadata: {name: staging}
spec: {type: staging, domain: staging.example.com}
---
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: shop, namespace: staging}
spec: {owner: team-shop}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: web, namespace: staging}
spec:
  application: shop
  image: ghcr.io/acme/shop-web:1.0.0
  ports: [{name: http, port: 8080}]
  expose: {}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: stray, namespace: elsewhere}
spec: {application: shop, image: busybox}
"#;

    #[test]
    fn render_prints_namespace_deployment_service_and_ingress_and_reports_problems() {
        let snapshot = parse(SHOP).unwrap();
        let rendered = render(&snapshot);
        for kind in [
            "kind: Namespace",
            "kind: Deployment",
            "kind: Service",
            "kind: Ingress",
            "host: web.staging.example.com",
        ] {
            assert!(
                rendered.yaml.contains(kind),
                "{kind} missing:\n{}",
                rendered.yaml
            );
        }
        assert_eq!(rendered.problems.len(), 1);
        assert!(rendered.problems[0].contains("NotInEnvironment"));
        assert!(!rendered.yaml.contains("kind: PodDisruptionBudget"));
    }

    #[test]
    fn render_of_a_production_environment_shows_two_replicas_and_a_disruption_budget() {
        let production = SHOP.replace("type: staging", "type: production");
        let rendered = render(&parse(&production).unwrap());
        assert!(
            rendered.yaml.contains("kind: PodDisruptionBudget")
                && rendered.yaml.contains("maxUnavailable: 1")
                && rendered.yaml.contains("replicas: 2"),
            "{}",
            rendered.yaml
        );
    }

    #[test]
    fn a_directory_reads_its_manifests_in_name_order_and_skips_other_files() {
        let dir = std::env::temp_dir().join(format!("paved-render-dir-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("nested")).unwrap();
        std::fs::write(dir.join("b.yml"), "second: 2").unwrap();
        std::fs::write(dir.join("a.yaml"), "first: 1").unwrap();
        std::fs::write(dir.join("notes.txt"), "not: read").unwrap();
        std::fs::write(dir.join("nested/c.yaml"), "nested: 3").unwrap();
        let text = read_manifests(std::slice::from_ref(&dir)).unwrap();
        assert_eq!(text, "first: 1\n---\nsecond: 2\n---\n");
        let empty = dir.join("nested/empty");
        std::fs::create_dir_all(&empty).unwrap();
        let error = read_manifests(&[empty]).unwrap_err();
        assert!(error.ends_with("no .yaml, .yml or .json files"), "{error}");
        let missing = read_manifests(&[dir.join("missing.yaml")]).unwrap_err();
        assert!(missing.contains("missing.yaml"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_examples_render_from_their_directories_without_problems() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let text = read_manifests(&[
            root.join("00-environments.yaml"),
            root.join("production"),
            root.join("staging"),
        ])
        .unwrap();
        let rendered = render(&parse(&text).unwrap());
        assert!(rendered.problems.is_empty(), "{:?}", rendered.problems);
        assert!(rendered.yaml.contains("kind: Deployment"));
    }
}
