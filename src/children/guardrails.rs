//! Environment `guardrails` → ResourceQuota `paved-quota`, LimitRange
//! `paved-defaults` and NetworkPolicy `paved-isolation` in its namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

use super::environment_child_metadata;
use crate::api::Environment;

pub const QUOTA_NAME: &str = "paved-quota";
pub const DEFAULTS_NAME: &str = "paved-defaults";
pub const ISOLATION_NAME: &str = "paved-isolation";

/// Default namespace selector of the ingress controller's namespace (the
/// controller flag `--ingress-namespace-selector` changes it).
pub const DEFAULT_INGRESS_NAMESPACE_SELECTOR: &str = "kubernetes.io/metadata.name=ingress-nginx";

fn named(environment: &Environment, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        ..environment_child_metadata(environment)
    }
}

/// `requests.cpu`, `requests.memory` and `pods` from `guardrails.quota`; None without a quota.
pub fn render_resource_quota(environment: &Environment) -> Option<ResourceQuota> {
    let quota = environment.spec.guardrails.as_ref()?.quota.as_ref()?;
    let hard: BTreeMap<String, _> = [
        ("requests.cpu", &quota.cpu),
        ("requests.memory", &quota.memory),
        ("pods", &quota.pods),
    ]
    .into_iter()
    .filter_map(|(key, value)| value.clone().map(|v| (key.to_string(), v)))
    .collect();
    if hard.is_empty() {
        return None;
    }
    Some(ResourceQuota {
        metadata: named(environment, QUOTA_NAME),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    })
}

/// Container defaults from `guardrails.defaults.resources`; None without defaults.
pub fn render_limit_range(environment: &Environment) -> Option<LimitRange> {
    let resources = environment
        .spec
        .guardrails
        .as_ref()?
        .defaults
        .as_ref()?
        .resources
        .as_ref()?;
    if resources.requests.is_empty() && resources.limits.is_empty() {
        return None;
    }
    let non_empty = |map: &BTreeMap<String, _>| (!map.is_empty()).then(|| map.clone());
    Some(LimitRange {
        metadata: named(environment, DEFAULTS_NAME),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: non_empty(&resources.requests),
                default: non_empty(&resources.limits),
                ..LimitRangeItem::default()
            }],
        }),
    })
}

/// Parse `key=value,key2=value2` into labels; None when malformed.
pub fn parse_label_selector(text: &str) -> Option<BTreeMap<String, String>> {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| {
            let (key, value) = part.split_once('=')?;
            let (key, value) = (key.trim(), value.trim());
            (!key.is_empty()).then(|| (key.to_string(), value.to_string()))
        })
        .collect()
}

/// With `networkIsolation: true`: every pod of the namespace accepts ingress
/// only from pods of the same namespace and from namespaces matching
/// `ingress_namespace_labels` (the ingress controller's). Egress is untouched.
pub fn render_network_policy(
    environment: &Environment,
    ingress_namespace_labels: &BTreeMap<String, String>,
) -> Option<NetworkPolicy> {
    let isolated = environment
        .spec
        .guardrails
        .as_ref()?
        .network_isolation
        .unwrap_or(false);
    if !isolated {
        return None;
    }
    let from = |peer: NetworkPolicyPeer| NetworkPolicyIngressRule {
        from: Some(vec![peer]),
        ports: None,
    };
    let mut rules = vec![from(NetworkPolicyPeer {
        pod_selector: Some(LabelSelector::default()),
        ..NetworkPolicyPeer::default()
    })];
    if !ingress_namespace_labels.is_empty() {
        rules.push(from(NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_labels: Some(ingress_namespace_labels.clone()),
                match_expressions: None,
            }),
            ..NetworkPolicyPeer::default()
        }));
    }
    Some(NetworkPolicy {
        metadata: named(environment, ISOLATION_NAME),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(rules),
            egress: None,
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::{DefaultResources, Defaults, Guardrails, Quota};
    use crate::resolve::tests::environment;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn guarded() -> Environment {
        let mut env = environment("team-a", "a.example.com");
        env.spec.guardrails = Some(Guardrails {
            quota: Some(Quota {
                cpu: Some(Quantity("20".into())),
                memory: Some(Quantity("40Gi".into())),
                pods: None,
            }),
            defaults: Some(Defaults {
                resources: Some(DefaultResources {
                    requests: BTreeMap::from([("cpu".into(), Quantity("100m".into()))]),
                    limits: BTreeMap::new(),
                }),
            }),
            network_isolation: Some(true),
        });
        env
    }

    #[test]
    fn the_quota_bounds_requests_and_leaves_out_what_is_not_set() {
        let quota = render_resource_quota(&guarded()).unwrap();
        assert_eq!(quota.metadata.name.as_deref(), Some("paved-quota"));
        assert_eq!(quota.metadata.namespace.as_deref(), Some("team-a"));
        let hard = quota.spec.unwrap().hard.unwrap();
        assert_eq!(hard["requests.cpu"], Quantity("20".into()));
        assert_eq!(hard["requests.memory"], Quantity("40Gi".into()));
        assert!(!hard.contains_key("pods"));
    }

    #[test]
    fn defaults_become_a_container_limit_range() {
        let range = render_limit_range(&guarded()).unwrap();
        let item = &range.spec.unwrap().limits[0];
        assert_eq!(item.type_, "Container");
        assert_eq!(
            item.default_request.as_ref().unwrap()["cpu"],
            Quantity("100m".into())
        );
        assert!(item.default.is_none());
    }

    #[test]
    fn isolation_allows_the_namespace_itself_and_the_ingress_controller() {
        let labels = parse_label_selector(DEFAULT_INGRESS_NAMESPACE_SELECTOR).unwrap();
        let policy = render_network_policy(&guarded(), &labels).unwrap();
        let spec = policy.spec.unwrap();
        assert_eq!(spec.pod_selector, Some(LabelSelector::default()));
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string()]));
        let rules = spec.ingress.unwrap();
        assert_eq!(rules.len(), 2);
        let same_namespace = &rules[0].from.as_ref().unwrap()[0];
        assert_eq!(same_namespace.pod_selector, Some(LabelSelector::default()));
        assert!(same_namespace.namespace_selector.is_none());
        let ingress = &rules[1].from.as_ref().unwrap()[0];
        assert_eq!(
            ingress
                .namespace_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["kubernetes.io/metadata.name"],
            "ingress-nginx"
        );
    }

    #[test]
    fn without_guardrails_there_is_nothing_to_create() {
        let env = environment("team-a", "a.example.com");
        assert!(render_resource_quota(&env).is_none());
        assert!(render_limit_range(&env).is_none());
        assert!(render_network_policy(&env, &BTreeMap::new()).is_none());
    }

    #[test]
    fn label_selectors_parse_or_are_refused() {
        assert_eq!(
            parse_label_selector("a=b, c=d").unwrap(),
            BTreeMap::from([("a".into(), "b".into()), ("c".into(), "d".into())])
        );
        assert!(parse_label_selector("nokey").is_none());
        assert_eq!(parse_label_selector("").unwrap(), BTreeMap::new());
    }
}
