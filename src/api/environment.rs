//! `Environment` (cluster-scoped): a place where applications run — a namespace,
//! a domain under which Services are exposed, ingress settings, who may work in
//! it (`access`), its guardrails (quota, defaults, network isolation), its
//! lifecycle (ttl, stop/start) and, for previews, the environment it follows
//! (`cloneFrom`).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, EnvVar};

/// An Environment owns one Namespace; Applications and Services live inside it.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Environment",
    plural = "environments",
    shortname = "penv",
    category = "paved",
    status = "EnvironmentStatus",
    derive = "PartialEq",
    doc = "An Environment (development, staging, production, preview) owns one Namespace; Applications and Services are declared inside it.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Type", type_ = "string", json_path = ".spec.type"),
    printcolumn(name = "Namespace", type_ = "string", json_path = ".status.namespace"),
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Services", type_ = "string", json_path = ".status.services.summary"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    // `-o wide` only (priority 1): the lifecycle and, for a preview, its base.
    printcolumn(name = "Stopped", type_ = "boolean", json_path = ".status.stopped", priority = 1),
    printcolumn(name = "Expires", type_ = "string", json_path = ".status.expiresAt", priority = 1),
    printcolumn(name = "Base", type_ = "string", json_path = ".status.base.environment", priority = 1),
    validation = Rule::new("has(self.spec.__namespace__) || (size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$'))").message("the Environment name is used as its namespace: make it a DNS label (lowercase letters, digits and '-', at most 63 characters) or set spec.namespace"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("has(self.__namespace__) == has(oldSelf.__namespace__)").message("spec.namespace is immutable: it cannot be added or removed after creation"),
    validation = Rule::new("!(has(self.type) && self.type == 'production' && has(self.guardrails) && has(self.guardrails.podSecurity) && self.guardrails.podSecurity != 'restricted')").message("a production Environment always enforces PodSecurity restricted: remove guardrails.podSecurity or set it to restricted"),
    validation = Rule::new("!(has(self.type) && self.type == 'production' && has(self.lifecycle) && has(self.lifecycle.ttl))").message("a production Environment cannot have spec.lifecycle.ttl: it would delete itself and its namespace; remove the ttl or use another type"),
    validation = Rule::new("!has(self.delegatedDomains) || self.delegatedDomains.all(d, d.endsWith('.' + self.domain))").message("every spec.delegatedDomains entry must be a name under spec.domain"),
    validation = Rule::new("!(has(self.ingress) && has(self.gateway))").message("set either spec.ingress (Ingresses) or spec.gateway (Gateway API HTTPRoutes), not both"),
)]
pub struct EnvironmentSpec {
    /// Kind of environment: development, staging, production or preview.
    #[serde(default, rename = "type")]
    pub type_: EnvironmentType,
    /// Namespace this Environment owns. Defaults to the Environment's name. Immutable.
    /// Paved creates it and never adopts a namespace that already exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.namespace is immutable"))]
    pub namespace: Option<String>,
    /// DNS domain of the environment, e.g. staging.example.com. Every exposed host
    /// must be this domain or a name under it; `expose: {}` picks `<service>.<domain>`.
    /// At least two labels of at most 63 characters, 253 in all, and not a public
    /// suffix (`com`, `co.uk`, `github.io`: the Public Suffix List). A domain
    /// belongs to one Environment: the first to claim it (by creationTimestamp,
    /// then name) keeps it, and another Environment whose domain equals it, or
    /// lies under or above it, is Stalled (`DomainConflict`) and serves no host,
    /// unless the upper one delegates it (`delegatedDomains`).
    #[schemars(
        regex(
            pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$"
        ),
        length(min = 3, max = 253)
    )]
    pub domain: String,
    /// Names under `domain` left to other Environments, e.g.
    /// `staging.shop.example.com` for staging and `preview.shop.example.com` for
    /// previews under a production at `shop.example.com`. An Environment whose
    /// domain is one of these, or under one, does not conflict with this one, and
    /// this Environment's Services cannot use hosts inside them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(
            regex(
                pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)+$"
            ),
            length(min = 3, max = 253)
        )
    )]
    pub delegated_domains: Vec<String>,
    /// Expose Services through Ingresses (the default when `gateway` is unset).
    /// Exclusive with `gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSettings>,
    /// Expose Services through Gateway API instead: each exposed Service gets an
    /// HTTPRoute attached to these shared Gateways, which own the listeners and
    /// TLS. Exclusive with `ingress`. Needs the Gateway API CRDs in the cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<GatewaySettings>,
    /// Who may work in the environment: each entry becomes a RoleBinding in its
    /// namespace to the ClusterRole `paved-developer` or `paved-viewer`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub access: Vec<AccessGrant>,
    /// ResourceQuota, LimitRange defaults and network isolation of the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guardrails: Option<Guardrails>,
    /// Expiry (ttl) and stop/start, by hand or on a schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<EnvironmentLifecycle>,
    /// Make this environment a preview of another one: its Applications and
    /// Services are copied here and kept following the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clone_from: Option<CloneFrom>,
}

/// One subject granted a role in the environment's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.group) != has(self.user)").message("set exactly one of group or user"))]
pub struct AccessGrant {
    /// A group, as the apiserver's authenticator reports it (e.g. an OIDC group claim).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub group: Option<String>,
    /// A user name, as the apiserver's authenticator reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub user: Option<String>,
    /// developer: create, change and delete Applications and Services and read
    /// their children; viewer: read only.
    pub role: AccessRole,
}

/// Role granted by an [`AccessGrant`].
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum AccessRole {
    Developer,
    #[default]
    Viewer,
}

impl AccessRole {
    pub fn as_str(self) -> &'static str {
        match self {
            AccessRole::Developer => "developer",
            AccessRole::Viewer => "viewer",
        }
    }
}

/// Guardrails of the namespace: how much it may use, what a container gets by
/// default, and who may talk to it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Guardrails {
    /// A ResourceQuota `paved-quota` on the namespace's total requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Quota>,
    /// A LimitRange `paved-defaults` giving containers without their own
    /// requests/limits these values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub defaults: Option<Defaults>,
    /// true: a NetworkPolicy `paved-isolation` denies ingress except from pods of
    /// the same namespace and from the ingress controller's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_isolation: Option<bool>,
    /// PodSecurity level enforced on the namespace (label
    /// `pod-security.kubernetes.io/enforce`). `restricted` also refuses Services
    /// with `spec.security.level: baseline`. Default: `restricted` in a
    /// `production` Environment (which cannot lower it), none elsewhere.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_security: Option<crate::api::service::PodSecurityLevel>,
}

/// Upper bounds on the namespace's total resource requests.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct Quota {
    /// Total CPU requests, e.g. "20" or 500m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 0 : isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))").message("quota.cpu must be a quantity of at least 0, e.g. \"4\" or 500m"))]
    pub cpu: Option<Quantity>,
    /// Total memory requests, e.g. 40Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 0 : isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))").message("quota.memory must be a quantity of at least 0, e.g. 40Gi"))]
    pub memory: Option<Quantity>,
    /// Number of pods, e.g. "100".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("type(self) == int ? self >= 0 : isQuantity(string(self)) && !quantity(string(self)).isLessThan(quantity('0'))").message("quota.pods must be a quantity of at least 0, e.g. \"100\""))]
    pub pods: Option<Quantity>,
}

/// Defaults for containers that do not set their own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Defaults {
    /// Default requests and limits per container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<DefaultResources>,
}

/// Default container requests and limits, by resource name (cpu, memory, ...).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct DefaultResources {
    /// Default requests, e.g. {cpu: 100m, memory: 128Mi}.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])").message("default requests can be set for cpu, memory and ephemeral-storage"),
        validation = Rule::new("self.all(k, type(self[k]) == int ? self[k] >= 0 : isQuantity(string(self[k])) && !quantity(string(self[k])).isLessThan(quantity('0')))").message("default requests must be quantities of at least 0, e.g. 100m or 128Mi"),
    )]
    #[schemars(extend("maxProperties" = 3))]
    pub requests: BTreeMap<String, Quantity>,
    /// Default limits, e.g. {memory: 512Mi}.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(
        validation = Rule::new("self.all(k, k in ['cpu', 'memory', 'ephemeral-storage'])").message("default limits can be set for cpu, memory and ephemeral-storage"),
        validation = Rule::new("self.all(k, type(self[k]) == int ? self[k] >= 0 : isQuantity(string(self[k])) && !quantity(string(self[k])).isLessThan(quantity('0')))").message("default limits must be quantities of at least 0, e.g. 512Mi"),
    )]
    #[schemars(extend("maxProperties" = 3))]
    pub limits: BTreeMap<String, Quantity>,
}

/// When the environment expires, and when its workloads are scaled to zero.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentLifecycle {
    /// Time to live, counted from the Environment's creation: days, hours,
    /// minutes, seconds, e.g. 72h, 7d, 1h30m; at least 1m (a shorter one would
    /// delete a new Environment, and its namespace, before anything ran in it).
    /// When it has passed, the Environment deletes itself (and its namespace).
    /// Raising it extends the life; `status.expiresAt` says when. Not allowed on
    /// a production Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]{1,5}d)?([0-9]{1,6}h)?([0-9]{1,7}m)?([0-9]{1,9}s)?$"),
        length(min = 2, max = 32)
    )]
    #[x_kube(validation = Rule::new("!self.matches('^(0+d)?(0+h)?(0+m)?(0*[1-5]?[0-9]s)?$')").message("ttl must be at least 1m"))]
    pub ttl: Option<String>,
    /// true: every workload of the environment is scaled to zero (HPAs removed),
    /// nothing deleted; false again restores the declared replicas and HPAs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<bool>,
    /// Stop and start on a timetable (e.g. nights and weekends). `stopped: true`
    /// wins over the schedule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schedule: Option<StopSchedule>,
}

/// A stop/start timetable: two cron expressions in one time zone. The
/// environment is stopped from each `stop` time until the next `start` time.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.stop != self.start").message("schedule.stop and schedule.start must differ"))]
pub struct StopSchedule {
    /// When to stop: a five-field cron expression (minute hour day-of-month
    /// month day-of-week), e.g. "0 20 * * 1-5" for 20:00 on weekdays.
    #[schemars(regex(pattern = r"^\S+( +\S+){4}$"), length(min = 9, max = 128))]
    pub stop: String,
    /// When to start again, same format, e.g. "0 7 * * 1-5".
    #[schemars(regex(pattern = r"^\S+( +\S+){4}$"), length(min = 9, max = 128))]
    pub start: String,
    /// IANA time zone of both expressions, e.g. Europe/Paris (default UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[A-Za-z0-9_+\-]+(/[A-Za-z0-9_+\-]+)*$"),
        length(min = 1, max = 64)
    )]
    pub time_zone: Option<String>,
}

/// The environment a preview follows.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneFrom {
    /// Name of the source Environment. Its Applications and Services are copied
    /// into this environment's namespace and follow it; an Application or
    /// Service created here by a user under the same name takes precedence.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub environment: String,
    /// Changes to named cloned Services (e.g. the image built from a pull request).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["service".into()]))]
    pub overrides: Vec<CloneOverride>,
}

/// A change applied to one cloned Service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloneOverride {
    /// Name of the Service in the source environment.
    #[schemars(
        regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub service: String,
    /// Image to run instead of the source's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[^\s]+$"), length(min = 1, max = 512))]
    pub image: Option<String>,
    /// Environment variables merged over the source Service's (same name: this one wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    pub env: Vec<EnvVar>,
    /// Number of pods instead of the source's (replaces its autoscaling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
}

/// Kind of an Environment.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum EnvironmentType {
    #[default]
    Development,
    Staging,
    Production,
    Preview,
}

impl EnvironmentType {
    pub fn as_str(self) -> &'static str {
        match self {
            EnvironmentType::Development => "development",
            EnvironmentType::Staging => "staging",
            EnvironmentType::Production => "production",
            EnvironmentType::Preview => "preview",
        }
    }
}

/// Ingress settings applied to every exposed Service of the environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSettings {
    /// IngressClass of the generated Ingresses, e.g. nginx. Unset: the cluster's default class.
    /// The name of an IngressClass: a DNS subdomain (lowercase letters, digits, '-' and '.').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub class_name: Option<String>,
    /// Serve exposed hosts over TLS with a certificate from cert-manager.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSettings>,
}

/// Gateway API exposure: the Gateways every exposed Service's HTTPRoute attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySettings {
    /// Gateways (or listeners of a Gateway) the routes attach to, usually one
    /// shared Gateway run by the platform team. Each at most once.
    #[schemars(length(min = 1, max = 32))]
    #[x_kube(validation = Rule::new("self.all(a, self.exists_one(b, a.name == b.name && a.__namespace__ == b.__namespace__ && ((!has(a.sectionName) && !has(b.sectionName)) || (has(a.sectionName) && has(b.sectionName) && a.sectionName == b.sectionName))))").message("every spec.gateway.parentRefs entry must name a different Gateway (or listener): namespace, name and sectionName"))]
    pub parent_refs: Vec<GatewayParentRef>,
}

/// A Gateway (`gateway.networking.k8s.io/v1`) an HTTPRoute attaches to.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayParentRef {
    /// Namespace of the Gateway. Its listeners must allow routes from this
    /// environment's namespace (`allowedRoutes`).
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub namespace: String,
    /// Name of the Gateway.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// One listener of the Gateway (its `name`); unset: every listener that accepts the route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"),
        length(min = 1, max = 253)
    )]
    pub section_name: Option<String>,
}

/// TLS through cert-manager.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSettings {
    /// cert-manager ClusterIssuer that signs the certificates (annotation `cert-manager.io/cluster-issuer`).
    #[schemars(length(min = 1, max = 253))]
    pub cluster_issuer: String,
}

/// Observed state of an Environment: its namespace and a summary of what runs in it.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EnvironmentStatus {
    /// The metadata.generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Namespace owned by this Environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Kind of environment, copied from spec for portals.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    /// Applications in the environment and whether all their Services are ready.
    #[serde(default)]
    pub applications: Vec<ApplicationSummary>,
    /// How many Services run in the environment and how many are ready.
    #[serde(default)]
    pub services: ServiceCounts,
    /// URLs of the exposed Services, sorted.
    #[serde(default)]
    pub urls: Vec<String>,
    /// When the Environment deletes itself (RFC 3339): creationTimestamp +
    /// spec.lifecycle.ttl. Absent without a ttl.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// Whether the environment's workloads are scaled to zero right now:
    /// spec.lifecycle.stopped, or inside a stopped window of the schedule.
    #[serde(default)]
    pub stopped: bool,
    /// When a scheduled stop ends (RFC 3339). Absent when not stopped by the
    /// schedule (stopped by hand lasts until spec.lifecycle.stopped is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_until: Option<String>,
    /// When the schedule flips the environment next (RFC 3339), stop or start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_transition: Option<String>,
    /// For a preview (spec.cloneFrom): what is copied from the base environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<BaseStatus>,
    /// With guardrails.quota: the quota and what the namespace uses of it, as
    /// the ResourceQuota `paved-quota` reports them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaUsage>,
    /// The domain this Environment holds, and since when. Claims are ordered by
    /// this time, so an Environment that moves its `spec.domain` onto a domain
    /// another one holds queues behind it, however old it is. Absent while the
    /// Environment holds no domain (DomainConflict, PublicSuffixDomain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainClaim>,
    /// The paved-path scorecard of everything in the namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<super::scorecard::Scorecard>,
    /// CPU and memory the pods of its namespace use, summed, against their requests and the quota, from metrics.k8s.io (what `kubectl top` reads); `available: false`
    /// and a reason when the cluster serves no metrics (README: "Usage").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<super::usage::Usage>,
    /// Monthly cost estimate from requests (and from usage), when an admin set prices (README: "Cost").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost: Option<super::cost::CostEstimate>,
    /// Delivery metrics: deploys, change failures, time to restore, lead time,
    /// counted from `since` (README: "Delivery metrics").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<super::delivery::Delivery>,
}

/// A domain held, and since when (RFC 3339).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DomainClaim {
    pub name: String,
    pub since: String,
}

/// Requested resources against the quota, e.g. hard {requests.cpu: "4"}, used {requests.cpu: 250m}.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaUsage {
    /// The limits (requests.cpu, requests.memory, pods).
    #[serde(default)]
    pub hard: BTreeMap<String, String>,
    /// What the namespace's pods request now.
    #[serde(default)]
    pub used: BTreeMap<String, String>,
}

/// What a preview copies from its base environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BaseStatus {
    /// Name of the base Environment.
    pub environment: String,
    /// Whether the base exists. When it is gone, the copies stay as they were.
    pub present: bool,
    /// Applications copied from the base, sorted.
    #[serde(default)]
    pub applications: Vec<String>,
    /// Services copied from the base, sorted.
    #[serde(default)]
    pub services: Vec<String>,
    /// Cloned Services changed by spec.cloneFrom.overrides, sorted.
    #[serde(default)]
    pub overridden: Vec<String>,
    /// Applications and Services of the base not copied because an object of
    /// the same kind and name, created here by someone else, takes precedence
    /// ("Service/checkout-api"), sorted.
    #[serde(default)]
    pub shadowed: Vec<String>,
}

/// An Application as seen from its Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationSummary {
    /// Application name.
    pub name: String,
    /// True when every Service of the Application is ready.
    pub ready: bool,
}

/// Service counts of an Environment.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceCounts {
    /// Number of Services in the environment.
    pub total: i32,
    /// Number of ready Services.
    pub ready: i32,
    /// "ready/total", for printer columns.
    #[serde(default)]
    pub summary: String,
}

impl Environment {
    /// The namespace this Environment owns: `spec.namespace`, or its name.
    /// [`Self::namespace_name`] without a copy, for lookups on hot paths.
    pub fn namespace_str(&self) -> &str {
        self.spec
            .namespace
            .as_deref()
            .or(self.metadata.name.as_deref())
            .unwrap_or_default()
    }

    /// The PodSecurity level enforced on the namespace: `restricted` in a
    /// `production` Environment, else `guardrails.podSecurity` (none when unset).
    pub fn enforced_pod_security(&self) -> Option<crate::api::service::PodSecurityLevel> {
        if self.spec.type_ == EnvironmentType::Production {
            return Some(crate::api::service::PodSecurityLevel::Restricted);
        }
        self.spec.guardrails.as_ref()?.pod_security
    }

    pub fn namespace_name(&self) -> String {
        self.spec
            .namespace
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }
}
