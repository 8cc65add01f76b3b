//! Controller wiring: which watch events reconcile which object.
//!
//! | reconciles | triggered by |
//! |---|---|
//! | Environment | its own generation/finalizer changes; its Namespace, RoleBindings, ResourceQuota, LimitRange, NetworkPolicy; any Application or Service in its namespace, or in the namespace of its base (previews); its base's generation/deletion |
//! | Application | its own generation changes; any change of its Services (status included); its namespace |
//! | Service | its own generation changes; its children (drift; an HTTPRoute's status too); the Gateway API CRDs appearing; its Application and Environment (generation, stopped); Services it depends on, or whose host it wants; its namespace; referenced ConfigMaps/Secrets; the usage poller (its figures moved by a step, or metrics.k8s.io came or went) |
//!
//! Status-only changes of an object never trigger its own reconcile (predicate on
//! generation), so writing status cannot loop; changes of children and of
//! related objects do trigger.

use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::fair::FairQueue;
use super::metrics::Metrics;
use super::taps::{self, Deletions, Taps};
use super::triggers;
use super::watches::watch;
use crate::api::{Application, Environment, Service};
use crate::children::config::ConfigKind;
use crate::error::Error;
use crate::names::{CONTROLLER_NAME, labels};
use crate::reconcile::{self, Context, StoreWriters};
use crate::slim::Slim;

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
    /// Thresholds and choices of the paved-path scorecard.
    pub insights: crate::insights::InsightSettings,
    /// Prices of the cost estimate; none: no estimate.
    pub prices: Option<crate::cost::Prices>,
    /// How often the usage poller reads metrics.k8s.io.
    pub usage_interval: Duration,
    /// How often an unchanged object is reconciled again (`--resync-seconds`).
    pub resync: Duration,
    /// Where the catalog page finds the stores while these controllers run.
    pub published_stores: crate::reconcile::PublishedStores,
}

/// A reflector of children: the store of `writer` kept current by a watch, each
/// object kept slim ([`Slim`]); returns the stream that feeds it (which must be
/// polled, here by a controller).
pub(super) fn reflect_slim<K>(
    writer: Writer<Slim<K>>,
    api: Api<Slim<K>>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
) -> impl Stream<Item = Result<Slim<K>, watcher::Error>> + Send + use<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + Serialize
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    // Decoded straight into the slim form: a list of thousands of children is
    // never held whole (see [`Slim`]'s `Deserialize`).
    taps::reflect_objects(
        watch(api, config, metrics),
        writer,
        Taps::default(),
        Deletions::Given,
    )
}

/// A reflector of a kind kept whole, each object going to `taps` once the store holds it: the
/// other controllers that follow this kind are triggered from there, never by
/// a watch of their own that could run ahead of the store (see [`super::taps`]).
fn reflect_tapped<K>(
    writer: Writer<K>,
    api: Api<K>,
    config: watcher::Config,
    metrics: &Arc<Metrics>,
    taps: Taps<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    taps::reflect_objects(
        watch(api, config, metrics).modify(drop_unread_metadata),
        writer,
        taps,
        Deletions::Given,
    )
}

/// Paved never reads managedFields, nor the copy of the whole object that
/// `kubectl apply` keeps in an annotation (and never propagates it to a
/// child); not keeping them roughly halves the memory of the stores.
fn drop_unread_metadata<K: Resource>(object: &mut K) {
    let meta = object.meta_mut();
    meta.managed_fields = None;
    if let Some(annotations) = &mut meta.annotations {
        annotations.remove(crate::names::annotations::LAST_APPLIED);
    }
}

/// A reflector of a custom resource whose stream only lets through changes of
/// generation or finalizers (not status).
fn reflect_spec_changes<K>(
    writer: Writer<K>,
    api: Api<K>,
    metrics: &Arc<Metrics>,
    taps: Taps<K>,
) -> impl Stream<Item = Result<K, watcher::Error>> + Send + use<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    taps::reflect_objects(
        watch(api, watcher::Config::default(), metrics).modify(drop_unread_metadata),
        writer,
        taps,
        Deletions::Left,
    )
    .predicate_filter(spec_or_lifecycle::<K>, Default::default())
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

/// An Environment's generation (spec, including `lifecycle.stopped`),
/// `status.stopped` (which a schedule moves, and which `paved start` clears
/// only once the Environment has reconciled) and `status.observedGeneration`
/// (the write that grants a domain or records the new spec): what its Services
/// are built from. Fed by a tap of the Environment reflector, so the store has
/// each of them when the Services it wakes read it.
fn generation_or_stopped(environment: &Environment) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    environment.metadata.generation.hash(&mut hasher);
    environment
        .status
        .as_ref()
        .and_then(|s| s.observed_generation)
        .hash(&mut hasher);
    environment
        .status
        .as_ref()
        .is_some_and(|s| s.stopped)
        .hash(&mut hasher);
    Some(hasher.finish())
}

fn error_policy<K: Resource>(
    kind: &'static str,
) -> impl Fn(Arc<K>, &Error, Arc<Context>) -> Action {
    move |object, error, ctx| {
        if error.is_refused() {
            // Only a change elsewhere can fix it: back off, per object.
            let wait = crate::reconcile::back_off_refused(&ctx, kind, object.as_ref(), error);
            ctx.metrics.stalled(kind, error.reason());
            return Action::requeue(wait);
        }
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

    let (stores, writers, stores_loaded) = reconcile::new_stores();
    // The catalog page reads these stores until the controllers stop (dropped here).
    let _published = settings.published_stores.publish(stores.clone());
    // Every store, by name: a store without its watch does not compile.
    let StoreWriters {
        environments,
        applications,
        services,
        namespaces,
        deployments,
        core_services,
        ingresses,
        http_routes,
        autoscalers,
        disruption_budgets,
        role_bindings,
        resource_quotas,
        limit_ranges,
        network_policies,
    } = writers;
    let all = || client.clone();
    // One watch per kind: the controllers that follow another kind are
    // triggered by taps of its reflector, after its store has each change.
    let (mut environment_taps, mut application_taps) = (Taps::default(), Taps::default());
    let (mut service_taps, mut namespace_taps) = (Taps::default(), Taps::default());
    {
        let (index, store) = (
            stores.services_by_namespace.clone(),
            stores.services.clone(),
        );
        service_taps.index(move |event| index.apply(&store, event));
    }
    let bases_for_previews = environment_taps.tap();
    let environments_for_services = environment_taps.tap();
    let applications_for_environments = application_taps.tap();
    let applications_for_services = application_taps.tap();
    let services_for_environments = service_taps.tap();
    let services_for_applications = service_taps.tap();
    let services_for_services = service_taps.tap();
    let namespaces_for_applications = namespace_taps.tap();
    let namespaces_for_services = namespace_taps.tap();
    let environment_stream =
        reflect_spec_changes(environments, Api::all(all()), &metrics, environment_taps);
    let application_stream =
        reflect_spec_changes(applications, Api::all(all()), &metrics, application_taps);
    let service_stream = reflect_spec_changes(services, Api::all(all()), &metrics, service_taps);
    let namespace_stream = reflect_tapped(
        namespaces,
        Api::all(all()),
        environment_namespaces,
        &metrics,
        namespace_taps,
    );
    let deployment_stream = reflect_slim(deployments, Api::all(all()), managed.clone(), &metrics);
    let core_service_stream =
        reflect_slim(core_services, Api::all(all()), managed.clone(), &metrics);
    let ingress_stream = reflect_slim(ingresses, Api::all(all()), managed.clone(), &metrics);
    // Only once the cluster serves HTTPRoute (it may never, or later).
    let (gateway_api_served, gateway_api) = tokio::sync::watch::channel(false);
    let (gateway_api_appeared, gateway_api_appeared_rx) = tokio::sync::watch::channel(false);
    let http_route_stream = super::gateway_api::reflect_when_served(
        http_routes,
        all(),
        managed.clone(),
        metrics.clone(),
        gateway_api_served,
        gateway_api_appeared,
    );
    let autoscaler_stream = reflect_slim(autoscalers, Api::all(all()), managed.clone(), &metrics);
    let disruption_budget_stream = reflect_slim(
        disruption_budgets,
        Api::all(all()),
        managed.clone(),
        &metrics,
    );
    let role_binding_stream =
        reflect_slim(role_bindings, Api::all(all()), managed.clone(), &metrics);
    let resource_quota_stream =
        reflect_slim(resource_quotas, Api::all(all()), managed.clone(), &metrics);
    let limit_range_stream = reflect_slim(limit_ranges, Api::all(all()), managed.clone(), &metrics);
    let network_policy_stream = reflect_slim(network_policies, Api::all(all()), managed, &metrics);
    let stores_loaded = stores_loaded.run();
    let (environments, applications, services) = (
        stores.environments.clone(),
        stores.applications.clone(),
        stores.services.clone(),
    );
    // The usage poller keeps `usage`; it wakes Services through `usage_wakes`.
    let usage = stores.usage.clone();
    let (usage_wake, usage_wakes) = super::usage::wake_channel();
    let usage_poller = super::usage::run(
        client.clone(),
        stores.clone(),
        usage.clone(),
        super::usage::PollSettings {
            interval: settings.usage_interval,
            thresholds: settings.insights.usage,
            steps: crate::usage::Steps::default(),
        },
        metrics.clone(),
        usage_wake,
        stopped(&shutdown),
    );
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
        insights: settings.insights.clone(),
        prices: settings.prices.clone(),
        usage: usage.clone(),
        own_writes: Default::default(),
        progress_budget: Default::default(),
        backoff: Default::default(),
        turns: reconcile::Turns::new(settings.concurrency, &metrics),
        gateway_api,
        resync: settings.resync,
    });
    // Services fold a burst of their own events (20 ms). Applications and
    // Environments aggregate many Services, but get no debounce: kube-runtime's
    // debounce restarts on every event, so a steady stream of Service changes would
    // postpone them for as long as it lasts. Their status writes are paced instead
    // (reconcile::status_writer::progress_interval: all of a kind share a budget),
    // and their reconciles read only the stores.
    //
    // Which object runs next is Paved's own queue's choice (`ctx.turns`,
    // `--concurrency` at once per kind, namespaces in turn: runtime::fair).
    // kube-runtime's own limit keeps what waits in no order, and a change in a
    // quiet namespace waited behind a thousand Services of another. A
    // reconcile with no turn free ends at once, its object queued, and the
    // queue wakes it when its turn comes (`wakes`, below). kube-runtime still
    // starts at most four times the turns at once: a started reconcile holds
    // its object, and after a restart thousands start while the stores load.
    let started = settings.concurrency.saturating_mul(4);
    let service_config = ControllerConfig::default()
        .debounce(Duration::from_millis(20))
        .concurrency(started);
    let aggregate_config = ControllerConfig::default().concurrency(started);
    let close_turns = {
        let (ctx, stop) = (ctx.clone(), stopped(&shutdown));
        async move {
            stop.await;
            ctx.turns.close();
        }
    };

    // --- Environment --------------------------------------------------------
    let envs = environments.clone();
    let env_of_app = move |a: Application| {
        triggers::environments_for_namespace(&envs.state(), &a.namespace().unwrap_or_default())
    };
    let envs = environments.clone();
    let env_of_svc = move |s: Service| {
        triggers::environments_for_namespace(&envs.state(), &s.namespace().unwrap_or_default())
    };
    let envs = environments.clone();
    // A preview follows its base; an Environment waiting for a domain may get it
    // when any other Environment changes or goes.
    let previews_of = move |base: Environment| {
        let all = envs.state();
        let mut wake = triggers::previews_of(&all, &base.name_any());
        wake.extend(triggers::environments_waiting_for_a_domain(&all));
        wake
    };
    let environment_controller = Controller::for_stream(environment_stream, environments.clone())
        .with_config(aggregate_config.clone())
        .owns_stream(namespace_stream)
        // Namespaced children of a cluster-scoped owner: mapped by name alone.
        .watches_stream(role_binding_stream, triggers::controlling_environment)
        .watches_stream(resource_quota_stream, triggers::controlling_environment)
        .watches_stream(limit_range_stream, triggers::controlling_environment)
        .watches_stream(network_policy_stream, triggers::controlling_environment)
        // A preview notices its base being created, changed or deleted.
        .watches_stream(
            bases_for_previews
                .predicate_filter(spec_or_lifecycle::<Environment>, Default::default()),
            previews_of,
        )
        .watches_stream(applications_for_environments, env_of_app)
        .watches_stream(services_for_environments, env_of_svc)
        .reconcile_on(wakes(&ctx.turns.environments, &environments))
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            |object, ctx| reconcile::in_turn(object, ctx, reconcile::environment::reconcile),
            error_policy("Environment"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Environment", result) });

    // --- Application --------------------------------------------------------
    let apps = applications.clone();
    let application_controller = Controller::for_stream(application_stream, applications.clone())
        .with_config(aggregate_config)
        .watches_stream(services_for_applications, |s: Service| {
            triggers::application_of(&s)
        })
        .watches_stream(namespaces_for_applications, move |ns: Namespace| {
            triggers::applications_in(&apps.state(), &ns.name_any())
        })
        .reconcile_on(wakes(&ctx.turns.applications, &applications))
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            |object, ctx| reconcile::in_turn(object, ctx, reconcile::application::reconcile),
            error_policy("Application"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Application", result) });

    // --- Service ------------------------------------------------------------
    let (of_application, in_environment, in_namespace) =
        (services.clone(), services.clone(), services.clone());
    let related = stores.services_by_namespace.clone();
    let (reading_config, reading_secret) = (
        (services.clone(), applications.clone()),
        (services.clone(), applications.clone()),
    );

    let service_controller = Controller::for_stream(service_stream, services.clone())
        .with_config(service_config)
        .owns_stream(deployment_stream)
        .owns_stream(core_service_stream)
        .owns_stream(ingress_stream)
        .owns_stream(http_route_stream)
        .owns_stream(autoscaler_stream)
        .owns_stream(disruption_budget_stream)
        .watches_stream(
            applications_for_services
                .predicate_filter(spec_or_lifecycle::<Application>, Default::default()),
            move |a: Application| triggers::services_of_application(&of_application.state(), &a),
        )
        // Spec changes, and stop/start (status.stopped also moves on a schedule).
        .watches_stream(
            environments_for_services.predicate_filter(generation_or_stopped, Default::default()),
            move |e: Environment| {
                let mut wake = triggers::services_in(&in_environment.state(), &e.namespace_name());
                wake.extend(triggers::services_waiting_for_a_domain(
                    &in_environment.state(),
                ));
                wake
            },
        )
        .watches_stream(namespaces_for_services, move |n: Namespace| {
            triggers::services_in(&in_namespace.state(), &n.name_any())
        })
        // Dependents see their dependency's readiness; a released host goes to the next claimant.
        // Read from the index: the same Services a scan of the whole store
        // would find (those of its namespace, and those waiting on any other).
        .watches_stream(services_for_services, move |changed: Service| {
            let mut candidates =
                related.in_namespace(changed.metadata.namespace.as_deref().unwrap_or_default());
            candidates.extend(related.waiting());
            let mut wake = triggers::services_related_to(&candidates, &changed);
            wake.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
            wake.dedup();
            wake
        })
        .watches_stream(
            watch(
                Api::<PartialObjectMeta<ConfigMap>>::all(client.clone()),
                watcher::Config::default(),
                &metrics,
            )
            .touched_objects(),
            services_reading::<ConfigMap>(reading_config, ConfigKind::ConfigMap),
        )
        .watches_stream(
            watch(
                Api::<PartialObjectMeta<Secret>>::all(client.clone()),
                watcher::Config::default(),
                &metrics,
            )
            .touched_objects(),
            services_reading::<Secret>(reading_secret, ConfigKind::Secret),
        )
        // Gateway API CRDs installed while Paved runs: every Service looks again.
        .reconcile_all_on(super::gateway_api::appeared(gateway_api_appeared_rx))
        // Figures that moved by a step; metrics.k8s.io appearing or going.
        .reconcile_on(usage_wakes)
        .reconcile_on(wakes(&ctx.turns.services, &services))
        .graceful_shutdown_on(stopped(&shutdown))
        .run(
            |object, ctx| reconcile::in_turn(object, ctx, reconcile::service::reconcile),
            error_policy("Service"),
            ctx.clone(),
        )
        .for_each(|result| async move { log_result("Service", result) });

    // Keep the objects-managed and store-size gauges current.
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
                    for (kind, count) in [
                        ("Environment", stores.environments.len()),
                        ("Application", stores.applications.len()),
                        ("Service", stores.services.len()),
                        ("Namespace", stores.namespaces.len()),
                        ("Deployment", stores.deployments.len()),
                        ("CoreService", stores.core_services.len()),
                        ("Ingress", stores.ingresses.len()),
                        ("HTTPRoute", stores.http_routes.len()),
                        ("HorizontalPodAutoscaler", stores.autoscalers.len()),
                        ("PodDisruptionBudget", stores.disruption_budgets.len()),
                        ("RoleBinding", stores.role_bindings.len()),
                        ("ResourceQuota", stores.resource_quotas.len()),
                        ("LimitRange", stores.limit_ranges.len()),
                        ("NetworkPolicy", stores.network_policies.len()),
                    ] {
                        metrics.set_store_objects(kind, count);
                    }
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
        gauges,
        usage_poller,
        close_turns
    );
    tracing::info!("controllers stopped");
}

/// The objects whose turn came in `queue`, for `reconcile_on`; a turn kept
/// for an object no longer in `store` goes on to the next.
fn wakes<K: reconcile::Reconciled>(
    queue: &Arc<FairQueue<K>>,
    store: &Store<K>,
) -> impl Stream<Item = ObjectRef<K>> + Send + 'static {
    let store = store.clone();
    queue.wakes(move |object| store.get(object).is_some())
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

/// The watch mapper of Secrets or ConfigMaps (`kind`, watched as metadata):
/// [`triggers::services_reading`] over the stores.
fn services_reading<K: Resource>(
    (services, applications): (Store<Service>, Store<Application>),
    kind: ConfigKind,
) -> impl Fn(PartialObjectMeta<K>) -> Vec<ObjectRef<Service>> {
    move |object| {
        triggers::services_reading(
            &services.state(),
            &applications.state(),
            &object.namespace().unwrap_or_default(),
            kind,
            &object.name_any(),
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stores_keep_neither_managed_fields_nor_kubectls_copy_of_the_object() {
        let mut service: Service = serde_json::from_value(serde_json::json!({
            "apiVersion": "paved.dev/v1alpha1",
            "kind": "Service",
            "metadata": {
                "name": "api",
                "namespace": "shop",
                "annotations": {
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"spec\":{\"image\":\"api:1\"}}",
                    "argocd.argoproj.io/tracking-id": "shop:paved.dev/Service:shop/api",
                },
                "managedFields": [{"manager": "kubectl", "operation": "Apply"}],
            },
            "spec": {"application": "shop", "image": "api:1"},
        }))
        .unwrap();
        drop_unread_metadata(&mut service);
        assert_eq!(service.metadata.managed_fields, None);
        let annotations = service.metadata.annotations.unwrap();
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            ["argocd.argoproj.io/tracking-id"],
            "what Paved reads stays"
        );
    }
}
