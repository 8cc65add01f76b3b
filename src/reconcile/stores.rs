//! The reflector stores: Paved's in-memory view of the cluster, declared once.
//!
//! [`Stores`] (what reconciles read), [`StoreWriters`] (what the reflectors in
//! `runtime::controllers` feed) and the wait for every initial list all come from
//! the one list below; the controllers destructure [`StoreWriters`] without `..`,
//! so a store added here without a watch does not compile.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, Service as CoreService};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::ResourceExt;
use kube::runtime::reflector::store::Writer;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::api::gateway_api::HttpRoute;
use crate::api::{Application, Environment, Service};
use crate::names::annotations;
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

    /// The current [`Snapshot`]; a namespace counts as owned only when it carries
    /// the UID mark of an existing Environment that names it.
    pub fn snapshot(&self) -> Snapshot {
        let environments = self.environments.state();
        let owned_namespaces: BTreeMap<String, String> = self
            .namespaces
            .state()
            .iter()
            .filter(|ns| ns.metadata.deletion_timestamp.is_none())
            .filter_map(|ns| {
                let mark = ns.annotations().get(annotations::CREATED_BY_ENVIRONMENT)?;
                let env = environments.iter().find(|e| {
                    e.metadata.uid.as_ref() == Some(mark) && e.namespace_name() == ns.name_any()
                })?;
                Some((ns.name_any(), env.name_any()))
            })
            .collect();
        Snapshot {
            environments,
            applications: self.applications.state(),
            services: self.services.state(),
            owned_namespaces,
        }
    }
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
}
