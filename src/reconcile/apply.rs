//! Apply: server-side apply as `paved` (forced), skipped when nothing would change.
//!
//! Every applied object carries `paved.dev/applied-digest`, a digest of what Paved
//! applied. A child is re-applied when what Paved wants now has another digest,
//! or when the live object no longer contains what Paved wants (drift: deleted or
//! edited by hand). Otherwise no request is sent at all, so an unchanged world
//! costs no writes, also right after a restart or a change of leader.

use std::any::Any;
use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::NamespaceResourceScope;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::names::{FIELD_MANAGER, annotations};

pub fn apply_params() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn key<K: Resource<DynamicType = ()>>(object: &K) -> String {
    format!(
        "{} {}/{}",
        K::kind(&()),
        object.namespace().unwrap_or_default(),
        object.name_any()
    )
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
pub async fn apply<K>(api: &Api<K>, desired: &K, live: Option<&K>) -> Result<Applied<K>>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned + Clone + Debug,
{
    let key = key(desired);
    let body = body_with_digest(desired).map_err(|source| Error::Serialization {
        object: key.clone(),
        source,
    })?;
    if let Some(live) = live {
        let live_json = serde_json::to_value(live).map_err(|source| Error::Serialization {
            object: key.clone(),
            source,
        })?;
        if is_subset(&body, &live_json) {
            return Ok(Applied::Unchanged);
        }
    }
    tracing::debug!(object = %key, live = live.is_some(), "applying");
    let written = api
        .patch(&desired.name_any(), &apply_params(), &Patch::Apply(&body))
        .await
        .map_err(Error::kube("apply", key.clone()))?;
    Ok(Applied::Written(written))
}

/// How long Paved trusts its own write of a child over the store's lack of it.
pub const OWN_WRITE_MEMORY: Duration = Duration::from_secs(10);

/// Children Paved created in the last few seconds. The reconcile that follows a
/// create (woken by a sibling child's event) often runs before the watch has
/// brought the new child into the store; without this, it would apply the child
/// a second time. Only a child missing from the store is stood in for, and an
/// entry is dropped as soon as the store has the child.
#[derive(Default)]
pub struct OwnWrites {
    recent: Mutex<HashMap<String, OwnWrite>>,
}

/// When Paved wrote a child, and what the API server returned (a `K`).
type OwnWrite = (Instant, Arc<dyn Any + Send + Sync>);

impl OwnWrites {
    fn key<K: Resource<DynamicType = ()>>(namespace: &str, name: &str) -> String {
        format!("{} {namespace}/{name}", K::kind(&()))
    }

    /// Keep `object`, just written, for [`Self::stand_in`].
    pub fn remember<K>(&self, object: K)
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let key = Self::key::<K>(&object.namespace().unwrap_or_default(), &object.name_any());
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        recent.retain(|_, (at, _)| at.elapsed() < OWN_WRITE_MEMORY);
        recent.insert(key, (Instant::now(), Arc::new(object)));
    }

    /// The live child: the store's copy, or else Paved's own recent write of it
    /// (with `true`: the reconcile should look again once the memory runs out).
    pub fn live<K>(
        &self,
        namespace: &str,
        name: &str,
        in_store: Option<Arc<K>>,
    ) -> (Option<Arc<K>>, bool)
    where
        K: Resource<DynamicType = ()> + Send + Sync + 'static,
    {
        let key = Self::key::<K>(namespace, name);
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        if in_store.is_some() {
            recent.remove(&key);
            return (in_store, false);
        }
        match recent.get(&key) {
            Some((at, object)) if at.elapsed() < OWN_WRITE_MEMORY => {
                let object = Arc::clone(object).downcast::<K>().ok();
                let stood_in = object.is_some();
                (object, stood_in)
            }
            _ => (None, false),
        }
    }

    pub fn forget<K: Resource<DynamicType = ()>>(&self, namespace: &str, name: &str) {
        let key = Self::key::<K>(namespace, name);
        self.recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&key);
    }
}

/// Delete a child that must no longer exist, if it exists and `owner_uid` controls it.
pub async fn delete_if_controlled<K>(
    api: &Api<K>,
    live: Option<&K>,
    owner_uid: Option<&str>,
) -> Result<bool>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + DeserializeOwned
        + Clone
        + Debug,
{
    let Some(live) = live else { return Ok(false) };
    let controlled = live
        .owner_references()
        .iter()
        .any(|r| r.controller == Some(true) && Some(r.uid.as_str()) == owner_uid);
    if !controlled || live.meta().deletion_timestamp.is_some() {
        return Ok(false);
    }
    let key = key(live);
    match api
        .delete(&live.name_any(), &DeleteParams::background())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(source) => {
            return Err(Error::Kube {
                step: "delete",
                object: key,
                source,
            });
        }
    }
    Ok(true)
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
        own.remember(written.clone());
        // The store lags: the own write stands in, and the reconcile must look again.
        let (live, stood_in) = own.live::<CoreService>("shop", "web", None);
        assert_eq!(live.as_deref(), Some(&written));
        assert!(stood_in);
        // Another kind or name is not stood in for.
        assert!(own.live::<Deployment>("shop", "web", None).0.is_none());
        assert!(own.live::<CoreService>("shop", "api", None).0.is_none());
        // Once the store has it, the store wins and the memory is dropped, so a
        // later deletion of the child is seen as one (drift) and repaired.
        let in_store = Arc::new(CoreService {
            metadata: kube::api::ObjectMeta {
                resource_version: Some("8".into()),
                ..written.metadata.clone()
            },
            ..Default::default()
        });
        let (live, stood_in) = own.live("shop", "web", Some(in_store.clone()));
        assert_eq!(live, Some(in_store));
        assert!(!stood_in);
        assert_eq!(own.live::<CoreService>("shop", "web", None), (None, false));
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
}
