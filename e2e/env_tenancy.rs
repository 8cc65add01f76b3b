//! Tenancy and guardrails: `access` grants RoleBindings in the environment's own
//! namespace only; `guardrails` become a ResourceQuota, a LimitRange and a
//! NetworkPolicy; and an Environment can never take over an existing
//! namespace (kube-system included), put children into it, or delete it.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

use crate::paved_support::{
    Cleanup, TestEnvironment, USER_MANAGER, application_manifest, applications, apply,
    environment_manifest, environments, labels, merge_patch, wait_condition, wait_exists,
    wait_gone,
};
use crate::support::{WAIT, client, client_as, unique, wait_until};

/// The ClusterRoles `access` binds, and the catalog reader's ClusterRole and
/// binding. The chart ships them; on a bare test cluster they come from
/// config/rbac/user-roles.yaml: applied here when missing, their rules brought
/// up to date when an older chart left older ones. They stay: tests running at
/// the same time (and the README's commands) rely on them, and e2e/chart.sh
/// adopts them into its release.
async fn ensure_user_roles(client: &Client) {
    let roles: Api<ClusterRole> = Api::all(client.clone());
    let bindings: Api<ClusterRoleBinding> = Api::all(client.clone());
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../config/rbac/user-roles.yaml"
    );
    let text = std::fs::read_to_string(path).expect("config/rbac/user-roles.yaml");
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).expect("a YAML document");
        if value["kind"] == "ClusterRoleBinding" {
            let binding: ClusterRoleBinding = serde_json::from_value(value).unwrap();
            let name = binding.name_any();
            if bindings.get_opt(&name).await.unwrap().is_none() {
                bindings
                    .patch(
                        &name,
                        &PatchParams::apply("e2e-rbac").force(),
                        &Patch::Apply(&binding),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("applying ClusterRoleBinding {name}: {e}"));
            }
            continue;
        }
        let role: ClusterRole = serde_json::from_value(value).expect("a ClusterRole");
        let name = role.name_any();
        let body = match roles.get_opt(&name).await.unwrap() {
            None => serde_json::to_value(&role).unwrap(),
            Some(live) if live.rules != role.rules => json!({
                "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": role.rules,
            }),
            Some(_) => continue,
        };
        roles
            .patch(
                &name,
                &PatchParams::apply("e2e-rbac").force(),
                &Patch::Apply(&body),
            )
            .await
            .unwrap_or_else(|e| panic!("applying ClusterRole {name}: {e}"));
    }
}

/// Server-side apply as `who`; the HTTP status code when refused.
async fn try_apply(api: &Api<kube::api::DynamicObject>, manifest: Value) -> Result<(), u16> {
    let name = manifest["metadata"]["name"].as_str().unwrap().to_string();
    match api
        .patch(
            &name,
            &PatchParams::apply(USER_MANAGER),
            &Patch::Apply(&manifest),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(e) => panic!("applying {name}: {e}"),
    }
}

fn code<T>(result: Result<T, kube::Error>) -> Result<(), u16> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.code),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_developer_of_team_a_works_in_a_and_is_denied_in_team_b() {
    let admin = client().await;
    ensure_user_roles(&admin).await;
    let team_a = unique("team-a");
    let team_b = unique("team-b");
    let auditors = unique("auditors");
    let a = TestEnvironment::create_with(
        "env-tenant-a",
        json!({"access": [
            {"group": team_a, "role": "developer"},
            {"group": auditors, "role": "viewer"},
        ]}),
    )
    .await;
    let b = TestEnvironment::create_with(
        "env-tenant-b",
        json!({"access": [{"group": team_b, "role": "developer"}]}),
    )
    .await;
    let binding = wait_exists(&a.api::<RoleBinding>(), "paved-developer").await;
    assert_eq!(binding.role_ref.kind, "ClusterRole");
    assert_eq!(binding.role_ref.name, "paved-developer");
    let subjects = binding.subjects.clone().unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(
        (subjects[0].kind.as_str(), subjects[0].name.as_str()),
        ("Group", team_a.as_str())
    );
    assert_eq!(
        binding.owner_references()[0].kind,
        "Environment",
        "the RoleBinding belongs to the Environment"
    );
    wait_exists(&a.api::<RoleBinding>(), "paved-viewer").await;
    wait_exists(&b.api::<RoleBinding>(), "paved-developer").await;

    let alice = client_as("alice", &[&team_a]).await;
    // In A: create an Application, read Deployments.
    wait_until("alice may create an Application in A", WAIT, || async {
        try_apply(
            &applications(&alice, &a.namespace),
            application_manifest("shop", json!({"owner": team_a})),
        )
        .await
        .map_err(|code| format!("refused with {code}"))
    })
    .await;
    code(
        Api::<Deployment>::namespaced(alice.clone(), &a.namespace)
            .list(&ListParams::default())
            .await,
    )
    .expect("alice reads the Deployments of A");

    // In B: neither read nor write.
    assert_eq!(
        try_apply(
            &applications(&alice, &b.namespace),
            application_manifest("shop", json!({"owner": team_a})),
        )
        .await,
        Err(403),
        "alice must not create in B"
    );
    assert_eq!(
        code(
            applications(&alice, &b.namespace)
                .list(&ListParams::default())
                .await
        ),
        Err(403),
        "alice must not read B's Applications"
    );
    assert_eq!(
        code(
            Api::<Deployment>::namespaced(alice.clone(), &b.namespace)
                .list(&ListParams::default())
                .await
        ),
        Err(403),
        "alice must not read B's Deployments"
    );
    // Nor can she grant herself more: RoleBindings are not hers to write.
    let grab = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
        "metadata": {"name": "grab", "namespace": b.namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "paved-developer"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": team_a}],
    });
    assert_eq!(
        code(
            Api::<RoleBinding>::namespaced(alice.clone(), &b.namespace)
                .patch(
                    "grab",
                    &PatchParams::apply(USER_MANAGER),
                    &Patch::Apply(&grab)
                )
                .await
        ),
        Err(403)
    );

    // A viewer of A reads but does not write.
    let victor = client_as("victor", &[&auditors]).await;
    code(
        applications(&victor, &a.namespace)
            .list(&ListParams::default())
            .await,
    )
    .expect("a viewer reads");
    assert_eq!(
        try_apply(
            &applications(&victor, &a.namespace),
            application_manifest("other", json!({"owner": "x"})),
        )
        .await,
        Err(403),
        "a viewer must not write"
    );

    // Revoking access removes the binding.
    merge_patch(
        &environments(&admin),
        &a.name,
        json!({"spec": {"access": [{"group": team_a, "role": "developer"}]}}),
    )
    .await;
    wait_gone(&a.api::<RoleBinding>(), "paved-viewer").await;
}

#[tokio::test]
async fn guardrails_become_a_quota_container_defaults_and_a_network_policy() {
    let env = TestEnvironment::create_with(
        "env-guard",
        json!({"guardrails": {
            "quota": {"cpu": "4", "memory": "8Gi", "pods": "20"},
            "defaults": {"resources": {"requests": {"cpu": "100m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}}},
            "networkIsolation": true,
        }}),
    )
    .await;
    let quota = wait_exists(&env.api::<ResourceQuota>(), "paved-quota").await;
    let hard = quota.spec.unwrap().hard.unwrap();
    assert_eq!(hard["requests.cpu"].0, "4");
    assert_eq!(hard["requests.memory"].0, "8Gi");
    assert_eq!(hard["pods"].0, "20");
    assert_eq!(
        labels(&quota.metadata)["app.kubernetes.io/managed-by"],
        "paved"
    );

    let range = wait_exists(&env.api::<LimitRange>(), "paved-defaults").await;
    let item = &range.spec.unwrap().limits[0];
    assert_eq!(item.type_, "Container");
    let requests = item.default_request.clone().unwrap();
    assert_eq!(requests["cpu"].0, "100m");
    assert_eq!(requests["memory"].0, "128Mi");
    assert_eq!(item.default.clone().unwrap()["memory"].0, "256Mi");

    let policy = wait_exists(&env.api::<NetworkPolicy>(), "paved-isolation").await;
    let spec = serde_json::to_value(policy.spec.unwrap()).unwrap();
    assert_eq!(spec["podSelector"], json!({}));
    assert_eq!(spec["policyTypes"], json!(["Ingress"]));
    assert_eq!(
        spec["ingress"],
        json!([
            {"from": [{"podSelector": {}}]},
            {"from": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]},
        ]),
        "same namespace and the ingress controller's namespace only"
    );

    // A Service's pods get the defaults (and count against the quota).
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service(
        "web",
        json!({"application": "shop", "image": crate::paved_support::image("web", "1")}),
    )
    .await;
    crate::paved_support::wait_ready(&env.services(), "web").await;
    crate::env_support::wait_status(
        &environments(&env.client),
        &env.name,
        "status.quota reports the pod against the quota",
        |o| {
            let quota = &o.data["status"]["quota"];
            quota["hard"]["pods"] == "20" && quota["used"]["pods"] == "1"
        },
    )
    .await;

    // Dropping a guardrail removes its object; the others stay.
    merge_patch(
        &environments(&env.client),
        &env.name,
        json!({"spec": {"guardrails": {"networkIsolation": false, "quota": null}}}),
    )
    .await;
    wait_gone(&env.api::<NetworkPolicy>(), "paved-isolation").await;
    wait_gone(&env.api::<ResourceQuota>(), "paved-quota").await;
    wait_exists(&env.api::<LimitRange>(), "paved-defaults").await;
}

#[tokio::test]
async fn an_environment_aimed_at_kube_system_stalls_and_leaves_it_untouched() {
    let client = client().await;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let before = namespaces.get("kube-system").await.unwrap();
    let name = unique("env-deputy");
    let mut cleanup = Cleanup::default();
    cleanup.environments.push(name.clone());
    apply(
        &environments(&client),
        environment_manifest(
            &name,
            json!({
                "domain": format!("{name}.example.test"),
                "namespace": "kube-system",
                "access": [{"group": "system:authenticated", "role": "developer"}],
                "guardrails": {"quota": {"pods": "1"}, "networkIsolation": true},
                "lifecycle": {"stopped": true},
            }),
        ),
    )
    .await;
    let stalled = wait_condition(
        &environments(&client),
        &name,
        "Stalled",
        "True",
        Some("NamespaceConflict"),
    )
    .await;
    assert!(
        stalled.data["status"]
            .get("namespace")
            .is_none_or(Value::is_null),
        "a namespace it does not own is not reported as its own: {}",
        stalled.data["status"]
    );

    let after = namespaces.get("kube-system").await.unwrap();
    assert_eq!(
        after.metadata.labels, before.metadata.labels,
        "labels untouched"
    );
    assert_eq!(
        after.metadata.annotations, before.metadata.annotations,
        "annotations untouched"
    );
    assert_eq!(
        after.metadata.owner_references,
        before.metadata.owner_references
    );
    for (kind, found) in [
        (
            "RoleBinding",
            Api::<RoleBinding>::namespaced(client.clone(), "kube-system")
                .get_opt("paved-developer")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "ResourceQuota",
            Api::<ResourceQuota>::namespaced(client.clone(), "kube-system")
                .get_opt("paved-quota")
                .await
                .unwrap()
                .is_some(),
        ),
        (
            "NetworkPolicy",
            Api::<NetworkPolicy>::namespaced(client.clone(), "kube-system")
                .get_opt("paved-isolation")
                .await
                .unwrap()
                .is_some(),
        ),
    ] {
        assert!(!found, "no {kind} may be created in kube-system");
    }

    // Deleting the Environment does not delete kube-system.
    environments(&client)
        .delete(&name, &DeleteParams::background())
        .await
        .unwrap();
    wait_gone(&environments(&client), &name).await;
    let kept = namespaces.get("kube-system").await.unwrap();
    assert!(
        kept.metadata.deletion_timestamp.is_none(),
        "kube-system must never be deleted"
    );
}

/// `kubectl ARGS` as `user` in `group` (impersonated by the admin kubeconfig),
/// off the async runtime: (success, stdout + stderr).
async fn kubectl_as(user: &str, group: &str, args: &[&str]) -> (bool, String) {
    let kubectl = std::env::var("PAVED_E2E_KUBECTL").unwrap_or_else(|_| "kubectl".into());
    let mut all: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    all.extend([
        "--as".into(),
        user.into(),
        "--as-group".into(),
        group.into(),
    ]);
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(&kubectl)
            .args(&all)
            .env("KUBECONFIG", crate::support::kubeconfig_path())
            .output()
            .unwrap_or_else(|e| panic!("running {kubectl}: {e}"))
    })
    .await
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[tokio::test]
async fn a_developer_or_viewer_lists_every_environment_and_reads_only_the_ones_they_are_bound_in() {
    let admin = client().await;
    ensure_user_roles(&admin).await;
    let team = unique("team-cat");
    let watchers = unique("watchers-cat");
    let mine = TestEnvironment::create_with(
        "env-cat-mine",
        json!({"access": [
            {"group": team, "role": "developer"},
            {"group": watchers, "role": "viewer"},
        ]}),
    )
    .await;
    let other = TestEnvironment::create_with(
        "env-cat-other",
        json!({"access": [{"group": unique("team-else"), "role": "developer"}]}),
    )
    .await;
    for env in [&mine, &other] {
        apply(
            &env.applications(),
            application_manifest("shop", json!({"owner": "team-shop"})),
        )
        .await;
    }
    wait_exists(&mine.api::<RoleBinding>(), "paved-developer").await;
    wait_exists(&mine.api::<RoleBinding>(), "paved-viewer").await;

    for (user, group) in [("dana", team.as_str()), ("vic", watchers.as_str())] {
        let person = client_as(user, &[group]).await;
        // The catalog: every Environment, through the API and through kubectl.
        let names = wait_until(&format!("{user} lists the Environments"), WAIT, || async {
            environments(&person)
                .list(&ListParams::default())
                .await
                .map(|list| list.items.iter().map(|e| e.name_any()).collect::<Vec<_>>())
                .map_err(|e| e.to_string())
        })
        .await;
        assert!(
            names.contains(&mine.name) && names.contains(&other.name),
            "{user} sees both Environments: {names:?}"
        );
        code(environments(&person).get(&other.name).await)
            .expect("an Environment one is not bound in is readable (the catalog)");
        let (ok, out) = kubectl_as(user, group, &["get", "penv"]).await;
        assert!(
            ok && out.contains(&mine.name) && out.contains(&other.name),
            "kubectl get penv as {user}: {out}"
        );

        // Their own Environment: its Applications (and `kubectl get paved -n`).
        let (ok, out) = wait_until(
            &format!("{user} reads {}", mine.namespace),
            WAIT,
            || async {
                let (ok, out) =
                    kubectl_as(user, group, &["get", "paved", "-n", &mine.namespace]).await;
                if ok { Ok((ok, out)) } else { Err(out) }
            },
        )
        .await;
        assert!(
            ok && out.contains("application.paved.dev/shop"),
            "kubectl get paved -n {} as {user}: {out}",
            mine.namespace
        );
        code(applications(&person, &mine.namespace).get("shop").await)
            .expect("reads the Application where bound");

        // Another Environment's contents, and the whole cluster's, stay closed.
        assert_eq!(
            code(
                applications(&person, &other.namespace)
                    .list(&ListParams::default())
                    .await
            ),
            Err(403),
            "{user} must not read the Applications of an Environment they are not bound in"
        );
        let (ok, out) = kubectl_as(user, group, &["get", "paved", "-n", &other.namespace]).await;
        assert!(
            !ok && out.contains("Forbidden"),
            "kubectl get paved -n {} as {user}: {out}",
            other.namespace
        );
        let (ok, out) = kubectl_as(user, group, &["get", "paved", "-A"]).await;
        assert!(
            !ok && out.contains("Forbidden"),
            "kubectl get paved -A as {user}: {out}"
        );
        // Reading the catalog is all: no Environment can be created, changed or deleted.
        assert_eq!(
            try_apply(
                &environments(&person),
                environment_manifest(&unique("env-cat-grab"), json!({})),
            )
            .await,
            Err(403),
            "{user} must not create an Environment"
        );
        assert_eq!(
            code(
                environments(&person)
                    .patch(
                        &mine.name,
                        &PatchParams::default(),
                        &Patch::Merge(
                            json!({"spec": {"access": [{"group": group, "role": "developer"}]}})
                        ),
                    )
                    .await
            ),
            Err(403),
            "{user} must not change their own Environment's access"
        );
        assert_eq!(
            code(
                environments(&person)
                    .delete(&other.name, &DeleteParams::default())
                    .await
            ),
            Err(403),
            "{user} must not delete an Environment"
        );
    }
}

#[tokio::test]
async fn a_deleted_or_edited_guardrail_comes_back_within_seconds_not_at_the_resync() {
    let env = TestEnvironment::create_with(
        "env-guard-drift",
        json!({"guardrails": {
            "quota": {"pods": "20"},
            "defaults": {"resources": {"limits": {"memory": "256Mi"}}},
        }}),
    )
    .await;
    let ranges = env.api::<LimitRange>();
    let quotas = env.api::<ResourceQuota>();
    let range = wait_exists(&ranges, "paved-defaults").await;
    wait_exists(&quotas, "paved-quota").await;

    // The Environment is cluster-scoped and these children are namespaced: their
    // events must still reach it (the resync is ten minutes away).
    let fast = std::time::Duration::from_secs(20);
    ranges
        .delete("paved-defaults", &DeleteParams::default())
        .await
        .unwrap();
    let back = wait_until("a new LimitRange paved-defaults", fast, || async {
        match ranges
            .get_opt("paved-defaults")
            .await
            .map_err(|e| e.to_string())?
        {
            Some(r) if r.metadata.uid != range.metadata.uid => Ok(r),
            Some(_) => Err("still the deleted one".to_string()),
            None => Err("not there".to_string()),
        }
    })
    .await;
    assert_eq!(
        back.spec.unwrap().limits[0].default.clone().unwrap()["memory"].0,
        "256Mi"
    );

    quotas
        .patch(
            "paved-quota",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "paved-quota"},
                "spec": {"hard": {"pods": "1000"}}
            })),
        )
        .await
        .unwrap();
    wait_until("the quota's pods back at 20", fast, || async {
        let q = quotas.get("paved-quota").await.map_err(|e| e.to_string())?;
        let pods = q
            .spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("pods").cloned());
        match pods {
            Some(p) if p.0 == "20" => Ok(()),
            other => Err(format!("pods {other:?}")),
        }
    })
    .await;
}
