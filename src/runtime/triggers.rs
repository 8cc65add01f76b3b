//! Triggers: which objects to reconcile when something they depend on changes.
//! Pure functions of the changed object and the stores' contents, one per watch
//! of [`super::controllers`], so each is tested on its own.

use std::sync::Arc;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;

use crate::api::{Application, Environment, Service};
use crate::children::config::{ConfigKind, config_keys};
use crate::names::reasons;

/// When something in `namespace` changes (a child of an Environment, an
/// Application, a Service): the Environment of that namespace, and the previews
/// cloned from it (they follow their base's objects).
pub fn environments_for_namespace(
    environments: &[Arc<Environment>],
    namespace: &str,
) -> Vec<ObjectRef<Environment>> {
    let owners: Vec<String> = environments
        .iter()
        .filter(|e| e.namespace_name() == namespace)
        .map(|e| e.name_any())
        .collect();
    environments
        .iter()
        .filter(|e| {
            e.namespace_name() == namespace
                || e.spec
                    .clone_from
                    .as_ref()
                    .is_some_and(|c| owners.contains(&c.environment))
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// When an Environment is created, changed or deleted: the previews cloned from it.
pub fn previews_of(environments: &[Arc<Environment>], base: &str) -> Vec<ObjectRef<Environment>> {
    environments
        .iter()
        .filter(|e| {
            e.spec
                .clone_from
                .as_ref()
                .is_some_and(|c| c.environment == base)
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// When any Environment changes or goes: the Environments stalled on a domain
/// another one holds (it may just have been released).
pub fn environments_waiting_for_a_domain(
    environments: &[Arc<Environment>],
) -> Vec<ObjectRef<Environment>> {
    environments
        .iter()
        .filter(|e| {
            e.status.as_ref().is_some_and(|s| {
                s.conditions
                    .iter()
                    .any(|c| c.reason == reasons::DOMAIN_CONFLICT)
            })
        })
        .map(|e| ObjectRef::from_obj(e.as_ref()))
        .collect()
}

/// When any Environment changes or goes: the Services that claim no host because
/// their Environment's domain is held by another.
pub fn services_waiting_for_a_domain(services: &[Arc<Service>]) -> Vec<ObjectRef<Service>> {
    services_where(services, |s| {
        s.status.as_ref().is_some_and(|status| {
            status
                .conditions
                .iter()
                .any(|c| c.reason == reasons::DOMAIN_CONFLICT)
        })
    })
}

/// When a Service changes (its status included): its Application.
pub fn application_of(service: &Service) -> Option<ObjectRef<Application>> {
    let namespace = service.namespace()?;
    Some(ObjectRef::new(&service.spec.application).within(&namespace))
}

/// When a namespace changes (it starts terminating): the Applications in it.
pub fn applications_in(
    applications: &[Arc<Application>],
    namespace: &str,
) -> Vec<ObjectRef<Application>> {
    applications
        .iter()
        .filter(|a| a.metadata.namespace.as_deref() == Some(namespace))
        .map(|a| ObjectRef::from_obj(a.as_ref()))
        .collect()
}

/// When an Environment changes (spec, stopped) or its namespace does: the
/// Services in the namespace.
pub fn services_in(services: &[Arc<Service>], namespace: &str) -> Vec<ObjectRef<Service>> {
    services_where(services, |s| {
        s.metadata.namespace.as_deref() == Some(namespace)
    })
}

/// When an Application's spec changes: its Services.
pub fn services_of_application(
    services: &[Arc<Service>],
    application: &Application,
) -> Vec<ObjectRef<Service>> {
    let (namespace, name) = (application.namespace(), application.name_any());
    services_where(services, |s| {
        s.metadata.namespace == namespace && s.spec.application == name
    })
}

/// When a Service changes: the Services that depend on it (they see its
/// readiness), and those waiting for a host or a dependency (a released host
/// goes to the next claimant; a missing dependency may have appeared).
pub fn services_related_to(
    services: &[Arc<Service>],
    changed: &Service,
) -> Vec<ObjectRef<Service>> {
    let (namespace, name) = (changed.namespace(), changed.name_any());
    services_where(services, |s| {
        (s.metadata.namespace == namespace && s.spec.depends_on.contains(&name))
            || crate::reconcile::stores::waits_on_another_service(s)
    })
}

/// When a Secret or ConfigMap (`kind`) named `name` in `namespace` changes: the
/// Services whose containers read it, through their own env or their Application's.
pub fn services_reading(
    services: &[Arc<Service>],
    applications: &[Arc<Application>],
    namespace: &str,
    kind: ConfigKind,
    name: &str,
) -> Vec<ObjectRef<Service>> {
    services_where(services, |s| {
        s.metadata.namespace.as_deref() == Some(namespace) && reads(s, applications, kind, name)
    })
}

/// Whether a Service (or its Application) reads the named Secret/ConfigMap.
fn reads(
    service: &Service,
    applications: &[Arc<Application>],
    kind: ConfigKind,
    name: &str,
) -> bool {
    let application_env = applications
        .iter()
        .find(|a| {
            a.metadata.namespace == service.metadata.namespace
                && a.metadata.name.as_ref() == Some(&service.spec.application)
        })
        .map(|a| a.spec.env.as_slice())
        .unwrap_or_default();
    config_keys(application_env.iter().chain(service.spec.env.iter()))
        .iter()
        .any(|key| key.kind == kind && key.name == name)
}

fn services_where(
    services: &[Arc<Service>],
    keep: impl Fn(&Service) -> bool,
) -> Vec<ObjectRef<Service>> {
    services
        .iter()
        .filter(|s| keep(s))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

/// When a namespaced child of an Environment changes or goes: the Environment
/// that controls it. kube-runtime's `owns` would look for the owner in the
/// child's namespace, but an Environment is cluster-scoped, so the owner's
/// reference carries no namespace.
pub fn controlling_environment<K: kube::Resource>(child: K) -> Option<ObjectRef<Environment>> {
    child
        .owner_references()
        .iter()
        .find(|owner| {
            owner.controller == Some(true)
                && owner.kind == "Environment"
                && owner.api_version.starts_with("paved.dev/")
        })
        .map(|owner| ObjectRef::new(&owner.name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::Condition;
    use crate::resolve::tests::{application, environment, service};

    fn names<K: kube::Resource>(refs: Vec<ObjectRef<K>>) -> Vec<String> {
        let mut names: Vec<String> = refs.into_iter().map(|r| r.name).collect();
        names.sort();
        names
    }

    fn preview(name: &str, base: &str) -> Environment {
        let mut preview = environment(name, "example.test");
        preview.spec.clone_from =
            Some(serde_json::from_value(serde_json::json!({"environment": base})).unwrap());
        preview
    }

    #[test]
    fn a_change_in_a_namespace_wakes_its_environment_and_the_previews_of_that_environment() {
        let environments = vec![
            Arc::new(environment("staging", "staging.example.test")),
            Arc::new(preview("pr-1", "staging")),
            Arc::new(preview("pr-2", "production")),
            Arc::new(environment("production", "example.test")),
        ];
        assert_eq!(
            names(environments_for_namespace(&environments, "staging")),
            ["pr-1", "staging"]
        );
        assert_eq!(
            names(environments_for_namespace(&environments, "pr-1")),
            ["pr-1"]
        );
        assert!(environments_for_namespace(&environments, "kube-system").is_empty());
        assert_eq!(names(previews_of(&environments, "production")), ["pr-2"]);
        assert!(previews_of(&environments, "pr-1").is_empty());
    }

    #[test]
    fn any_environment_change_wakes_what_waits_for_a_domain() {
        let conflict = |reason: &str| Condition {
            type_: "Stalled".into(),
            status: "True".into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: None,
            observed_generation: None,
        };
        let mut waiting = environment("later", "shop.example.test");
        waiting.status = Some(crate::api::EnvironmentStatus {
            conditions: vec![conflict("DomainConflict")],
            ..Default::default()
        });
        let mut other = environment("other", "other.example.test");
        other.status = Some(crate::api::EnvironmentStatus {
            conditions: vec![conflict("InvalidSchedule")],
            ..Default::default()
        });
        let environments = vec![Arc::new(waiting), Arc::new(other)];
        assert_eq!(
            names(environments_waiting_for_a_domain(&environments)),
            ["later"]
        );
        let mut web = service("later", "web", "shop");
        web.status = Some(crate::api::ServiceStatus {
            conditions: vec![conflict("DomainConflict")],
            ..Default::default()
        });
        let services = vec![Arc::new(web), Arc::new(service("later", "api", "shop"))];
        assert_eq!(names(services_waiting_for_a_domain(&services)), ["web"]);
    }

    #[test]
    fn a_service_wakes_its_application_and_a_namespace_wakes_the_applications_in_it() {
        let web = service("shop", "web", "storefront");
        let wanted = application_of(&web).unwrap();
        assert_eq!(
            (wanted.name.as_str(), wanted.namespace.as_deref()),
            ("storefront", Some("shop"))
        );
        let applications = vec![
            Arc::new(application("shop", "storefront")),
            Arc::new(application("billing", "ledger")),
        ];
        assert_eq!(
            names(applications_in(&applications, "shop")),
            ["storefront"]
        );
    }

    #[test]
    fn an_application_or_environment_wakes_only_its_own_services() {
        let services = vec![
            Arc::new(service("shop", "web", "storefront")),
            Arc::new(service("shop", "admin", "backoffice")),
            Arc::new(service("billing", "web", "storefront")),
        ];
        let storefront = application("shop", "storefront");
        assert_eq!(
            names(services_of_application(&services, &storefront)),
            ["web"]
        );
        assert_eq!(names(services_in(&services, "shop")), ["admin", "web"]);
    }

    #[test]
    fn a_service_wakes_its_dependents_and_the_services_waiting_for_a_host_or_a_dependency() {
        let mut checkout = service("shop", "checkout", "storefront");
        checkout.spec.depends_on = vec!["payments".into()];
        let mut waiting = service("other", "blog", "site");
        waiting.status = Some(crate::api::ServiceStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: reasons::HOST_CONFLICT.into(),
                message: String::new(),
                last_transition_time: None,
                observed_generation: None,
            }],
            ..Default::default()
        });
        let mut elsewhere = service("billing", "ledger", "books");
        elsewhere.spec.depends_on = vec!["payments".into()];
        let services = vec![Arc::new(checkout), Arc::new(waiting), Arc::new(elsewhere)];
        let payments = service("shop", "payments", "storefront");
        assert_eq!(
            names(services_related_to(&services, &payments)),
            ["blog", "checkout"]
        );
    }

    #[test]
    fn a_secret_or_config_map_wakes_the_services_that_read_it_through_their_own_env_or_their_applications()
     {
        let env = |value: serde_json::Value| serde_json::from_value(value).unwrap();
        let mut own = service("shop", "web", "storefront");
        own.spec.env = vec![env(serde_json::json!(
            {"name": "DB", "valueFrom": {"secretKeyRef": {"name": "db", "key": "url"}}}
        ))];
        let inherits = service("shop", "worker", "storefront");
        let other_app = service("shop", "admin", "backoffice");
        let mut storefront = application("shop", "storefront");
        storefront.spec.env = vec![env(serde_json::json!(
            {"name": "FLAGS", "valueFrom": {"configMapKeyRef": {"name": "flags", "key": "all"}}}
        ))];
        let services = vec![Arc::new(own), Arc::new(inherits), Arc::new(other_app)];
        let applications = vec![Arc::new(storefront)];
        let reading = |kind, name| {
            names(services_reading(
                &services,
                &applications,
                "shop",
                kind,
                name,
            ))
        };
        assert_eq!(reading(ConfigKind::Secret, "db"), ["web"]);
        assert_eq!(reading(ConfigKind::ConfigMap, "flags"), ["web", "worker"]);
        // A ConfigMap named like the Secret is another object.
        assert!(reading(ConfigKind::ConfigMap, "db").is_empty());
        assert!(
            services_reading(
                &services,
                &applications,
                "billing",
                ConfigKind::Secret,
                "db"
            )
            .is_empty()
        );
    }

    #[test]
    fn a_namespaced_child_wakes_its_cluster_scoped_environment_by_name_alone() {
        let owned: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "paved-owners", "namespace": "shop-prod", "ownerReferences": [
                {"apiVersion": "paved.dev/v1alpha1", "kind": "Environment", "name": "prod",
                 "uid": "u1", "controller": true}
            ]},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"}
        }))
        .unwrap();
        let woken = controlling_environment(owned.clone()).unwrap();
        assert_eq!((woken.name.as_str(), woken.namespace), ("prod", None));

        // Not controlled by an Environment (another controller, or only an owner): nothing.
        let mut other = owned.clone();
        other.metadata.owner_references.as_mut().unwrap()[0].api_version = "example.com/v1".into();
        assert!(controlling_environment(other).is_none());
        let mut not_controller = owned;
        not_controller.metadata.owner_references.as_mut().unwrap()[0].controller = None;
        assert!(controlling_environment(not_controller).is_none());
    }
}
