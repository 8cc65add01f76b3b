//! The reflector stores: Paved's in-memory view of the cluster, declared once.
//!
//! [`Stores`] (what reconciles read), [`StoreWriters`] (what the reflectors in
//! `runtime::controllers` feed) and the wait for every initial list all come from
//! the one list below; the controllers destructure [`StoreWriters`] without `..`,
//! so a store added here without a watch does not compile.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;

use crate::api::gateway_api::HttpRoute;
use crate::api::{Application, Environment, Service};
use crate::names::{annotations, reasons};
use crate::resolve::Snapshot;
use crate::slim::Slim;

macro_rules! stores {
    ($($(#[$doc:meta])* $field:ident: $kind:ty,)*) => {
        /// Reflector stores: Paved's in-memory view of the cluster.
        #[derive(Clone)]
        pub struct Stores {
            $($(#[$doc])* pub $field: Store<$kind>,)*
            /// Turns true once every store above holds its initial list.
            pub loaded: tokio::sync::watch::Receiver<bool>,
            /// The Services store by namespace (see [`ServicesByNamespace`]).
            pub services_by_namespace: ServicesByNamespace,
            /// What the usage poller found (it writes; reconcilers and the
            /// metrics read).
            pub usage: crate::usage::UsageStore,
        }

        /// The writing side of every store in [`Stores`], for the reflectors.
        pub struct StoreWriters {
            $(pub $field: Writer<$kind>,)*
        }

        /// New, empty stores, their writers, and the gate [`StoresLoaded`] opens.
        pub fn new_stores() -> (Stores, StoreWriters, StoresLoaded) {
            $(let $field = Writer::<$kind>::default();)*
            let (gate, loaded) = tokio::sync::watch::channel(false);
            let stores = Stores {
                $($field: $field.as_reader(),)*
                loaded,
                services_by_namespace: ServicesByNamespace::default(),
                usage: crate::usage::UsageStore::default(),
            };
            let loader = StoresLoaded {
                stores: stores.clone(),
                gate,
            };
            (stores, StoreWriters { $($field,)* }, loader)
        }

        impl StoresLoaded {
            pub async fn run(self) {
                let stores = &self.stores;
                $(
                    while tokio::time::timeout(
                        std::time::Duration::from_millis(100),
                        stores.$field.wait_until_ready(),
                    )
                    .await
                    .is_err()
                    {}
                )*
                tracing::debug!("every store holds its initial list");
                let _ = self.gate.send(true);
            }
        }

        #[cfg(test)]
        impl StoreWriters {
            /// Every store has its initial list (tests).
            fn init_done(&mut self) {
                $(self.$field.apply_watcher_event(&kube::runtime::watcher::Event::InitDone);)*
            }
        }
    };
}

stores! {
    environments: Environment,
    applications: Application,
    services: Service,
    /// Namespaces labelled `paved.dev/environment`.
    namespaces: Namespace,
    /// Children of Services, labelled `app.kubernetes.io/managed-by=paved`,
    /// kept slim: what Paved applied, and status ([`crate::slim`]).
    deployments: Slim<Deployment>,
    core_services: Slim<CoreService>,
    ingresses: Slim<Ingress>,
    /// Gateway API routes. On a cluster without the Gateway API CRDs this store
    /// is loaded empty, and filled once discovery finds them.
    http_routes: Slim<HttpRoute>,
    autoscalers: Slim<HorizontalPodAutoscaler>,
    disruption_budgets: Slim<PodDisruptionBudget>,
    /// Children of Environments (access and guardrails), same label.
    role_bindings: Slim<RoleBinding>,
    resource_quotas: Slim<ResourceQuota>,
    limit_ranges: Slim<LimitRange>,
    network_policies: Slim<NetworkPolicy>,
}

/// The Services of the Services store, by namespace, kept current by the
/// Service reflector right after the store takes each change (so a reconcile
/// any tap triggers finds it here too). Aggregates (an Application, an
/// Environment) and the triggers between Services read one namespace: with
/// ten thousand Services, scanning the whole store on each of their reconciles
/// was most of the controller's CPU. Holds the store's own `Arc`s, not copies.
#[derive(Clone, Default)]
pub struct ServicesByNamespace(Arc<RwLock<ByNamespace>>);

#[derive(Default)]
struct ByNamespace {
    services: HashMap<String, BTreeMap<String, Arc<Service>>>,
    /// Services whose status waits on another Service (a host held by an older
    /// claim, a dependency not found): any Service's change may release them.
    waiting: BTreeMap<(String, String), Arc<Service>>,
    /// Exposed Services by what their host is built from (see [`claim_key`]):
    /// the only Services a host check has to look at.
    claims: HashMap<String, BTreeMap<(String, String), Arc<Service>>>,
}

/// What an exposed Service's host is made from: its explicit `expose.host`, or
/// else its name (`<name>.<domain>`). None when it is not exposed.
fn claim_key(service: &Service) -> Option<String> {
    let expose = service.spec.expose.as_ref()?;
    Some(expose.host.clone().unwrap_or_else(|| service.name_any()))
}

/// The claim keys under which a Service asking for `host` may find another: the
/// host itself (an explicit host), and each of its prefixes that end before a
/// `.` (a name, as `<name>.<domain>`; a name may hold dots). The index form of
/// `resolve::might_claim`, which the host check still applies to what it finds.
fn claim_keys_for(host: &str) -> impl Iterator<Item = &str> {
    std::iter::once(host).chain(
        host.match_indices('.')
            .map(|(at, _)| &host[..at])
            .filter(|prefix| !prefix.is_empty()),
    )
}

impl ServicesByNamespace {
    /// Take in `event`, which `store` has applied already.
    pub fn apply(&self, store: &Store<Service>, event: &watcher::Event<Service>) {
        let mut index = self.0.write().expect("index lock");
        match event {
            watcher::Event::Apply(service) => {
                if let Some(stored) = store.get(&ObjectRef::from_obj(service)) {
                    index.insert(stored);
                }
            }
            watcher::Event::Delete(service) => index.remove(service),
            // A (re)list: the store swaps its whole content in at its end.
            watcher::Event::InitDone => {
                *index = ByNamespace::default();
                for service in store.state() {
                    index.insert(service);
                }
            }
            watcher::Event::Init | watcher::Event::InitApply(_) => {}
        }
    }

    /// The Services in `namespace`, by name.
    pub fn in_namespace(&self, namespace: &str) -> Vec<Arc<Service>> {
        let index = self.0.read().expect("index lock");
        index
            .services
            .get(namespace)
            .map(|services| services.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The Services whose status waits on another Service (see [`ByNamespace`]).
    pub fn waiting(&self) -> Vec<Arc<Service>> {
        let index = self.0.read().expect("index lock");
        index.waiting.values().cloned().collect()
    }

    /// The exposed Services, in any namespace, that may ask for `host`: a
    /// superset of those that do (the host check decides), a few, not all.
    pub fn may_claim(&self, host: &str) -> Vec<Arc<Service>> {
        let index = self.0.read().expect("index lock");
        claim_keys_for(host)
            .filter_map(|key| index.claims.get(key))
            .flat_map(|services| services.values().cloned())
            .collect()
    }
}

impl ByNamespace {
    fn key(service: &Service) -> (String, String) {
        (
            service.metadata.namespace.clone().unwrap_or_default(),
            service.name_any(),
        )
    }

    fn insert(&mut self, service: Arc<Service>) {
        let key = Self::key(&service);
        if waits_on_another_service(&service) {
            self.waiting.insert(key.clone(), service.clone());
        } else {
            self.waiting.remove(&key);
        }
        let (namespace, name) = key.clone();
        let before = self
            .services
            .entry(namespace)
            .or_default()
            .insert(name, service.clone());
        if let Some(before) = before {
            self.unclaim(&before, &key);
        }
        if let Some(claim) = claim_key(&service) {
            self.claims.entry(claim).or_default().insert(key, service);
        }
    }

    fn remove(&mut self, service: &Service) {
        let key = Self::key(service);
        self.waiting.remove(&key);
        let Some(services) = self.services.get_mut(&key.0) else {
            return;
        };
        // The indexed copy, which the claims were made from.
        let before = services.remove(&key.1);
        if services.is_empty() {
            self.services.remove(&key.0);
        }
        if let Some(before) = before {
            self.unclaim(&before, &key);
        }
    }

    fn unclaim(&mut self, service: &Service, key: &(String, String)) {
        let Some(claim) = claim_key(service) else {
            return;
        };
        if let Some(claimants) = self.claims.get_mut(&claim) {
            claimants.remove(key);
            if claimants.is_empty() {
                self.claims.remove(&claim);
            }
        }
    }
}

/// Whether `service`'s status waits on another Service: a host an older claim
/// holds, or a dependency not found.
pub fn waits_on_another_service(service: &Service) -> bool {
    service.status.as_ref().is_some_and(|status| {
        status.conditions.iter().any(|c| {
            c.reason == reasons::HOST_CONFLICT || c.reason == reasons::DEPENDENCY_NOT_FOUND
        })
    })
}

/// Opens the gate of [`Stores::wait_until_ready`] once every store is loaded.
///
/// `Store::wait_until_ready` cannot be awaited by many reconciles at once: it is a
/// oneshot that keeps only the last poller's waker, so with a full queue at start-up
/// all but one waiting reconcile were never woken and the controller hung (and so
/// did its graceful shutdown). This single waiter also re-polls every 100 ms, because
/// each controller's runner waits on its own store too and may take that one waker.
pub struct StoresLoaded {
    pub stores: Stores,
    pub gate: tokio::sync::watch::Sender<bool>,
}

impl Stores {
    /// Wait until every store has its initial list, so a reconcile never mistakes
    /// "not loaded yet" for "does not exist". Any number of reconciles may wait
    /// at once: they wait on the [`StoresLoaded`] gate, not on the stores.
    /// False when the controllers stop before the stores were loaded: then there
    /// is nothing a reconcile may conclude, and it must do nothing.
    pub async fn wait_until_ready(&self) -> bool {
        let mut loaded = self.loaded.clone();
        loaded.wait_for(|loaded| *loaded).await.is_ok()
    }

    /// Whether `namespace` is being deleted (its Environment is going away):
    /// nothing inside it is worth reconciling or reporting any more.
    pub fn namespace_terminating(&self, namespace: &str) -> bool {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .is_some_and(|ns| ns.metadata.deletion_timestamp.is_some())
    }

    /// The current [`Snapshot`] of what one namespace's aggregates read: every
    /// Environment and Application, the Services of `namespace` only, and
    /// whether `namespace` is owned. Costs the namespace's size, not the cluster's.
    pub fn snapshot_in(&self, namespace: &str) -> Snapshot {
        let environments = self.environments.state();
        let owned_namespaces = self
            .namespace_owner(&environments, namespace)
            .map(|environment| (namespace.to_string(), environment))
            .into_iter()
            .collect();
        Snapshot {
            environments,
            applications: self.applications.state(),
            services: self.services_by_namespace.in_namespace(namespace),
            owned_namespaces,
        }
    }

    /// The current [`Snapshot`] of what a Service's reconcile reads: that of its
    /// namespace ([`Self::snapshot_in`]), and the exposed Services elsewhere that
    /// may ask for the same host, with whether their namespaces are owned.
    /// Costs the namespace's size and the few claimants, not the cluster's.
    pub fn snapshot_for(&self, service: &Service) -> Snapshot {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let mut snapshot = self.snapshot_in(namespace);
        let host = snapshot
            .environment_of(namespace, "Service")
            .ok()
            .and_then(|environment| crate::resolve::exposed_host(service, environment));
        let Some(host) = host else {
            return snapshot;
        };
        for other in self.services_by_namespace.may_claim(&host) {
            let Some(other_namespace) = other.metadata.namespace.as_deref() else {
                continue;
            };
            if other_namespace == namespace {
                continue;
            }
            if !snapshot.owned_namespaces.contains_key(other_namespace) {
                if let Some(owner) = self.namespace_owner(&snapshot.environments, other_namespace) {
                    snapshot
                        .owned_namespaces
                        .insert(other_namespace.to_string(), owner);
                }
            }
            snapshot.services.push(other);
        }
        snapshot
    }

    /// The name of the Environment among `environments` that owns `namespace`
    /// (one not being deleted), as [`Self::snapshot`] counts it.
    pub fn namespace_owner(
        &self,
        environments: &[Arc<Environment>],
        namespace: &str,
    ) -> Option<String> {
        self.namespaces
            .get(&ObjectRef::new(namespace))
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .and_then(|ns| owner_of(environments, &ns))
    }

    /// The current [`Snapshot`]; a namespace counts as owned only when it carries
    /// the UID mark of an existing Environment that names it.
    pub fn snapshot(&self) -> Snapshot {
        let environments = self.environments.state();
        let owned_namespaces: BTreeMap<String, String> = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter_map(|ns| Some((ns.name_any(), owner_of(&environments, ns)?)))
            .collect();
        Snapshot {
            environments,
            applications: self.applications.state(),
            services: self.services.state(),
            owned_namespaces,
        }
    }
}

/// The name of the Environment that created `namespace` and names it.
fn owner_of(environments: &[Arc<Environment>], namespace: &Namespace) -> Option<String> {
    let mark = namespace
        .annotations()
        .get(annotations::CREATED_BY_ENVIRONMENT)?;
    let environment = environments.iter().find(|e| {
        e.metadata.uid.as_ref() == Some(mark) && e.namespace_name() == namespace.name_any()
    })?;
    Some(environment.name_any())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    /// Many reconciles waiting at once all go on once every store is loaded (with
    /// kube-runtime's `Store::wait_until_ready` only the last waiter was woken).
    #[tokio::test]
    async fn every_waiting_reconcile_goes_on_once_the_stores_are_loaded() {
        use futures::StreamExt;

        let (stores, mut writers, loader) = super::new_stores();
        let opener = tokio::spawn(loader.run());
        // 50 waiters in one FuturesUnordered, like a controller's runner slots.
        let mut waiters: futures::stream::FuturesUnordered<_> = (0..50)
            .map(|_| {
                let stores = stores.clone();
                async move { stores.wait_until_ready().await }
            })
            .collect();
        let early = tokio::time::timeout(Duration::from_millis(200), waiters.next()).await;
        assert!(
            early.is_err(),
            "nobody may go on before the stores are loaded"
        );

        writers.init_done();
        let woken: Vec<bool> = tokio::time::timeout(Duration::from_secs(5), waiters.collect())
            .await
            .expect("every waiter woken");
        assert_eq!(woken, vec![true; 50]);
        opener.await.unwrap();
    }

    #[tokio::test]
    async fn one_store_still_loading_holds_every_reconcile_back() {
        let (stores, mut writers, loader) = super::new_stores();
        let opener = tokio::spawn(loader.run());
        // All but the last store loaded.
        use kube::runtime::watcher::Event;
        writers.environments.apply_watcher_event(&Event::InitDone);
        writers.deployments.apply_watcher_event(&Event::InitDone);
        let waiting =
            tokio::time::timeout(Duration::from_millis(300), stores.wait_until_ready()).await;
        assert!(waiting.is_err(), "not every store is loaded yet");
        writers.init_done();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), stores.wait_until_ready())
                .await
                .expect("woken")
        );
        opener.await.unwrap();
    }

    /// The index follows the store: changes, deletions and a relist; and it
    /// knows which Services wait on another one.
    #[test]
    fn the_services_index_follows_the_store_by_namespace() {
        use crate::api::Condition;
        use crate::resolve::tests::service;
        use kube::runtime::watcher::Event;

        let (stores, mut writers, _loader) = super::new_stores();
        let index = stores.services_by_namespace.clone();
        let mut feed = |event: Event<crate::api::Service>| {
            writers.services.apply_watcher_event(&event);
            index.apply(&stores.services, &event);
        };
        let names = |namespace: &str| -> Vec<String> {
            index
                .in_namespace(namespace)
                .iter()
                .map(|s| s.metadata.name.clone().unwrap())
                .collect()
        };
        feed(Event::Init);
        feed(Event::InitApply(service("shop", "web", "shop")));
        feed(Event::InitApply(service("shop", "api", "shop")));
        feed(Event::InitApply(service("blog", "web", "blog")));
        assert!(names("shop").is_empty(), "a list counts once it is through");
        feed(Event::InitDone);
        assert_eq!(names("shop"), ["api", "web"]);
        assert_eq!(names("blog"), ["web"]);
        assert!(index.waiting().is_empty());

        let mut conflicted = service("blog", "web", "blog");
        conflicted.status = Some(crate::api::service::ServiceStatus {
            conditions: vec![Condition {
                type_: "Ready".into(),
                status: "False".into(),
                reason: crate::names::reasons::HOST_CONFLICT.into(),
                message: String::new(),
                last_transition_time: None,
                observed_generation: None,
            }],
            ..Default::default()
        });
        feed(Event::Apply(conflicted));
        assert_eq!(index.waiting().len(), 1);
        feed(Event::Apply(service("blog", "web", "blog")));
        assert!(
            index.waiting().is_empty(),
            "released once its status moved on"
        );

        feed(Event::Delete(service("shop", "web", "shop")));
        assert_eq!(names("shop"), ["api"]);
        // The index holds the store's own objects, not copies.
        let stored = stores
            .services
            .get(&kube::runtime::reflector::ObjectRef::new("api").within("shop"))
            .unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &stored,
            &index.in_namespace("shop")[0]
        ));

        // A relist that lost "blog/web" drops it.
        feed(Event::Init);
        feed(Event::InitApply(service("shop", "api", "shop")));
        feed(Event::InitDone);
        assert_eq!(names("shop"), ["api"]);
        assert!(names("blog").is_empty());
    }

    /// A Service's host check reads only the exposed Services that may ask for
    /// its host, and finds what a scan of the whole store finds.
    #[test]
    fn a_host_check_reads_the_few_claimants_and_finds_what_the_whole_store_does() {
        use super::{Namespace, annotations};
        use crate::api::service::Expose;
        use crate::resolve::resolve_service;
        use crate::resolve::tests::{application, environment, service};
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
        use kube::ResourceExt;
        use kube::runtime::watcher::Event;

        let (stores, mut writers, _loader) = super::new_stores();
        let index = stores.services_by_namespace.clone();
        writers.init_done();
        // "upper" holds example.com and hands team.example.com to "lower".
        let mut upper = environment("upper", "example.com");
        upper.spec.delegated_domains = vec!["team.example.com".into()];
        let lower = environment("lower", "team.example.com");
        for env in [&upper, &lower] {
            writers
                .environments
                .apply_watcher_event(&Event::Apply(env.clone()));
            let mut ns = Namespace::default();
            ns.metadata.name = Some(env.namespace_name());
            ns.metadata.annotations = Some(
                [(
                    annotations::CREATED_BY_ENVIRONMENT.to_string(),
                    env.metadata.uid.clone().unwrap(),
                )]
                .into(),
            );
            writers.namespaces.apply_watcher_event(&Event::Apply(ns));
            writers
                .applications
                .apply_watcher_event(&Event::Apply(application(&env.namespace_name(), "shop")));
        }
        let exposed = |namespace: &str, name: &str, host: Option<&str>, second: i64| {
            let mut s = service(namespace, name, "shop");
            s.spec.expose = Some(Expose {
                host: host.map(str::to_string),
                path: None,
            });
            s.metadata.creation_timestamp = Some(Time(
                k8s_openapi::jiff::Timestamp::from_second(second).unwrap(),
            ));
            s
        };
        let all = [
            // web.team.example.com: asked for by name in "lower", explicitly in "upper".
            exposed("lower", "web", None, 1_000),
            exposed("upper", "old", Some("web.team.example.com"), 500),
            exposed("lower", "late", Some("web.team.example.com"), 2_000),
            // A name with a dot: "api.v2" asks for api.v2.example.com.
            exposed("upper", "api.v2", None, 1_000),
            exposed("upper", "other", Some("api.v2.example.com"), 2_000),
            service("upper", "hidden", "shop"),
        ];
        for s in &all {
            let event = Event::Apply(s.clone());
            writers.services.apply_watcher_event(&event);
            index.apply(&stores.services, &event);
        }
        let claimants = |host: &str| -> Vec<String> {
            let mut names: Vec<String> = index
                .may_claim(host)
                .iter()
                .map(|s| format!("{}/{}", s.metadata.namespace.clone().unwrap(), s.name_any()))
                .collect();
            names.sort();
            names
        };
        assert_eq!(
            claimants("web.team.example.com"),
            ["lower/late", "lower/web", "upper/old"]
        );
        assert_eq!(
            claimants("api.v2.example.com"),
            ["upper/api.v2", "upper/other"]
        );
        assert!(claimants("hidden.example.com").is_empty(), "not exposed");

        let full = stores.snapshot();
        let mut conflicts = 0;
        for s in &all {
            let whole = resolve_service(&full, s).map(|r| r.host);
            let few = stores.snapshot_for(s);
            let found = resolve_service(&few, s).map(|r| r.host);
            assert_eq!(
                whole.as_ref().map_err(ToString::to_string),
                found.as_ref().map_err(ToString::to_string),
                "{}",
                s.name_any()
            );
            conflicts += usize::from(found.is_err_and(|e| e.reason() == "HostConflict"));
        }
        // "late" loses to "web"; "other" to "api.v2" ("old" is refused: delegated away).
        assert_eq!(conflicts, 2);

        // A changed host leaves its old key; a deleted Service leaves the index.
        let moved = exposed("lower", "late", Some("www.team.example.com"), 2_000);
        let event = Event::Apply(moved);
        writers.services.apply_watcher_event(&event);
        index.apply(&stores.services, &event);
        assert_eq!(
            claimants("web.team.example.com"),
            ["lower/web", "upper/old"]
        );
        assert_eq!(claimants("www.team.example.com"), ["lower/late"]);
        let event = Event::Delete(all[0].clone());
        writers.services.apply_watcher_event(&event);
        index.apply(&stores.services, &event);
        assert_eq!(claimants("web.team.example.com"), ["upper/old"]);
    }
}

/// The stores of the running controllers, while they run. The controllers
/// publish theirs when they start and withdraw them when they stop (lost Lease).
#[derive(Clone, Default)]
pub struct PublishedStores(Arc<RwLock<Option<Stores>>>);

impl std::fmt::Debug for PublishedStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PublishedStores")
    }
}

/// Withdraws the published stores when dropped (the controllers stopped).
pub struct Publication(PublishedStores);

impl Drop for Publication {
    fn drop(&mut self) {
        *self.0.0.write().expect("stores lock") = None;
    }
}

impl PublishedStores {
    pub fn publish(&self, stores: Stores) -> Publication {
        *self.0.write().expect("stores lock") = Some(stores);
        Publication(self.clone())
    }

    /// The stores, while the controllers run (a standby has none).
    pub fn current(&self) -> Option<Stores> {
        self.0.read().expect("stores lock").clone()
    }
}
