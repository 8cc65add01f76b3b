//! Smoke tests of the local control plane itself: before any Paved test can
//! mean something, the cluster must behave like a real one. Each test proves
//! one piece a Paved feature stands on.

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::json;

use crate::support::{WAIT, client, client_as, is_not_found, unique, wait_until};

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("namespace created");
}

async fn delete_namespace(client: &kube::Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await;
}

fn deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/smoke:1"}]}
            }
        }
    }))
    .unwrap()
}

fn pod_is_running_and_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

#[tokio::test]
async fn custom_resource_definition_and_custom_object_apply_and_read_back() {
    let client = client().await;
    let plural = unique("widgets").replace('-', "");
    let group = "smoke.paved.dev";
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": format!("{plural}.{group}")},
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": {"plural": plural, "singular": plural, "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{
                "name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer", "minimum": 1}}}
                }}}
            }]
        }
    }))
    .unwrap();
    let crds = Api::<CustomResourceDefinition>::all(client.clone());
    let crd_name = crd.metadata.name.clone().unwrap();
    crds.create(&PostParams::default(), &crd)
        .await
        .expect("CRD created");
    wait_until("the CRD to be Established", WAIT, || async {
        let crd = crds.get(&crd_name).await.map_err(|e| e.to_string())?;
        let established = crd
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        established
            .then_some(())
            .ok_or_else(|| "not Established".to_string())
    })
    .await;

    let gvk = GroupVersionKind::gvk(group, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, &plural);
    let widgets = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource);
    let widget: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 3}
    }))
    .unwrap();
    // The new type may take a moment to be served after Established.
    wait_until("the custom object to be created", WAIT, || async {
        widgets
            .create(&PostParams::default(), &widget)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    let read = widgets.get("w1").await.expect("custom object reads back");
    assert_eq!(read.data["spec"]["size"], json!(3));

    // The schema is enforced: size must be at least 1.
    let invalid: DynamicObject = serde_json::from_value(json!({
        "apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": "w2"}, "spec": {"size": 0}
    }))
    .unwrap();
    let err = widgets
        .create(&PostParams::default(), &invalid)
        .await
        .expect_err("schema rejects size 0");
    assert!(
        err.to_string().contains("spec.size"),
        "error names the field: {err}"
    );

    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .expect("CRD deleted");
}

#[tokio::test]
async fn deployment_gets_a_replica_set_and_pods_that_become_running_and_ready() {
    let client = client().await;
    let ns = unique("smoke-deploy");
    create_namespace(&client, &ns).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("web", 3))
        .await
        .expect("deployment created");

    let replica_sets = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
    wait_until("a ReplicaSet owned by the Deployment", WAIT, || async {
        let list = replica_sets
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        list.items
            .iter()
            .any(|rs| {
                rs.metadata
                    .owner_references
                    .iter()
                    .flatten()
                    .any(|o| o.kind == "Deployment" && o.name == "web")
            })
            .then_some(())
            .ok_or_else(|| format!("{} ReplicaSets, none owned by web", list.items.len()))
    })
    .await;

    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    wait_until(
        "3 Pods scheduled on a kwok node, Running and Ready",
        WAIT,
        || async {
            let list = pods
                .list(&ListParams::default())
                .await
                .map_err(|e| e.to_string())?;
            let ready: Vec<_> = list
                .items
                .iter()
                .filter(|p| pod_is_running_and_ready(p))
                .collect();
            let on_nodes = ready.iter().all(|p| {
                p.spec
                    .as_ref()
                    .and_then(|s| s.node_name.as_deref())
                    .is_some_and(|n| n.starts_with("kwok-node-"))
            });
            (ready.len() == 3 && on_nodes).then_some(()).ok_or_else(|| {
                format!(
                    "{} pods, {} running and ready",
                    list.items.len(),
                    ready.len()
                )
            })
        },
    )
    .await;
    wait_until(
        "the Deployment to report 3 available replicas",
        WAIT,
        || async {
            let d = deployments.get("web").await.map_err(|e| e.to_string())?;
            let available = d.status.and_then(|s| s.available_replicas).unwrap_or(0);
            (available == 3)
                .then_some(())
                .ok_or_else(|| format!("{available} available"))
        },
    )
    .await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn deleting_an_owner_garbage_collects_its_dependents() {
    let client = client().await;
    let ns = unique("smoke-gc");
    create_namespace(&client, &ns).await;
    let maps = Api::<ConfigMap>::namespaced(client.clone(), &ns);
    let owner = maps
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "owner"}})).unwrap(),
        )
        .await
        .expect("owner created");
    let dependent: ConfigMap = serde_json::from_value(json!({"metadata": {
        "name": "dependent",
        "ownerReferences": [{
            "apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
            "uid": owner.metadata.uid.unwrap(), "controller": true
        }]
    }}))
    .unwrap();
    maps.create(&PostParams::default(), &dependent)
        .await
        .expect("dependent created");

    maps.delete("owner", &DeleteParams::background())
        .await
        .expect("owner deleted");
    wait_until(
        "the garbage collector to delete the dependent",
        WAIT,
        || async {
            match maps.get("dependent").await {
                Err(e) if is_not_found(&e) => Ok(()),
                Err(e) => Err(e.to_string()),
                Ok(_) => Err("dependent still exists".into()),
            }
        },
    )
    .await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn deleting_a_namespace_with_running_pods_completes() {
    let client = client().await;
    let ns = unique("smoke-nsdel");
    create_namespace(&client, &ns).await;
    let deployments = Api::<Deployment>::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment("api", 2))
        .await
        .expect("deployment created");
    let pods = Api::<Pod>::namespaced(client.clone(), &ns);
    wait_until("2 Ready pods before deleting", WAIT, || async {
        let list = pods
            .list(&ListParams::default())
            .await
            .map_err(|e| e.to_string())?;
        let ready = list
            .items
            .iter()
            .filter(|p| pod_is_running_and_ready(p))
            .count();
        (ready == 2)
            .then_some(())
            .ok_or_else(|| format!("{ready} ready"))
    })
    .await;

    let namespaces = Api::<Namespace>::all(client.clone());
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("namespace deletion accepted");
    wait_until("the namespace to be gone", WAIT, || async {
        match namespaces.get(&ns).await {
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.to_string()),
            Ok(n) => Err(format!("phase {:?}", n.status.and_then(|s| s.phase))),
        }
    })
    .await;
}

#[tokio::test]
async fn an_ingress_is_accepted_and_reads_back() {
    let client = client().await;
    let ns = unique("smoke-ingress");
    create_namespace(&client, &ns).await;
    let ingresses = Api::<Ingress>::namespaced(client.clone(), &ns);
    let ingress: Ingress = serde_json::from_value(json!({
        "metadata": {"name": "web"},
        "spec": {
            "ingressClassName": "nginx",
            "rules": [{"host": "web.staging.example.com", "http": {"paths": [{
                "path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": "web", "port": {"number": 8080}}}
            }]}}]
        }
    }))
    .unwrap();
    ingresses
        .create(&PostParams::default(), &ingress)
        .await
        .expect("ingress accepted");
    let read = ingresses.get("web").await.expect("ingress reads back");
    let host = read.spec.unwrap().rules.unwrap()[0].host.clone();
    assert_eq!(host.as_deref(), Some("web.staging.example.com"));
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
async fn rbac_denies_an_identity_without_rights_and_allows_one_granted_them() {
    let admin = client().await;
    let ns = unique("smoke-rbac");
    create_namespace(&admin, &ns).await;
    let user = unique("someone");

    let as_user = client_as(&user, &[]).await;
    let err = Api::<ConfigMap>::namespaced(as_user.clone(), &ns)
        .list(&ListParams::default())
        .await
        .expect_err("an identity without rights is denied");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "expected 403 Forbidden, got {err}"
    );

    // Granting a Role makes the same call succeed: RBAC is evaluated, not a blanket deny.
    let role: Role = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list"]}]
    }))
    .unwrap();
    Api::<Role>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &role)
        .await
        .expect("role created");
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "read-configmaps"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-configmaps"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(admin.clone(), &ns)
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding created");
    wait_until("the granted identity to list configmaps", WAIT, || async {
        Api::<ConfigMap>::namespaced(as_user.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;
    // Still denied where nothing was granted.
    let err = Api::<ConfigMap>::namespaced(as_user.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect_err("denied in a namespace without a binding");
    assert!(
        matches!(&err, kube::Error::Api(s) if s.code == 403),
        "got {err}"
    );
    delete_namespace(&admin, &ns).await;
}
