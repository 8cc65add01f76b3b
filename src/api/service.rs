//! `Service` (namespaced): one deployable workload of an Application. Paved turns
//! it into a Deployment, a core Service, an Ingress (when exposed) and a
//! HorizontalPodAutoscaler (when autoscaling), all named after it.

use k8s_openapi::api::core::v1::ResourceRequirements;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{Condition, EnvVar};

/// A Service: a container image with ports, configuration, scaling and exposure.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, KubeSchema)]
#[kube(
    group = "paved.dev",
    version = "v1alpha1",
    kind = "Service",
    plural = "services",
    namespaced,
    shortname = "psvc",
    category = "paved",
    status = "ServiceStatus",
    derive = "PartialEq",
    doc = "A Service of an Application: Paved runs it as a Deployment with a core Service, an Ingress when exposed and an HPA when autoscaling.",
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Application", type_ = "string", json_path = ".spec.application"),
    printcolumn(name = "Image", type_ = "string", json_path = ".status.image"),
    printcolumn(name = "Available", type_ = "integer", json_path = ".status.replicas.available"),
    printcolumn(name = "URL", type_ = "string", json_path = ".status.url"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 63 && self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')").message("Service names become Deployment, Service and DNS names: start with a lowercase letter, then lowercase letters, digits and '-', at most 63 characters"),
    validation = Rule::new("!has(self.spec.dependsOn) || !(self.metadata.name in self.spec.dependsOn)").message("a Service cannot depend on itself: remove it from spec.dependsOn"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.replicas) && has(self.autoscaling))").message("set either replicas or autoscaling, not both"),
    validation = Rule::new("!has(self.expose) || (has(self.ports) && size(self.ports) > 0)").message("an exposed Service needs at least one port in spec.ports"),
    validation = Rule::new("!has(self.health) || (has(self.ports) && self.ports.exists(p, p.name == self.health.port))").message("spec.health.port must be the name of one of spec.ports"),
)]
pub struct ServiceSpec {
    /// Name of the Application (in the same namespace) this Service belongs to.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 63)
    )]
    pub application: String,
    /// Container image, e.g. ghcr.io/acme/checkout-api:1.4.2. Changing it rolls out a new revision.
    #[schemars(regex(pattern = r"^[^\s]+$"), length(min = 1, max = 512))]
    pub image: String,
    /// Entrypoint override (the image's ENTRYPOINT when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Arguments (the image's CMD when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args: Option<Vec<String>>,
    /// Ports the container listens on; each becomes a port of the core Service.
    /// Names and port numbers must be unique.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(
        merge_strategy = ListMerge::Map(vec!["name".into()]),
        validation = Rule::new("self.all(p, self.exists_one(q, q.port == p.port))").message("port numbers in spec.ports must be unique"),
    )]
    pub ports: Vec<Port>,
    /// Environment variables. They are merged over the Application's `env`
    /// (the Service wins), and `dependsOn` adds `<NAME>_URL` variables.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 128))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub env: Vec<EnvVar>,
    /// Fixed number of pods (default 1). Mutually exclusive with autoscaling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub replicas: Option<i32>,
    /// Scale on CPU with a HorizontalPodAutoscaler. Mutually exclusive with replicas.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscaling: Option<Autoscaling>,
    /// CPU and memory requests and limits of the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// HTTP health check: readiness, liveness (more tolerant) and startup probes.
    /// Without it a Service with a TCP port gets TCP probes on that port, and
    /// one without any gets none (`status.probe: None`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<Health>,
    /// Expose the Service outside the cluster through an Ingress. `expose: {}`
    /// uses the host `<service>.<environment domain>` and the path `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Expose>,
    /// Names of Services of the same environment this one calls. Each injects
    /// `<NAME>_URL` (upper case, '-' becomes '_'), e.g. PAYMENTS_API_URL.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(
        length(max = 64),
        inner(regex(pattern = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"), length(max = 63))
    )]
    #[x_kube(merge_strategy = ListMerge::Set)]
    pub depends_on: Vec<DependencyName>,
    /// Set or change to any value (conventionally an RFC 3339 timestamp) to restart
    /// all pods, the GitOps-safe equivalent of `kubectl rollout restart`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub restarted_at: Option<String>,
    /// How the pod runs. Without it the pod passes PodSecurity `restricted`:
    /// non-root, seccomp `RuntimeDefault`, no privilege escalation, every
    /// capability dropped, no service-account token. `level: baseline` is the
    /// opt-out, refused where the Environment enforces `restricted`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<Security>,
}

/// The pod's security settings, and the one explicit opt-out from PodSecurity
/// `restricted`: `level: baseline`. An Environment that enforces `restricted`
/// (every `production` one, or `guardrails.podSecurity: restricted`) refuses a
/// Service with `level: baseline` (Stalled, reason `PodSecurityForbidden`).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!has(self.runAsUser) || self.runAsUser != 0 || (has(self.level) && self.level == 'baseline')").message("runAsUser: 0 runs as root, which only security.level: baseline allows: use a non-zero user or set level: baseline"),
    validation = Rule::new("!has(self.runAsNonRoot) || self.runAsNonRoot || (has(self.level) && self.level == 'baseline')").message("runAsNonRoot: false only goes with security.level: baseline"),
)]
pub struct Security {
    /// PodSecurity level the pod is built for. `restricted` (default): the
    /// hardened pod above. `baseline`: the opt-out for images that must run as
    /// root or keep the default capabilities; Paved then sets only seccomp
    /// `RuntimeDefault` and what is written here. Reviewable on purpose: an
    /// Environment enforcing `restricted` refuses it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<PodSecurityLevel>,
    /// UID the container runs as (an image whose USER is a name, not a number,
    /// needs one for `runAsNonRoot` to be checked). 0 needs `level: baseline`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub run_as_user: Option<i64>,
    /// GID of the container's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2147483647))]
    pub run_as_group: Option<i64>,
    /// Refuse to start a container whose user is root (default true; false
    /// needs `level: baseline`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_non_root: Option<bool>,
    /// Mount the root filesystem read-only (default false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only_root_filesystem: Option<bool>,
    /// The workload calls the Kubernetes API: mount the service-account token
    /// (default false, no token in the pod). Allowed at every level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_api: Option<bool>,
}

impl Security {
    /// The level asked for (`restricted` when unset).
    pub fn level(security: Option<&Security>) -> PodSecurityLevel {
        security.and_then(|s| s.level).unwrap_or_default()
    }
}

/// A PodSecurity Standards level (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>):
/// `baseline` prevents known privilege escalations (root and the default
/// capabilities allowed); `restricted` is hardened (non-root, seccomp, no
/// privilege escalation, no capabilities).
#[derive(
    Serialize,
    Deserialize,
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PodSecurityLevel {
    Baseline,
    #[default]
    Restricted,
}

impl PodSecurityLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            PodSecurityLevel::Baseline => "baseline",
            PodSecurityLevel::Restricted => "restricted",
        }
    }
}

/// Name of a Service this one depends on.
pub type DependencyName = String;

/// A container port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Port {
    /// Port name (IANA service name: lowercase letters, digits and single '-' between them, at least one letter, at most 15 characters), e.g. http.
    #[schemars(
        regex(pattern = r"^([a-z0-9]+-)*[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"),
        length(min = 1, max = 15)
    )]
    pub name: String,
    /// Port number, 1-65535.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// TCP (default), UDP or SCTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<Protocol>,
}

/// Transport protocol of a port.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, schemars::JsonSchema,
)]
pub enum Protocol {
    #[default]
    #[serde(rename = "TCP")]
    Tcp,
    #[serde(rename = "UDP")]
    Udp,
    #[serde(rename = "SCTP")]
    Sctp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
            Protocol::Sctp => "SCTP",
        }
    }
}

/// Horizontal autoscaling on CPU utilisation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.min <= self.max").message("autoscaling.min must be less than or equal to autoscaling.max"))]
pub struct Autoscaling {
    /// Minimum number of pods.
    #[schemars(range(min = 1, max = 1000))]
    pub min: i32,
    /// Maximum number of pods.
    #[schemars(range(min = 1, max = 1000))]
    pub max: i32,
    /// Target average CPU utilisation in percent of the requests (default 80).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub cpu_utilization: Option<i32>,
}

/// HTTP health check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    /// HTTP path answering 2xx when healthy, e.g. /healthz.
    #[schemars(regex(pattern = r"^/[^\s]*$"), length(max = 1024))]
    pub path: String,
    /// Name of the port (from spec.ports) serving the path.
    #[schemars(
        regex(pattern = r"^([a-z0-9]+-)*[a-z0-9]*[a-z][a-z0-9]*(-[a-z0-9]+)*$"),
        length(min = 1, max = 15)
    )]
    pub port: String,
}

/// How the Service is exposed outside the cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Expose {
    /// Host name; must be the environment's domain or a name under it.
    /// Default `<service>.<domain>`. The first Service to claim a host keeps it.
    /// A DNS name: labels of at most 63 characters, 253 in all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(
            pattern = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
        ),
        length(min = 1, max = 253)
    )]
    pub host: Option<String>,
    /// URL path prefix routed to the Service (default /).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/[^\s]*$"), length(max = 1024))]
    pub path: Option<String>,
}

/// Observed state of a Service: the catalog entry portals read.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The metadata.generation last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready, Reconciling, Stalled.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Image of the current revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Replica counts read from the Deployment.
    #[serde(default)]
    pub replicas: ReplicaCounts,
    /// Public URL, when exposed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// In-cluster address, `<service>.<namespace>.svc.cluster.local:<port>` (first port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Services this one depends on and whether each is Ready.
    #[serde(default)]
    pub dependencies: Vec<DependencyStatus>,
    /// Revision number, bumped each time the image or configuration changes.
    #[serde(default)]
    pub revision: i64,
    /// Latest revisions, newest first (at most 10).
    #[serde(default)]
    pub history: Vec<RevisionRecord>,
    /// How Kubernetes checks the pods: `HTTPGet` (spec.health), `TCPSocket`
    /// (no spec.health: the first TCP port) or `None` (no health path and no TCP
    /// port: a hung pod is neither restarted nor taken out of rotation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeKind>,
    /// The paved-path scorecard: what to change to follow the platform's
    /// practices, and a score (see the README's rule table).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorecard: Option<super::scorecard::Scorecard>,
    /// CPU and memory its pods use (sum and busiest pod) next to their requests and limits, from metrics.k8s.io (what `kubectl top` reads); `available: false`
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

/// How the pods of a Service are probed.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub enum ProbeKind {
    #[serde(rename = "HTTPGet")]
    HttpGet,
    #[serde(rename = "TCPSocket")]
    TcpSocket,
    None,
}

/// Replica counts, from the Deployment's status.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaCounts {
    /// Pods wanted (spec.replicas, or the HPA's choice).
    pub desired: i32,
    /// Pods passing readiness.
    pub ready: i32,
    /// Pods available for at least minReadySeconds.
    pub available: i32,
    /// Pods running the current revision.
    pub updated: i32,
}

/// A dependency and its readiness.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DependencyStatus {
    /// Service name.
    pub name: String,
    /// Whether it is Ready (false when it does not exist).
    pub ready: bool,
}

/// One deployed revision.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevisionRecord {
    /// Revision number.
    pub revision: i64,
    /// Image of the revision.
    pub image: String,
    /// Hash of the configuration of the revision (also on the pod template).
    pub config_hash: String,
    /// When Paved first applied this revision (RFC 3339).
    pub deployed_at: String,
}
