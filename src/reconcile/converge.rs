//! Converge: the one way Paved writes a child — a Deployment, core Service,
//! Ingress, HPA, PDB, an Environment's RoleBindings and guardrails, or a preview's
//! copy of a Service or Application.
//!
//! ```text
//! converge(owner, desired, live)
//!   desired, live matches      → nothing sent
//!   desired, name not Paved's  → no write: ChildConflict (Stalled)
//!   desired                    → server-side apply as `paved` (forced)
//!   not desired, Paved's       → delete (a 404 is fine)
//!   not desired, not Paved's   → left alone
//! ```
//!
//! Paved never modifies or deletes an object it did not create: before any write
//! to a name it asks who controls what is there ([`claim`]). Its own children carry
//! a controller ownerReference to their owner; anything else (made by hand, by
//! another tool, or by another owner) is left byte-for-byte as it is.
//!
//! Every applied object carries `paved.dev/applied-digest`, a digest of what Paved
//! applied. A child is re-applied when what Paved wants now has another digest,
//! or when the live object no longer contains what Paved wants (drift: deleted or
//! edited by hand). Otherwise no request is sent at all, so an unchanged world
//! costs no writes, also right after a restart or a change of leader.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::{self, Debug};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::Context;
use crate::error::{Error, Result};
use crate::names::{FIELD_MANAGER, annotations};
use crate::slim::Slim;

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

/// `Kind namespace/name` (or `Kind name` for a cluster-scoped object): the key of
/// the own-write memory and the name of an object in messages.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ObjectKey {
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl ObjectKey {
    pub fn new<K: Resource<DynamicType = ()>>(namespace: Option<&str>, name: &str) -> Self {
        ObjectKey {
            kind: K::kind(&()).into_owned(),
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        }
    }

    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Self::new::<K>(object.namespace().as_deref(), &object.name_any())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(namespace) => write!(f, "{} {namespace}/{}", self.kind, self.name),
            None => write!(f, "{} {}", self.kind, self.name),
        }
    }
}

/// The body Paved applies: `desired` plus the digest annotation of its content.
pub fn body_with_digest<K: Serialize>(desired: &K) -> serde_json::Result<Value> {
    let mut body = serde_json::to_value(desired)?;
    let digest = Sha256::digest(body.to_string().as_bytes());
    let digest: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    if let Some(metadata) = body.get_mut("metadata").and_then(Value::as_object_mut) {
        let annotations_map = metadata
            .entry("annotations")
            .or_insert_with(|| Value::Object(Default::default()));
        if let Some(map) = annotations_map.as_object_mut() {
            map.insert(
                annotations::APPLIED_DIGEST.to_string(),
                Value::String(digest),
            );
        }
    }
    Ok(body)
}

/// Whether every field of `desired` is present with the same value in `live`.
/// Objects may have extra fields (defaults, other managers); lists must have the
/// same length and match element by element.
pub fn is_subset(desired: &Value, live: &Value) -> bool {
    match (desired, live) {
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(k, v)| match have.get(k) {
            Some(h) => is_subset(v, h),
            None => v.is_null(),
        }),
        (Value::Array(want), Value::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| is_subset(w, h))
        }
        (want, have) => want == have,
    }
}

/// Outcome of [`apply`].
pub enum Applied<K> {
    /// Sent; the object as the apiserver returned it.
    Written(K),
    /// Nothing to change; the live object from the store.
    Unchanged,
}

/// Server-side apply `desired` unless `live` already matches what was last applied.
/// No ownership check: for objects whose owner is checked by the caller (the
/// namespace of an Environment); children go through [`converge`].
pub async fn apply<K>(api: &Api<K>, desired: &K, live: Option<&K>) -> Result<Applied<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let key = ObjectKey::of(desired);
    let body = digest_body(desired, &key)?;
    if let Some(live) = live {
        if matches(&body, live, &key)? {
            return Ok(Applied::Unchanged);
        }
    }
    write(api, &body, &key).await.map(Applied::Written)
}

fn digest_body<K: Serialize>(desired: &K, key: &ObjectKey) -> Result<Value> {
    body_with_digest(desired).map_err(|source| Error::Serialization {
        object: key.to_string(),
        source,
    })
}

fn matches<K: Serialize>(body: &Value, live: &K, key: &ObjectKey) -> Result<bool> {
    let live = serde_json::to_value(live).map_err(|source| Error::Serialization {
        object: key.to_string(),
        source,
    })?;
    Ok(is_subset(body, &live))
}

async fn write<K>(api: &Api<K>, body: &Value, key: &ObjectKey) -> Result<K>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    tracing::debug!(object = %key, "applying");
    api.patch(&key.name, &apply_params(), &Patch::Apply(body))
        .await
        .map_err(Error::kube("apply", key.to_string()))
}

/// The Paved object whose children [`converge`] writes.
#[derive(Clone, Debug)]
pub struct Owner {
    pub kind: String,
    pub name: String,
    pub uid: String,
    /// Preview copies: a copy that another field manager has taken over (owns part
    /// of its `spec`: kubectl, Argo CD, `paved rollback`) is theirs from then on.
    pub yields_to_other_managers: bool,
}

impl Owner {
    pub fn of<K: Resource<DynamicType = ()>>(object: &K) -> Self {
        Owner {
            kind: K::kind(&()).into_owned(),
            name: object.name_any(),
            uid: object.meta().uid.clone().unwrap_or_default(),
            yields_to_other_managers: false,
        }
    }

    /// The owner of preview copies: [`Self::of`] the preview, yielding to other managers.
    pub fn of_copies<K: Resource<DynamicType = ()>>(preview: &K) -> Self {
        Owner {
            yields_to_other_managers: true,
            ..Self::of(preview)
        }
    }
}

/// Who controls the object at a child's name, as far as `owner` is concerned.
#[derive(Debug, PartialEq, Eq)]
pub enum Claim {
    /// Nothing there.
    Free,
    /// The owner's own child.
    Ours,
    /// Left by an earlier object of the owner's kind and name (deleted and made
    /// again): garbage collection is about to delete it. Wait, write nothing.
    Leaving,
    /// Somebody else's: never written, never deleted. Says whose.
    Foreign(String),
}

/// Who controls `current` (the metadata of the object at the child's name), for `owner`.
pub fn claim(owner: &Owner, current: Option<&ObjectMeta>) -> Claim {
    let Some(current) = current else {
        return Claim::Free;
    };
    let controller = current
        .owner_references
        .iter()
        .flatten()
        .find(|r| r.controller == Some(true));
    match controller {
        Some(r) if r.uid == owner.uid => {
            if owner.yields_to_other_managers && taken_over(current) {
                Claim::Foreign("taken over by another field manager".into())
            } else {
                Claim::Ours
            }
        }
        Some(r) if r.kind == owner.kind && r.name == owner.name => Claim::Leaving,
        Some(r) => Claim::Foreign(format!("controlled by {} {}", r.kind, r.name)),
        None => Claim::Foreign("not created by Paved".into()),
    }
}

/// Whether another field manager owns part of the object's spec.
fn taken_over(meta: &ObjectMeta) -> bool {
    meta.managed_fields.iter().flatten().any(|entry| {
        entry.manager.as_deref() != Some(FIELD_MANAGER)
            && entry.subresource.as_deref().unwrap_or_default().is_empty()
            && entry
                .fields_v1
                .as_ref()
                .is_some_and(|fields| fields.0.get("f:spec").is_some())
    })
}

/// What [`converge`] writes: any namespaced object of a known kind.
pub trait Child:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Serialize
    + DeserializeOwned
    + Clone
    + Debug
    + Send
    + Sync
    + 'static
{
}

impl<K> Child for K where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Serialize
        + DeserializeOwned
        + Clone
        + Debug
        + Send
        + Sync
        + 'static
{
}

/// What [`converge`] did to one child.
pub struct Converged<K> {
    /// The object as the API server returned it, when it was written, in the
    /// stores' form.
    pub written: Option<Slim<K>>,
    /// Set when the reconcile should look again soon: a child missing from the
    /// store was taken as Paved's own recent write (it may have been deleted
    /// since), or the name is held by a child of an earlier owner of the same
    /// name, about to be garbage-collected.
    pub look_again: bool,
}

/// Make one child match: apply `desired`, or delete the child when nothing is
/// desired, never touching an object `owner` does not control (a
/// [`Error::ChildConflict`] when Paved wants to write it). `in_store` is the
/// store's copy of the child (or of whatever holds its name), slim or whole.
pub async fn converge<K: Child>(
    ctx: &Context,
    owner: &Owner,
    namespace: &str,
    name: &str,
    desired: Option<&K>,
    in_store: Option<Arc<Slim<K>>>,
) -> Result<Converged<K>> {
    let api: Api<K> = Api::namespaced(ctx.client.clone(), namespace);
    let key = ObjectKey::new::<K>(Some(namespace), name);
    let (live, stood_in) = ctx.own_writes.live(&key, in_store);
    let mut converged = Converged {
        written: None,
        look_again: stood_in,
    };
    let Some(desired) = desired else {
        ctx.own_writes.forget(&key);
        let Some(live) = live.filter(|l| l.meta().deletion_timestamp.is_none()) else {
            return Ok(converged);
        };
        if claim(
            owner,
            current(&api, &key, owner, Some(live)).await?.as_ref(),
        ) == Claim::Ours
            && delete(&api, &key).await?
        {
            ctx.metrics.wrote(&key.kind);
        }
        return Ok(converged);
    };
    let body = digest_body(desired, &key)?;
    if let Some(live) = &live {
        if is_subset(&body, &live.value()) {
            return Ok(converged);
        }
    }
    // Before any write: who controls what is at this name?
    match claim(owner, current(&api, &key, owner, live).await?.as_ref()) {
        Claim::Free | Claim::Ours => {}
        Claim::Leaving => {
            converged.look_again = true;
            return Ok(converged);
        }
        Claim::Foreign(holder) => {
            return Err(Error::ChildConflict {
                object: key.to_string(),
                holder,
                owner_kind: owner.kind.clone(),
            });
        }
    }
    // The answer is read straight into what the stores keep (as a watch event
    // of the child would be), never as a whole `K`.
    let slim_api: Api<Slim<K>> = Api::namespaced(ctx.client.clone(), namespace);
    let written = write(&slim_api, &body, &key).await?;
    ctx.metrics.wrote(&key.kind);
    ctx.own_writes.remember(key, written.clone());
    converged.written = Some(written);
    Ok(converged)
}

/// The metadata of the object at the child's name, to check who controls it. The
/// store only holds objects labelled as Paved's and keeps no managedFields, so the
/// API server is asked when the store has nothing (the first write to a name: a
/// hand-made object there is not in the store) and for copies (whose check reads
/// managedFields).
async fn current<K>(
    api: &Api<K>,
    key: &ObjectKey,
    owner: &Owner,
    live: Option<Arc<Slim<K>>>,
) -> Result<Option<ObjectMeta>>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    match live {
        Some(live) if !owner.yields_to_other_managers => Ok(Some(live.meta().clone())),
        // Its metadata only (all the claim reads): the API server sends no spec
        // or status, and nothing is decoded for nothing.
        _ => Ok(api
            .get_metadata_opt(&key.name)
            .await
            .map_err(Error::kube("read", key.to_string()))?
            .map(|object| object.metadata)),
    }
}

/// Delete an object; one that is already gone is fine. True when it was deleted here.
pub async fn delete<K>(api: &Api<K>, key: &ObjectKey) -> Result<bool>
where
    K: Resource<DynamicType = ()> + DeserializeOwned + Clone + Debug,
{
    match api.delete(&key.name, &DeleteParams::background()).await {
        Ok(_) => Ok(true),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
        Err(source) => Err(Error::kube("delete", key.to_string())(source)),
    }
}

/// How long Paved trusts its own write over the store's lack of it (children) or
/// its older copy (status).
pub const OWN_WRITE_MEMORY: Duration = Duration::from_secs(10);

/// What Paved wrote in the last few seconds: children and the status of its own
/// kinds, the one memory that bridges the stores' lag behind Paved's own writes.
///
/// Children: the reconcile that follows a create (woken by a sibling child's
/// event) often runs before the watch has brought the new child into the store;
/// without this, it would apply the child a second time. Only a child missing
/// from the store is stood in for, and an entry is dropped as soon as the store
/// has the child. Status: see [`super::status_writer`].
#[derive(Default)]
pub struct OwnWrites {
    recent: Mutex<Recent>,
}

/// The writes, and when those past [`OWN_WRITE_MEMORY`] were last dropped.
#[derive(Default)]
struct Recent {
    writes: HashMap<ObjectKey, OwnWrite>,
    swept: Option<Instant>,
}

impl Recent {
    /// Drops the writes kept past their time (nothing reads them; most are kept
    /// [`OWN_WRITE_MEMORY`]), at most once per [`OWN_WRITE_MEMORY`]: a burst of
    /// thousands of writes is not kept until the next burst.
    fn sweep(&mut self) {
        if self.swept.is_some_and(|at| at.elapsed() < OWN_WRITE_MEMORY) {
            return;
        }
        self.writes.retain(|_, (at, keep, _)| at.elapsed() < *keep);
        self.swept = Some(Instant::now());
    }
}

/// When Paved wrote an object, how long to keep it, and what (a child as the API
/// server returned it, or a status).
type OwnWrite = (Instant, Duration, Arc<dyn Any + Send + Sync>);

impl OwnWrites {
    /// Keep `object`, just written, for [`Self::live`] and [`Self::last`].
    pub fn remember<K>(&self, key: ObjectKey, object: K)
    where
        K: Send + Sync + 'static,
    {
        self.remember_for(key, object, OWN_WRITE_MEMORY);
    }

    /// [`Self::remember`], kept at least `keep` (past [`OWN_WRITE_MEMORY`]
    /// only [`Self::last`] tells it: a status write paced for longer).
    pub fn remember_for<K>(&self, key: ObjectKey, object: K, keep: Duration)
    where
        K: Send + Sync + 'static,
    {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.sweep();
        recent.writes.insert(
            key,
            (Instant::now(), keep.max(OWN_WRITE_MEMORY), Arc::new(object)),
        );
    }

    /// How long ago Paved last wrote `key`, and what (when it was a `T`).
    pub fn last<T>(&self, key: &ObjectKey) -> Option<(Duration, Arc<T>)>
    where
        T: Send + Sync + 'static,
    {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.sweep();
        let (at, _, object) = recent.writes.get(key)?;
        let object = Arc::clone(object).downcast::<T>().ok()?;
        Some((at.elapsed(), object))
    }

    /// The live child: the store's copy, or else Paved's own recent write of it
    /// (with `true`: the reconcile should look again once the memory runs out).
    pub fn live<K>(&self, key: &ObjectKey, in_store: Option<Arc<K>>) -> (Option<Arc<K>>, bool)
    where
        K: Send + Sync + 'static,
    {
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.sweep();
        if in_store.is_some() {
            recent.writes.remove(key);
            return (in_store, false);
        }
        match recent.writes.get(key) {
            Some((at, _, object)) if at.elapsed() < OWN_WRITE_MEMORY => {
                let object = Arc::clone(object).downcast::<K>().ok();
                let stood_in = object.is_some();
                (object, stood_in)
            }
            _ => (None, false),
        }
    }

    pub fn forget(&self, key: &ObjectKey) {
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .writes
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    #[test]
    fn the_applied_digest_is_stable_and_follows_the_content() {
        let one = json!({"metadata": {"name": "web"}, "spec": {"replicas": 1}});
        let two = json!({"metadata": {"name": "web"}, "spec": {"replicas": 2}});
        let digest = |v: &Value| {
            body_with_digest(v).unwrap()["metadata"]["annotations"]["paved.dev/applied-digest"]
                .clone()
        };
        assert_eq!(digest(&one), digest(&one.clone()));
        assert_ne!(digest(&one), digest(&two));
        // A live object that still has everything (and the digest) needs no write.
        let mut live = body_with_digest(&one).unwrap();
        live["spec"]["strategy"] = json!({"type": "RollingUpdate"});
        assert!(is_subset(&body_with_digest(&one).unwrap(), &live));
        assert!(!is_subset(&body_with_digest(&two).unwrap(), &live));
    }

    #[test]
    fn a_recent_own_write_stands_in_for_a_child_the_store_lacks_until_the_store_has_it() {
        use k8s_openapi::api::core::v1::Service as CoreService;
        let own = OwnWrites::default();
        let written = CoreService {
            metadata: kube::api::ObjectMeta {
                name: Some("web".into()),
                namespace: Some("shop".into()),
                resource_version: Some("7".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let key = |kind: &str, name: &str| ObjectKey {
            kind: kind.into(),
            namespace: Some("shop".into()),
            name: name.into(),
        };
        own.remember(ObjectKey::of(&written), written.clone());
        // The store lags: the own write stands in, and the reconcile must look again.
        let (live, stood_in) = own.live::<CoreService>(&key("Service", "web"), None);
        assert_eq!(live.as_deref(), Some(&written));
        assert!(stood_in);
        // Another kind or name is not stood in for.
        assert!(
            own.live::<Deployment>(&key("Deployment", "web"), None)
                .0
                .is_none()
        );
        assert!(
            own.live::<CoreService>(&key("Service", "api"), None)
                .0
                .is_none()
        );
        // Once the store has it, the store wins and the memory is dropped, so a
        // later deletion of the child is seen as one (drift) and repaired.
        let in_store = Arc::new(CoreService {
            metadata: kube::api::ObjectMeta {
                resource_version: Some("8".into()),
                ..written.metadata.clone()
            },
            ..Default::default()
        });
        let (live, stood_in) = own.live(&key("Service", "web"), Some(in_store.clone()));
        assert_eq!(live, Some(in_store));
        assert!(!stood_in);
        assert_eq!(
            own.live::<CoreService>(&key("Service", "web"), None),
            (None, false)
        );
    }

    #[test]
    fn live_objects_with_extra_defaults_still_match() {
        let desired =
            json!({"spec": {"replicas": 2, "template": {"containers": [{"name": "web"}]}}});
        let live = json!({"spec": {"replicas": 2, "strategy": {}, "template": {"containers": [{"name": "web", "terminationMessagePath": "/dev/x"}]}}});
        assert!(is_subset(&desired, &live));
    }

    #[test]
    fn a_hand_edit_or_an_extra_list_item_is_drift() {
        let desired = json!({"spec": {"replicas": 2, "ports": [{"port": 80}]}});
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 5, "ports": [{"port": 80}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"replicas": 2, "ports": [{"port": 80}, {"port": 81}]}})
        ));
        assert!(!is_subset(
            &desired,
            &json!({"spec": {"ports": [{"port": 80}]}})
        ));
    }

    fn owner() -> Owner {
        Owner {
            kind: "Service".into(),
            name: "taken".into(),
            uid: "uid-paved".into(),
            yields_to_other_managers: false,
        }
    }

    fn object(controller: Option<(&str, &str, &str)>) -> Deployment {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
        Deployment {
            metadata: kube::api::ObjectMeta {
                name: Some("taken".into()),
                namespace: Some("shop".into()),
                owner_references: controller.map(|(kind, name, uid)| {
                    vec![OwnerReference {
                        api_version: "paved.dev/v1alpha1".into(),
                        kind: kind.into(),
                        name: name.into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_a_name_that_is_free_or_held_by_the_owners_own_child_may_be_written() {
        let owner = owner();
        assert_eq!(claim(&owner, None), Claim::Free);
        let own = object(Some(("Service", "taken", "uid-paved")));
        assert_eq!(claim(&owner, Some(&own.metadata)), Claim::Ours);
        // Made by hand: no controller at all.
        assert_eq!(
            claim(&owner, Some(&object(None).metadata)),
            Claim::Foreign("not created by Paved".into())
        );
        // Another owner's child, even one with the owner's labels.
        assert_eq!(
            claim(
                &owner,
                Some(&object(Some(("Rollout", "taken", "uid-other"))).metadata)
            ),
            Claim::Foreign("controlled by Rollout taken".into())
        );
        // Controlled, but not as controller: still not Paved's.
        let mut shared = object(Some(("Service", "taken", "uid-paved")));
        shared.metadata.owner_references.as_mut().unwrap()[0].controller = Some(false);
        assert!(matches!(
            claim(&owner, Some(&shared.metadata)),
            Claim::Foreign(_)
        ));
        // An earlier Service of the same name (deleted, made again): its child
        // goes with garbage collection; wait for it, write nothing.
        assert_eq!(
            claim(
                &owner,
                Some(&object(Some(("Service", "taken", "uid-old"))).metadata)
            ),
            Claim::Leaving
        );
    }

    #[test]
    fn a_copy_that_another_field_manager_took_over_is_no_longer_the_previews() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::{FieldsV1, ManagedFieldsEntry};
        let owner = Owner {
            yields_to_other_managers: true,
            ..owner()
        };
        let entry = |manager: &str, fields: Value, subresource: Option<&str>| ManagedFieldsEntry {
            manager: Some(manager.into()),
            fields_v1: Some(FieldsV1(fields)),
            subresource: subresource.map(str::to_string),
            ..Default::default()
        };
        let mut copy = object(Some(("Service", "taken", "uid-paved")));
        copy.metadata.managed_fields = Some(vec![
            entry(FIELD_MANAGER, json!({"f:spec": {}}), None),
            entry("kubectl-label", json!({"f:metadata": {}}), None),
            entry(
                "kube-controller-manager",
                json!({"f:status": {}}),
                Some("status"),
            ),
        ]);
        assert_eq!(claim(&owner, Some(&copy.metadata)), Claim::Ours);
        copy.metadata.managed_fields.as_mut().unwrap().push(entry(
            "argocd-controller",
            json!({"f:spec": {"f:image": {}}}),
            None,
        ));
        assert!(matches!(
            claim(&owner, Some(&copy.metadata)),
            Claim::Foreign(_)
        ));
        // A child (not a copy) does not yield: kubectl edits are drift, repaired.
        assert_eq!(claim(&self::owner(), Some(&copy.metadata)), Claim::Ours);
    }

    #[test]
    fn writes_past_the_memory_are_dropped_not_kept_until_the_next_burst() {
        let own = OwnWrites::default();
        let key = |i: usize| ObjectKey {
            kind: "Deployment".into(),
            namespace: Some("shop".into()),
            name: format!("svc-{i}"),
        };
        let long_ago = Instant::now()
            .checked_sub(OWN_WRITE_MEMORY + Duration::from_secs(1))
            .unwrap();
        {
            let mut recent = own.recent.lock().unwrap();
            for i in 0..1000 {
                recent
                    .writes
                    .insert(key(i), (long_ago, OWN_WRITE_MEMORY, Arc::new(i)));
            }
            // One kept longer (a status paced for a minute) is not dropped with them.
            recent.writes.insert(
                key(2000),
                (long_ago, Duration::from_secs(60), Arc::new(2000usize)),
            );
        }
        // A burst of 1,000 writes, then quiet: the next look drops all of them.
        assert!(own.last::<usize>(&key(1)).is_none());
        assert_eq!(own.recent.lock().unwrap().writes.len(), 1);
        assert_eq!(own.last::<usize>(&key(2000)).map(|(_, v)| *v), Some(2000));
        // ...but it stands in for nothing past the memory.
        assert_eq!(own.live::<usize>(&key(2000), None), (None, false));
        own.remember(key(1000), 1000usize);
        assert_eq!(own.last::<usize>(&key(1000)).map(|(_, v)| *v), Some(1000));
    }

    #[test]
    fn an_object_key_reads_kind_namespace_and_name() {
        let key = ObjectKey::new::<Deployment>(Some("shop"), "web");
        assert_eq!(key.to_string(), "Deployment shop/web");
        let key = ObjectKey::new::<k8s_openapi::api::core::v1::Namespace>(None, "shop");
        assert_eq!(key.to_string(), "Namespace shop");
    }
}
