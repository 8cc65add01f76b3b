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
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::converge::{Converged, OWN_WRITE_MEMORY, Owner, converge};
use super::{Context, Start, now, prologue, write_status};
use crate::api::Service;
use crate::api::gateway_api::HttpRoute;
use crate::api::service::DependencyStatus;
use crate::children::config::{ConfigKind, missing_config, value_digest};
use crate::children::{
    ReferencedConfig, ServiceChildren, environment_stopped, public_url, referenced_config_keys,
    render_service_children,
};
use crate::error::{Error, Result};
use crate::names::reasons;
use crate::resolve::{Snapshot, is_ready, resolve_service};
use crate::status::{AppliedService, ServiceObservation, service_status};

/// How often a Stalled Service is checked again (no write unless something changed).
const STALLED_RECHECK: Duration = Duration::from_secs(30);

pub async fn reconcile(service: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let (_timer, start) = prologue(&ctx, service);
    let service = match start {
        Start::Reconcile(service) => service,
        // Children go with their owner through garbage collection.
        Start::Deleting(_) | Start::Nothing => return Ok(Action::await_change()),
    };
    let namespace = service
        .namespace()
        .ok_or_else(|| Error::InvalidObject(service.name_any()))?;
    let snapshot = ctx.stores.snapshot_for(&service);

    let mut outcome = match resolve_service(&snapshot, &service) {
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
                missing_config: missing_config(&resolved, &config),
                route_expected: children.http_route.is_some(),
            };
            apply_children(&ctx, &service, &namespace, children)
                .await
                .map(|written| (applied, written))
        }
        Err(error) => Err(error),
    };

    let uid = service.metadata.uid.clone().unwrap_or_default();
    match &mut outcome {
        Err(error) if error.is_refused() => {
            let wait = super::back_off_refused(&ctx, "Service", service.as_ref(), error);
            error.set_retry_in(wait);
        }
        Err(_) => {}
        Ok(_) => ctx.backoff.succeeded(&uid),
    }

    let dependencies = dependency_statuses(&snapshot, &service, &namespace);
    let from_store = ctx
        .stores
        .deployments
        .get(&ObjectRef::new(&service.name_any()).within(&namespace))
        .and_then(|slim| slim.object());
    let route_in_store = ctx
        .stores
        .http_routes
        .get(&ObjectRef::new(&service.name_any()).within(&namespace))
        .and_then(|slim| slim.object());
    let observation = match &outcome {
        Ok((applied, written)) => ServiceObservation {
            outcome: Ok(applied.clone()),
            deployment: written.deployment.as_ref().or(from_store.as_ref()),
            dependencies,
            route: written.http_route.as_ref().or(route_in_store.as_ref()),
        },
        Err(error) => ServiceObservation {
            outcome: Err(error),
            deployment: from_store.as_ref(),
            dependencies,
            route: None,
        },
    };
    let at = now();
    let mut status = service_status(&service, observation, &at);
    let environment = snapshot.environment_of(&namespace, "Service").ok();
    let (usage, shown) = ctx.usage.shown(&service, environment);
    status.usage = usage;
    let scorecard =
        crate::insights::service_scorecard(&service, environment, shown.as_ref(), &ctx.insights);
    status.scorecard = Some(scorecard);
    status.cost = ctx.prices.as_ref().map(|prices| {
        let mut cost = crate::cost::service_cost(&service, environment, prices);
        crate::cost::add_usage(&mut cost, status.usage.as_ref(), prices);
        cost
    });
    let before = service.status.clone().unwrap_or_default();
    let delivery = crate::delivery::service_delivery(&service, &before, &status, &at);
    status.delivery = Some(delivery);
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = write_status(&ctx, &api, service.as_ref(), &before, &status).await?;

    match outcome {
        Ok((_, children)) => {
            let after = written.requeue(ctx.resync_of(service.as_ref()));
            Ok(Action::requeue(
                children.look_again.map_or(after, |again| again.min(after)),
            ))
        }
        Err(Error::Refused {
            retry_in: Some(wait),
            ..
        }) => {
            ctx.metrics.stalled("Service", reasons::WRITE_REFUSED);
            Ok(Action::requeue(written.requeue(wait)))
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

/// Converge every child at once: apply the desired ones, delete those that must
/// no longer exist.
async fn apply_children(
    ctx: &Context,
    service: &Service,
    namespace: &str,
    children: ServiceChildren,
) -> Result<ChildrenWritten> {
    // Every child, by name: a new one does not compile until it is converged here.
    let ServiceChildren {
        deployment,
        core_service,
        ingress,
        http_route,
        autoscaler,
        disruption_budget,
        config_hash: _,
    } = children;
    let name = service.name_any();
    let owner = Owner::of(service);
    let stores = &ctx.stores;
    // Without the Gateway API CRDs no route can exist, and none can be written:
    // everything else is applied, and a Service that needs one says so.
    let gateway_api = *ctx.gateway_api.borrow();
    let route = async {
        if !gateway_api {
            return Ok(Converged {
                written: None,
                look_again: false,
            });
        }
        converge(
            ctx,
            &owner,
            namespace,
            &name,
            http_route.as_ref(),
            stores
                .http_routes
                .get(&ObjectRef::new(&name).within(namespace)),
        )
        .await
    };
    let (deployment, core_service, ingress, http_route_converged, autoscaler, disruption_budget) =
        futures::try_join!(
            converge(
                ctx,
                &owner,
                namespace,
                &name,
                Some(&deployment),
                stores
                    .deployments
                    .get(&ObjectRef::new(&name).within(namespace))
            ),
            converge(
                ctx,
                &owner,
                namespace,
                &name,
                core_service.as_ref(),
                stores
                    .core_services
                    .get(&ObjectRef::new(&name).within(namespace))
            ),
            converge(
                ctx,
                &owner,
                namespace,
                &name,
                ingress.as_ref(),
                stores
                    .ingresses
                    .get(&ObjectRef::new(&name).within(namespace))
            ),
            route,
            converge(
                ctx,
                &owner,
                namespace,
                &name,
                autoscaler.as_ref(),
                stores
                    .autoscalers
                    .get(&ObjectRef::new(&name).within(namespace))
            ),
            converge(
                ctx,
                &owner,
                namespace,
                &name,
                disruption_budget.as_ref(),
                stores
                    .disruption_budgets
                    .get(&ObjectRef::new(&name).within(namespace))
            ),
        )?;
    let look_again = [
        deployment.look_again,
        core_service.look_again,
        ingress.look_again,
        http_route_converged.look_again,
        autoscaler.look_again,
        disruption_budget.look_again,
    ];
    if http_route.is_some() && !gateway_api {
        return Err(Error::GatewayApiMissing {
            environment: service_environment(ctx, namespace),
        });
    }
    Ok(ChildrenWritten {
        deployment: deployment.written.and_then(|slim| slim.object()),
        http_route: http_route_converged.written.and_then(|slim| slim.object()),
        look_again: look_again.contains(&true).then_some(OWN_WRITE_MEMORY),
    })
}

/// Name of the Environment that owns `namespace`, for messages.
fn service_environment(ctx: &Context, namespace: &str) -> String {
    ctx.stores
        .namespace_owner(&ctx.stores.environments.state(), namespace)
        .unwrap_or_else(|| namespace.to_string())
}

/// What [`apply_children`] did.
struct ChildrenWritten {
    /// The Deployment, when it was written (fresher than the store).
    deployment: Option<Deployment>,
    /// The HTTPRoute, when it was written.
    http_route: Option<HttpRoute>,
    /// Set when a child missing from the store was taken as Paved's own recent
    /// write (look again once that memory runs out, in case it was deleted since),
    /// or a child's name is still held by an earlier owner's child.
    look_again: Option<Duration>,
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
