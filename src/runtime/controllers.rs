//! Controller wiring: which watch events reconcile which object.
//!
//! | reconciles | triggered by |
//! |---|---|
//! | Environment | its own generation/finalizer changes; its Namespace, RoleBindings, ResourceQuota, LimitRange, NetworkPolicy; any Application or Service in its namespace, or in the namespace of its base (previews); its base's generation/deletion |
//! | Application | its own generation changes; any change of its Services (status included); its namespace |
//! | Service | its own generation changes; its children (drift); its Application and Environment (generation, stopped); Services it depends on, or whose host it wants; its namespace; referenced ConfigMaps/Secrets |
//!
//! Status-only changes of an object never trigger its own reconcile (predicate on
//! generation), so writing status cannot loop; changes of children and of
//! related objects do trigger.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service as CoreService,
};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::metrics::Metrics;
use crate::api::{Application, Environment, Service};
use crate::error::Error;
use crate::names::{CONTROLLER_NAME, labels, reasons};
use crate::reconcile::{self, Context, Stores, StoresLoaded};

/// Runtime knobs of the controllers.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Reconciles running at once, per kind.
    pub concurrency: u16,
    /// Reported on Events (`reportingInstance`).
    pub instance: Option<String>,
    /// Labels of the ingress controller's namespace: an Environment's
    /// `networkIsolation` lets traffic in from namespaces carrying them.
    pub ingress_namespace_labels: std::collections::BTreeMap<String, String>,
}

/// A reflector: a store kept current by a watch, and the stream that feeds it
/// (which must be polled, here by a controller).
fn reflect<K>(
    api: Api<K>,
    config: watcher::Config,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config)
        .default_backoff()
        .modify(drop_managed_fields)
        .reflect(writer)
        .touched_objects();
    (reader, stream)
}

/// Paved never reads managedFields; not keeping them roughly halves the memory of the stores.
fn drop_managed_fields<K: Resource>(object: &mut K) {
    object.meta_mut().managed_fields = None;
}

/// A reflector of a custom resource whose stream only lets through changes of
/// generation or finalizers (not status).
fn reflect_spec_changes<K>(
    api: Api<K>,
) -> (
    Store<K>,
    impl Stream<Item = Result<K, watcher::Error>> + Send,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(drop_managed_fields)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(spec_or_lifecycle::<K>, Default::default());
    (reader, stream)
}

/// Hash of what a user changes (generation) and of the object's lifecycle
/// (finalizers, deletion), never of its status.
fn spec_or_lifecycle<K: Resource>(object: &K) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let meta = object.meta();
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    meta.generation.hash(&mut hasher);
    meta.finalizers.hash(&mut hasher);
    meta.deletion_timestamp.is_some().hash(&mut hasher);
    Some(hasher.finish())
}

/// An Environment's generation (spec, including `lifecycle.stopped`) and
/// `status.stopped` (which a schedule moves): what its Services are built from.
/// A stop by hand thus triggers twice, on the spec and on the status write,
/// which also covers a reconcile that ran before the store saw the spec.
fn generation_or_stopped(environment: &Environment) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    environment.metadata.generation.hash(&mut hasher);
    environment
        .status
        .as_ref()
        .is_some_and(|s| s.stopped)
        .hash(&mut hasher);
    Some(hasher.finish())
}

/// Spec-only changes of a related kind (no store).
fn spec_changes<K>(api: Api<K>) -> impl Stream<Item = Result<K, watcher::Error>> + Send
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    watcher(api, watcher::Config::default())
        .default_backoff()
        .touched_objects()
        .predicate_filter(predicates::generation, Default::default())
}

fn error_policy<K>(kind: &'static str) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |object, error, ctx| {
        let _ = &object;
        ctx.metrics.failed(kind, error.reason());
        tracing::warn!(kind, %error, "reconcile failed; retrying");
        Action::requeue(Duration::from_secs(5))
    }
}

/// Run the three controllers until `shutdown` resolves (graceful: in-flight reconciles finish).
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    settings: Settings,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let managed = watcher::Config::default().labels(labels::MANAGED_SELECTOR);
    let environment_namespaces = watcher::Config::default().labels(labels::ENVIRONMENT);

    let (environments, environment_stream) =
        reflect_spec_changes(Api::<Environment>::all(client.clone()));
    let (applications, application_stream) =
        reflect_spec_changes(Api::<Application>::all(client.clone()));
    let (services, service_stream) = reflect_spec_changes(Api::<Service>::all(client.clone()));
    let (namespaces, namespace_stream) = reflect(
        Api::<Namespace>::all(client.clone()),
        environment_namespaces.clone(),
    );
    let (deployments, deployment_stream) =
        reflect(Api::<Deployment>::all(client.clone()), managed.clone());
    let (core_services, core_service_stream) =
        reflect(Api::<CoreService>::all(client.clone()), managed.clone());
    let (ingresses, ingress_stream) = reflect(Api::<Ingress>::all(client.clone()), managed.clone());
    let (autoscalers, autoscaler_stream) = reflect(
        Api::<HorizontalPodAutoscaler>::all(client.clone()),
        managed.clone(),
    );

    let (disruption_budgets, disruption_budget_stream) = reflect(
        Api::<PodDisruptionBudget>::all(client.clone()),
        managed.clone(),
    );

    let (role_bindings, role_binding_stream) =
        reflect(Api::<RoleBinding>::all(client.clone()), managed.clone());
    let (resource_quotas, resource_quota_stream) =
        reflect(Api::<ResourceQuota>::all(client.clone()), managed.clone());
    let (limit_ranges, limit_range_stream) =
        reflect(Api::<LimitRange>::all(client.clone()), managed.clone());
    let (network_policies, network_policy_stream) =
        reflect(Api::<NetworkPolicy>::all(client.clone()), managed.clone());

    let (loaded_gate, loaded) = tokio::sync::watch::channel(false);
    let stores = Stores {
        environments: environments.clone(),
        applications: applications.clone(),
        services: services.clone(),
        namespaces,
        deployments,
        core_services,
        ingresses,
        autoscalers,
        disruption_budgets,
        role_bindings,
        resource_quotas,
        limit_ranges,
        network_policies,
        loaded,
    };
    let stores_loaded = StoresLoaded {
        stores: stores.clone(),
        gate: loaded_gate,
    }
    .run();
    let reporter = Reporter {
        controller: CONTROLLER_NAME.into(),
        instance: settings.instance.clone(),
    };
    let ctx = Arc::new(Context {
        client: client.clone(),
        recorder: Recorder::new(client.clone(), reporter),
        metrics: metrics.clone(),
        stores: stores.clone(),
        ingress_namespace_labels: settings.ingress_namespace_labels.clone(),
        status_pacer: Default::default(),
        own_writes: Default::default(),
    });
    // Services fold a burst of their own events (20 ms). Applications and
    // Environments aggregate many Services, but get no debounce: kube-runtime's
    // debounce restarts on every event, so a steady stream of Service changes would
    // postpone them for as long as it lasts. Their status writes are paced instead
    // (reconcile::PROGRESS_INTERVAL), and their reconciles read only the stores.
    let service_config = ControllerConfig::default()
        .concurrency(settings.concurrency)
        .debounce(Duration::from_millis(20));
    let aggregate_config = ControllerConfig::default().concurrency(settings.concurrency);

    // --- Environment --------------------------------------------------------
    let envs_by_namespace = environments.clone();
    // The Environment of the namespace, and the previews cloned from it (they follow it).
    let environment_of_namespace = move |namespace: Option<String>| {
        let namespace = namespace.unwrap_or_default();
        let all = envs_by_namespace.state();
        let owners: Vec<String> = all
            .iter()
            .filter(|e| e.namespace_name() == namespace)
            .map(|e| e.name_any())
            .collect();
        all.iter()
            .filter(|e| {
                e.namespace_name() == namespace
                    || e.spec
                        .clone_from
                        .as_ref()
                        .is_some_and(|c| owners.contains(&c.environment))
            })
            .map(|e| ObjectRef::from_obj(e.as_ref()))
            .collect::<Vec<_>>()
    };
    let previews_of = {
        let environments = environments.clone();
        move |base: Environment| {
            let base = base.name_any();
            environments
                .state()
                .iter()
                .filter(|e| {
                    e.spec
                        .clone_from
                        .as_ref()
                        .is_some_and(|c| c.environment == base)
                })
                .map(|e| ObjectRef::from_obj(e.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let env_of_app = environment_of_namespace.clone();
    let env_of_svc = environment_of_namespace.clone();
    let environment_controller = Controller::for_stream(environment_stream, environments.clone())
        .with_config(aggregate_config.clone())
        .owns_stream(namespace_stream)
        .owns_stream(role_binding_stream)
        .owns_stream(resource_quota_stream)
        .owns_stream(limit_range_stream)
        .owns_stream(network_policy_stream)
        // A preview notices its base being created, changed or deleted.
        .watches_stream(
            watcher(
                Api::<Environment>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects()
            .predicate_filter(spec_or_lifecycle::<Environment>, Default::default()),
            previews_of,
        )
        .watches(
            Api::<Application>::all(client.clone()),
            watcher::Config::default(),
            move |a: Application| env_of_app(a.namespace()),
        )
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            move |s: Service| env_of_svc(s.namespace()),
        )
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            reconcile::environment::reconcile,
            error_policy("Environment"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Environment", result) });

    // --- Application --------------------------------------------------------
    let apps_in_namespace = applications.clone();
    let application_controller = Controller::for_stream(application_stream, applications.clone())
        .with_config(aggregate_config)
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            |s: Service| {
                s.namespace()
                    .map(|ns| ObjectRef::<Application>::new(&s.spec.application).within(&ns))
            },
        )
        .watches(
            Api::<Namespace>::all(client.clone()),
            environment_namespaces.clone(),
            move |ns: Namespace| {
                let name = ns.name_any();
                apps_in_namespace
                    .state()
                    .iter()
                    .filter(|a| a.metadata.namespace.as_deref() == Some(name.as_str()))
                    .map(|a| ObjectRef::from_obj(a.as_ref()))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            reconcile::application::reconcile,
            error_policy("Application"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Application", result) });

    // --- Service ------------------------------------------------------------
    let services_where = {
        let services = services.clone();
        move |keep: &dyn Fn(&Service) -> bool| {
            services
                .state()
                .iter()
                .filter(|s| keep(s))
                .map(|s| ObjectRef::from_obj(s.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let of_application = services_where.clone();
    let in_environment = services_where.clone();
    let in_namespace = services_where.clone();
    let related = services_where.clone();
    let reading_config = services_where.clone();
    let reading_secret = services_where.clone();
    let apps_for_config = applications.clone();
    let apps_for_secret = applications.clone();

    let service_controller = Controller::for_stream(service_stream, services.clone())
        .with_config(service_config)
        .owns_stream(deployment_stream)
        .owns_stream(core_service_stream)
        .owns_stream(ingress_stream)
        .owns_stream(autoscaler_stream)
        .owns_stream(disruption_budget_stream)
        .watches_stream(
            spec_changes(Api::<Application>::all(client.clone())),
            move |a: Application| {
                let (ns, name) = (a.namespace(), a.name_any());
                of_application(&|s| s.metadata.namespace == ns && s.spec.application == name)
            },
        )
        // Spec changes, and stop/start (status.stopped also moves on a schedule).
        .watches_stream(
            watcher(
                Api::<Environment>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects()
            .predicate_filter(generation_or_stopped, Default::default()),
            move |e: Environment| {
                let ns = Some(e.namespace_name());
                in_environment(&|s| s.metadata.namespace == ns)
            },
        )
        .watches(
            Api::<Namespace>::all(client.clone()),
            environment_namespaces,
            move |n: Namespace| {
                let ns = Some(n.name_any());
                in_namespace(&|s| s.metadata.namespace == ns)
            },
        )
        // Dependents see their dependency's readiness; a released host goes to the next claimant.
        .watches(
            Api::<Service>::all(client.clone()),
            watcher::Config::default(),
            move |changed: Service| {
                let (ns, name) = (changed.namespace(), changed.name_any());
                related(&|s| {
                    (s.metadata.namespace == ns && s.spec.depends_on.contains(&name))
                        || s.status.as_ref().is_some_and(|st| {
                            st.conditions.iter().any(|c| {
                                c.reason == reasons::HOST_CONFLICT
                                    || c.reason == reasons::DEPENDENCY_NOT_FOUND
                            })
                        })
                })
            },
        )
        .watches_stream(
            watcher(
                Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects(),
            move |cm: PartialObjectMeta<ConfigMap>| {
                let (ns, name) = (cm.namespace(), cm.name_any());
                let apps = apps_for_config.state();
                reading_config(&|s| s.metadata.namespace == ns && reads(s, &apps, &name, false))
            },
        )
        .watches_stream(
            watcher(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects(),
            move |secret: PartialObjectMeta<Secret>| {
                let (ns, name) = (secret.namespace(), secret.name_any());
                let apps = apps_for_secret.state();
                reading_secret(&|s| s.metadata.namespace == ns && reads(s, &apps, &name, true))
            },
        )
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            reconcile::service::reconcile,
            error_policy("Service"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Service", result) });

    // Keep the objects-managed gauge current.
    let gauges = {
        let stores = stores.clone();
        let metrics = metrics.clone();
        let stop = stopped(&shutdown);
        async move {
            let tick = async {
                loop {
                    metrics.set_managed("Environment", stores.environments.len());
                    metrics.set_managed("Application", stores.applications.len());
                    metrics.set_managed("Service", stores.services.len());
                    tokio::time::sleep(Duration::from_secs(5)).await;
                }
            };
            futures::future::select(Box::pin(tick), Box::pin(stop)).await;
        }
    };

    tracing::info!(concurrency = settings.concurrency, "controllers started");
    futures::join!(
        stores_loaded,
        environment_controller,
        application_controller,
        service_controller,
        gauges
    );
    tracing::info!("controllers stopped");
}

/// Resolves once `shutdown` turns true.
pub fn stopped(
    shutdown: &tokio::sync::watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + Sync + 'static {
    let mut shutdown = shutdown.clone();
    async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    }
}

/// Whether a Service (or its Application) reads the named Secret/ConfigMap through `valueFrom`.
fn reads(service: &Service, applications: &[Arc<Application>], name: &str, secret: bool) -> bool {
    let application_env = applications
        .iter()
        .find(|a| {
            a.metadata.namespace == service.metadata.namespace
                && a.metadata.name.as_ref() == Some(&service.spec.application)
        })
        .map(|a| a.spec.env.clone())
        .unwrap_or_default();
    service
        .spec
        .env
        .iter()
        .chain(application_env.iter())
        .filter_map(|v| v.value_from.as_ref())
        .any(|from| {
            if secret {
                from.secret_key_ref.as_ref().is_some_and(|r| r.name == name)
            } else {
                from.config_map_key_ref
                    .as_ref()
                    .is_some_and(|r| r.name == name)
            }
        })
}

fn log_result<K: Resource, E: std::fmt::Display>(
    kind: &str,
    result: Result<(ObjectRef<K>, Action), E>,
) where
    K::DynamicType: Clone,
{
    match result {
        Ok((object, _)) => tracing::debug!(kind, object = %object.name, "reconciled"),
        Err(error) => tracing::debug!(kind, %error, "reconcile error"),
    }
}
