//! Environment `guardrails` → ResourceQuota `paved-quota`, LimitRange
//! `paved-defaults` and NetworkPolicy `paved-isolation` in its namespace. The
//! LimitRange exists in every Environment: it carries at least a default
//! memory limit.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
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

/// Memory limit of a container that sets none, when the Environment does not
/// say: enough for most services, and a runaway one is killed before it takes
/// the node down.
pub const DEFAULT_MEMORY_LIMIT: &str = "512Mi";
/// Memory request of a container that sets none, when the Environment sets
/// neither a memory request nor a memory limit.
pub const DEFAULT_MEMORY_REQUEST: &str = "128Mi";

fn default_resources(
    environment: &Environment,
) -> Option<&crate::api::environment::DefaultResources> {
    environment
        .spec
        .guardrails
        .as_ref()?
        .defaults
        .as_ref()?
        .resources
        .as_ref()
}

/// The memory limit a container without one gets in this Environment:
/// `guardrails.defaults.resources.limits.memory`, else the default memory
/// request (a request above [`DEFAULT_MEMORY_LIMIT`] would make the LimitRange
/// invalid), else [`DEFAULT_MEMORY_LIMIT`].
pub fn default_memory_limit(environment: &Environment) -> Quantity {
    let resources = default_resources(environment);
    resources
        .and_then(|r| r.limits.get("memory"))
        .or_else(|| resources.and_then(|r| r.requests.get("memory")))
        .cloned()
        .unwrap_or_else(|| Quantity(DEFAULT_MEMORY_LIMIT.into()))
}

/// Container defaults: `guardrails.defaults.resources`, always with a memory
/// limit ([`default_memory_limit`]) so no container of the namespace runs
/// without one, and [`DEFAULT_MEMORY_REQUEST`] when the Environment sets no
/// memory default at all.
pub fn render_limit_range(environment: &Environment) -> Option<LimitRange> {
    let resources = default_resources(environment).cloned().unwrap_or_default();
    let mut requests = resources.requests;
    let mut limits = resources.limits;
    if !requests.contains_key("memory") && !limits.contains_key("memory") {
        requests.insert("memory".into(), Quantity(DEFAULT_MEMORY_REQUEST.into()));
    }
    limits.insert("memory".into(), default_memory_limit(environment));
    Some(LimitRange {
        metadata: named(environment, DEFAULTS_NAME),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default_request: Some(requests),
                default: Some(limits),
                ..LimitRangeItem::default()
            }],
        }),
    })
}

/// The number a Kubernetes quantity stands for: bytes of memory (`128Mi`, `1G`,
/// `1e9`, `500000k`), cores of CPU (`250m`), a count; None when it cannot be
/// read. The one quantity reader of the guardrails, the cost estimate and the
/// catalog page's quota bars.
pub fn quantity_value(text: &str) -> Option<f64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match suffix {
        "" => 1.0,
        // metrics.k8s.io reports CPU in nanocores.
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        exponent if exponent.starts_with(['e', 'E']) => {
            10f64.powi(exponent[1..].parse::<i32>().ok()?)
        }
        _ => return None,
    };
    Some(number * factor)
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
            pod_security: None,
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
            item.default_request,
            Some(BTreeMap::from([
                ("cpu".into(), Quantity("100m".into())),
                ("memory".into(), Quantity("128Mi".into())),
            ])),
            "the Environment's cpu request, and Paved's memory request as it sets none"
        );
        assert_eq!(
            item.default,
            Some(BTreeMap::from([(
                "memory".into(),
                Quantity("512Mi".into())
            )]))
        );
    }

    fn defaults_of(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> LimitRangeItem {
        let map = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                .collect()
        };
        let mut env = environment("team-a", "a.example.com");
        env.spec.guardrails = Some(Guardrails {
            defaults: Some(Defaults {
                resources: Some(DefaultResources {
                    requests: map(requests),
                    limits: map(limits),
                }),
            }),
            ..Guardrails::default()
        });
        render_limit_range(&env)
            .unwrap()
            .spec
            .unwrap()
            .limits
            .remove(0)
    }

    #[test]
    fn every_environment_has_a_default_memory_limit_and_its_own_memory_defaults_win() {
        let memory = |item: &LimitRangeItem| {
            let get = |map: &Option<BTreeMap<String, Quantity>>| {
                map.as_ref()
                    .and_then(|m| m.get("memory"))
                    .map(|q| q.0.clone())
            };
            (get(&item.default_request), get(&item.default))
        };
        let bare = render_limit_range(&environment("team-a", "a.example.com")).unwrap();
        assert_eq!(bare.metadata.name.as_deref(), Some("paved-defaults"));
        let item = &bare.spec.unwrap().limits[0];
        assert_eq!(memory(item), (Some("128Mi".into()), Some("512Mi".into())));
        // Its own limit: no Paved request (the API server takes the limit, never above it).
        assert_eq!(
            memory(&defaults_of(&[], &[("memory", "64Mi")])),
            (None, Some("64Mi".into()))
        );
        // Its own request, above Paved's limit: the limit follows the request.
        assert_eq!(
            memory(&defaults_of(&[("memory", "1Gi")], &[])),
            (Some("1Gi".into()), Some("1Gi".into()))
        );
        assert_eq!(
            memory(&defaults_of(&[("memory", "256Mi")], &[("memory", "2Gi")])),
            (Some("256Mi".into()), Some("2Gi".into()))
        );
    }

    #[test]
    fn memory_quantities_read_as_bytes() {
        let bytes = quantity_value;
        assert_eq!(bytes("128Mi"), Some(128.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("1G"), Some(1e9));
        assert_eq!(bytes("1e3"), Some(1000.0));
        assert_eq!(bytes("1.5Gi"), Some(1.5 * 1024.0 * 1024.0 * 1024.0));
        assert_eq!(bytes("512"), Some(512.0));
        assert!(bytes("2Gi") > bytes("2000Mi"));
        assert_eq!(bytes("lots"), None);
        assert_eq!(bytes("1Zi"), None);
        // CPU and counts, as the quota bars read them.
        assert_eq!(quantity_value("250m"), Some(0.25));
        assert_eq!(quantity_value("4"), Some(4.0));
        assert_eq!(quantity_value("1Gi"), Some(1024.0 * 1024.0 * 1024.0));
        assert_eq!(quantity_value("512Mi"), Some(512.0 * 1024.0 * 1024.0));
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
    fn without_guardrails_there_is_no_quota_and_no_network_policy() {
        let env = environment("team-a", "a.example.com");
        assert!(render_resource_quota(&env).is_none());
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
