//! Previews: keep a preview Environment's copies of its base's Applications and
//! Services in step with the base (`spec.cloneFrom`).
//!
//! A copy carries `paved.dev/cloned-from`. Paved only writes or deletes objects
//! that carry it and that nobody else has taken over (another field manager
//! owning part of `spec`, e.g. `kubectl apply` or Argo CD deploying the pull
//! request's own version): those, like objects created without the label,
//! take precedence and are reported as shadowed.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Context;
use super::apply::{apply_params, body_with_digest, is_subset};
use crate::api::environment::{BaseStatus, CloneFrom};
use crate::api::{Application, Environment, Service};
use crate::children::clone::{is_clone, render_cloned_application, render_cloned_service};
use crate::error::{Error, Result};
use crate::names::{FIELD_MANAGER, labels};
use crate::resolve::Snapshot;

/// The base Environment of a preview, when it exists, is not being deleted
/// and owns its namespace.
pub fn live_base<'a>(snapshot: &'a Snapshot, clone_from: &CloneFrom) -> Option<&'a Environment> {
    let base = snapshot
        .environments
        .iter()
        .map(AsRef::as_ref)
        .find(|e| e.name_any() == clone_from.environment)?;
    let owns_namespace =
        snapshot.owned_namespaces.get(&base.namespace_name()) == Some(&clone_from.environment);
    (base.metadata.deletion_timestamp.is_none() && owns_namespace).then_some(base)
}

/// Copy the base's Applications and Services into the preview's namespace,
/// remove copies whose source is gone, and say what was copied. Without a live
/// base the copies are left exactly as they are (`present: false`).
pub async fn sync_clones(
    ctx: &Context,
    preview: &Environment,
    clone_from: &CloneFrom,
    snapshot: &Snapshot,
) -> Result<BaseStatus> {
    let namespace = preview.namespace_name();
    let mut status = BaseStatus {
        environment: clone_from.environment.clone(),
        ..BaseStatus::default()
    };
    let Some(base) = live_base(snapshot, clone_from) else {
        status.applications = snapshot
            .applications_in(&namespace)
            .filter(|a| is_clone_of(*a, &clone_from.environment))
            .map(|a| a.name_any())
            .collect();
        status.services = snapshot
            .services_in(&namespace)
            .filter(|s| is_clone_of(*s, &clone_from.environment))
            .map(|s| s.name_any())
            .collect();
        sort(&mut status);
        return Ok(status);
    };
    status.present = true;
    let base_namespace = base.namespace_name();

    let applications: Api<Application> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut wanted = BTreeSet::new();
    for source in snapshot
        .applications_in(&base_namespace)
        .filter(|a| a.metadata.deletion_timestamp.is_none())
    {
        let name = source.name_any();
        wanted.insert(name.clone());
        let desired = render_cloned_application(preview, base, source);
        let live = snapshot.application(&namespace, &name);
        if converge_clone(ctx, &applications, &desired, live).await? {
            status.applications.push(name);
        } else {
            status.shadowed.push(format!("Application/{name}"));
        }
    }
    for stale in snapshot
        .applications_in(&namespace)
        .filter(|a| is_clone(*a) && !wanted.contains(&a.name_any()))
    {
        delete_clone(ctx, &applications, stale).await?;
    }

    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let mut wanted = BTreeSet::new();
    for source in snapshot
        .services_in(&base_namespace)
        .filter(|s| s.metadata.deletion_timestamp.is_none())
    {
        let name = source.name_any();
        wanted.insert(name.clone());
        let override_ = clone_from.overrides.iter().find(|o| o.service == name);
        let desired = render_cloned_service(preview, base, source, override_);
        let live = snapshot.service(&namespace, &name);
        if converge_clone(ctx, &services, &desired, live).await? {
            if override_.is_some() {
                status.overridden.push(name.clone());
            }
            status.services.push(name);
        } else {
            status.shadowed.push(format!("Service/{name}"));
        }
    }
    for stale in snapshot
        .services_in(&namespace)
        .filter(|s| is_clone(*s) && !wanted.contains(&s.name_any()))
    {
        delete_clone(ctx, &services, stale).await?;
    }
    sort(&mut status);
    Ok(status)
}

fn is_clone_of<K: Resource>(object: &K, base: &str) -> bool {
    object.labels().get(labels::CLONED_FROM).map(String::as_str) == Some(base)
}

fn sort(status: &mut BaseStatus) {
    for list in [
        &mut status.applications,
        &mut status.services,
        &mut status.overridden,
        &mut status.shadowed,
    ] {
        list.sort();
        list.dedup();
    }
}

/// Make one copy match its source. Returns false when the object of that name
/// is not Paved's copy (created or taken over by someone else): it is left alone.
async fn converge_clone<K>(
    ctx: &Context,
    api: &Api<K>,
    desired: &K,
    live: Option<&K>,
) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = desired.name_any();
    let key = format!(
        "{} {}/{}",
        K::kind(&()),
        desired.namespace().unwrap_or_default(),
        name
    );
    let body = body_with_digest(desired).map_err(|source| Error::Serialization {
        object: key.clone(),
        source,
    })?;
    match live {
        Some(live) if !is_clone(live) => return Ok(false),
        Some(live) => {
            let live_json = serde_json::to_value(live).map_err(|source| Error::Serialization {
                object: key.clone(),
                source,
            })?;
            if is_subset(&body, &live_json) {
                return Ok(true);
            }
            if taken_over(api, &name, &key).await? {
                return Ok(false);
            }
            api.patch(&name, &apply_params(), &Patch::Apply(&body))
                .await
                .map_err(Error::kube("apply", key))?;
        }
        None => {
            // Create, never apply: an apply would merge into an object someone
            // created a moment ago that the store does not show yet.
            let object: K =
                serde_json::from_value(body).map_err(|source| Error::Serialization {
                    object: key.clone(),
                    source,
                })?;
            let params = PostParams {
                field_manager: Some(FIELD_MANAGER.into()),
                ..PostParams::default()
            };
            match api.create(&params, &object).await {
                Ok(_) => {}
                Err(kube::Error::Api(status)) if status.code == 409 => return Ok(false),
                Err(source) => return Err(Error::kube("apply", key)(source)),
            }
        }
    }
    ctx.metrics.wrote(&K::kind(&()));
    Ok(true)
}

/// Whether another field manager owns part of the object's spec: someone
/// (kubectl, Argo CD, `paved rollback`) deployed their own version over the copy.
async fn taken_over<K>(api: &Api<K>, name: &str, key: &str) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    let Some(object) = api
        .get_opt(name)
        .await
        .map_err(Error::kube("read", key.to_string()))?
    else {
        return Ok(false);
    };
    Ok(object.meta().managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() != Some(FIELD_MANAGER)
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.get("f:spec").is_some())
    }))
}

/// Delete a copy whose source is gone, unless someone has taken it over.
async fn delete_clone<K>(ctx: &Context, api: &Api<K>, live: &K) -> Result<()>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let name = live.name_any();
    let key = format!(
        "{} {}/{}",
        K::kind(&()),
        live.namespace().unwrap_or_default(),
        name
    );
    if live.meta().deletion_timestamp.is_some() || taken_over(api, &name, &key).await? {
        return Ok(());
    }
    match api.delete(&name, &DeleteParams::background()).await {
        Ok(_) => ctx.metrics.wrote(&K::kind(&())),
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => return Err(Error::kube("delete", key)(source)),
    }
    Ok(())
}
