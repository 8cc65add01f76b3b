//! Every name Paved writes into the cluster: label and annotation keys, condition
//! types and reasons, the field manager and the finalizer.
//!
//! They live in one place so that a portal, an e2e test or a `kubectl get -l`
//! can rely on them, and so that renaming one is a one-line change.

/// API group of the three kinds.
pub const GROUP: &str = "paved.dev";

/// Server-side-apply field manager for every object Paved writes.
pub const FIELD_MANAGER: &str = "paved";
/// Field manager of the Day-2 commands (`paved rollback`, `restart`, `stop`,
/// `start`): they change a user's spec on the user's behalf, so they must never
/// share the controller's manager.
pub const CLI_FIELD_MANAGER: &str = "paved-cli";
/// Name reported on Events and used as the Lease holder prefix.
pub const CONTROLLER_NAME: &str = "paved-controller";
/// Finalizer on Environments: lets Paved delete the namespace it created.
pub const ENVIRONMENT_FINALIZER: &str = "paved.dev/namespace-cleanup";

/// Standard labels (<https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/>).
pub mod labels {
    pub const NAME: &str = "app.kubernetes.io/name";
    pub const PART_OF: &str = "app.kubernetes.io/part-of";
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value of `app.kubernetes.io/managed-by` on everything Paved creates.
    pub const MANAGED_BY_PAVED: &str = "paved";

    pub const ENVIRONMENT: &str = "paved.dev/environment";
    pub const APPLICATION: &str = "paved.dev/application";
    pub const SERVICE: &str = "paved.dev/service";
    /// On an Application or Service a preview copied from its base: the base
    /// Environment's name. Only objects carrying it are overwritten or deleted
    /// by the preview; one without it (created by a user) takes precedence.
    pub const CLONED_FROM: &str = "paved.dev/cloned-from";

    /// Backstage's Kubernetes plugin finds workloads by this label; its value is the application.
    pub const BACKSTAGE_KUBERNETES_ID: &str = "backstage.io/kubernetes-id";

    /// On an Environment's namespace: the PodSecurity level the API server enforces
    /// (<https://kubernetes.io/docs/concepts/security/pod-security-admission/>).
    pub const POD_SECURITY_ENFORCE: &str = "pod-security.kubernetes.io/enforce";
    /// Same level, as warnings to whoever applies a pod that violates it.
    pub const POD_SECURITY_WARN: &str = "pod-security.kubernetes.io/warn";

    /// Label selector matching every child Paved manages.
    pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=paved";

    /// Label prefixes and keys that must never be copied from a parent to a child:
    /// Argo CD tracks ownership with them and would prune the child.
    pub const NEVER_PROPAGATED: &[&str] = &[
        "app.kubernetes.io/instance",
        "argocd.argoproj.io/",
        "helm.sh/",
        "meta.helm.sh/",
        "kubectl.kubernetes.io/",
    ];
}

pub mod annotations {
    /// `kubectl apply`'s copy of the last applied object: never read, never
    /// kept in the stores.
    pub const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    /// Cortex tags services with this annotation; its value is the Service.
    pub const CORTEX_TAG: &str = "cortex.io/tag";
    /// On a Namespace: UID of the Environment that created it. Paved only
    /// manages (and deletes) namespaces carrying the UID of their Environment.
    pub const CREATED_BY_ENVIRONMENT: &str = "paved.dev/created-by-environment";
    /// On the pod template: hash of the configuration the pods run with
    /// (resolved env, referenced ConfigMap/Secret data, restartedAt); a change rolls the pods.
    pub const CONFIG_HASH: &str = "paved.dev/config-hash";
    /// On every object Paved applies: digest of what it applied, so an unchanged
    /// object is recognised (and not written) even after a restart.
    pub const APPLIED_DIGEST: &str = "paved.dev/applied-digest";
    /// On the pod template: the Service's `spec.restartedAt`, so setting it rolls the pods.
    pub const RESTARTED_AT: &str = "paved.dev/restarted-at";
    /// On an Ingress: cert-manager picks the issuer from this annotation.
    pub const CERT_MANAGER_CLUSTER_ISSUER: &str = "cert-manager.io/cluster-issuer";
    /// On a Service, set by CI with the image: when the commit it deploys was
    /// made (RFC 3339). A new revision's lead time runs from it.
    pub const COMMIT_TIME: &str = "paved.dev/commit-time";
}

/// kstatus condition types.
pub mod conditions {
    pub const READY: &str = "Ready";
    pub const RECONCILING: &str = "Reconciling";
    pub const STALLED: &str = "Stalled";
}

/// CamelCase condition reasons; also the `reason` label of the error metric.
pub mod reasons {
    // Ready=True
    pub const AVAILABLE: &str = "Available";
    pub const NAMESPACE_READY: &str = "NamespaceReady";
    pub const ALL_SERVICES_READY: &str = "AllServicesReady";
    /// A Service of a stopped Environment with no pods left: what was asked for,
    /// so Ready=True (kstatus Current, Argo CD Healthy), with this reason.
    pub const STOPPED: &str = "Stopped";
    // Reconciling=True
    /// The CRDs' default status ([`crate::cli::crd`]): not reconciled yet.
    pub const PENDING: &str = "Pending";
    pub const ROLLING_OUT: &str = "RollingOut";
    pub const PROVISIONING: &str = "Provisioning";
    pub const SERVICES_NOT_READY: &str = "ServicesNotReady";
    /// Scaling to zero because the Environment stopped; pods still terminating.
    pub const STOPPING: &str = "Stopping";
    /// The HTTPRoute is written; no Gateway has reported on it yet.
    pub const WAITING_FOR_GATEWAY: &str = "WaitingForGateway";
    // Stalled=True: needs a change from the user.
    pub const NAMESPACE_CONFLICT: &str = "NamespaceConflict";
    pub const NOT_IN_ENVIRONMENT: &str = "NotInEnvironment";
    pub const APPLICATION_NOT_FOUND: &str = "ApplicationNotFound";
    pub const HOST_OUTSIDE_DOMAIN: &str = "HostOutsideDomain";
    /// `<service>.<domain>` is longer than DNS allows (253 characters).
    pub const HOST_TOO_LONG: &str = "HostTooLong";
    pub const HOST_CONFLICT: &str = "HostConflict";
    pub const DEPENDENCY_NOT_FOUND: &str = "DependencyNotFound";
    /// spec.lifecycle.schedule cannot be evaluated (cron or time zone).
    pub const INVALID_SCHEDULE: &str = "InvalidSchedule";
    /// spec.security.level is below the PodSecurity level the Environment enforces.
    pub const POD_SECURITY_FORBIDDEN: &str = "PodSecurityForbidden";
    /// A preview's base Environment (spec.cloneFrom.environment) is gone; the copies stay.
    pub const BASE_MISSING: &str = "BaseMissing";
    /// A child's name is held by an object Paved did not create (or another owner's):
    /// Paved leaves it alone and waits for the user to rename or remove one of them.
    pub const CHILD_CONFLICT: &str = "ChildConflict";
    /// The Deployment cannot create pods (its `ReplicaFailure` condition: a
    /// ResourceQuota or LimitRange refusing them, admission, ...).
    pub const REPLICA_FAILURE: &str = "ReplicaFailure";
    /// The Deployment's rollout made no progress within its progress deadline.
    pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";
    /// A Secret or ConfigMap key the Service reads through `valueFrom` does not exist.
    pub const CONFIG_NOT_FOUND: &str = "ConfigNotFound";
    /// On an Application or Environment: one of its Services is Stalled.
    pub const SERVICE_STALLED: &str = "ServiceStalled";
    /// spec.dependsOn of Services forms a cycle.
    pub const DEPENDENCY_CYCLE: &str = "DependencyCycle";
    /// spec.cloneFrom of Environments forms a cycle (a preview cloned from itself, ...).
    pub const CLONE_CYCLE: &str = "CloneCycle";
    /// The Environment's domain is a public suffix (`com`, `co.uk`, `github.io`).
    pub const PUBLIC_SUFFIX_DOMAIN: &str = "PublicSuffixDomain";
    /// Another Environment claimed an equal, parent or child domain first.
    pub const DOMAIN_CONFLICT: &str = "DomainConflict";
    /// The host lies in a domain its Environment delegated to others.
    pub const HOST_IN_DELEGATED_DOMAIN: &str = "HostInDelegatedDomain";
    /// An Environment exposes through Gateway API, but the cluster has no HTTPRoute CRD.
    pub const GATEWAY_API_MISSING: &str = "GatewayApiMissing";
    /// No Gateway the HTTPRoute names accepts it (its `Accepted` condition is False).
    pub const ROUTE_NOT_ACCEPTED: &str = "RouteNotAccepted";
    /// A Gateway accepted the HTTPRoute but cannot resolve its backend (`ResolvedRefs` False).
    pub const ROUTE_REFS_NOT_RESOLVED: &str = "RouteRefsNotResolved";
    /// The API server refused a write for a reason a retry cannot fix (400, 403,
    /// 422): retried with a growing interval, as the cause may lie elsewhere.
    pub const WRITE_REFUSED: &str = "WriteRefused";
    /// Event reason: the Environment's ttl has passed and it deletes itself.
    pub const EXPIRED: &str = "Expired";
    // Transient failures (retried).
    pub const APPLY_FAILED: &str = "ApplyFailed";
    pub const KUBERNETES_ERROR: &str = "KubernetesError";
    pub const INVALID_OBJECT: &str = "InvalidObject";
}

/// Event `action` values.
pub mod actions {
    pub const RECONCILE: &str = "Reconcile";
    pub const VALIDATE: &str = "Validate";
    pub const DELETE_NAMESPACE: &str = "DeleteNamespace";
    pub const EXPIRE: &str = "Expire";
}
