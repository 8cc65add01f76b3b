//! Pure builders: custom resources in, k8s-openapi objects out. No I/O, so the
//! controller and `paved render` share them and unit tests call them directly.
//!
//! | from | builder | object |
//! |---|---|---|
//! | Environment | [`render_namespace`] | Namespace |
//! | Service (+ Application, Environment, dependencies, config) | [`render_deployment`] | Deployment |
//! | Service | [`render_core_service`] | core/v1 Service (when it has ports) |
//! | Service + Environment | [`render_ingress`] | Ingress (when exposed, Environment with `ingress`) |
//! | Service + Environment | [`render_http_route`] | Gateway API HTTPRoute (when exposed, Environment with `gateway`) |
//! | Service | [`render_autoscaler`] | HorizontalPodAutoscaler (when autoscaling, not stopped) |
//! | Environment (`access`) | [`tenancy::render_role_binding`] | RoleBindings to `paved-developer` / `paved-viewer` |
//! | Environment (`guardrails`) | [`guardrails`] | ResourceQuota, LimitRange, NetworkPolicy |
//! | Environment (`cloneFrom`) + base objects | [`clone`] | Applications and Services copied into a preview |
//! | Service + Environment | [`render_disruption_budget`] | PodDisruptionBudget (production) |

mod autoscaler;
pub mod clone;
pub mod config;
mod core_service;
mod deployment;
mod environment;
pub mod guardrails;
mod ingress;
mod namespace;
pub mod pdb;
mod route;
pub mod tenancy;

pub use autoscaler::render_autoscaler;
pub use config::{
    ReferencedConfig, config_hash, config_keys, container_env, referenced_config_keys,
};
pub use core_service::render_core_service;
pub use deployment::{
    PRODUCTION_DEFAULT_REPLICAS, Probes, check_pod_security, desired_replicas, environment_stopped,
    probes, render_deployment,
};
pub use environment::{
    EnvironmentChildren, Named, environment_child_labels, environment_child_metadata,
    render_environment_children,
};
pub use ingress::{public_url, render_ingress};
pub use namespace::{is_created_by, render_namespace};
pub use pdb::render_disruption_budget;
pub use route::render_http_route;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Service as CoreService;
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use crate::api::Service;
use crate::api::gateway_api::HttpRoute;
use crate::names::{annotations, labels};
use crate::resolve::ResolvedService;

/// Every child of one Service. `None` means "must not exist".
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceChildren {
    pub deployment: Deployment,
    pub core_service: Option<CoreService>,
    /// Environments with `ingress` (the default).
    pub ingress: Option<Ingress>,
    /// Environments with `gateway`: the Gateway API route instead of an Ingress.
    pub http_route: Option<HttpRoute>,
    /// Absent while the Environment is stopped: the Deployment is held at zero.
    pub autoscaler: Option<HorizontalPodAutoscaler>,
    /// Production environments only.
    pub disruption_budget: Option<PodDisruptionBudget>,
    /// Hash of the configuration on the pod template (also recorded in status history).
    pub config_hash: String,
}

/// Build all children of a resolved Service.
pub fn render_service_children(
    resolved: &ResolvedService<'_>,
    config: &ReferencedConfig,
) -> ServiceChildren {
    let env = container_env(resolved);
    let config_hash = config_hash(resolved.service, &env, config);
    ServiceChildren {
        deployment: render_deployment(resolved, env, &config_hash),
        core_service: render_core_service(resolved),
        ingress: render_ingress(resolved),
        http_route: render_http_route(resolved),
        autoscaler: if environment_stopped(resolved.environment) {
            None
        } else {
            render_autoscaler(resolved)
        },
        disruption_budget: render_disruption_budget(resolved),
        config_hash,
    }
}

/// Labels on every child of a Service, per DESIGN.md "Children conventions".
///
/// The Service's own labels are carried over, except those Argo CD, Helm and
/// kubectl use to track ownership: copying them would make Argo CD prune the child.
pub fn child_labels(resolved: &ResolvedService<'_>) -> BTreeMap<String, String> {
    let service = resolved.service.name_any();
    let application = resolved.application.name_any();
    let mut map: BTreeMap<String, String> = resolved
        .service
        .labels()
        .iter()
        .filter(|(key, _)| is_propagated(key))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    map.extend([
        (labels::NAME.to_string(), service.clone()),
        (labels::PART_OF.to_string(), application.clone()),
        (
            labels::MANAGED_BY.to_string(),
            labels::MANAGED_BY_PAVED.to_string(),
        ),
        (
            labels::ENVIRONMENT.to_string(),
            resolved.environment.name_any(),
        ),
        (labels::APPLICATION.to_string(), application.clone()),
        (labels::SERVICE.to_string(), service),
        (labels::BACKSTAGE_KUBERNETES_ID.to_string(), application),
    ]);
    map
}

/// Whether a parent's label may be copied to a child.
pub fn is_propagated(key: &str) -> bool {
    !labels::NEVER_PROPAGATED.iter().any(|never| {
        if never.ends_with('/') {
            key.starts_with(never)
        } else {
            key == *never
        }
    })
}

/// The pod selector: stable for the life of the Service (Deployment selectors are immutable).
pub fn selector_labels(service: &Service) -> BTreeMap<String, String> {
    BTreeMap::from([(labels::SERVICE.to_string(), service.name_any())])
}

/// Annotations on every child of a Service.
pub fn child_annotations(service: &Service) -> BTreeMap<String, String> {
    BTreeMap::from([(annotations::CORTEX_TAG.to_string(), service.name_any())])
}

/// Metadata of a child: named after the Service, in its namespace, controlled by it.
pub fn child_metadata(resolved: &ResolvedService<'_>) -> ObjectMeta {
    ObjectMeta {
        name: Some(resolved.service.name_any()),
        namespace: Some(resolved.namespace.clone()),
        labels: Some(child_labels(resolved)),
        annotations: Some(child_annotations(resolved.service)),
        owner_references: controller_reference(resolved.service).map(|r| vec![r]),
        ..ObjectMeta::default()
    }
}

/// `controller: true` owner reference, so garbage collection and the Argo CD tree work.
/// Absent only when the owner has no UID yet (`paved render` of a file).
pub fn controller_reference<K: Resource<DynamicType = ()>>(owner: &K) -> Option<OwnerReference> {
    let uid = owner.meta().uid.clone()?;
    Some(OwnerReference {
        api_version: K::api_version(&()).into_owned(),
        kind: K::kind(&()).into_owned(),
        name: owner.name_any(),
        uid,
        controller: Some(true),
        block_owner_deletion: Some(true),
    })
}

/// The builders' contract as data: every `cases/<name>.in.yaml` (manifests, as a
/// user writes them) renders, through the code `paved render` and the controller
/// share, to exactly `cases/<name>.out.yaml` (the children, then one `# problem:`
/// line per object that cannot be rendered). `PAVED_BLESS=1` rewrites the `.out.yaml`
/// files from what the builders produce now: review the diff before committing it.
#[cfg(test)]
mod cases {
    use std::path::Path;

    #[test]
    fn every_manifest_in_cases_renders_exactly_its_expected_children() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/children/cases");
        let mut inputs: Vec<_> = std::fs::read_dir(&dir)
            .expect("src/children/cases")
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.to_string_lossy().ends_with(".in.yaml"))
            .collect();
        inputs.sort();
        assert!(inputs.len() >= 4, "cases found: {inputs:?}");
        let bless = std::env::var_os("PAVED_BLESS").is_some();
        for input in inputs {
            let manifests = std::fs::read_to_string(&input).unwrap();
            let snapshot = crate::cli::render::parse(&manifests)
                .unwrap_or_else(|e| panic!("{}: {e}", input.display()));
            let rendered = crate::cli::render::render(&snapshot);
            let mut children = rendered.yaml;
            for problem in &rendered.problems {
                children.push_str(&format!("# problem: {problem}\n"));
            }
            let expected = input.to_string_lossy().replace(".in.yaml", ".out.yaml");
            if bless {
                std::fs::write(&expected, &children).unwrap();
                continue;
            }
            let want = std::fs::read_to_string(&expected)
                .unwrap_or_else(|e| panic!("{expected}: {e} (PAVED_BLESS=1 writes it)"));
            assert!(
                want == children,
                "{} renders otherwise than {expected}:\n{children}",
                input.display()
            );
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::resolve::resolve_service;
    use crate::resolve::tests::shop;

    #[test]
    fn children_carry_the_catalog_labels_and_never_argo_or_helm_labels() {
        let mut snapshot = shop();
        let mut web = snapshot.service("staging", "web").unwrap().clone();
        web.metadata.labels = Some(BTreeMap::from([
            ("team".to_string(), "checkout".to_string()),
            (
                "app.kubernetes.io/instance".to_string(),
                "shop-staging".to_string(),
            ),
            (
                "argocd.argoproj.io/instance".to_string(),
                "shop".to_string(),
            ),
            ("helm.sh/chart".to_string(), "shop-1.0".to_string()),
        ]));
        snapshot.services.retain(|s| s.name_any() != "web");
        snapshot.services.push(std::sync::Arc::new(web.clone()));
        let resolved = resolve_service(&snapshot, &web).unwrap();
        let labels = child_labels(&resolved);
        assert_eq!(labels["app.kubernetes.io/name"], "web");
        assert_eq!(labels["app.kubernetes.io/part-of"], "shop");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "paved");
        assert_eq!(labels["paved.dev/environment"], "staging");
        assert_eq!(labels["paved.dev/application"], "shop");
        assert_eq!(labels["paved.dev/service"], "web");
        assert_eq!(labels["backstage.io/kubernetes-id"], "shop");
        assert_eq!(labels["team"], "checkout");
        assert!(!labels.contains_key("app.kubernetes.io/instance"));
        assert!(
            !labels
                .keys()
                .any(|k| k.starts_with("argocd.argoproj.io/") || k.starts_with("helm.sh/"))
        );
    }

    #[test]
    fn children_are_controlled_by_their_service() {
        let snapshot = shop();
        let web = snapshot.service("staging", "web").unwrap();
        let meta = child_metadata(&resolve_service(&snapshot, web).unwrap());
        let owner = &meta.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "Service");
        assert_eq!(owner.api_version, "paved.dev/v1alpha1");
        assert_eq!(owner.controller, Some(true));
        assert_eq!(meta.annotations.unwrap()["cortex.io/tag"], "web");
    }
}
