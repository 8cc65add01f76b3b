//! Slim children: what the stores keep of a Service's children.
//!
//! A Deployment as the API server returns it carries every default of its pod
//! template; parsed into k8s-openapi's structs it costs about 14 KiB of memory,
//! and a Service has three or four children. Paved reads three things of a
//! child: who controls it (ownerReferences), whether it still holds what Paved
//! applied (drift, [`crate::reconcile::converge`]), and its status. So a
//! [`Slim`] keeps the identifying metadata, and as compact JSON only the fields
//! Paved's own server-side apply owns (its `managedFields` entry, `fieldsV1`),
//! a few fields status reads that others set (`spec.replicas` under an HPA,
//! `spec.clusterIP`), and the whole `status`.
//!
//! Drift is still seen: a field edited by hand or by another tool moves to that
//! field manager, so it drops out of Paved's set and the slim copy no longer
//! contains what Paved wants; a field removed is gone from both.
//!
//! ```text
//! fieldsV1 node      what is kept of the value there
//! {}                 the whole value (a leaf, or an atomic list or map)
//! f:<name>           that field of an object
//! k:{"name":"app"}   the list items whose key fields match
//! v:<json>           the list items equal to the value (a set)
//! i:<n>              the list item at the index
//! .                  the node itself (nothing more)
//! ```
//!
//! The JSON is kept deflated (raw DEFLATE, by zlib-rs) against a preset
//! dictionary, [`dictionary`]: what `paved render` makes of the production
//! examples, and a Deployment's status as the controller-manager writes it. The
//! keys and values every child shares then cost a few bytes each: the 1.7 KB of
//! JSON of a rendered Deployment come to about 200 bytes (8 times less; without
//! the dictionary, 2.5 times). A read inflates it again (microseconds; a
//! reconcile reads a handful of children).

use std::borrow::Cow;
use std::cell::RefCell;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, LazyLock};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::names::FIELD_MANAGER;

/// Fields others set that status or the catalog page read, kept whatever their manager.
const READ_BY_STATUS: &[&[&str]] = &[
    &["spec", "replicas"],
    &["spec", "clusterIP"],
    &["spec", "type"],
];

/// A child as the stores keep it: identity and ownership as metadata, the rest
/// as compact JSON, deflated (see the module).
pub struct Slim<K> {
    metadata: ObjectMeta,
    packed: Packed,
    kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Slim<K> {
    fn clone(&self) -> Self {
        Slim {
            metadata: self.metadata.clone(),
            packed: self.packed.clone(),
            kind: PhantomData,
        }
    }
}

impl<K> fmt::Debug for Slim<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slim")
            .field("metadata", &self.metadata)
            .field("json", &self.packed.json())
            .finish()
    }
}

/// A `K` read from JSON straight into its slim form: the watches of children
/// decode into this, so a list of thousands never holds them whole at once
/// (each item is parsed as JSON, pruned, and dropped before the next).
impl<'de, K> serde::Deserialize<'de> for Slim<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = <Value as serde::Deserialize>::deserialize(deserializer)?;
        Slim::from_value(value).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for Slim<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl<K> Slim<K>
where
    K: Resource<DynamicType = ()> + Serialize + DeserializeOwned,
{
    /// What the stores keep of `object`, as the API server sent it (with its
    /// managedFields, which are not kept).
    pub fn of(object: &K) -> Self {
        let value = serde_json::to_value(object).unwrap_or(Value::Null);
        Slim::from_value(value).unwrap_or_else(|_| Slim {
            metadata: object.meta().clone(),
            packed: Packed::new("{}"),
            kind: PhantomData,
        })
    }

    /// What the stores keep of an object read as JSON (see [`Self::of`]); an
    /// error when its metadata does not read as Kubernetes metadata.
    pub fn from_value(mut value: Value) -> Result<Self, serde_json::Error> {
        let metadata = identity(&value)?;
        let owned = value
            .get("metadata")
            .and_then(|m| m.get("managedFields"))
            .and_then(paved_fields);
        let mut kept = match owned {
            Some(fields) => prune(&value, fields),
            None => Value::Object(Map::new()),
        };
        // Whatever Paved owns of metadata (labels, annotations, owners) stays in
        // the JSON from the prune, for the drift check; identity is in `metadata`.
        // A list's items come without apiVersion and kind: they are the kind's own.
        if let Value::Object(kept) = &mut kept {
            kept.insert("apiVersion".into(), K::api_version(&()).into());
            kept.insert("kind".into(), K::kind(&()).into());
            for path in READ_BY_STATUS {
                if let Some(v) = path.iter().try_fold(&value, |v, k| v.get(k)) {
                    insert_at(kept, path, v.clone());
                }
            }
            if let Some(status) = value.get_mut("status").map(Value::take) {
                kept.insert("status".into(), status);
            }
        }
        Ok(Slim {
            metadata,
            packed: Packed::new(&kept.to_string()),
            kind: PhantomData,
        })
    }

    /// All of `object`, unpruned: for objects the stores keep whole (a
    /// preview's copies of Paved's own kinds, whose stores keep no managedFields).
    pub fn whole(object: &K) -> Self {
        let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
        if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
            metadata.remove("managedFields");
        }
        Slim {
            metadata: object.meta().clone(),
            packed: Packed::new(&value.to_string()),
            kind: PhantomData,
        }
    }

    /// The kept fields with the identity, as JSON (what the drift check compares).
    pub fn value(&self) -> Value {
        let mut value: Value = serde_json::from_str(&self.packed.json()).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut value {
            let metadata = map
                .entry("metadata")
                .or_insert_with(|| Value::Object(Map::new()));
            if let Value::Object(metadata) = metadata {
                let identity = serde_json::to_value(&self.metadata).unwrap_or(Value::Null);
                if let Value::Object(identity) = identity {
                    for (k, v) in identity.into_iter().filter(|(k, _)| k != "managedFields") {
                        metadata.entry(k).or_insert(v);
                    }
                }
            }
        }
        value
    }

    /// A view of the kept fields (a few of them, cheaper than [`Self::object`]).
    pub fn read<T: DeserializeOwned>(&self) -> Option<T> {
        serde_json::from_str(&self.packed.json()).ok()
    }

    /// The kept fields as a `K` (status, replicas, what the catalog page shows).
    /// None only when they do not make a `K` (a required field owned by another
    /// manager), which status then treats as a child not yet seen.
    pub fn object(&self) -> Option<K> {
        serde_json::from_value(self.value()).ok()
    }
}

/// Compact JSON as the stores keep it: deflated against [`dictionary`] (a tag
/// byte, the JSON's length, the stream), or as it is when that fails.
#[derive(Clone)]
struct Packed(Box<[u8]>);

const PLAIN: u8 = 0;
const DEFLATED: u8 = 1;

thread_local! {
    // Reused: a deflate state is a few hundred KB, too much to make per child.
    static DEFLATE: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
    static INFLATE: RefCell<Decompress> = RefCell::new(Decompress::new(false));
}

impl Packed {
    fn new(json: &str) -> Packed {
        let deflated = DEFLATE.with_borrow_mut(|deflate| {
            deflate.reset();
            deflate.set_dictionary(dictionary()).ok()?;
            let length = u32::try_from(json.len()).ok()?;
            // Room for JSON that does not compress; compress_vec does not grow it.
            let mut out = Vec::with_capacity(5 + json.len() + json.len() / 64 + 64);
            out.push(DEFLATED);
            out.extend_from_slice(&length.to_le_bytes());
            let status = deflate
                .compress_vec(json.as_bytes(), &mut out, FlushCompress::Finish)
                .ok()?;
            (status == Status::StreamEnd).then(|| out.into_boxed_slice())
        });
        Packed(
            deflated.unwrap_or_else(|| [&[PLAIN][..], json.as_bytes()].concat().into_boxed_slice()),
        )
    }

    /// The JSON again ("" only if the stream were damaged: read as no object).
    fn json(&self) -> String {
        match self.0.split_first() {
            Some((&DEFLATED, rest)) if rest.len() >= 4 => {
                let (length, stream) = rest.split_at(4);
                let length = u32::from_le_bytes([length[0], length[1], length[2], length[3]]);
                INFLATE
                    .with_borrow_mut(|inflate| {
                        inflate.reset(false);
                        inflate.set_dictionary(dictionary()).ok()?;
                        let mut out = Vec::with_capacity(length as usize);
                        let status = inflate
                            .decompress_vec(stream, &mut out, FlushDecompress::Finish)
                            .ok()?;
                        (status == Status::StreamEnd)
                            .then(|| String::from_utf8(out).ok())
                            .flatten()
                    })
                    .unwrap_or_default()
            }
            Some((_, plain)) => String::from_utf8_lossy(plain).into_owned(),
            None => String::new(),
        }
    }
}

/// The manifests whose render makes the dictionary: Paved's own examples.
const DICTIONARY_SOURCES: [&str; 3] = [
    include_str!("../examples/00-environments.yaml"),
    include_str!("../examples/production/10-application.yaml"),
    include_str!("../examples/production/20-services.yaml"),
];

/// A Deployment's status as the controller-manager writes it, which the stores
/// keep whole.
const DEPLOYMENT_STATUS: &str = r#"{"availableReplicas":2,"conditions":[{"lastTransitionTime":"2026-01-01T00:00:00Z","lastUpdateTime":"2026-01-01T00:00:00Z","message":"Deployment has minimum availability.","reason":"MinimumReplicasAvailable","status":"True","type":"Available"},{"lastTransitionTime":"2026-01-01T00:00:00Z","lastUpdateTime":"2026-01-01T00:00:00Z","message":"ReplicaSet \"web-5d8f7c9b6d\" has successfully progressed.","reason":"NewReplicaSetAvailable","status":"True","type":"Progressing"}],"observedGeneration":1,"readyReplicas":2,"replicas":2,"updatedReplicas":2}"#;

/// The preset dictionary of every [`Slim`]'s deflated JSON: the compact JSON of
/// one child of each kind `paved render` makes of the production examples (with
/// their Environments' Gateway API routes, and again with Ingresses), the kinds
/// every Service has last, the Deployment with a status. Made once per process
/// from the same builders the controller applies with, so it follows them;
/// nothing deflated outlives the process.
fn dictionary() -> &'static [u8] {
    static DICTIONARY: LazyLock<Vec<u8>> = LazyLock::new(|| {
        let manifests = DICTIONARY_SOURCES.join("\n---\n");
        let mut rendered = String::new();
        if let Ok(mut snapshot) = crate::cli::render::parse(&manifests) {
            // Once as they are (routes of the Gateway API), once with Ingresses.
            rendered = crate::cli::render::render(&snapshot).yaml;
            for environment in &mut snapshot.environments {
                Arc::make_mut(environment).spec.gateway = None;
            }
            rendered.push_str("\n---\n");
            rendered.push_str(&crate::cli::render::render(&snapshot).yaml);
        }
        let mut kinds: Vec<(String, Value)> = Vec::new();
        for document in serde_yaml::Deserializer::from_str(&rendered) {
            let Ok(value) = <Value as serde::Deserialize>::deserialize(document) else {
                continue;
            };
            let kind = value["kind"].as_str().unwrap_or_default().to_string();
            if !kinds.iter().any(|(k, _)| *k == kind) {
                kinds.push((kind, value));
            }
        }
        // The kinds every Service has last, nearest to what is deflated.
        kinds.sort_by_key(|(kind, _)| match kind.as_str() {
            "Deployment" => 3,
            "Service" => 2,
            "Ingress" | "HTTPRoute" => 1,
            _ => 0,
        });
        let mut dictionary = String::new();
        for (kind, mut value) in kinds {
            if kind == "Deployment" {
                value["status"] = serde_json::from_str(DEPLOYMENT_STATUS).unwrap_or_default();
            }
            dictionary.push_str(&value.to_string());
        }
        dictionary.into_bytes()
    });
    &DICTIONARY
}

/// The identity a slim child keeps of `value`'s metadata (nothing else of it
/// is parsed: labels, annotations and managedFields stay JSON).
fn identity(value: &Value) -> Result<ObjectMeta, serde_json::Error> {
    const KEPT: &[&str] = &[
        "name",
        "namespace",
        "uid",
        "resourceVersion",
        "generation",
        "deletionTimestamp",
        "ownerReferences",
    ];
    let Some(metadata) = value.get("metadata").and_then(Value::as_object) else {
        return Ok(ObjectMeta::default());
    };
    let kept: Map<String, Value> = KEPT
        .iter()
        .filter_map(|key| Some((key.to_string(), metadata.get(*key)?.clone())))
        .collect();
    serde_json::from_value(Value::Object(kept))
}

/// Paved's own server-side apply entry in `managedFields`: the fields it owns.
fn paved_fields(managed_fields: &Value) -> Option<&Value> {
    fn text<'a>(entry: &'a Value, key: &str) -> &'a str {
        entry.get(key).and_then(Value::as_str).unwrap_or("")
    }
    managed_fields
        .as_array()?
        .iter()
        .find(|entry| {
            text(entry, "manager") == FIELD_MANAGER
                && text(entry, "operation") == "Apply"
                && text(entry, "subresource").is_empty()
        })
        .and_then(|entry| entry.get("fieldsV1"))
}

fn insert_at(map: &mut Map<String, Value>, path: &[&str], value: Value) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = map;
    for key in parents {
        let next = here
            .entry(key.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        let Value::Object(next) = next else {
            return;
        };
        here = next;
    }
    here.insert(last.to_string(), value);
}

/// The part of `value` that `fields` (a `fieldsV1` set) covers.
pub fn prune(value: &Value, fields: &Value) -> Value {
    let Some(fields) = fields.as_object().filter(|f| f.keys().any(|k| k != ".")) else {
        // A leaf of the set, or a node owned as a whole: keep all of it. A node
        // with only "." (an item or map Paved made, fields all others') keeps
        // nothing inside.
        return match fields.as_object() {
            Some(f) if f.contains_key(".") => empty_like(value),
            _ => value.clone(),
        };
    };
    match value {
        Value::Object(object) => Value::Object(
            fields
                .iter()
                .filter_map(|(key, sub)| {
                    let name = key.strip_prefix("f:")?;
                    Some((name.to_string(), prune(object.get(name)?, sub)))
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .filter_map(|(index, item)| {
                    fields
                        .iter()
                        .find(|(key, _)| item_matches(key, index, item))
                        .map(|(_, sub)| prune(item, sub))
                })
                .collect(),
        ),
        scalar => scalar.clone(),
    }
}

fn empty_like(value: &Value) -> Value {
    match value {
        Value::Object(_) => Value::Object(Map::new()),
        Value::Array(_) => Value::Array(Vec::new()),
        other => other.clone(),
    }
}

/// Whether a list item is the one a `fieldsV1` key names.
fn item_matches(key: &str, index: usize, item: &Value) -> bool {
    if let Some(keys) = key.strip_prefix("k:") {
        let Ok(Value::Object(keys)) = serde_json::from_str::<Value>(keys) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(set_value) = key.strip_prefix("v:") {
        serde_json::from_str::<Value>(set_value).is_ok_and(|v| &v == item)
    } else if let Some(at) = key.strip_prefix("i:") {
        at.parse::<usize>() == Ok(index)
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::converge::is_subset;
    use k8s_openapi::api::apps::v1::Deployment;
    use serde_json::json;

    /// A Deployment as the API server returns it after Paved's apply: defaults
    /// everywhere, Paved's fields in its managedFields entry, status by the
    /// controller-manager, replicas by an HPA.
    fn live() -> Deployment {
        serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {
                "name": "api", "namespace": "shop", "uid": "u-1", "generation": 3,
                "resourceVersion": "7",
                "labels": {"paved.dev/service": "api", "team": "by-hand"},
                "annotations": {"paved.dev/applied-digest": "abc", "deployment.kubernetes.io/revision": "2"},
                "ownerReferences": [{"apiVersion": "paved.dev/v1alpha1", "kind": "Service", "name": "api", "uid": "s-1", "controller": true}],
                "managedFields": [
                    {"manager": "paved", "operation": "Apply", "fieldsType": "FieldsV1", "fieldsV1": {
                        "f:metadata": {"f:annotations": {"f:paved.dev/applied-digest": {}}, "f:labels": {"f:paved.dev/service": {}},
                                       "f:ownerReferences": {"k:{\"uid\":\"s-1\"}": {}}},
                        "f:spec": {"f:selector": {}, "f:template": {
                            "f:metadata": {"f:labels": {"f:paved.dev/service": {}}},
                            "f:spec": {"f:containers": {"k:{\"name\":\"api\"}": {".": {}, "f:name": {}, "f:image": {},
                                "f:ports": {"k:{\"containerPort\":8080,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}, "f:name": {}}}}}}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "subresource": "status", "fieldsV1": {"f:status": {}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "fieldsV1": {"f:spec": {"f:replicas": {}}}}
                ]
            },
            "spec": {
                "replicas": 4, "progressDeadlineSeconds": 600, "revisionHistoryLimit": 10,
                "selector": {"matchLabels": {"paved.dev/service": "api"}},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
                "template": {
                    "metadata": {"labels": {"paved.dev/service": "api"}},
                    "spec": {
                        "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                        "containers": [
                            {"name": "api", "image": "shop/api:1", "imagePullPolicy": "IfNotPresent",
                             "terminationMessagePath": "/dev/termination-log",
                             "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}]},
                            {"name": "mesh-sidecar", "image": "mesh:9"}
                        ]
                    }
                }
            },
            "status": {"replicas": 4, "readyReplicas": 3, "observedGeneration": 3}
        }))
        .unwrap()
    }

    /// What Paved applies for it (no replicas: the HPA sets them).
    fn desired() -> Value {
        let mut body = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "shop", "labels": {"paved.dev/service": "api"},
                         "ownerReferences": [{"apiVersion": "paved.dev/v1alpha1", "kind": "Service", "name": "api", "uid": "s-1", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"paved.dev/service": "api"}}, "template": {
                "metadata": {"labels": {"paved.dev/service": "api"}},
                "spec": {"containers": [{"name": "api", "image": "shop/api:1", "ports": [{"containerPort": 8080, "name": "http"}]}]}}}
        });
        body["metadata"]["annotations"] = json!({"paved.dev/applied-digest": "abc"});
        body
    }

    #[test]
    fn a_slim_child_keeps_what_paved_applied_its_status_and_replicas_and_drops_the_defaults() {
        let slim = Slim::of(&live());
        let value = slim.value();
        assert!(is_subset(&desired(), &value), "{value:#}");
        let containers = &value["spec"]["template"]["spec"]["containers"];
        assert_eq!(
            containers.as_array().unwrap().len(),
            1,
            "the sidecar is not Paved's: {value:#}"
        );
        assert_eq!(containers[0]["imagePullPolicy"], Value::Null);
        assert_eq!(value["spec"]["strategy"], Value::Null);
        assert_eq!(value["metadata"]["labels"].get("team"), None);
        assert_eq!(value["metadata"]["managedFields"], Value::Null);
        let object = slim.object().expect("makes a Deployment");
        assert_eq!(
            object.spec.unwrap().replicas,
            Some(4),
            "read by status under an HPA"
        );
        assert_eq!(object.status.unwrap().ready_replicas, Some(3));
        assert_eq!(object.metadata.generation, Some(3));
        assert_eq!(slim.meta().owner_references.as_ref().unwrap()[0].uid, "s-1");
        assert!(slim.packed.json().len() < serde_json::to_string(&live()).unwrap().len() / 2);
    }

    fn first_container(deployment: &mut Deployment) -> &mut k8s_openapi::api::core::v1::Container {
        let spec = deployment.spec.as_mut().unwrap();
        &mut spec.template.spec.as_mut().unwrap().containers[0]
    }

    #[test]
    fn a_list_item_decodes_straight_into_the_same_slim_child() {
        // Items of a list response carry neither apiVersion nor kind.
        let mut item = serde_json::to_value(live()).unwrap();
        let item_map = item.as_object_mut().unwrap();
        item_map.remove("apiVersion");
        item_map.remove("kind");
        let list = json!({"kind": "DeploymentList", "apiVersion": "apps/v1",
                          "metadata": {"resourceVersion": "9"}, "items": [item]});
        let decoded: kube::api::ObjectList<Slim<Deployment>> =
            serde_json::from_value(list).unwrap();
        let slim = &decoded.items[0];
        assert_eq!(slim.value(), Slim::of(&live()).value());
        assert!(
            is_subset(&desired(), &slim.value()),
            "no drift from decoding"
        );
        assert_eq!(slim.meta().resource_version.as_deref(), Some("7"));
        assert_eq!(slim.meta().managed_fields, None, "not kept");
        assert_eq!(slim.meta().labels, None, "kept in the JSON, not parsed");
    }

    #[test]
    fn a_field_edited_by_another_manager_is_drift_and_one_removed_too() {
        // `kubectl set image`: the image moves to kubectl's entry.
        let mut edited = live();
        first_container(&mut edited).image = Some("shop/api:hacked".into());
        let fields = &mut edited.metadata.managed_fields.as_mut().unwrap()[0]
            .fields_v1
            .as_mut()
            .unwrap()
            .0;
        let container =
            &mut fields["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"api\"}"];
        container.as_object_mut().unwrap().remove("f:image");
        assert!(!is_subset(&desired(), &Slim::of(&edited).value()));
        // The port removed (kubectl edit): gone from the object and from the set.
        let mut removed = live();
        first_container(&mut removed).ports = None;
        assert!(!is_subset(&desired(), &Slim::of(&removed).value()));
    }

    #[test]
    fn an_object_paved_never_applied_keeps_only_its_identity_and_status() {
        let mut foreign = live();
        foreign.metadata.managed_fields.as_mut().unwrap().remove(0);
        let slim = Slim::of(&foreign);
        assert!(!is_subset(&desired(), &slim.value()));
        assert_eq!(slim.value()["metadata"]["name"], "api");
        assert_eq!(slim.value()["status"]["readyReplicas"], 3);
    }

    #[test]
    fn the_dictionary_holds_a_child_of_each_kind_paved_renders_the_deployment_last() {
        let dictionary = std::str::from_utf8(dictionary()).unwrap();
        for kind in [
            "Namespace",
            "Service",
            "Ingress",
            "HTTPRoute",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
        ] {
            assert!(
                dictionary.contains(&format!("\"kind\":\"{kind}\"")),
                "{kind} missing"
            );
        }
        let last = dictionary.rfind("\"kind\":").unwrap();
        assert!(dictionary[last..].starts_with("\"kind\":\"Deployment\""));
        assert!(
            dictionary.ends_with("\"updatedReplicas\":2}}"),
            "a status last"
        );
    }

    #[test]
    fn packed_json_reads_back_the_same_and_a_rendered_child_is_under_a_sixth_of_its_json() {
        // A Service of another application than the examples', as Paved applies it.
        let manifests = format!(
            "{}\n---\n{}",
            include_str!("../examples/00-environments.yaml"),
            r#"
apiVersion: paved.dev/v1alpha1
kind: Application
metadata: {name: billing, namespace: staging}
spec: {owner: team-billing}
---
apiVersion: paved.dev/v1alpha1
kind: Service
metadata: {name: invoices, namespace: staging}
spec:
  application: billing
  image: registry.example.test/billing/invoices:2.3.0
  ports: [{name: http, port: 8000}]
  replicas: 2
  resources: {requests: {cpu: 300m, memory: 200Mi}}
  health: {path: /ready, port: http}
  expose: {}
"#
        );
        let rendered = crate::cli::render::render(&crate::cli::render::parse(&manifests).unwrap());
        let deployment = serde_yaml::Deserializer::from_str(&rendered.yaml)
            .map(|d| <Value as serde::Deserialize>::deserialize(d).unwrap())
            .find(|v| v["kind"] == "Deployment")
            .expect("a Deployment rendered");
        let json = deployment.to_string();
        let packed = Packed::new(&json);
        assert_eq!(packed.json(), json);
        assert!(
            packed.0.len() * 6 < json.len(),
            "{} bytes packed of {}",
            packed.0.len(),
            json.len()
        );
        // Whatever the text, it reads back (also what deflate cannot shrink).
        for text in ["", "{}", "\u{1F600} not JSON at all", &"x".repeat(70_000)] {
            assert_eq!(Packed::new(text).json(), text);
        }
        let noise: String = (0..5000u32)
            .map(|i| char::from(b'!' + (i.wrapping_mul(2_654_435_761) >> 26) as u8))
            .collect();
        assert_eq!(Packed::new(&noise).json(), noise);
    }

    #[test]
    fn a_whole_copy_keeps_everything_but_managed_fields() {
        let object = live();
        let whole = Slim::whole(&object);
        let mut expected = serde_json::to_value(&object).unwrap();
        expected["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("managedFields");
        assert_eq!(whole.value(), expected);
        assert!(
            whole.meta().managed_fields.is_some(),
            "the claim check of copies reads them"
        );
    }

    #[test]
    fn prune_follows_keys_set_values_and_indices() {
        let value = json!({"finalizers": ["a", "b"], "list": [{"n": 1, "x": 2}, {"n": 2, "x": 3}], "pair": [10, 20]});
        let fields = json!({"f:finalizers": {"v:\"b\"": {}}, "f:list": {"k:{\"n\":2}": {".": {}, "f:n": {}}}, "f:pair": {"i:1": {}}});
        assert_eq!(
            prune(&value, &fields),
            json!({"finalizers": ["b"], "list": [{"n": 2}], "pair": [20]})
        );
        assert_eq!(
            prune(&json!({"a": {"b": 1}}), &json!({"f:a": {".": {}}})),
            json!({"a": {}})
        );
    }
}
