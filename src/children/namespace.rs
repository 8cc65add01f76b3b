//! Environment → Namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::controller_reference;
use crate::api::Environment;
use crate::names::{annotations, labels};

/// The Namespace an Environment owns, labelled `paved.dev/environment=<name>` and
/// annotated with the Environment's UID, the mark Paved checks before it
/// touches or deletes a namespace.
pub fn render_namespace(environment: &Environment) -> Namespace {
    let mut annotations_map = BTreeMap::new();
    if let Some(uid) = &environment.metadata.uid {
        annotations_map.insert(annotations::CREATED_BY_ENVIRONMENT.to_string(), uid.clone());
    }
    Namespace {
        metadata: ObjectMeta {
            name: Some(environment.namespace_name()),
            labels: Some(BTreeMap::from([
                (labels::ENVIRONMENT.to_string(), environment.name_any()),
                (
                    labels::MANAGED_BY.to_string(),
                    labels::MANAGED_BY_PAVED.to_string(),
                ),
            ])),
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
