//! Service → HorizontalPodAutoscaler (autoscaling/v2), when autoscaling is set.

use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use kube::ResourceExt;

use super::child_metadata;
use crate::resolve::ResolvedService;

/// Default target CPU utilisation in percent.
pub const DEFAULT_CPU_UTILIZATION: i32 = 80;

pub fn render_autoscaler(resolved: &ResolvedService<'_>) -> Option<HorizontalPodAutoscaler> {
    let autoscaling = resolved.service.spec.autoscaling.as_ref()?;
    Some(HorizontalPodAutoscaler {
        metadata: child_metadata(resolved),
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: resolved.service.name_any(),
            },
            min_replicas: Some(autoscaling.min),
            max_replicas: autoscaling.max,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(
                            autoscaling
                                .cpu_utilization
                                .unwrap_or(DEFAULT_CPU_UTILIZATION),
                        ),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    })
}
