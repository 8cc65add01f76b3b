//! Service + Environment → Gateway API HTTPRoute, when the Service is exposed and
//! its Environment exposes through a Gateway (`spec.gateway`). Same host and path
//! as the Ingress would have; TLS is the Gateway's listeners' business.

use kube::ResourceExt;

use super::child_metadata;
use super::ingress::expose_path;
use crate::api::gateway_api::{
    GROUP, HttpBackendRef, HttpPathMatch, HttpRoute, HttpRouteMatch, HttpRouteRule, HttpRouteSpec,
    ParentReference,
};
use crate::resolve::ResolvedService;

/// The HTTPRoute of an exposed Service; `None` when not exposed, without ports,
/// or when the Environment exposes through Ingresses.
pub fn render_http_route(resolved: &ResolvedService<'_>) -> Option<HttpRoute> {
    let gateway = resolved.environment.spec.gateway.as_ref()?;
    let host = resolved.host.clone()?;
    let port = resolved.service.spec.ports.first()?;
    // Every field the API server would default is written out, so the live route
    // contains exactly what Paved applied and an unchanged route costs no write.
    let parent_refs = gateway
        .parent_refs
        .iter()
        .map(|parent| ParentReference {
            group: Some(GROUP.into()),
            kind: Some("Gateway".into()),
            namespace: Some(parent.namespace.clone()),
            name: parent.name.clone(),
            section_name: parent.section_name.clone(),
        })
        .collect();
    let mut route = HttpRoute::new(
        &resolved.service.name_any(),
        HttpRouteSpec {
            parent_refs,
            hostnames: vec![host],
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: Some(HttpPathMatch {
                        type_: "PathPrefix".into(),
                        value: expose_path(resolved),
                    }),
                }],
                backend_refs: vec![HttpBackendRef {
                    group: Some(String::new()),
                    kind: Some("Service".into()),
                    name: resolved.service.name_any(),
                    port: Some(port.port),
                    weight: Some(1),
                }],
            }],
        },
    );
    route.metadata = child_metadata(resolved);
    Some(route)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::{GatewayParentRef, GatewaySettings};
    use crate::children::{public_url, render_ingress};
    use crate::resolve::resolve_service;
    use crate::resolve::tests::{environment, shop};

    fn gateway_shop() -> crate::resolve::Snapshot {
        let mut snapshot = shop();
        let mut env = environment("staging", "staging.shop.example.com");
        env.spec.gateway = Some(GatewaySettings {
            parent_refs: vec![GatewayParentRef {
                namespace: "infra".into(),
                name: "shared".into(),
                section_name: Some("https".into()),
            }],
        });
        snapshot.environments = vec![std::sync::Arc::new(env)];
        snapshot
    }

    #[test]
    fn an_exposed_service_of_a_gateway_environment_gets_a_route_and_no_ingress() {
        let snapshot = gateway_shop();
        let web = snapshot.service("staging", "web").unwrap();
        let resolved = resolve_service(&snapshot, web).unwrap();
        assert!(render_ingress(&resolved).is_none());
        let route = render_http_route(&resolved).unwrap();
        assert_eq!(route.metadata.name.as_deref(), Some("web"));
        assert_eq!(
            route.metadata.owner_references.as_ref().unwrap()[0].kind,
            "Service"
        );
        assert_eq!(route.spec.hostnames, vec!["web.staging.shop.example.com"]);
        let parent = &route.spec.parent_refs[0];
        assert_eq!(parent.namespace.as_deref(), Some("infra"));
        assert_eq!(parent.name, "shared");
        assert_eq!(parent.section_name.as_deref(), Some("https"));
        let backend = &route.spec.rules[0].backend_refs[0];
        assert_eq!(backend.name, "web");
        assert_eq!(backend.port, Some(8080));
        let serialized = serde_json::to_value(&route).unwrap();
        assert_eq!(serialized["apiVersion"], "gateway.networking.k8s.io/v1");
        assert_eq!(serialized["kind"], "HTTPRoute");
        assert!(serialized.get("status").is_none());
        // The Gateway terminates TLS.
        assert_eq!(
            public_url(&resolved).as_deref(),
            Some("https://web.staging.shop.example.com")
        );
    }

    #[test]
    fn an_ingress_environment_gets_no_route() {
        let snapshot = shop();
        let web = snapshot.service("staging", "web").unwrap();
        let resolved = resolve_service(&snapshot, web).unwrap();
        assert!(render_http_route(&resolved).is_none());
        assert!(render_ingress(&resolved).is_some());
    }
}
