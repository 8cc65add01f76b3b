//! The container's environment and the configuration hash.
//!
//! The hash covers everything besides the image that the pods run with: the
//! resolved environment, the data behind every referenced Secret/ConfigMap key,
//! command, args, resources and `restartedAt`. It goes on the pod template, so
//! a change of any of them rolls the pods, and it is recorded in status history.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    ConfigMapKeySelector, EnvVar as K8sEnvVar, EnvVarSource as K8sEnvVarSource, SecretKeySelector,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::api::{EnvVar, Service};
use crate::resolve::{ResolvedService, dependency_env_name};

/// Digests of the values behind referenced keys, keyed `secret/<name>/<key>` or
/// `configmap/<name>/<key>`; `None` when the object or key does not exist.
pub type ReferencedConfig = BTreeMap<String, Option<String>>;

/// Which Secret and ConfigMap keys the Service's containers read (its own env and its Application's).
pub fn referenced_config_keys(resolved: &ResolvedService<'_>) -> Vec<ConfigKey> {
    config_keys(
        resolved
            .application
            .spec
            .env
            .iter()
            .chain(resolved.service.spec.env.iter()),
    )
}

/// The Secret and ConfigMap keys that `env` reads through `valueFrom`, sorted, once each.
pub fn config_keys<'a>(env: impl Iterator<Item = &'a EnvVar>) -> Vec<ConfigKey> {
    let mut keys: Vec<ConfigKey> = env
        .filter_map(|var| var.value_from.as_ref())
        .flat_map(|from| {
            let secret = from.secret_key_ref.as_ref().map(|r| ConfigKey {
                kind: ConfigKind::Secret,
                name: r.name.clone(),
                key: r.key.clone(),
            });
            let config_map = from.config_map_key_ref.as_ref().map(|r| ConfigKey {
                kind: ConfigKind::ConfigMap,
                name: r.name.clone(),
                key: r.key.clone(),
            });
            secret.into_iter().chain(config_map)
        })
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// The referenced keys that do not exist (object or key missing in `config`)
/// and are not marked `optional`: the pods could not start. Named as a user
/// would look for them: `Secret db key password`.
pub fn missing_config(resolved: &ResolvedService<'_>, config: &ReferencedConfig) -> Vec<String> {
    let mut missing: Vec<String> = resolved
        .application
        .spec
        .env
        .iter()
        .chain(resolved.service.spec.env.iter())
        .filter_map(|var| var.value_from.as_ref())
        .flat_map(|from| {
            let secret = from
                .secret_key_ref
                .as_ref()
                .map(|r| (ConfigKind::Secret, r));
            let config_map = from
                .config_map_key_ref
                .as_ref()
                .map(|r| (ConfigKind::ConfigMap, r));
            secret.into_iter().chain(config_map)
        })
        .filter(|(_, r)| r.optional != Some(true))
        .filter_map(|(kind, r)| {
            let key = ConfigKey {
                kind,
                name: r.name.clone(),
                key: r.key.clone(),
            };
            matches!(config.get(&key.id()), Some(None)).then(|| {
                let kind = match kind {
                    ConfigKind::Secret => "Secret",
                    ConfigKind::ConfigMap => "ConfigMap",
                };
                format!("{kind} {} key {}", r.name, r.key)
            })
        })
        .collect();
    missing.sort();
    missing.dedup();
    missing
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConfigKind {
    Secret,
    ConfigMap,
}

/// One referenced key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConfigKey {
    pub kind: ConfigKind,
    pub name: String,
    pub key: String,
}

impl ConfigKey {
    /// Key of this reference in a [`ReferencedConfig`].
    pub fn id(&self) -> String {
        let kind = match self.kind {
            ConfigKind::Secret => "secret",
            ConfigKind::ConfigMap => "configmap",
        };
        format!("{kind}/{}/{}", self.name, self.key)
    }
}

/// Digest of a secret value: the hash input never contains the value itself.
pub fn value_digest(value: &[u8]) -> String {
    hex(&Sha256::digest(value))[..16].to_string()
}

/// The container environment, in order: injected `<DEPENDENCY>_URL`s, the
/// Application's env, the Service's env. On a name clash the later source wins
/// (Service over Application over injected), keeping the earlier position.
pub fn container_env(resolved: &ResolvedService<'_>) -> Vec<K8sEnvVar> {
    let injected = resolved.dependencies.iter().filter_map(|dependency| {
        dependency.url.as_ref().map(|url| K8sEnvVar {
            name: dependency_env_name(&dependency.name),
            value: Some(url.clone()),
            value_from: None,
        })
    });
    let declared = resolved
        .application
        .spec
        .env
        .iter()
        .chain(resolved.service.spec.env.iter())
        .map(to_container_env);

    let mut merged: Vec<K8sEnvVar> = Vec::new();
    for var in injected.chain(declared) {
        match merged.iter_mut().find(|existing| existing.name == var.name) {
            Some(existing) => *existing = var,
            None => merged.push(var),
        }
    }
    merged
}

fn to_container_env(var: &EnvVar) -> K8sEnvVar {
    let value_from = var.value_from.as_ref().map(|from| K8sEnvVarSource {
        secret_key_ref: from.secret_key_ref.as_ref().map(|r| SecretKeySelector {
            name: r.name.clone(),
            key: r.key.clone(),
            optional: r.optional,
        }),
        config_map_key_ref: from
            .config_map_key_ref
            .as_ref()
            .map(|r| ConfigMapKeySelector {
                name: r.name.clone(),
                key: r.key.clone(),
                optional: r.optional,
            }),
        ..K8sEnvVarSource::default()
    });
    K8sEnvVar {
        name: var.name.clone(),
        value: if value_from.is_some() {
            None
        } else {
            Some(var.value.clone().unwrap_or_default())
        },
        value_from,
    }
}

/// Hash of everything besides the image the pods run with (16 hex digits).
pub fn config_hash(service: &Service, env: &[K8sEnvVar], config: &ReferencedConfig) -> String {
    #[derive(Serialize)]
    struct HashInput<'a> {
        env: &'a [K8sEnvVar],
        referenced: &'a ReferencedConfig,
        command: &'a Option<Vec<String>>,
        args: &'a Option<Vec<String>>,
        resources: &'a Option<k8s_openapi::api::core::v1::ResourceRequirements>,
        restarted_at: &'a Option<String>,
    }
    let input = HashInput {
        env,
        referenced: config,
        command: &service.spec.command,
        args: &service.spec.args,
        resources: &service.spec.resources,
        restarted_at: &service.spec.restarted_at,
    };
    let bytes = serde_json::to_vec(&input).expect("hash input is plain data");
    hex(&Sha256::digest(&bytes))[..16].to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{EnvVarSource, KeyRef};
    use crate::resolve::resolve_service;
    use crate::resolve::tests::shop;

    fn literal(name: &str, value: &str) -> EnvVar {
        EnvVar {
            name: name.into(),
            value: Some(value.into()),
            value_from: None,
        }
    }

    #[test]
    fn service_env_wins_over_application_env_and_injected_urls() {
        let mut snapshot = shop();
        let mut app = snapshot.application("staging", "shop").unwrap().clone();
        app.spec.env = vec![literal("LOG_LEVEL", "info"), literal("REGION", "eu")];
        snapshot.applications = vec![std::sync::Arc::new(app)];
        let mut web = snapshot.service("staging", "web").unwrap().clone();
        web.spec.env = vec![
            literal("LOG_LEVEL", "debug"),
            literal("API_URL", "http://override"),
        ];

        let resolved = resolve_service(&snapshot, &web).unwrap();
        let env = container_env(&resolved);
        let pairs: Vec<(&str, &str)> = env
            .iter()
            .map(|v| (v.name.as_str(), v.value.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("API_URL", "http://override"),
                ("LOG_LEVEL", "debug"),
                ("REGION", "eu")
            ]
        );
    }

    #[test]
    fn dependencies_inject_their_in_cluster_url() {
        let snapshot = shop();
        let web = snapshot.service("staging", "web").unwrap();
        let env = container_env(&resolve_service(&snapshot, web).unwrap());
        assert_eq!(env[0].name, "API_URL");
        assert_eq!(
            env[0].value.as_deref(),
            Some("http://api.staging.svc.cluster.local:8080")
        );
    }

    #[test]
    fn a_change_of_referenced_data_or_restarted_at_changes_the_hash() {
        let snapshot = shop();
        let mut web = snapshot.service("staging", "web").unwrap().clone();
        web.spec.env = vec![EnvVar {
            name: "DB_PASSWORD".into(),
            value: None,
            value_from: Some(EnvVarSource {
                secret_key_ref: Some(KeyRef {
                    name: "db".into(),
                    key: "password".into(),
                    optional: None,
                }),
                config_map_key_ref: None,
            }),
        }];
        let resolved = resolve_service(&snapshot, &web).unwrap();
        let keys = referenced_config_keys(&resolved);
        assert_eq!(
            keys.iter().map(ConfigKey::id).collect::<Vec<_>>(),
            vec!["secret/db/password"]
        );
        let env = container_env(&resolved);

        let before =
            ReferencedConfig::from([("secret/db/password".into(), Some(value_digest(b"one")))]);
        let after =
            ReferencedConfig::from([("secret/db/password".into(), Some(value_digest(b"two")))]);
        let base = config_hash(&web, &env, &before);
        assert_eq!(base, config_hash(&web, &env, &before), "the hash is stable");
        assert_ne!(base, config_hash(&web, &env, &after));

        assert_eq!(
            missing_config(&resolved, &before),
            Vec::<String>::new(),
            "present keys are not missing"
        );
        let absent = ReferencedConfig::from([("secret/db/password".into(), None)]);
        assert_eq!(
            missing_config(&resolved, &absent),
            vec!["Secret db key password"]
        );
        let mut optional = web.clone();
        if let Some(from) = optional.spec.env[0].value_from.as_mut() {
            from.secret_key_ref.as_mut().unwrap().optional = Some(true);
        }
        let resolved_optional = resolve_service(&snapshot, &optional).unwrap();
        assert!(missing_config(&resolved_optional, &absent).is_empty());

        let mut restarted = web.clone();
        restarted.spec.restarted_at = Some("2026-11-23T10:00:00Z".into());
        assert_ne!(base, config_hash(&restarted, &env, &before));
    }
}
