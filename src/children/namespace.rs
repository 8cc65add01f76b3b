//! Environment → Namespace, labelled with the PodSecurity level it enforces.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::controller_reference;
use crate::api::Environment;
use crate::names::{annotations, labels};

/// The Namespace an Environment owns, labelled `paved.dev/environment=<name>` and
/// annotated with the Environment's UID, the mark Paved checks before it
/// touches or deletes a namespace. A `production` Environment, or one with
/// `guardrails.podSecurity`, also labels it `pod-security.kubernetes.io/enforce`
/// (and `warn`, so `kubectl apply` of a refused pod says why) with that level.
pub fn render_namespace(environment: &Environment) -> Namespace {
    let mut labels_map = BTreeMap::from([
        (labels::ENVIRONMENT.to_string(), environment.name_any()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_PAVED.to_string(),
        ),
    ]);
    if let Some(level) = environment.enforced_pod_security() {
        for key in [labels::POD_SECURITY_ENFORCE, labels::POD_SECURITY_WARN] {
            labels_map.insert(key.to_string(), level.as_str().to_string());
        }
    }
    let mut annotations_map = BTreeMap::new();
    if let Some(uid) = &environment.metadata.uid {
        annotations_map.insert(annotations::CREATED_BY_ENVIRONMENT.to_string(), uid.clone());
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(environment.namespace_name()),
            labels: Some(labels_map),
            annotations: Some(annotations_map),
            owner_references: controller_reference(environment).map(|r| vec![r]),
            ..ObjectMeta::default()
        },
        spec: None,
        status: None,
    }
}

/// Whether `namespace` was created by this Environment (same UID mark).
pub fn is_created_by(namespace: &Namespace, environment: &Environment) -> bool {
    let mark = namespace
        .annotations()
        .get(annotations::CREATED_BY_ENVIRONMENT);
    mark.is_some() && mark == environment.metadata.uid.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::environment;

    #[test]
    fn an_environment_namespace_is_labelled_and_marked_with_the_environment_uid() {
        let env = environment("staging", "staging.example.com");
        let namespace = render_namespace(&env);
        assert_eq!(namespace.metadata.name.as_deref(), Some("staging"));
        assert_eq!(namespace.labels()["paved.dev/environment"], "staging");
        assert!(is_created_by(&namespace, &env));
        let owner = &namespace.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.controller),
            ("Environment", Some(true))
        );
    }

    #[test]
    fn production_and_podsecurity_guardrails_label_the_namespace_and_others_do_not() {
        use crate::api::environment::{EnvironmentType, Guardrails};
        use crate::api::service::PodSecurityLevel;
        let enforced = |env: &Environment| {
            let namespace = render_namespace(env);
            let labels = namespace.labels();
            (
                labels.get("pod-security.kubernetes.io/enforce").cloned(),
                labels.get("pod-security.kubernetes.io/warn").cloned(),
            )
        };
        let mut env = environment("shop", "shop.example.com");
        assert_eq!(enforced(&env), (None, None));
        env.spec.guardrails = Some(Guardrails {
            pod_security: Some(PodSecurityLevel::Baseline),
            ..Guardrails::default()
        });
        let baseline = Some("baseline".to_string());
        assert_eq!(enforced(&env), (baseline.clone(), baseline));
        env.spec.guardrails.as_mut().unwrap().pod_security = Some(PodSecurityLevel::Restricted);
        let restricted = Some("restricted".to_string());
        assert_eq!(enforced(&env), (restricted.clone(), restricted.clone()));
        env.spec.guardrails = None;
        env.spec.type_ = EnvironmentType::Production;
        assert_eq!(enforced(&env), (restricted.clone(), restricted));
    }

    #[test]
    fn a_namespace_without_the_mark_is_not_ours() {
        let env = environment("staging", "staging.example.com");
        let foreign = Namespace {
            metadata: ObjectMeta {
                name: Some("staging".into()),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        assert!(!is_created_by(&foreign, &env));
    }

    #[test]
    fn spec_namespace_overrides_the_environment_name() {
        let mut env = environment("staging", "staging.example.com");
        env.spec.namespace = Some("shop-staging".into());
        assert_eq!(
            render_namespace(&env).metadata.name.as_deref(),
            Some("shop-staging")
        );
    }
}
