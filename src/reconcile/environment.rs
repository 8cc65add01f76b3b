//! Environment reconcile: finalizer → expiry → namespace (create, never adopt)
//! → access and guardrails (RoleBindings, ResourceQuota, LimitRange,
//! NetworkPolicy) → preview copies (cloneFrom) → status (including the
//! lifecycle: expiresAt, stopped, next schedule transition) → requeue at the
//! next moment the lifecycle changes by itself.
//! On deletion, the namespace is deleted only if this Environment created it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::converge::{
    Applied, OWN_WRITE_MEMORY, ObjectKey, Owner, apply, apply_params, converge, delete,
};
use super::{Context, Start, StatusWrite, now, preview, prologue};
use crate::api::Environment;
use crate::api::environment::QuotaUsage;
use crate::children::guardrails::QUOTA_NAME;
use crate::children::{
    EnvironmentChildren, Named, is_created_by, render_environment_children, render_namespace,
};
use crate::error::{Error, Result};
use crate::lifecycle::{LifecycleState, lifecycle_state, rfc3339};
use crate::names::{ENVIRONMENT_FINALIZER, actions, reasons};
use crate::status::{EnvironmentObservation, environment_status_observed};

pub async fn reconcile(environment: Arc<Environment>, ctx: Arc<Context>) -> Result<Action> {
    let (_timer, start) = prologue(&ctx, environment);
    let api: Api<Environment> = Api::all(ctx.client.clone());
    let environment = match start {
        Start::Reconcile(environment) => environment,
        Start::Deleting(environment) => return finalize(&ctx, &api, &environment).await,
        Start::Nothing => return Ok(Action::await_change()),
    };
    let environment = if environment
        .finalizers()
        .iter()
        .any(|f| f == ENVIRONMENT_FINALIZER)
    {
        environment
    } else {
        // The API server's copy after the write: the status write below is
        // conditional on its resourceVersion.
        Arc::new(add_finalizer(&api, &environment).await?)
    };

    // Computed from the object and the clock only, so a restart changes nothing.
    let clock = jiff::Timestamp::now();
    let (lifecycle, invalid_schedule) = lifecycle_state(&environment, clock);
    if lifecycle.expired(clock) {
        return expire(&ctx, &api, &environment, &lifecycle).await;
    }
    let mut observation = EnvironmentObservation {
        lifecycle: lifecycle.clone(),
        ..EnvironmentObservation::default()
    };

    let mut namespace_outcome = ensure_namespace(&ctx, &environment).await;
    let namespace = environment.namespace_name();
    let mut look_again = false;
    if namespace_outcome.is_ok() && !ctx.stores.namespace_terminating(&namespace) {
        namespace_outcome = apply_children(&ctx, &environment)
            .await
            .map(|again| look_again = again);
    }
    let uid = environment.metadata.uid.clone().unwrap_or_default();
    let mut retry_in = None;
    match &mut namespace_outcome {
        Err(error) if error.is_refused() => {
            let wait = super::back_off_refused(&ctx, "Environment", environment.as_ref(), error);
            error.set_retry_in(wait);
            retry_in = Some(wait);
        }
        Err(_) => {}
        Ok(()) => ctx.backoff.succeeded(&uid),
    }
    if let Err(error) = &namespace_outcome {
        if !error.is_stalled() {
            // Transient: report, then let the error policy retry.
            write_status(&ctx, &api, &environment, Err(error), observation).await?;
            return Err(namespace_outcome.unwrap_err());
        }
        ctx.metrics.stalled("Environment", error.reason());
    }

    let snapshot_environments = ctx.stores.environments.state();
    let domain = crate::domain::check_domain(
        snapshot_environments.iter().map(AsRef::as_ref),
        &environment,
    );
    observation.holds_domain = domain.is_ok();
    let mut problem = domain
        .err()
        .or(invalid_schedule.map(|invalid| Error::InvalidSchedule(invalid.0)));
    if let (Ok(()), Some(clone_from)) = (&namespace_outcome, &environment.spec.clone_from) {
        let snapshot = ctx.stores.snapshot();
        if let Some(cycle) = crate::resolve::clone_cycle(&snapshot, &environment) {
            // A preview in a cloneFrom cycle copies nothing: it would copy its own copies.
            problem = Some(Error::CloneCycle { cycle });
        } else {
            let (base, copies_look_again) =
                preview::sync_clones(&ctx, &environment, clone_from, &snapshot).await?;
            look_again |= copies_look_again;
            if !base.present {
                problem.get_or_insert(Error::BaseMissing {
                    base: clone_from.environment.clone(),
                });
            }
            observation.base = Some(base);
        }
    }
    if let Some(problem) = &problem {
        ctx.metrics.stalled("Environment", problem.reason());
    }
    observation.quota = quota_usage(&ctx, &environment);
    observation.problem = problem.as_ref();
    let written = write_status(
        &ctx,
        &api,
        &environment,
        namespace_outcome.as_ref().map(|_| ()),
        observation,
    )
    .await?;
    let mut next = written.requeue(until_next_change(
        &lifecycle,
        clock,
        ctx.resync_of(environment.as_ref()),
    ));
    if let Some(wait) = retry_in {
        next = next.min(wait);
    }
    if look_again {
        next = next.min(OWN_WRITE_MEMORY);
    }
    Ok(Action::requeue(next))
}

/// Requeue at the next expiry or schedule flip (a second late, so it has
/// passed), or after `resync`, whichever comes first.
fn until_next_change(
    lifecycle: &LifecycleState,
    now: jiff::Timestamp,
    resync: Duration,
) -> Duration {
    lifecycle
        .next_event()
        .and_then(|at| at.duration_since(now).try_into().ok())
        .map(|wait: Duration| (wait + Duration::from_secs(1)).min(resync))
        .unwrap_or(resync)
}

/// The ttl has passed: say so with an Event, then delete the Environment (the
/// finalizer then deletes its namespace). Guarded by UID, so a new Environment
/// of the same name is never deleted for an old one's expiry.
async fn expire(
    ctx: &Context,
    api: &Api<Environment>,
    environment: &Environment,
    lifecycle: &LifecycleState,
) -> Result<Action> {
    let name = environment.name_any();
    let ttl = environment
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.ttl.clone())
        .unwrap_or_default();
    let expired_at = lifecycle.expires_at.map(rfc3339).unwrap_or_default();
    let event = Event {
        type_: EventType::Normal,
        reason: reasons::EXPIRED.into(),
        note: Some(format!(
            "ttl {ttl} passed at {expired_at}: deleting Environment {name} and its namespace"
        )),
        action: actions::EXPIRE.into(),
        secondary: None,
    };
    if let Err(error) = ctx
        .recorder
        .publish(&event, &environment.object_ref(&()))
        .await
    {
        tracing::warn!(%error, "could not publish event");
    }
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: environment.metadata.uid.clone(),
            resource_version: None,
        }),
        ..DeleteParams::background()
    };
    match api.delete(&name, &params).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
        Err(source) => {
            return Err(Error::Kube {
                step: "delete",
                object: format!("Environment {name}"),
                source,
            });
        }
    }
    tracing::info!(environment = %name, %ttl, "expired; deleted");
    ctx.metrics.wrote("Environment");
    Ok(Action::await_change())
}

/// `status.quota`: the ResourceQuota's hard limits and use, as it reports them.
fn quota_usage(ctx: &Context, environment: &Environment) -> Option<QuotaUsage> {
    environment.spec.guardrails.as_ref()?.quota.as_ref()?;
    let quota = ctx
        .stores
        .resource_quotas
        .get(&ObjectRef::new(QUOTA_NAME).within(&environment.namespace_name()))?
        .object()?;
    let status = quota.status.as_ref()?;
    let strings = |map: &Option<std::collections::BTreeMap<String, Quantity>>| {
        map.iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.0.clone()))
            .collect()
    };
    Some(QuotaUsage {
        hard: strings(&status.hard),
        used: strings(&status.used),
    })
}

/// RoleBindings (access) and ResourceQuota, LimitRange, NetworkPolicy
/// (guardrails), each converged: applied when wanted, deleted (if the
/// Environment controls it) when not. True: look again soon (see
/// [`super::converge::Converged`]).
async fn apply_children(ctx: &Context, environment: &Environment) -> Result<bool> {
    let namespace = environment.namespace_name();
    let owner = Owner::of(environment);
    // Every child, by name: a new one does not compile until it is converged here.
    let EnvironmentChildren {
        role_bindings,
        resource_quota,
        limit_range,
        network_policy,
    } = render_environment_children(environment, &ctx.ingress_namespace_labels);
    let stores = &ctx.stores;
    let mut look_again = false;
    for Named { name, object } in role_bindings {
        let live = stores.role_bindings.get(&at(&name, &namespace));
        look_again |= converge(ctx, &owner, &namespace, &name, object.as_ref(), live)
            .await?
            .look_again;
    }
    let Named { name, object } = resource_quota;
    let live = stores.resource_quotas.get(&at(&name, &namespace));
    look_again |= converge(ctx, &owner, &namespace, &name, object.as_ref(), live)
        .await?
        .look_again;
    let Named { name, object } = limit_range;
    let live = stores.limit_ranges.get(&at(&name, &namespace));
    look_again |= converge(ctx, &owner, &namespace, &name, object.as_ref(), live)
        .await?
        .look_again;
    let Named { name, object } = network_policy;
    let live = stores.network_policies.get(&at(&name, &namespace));
    look_again |= converge(ctx, &owner, &namespace, &name, object.as_ref(), live)
        .await?
        .look_again;
    Ok(look_again)
}

fn at<K: Resource<DynamicType = ()>>(name: &str, namespace: &str) -> ObjectRef<K> {
    ObjectRef::new(name).within(namespace)
}

/// Create (or repair) the namespace, refusing one this Environment did not create.
async fn ensure_namespace(ctx: &Context, environment: &Environment) -> Result<()> {
    let namespace_name = environment.namespace_name();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    // The store holds only labelled namespaces; ask the apiserver when it has none,
    // so a foreign namespace of the same name is seen.
    let live = match ctx.stores.namespaces.get(&ObjectRef::new(&namespace_name)) {
        Some(ns) => Some(ns),
        None => namespaces
            .get_opt(&namespace_name)
            .await
            .map_err(Error::kube("read", format!("Namespace {namespace_name}")))?
            .map(Arc::new),
    };
    if let Some(live) = &live {
        if !is_created_by(live, environment) {
            return Err(Error::NamespaceConflict {
                environment: environment.name_any(),
                namespace: namespace_name,
            });
        }
        if live.meta().deletion_timestamp.is_some() {
            // Still terminating from an earlier life: wait for it to go.
            return Ok(());
        }
    }
    if let Applied::Written(_) =
        apply(&namespaces, &render_namespace(environment), live.as_deref()).await?
    {
        ctx.metrics.wrote("Namespace");
    }
    Ok(())
}

async fn write_status(
    ctx: &Context,
    api: &Api<Environment>,
    environment: &Environment,
    namespace_outcome: Result<(), &Error>,
    observation: EnvironmentObservation<'_>,
) -> Result<StatusWrite> {
    // All its status reads is in its own namespace.
    let snapshot = ctx.stores.snapshot_in(&environment.namespace_name());
    let mut status = environment_status_observed(
        environment,
        &snapshot,
        namespace_outcome,
        observation,
        &now(),
    );
    let before = environment.status.clone().unwrap_or_default();
    // Progress only, and written too recently: the rest would be computed for nothing.
    if let Some(wait) = super::status_writer::deferred(ctx, environment, &before, &status) {
        return Ok(StatusWrite::Deferred(wait));
    }
    // Only the namespace this Environment really owns is scored.
    if let Some(namespace) = status.namespace.clone() {
        let quota = |key: &str| {
            status
                .quota
                .as_ref()
                .and_then(|q| q.hard.get(key))
                .and_then(|v| crate::children::guardrails::quantity_value(v))
        };
        let quota = crate::usage::Quota {
            cpu: quota("requests.cpu"),
            memory: quota("requests.memory"),
        };
        status.usage = ctx
            .usage
            .sum(
                &namespace,
                snapshot
                    .services_in(&namespace)
                    .map(|s| s.metadata.name.as_deref().unwrap_or_default()),
                quota,
            )
            // Before the first poll: what status says already.
            .or_else(|| environment.status.as_ref().and_then(|s| s.usage.clone()));
        let scorecard = crate::insights::environment_scorecard(
            environment,
            &snapshot,
            Some(&ctx.usage),
            &ctx.insights,
        );
        status.scorecard = Some(scorecard);
        status.cost = ctx.prices.as_ref().map(|prices| {
            let mut cost = crate::cost::environment_cost(environment, &snapshot, prices);
            crate::cost::add_usage(&mut cost, status.usage.as_ref(), prices);
            cost
        });
        status.delivery = crate::delivery::services_delivery(snapshot.services_in(&namespace));
    }
    super::write_status(ctx, api, environment, &before, &status).await
}

/// Add Paved's finalizer with server-side apply: `metadata.finalizers` is a set, so
/// this needs no resourceVersion and leaves other finalizers alone. (It cannot
/// resurrect a deleted Environment: an apply without `spec` fails validation.)
/// Returns the Environment as the API server returned it.
async fn add_finalizer(api: &Api<Environment>, environment: &Environment) -> Result<Environment> {
    let patch = json!({
        "apiVersion": Environment::api_version(&()),
        "kind": Environment::kind(&()),
        "metadata": {"name": environment.name_any(), "finalizers": [ENVIRONMENT_FINALIZER]},
    });
    api.patch(
        &environment.name_any(),
        &apply_params(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(
        "finalizer",
        format!("Environment {}", environment.name_any()),
    ))
}

/// Drop Paved's finalizer, guarded by resourceVersion so a concurrent change of the
/// list is never overwritten (a conflict is retried).
async fn remove_finalizer(api: &Api<Environment>, environment: &Environment) -> Result<()> {
    let finalizers: Vec<&String> = environment
        .finalizers()
        .iter()
        .filter(|f| *f != ENVIRONMENT_FINALIZER)
        .collect();
    let patch = json!({"metadata": {"finalizers": finalizers, "resourceVersion": environment.resource_version()}});
    match api
        .patch(
            &environment.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Kube {
            step: "finalizer",
            object: format!("Environment {}", environment.name_any()),
            source,
        }),
    }
}

/// Deletion: delete the namespace if (and only if) this Environment created it, then let go.
async fn finalize(
    ctx: &Context,
    api: &Api<Environment>,
    environment: &Environment,
) -> Result<Action> {
    if !environment
        .finalizers()
        .iter()
        .any(|f| f == ENVIRONMENT_FINALIZER)
    {
        return Ok(Action::await_change());
    }
    let namespace_name = environment.namespace_name();
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    let live = namespaces
        .get_opt(&namespace_name)
        .await
        .map_err(Error::kube("read", format!("Namespace {namespace_name}")))?;
    if let Some(live) = live.filter(|ns| is_created_by(ns, environment)) {
        if live.meta().deletion_timestamp.is_none() {
            delete(
                &namespaces,
                &ObjectKey::new::<Namespace>(None, &namespace_name),
            )
            .await?;
            ctx.metrics.wrote("Namespace");
            let event = Event {
                type_: EventType::Normal,
                reason: "NamespaceDeleted".into(),
                note: Some(format!(
                    "deleted namespace {namespace_name}, which this Environment created"
                )),
                action: actions::DELETE_NAMESPACE.into(),
                secondary: None,
            };
            let _ = ctx
                .recorder
                .publish(&event, &environment.object_ref(&()))
                .await;
        }
    }
    remove_finalizer(api, environment).await?;
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requeue_is_just_after_the_next_expiry_or_flip_and_never_later_than_the_resync() {
        let now: jiff::Timestamp = "2026-11-23T12:00:00Z".parse().unwrap();
        let soon = LifecycleState {
            expires_at: Some("2026-11-23T12:00:20Z".parse().unwrap()),
            next_transition: Some("2026-11-23T19:00:00Z".parse().unwrap()),
            ..LifecycleState::default()
        };
        let resync = crate::reconcile::DEFAULT_RESYNC;
        assert_eq!(
            until_next_change(&soon, now, resync),
            Duration::from_secs(21)
        );
        assert_eq!(
            until_next_change(&soon, now, Duration::from_secs(10)),
            Duration::from_secs(10),
            "a resync shorter than the expiry comes first"
        );
        let far = LifecycleState {
            next_transition: Some("2026-12-31T23:00:00Z".parse().unwrap()),
            ..LifecycleState::default()
        };
        assert_eq!(until_next_change(&far, now, resync), resync);
        assert_eq!(
            until_next_change(&LifecycleState::default(), now, Duration::from_secs(120)),
            Duration::from_secs(120)
        );
    }
}
