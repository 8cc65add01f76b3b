//! Resolve and validate: the first two steps of every reconcile, as pure functions.
//!
//! A [`Snapshot`] is what Paved knows about the three kinds (from the
//! controller's reflector stores, or from files for `paved render`). From it,
//! [`resolve_service`] finds a Service's Environment, Application and
//! dependencies and checks what the CRD schema cannot: that the namespace
//! belongs to an Environment, that the Application and dependencies exist, that
//! the host is inside the domain and not already held by another Service.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt;

use crate::api::{Application, Environment, Service};
use crate::error::{Error, Result};
use crate::names::conditions;

/// The three kinds as currently known, plus which namespaces Environments own.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    pub environments: Vec<Arc<Environment>>,
    pub applications: Vec<Arc<Application>>,
    pub services: Vec<Arc<Service>>,
    /// Namespace name → name of the Environment that created it and owns it.
    pub owned_namespaces: BTreeMap<String, String>,
}

impl Snapshot {
    /// A snapshot where every Environment owns its namespace (no cluster to ask: `paved render`).
    pub fn assuming_owned_namespaces(
        environments: Vec<Arc<Environment>>,
        applications: Vec<Arc<Application>>,
        services: Vec<Arc<Service>>,
    ) -> Self {
        let owned_namespaces = environments
            .iter()
            .map(|e| (e.namespace_name(), e.name_any()))
            .collect();
        Snapshot {
            environments,
            applications,
            services,
            owned_namespaces,
        }
    }

    /// The Environment that owns `namespace`, or `NotInEnvironment`.
    pub fn environment_of(&self, namespace: &str, kind: &'static str) -> Result<&Environment> {
        let not_in_environment = || Error::NotInEnvironment {
            kind,
            namespace: namespace.to_string(),
        };
        let owner = self
            .owned_namespaces
            .get(namespace)
            .ok_or_else(not_in_environment)?;
        self.environments
            .iter()
            .map(AsRef::as_ref)
            .find(|e| e.metadata.name.as_ref() == Some(owner) && e.namespace_str() == namespace)
            .ok_or_else(not_in_environment)
    }

    pub fn application(&self, namespace: &str, name: &str) -> Option<&Application> {
        self.applications
            .iter()
            .map(AsRef::as_ref)
            .find(|a| is_named(&a.metadata, namespace, name))
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .map(AsRef::as_ref)
            .find(|s| is_named(&s.metadata, namespace, name))
    }

    pub fn services_in<'a>(&'a self, namespace: &'a str) -> impl Iterator<Item = &'a Service> + 'a {
        self.services
            .iter()
            .map(AsRef::as_ref)
            .filter(move |s| s.metadata.namespace.as_deref() == Some(namespace))
    }

    pub fn applications_in<'a>(
        &'a self,
        namespace: &'a str,
    ) -> impl Iterator<Item = &'a Application> + 'a {
        self.applications
            .iter()
            .map(AsRef::as_ref)
            .filter(move |a| a.metadata.namespace.as_deref() == Some(namespace))
    }

    /// Services of one Application, sorted by name.
    pub fn services_of<'a>(&'a self, namespace: &'a str, application: &'a str) -> Vec<&'a Service> {
        let mut services: Vec<&Service> = self
            .services_in(namespace)
            .filter(|s| s.spec.application == application)
            .collect();
        services.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        services
    }
}

/// Whether `meta` is `namespace/name`. Lookups scan whole stores on every
/// reconcile, so they compare in place rather than copy names out.
fn is_named(meta: &ObjectMeta, namespace: &str, name: &str) -> bool {
    meta.namespace.as_deref() == Some(namespace) && meta.name.as_deref() == Some(name)
}

/// Everything a Service's children are built from, checked.
#[derive(Clone, Debug)]
pub struct ResolvedService<'a> {
    pub service: &'a Service,
    pub application: &'a Application,
    pub environment: &'a Environment,
    pub namespace: String,
    /// The checked public host, when exposed.
    pub host: Option<String>,
    pub dependencies: Vec<ResolvedDependency>,
}

/// A dependency that exists, with its in-cluster URL (when it has a port) and readiness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResolvedDependency {
    pub name: String,
    pub url: Option<String>,
    pub ready: bool,
}

/// Resolve and validate a Service against the snapshot.
pub fn resolve_service<'a>(
    snapshot: &'a Snapshot,
    service: &'a Service,
) -> Result<ResolvedService<'a>> {
    let namespace = service
        .namespace()
        .ok_or_else(|| Error::InvalidObject(service.name_any()))?;
    let environment = snapshot.environment_of(&namespace, "Service")?;
    let application = snapshot
        .application(&namespace, &service.spec.application)
        .ok_or_else(|| Error::ApplicationNotFound {
            application: service.spec.application.clone(),
            namespace: namespace.clone(),
        })?;
    crate::children::check_pod_security(&service.spec, environment)?;

    let mut dependencies = Vec::new();
    let mut missing = Vec::new();
    for name in &service.spec.depends_on {
        match snapshot.service(&namespace, name) {
            Some(dependency) => dependencies.push(ResolvedDependency {
                name: name.clone(),
                url: dependency_url(dependency, &namespace),
                ready: is_ready(dependency.status.as_ref().map(|s| s.conditions.as_slice())),
            }),
            None => missing.push(name.clone()),
        }
    }
    if !missing.is_empty() {
        return Err(Error::DependencyNotFound { missing, namespace });
    }
    if let Some(cycle) = dependency_cycle(snapshot, &namespace, service) {
        return Err(Error::DependencyCycle { cycle });
    }

    let host = match exposed_host(service, environment) {
        Some(host) => {
            check_host_in_domain(&host, &environment.spec.domain)?;
            crate::domain::check_host_not_delegated(&host, environment)?;
            // An Environment that does not hold its domain claims no host.
            crate::domain::check_domain(
                snapshot.environments.iter().map(AsRef::as_ref),
                environment,
            )?;
            check_host_not_taken(snapshot, service, &host)?;
            Some(host)
        }
        None => None,
    };

    Ok(ResolvedService {
        service,
        application,
        environment,
        namespace,
        host,
        dependencies,
    })
}

/// The `dependsOn` cycle through `service`, as the names from it back to it
/// (`[a, b, a]`), if there is one. A Service that only depends on a cycle is not
/// in it. Each Service is visited once, so any graph ends.
pub fn dependency_cycle(
    snapshot: &Snapshot,
    namespace: &str,
    service: &Service,
) -> Option<Vec<String>> {
    fn walk(
        snapshot: &Snapshot,
        namespace: &str,
        start: &str,
        depends_on: &[String],
        path: &mut Vec<String>,
        seen: &mut std::collections::BTreeSet<String>,
    ) -> bool {
        for name in depends_on {
            if name == start {
                path.push(name.clone());
                return true;
            }
            if !seen.insert(name.clone()) {
                continue;
            }
            if let Some(next) = snapshot.service(namespace, name) {
                path.push(name.clone());
                if walk(
                    snapshot,
                    namespace,
                    start,
                    &next.spec.depends_on,
                    path,
                    seen,
                ) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let start = service.name_any();
    let mut path = vec![start.clone()];
    let mut seen = std::collections::BTreeSet::new();
    walk(
        snapshot,
        namespace,
        &start,
        &service.spec.depends_on,
        &mut path,
        &mut seen,
    )
    .then_some(path)
}

/// The `cloneFrom` cycle through `environment` (`[pr-1, pr-1]` for a preview
/// cloned from itself, `[a, b, a]`), if there is one. A preview cloned from a
/// member of a cycle is not in it. Follows at most one base per Environment.
pub fn clone_cycle(snapshot: &Snapshot, environment: &Environment) -> Option<Vec<String>> {
    let start = environment.name_any();
    let mut chain = vec![start.clone()];
    let mut next = environment
        .spec
        .clone_from
        .as_ref()
        .map(|c| c.environment.clone());
    while let Some(name) = next {
        if name == start {
            chain.push(name);
            return Some(chain);
        }
        if chain.contains(&name) {
            return None;
        }
        next = snapshot
            .environments
            .iter()
            .find(|e| e.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(|e| e.spec.clone_from.as_ref())
            .map(|c| c.environment.clone());
        chain.push(name);
    }
    None
}

/// The host a Service asks for: `spec.expose.host`, or `<service>.<domain>`.
pub fn exposed_host(service: &Service, environment: &Environment) -> Option<String> {
    let expose = service.spec.expose.as_ref()?;
    Some(
        expose
            .host
            .clone()
            .unwrap_or_else(|| format!("{}.{}", service.name_any(), environment.spec.domain)),
    )
}

/// A host must be the domain itself or a name under it (`x.domain`), never merely end with it,
/// and fit DNS (the schema bounds `spec.expose.host`, not `<service>.<domain>`).
pub fn check_host_in_domain(host: &str, domain: &str) -> Result<()> {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    if host.len() > 253 {
        let shown = format!("{}...", &host[..host.len().min(40)]);
        return Err(Error::HostTooLong {
            host: shown,
            length: host.len(),
        });
    }
    if host == domain || host.ends_with(&format!(".{domain}")) {
        Ok(())
    } else {
        Err(Error::HostOutsideDomain { host, domain })
    }
}

/// The first Service to claim a host keeps it: the oldest by creation time, then by namespace/name.
fn check_host_not_taken(snapshot: &Snapshot, service: &Service, host: &str) -> Result<()> {
    fn claim_order(s: &Service) -> (Option<&Time>, &str, &str) {
        (
            s.metadata.creation_timestamp.as_ref(),
            s.metadata.namespace.as_deref().unwrap_or_default(),
            s.metadata.name.as_deref().unwrap_or_default(),
        )
    }
    let mine = claim_order(service);
    // Every reconcile of an exposed Service scans all Services: cheap tests first,
    // and the host is only built for the few that could hold it.
    let holder = snapshot
        .services
        .iter()
        .map(AsRef::as_ref)
        .filter(|other| other.spec.expose.is_some() && other.metadata.deletion_timestamp.is_none())
        .filter(|other| claim_order(other) < mine)
        .filter(|other| might_claim(other, host))
        .filter(|other| {
            other
                .metadata
                .namespace
                .as_deref()
                .and_then(|ns| snapshot.environment_of(ns, "Service").ok())
                .is_some_and(|env| {
                    exposed_host(other, env).as_deref() == Some(host)
                        && check_host_in_domain(host, &env.spec.domain).is_ok()
                        && crate::domain::check_host_not_delegated(host, env).is_ok()
                        && crate::domain::check_domain(
                            snapshot.environments.iter().map(AsRef::as_ref),
                            env,
                        )
                        .is_ok()
                })
        })
        .map(claim_order)
        .min();
    match holder {
        Some((_, namespace, name)) => Err(Error::HostConflict {
            host: host.to_string(),
            holder: format!("{namespace}/{name}"),
        }),
        None => Ok(()),
    }
}

/// A quick test, without the Environment, that `service` may ask for `host`:
/// its explicit host is `host`, or `host` starts with `<its name>.`.
fn might_claim(service: &Service, host: &str) -> bool {
    match service.spec.expose.as_ref().and_then(|e| e.host.as_deref()) {
        Some(explicit) => explicit == host,
        None => service
            .metadata
            .name
            .as_deref()
            .and_then(|name| host.strip_prefix(name))
            .is_some_and(|rest| rest.starts_with('.')),
    }
}

/// `http://<service>.<namespace>.svc.cluster.local:<first port>`, when the Service has a port.
pub fn dependency_url(service: &Service, namespace: &str) -> Option<String> {
    service.spec.ports.first().map(|port| {
        format!(
            "http://{}.{namespace}.svc.cluster.local:{}",
            service.name_any(),
            port.port
        )
    })
}

/// `payments-api` → `PAYMENTS_API_URL`.
pub fn dependency_env_name(service: &str) -> String {
    format!(
        "{}_URL",
        service.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// Whether a condition list says Ready=True.
pub fn is_ready(conditions: Option<&[crate::api::Condition]>) -> bool {
    conditions
        .unwrap_or_default()
        .iter()
        .any(|c| c.type_ == conditions::READY && c.status == "True")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::api::environment::EnvironmentSpec;
    use crate::api::service::{Expose, Port};
    use crate::api::{ApplicationSpec, ServiceSpec};

    pub fn environment(name: &str, domain: &str) -> Environment {
        let mut env = Environment::new(
            name,
            EnvironmentSpec {
                domain: domain.into(),
                ..EnvironmentSpec::default()
            },
        );
        env.metadata.uid = Some(format!("uid-env-{name}"));
        env
    }

    pub fn application(namespace: &str, name: &str) -> Application {
        let mut app = Application::new(
            name,
            ApplicationSpec {
                owner: "team-shop".into(),
                description: None,
                lifecycle: Default::default(),
                links: vec![],
                env: vec![],
            },
        );
        app.metadata.namespace = Some(namespace.into());
        app
    }

    pub fn service(namespace: &str, name: &str, application: &str) -> Service {
        let mut svc = Service::new(
            name,
            ServiceSpec {
                application: application.into(),
                image: format!("ghcr.io/acme/{name}:1.0.0"),
                command: None,
                args: None,
                ports: vec![Port {
                    name: "http".into(),
                    port: 8080,
                    protocol: None,
                }],
                env: vec![],
                replicas: None,
                autoscaling: None,
                resources: None,
                health: None,
                expose: None,
                depends_on: vec![],
                restarted_at: None,
                security: None,
            },
        );
        svc.metadata.namespace = Some(namespace.into());
        svc.metadata.uid = Some(format!("uid-svc-{namespace}-{name}"));
        svc
    }

    pub fn shop() -> Snapshot {
        let mut web = service("staging", "web", "shop");
        web.spec.expose = Some(Expose::default());
        web.spec.depends_on = vec!["api".into()];
        Snapshot::assuming_owned_namespaces(
            vec![Arc::new(environment("staging", "staging.shop.example.com"))],
            vec![Arc::new(application("staging", "shop"))],
            vec![Arc::new(web), Arc::new(service("staging", "api", "shop"))],
        )
    }

    #[test]
    fn a_service_in_an_environment_resolves_its_default_host_and_dependencies() {
        let snapshot = shop();
        let web = snapshot.service("staging", "web").unwrap();
        let resolved = resolve_service(&snapshot, web).unwrap();
        assert_eq!(
            resolved.host.as_deref(),
            Some("web.staging.shop.example.com")
        );
        assert_eq!(
            resolved.dependencies,
            vec![ResolvedDependency {
                name: "api".into(),
                url: Some("http://api.staging.svc.cluster.local:8080".into()),
                ready: false
            }]
        );
    }

    #[test]
    fn a_service_outside_any_environment_namespace_is_not_in_environment() {
        let snapshot = shop();
        let stray = service("default", "web", "shop");
        let error = resolve_service(&snapshot, &stray).unwrap_err();
        assert_eq!(error.reason(), "NotInEnvironment");
    }

    #[test]
    fn a_namespace_the_environment_does_not_own_is_not_in_environment() {
        let mut snapshot = shop();
        snapshot.owned_namespaces.clear();
        let web = snapshot.service("staging", "web").unwrap();
        assert_eq!(
            resolve_service(&snapshot, web).unwrap_err().reason(),
            "NotInEnvironment"
        );
    }

    #[test]
    fn a_missing_application_is_reported_by_name() {
        let snapshot = shop();
        let orphan = service("staging", "orphan", "nope");
        let error = resolve_service(&snapshot, &orphan).unwrap_err();
        assert_eq!(error.reason(), "ApplicationNotFound");
        assert!(error.to_string().contains("nope"));
    }

    #[test]
    fn a_missing_dependency_is_reported_by_name() {
        let snapshot = shop();
        let mut svc = service("staging", "worker", "shop");
        svc.spec.depends_on = vec!["api".into(), "queue".into()];
        let error = resolve_service(&snapshot, &svc).unwrap_err();
        assert_eq!(error.reason(), "DependencyNotFound");
        assert!(error.to_string().contains("queue"));
        assert!(!error.to_string().contains("api,"));
    }

    #[test]
    fn hosts_must_be_the_domain_or_under_it() {
        assert!(check_host_in_domain("shop.example.com", "shop.example.com").is_ok());
        assert!(check_host_in_domain("web.shop.example.com", "shop.example.com").is_ok());
        assert!(check_host_in_domain("evilshop.example.com", "shop.example.com").is_err());
        assert!(check_host_in_domain("example.com", "shop.example.com").is_err());
    }

    #[test]
    fn a_default_host_longer_than_dns_allows_is_stalled_before_any_write() {
        let domain = format!("{}.test", vec!["a".repeat(60); 4].join("."));
        let host = format!("checkout.{domain}");
        let error = check_host_in_domain(&host, &domain).unwrap_err();
        assert_eq!((error.reason(), error.is_stalled()), ("HostTooLong", true));
        assert!(
            error
                .to_string()
                .contains(&format!("{} characters", host.len()))
        );
        assert!(
            !error.to_string().contains(&domain),
            "the message stays short"
        );
        assert!(check_host_in_domain(&domain, &domain).is_ok());
    }

    #[test]
    fn the_first_claimant_of_a_host_keeps_it() {
        let mut snapshot = shop();
        let mut second = service("staging", "web2", "shop");
        second.spec.expose = Some(Expose {
            host: Some("web.staging.shop.example.com".into()),
            path: None,
        });
        second.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(2_000_000_000).unwrap(),
            ));
        snapshot.services.push(Arc::new(second.clone()));
        // `web` has no creation timestamp in this snapshot, so give it an older one.
        let mut web = snapshot.service("staging", "web").unwrap().clone();
        web.metadata.creation_timestamp =
            Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::from_second(1_000_000_000).unwrap(),
            ));
        snapshot.services.retain(|s| s.name_any() != "web");
        snapshot.services.push(Arc::new(web.clone()));

        let error = resolve_service(&snapshot, &second).unwrap_err();
        assert_eq!(error.reason(), "HostConflict");
        assert!(error.to_string().contains("staging/web"));
        assert!(resolve_service(&snapshot, &web).is_ok());
    }

    #[test]
    fn a_dependency_cycle_is_reported_on_each_member_and_not_on_a_service_that_only_depends_on_it()
    {
        let mut snapshot = shop();
        let mut a = service("staging", "a", "shop");
        a.spec.depends_on = vec!["b".into()];
        let mut b = service("staging", "b", "shop");
        b.spec.depends_on = vec!["api".into(), "a".into()];
        let mut c = service("staging", "c", "shop");
        c.spec.depends_on = vec!["a".into()];
        let mut me = service("staging", "me", "shop");
        me.spec.depends_on = vec!["me".into()];
        for s in [&a, &b, &c, &me] {
            snapshot.services.push(Arc::new(s.clone()));
        }
        let error = resolve_service(&snapshot, &a).unwrap_err();
        assert_eq!(error.reason(), "DependencyCycle");
        assert!(error.to_string().contains("a -> b -> a"), "{error}");
        assert_eq!(
            dependency_cycle(&snapshot, "staging", &b),
            Some(vec!["b".into(), "a".into(), "b".into()])
        );
        assert_eq!(dependency_cycle(&snapshot, "staging", &c), None);
        assert!(resolve_service(&snapshot, &c).is_ok());
        assert_eq!(
            dependency_cycle(&snapshot, "staging", &me),
            Some(vec!["me".into(), "me".into()])
        );
        let web = snapshot.service("staging", "web").unwrap();
        assert!(resolve_service(&snapshot, web).is_ok());
    }

    #[test]
    fn a_clone_cycle_is_found_through_any_chain_and_a_preview_of_a_cycle_member_is_not_in_it() {
        use crate::api::environment::CloneFrom;
        let preview = |name: &str, base: &str| {
            let mut env = environment(name, &format!("{name}.example.com"));
            env.spec.clone_from = Some(CloneFrom {
                environment: base.into(),
                ..CloneFrom::default()
            });
            Arc::new(env)
        };
        let mut snapshot = shop();
        snapshot.environments.extend([
            preview("self", "self"),
            preview("a", "b"),
            preview("b", "a"),
            preview("c", "a"),
            preview("d", "staging"),
        ]);
        let find = |name: &str| {
            snapshot
                .environments
                .iter()
                .find(|e| e.name_any() == name)
                .unwrap()
                .clone()
        };
        assert_eq!(
            clone_cycle(&snapshot, &find("self")),
            Some(vec!["self".into(), "self".into()])
        );
        assert_eq!(
            clone_cycle(&snapshot, &find("a")),
            Some(vec!["a".into(), "b".into(), "a".into()])
        );
        assert_eq!(clone_cycle(&snapshot, &find("c")), None);
        assert_eq!(clone_cycle(&snapshot, &find("d")), None);
        assert_eq!(clone_cycle(&snapshot, &find("staging")), None);
    }

    #[test]
    fn dependency_variables_are_upper_snake_case() {
        assert_eq!(dependency_env_name("payments-api"), "PAYMENTS_API_URL");
    }
}
