//! Previews: an Environment with `spec.cloneFrom` gets copies of its base
//! environment's Applications and Services, labelled `paved.dev/cloned-from`,
//! controlled by the preview Environment, with `overrides` applied.
//!
//! Exposed hosts move from the base's domain to the preview's
//! (`web.staging.example.com` → `web.pr-1.preview.example.com`), so a preview
//! never claims a host of its base.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::{controller_reference, is_propagated};
use crate::api::environment::CloneOverride;
use crate::api::{Application, Environment, Service};
use crate::names::labels;

/// Whether `object` is a copy Paved made for a preview (and may overwrite or delete).
pub fn is_clone<K: Resource>(object: &K) -> bool {
    object.labels().contains_key(labels::CLONED_FROM)
}

fn clone_metadata<K: Resource>(
    preview: &Environment,
    base: &Environment,
    source: &K,
) -> ObjectMeta {
    let mut map: BTreeMap<String, String> = source
        .labels()
        .iter()
        .filter(|(key, _)| is_propagated(key) && key.as_str() != labels::ENVIRONMENT)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    map.insert(labels::CLONED_FROM.to_string(), base.name_any());
    map.insert(
        labels::MANAGED_BY.to_string(),
        labels::MANAGED_BY_PAVED.to_string(),
    );
    ObjectMeta {
        name: Some(source.name_any()),
        namespace: Some(preview.namespace_name()),
        labels: Some(map),
        owner_references: controller_reference(preview).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// The preview's copy of a base Application.
pub fn render_cloned_application(
    preview: &Environment,
    base: &Environment,
    source: &Application,
) -> Application {
    Application {
        metadata: clone_metadata(preview, base, source),
        spec: source.spec.clone(),
        status: None,
    }
}

/// The preview's copy of a base Service, with its override (if any) applied.
pub fn render_cloned_service(
    preview: &Environment,
    base: &Environment,
    source: &Service,
    override_: Option<&CloneOverride>,
) -> Service {
    let mut spec = source.spec.clone();
    if let Some(expose) = spec.expose.as_mut() {
        expose.host = expose
            .host
            .as_deref()
            .and_then(|host| rehost(host, &base.spec.domain, &preview.spec.domain));
    }
    if let Some(change) = override_ {
        if let Some(image) = &change.image {
            spec.image = image.clone();
        }
        for variable in &change.env {
            match spec.env.iter_mut().find(|v| v.name == variable.name) {
                Some(existing) => *existing = variable.clone(),
                None => spec.env.push(variable.clone()),
            }
        }
        if let Some(replicas) = change.replicas {
            spec.replicas = Some(replicas);
            spec.autoscaling = None;
        }
    }
    Service {
        metadata: clone_metadata(preview, base, source),
        spec,
        status: None,
    }
}

/// A base host in the preview's domain: the base domain suffix is swapped for
/// the preview's. A host outside the base domain is dropped (the preview then
/// uses its default `<service>.<domain>`).
fn rehost(host: &str, base_domain: &str, preview_domain: &str) -> Option<String> {
    if host == base_domain {
        return Some(preview_domain.to_string());
    }
    host.strip_suffix(&format!(".{base_domain}"))
        .map(|prefix| format!("{prefix}.{preview_domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::EnvVar;
    use crate::api::environment::CloneFrom;
    use crate::api::service::{Autoscaling, Expose};
    use crate::resolve::tests::{application, environment, service};

    fn preview() -> Environment {
        let mut env = environment("pr-7", "pr-7.preview.example.com");
        env.spec.clone_from = Some(CloneFrom {
            environment: "staging".into(),
            overrides: vec![],
        });
        env
    }

    #[test]
    fn a_clone_lives_in_the_preview_namespace_labelled_and_owned_by_the_preview() {
        let base = environment("staging", "staging.example.com");
        let mut source = application("staging", "shop");
        source.metadata.labels = Some(BTreeMap::from([
            ("team".into(), "checkout".into()),
            ("argocd.argoproj.io/instance".into(), "shop".into()),
        ]));
        let copy = render_cloned_application(&preview(), &base, &source);
        assert_eq!(copy.metadata.namespace.as_deref(), Some("pr-7"));
        assert_eq!(copy.metadata.name.as_deref(), Some("shop"));
        assert_eq!(copy.labels()["paved.dev/cloned-from"], "staging");
        assert_eq!(copy.labels()["team"], "checkout");
        assert!(!copy.labels().contains_key("argocd.argoproj.io/instance"));
        assert!(is_clone(&copy));
        assert!(!is_clone(&source));
        let owner = &copy.metadata.owner_references.unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Environment", "pr-7")
        );
        assert_eq!(copy.spec, source.spec);
    }

    #[test]
    fn overrides_replace_image_env_and_replicas() {
        let base = environment("staging", "staging.example.com");
        let mut source = service("staging", "api", "shop");
        source.spec.autoscaling = Some(Autoscaling {
            min: 2,
            max: 5,
            cpu_utilization: None,
        });
        source.spec.env = vec![EnvVar {
            name: "LOG_LEVEL".into(),
            value: Some("info".into()),
            value_from: None,
        }];
        let change = CloneOverride {
            service: "api".into(),
            image: Some("ghcr.io/acme/api:pr-7".into()),
            env: vec![
                EnvVar {
                    name: "LOG_LEVEL".into(),
                    value: Some("debug".into()),
                    value_from: None,
                },
                EnvVar {
                    name: "FEATURE".into(),
                    value: Some("on".into()),
                    value_from: None,
                },
            ],
            replicas: Some(1),
        };
        let copy = render_cloned_service(&preview(), &base, &source, Some(&change));
        assert_eq!(copy.spec.image, "ghcr.io/acme/api:pr-7");
        assert_eq!(copy.spec.replicas, Some(1));
        assert!(copy.spec.autoscaling.is_none());
        let env: Vec<(&str, &str)> = copy
            .spec
            .env
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_deref().unwrap()))
            .collect();
        assert_eq!(env, vec![("LOG_LEVEL", "debug"), ("FEATURE", "on")]);
    }

    #[test]
    fn exposed_hosts_move_to_the_preview_domain() {
        let base = environment("staging", "staging.example.com");
        let mut source = service("staging", "web", "shop");
        source.spec.expose = Some(Expose {
            host: Some("shop.staging.example.com".into()),
            path: None,
        });
        let copy = render_cloned_service(&preview(), &base, &source, None);
        assert_eq!(
            copy.spec.expose.unwrap().host.as_deref(),
            Some("shop.pr-7.preview.example.com")
        );
        assert_eq!(
            rehost(
                "staging.example.com",
                "staging.example.com",
                "p.example.com"
            )
            .as_deref(),
            Some("p.example.com")
        );
        assert_eq!(
            rehost("other.example.org", "staging.example.com", "p.example.com"),
            None
        );
    }
}

#[cfg(test)]
mod serialization {
    use super::*;
    use crate::resolve::tests::{environment, service};

    #[test]
    fn a_clone_body_carries_no_status_so_a_live_status_never_looks_like_drift() {
        let base = environment("staging", "staging.example.com");
        let preview = environment("pr-1", "pr-1.example.com");
        let copy = render_cloned_service(&preview, &base, &service("staging", "api", "shop"), None);
        let body = serde_json::to_value(&copy).unwrap();
        assert!(body.get("status").is_none(), "{body}");
        assert_eq!(body["kind"], "Service");
        assert_eq!(body["apiVersion"], "paved.dev/v1alpha1");
    }
}
