//! What a Service, Application and Environment cost per month, estimated from
//! the resources their pods request and the prices an admin sets (per CPU-hour
//! and per GiB-hour), and, where the cluster serves `metrics.k8s.io`, from
//! what they use (`status.usage`). Pure; an estimate, never a bill: an
//! autoscaled Service counts at `autoscaling.min` by requests, usage is one
//! sample kept for 730 hours, and nodes, storage and traffic are not priced.

use crate::api::cost::CostEstimate;
use crate::api::environment::EnvironmentType;
use crate::api::usage::Usage;
use crate::api::{Environment, Service};
use crate::children::guardrails::{DEFAULT_MEMORY_LIMIT, DEFAULT_MEMORY_REQUEST, quantity_value};
use crate::resolve::Snapshot;

/// Hours in an average month (365 × 24 / 12).
pub const HOURS_PER_MONTH: f64 = 730.0;

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// Prices an admin sets (controller flags, chart values). Without both, no
/// estimate is made.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Prices {
    /// Price of one CPU core for an hour.
    pub cpu_hour: f64,
    /// Price of one GiB of memory for an hour.
    pub gib_hour: f64,
    /// What the prices are in, e.g. USD.
    pub currency: String,
}

/// CPU cores and bytes of memory requested, all pods together.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Requested {
    pub cpu: f64,
    pub memory_bytes: f64,
}

impl std::ops::Add for Requested {
    type Output = Requested;
    fn add(self, other: Requested) -> Requested {
        Requested {
            cpu: self.cpu + other.cpu,
            memory_bytes: self.memory_bytes + other.memory_bytes,
        }
    }
}

/// Pods a Service runs as declared (not stopped): `replicas`, `autoscaling.min`,
/// or the default of its Environment's type.
pub fn declared_pods(service: &Service, environment: Option<&Environment>) -> i32 {
    let spec = &service.spec;
    match (&spec.autoscaling, spec.replicas) {
        (Some(autoscaling), _) => autoscaling.min,
        (None, Some(replicas)) => replicas,
        (None, None) => {
            if environment.is_some_and(|e| e.spec.type_ == EnvironmentType::Production) {
                crate::children::PRODUCTION_DEFAULT_REPLICAS
            } else {
                1
            }
        }
    }
}

/// What one container requests, as Kubernetes settles it: its own request,
/// else its limit (Kubernetes copies a limit into a missing request), else the
/// Environment's defaults (the LimitRange Paved writes, which always gives
/// memory a request).
fn container_request(service: &Service, environment: Option<&Environment>, resource: &str) -> f64 {
    container_quantity(service, environment, resource, false)
}

/// What one container may use at most (its limit; else the Environment's
/// default limit; memory always gets one from Paved's LimitRange). None: no limit.
fn container_limit(
    service: &Service,
    environment: Option<&Environment>,
    resource: &str,
) -> Option<f64> {
    let value = container_quantity(service, environment, resource, true);
    (value > 0.0).then_some(value)
}

/// One pod's request and limit of CPU (cores) and memory (bytes), as
/// Kubernetes settles them: what usage is compared with.
pub fn pod_resources(
    service: &Service,
    environment: Option<&Environment>,
) -> crate::usage::PodResources {
    crate::usage::PodResources {
        cpu_request: container_request(service, environment, "cpu"),
        memory_request: container_request(service, environment, "memory"),
        cpu_limit: container_limit(service, environment, "cpu"),
        memory_limit: container_limit(service, environment, "memory"),
    }
}

fn container_quantity(
    service: &Service,
    environment: Option<&Environment>,
    resource: &str,
    limit: bool,
) -> f64 {
    let own = service.spec.resources.as_ref();
    let defaults = environment
        .and_then(|e| e.spec.guardrails.as_ref())
        .and_then(|g| g.defaults.as_ref())
        .and_then(|d| d.resources.as_ref());
    let own_limit = || own.and_then(|r| r.limits.as_ref()?.get(resource));
    let default_limit = || defaults.and_then(|d| d.limits.get(resource));
    let quantity = if limit {
        own_limit().or_else(default_limit)
    } else {
        own.and_then(|r| r.requests.as_ref()?.get(resource))
            .or_else(own_limit)
            .or_else(|| defaults.and_then(|d| d.requests.get(resource)))
            .or_else(default_limit)
    };
    match quantity {
        Some(quantity) => quantity_value(&quantity.0).unwrap_or(0.0),
        None if resource == "memory" && environment.is_some() => quantity_value(if limit {
            DEFAULT_MEMORY_LIMIT
        } else {
            DEFAULT_MEMORY_REQUEST
        })
        .unwrap_or(0.0),
        None => 0.0,
    }
}

/// What a Service's pods request together, as declared.
pub fn service_requested(service: &Service, environment: Option<&Environment>) -> Requested {
    let pods = f64::from(declared_pods(service, environment).max(0));
    Requested {
        cpu: pods * container_request(service, environment, "cpu"),
        memory_bytes: pods * container_request(service, environment, "memory"),
    }
}

fn money(amount: f64) -> String {
    format!("{amount:.2}")
}

/// The estimate for `requested`, stopped or not.
pub fn estimate(requested: Requested, stopped: bool, prices: &Prices) -> CostEstimate {
    let gib = requested.memory_bytes / GIB;
    let monthly = (requested.cpu * prices.cpu_hour + gib * prices.gib_hour) * HOURS_PER_MONTH;
    CostEstimate {
        currency: prices.currency.clone(),
        monthly_requested: money(monthly),
        monthly: money(if stopped { 0.0 } else { monthly }),
        saved_by_stopping: stopped.then(|| money(monthly)),
        cpu: format!("{:.3}", requested.cpu),
        memory_gib: format!("{gib:.3}"),
        monthly_from_usage: None,
        cpu_used: None,
        memory_gib_used: None,
    }
}

/// Add the estimate from usage (`status.usage`, what the pods use now) to
/// `cost`: the same prices, for the cores and GiB used kept for a month.
/// Nothing when the usage has no figures.
pub fn add_usage(cost: &mut CostEstimate, usage: Option<&Usage>, prices: &Prices) {
    let Some(usage) = usage.filter(|u| u.available) else {
        return;
    };
    let used = |r: &Option<crate::api::usage::ResourceUsage>| {
        r.as_ref()
            .and_then(|r| quantity_value(&r.used))
            .unwrap_or(0.0)
    };
    let (cpu, gib) = (used(&usage.cpu), used(&usage.memory) / GIB);
    let monthly = (cpu * prices.cpu_hour + gib * prices.gib_hour) * HOURS_PER_MONTH;
    cost.monthly_from_usage = Some(money(monthly));
    cost.cpu_used = Some(format!("{cpu:.3}"));
    cost.memory_gib_used = Some(format!("{gib:.3}"));
}

fn stopped(environment: Option<&Environment>) -> bool {
    environment.is_some_and(crate::children::environment_stopped)
}

/// A Service's estimate.
pub fn service_cost(
    service: &Service,
    environment: Option<&Environment>,
    prices: &Prices,
) -> CostEstimate {
    estimate(
        service_requested(service, environment),
        stopped(environment),
        prices,
    )
}

/// An Application's estimate: the sum of its Services.
pub fn application_cost(
    namespace: &str,
    application: &str,
    snapshot: &Snapshot,
    prices: &Prices,
) -> CostEstimate {
    let environment = snapshot.environment_of(namespace, "Application").ok();
    let requested = snapshot
        .services_of(namespace, application)
        .into_iter()
        .map(|s| service_requested(s, environment))
        .fold(Requested::default(), |a, b| a + b);
    estimate(requested, stopped(environment), prices)
}

/// An Environment's estimate: every Service in its namespace. While stopped,
/// `savedByStopping` says what the stop saves.
pub fn environment_cost(
    environment: &Environment,
    snapshot: &Snapshot,
    prices: &Prices,
) -> CostEstimate {
    let requested = snapshot
        .services_in(environment.namespace_str())
        .map(|s| service_requested(s, Some(environment)))
        .fold(Requested::default(), |a, b| a + b);
    estimate(requested, stopped(Some(environment)), prices)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn prices() -> Prices {
        Prices {
            cpu_hour: 0.04,
            gib_hour: 0.005,
            currency: "USD".into(),
        }
    }

    fn service(name: &str, spec: &str) -> Service {
        serde_yaml::from_str(&format!(
            "apiVersion: paved.dev/v1alpha1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec: {spec}"
        ))
        .unwrap()
    }

    fn environment(extra: &str) -> Environment {
        serde_yaml::from_str(&format!(
            "apiVersion: paved.dev/v1alpha1\nkind: Environment\nmetadata: {{name: shop}}\nspec: {{type: production, domain: shop.example.com{extra}}}"
        ))
        .unwrap()
    }

    #[test]
    fn a_production_service_costs_its_two_default_pods_requests_for_730_hours() {
        let api = service(
            "api",
            "{application: shop, image: a:1, resources: {requests: {cpu: 500m, memory: 1Gi}}}",
        );
        let cost = service_cost(&api, Some(&environment("")), &prices());
        // 2 pods × (0.5 × 0.04 + 1 × 0.005) × 730 = 36.50
        assert_eq!(cost.monthly_requested, "36.50");
        assert_eq!(cost.monthly, "36.50");
        assert_eq!(
            (cost.cpu.as_str(), cost.memory_gib.as_str()),
            ("1.000", "2.000")
        );
        assert_eq!(cost.saved_by_stopping, None);
    }

    #[test]
    fn a_limit_without_a_request_and_the_environment_defaults_are_what_kubernetes_requests() {
        let limited = service(
            "api",
            "{application: shop, image: a:1, replicas: 1, resources: {limits: {cpu: '1', memory: 512Mi}}}",
        );
        let requested = service_requested(&limited, Some(&environment("")));
        assert_eq!(requested.cpu, 1.0);
        assert_eq!(requested.memory_bytes, 512.0 * 1024.0 * 1024.0);
        let bare = service("bare", "{application: shop, image: a:1, replicas: 1}");
        let defaulted = service_requested(
            &bare,
            Some(&environment(
                ", guardrails: {defaults: {resources: {requests: {cpu: 250m}}}}",
            )),
        );
        assert_eq!(defaulted.cpu, 0.25);
        assert!(
            defaulted.memory_bytes > 0.0,
            "the LimitRange gives memory a request"
        );
        assert_eq!(service_requested(&bare, None).memory_bytes, 0.0);
    }

    #[test]
    fn a_stopped_environment_costs_nothing_now_and_says_what_stopping_saves() {
        let stopped = environment(", lifecycle: {stopped: true}");
        let snapshot = Snapshot::assuming_owned_namespaces(
            vec![Arc::new(stopped.clone())],
            vec![],
            vec![
                Arc::new(service(
                    "api",
                    "{application: shop, image: a:1, resources: {requests: {cpu: '1', memory: 1Gi}}}",
                )),
                Arc::new(service(
                    "web",
                    "{application: shop, image: a:1, autoscaling: {min: 3, max: 9}, resources: {requests: {cpu: '1', memory: 1Gi}}}",
                )),
            ],
        );
        let cost = environment_cost(&stopped, &snapshot, &prices());
        // (2 + 3 pods) × (0.04 + 0.005) × 730 = 164.25
        assert_eq!(cost.monthly, "0.00");
        assert_eq!(cost.monthly_requested, "164.25");
        assert_eq!(cost.saved_by_stopping.as_deref(), Some("164.25"));
        let app = application_cost("shop", "shop", &snapshot, &prices());
        assert_eq!(app.monthly_requested, "164.25");
    }

    #[test]
    fn the_estimate_from_usage_prices_what_the_pods_use_and_nothing_without_metrics() {
        let mut cost = estimate(Requested::default(), false, &prices());
        let usage: Usage = serde_yaml::from_str(
            "{available: true, pods: 2, cpu: {used: 500m}, memory: {used: 1Gi}}",
        )
        .unwrap();
        add_usage(&mut cost, Some(&usage), &prices());
        // (0.5 × 0.04 + 1 × 0.005) × 730 = 18.25
        assert_eq!(cost.monthly_from_usage.as_deref(), Some("18.25"));
        assert_eq!(
            (cost.cpu_used.as_deref(), cost.memory_gib_used.as_deref()),
            (Some("0.500"), Some("1.000"))
        );
        let mut without = estimate(Requested::default(), false, &prices());
        let unavailable: Usage =
            serde_yaml::from_str("{available: false, reason: no metrics-server}").unwrap();
        add_usage(&mut without, Some(&unavailable), &prices());
        add_usage(&mut without, None, &prices());
        assert_eq!(without.monthly_from_usage, None);
    }

    #[test]
    fn a_pod_is_compared_with_its_settled_request_and_limit() {
        let limited = service(
            "api",
            "{application: shop, image: a:1, resources: {requests: {cpu: 200m}, limits: {memory: 1Gi}}}",
        );
        let pod = pod_resources(&limited, Some(&environment("")));
        assert_eq!(pod.cpu_request, 0.2);
        assert_eq!(pod.cpu_limit, None);
        assert_eq!(pod.memory_limit, Some(GIB));
        assert_eq!(pod.memory_request, GIB, "a limit alone is the request");
        let bare = pod_resources(
            &service("bare", "{application: shop, image: a:1}"),
            Some(&environment("")),
        );
        assert_eq!(bare.memory_limit, quantity_value(DEFAULT_MEMORY_LIMIT));
    }
}
