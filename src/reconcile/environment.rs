//! Environment reconcile: finalizer → namespace (create, never adopt) → status.
//! On deletion, the namespace is deleted only if this Environment created it.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::apply::{Applied, apply, apply_params};
use super::{Context, now, publish_on_transition};
use crate::api::Environment;
use crate::build::{is_created_by, render_namespace};
use crate::error::{Error, Result};
use crate::names::{ENVIRONMENT_FINALIZER, actions};
use crate::status::environment_status;

const RESYNC: Duration = Duration::from_secs(600);

pub async fn reconcile(environment: Arc<Environment>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_started("Environment");
    ctx.stores.wait_until_ready().await;
    let api: Api<Environment> = Api::all(ctx.client.clone());

    if environment.meta().deletion_timestamp.is_some() {
        return finalize(&ctx, &api, &environment).await;
    }
    if !environment
        .finalizers()
        .iter()
        .any(|f| f == ENVIRONMENT_FINALIZER)
    {
        add_finalizer(&api, &environment).await?;
    }

    let namespace_outcome = ensure_namespace(&ctx, &environment).await;
    if let Err(error) = &namespace_outcome {
        if !error.is_stalled() {
            // Transient: report, then let the error policy retry.
            write_status(&ctx, &api, &environment, Err(error)).await?;
            return Err(namespace_outcome.unwrap_err());
        }
        ctx.metrics.stalled("Environment", error.reason());
    }
    write_status(
        &ctx,
        &api,
        &environment,
        namespace_outcome.as_ref().map(|_| ()),
    )
    .await?;
    Ok(Action::requeue(RESYNC))
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
) -> Result<()> {
    let snapshot = ctx.stores.snapshot();
    let status = environment_status(environment, &snapshot, namespace_outcome, &now());
    let before = environment.status.clone().unwrap_or_default();
    if before == status {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": Environment::api_version(&()),
        "kind": Environment::kind(&()),
        "status": status,
    });
    api.patch_status(
        &environment.name_any(),
        &apply_params(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::kube(
        "status",
        format!("Environment {}", environment.name_any()),
    ))?;
    ctx.metrics.wrote("EnvironmentStatus");
    publish_on_transition(ctx, environment, &before.conditions, &status.conditions).await;
    Ok(())
}

/// Add Paved's finalizer with server-side apply: `metadata.finalizers` is a set, so
/// this needs no resourceVersion and leaves other finalizers alone. (It cannot
/// resurrect a deleted Environment: an apply without `spec` fails validation.)
async fn add_finalizer(api: &Api<Environment>, environment: &Environment) -> Result<()> {
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
    ))?;
    Ok(())
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
            match namespaces
                .delete(&namespace_name, &DeleteParams::background())
                .await
            {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => {
                    return Err(Error::Kube {
                        step: "delete",
                        object: format!("Namespace {namespace_name}"),
                        source,
                    });
                }
            }
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
