//! The catalog page: a read-only web view of what runs where, for teams that
//! run no portal. `paved run` serves it beside `/metrics` (see
//! `runtime::page`), from the reflector stores the controllers already keep,
//! so a page view costs no API call.
//!
//! ```text
//! Stores ──(runtime::page, a snapshot of Arcs)──▶ Catalog ──(html: pure)──▶ HTML
//!                                                        └─(svg: pure)──▶ inline SVG
//! ```
//!
//! Everything here is pure: a [`Catalog`] in, markup out, so the pages are
//! unit-tested and benchmarked without a cluster. Everything a user wrote is
//! escaped by the template engine (maud escapes every interpolation), and a
//! link becomes live only when [`safe_href`] accepts it (http and https).

pub mod children;
pub mod html;
pub mod svg;

use std::collections::BTreeMap;
use std::sync::Arc;

use kube::ResourceExt;

use crate::api::environment::EnvironmentType;
use crate::api::{Application, Condition, Environment, Service};
use crate::names::{conditions, reasons};

/// What the pages are rendered from: the three kinds, as the stores hold them.
#[derive(Clone, Default)]
pub struct Catalog {
    pub environments: Vec<Arc<Environment>>,
    pub applications: Vec<Arc<Application>>,
    pub services: Vec<Arc<Service>>,
}

/// A child of a Service as the Service page shows it: kind, name and a
/// one-line state ("2/2 ready", "host shop.example.com"), read from the stores.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChildState {
    pub kind: &'static str,
    pub name: String,
    pub state: String,
    /// False when the child reports a problem (no ready replica, ...).
    pub healthy: bool,
}

impl Catalog {
    /// Environments in the order of the overview's columns: development,
    /// staging, production, then previews; by name within a type.
    pub fn environments_in_order(&self) -> Vec<&Environment> {
        let mut envs: Vec<&Environment> = self.environments.iter().map(|e| e.as_ref()).collect();
        envs.sort_by_key(|e| (type_rank(&e.spec.type_), e.name_any()));
        envs
    }

    pub fn environment(&self, name: &str) -> Option<&Environment> {
        self.environments
            .iter()
            .map(|e| e.as_ref())
            .find(|e| e.metadata.name.as_deref() == Some(name))
    }

    /// The Environment that owns `namespace`.
    pub fn environment_of(&self, namespace: &str) -> Option<&Environment> {
        self.environments
            .iter()
            .map(|e| e.as_ref())
            .find(|e| e.namespace_str() == namespace)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services.iter().map(|s| s.as_ref()).find(|s| {
            in_namespace(&s.metadata, namespace) && s.metadata.name.as_deref() == Some(name)
        })
    }

    pub fn application(&self, namespace: &str, name: &str) -> Option<&Application> {
        self.applications.iter().map(|a| a.as_ref()).find(|a| {
            in_namespace(&a.metadata, namespace) && a.metadata.name.as_deref() == Some(name)
        })
    }

    /// Services of `namespace`, sorted by Application then name.
    pub fn services_in(&self, namespace: &str) -> Vec<&Service> {
        let mut services: Vec<&Service> = self
            .services
            .iter()
            .map(|s| s.as_ref())
            .filter(|s| in_namespace(&s.metadata, namespace))
            .collect();
        services.sort_by(|a, b| {
            (&a.spec.application, a.metadata.name.as_deref())
                .cmp(&(&b.spec.application, b.metadata.name.as_deref()))
        });
        services
    }

    /// The overview's rows: per Application name (across Environments), its
    /// Service names; each cell is the Service of that name in a namespace.
    pub fn matrix(&self) -> Matrix<'_> {
        let mut rows: BTreeMap<String, BTreeMap<String, BTreeMap<String, &Service>>> =
            BTreeMap::new();
        for service in &self.services {
            let namespace = service.metadata.namespace.clone().unwrap_or_default();
            rows.entry(service.spec.application.clone())
                .or_default()
                .entry(service.name_any())
                .or_default()
                .insert(namespace, service.as_ref());
        }
        for app in &self.applications {
            rows.entry(app.name_any()).or_default();
        }
        Matrix { rows }
    }
}

/// Application name → Service name → namespace → Service.
pub struct Matrix<'a> {
    pub rows: BTreeMap<String, BTreeMap<String, BTreeMap<String, &'a Service>>>,
}

fn in_namespace(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
) -> bool {
    meta.namespace.as_deref() == Some(namespace)
}

fn type_rank(type_: &EnvironmentType) -> u8 {
    match type_ {
        EnvironmentType::Development => 0,
        EnvironmentType::Staging => 1,
        EnvironmentType::Production => 2,
        EnvironmentType::Preview => 3,
    }
}

/// How an object is doing, read from its kstatus conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    Ready,
    /// Work in flight (`Reconciling`), or not ready yet without a reason to stall.
    Progressing,
    /// Cannot proceed without a change from the user.
    Stalled,
    /// Scaled to zero by its Environment.
    Stopped,
    /// No status yet.
    Unknown,
}

impl Health {
    pub fn of(conditions: &[Condition]) -> Health {
        let is_true = |type_: &str| {
            conditions
                .iter()
                .any(|c| c.type_ == type_ && c.status == "True")
        };
        let ready = conditions.iter().find(|c| c.type_ == conditions::READY);
        if is_true(conditions::STALLED) {
            Health::Stalled
        } else if is_true(conditions::READY) {
            Health::Ready
        } else if ready.is_some_and(|c| c.reason == reasons::STOPPED) {
            Health::Stopped
        } else if ready.is_some() {
            Health::Progressing
        } else {
            Health::Unknown
        }
    }

    pub fn of_service(service: &Service) -> Health {
        Health::of(service.status.as_ref().map_or(&[][..], |s| &s.conditions))
    }

    pub fn label(self) -> &'static str {
        match self {
            Health::Ready => "Ready",
            Health::Progressing => "Progressing",
            Health::Stalled => "Stalled",
            Health::Stopped => "Stopped",
            Health::Unknown => "Pending",
        }
    }

    /// CSS class (and SVG colour key) of the state.
    pub fn class(self) -> &'static str {
        match self {
            Health::Ready => "ok",
            Health::Progressing => "busy",
            Health::Stalled => "bad",
            Health::Stopped | Health::Unknown => "idle",
        }
    }
}

/// `url` as an href, or None when it must stay text: only absolute http and
/// https URLs become links, so `javascript:`, `data:` and friends never do.
/// Control characters and whitespace inside the URL also refuse it (browsers
/// strip them, which is how `java\tscript:` sneaks past naive checks).
pub fn safe_href(url: &str) -> Option<&str> {
    let url = url.trim();
    if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return None;
    }
    let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
    let rest = if lower.starts_with("https://") {
        &url[8..]
    } else if lower.starts_with("http://") {
        &url[7..]
    } else {
        return None;
    };
    (!rest.is_empty() && !rest.starts_with('/')).then_some(url)
}

/// The version people talk about: an image's tag (`1.4.2`), a shortened
/// digest (`sha256:1a2b3c4d`), or `latest` when it names neither.
pub fn version(image: &str) -> &str {
    if let Some((_, digest)) = image.split_once('@') {
        return digest.get(..15).unwrap_or(digest);
    }
    let last_segment = image.rsplit('/').next().unwrap_or(image);
    match last_segment.rsplit_once(':') {
        Some((_, tag)) if !tag.is_empty() => tag,
        _ => "latest",
    }
}

/// A path segment of a page URL. Kubernetes names are DNS labels and pass
/// through as they are; anything else is percent-encoded.
pub fn segment(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// Where each page lives (under the prefix the server mounts them at).
pub mod paths {
    use super::segment;

    pub const OVERVIEW: &str = "/catalog";
    pub const STYLESHEET: &str = "/catalog/assets/page.css";
    pub const SCRIPT: &str = "/catalog/assets/reload.js";

    pub fn environment(name: &str) -> String {
        format!("/catalog/environments/{}", segment(name))
    }

    pub fn application(namespace: &str, name: &str) -> String {
        format!(
            "/catalog/applications/{}/{}",
            segment(namespace),
            segment(name)
        )
    }

    pub fn service(namespace: &str, name: &str) -> String {
        format!("/catalog/services/{}/{}", segment(namespace), segment(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_http_and_https_urls_become_links() {
        assert_eq!(
            safe_href("https://shop.example.com/"),
            Some("https://shop.example.com/")
        );
        assert_eq!(
            safe_href(" HTTP://shop.example.com "),
            Some("HTTP://shop.example.com")
        );
        for hostile in [
            "javascript:alert(1)",
            "JavaScript:document.title='x'",
            "java\tscript:alert(1)",
            "\u{0}javascript:alert(1)",
            "data:text/html,<script>alert(1)</script>",
            "vbscript:msgbox",
            "//evil.example.com",
            "https:///path-only",
            "https://",
            "/catalog/relative",
            "https://exa mple.com",
        ] {
            assert_eq!(
                safe_href(hostile),
                None,
                "{hostile:?} must not become a link"
            );
        }
    }

    #[test]
    fn the_version_is_the_tag_or_a_short_digest() {
        assert_eq!(version("ghcr.io/acme/api:1.4.2"), "1.4.2");
        assert_eq!(version("localhost:5000/acme/api"), "latest");
        assert_eq!(version("nginx"), "latest");
        assert_eq!(
            version("ghcr.io/acme/api@sha256:0123456789abcdef"),
            "sha256:01234567"
        );
    }

    #[test]
    fn a_name_outside_dns_rules_is_percent_encoded_in_a_path() {
        assert_eq!(segment("checkout-api"), "checkout-api");
        assert_eq!(segment("a/../b\"<"), "a%2F..%2Fb%22%3C");
    }

    fn condition(type_: &str, status: &str, reason: &str) -> Condition {
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: String::new(),
            last_transition_time: None,
            observed_generation: None,
        }
    }

    #[test]
    fn stalled_wins_over_ready_and_a_stopped_environment_is_not_progressing() {
        let stalled = [
            condition("Ready", "True", "Available"),
            condition("Stalled", "True", "HostConflict"),
        ];
        assert_eq!(Health::of(&stalled), Health::Stalled);
        assert_eq!(
            Health::of(&[condition("Ready", "False", "Stopped")]),
            Health::Stopped
        );
        assert_eq!(
            Health::of(&[condition("Ready", "False", "RollingOut")]),
            Health::Progressing
        );
        assert_eq!(Health::of(&[]), Health::Unknown);
    }
}
