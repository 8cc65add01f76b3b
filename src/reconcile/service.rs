//! Service reconcile: resolve → validate → build → apply children → status.
//!
//! While the Service's Environment is stopped, the builders hold the Deployment
//! at zero replicas and leave the HPA out (so it is deleted here); everything
//! else stays. Started again, the same builders restore the declared replicas,
//! or the HPA with a Deployment that leaves replicas to it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Resource, ResourceExt};

use super::apply::{Applied, OWN_WRITE_MEMORY, apply, delete_if_controlled};
use super::{Context, now, write_status};
use crate::api::Service;
use crate::api::service::DependencyStatus;
use crate::children::config::{ConfigKind, value_digest};
use crate::children::{
    ReferencedConfig, environment_stopped, public_url, referenced_config_keys,
    render_service_children,
};
use crate::error::{Error, Result};
use crate::resolve::{Snapshot, is_ready, resolve_service};
use crate::status::{AppliedService, ServiceObservation, service_status};

/// How often an unchanged Service is looked at again, as a safety net.
const RESYNC: Duration = Duration::from_secs(600);
/// How often a Stalled Service is checked again (no write unless something changed).
const STALLED_RECHECK: Duration = Duration::from_secs(30);

pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started("Service");
    if !ctx.stores.wait_until_ready().await {
        return Ok(Action::await_change());
    }
    if service.meta().deletion_timestamp.is_some() {
        // Children go with their owner through garbage collection.
        return Ok(Action::await_change());
    }
    let namespace = service
        .namespace()
        .ok_or_else(|| Error::InvalidObject(service.name_any()))?;
    if ctx.stores.namespace_terminating(&namespace) {
        return Ok(Action::await_change());
    }
    let snapshot = ctx.stores.snapshot();
    let uid = service.meta().uid.clone().unwrap_or_default();
    let service = match ctx.status_pacer.newer_than(&uid, service.status.as_ref()) {
        Some(own) => Arc::new(Service {
            status: Some(own),
            ..(*service).clone()
        }),
        None => service,
    };

    let outcome = match resolve_service(&snapshot, &service) {
        Ok(resolved) => {
            let config =
                read_referenced_config(&ctx, &namespace, &referenced_config_keys(&resolved))
                    .await?;
            let children = render_service_children(&resolved, &config);
            let applied = AppliedService {
                config_hash: children.config_hash.clone(),
                url: public_url(&resolved),
                endpoint: resolved.service.spec.ports.first().map(|p| {
                    format!(
                        "{}.{namespace}.svc.cluster.local:{}",
                        service.name_any(),
                        p.port
                    )
                }),
                stopped_by: environment_stopped(resolved.environment)
                    .then(|| resolved.environment.name_any()),
            };
            apply_children(&ctx, &service, &namespace, children)
                .await
                .map(|written| (applied, written))
        }
        Err(error) => Err(error),
    };

    let deployment_in_store = || {
        ctx.stores
            .deployments
            .get(&ObjectRef::new(&service.name_any()).within(&namespace))
    };
    let dependencies = dependency_statuses(&snapshot, &service, &namespace);
    let from_store = deployment_in_store();
    let observation = match &outcome {
        Ok((applied, written)) => ServiceObservation {
            outcome: Ok(applied.clone()),
            deployment: written.deployment.as_ref().or(from_store.as_deref()),
            dependencies,
        },
        Err(error) => ServiceObservation {
            outcome: Err(error),
            deployment: from_store.as_deref(),
            dependencies,
        },
    };
    let status = service_status(&service, observation, &now());
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let before = service.status.clone().unwrap_or_default();
    let written = write_status(&ctx, &api, service.as_ref(), &before, &status).await?;

    match outcome {
        Ok((_, children)) => {
            let after = written.requeue(RESYNC);
            Ok(Action::requeue(
                children.look_again.map_or(after, |again| again.min(after)),
            ))
        }
        Err(error) if error.is_stalled() => {
            ctx.metrics.stalled("Service", error.reason());
            // The watches in runtime::controllers retry it when what it waits for
            // changes; the short requeue covers races between those watches.
            Ok(Action::requeue(written.requeue(STALLED_RECHECK)))
        }
        Err(error) => Err(error),
    }
}

/// Apply every desired child and delete those that must no longer exist, all at once.
async fn apply_children(
    ctx: &Context,
    service: &Service,
    namespace: &str,
    children: crate::children::ServiceChildren,
) -> Result<ChildrenWritten> {
    let name = service.name_any();
    let owner = service.meta().uid.as_deref();
    let stores = &ctx.stores;
    let (deployment, core_service, ingress, autoscaler, disruption_budget) = futures::try_join!(
        converge(
            ctx,
            namespace,
            &name,
            Some(&children.deployment),
            &stores.deployments,
            owner
        ),
        converge(
            ctx,
            namespace,
            &name,
            children.core_service.as_ref(),
            &stores.core_services,
            owner
        ),
        converge(
            ctx,
            namespace,
            &name,
            children.ingress.as_ref(),
            &stores.ingresses,
            owner
        ),
        converge(
            ctx,
            namespace,
            &name,
            children.autoscaler.as_ref(),
            &stores.autoscalers,
            owner
        ),
        converge(
            ctx,
            namespace,
            &name,
            children.disruption_budget.as_ref(),
            &stores.disruption_budgets,
            owner
        ),
    )?;
    let stood_in = [
        deployment.stood_in,
        core_service.stood_in,
        ingress.stood_in,
        autoscaler.stood_in,
        disruption_budget.stood_in,
    ];
    Ok(ChildrenWritten {
        deployment: deployment.written,
        look_again: stood_in.contains(&true).then_some(OWN_WRITE_MEMORY),
    })
}

/// What [`apply_children`] did.
struct ChildrenWritten {
    /// The Deployment, when it was written (fresher than the store).
    deployment: Option<Deployment>,
    /// Set when a child missing from the store was taken as Paved's own recent
    /// write: look again once that memory runs out, in case it was deleted since.
    look_again: Option<Duration>,
}

/// What [`converge`] did to one child.
struct Converged<K> {
    written: Option<K>,
    stood_in: bool,
}

/// Make one child match: apply it when desired, delete it (if Paved controls it)
/// when not. Returns the object when it was written.
async fn converge<K>(
    ctx: &Context,
    namespace: &str,
    name: &str,
    desired: Option<&K>,
    store: &Store<K>,
    owner: Option<&str>,
) -> Result<Converged<K>>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + serde::Serialize
        + serde::de::DeserializeOwned
        + Clone
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let kind = K::kind(&());
    let in_store = store.get(&ObjectRef::new(name).within(namespace));
    let (live, stood_in) = ctx.own_writes.live(namespace, name, in_store);
    let mut converged = Converged {
        written: None,
        stood_in,
    };
    match desired {
        Some(desired) => {
            if let Applied::Written(object) = apply(&api, desired, live.as_deref()).await? {
                ctx.metrics.wrote(&kind);
                ctx.own_writes.remember(object.clone());
                converged.written = Some(object);
            }
        }
        None => {
            ctx.own_writes.forget::<K>(namespace, name);
            if delete_if_controlled(&api, live.as_deref(), owner).await? {
                ctx.metrics.wrote(&kind);
            }
        }
    }
    Ok(converged)
}

/// Digest the values behind every referenced Secret/ConfigMap key (missing → None).
async fn read_referenced_config(
    ctx: &Context,
    namespace: &str,
    keys: &[crate::children::config::ConfigKey],
) -> Result<ReferencedConfig> {
    let mut config = ReferencedConfig::new();
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), namespace);
    for key in keys {
        let digest = match key.kind {
            ConfigKind::Secret => secrets
                .get_opt(&key.name)
                .await
                .map_err(Error::kube(
                    "read",
                    format!("Secret {namespace}/{}", key.name),
                ))?
                .and_then(|s| s.data)
                .and_then(|d| d.get(&key.key).map(|v| value_digest(&v.0))),
            ConfigKind::ConfigMap => config_maps
                .get_opt(&key.name)
                .await
                .map_err(Error::kube(
                    "read",
                    format!("ConfigMap {namespace}/{}", key.name),
                ))?
                .and_then(|c| {
                    c.data
                        .as_ref()
                        .and_then(|d| d.get(&key.key).map(|v| value_digest(v.as_bytes())))
                        .or_else(|| {
                            c.binary_data
                                .as_ref()
                                .and_then(|d| d.get(&key.key).map(|v| value_digest(&v.0)))
                        })
                }),
        };
        config.insert(key.id(), digest);
    }
    Ok(config)
}

/// `status.dependencies`: every declared dependency, ready or not, present or not.
fn dependency_statuses(
    snapshot: &Snapshot,
    service: &Service,
    namespace: &str,
) -> Vec<DependencyStatus> {
    service
        .spec
        .depends_on
        .iter()
        .map(|name| DependencyStatus {
            name: name.clone(),
            ready: snapshot
                .service(namespace, name)
                .is_some_and(|d| is_ready(d.status.as_ref().map(|s| s.conditions.as_slice()))),
        })
        .collect()
}
