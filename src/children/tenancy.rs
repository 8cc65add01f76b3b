//! Environment `access` → RoleBindings in its namespace.
//!
//! One RoleBinding per role (`paved-developer`, `paved-viewer`), each binding the
//! ClusterRole of the same name (shipped by the chart and `config/rbac/`) to
//! every subject granted that role. A RoleBinding only ever grants inside the
//! Environment's own namespace, so a developer of one environment gets nothing
//! in another.

use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::environment_child_metadata;
use crate::api::Environment;
use crate::api::environment::AccessRole;

/// Both roles, in a fixed order.
pub const ACCESS_ROLES: [AccessRole; 2] = [AccessRole::Developer, AccessRole::Viewer];

/// Name of the ClusterRole (and of the RoleBinding) of a role: `paved-developer`, `paved-viewer`.
pub fn access_role_name(role: AccessRole) -> String {
    format!("paved-{}", role.as_str())
}

/// The RoleBinding granting `role` in the Environment's namespace, or None
/// when nobody has that role (the binding must then not exist).
pub fn render_role_binding(environment: &Environment, role: AccessRole) -> Option<RoleBinding> {
    let mut subjects: Vec<Subject> = environment
        .spec
        .access
        .iter()
        .filter(|grant| grant.role == role)
        .filter_map(|grant| {
            let (kind, name) = match (&grant.group, &grant.user) {
                (Some(group), _) => ("Group", group),
                (None, Some(user)) => ("User", user),
                (None, None) => return None,
            };
            Some(Subject {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: kind.into(),
                name: name.clone(),
                namespace: None,
            })
        })
        .collect();
    subjects.sort_by(|a, b| (&a.kind, &a.name).cmp(&(&b.kind, &b.name)));
    subjects.dedup();
    if subjects.is_empty() {
        return None;
    }
    let name = access_role_name(role);
    Some(RoleBinding {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            ..environment_child_metadata(environment)
        },
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name,
        },
        subjects: Some(subjects),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::environment::AccessGrant;
    use crate::resolve::tests::environment;

    fn grant(group: Option<&str>, user: Option<&str>, role: AccessRole) -> AccessGrant {
        AccessGrant {
            group: group.map(Into::into),
            user: user.map(Into::into),
            role,
        }
    }

    #[test]
    fn each_role_becomes_one_role_binding_in_the_environment_namespace() {
        let mut env = environment("team-a", "a.example.com");
        env.spec.access = vec![
            grant(Some("team-a"), None, AccessRole::Developer),
            grant(None, Some("alice@example.com"), AccessRole::Developer),
            grant(Some("auditors"), None, AccessRole::Viewer),
        ];
        let developer = render_role_binding(&env, AccessRole::Developer).unwrap();
        assert_eq!(developer.metadata.name.as_deref(), Some("paved-developer"));
        assert_eq!(developer.metadata.namespace.as_deref(), Some("team-a"));
        assert_eq!(developer.role_ref.kind, "ClusterRole");
        assert_eq!(developer.role_ref.name, "paved-developer");
        let subjects: Vec<(String, String)> = developer
            .subjects
            .unwrap()
            .into_iter()
            .map(|s| (s.kind, s.name))
            .collect();
        assert_eq!(
            subjects,
            vec![
                ("Group".into(), "team-a".into()),
                ("User".into(), "alice@example.com".into())
            ]
        );
        let owner = &developer.metadata.owner_references.unwrap()[0];
        assert_eq!(owner.kind, "Environment");
        let viewer = render_role_binding(&env, AccessRole::Viewer).unwrap();
        assert_eq!(viewer.role_ref.name, "paved-viewer");
    }

    #[test]
    fn a_role_nobody_has_has_no_binding() {
        let mut env = environment("team-a", "a.example.com");
        env.spec.access = vec![grant(Some("team-a"), None, AccessRole::Developer)];
        assert!(render_role_binding(&env, AccessRole::Viewer).is_none());
    }
}

#[cfg(test)]
mod shipped_roles {
    use std::path::Path;

    /// The `rules:` block of each ClusterRole in a YAML (or Helm template) file.
    fn rules_by_role(text: &str) -> Vec<(String, String)> {
        text.split("\n---")
            .filter_map(|document| {
                let name = document
                    .lines()
                    .find_map(|l| l.trim().strip_prefix("name: "))?
                    .to_string();
                let rules = document.split_once("\nrules:")?.1;
                let rules: Vec<&str> = rules
                    .lines()
                    .take_while(|l| !l.starts_with("{{"))
                    .filter(|l| !l.trim().is_empty())
                    .collect();
                Some((name, rules.join("\n")))
            })
            .collect()
    }

    #[test]
    fn config_rbac_user_roles_match_the_chart() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let plain = rules_by_role(&read("config/rbac/user-roles.yaml"));
        let chart = rules_by_role(&read("charts/paved/templates/clusterroles-aggregated.yaml"));
        let names: Vec<&str> = plain.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["paved-developer", "paved-viewer", "paved-catalog-reader"]
        );
        assert_eq!(
            plain, chart,
            "config/rbac/user-roles.yaml and the chart's clusterroles-aggregated.yaml must grant the same rules"
        );
    }

    /// The catalog reader reads Environments and nothing else, and both ship
    /// it bound to every authenticated user (the chart by default).
    #[test]
    fn the_catalog_reader_reads_environments_only_and_is_bound_to_every_authenticated_user() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();
        let plain = rules_by_role(&read("config/rbac/user-roles.yaml"));
        let (_, rules) = plain
            .iter()
            .find(|(name, _)| name == "paved-catalog-reader")
            .unwrap();
        assert_eq!(
            rules.split_whitespace().collect::<Vec<_>>().join(" "),
            "- apiGroups: [paved.dev] resources: [environments] verbs: [get, list, watch]"
        );
        let subject =
            r#"- {kind: Group, name: "system:authenticated", apiGroup: rbac.authorization.k8s.io}"#;
        let plain = read("config/rbac/user-roles.yaml");
        let binding = plain
            .split("\n---")
            .find(|d| d.contains("kind: ClusterRoleBinding"))
            .unwrap();
        assert!(
            binding.contains("name: paved-catalog-reader") && binding.contains(subject),
            "{binding}"
        );
        let values = read("charts/paved/values.yaml");
        let catalog = values.split_once("catalogReader:").unwrap().1;
        assert!(
            catalog.lines().take(3).any(|l| l.trim() == subject),
            "{catalog}"
        );
    }
}
