//! Gateway API's `HTTPRoute` (`gateway.networking.k8s.io/v1`): not a Paved kind,
//! the child Paved writes for an exposed Service of an Environment with
//! `spec.gateway`. Only the fields Paved writes (parentRefs, hostnames, one rule)
//! and reads back (`status.parents`); the server keeps the rest.
//!
//! Typed here rather than taken from the `gateway-api` crate: its releases are
//! built against an older kube and k8s-openapi than Paved's, so its types do not
//! implement this kube's `Resource`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use serde::{Deserialize, Serialize};

/// API group of Gateway API.
pub const GROUP: &str = "gateway.networking.k8s.io";
/// The group/version Paved uses; discovery looks for `httproutes` in it.
pub const GROUP_VERSION: &str = "gateway.networking.k8s.io/v1";
/// Plural resource name of HTTPRoute.
pub const HTTPROUTES: &str = "httproutes";

/// Routes HTTP requests for some hostnames from Gateways to a backend Service.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "gateway.networking.k8s.io",
    version = "v1",
    kind = "HTTPRoute",
    root = "HttpRoute",
    plural = "httproutes",
    namespaced,
    status = "HttpRouteStatus",
    derive = "PartialEq",
    derive = "Default",
    schema = "disabled"
)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateways (or listeners) the route attaches to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parent_refs: Vec<ParentReference>,
    /// Host headers the route matches.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<HttpRouteRule>,
}

/// A reference to a parent (a Gateway), as in `spec.parentRefs` and `status.parents[].parentRef`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub section_name: Option<String>,
}

impl ParentReference {
    /// Whether `other` names the same parent; an unset namespace is `route_namespace`
    /// (Gateway API's default), unset group and kind are Gateway's.
    pub fn same_parent(&self, other: &ParentReference, route_namespace: &str) -> bool {
        let group = |r: &ParentReference| r.group.clone().unwrap_or_else(|| GROUP.into());
        let kind = |r: &ParentReference| r.kind.clone().unwrap_or_else(|| "Gateway".into());
        let namespace = |r: &ParentReference| {
            r.namespace
                .clone()
                .unwrap_or_else(|| route_namespace.to_string())
        };
        group(self) == group(other)
            && kind(self) == kind(other)
            && namespace(self) == namespace(other)
            && self.name == other.name
            && self.section_name == other.section_name
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub matches: Vec<HttpRouteMatch>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backend_refs: Vec<HttpBackendRef>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteMatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<HttpPathMatch>,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpPathMatch {
    /// `PathPrefix`, `Exact` or `RegularExpression`.
    #[serde(rename = "type")]
    pub type_: String,
    pub value: String,
}

/// A backend: a core Service and port, with its weight.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HttpBackendRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i32>,
}

/// What the Gateways' controllers report on the route.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteStatus {
    #[serde(default)]
    pub parents: Vec<RouteParentStatus>,
}

/// One parent's (one controller's) view of the route: `Accepted`, `ResolvedRefs`, ...
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RouteParentStatus {
    pub parent_ref: ParentReference,
    #[serde(default)]
    pub controller_name: String,
    #[serde(default)]
    pub conditions: Vec<Condition>,
}
