//! Previews: keep a preview Environment's copies of its base's Applications and
//! Services in step with the base (`spec.cloneFrom`).
//!
//! A copy carries `paved.dev/cloned-from` and a controller reference to the
//! preview. Copies go through the one [`converge`], as every child does: Paved
//! only writes or deletes copies the preview controls and that nobody else has
//! taken over (another field manager owning part of `spec`, e.g. `kubectl apply`
//! or Argo CD deploying the pull request's own version). Those, like objects
//! created by hand, take precedence and are reported as shadowed.

use std::collections::BTreeSet;

use std::sync::Arc;

use kube::{Resource, ResourceExt};

use super::Context;
use super::converge::{Child, Owner, converge};
use crate::api::Environment;
use crate::api::environment::{BaseStatus, CloneFrom};
use crate::children::clone::{is_clone, render_cloned_application, render_cloned_service};
use crate::error::{Error, Result};
use crate::names::labels;
use crate::resolve::Snapshot;
use crate::slim::Slim;

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
/// remove copies whose source is gone, and say what was copied (and whether to
/// look again soon: see [`crate::reconcile::converge::Converged`]). Without a
/// live base the copies are left exactly as they are (`present: false`).
pub async fn sync_clones(
    ctx: &Context,
    preview: &Environment,
    clone_from: &CloneFrom,
    snapshot: &Snapshot,
) -> Result<(BaseStatus, bool)> {
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
        return Ok((status, false));
    };
    status.present = true;
    let base_namespace = base.namespace_name();

    let owner = Owner::of_copies(preview);
    let mut look_again = false;
    let mut wanted = BTreeSet::new();
    for source in snapshot
        .applications_in(&base_namespace)
        .filter(|a| a.metadata.deletion_timestamp.is_none())
    {
        let name = source.name_any();
        wanted.insert(name.clone());
        let desired = render_cloned_application(preview, base, source);
        let live = snapshot.application(&namespace, &name);
        if converge_copy(ctx, &owner, &namespace, &desired, live, &mut look_again).await? {
            status.applications.push(name);
        } else {
            status.shadowed.push(format!("Application/{name}"));
        }
    }
    for stale in snapshot
        .applications_in(&namespace)
        .filter(|a| is_clone(*a) && !wanted.contains(&a.name_any()))
    {
        remove_copy(ctx, &owner, &namespace, stale).await?;
    }

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
        if converge_copy(ctx, &owner, &namespace, &desired, live, &mut look_again).await? {
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
        remove_copy(ctx, &owner, &namespace, stale).await?;
    }
    sort(&mut status);
    Ok((status, look_again))
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

/// Make one copy match its source. False when the object of that name is not
/// Paved's copy (created or taken over by someone else): it is left alone.
async fn converge_copy<K: Child>(
    ctx: &Context,
    owner: &Owner,
    namespace: &str,
    desired: &K,
    live: Option<&K>,
    look_again: &mut bool,
) -> Result<bool> {
    let name = desired.name_any();
    let live = live.map(|live| Arc::new(Slim::whole(live)));
    match converge(ctx, owner, namespace, &name, Some(desired), live).await {
        Ok(converged) => {
            *look_again |= converged.look_again;
            Ok(true)
        }
        Err(Error::ChildConflict { .. }) => Ok(false),
        Err(error) => Err(error),
    }
}

/// Delete a copy whose source is gone, unless someone has taken it over.
async fn remove_copy<K: Child>(
    ctx: &Context,
    owner: &Owner,
    namespace: &str,
    live: &K,
) -> Result<()> {
    let name = live.name_any();
    converge::<K>(
        ctx,
        owner,
        namespace,
        &name,
        None,
        Some(Arc::new(Slim::whole(live))),
    )
    .await?;
    Ok(())
}
