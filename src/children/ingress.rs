//! Service + Environment → Ingress, when the Service is exposed and its
//! Environment exposes through Ingresses (no `spec.gateway`).

use std::collections::BTreeMap;

use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, ServiceBackendPort,
};
use kube::ResourceExt;

use super::child_metadata;
use crate::names::annotations;
use crate::resolve::ResolvedService;

/// The Ingress for an exposed Service; `None` when not exposed, without ports, or
/// when the Environment exposes through a Gateway (then it gets an HTTPRoute).
pub fn render_ingress(resolved: &ResolvedService<'_>) -> Option<Ingress> {
    if resolved.environment.spec.gateway.is_some() {
        return None;
    }
    let host = resolved.host.clone()?;
    let port = resolved.service.spec.ports.first()?;
    let name = resolved.service.name_any();
    let settings = resolved
        .environment
        .spec
        .ingress
        .clone()
        .unwrap_or_default();

    let mut metadata = child_metadata(resolved);
    if let Some(tls) = &settings.tls {
        metadata
            .annotations
            .get_or_insert_with(BTreeMap::new)
            .insert(
                annotations::CERT_MANAGER_CLUSTER_ISSUER.into(),
                tls.cluster_issuer.clone(),
            );
    }

    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: settings.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(host.clone()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        path: Some(expose_path(resolved)),
                        path_type: "Prefix".into(),
                        backend: IngressBackend {
                            service: Some(IngressServiceBackend {
                                name: name.clone(),
                                port: Some(ServiceBackendPort {
                                    name: Some(port.name.clone()),
                                    number: None,
                                }),
                            }),
                            resource: None,
                        },
                    }],
                }),
            }]),
            tls: settings.tls.as_ref().map(|_| {
                vec![IngressTLS {
                    hosts: Some(vec![host]),
                    secret_name: Some(format!("{name}-tls")),
                }]
            }),
            default_backend: None,
        }),
        status: None,
    })
}

pub(super) fn expose_path(resolved: &ResolvedService<'_>) -> String {
    resolved
        .service
        .spec
        .expose
        .as_ref()
        .and_then(|e| e.path.clone())
        .unwrap_or_else(|| "/".into())
}

/// `https://host/path` (http for an Ingress without TLS), for status. Behind a
/// Gateway the scheme is https: its listeners terminate TLS.
pub fn public_url(resolved: &ResolvedService<'_>) -> Option<String> {
    let host = resolved.host.as_ref()?;
    resolved.service.spec.ports.first()?;
    let spec = &resolved.environment.spec;
    let tls =
        spec.gateway.is_some() || spec.ingress.as_ref().and_then(|i| i.tls.as_ref()).is_some();
    let scheme = if tls { "https" } else { "http" };
    let path = expose_path(resolved);
    let path = if path == "/" { String::new() } else { path };
    Some(format!("{scheme}://{host}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::{IngressSettings, TlsSettings};
    use crate::resolve::resolve_service;
    use crate::resolve::tests::{environment, shop};

    #[test]
    fn an_exposed_service_gets_an_ingress_on_its_default_host() {
        let snapshot = shop();
        let web = snapshot.service("staging", "web").unwrap();
        let resolved = resolve_service(&snapshot, web).unwrap();
        let ingress = render_ingress(&resolved).unwrap();
        let rule = &ingress.spec.as_ref().unwrap().rules.as_ref().unwrap()[0];
        assert_eq!(rule.host.as_deref(), Some("web.staging.shop.example.com"));
        let path = &rule.http.as_ref().unwrap().paths[0];
        assert_eq!(path.path.as_deref(), Some("/"));
        assert_eq!(path.backend.service.as_ref().unwrap().name, "web");
        assert_eq!(
            public_url(&resolved).as_deref(),
            Some("http://web.staging.shop.example.com")
        );
    }

    #[test]
    fn tls_settings_add_the_cluster_issuer_and_a_tls_section() {
        let mut snapshot = shop();
        let mut env = environment("staging", "staging.shop.example.com");
        env.spec.ingress = Some(IngressSettings {
            class_name: Some("nginx".into()),
            tls: Some(TlsSettings {
                cluster_issuer: "letsencrypt".into(),
            }),
        });
        snapshot.environments = vec![std::sync::Arc::new(env)];
        let web = snapshot.service("staging", "web").unwrap();
        let resolved = resolve_service(&snapshot, web).unwrap();
        let ingress = render_ingress(&resolved).unwrap();
        assert_eq!(
            ingress.metadata.annotations.as_ref().unwrap()["cert-manager.io/cluster-issuer"],
            "letsencrypt"
        );
        let spec = ingress.spec.unwrap();
        assert_eq!(spec.ingress_class_name.as_deref(), Some("nginx"));
        assert_eq!(spec.tls.unwrap()[0].secret_name.as_deref(), Some("web-tls"));
        assert_eq!(
            public_url(&resolved).as_deref(),
            Some("https://web.staging.shop.example.com")
        );
    }
}
