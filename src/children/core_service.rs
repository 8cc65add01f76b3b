//! Service → core/v1 Service, one port per declared port. A Service without ports
//! (a worker) gets none.

use k8s_openapi::api::core::v1::{
    Service as CoreService, ServicePort, ServiceSpec as CoreServiceSpec,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{child_metadata, selector_labels};
use crate::resolve::ResolvedService;

pub fn render_core_service(resolved: &ResolvedService<'_>) -> Option<CoreService> {
    let spec = &resolved.service.spec;
    if spec.ports.is_empty() {
        return None;
    }
    Some(CoreService {
        metadata: child_metadata(resolved),
        spec: Some(CoreServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(resolved.service)),
            ports: Some(
                spec.ports
                    .iter()
                    .map(|port| ServicePort {
                        name: Some(port.name.clone()),
                        port: port.port,
                        target_port: Some(IntOrString::String(port.name.clone())),
                        protocol: Some(port.protocol.unwrap_or_default().as_str().into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..CoreServiceSpec::default()
        }),
        status: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::resolve_service;
    use crate::resolve::tests::shop;

    #[test]
    fn every_port_becomes_a_named_service_port_targeting_the_container_port_name() {
        let snapshot = shop();
        let api = snapshot.service("staging", "api").unwrap();
        let core = render_core_service(&resolve_service(&snapshot, api).unwrap()).unwrap();
        let port = &core.spec.as_ref().unwrap().ports.as_ref().unwrap()[0];
        assert_eq!(port.name.as_deref(), Some("http"));
        assert_eq!(port.port, 8080);
        assert_eq!(port.target_port, Some(IntOrString::String("http".into())));
        assert_eq!(core.metadata.name.as_deref(), Some("api"));
    }

    #[test]
    fn a_service_without_ports_gets_no_core_service() {
        let snapshot = shop();
        let mut worker = snapshot.service("staging", "api").unwrap().clone();
        worker.spec.ports.clear();
        assert!(render_core_service(&resolve_service(&snapshot, &worker).unwrap()).is_none());
    }
}
