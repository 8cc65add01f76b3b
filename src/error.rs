//! The one error type of Paved.
//!
//! Variants say which step failed (resolve, validate, apply, status) and carry
//! the object. The first group are problems only the user can fix: reconcilers
//! turn them into `Stalled=True` conditions and Events rather than retries.
//! Every variant maps to a CamelCase reason, used both as the condition reason
//! and as the `reason` label of the error metric.

use crate::names::reasons;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- validate: needs a change from the user -------------------------------
    #[error(
        "namespace {namespace} already exists and was not created by Environment {environment}; Paved never adopts a namespace: delete the namespace or set spec.namespace to a new name"
    )]
    NamespaceConflict {
        environment: String,
        namespace: String,
    },

    #[error(
        "namespace {namespace} does not belong to any Environment; create the {kind} in the namespace of an Environment (kubectl get penv)"
    )]
    NotInEnvironment {
        kind: &'static str,
        namespace: String,
    },

    #[error(
        "Application {application} does not exist in namespace {namespace}; create it or change spec.application"
    )]
    ApplicationNotFound {
        application: String,
        namespace: String,
    },

    #[error(
        "host {host} is outside the Environment's domain {domain}; use {domain} or a name under it in spec.expose.host"
    )]
    HostOutsideDomain { host: String, domain: String },

    #[error(
        "the host {host} would be {length} characters, more than the 253 DNS allows; set a shorter spec.expose.host"
    )]
    HostTooLong { host: String, length: usize },

    #[error(
        "host {host} is already used by Service {holder}, which claimed it first; choose another spec.expose.host"
    )]
    HostConflict { host: String, holder: String },

    #[error(
        "spec.dependsOn names {} that do not exist in namespace {namespace}; create them or remove them from spec.dependsOn", missing.join(", ")
    )]
    DependencyNotFound {
        missing: Vec<String>,
        namespace: String,
    },

    #[error(
        "spec.security.level is {asked}, but Environment {environment} enforces PodSecurity {enforced} ({why}), where the API server would refuse every pod: remove spec.security.level (and runAsUser: 0 or runAsNonRoot: false) so the pod runs non-root without capabilities, or deploy the Service to an Environment that allows {asked}"
    )]
    PodSecurityForbidden {
        environment: String,
        enforced: &'static str,
        asked: &'static str,
        why: String,
    },

    #[error("{0}")]
    InvalidSchedule(String),

    #[error(
        "domain {domain} is a public suffix (Public Suffix List) or a single label: nobody may own every name under it; set spec.domain to a domain of your own, e.g. staging.example.com"
    )]
    PublicSuffixDomain { domain: String },

    #[error(
        "domain {domain} overlaps the domain {holder_domain} of Environment {holder}, which claimed it first; this Environment serves no host until spec.domain is changed, {holder} is deleted, or {holder} delegates it (spec.delegatedDomains)"
    )]
    DomainConflict {
        domain: String,
        holder: String,
        holder_domain: String,
    },

    #[error(
        "host {host} lies in {delegated}, which this Environment delegates to others (spec.delegatedDomains); choose a host outside it"
    )]
    HostInDelegatedDomain { host: String, delegated: String },

    #[error("{}", refused_message(step, object, status, retry_in))]
    Refused {
        step: &'static str,
        object: String,
        status: Box<kube::core::Status>,
        /// When the reconciler tries again (per-object backoff), once known.
        retry_in: Option<std::time::Duration>,
    },

    #[error(
        "the base Environment {base} of this preview does not exist any more; the copies of its Applications and Services keep running as they were: recreate {base}, point spec.cloneFrom.environment at another Environment, or delete this preview"
    )]
    BaseMissing { base: String },

    #[error(
        "{object} already exists and is {holder}, not this {owner_kind}'s; Paved never modifies or deletes an object it did not create: rename this {owner_kind}, or delete or rename the existing {object}"
    )]
    ChildConflict {
        object: String,
        holder: String,
        owner_kind: String,
    },

    #[error(
        "spec.dependsOn forms a cycle: {}; no Service can start before the others, remove one of these dependencies", cycle.join(" -> ")
    )]
    DependencyCycle { cycle: Vec<String> },

    #[error(
        "Environment {environment} exposes Services through Gateway API (spec.gateway), but this cluster does not serve HTTPRoute (gateway.networking.k8s.io/v1): install the Gateway API CRDs (Paved notices them without a restart) or expose through spec.ingress"
    )]
    GatewayApiMissing { environment: String },

    #[error(
        "spec.cloneFrom forms a cycle: {}; a preview cannot be cloned from itself or from an Environment cloned from it, point spec.cloneFrom.environment at an Environment outside the cycle", cycle.join(" -> ")
    )]
    CloneCycle { cycle: Vec<String> },

    // --- apply / status: transient, retried -----------------------------------
    #[error("{step} {object}: {}", api_message(source))]
    Kube {
        step: &'static str,
        object: String,
        #[source]
        source: kube::Error,
    },

    #[error("invalid object {0}")]
    InvalidObject(String),

    #[error("serializing {object}: {source}")]
    Serialization {
        object: String,
        #[source]
        source: serde_json::Error,
    },
}

impl Error {
    /// CamelCase reason: condition reason and metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::NamespaceConflict { .. } => reasons::NAMESPACE_CONFLICT,
            Error::NotInEnvironment { .. } => reasons::NOT_IN_ENVIRONMENT,
            Error::ApplicationNotFound { .. } => reasons::APPLICATION_NOT_FOUND,
            Error::HostOutsideDomain { .. } => reasons::HOST_OUTSIDE_DOMAIN,
            Error::HostTooLong { .. } => reasons::HOST_TOO_LONG,
            Error::HostConflict { .. } => reasons::HOST_CONFLICT,
            Error::DependencyNotFound { .. } => reasons::DEPENDENCY_NOT_FOUND,
            Error::PodSecurityForbidden { .. } => reasons::POD_SECURITY_FORBIDDEN,
            Error::InvalidSchedule(_) => reasons::INVALID_SCHEDULE,
            Error::PublicSuffixDomain { .. } => reasons::PUBLIC_SUFFIX_DOMAIN,
            Error::DomainConflict { .. } => reasons::DOMAIN_CONFLICT,
            Error::HostInDelegatedDomain { .. } => reasons::HOST_IN_DELEGATED_DOMAIN,
            Error::Refused { .. } => reasons::WRITE_REFUSED,
            Error::BaseMissing { .. } => reasons::BASE_MISSING,
            Error::ChildConflict { .. } => reasons::CHILD_CONFLICT,
            Error::DependencyCycle { .. } => reasons::DEPENDENCY_CYCLE,
            Error::CloneCycle { .. } => reasons::CLONE_CYCLE,
            Error::GatewayApiMissing { .. } => reasons::GATEWAY_API_MISSING,
            Error::Kube { step, .. } if step.starts_with("apply") => reasons::APPLY_FAILED,
            Error::Kube { .. } => reasons::KUBERNETES_ERROR,
            Error::InvalidObject(_) | Error::Serialization { .. } => reasons::INVALID_OBJECT,
        }
    }

    /// True when only a change from the user can fix it: the reconciler reports
    /// `Stalled` and waits for a change instead of retrying.
    pub fn is_stalled(&self) -> bool {
        matches!(
            self,
            Error::NamespaceConflict { .. }
                | Error::NotInEnvironment { .. }
                | Error::ApplicationNotFound { .. }
                | Error::HostOutsideDomain { .. }
                | Error::HostTooLong { .. }
                | Error::HostConflict { .. }
                | Error::DependencyNotFound { .. }
                | Error::PodSecurityForbidden { .. }
                | Error::InvalidSchedule(_)
                | Error::BaseMissing { .. }
                | Error::ChildConflict { .. }
                | Error::DependencyCycle { .. }
                | Error::CloneCycle { .. }
                | Error::GatewayApiMissing { .. }
                | Error::PublicSuffixDomain { .. }
                | Error::DomainConflict { .. }
                | Error::HostInDelegatedDomain { .. }
                | Error::Refused { .. }
        )
    }

    /// A write the API server refused: Stalled, but tried again with backoff
    /// (the cause may be another object, such as a quota or a policy).
    pub fn is_refused(&self) -> bool {
        matches!(self, Error::Refused { .. })
    }

    /// Record when a refused write will be tried again (shown in the message).
    pub fn set_retry_in(&mut self, after: std::time::Duration) {
        if let Error::Refused { retry_in, .. } = self {
            *retry_in = Some(after);
        }
    }

    pub fn kube(
        step: &'static str,
        object: impl Into<String>,
    ) -> impl FnOnce(kube::Error) -> Error {
        let object = object.into();
        move |source| match source {
            // A retry of the same request cannot succeed: the API server's
            // own words become the condition.
            kube::Error::Api(status)
                if matches!(status.code, 400 | 403 | 422) && step != "status" =>
            {
                Error::Refused {
                    step,
                    object,
                    status,
                    retry_in: None,
                }
            }
            source => Error::Kube {
                step,
                object,
                source,
            },
        }
    }
}

/// One line for a condition or an Event: the API server's own `message` for an
/// API error (never the debug form of the whole response), else the first line.
fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status
            .message
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
        kube::Error::Api(status) => format!("{} ({})", status.reason, status.code),
        other => other
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .to_string(),
    }
}

/// One line: what was refused, the API server's reason, message and fields.
fn refused_message(
    step: &str,
    object: &str,
    status: &kube::core::Status,
    retry_in: &Option<std::time::Duration>,
) -> String {
    const MAX: usize = 1024;
    let mut message: String = status
        .message
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if message.len() > MAX {
        let mut end = MAX;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    let fields: Vec<&str> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .filter_map(|c| (!c.field.is_empty()).then_some(c.field.as_str()))
        .collect();
    let mut line = format!(
        "the API server refused to {step} {object} ({} {}): {message}",
        status.code, status.reason
    );
    if !fields.is_empty() && !fields.iter().all(|f| message.contains(f)) {
        line.push_str(&format!(" (field {})", fields.join(", ")));
    }
    match retry_in {
        Some(after) => line.push_str(&format!(
            "; fix the cause, Paved tries again in {}s",
            after.as_secs()
        )),
        None => line.push_str("; fix the cause, Paved tries again later"),
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_errors_are_stalled_and_carry_their_reason() {
        let error = Error::HostOutsideDomain {
            host: "a.example.org".into(),
            domain: "example.com".into(),
        };
        assert!(error.is_stalled());
        assert_eq!(error.reason(), "HostOutsideDomain");
        assert!(error.to_string().contains("spec.expose.host"));
    }

    fn api_status(code: u16, reason: &str, message: &str, field: &str) -> kube::Error {
        let mut status = kube::core::Status::failure(message, reason).with_code(code);
        status.details = Some(
            serde_json::from_value(serde_json::json!({
                "causes": [{"reason": "FieldValueInvalid", "message": "bad", "field": field}]
            }))
            .unwrap(),
        );
        kube::Error::Api(Box::new(status))
    }

    #[test]
    fn a_refused_write_is_stalled_with_the_api_servers_message_on_one_line() {
        let mut error = Error::kube("apply", "Ingress shop/web")(api_status(
            422,
            "Invalid",
            "Ingress.networking.k8s.io \"web\" is invalid:\n spec.rules[0].host: Invalid value",
            "spec.rules[0].host",
        ));
        assert!(error.is_stalled() && error.is_refused());
        assert_eq!(error.reason(), "WriteRefused");
        error.set_retry_in(std::time::Duration::from_secs(20));
        let message = error.to_string();
        assert!(!message.contains('\n'), "{message}");
        assert!(!message.contains("Status {"), "no Debug dump: {message}");
        assert!(message.contains("422 Invalid"), "{message}");
        assert!(
            message.contains("spec.rules[0].host: Invalid value"),
            "{message}"
        );
        assert!(message.contains("tries again in 20s"), "{message}");
    }

    #[test]
    fn conflicts_and_server_errors_stay_transient() {
        for code in [404, 409, 429, 500, 503] {
            let error = Error::kube("apply", "Deployment a/b")(api_status(code, "X", "m", ""));
            assert!(!error.is_stalled(), "{code} must be retried as before");
        }
        let forbidden = Error::kube("apply", "Ingress a/b")(api_status(
            403,
            "Forbidden",
            "exceeded quota: no-ingress",
            "",
        ));
        assert!(forbidden.is_refused());
        assert!(forbidden.to_string().contains("exceeded quota: no-ingress"));
    }

    #[test]
    fn dependency_message_lists_every_missing_service() {
        let error = Error::DependencyNotFound {
            missing: vec!["a".into(), "b".into()],
            namespace: "staging".into(),
        };
        assert_eq!(error.reason(), "DependencyNotFound");
        assert!(error.to_string().contains("a, b"));
    }

    #[test]
    fn an_api_error_is_one_line_with_the_api_servers_message_not_a_dump() {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure",
            "message": "Deployment.apps \"web\" is invalid: spec.selector: Invalid value: field is immutable",
            "reason": "Invalid",
            "details": {"name": "web", "kind": "Deployment", "causes": [{"field": "spec.selector"}]},
            "code": 422
        }))
        .unwrap();
        // 422: refused, so Stalled with the API server's message (see Refused).
        let refused =
            Error::kube("apply", "Deployment shop/web")(kube::Error::Api(Box::new(status.clone())));
        assert_eq!(
            refused.to_string(),
            "the API server refused to apply Deployment shop/web (422 Invalid): Deployment.apps \"web\" is invalid: spec.selector: Invalid value: field is immutable; fix the cause, Paved tries again later"
        );
        // A status a retry may fix stays a transient Kube error, on one line too.
        let mut conflict = status;
        conflict.code = 409;
        let error =
            Error::kube("apply", "Deployment shop/web")(kube::Error::Api(Box::new(conflict)));
        let message = error.to_string();
        assert_eq!(
            message,
            "apply Deployment shop/web: Deployment.apps \"web\" is invalid: spec.selector: Invalid value: field is immutable"
        );
        assert!(!message.contains("Status {"), "no debug dump: {message}");
    }

    #[test]
    fn a_child_conflict_is_stalled_and_names_the_object_and_what_to_do() {
        let error = Error::ChildConflict {
            object: "Service shop/taken".into(),
            holder: "not created by Paved".into(),
            owner_kind: "Service".into(),
        };
        assert!(error.is_stalled());
        assert_eq!(error.reason(), "ChildConflict");
        let message = error.to_string();
        assert!(!message.contains('\n'));
        assert!(
            message.starts_with("Service shop/taken already exists"),
            "{message}"
        );
        assert!(
            message.contains(
                "rename this Service, or delete or rename the existing Service shop/taken"
            ),
            "{message}"
        );
    }
}
