//! Property tests of validation and of the builders: whatever a user writes
//! (including what the schema would refuse, as `paved render` has no schema),
//! resolving, validating and building never panic.

use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use proptest::prelude::*;

use crate::api::environment::{
    DefaultResources, Defaults, EnvironmentLifecycle, EnvironmentType, Guardrails, IngressSettings,
    Quota, StopSchedule,
};
use crate::api::service::{Autoscaling, Expose, Port};
use crate::children::guardrails::{
    render_limit_range, render_network_policy, render_resource_quota,
};
use crate::children::{ReferencedConfig, render_namespace, render_service_children};
use crate::resolve::tests::{application, environment, service};
use crate::resolve::{Snapshot, resolve_service};

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9.-]{0,70}",
        "\\PC{0,40}",
        Just(String::new()),
        Just("co.uk".to_string()),
        Just("a".repeat(300)),
    ]
}

fn quantity() -> impl Strategy<Value = Option<Quantity>> {
    prop::option::of(
        prop_oneof![
            "[0-9]{0,4}(m|Mi|Gi|k|e3)?",
            "\\PC{0,12}",
            Just("-1".to_string())
        ]
        .prop_map(Quantity),
    )
}

fn environment_type() -> impl Strategy<Value = EnvironmentType> {
    prop_oneof![
        Just(EnvironmentType::Development),
        Just(EnvironmentType::Staging),
        Just(EnvironmentType::Production),
        Just(EnvironmentType::Preview),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_spec_makes_validation_or_a_builder_panic(
        domain in text(),
        other_domain in text(),
        delegated in prop::collection::vec(text(), 0..3),
        host in prop::option::of(text()),
        path in prop::option::of("\\PC{0,20}"),
        type_ in environment_type(),
        class_name in prop::option::of(text()),
        cpu in quantity(),
        memory in quantity(),
        pods in quantity(),
        default_memory in quantity(),
        ttl in prop::option::of("\\PC{0,12}|[0-9]{0,6}[dhms]"),
        stop in "\\PC{0,20}|[0-9*]{1,2} [0-9*]{1,2} \\* \\* \\*",
        time_zone in prop::option::of("\\PC{0,20}"),
        stopped in any::<Option<bool>>(),
        port in any::<i32>(),
        replicas in any::<Option<i32>>(),
        min in any::<i32>(),
        max in any::<i32>(),
    ) {
        let mut env = environment("shop", &domain);
        env.spec.type_ = type_;
        env.spec.delegated_domains = delegated;
        env.spec.ingress = Some(IngressSettings { class_name, tls: None });
        env.spec.guardrails = Some(Guardrails {
            quota: Some(Quota { cpu, memory, pods }),
            defaults: Some(Defaults {
                resources: Some(DefaultResources {
                    requests: default_memory.iter().map(|q| ("memory".to_string(), q.clone())).collect(),
                    limits: Default::default(),
                }),
            }),
            network_isolation: Some(true),
            ..Guardrails::default()
        });
        env.spec.lifecycle = Some(EnvironmentLifecycle {
            ttl,
            stopped,
            schedule: Some(StopSchedule { stop, start: "0 7 * * *".into(), time_zone }),
        });
        let other = environment("other", &other_domain);

        let mut svc = service("shop", "web", "shop");
        svc.spec.ports = vec![Port { name: "http".into(), port, protocol: None }];
        svc.spec.expose = Some(Expose { host, path });
        if replicas.is_some_and(|r| r % 2 == 0) {
            svc.spec.autoscaling = Some(Autoscaling { min, max, cpu_utilization: replicas });
        } else {
            svc.spec.replicas = replicas;
        }
        let snapshot = Snapshot::assuming_owned_namespaces(
            vec![Arc::new(env.clone()), Arc::new(other)],
            vec![Arc::new(application("shop", "shop"))],
            vec![Arc::new(svc.clone())],
        );

        let _ = crate::domain::check_domain(snapshot.environments.iter().map(AsRef::as_ref), &env);
        let _ = crate::lifecycle::lifecycle_state(&env, jiff::Timestamp::now());
        let _ = render_namespace(&env);
        let _ = render_resource_quota(&env);
        let _ = render_limit_range(&env);
        let _ = render_network_policy(&env, &Default::default());
        if let Ok(resolved) = resolve_service(&snapshot, &svc) {
            let children = render_service_children(&resolved, &ReferencedConfig::new());
            // What is built serializes.
            prop_assert!(serde_json::to_value(&children.deployment).is_ok());
        }
    }
}
