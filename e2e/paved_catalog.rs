//! Status is the catalog: what a portal reads from the custom resources, kept
//! current as Services come and go and become ready.

use serde_json::{Value, json};

use crate::paved_support::{
    TestEnvironment, condition, environments, image, wait_condition, wait_object, wait_ready,
};

fn service(application: &str, name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "application": application,
        "image": image(name, "1.0"),
        "ports": [{"name": "http", "port": 8080}],
        "resources": {"requests": {"cpu": "100m"}}
    });
    for (key, value) in extra.as_object().unwrap() {
        spec[key] = value.clone();
    }
    spec
}

/// A Service that cannot become ready: no node has 1000 CPUs.
fn too_big() -> Value {
    json!({"resources": {"requests": {"cpu": "1000"}}})
}

#[tokio::test]
async fn an_application_status_shows_owner_lifecycle_services_ready_count_and_dependencies() {
    let env = TestEnvironment::create("pcat-app").await;
    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production", "description": "The shop"}),
    )
    .await;
    env.apply_service("api", service("shop", "api", json!({})))
        .await;
    env.apply_service(
        "web",
        service("shop", "web", json!({"expose": {}, "dependsOn": ["api"]})),
    )
    .await;
    env.apply_service("worker", service("shop", "worker", too_big()))
        .await;
    let web_url = wait_ready(&env.services(), "web").await.data["status"]["url"].clone();
    assert!(web_url.is_string(), "the exposed Service has a url");

    let applications = env.applications();
    let app = wait_object(&applications, "shop", "2 of 3 Services ready", |a| {
        let status = &a.data["status"];
        (status["ready"] == "2/3" && status["services"].as_array().is_some_and(|s| s.len() == 3))
            .then_some(())
            .ok_or_else(|| format!("ready {} services {}", status["ready"], status["services"]))
    })
    .await;
    let status = &app.data["status"];
    assert_eq!(status["owner"], "team-shop");
    assert_eq!(status["lifecycle"], "production");
    let services = status["services"].as_array().unwrap();
    let names: Vec<&str> = services
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["api", "web", "worker"],
        "services sorted by name"
    );
    assert_eq!(services[0]["ready"], true);
    assert_eq!(services[0]["image"], json!(image("api", "1.0")));
    assert!(
        services[0]["url"].is_null(),
        "api is not exposed: {}",
        services[0]
    );
    assert_eq!(services[1]["ready"], true);
    assert_eq!(services[1]["url"], web_url);
    assert_eq!(services[2]["ready"], false);
    assert_eq!(
        status["dependsOn"]["web"],
        json!(["api"]),
        "dependency graph: {}",
        status["dependsOn"]
    );
    let ready = condition(&app, "Ready").unwrap();
    assert_eq!(
        ready.status, "False",
        "not all Services are ready: {ready:?}"
    );
    assert!(
        ready.message.contains("worker"),
        "the message names the Service not ready: {}",
        ready.message
    );

    // The last Service becomes ready: 3/3 and Ready.
    env.apply_service("worker", service("shop", "worker", json!({})))
        .await;
    let app = wait_condition(&applications, "shop", "Ready", "True", None).await;
    assert_eq!(app.data["status"]["ready"], "3/3");
    assert!(
        app.data["status"]["services"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["ready"] == true)
    );

    // A new Service shows up in the catalog, a deleted one disappears.
    env.services()
        .delete("api", &Default::default())
        .await
        .unwrap();
    wait_object(&applications, "shop", "api to leave the catalog", |a| {
        let names: Vec<&str> = a.data["status"]["services"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["name"].as_str())
            .collect();
        (names == ["web", "worker"])
            .then_some(())
            .ok_or_else(|| format!("services {names:?}"))
    })
    .await;
}

#[tokio::test]
async fn an_environment_status_lists_applications_counts_services_and_collects_urls() {
    let env = TestEnvironment::create_with("pcat-env", json!({"type": "production"})).await;
    env.apply_application("storefront", json!({"owner": "team-web"}))
        .await;
    env.apply_application("payments", json!({"owner": "team-pay"}))
        .await;
    env.apply_service("web", service("storefront", "web", json!({"expose": {}})))
        .await;
    env.apply_service(
        "admin",
        service(
            "storefront",
            "admin",
            json!({"expose": {"host": format!("admin.{}", env.domain), "path": "/admin"}}),
        ),
    )
    .await;
    env.apply_service("ledger", service("payments", "ledger", json!({})))
        .await;
    env.apply_service("fraud", service("payments", "fraud", too_big()))
        .await;
    let web_url = wait_ready(&env.services(), "web").await.data["status"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let admin_url = wait_ready(&env.services(), "admin").await.data["status"]["url"]
        .as_str()
        .unwrap()
        .to_string();
    wait_ready(&env.services(), "ledger").await;

    let mut expected_urls = vec![web_url.clone(), admin_url.clone()];
    expected_urls.sort();
    let expected_applications =
        json!([{"name": "payments", "ready": false}, {"name": "storefront", "ready": true}]);
    // Applications are ready when all their Services are; sorted by name.
    let environment = wait_object(
        &environments(&env.client),
        &env.name,
        "the environment's catalog: applications, 3 of 4 Services ready, the URLs",
        |e| {
            let status = &e.data["status"];
            (status["services"]["total"] == 4
                && status["services"]["ready"] == 3
                && status["applications"] == expected_applications
                && status["urls"] == json!(expected_urls))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "services {} applications {} urls {}",
                    status["services"], status["applications"], status["urls"]
                )
            })
        },
    )
    .await;
    let status = &environment.data["status"];
    assert_eq!(status["namespace"], json!(env.namespace));
    assert_eq!(status["type"], "production");
    assert_eq!(status["services"]["summary"], "3/4");
    assert!(
        web_url.starts_with(&format!("http://web.{}", env.domain)),
        "web url: {web_url}"
    );
    assert!(
        admin_url.starts_with(&format!("http://admin.{}/admin", env.domain)),
        "admin url: {admin_url}"
    );
}

#[tokio::test]
async fn a_service_status_shows_its_url_in_cluster_endpoint_and_whether_its_dependencies_are_ready()
{
    let env = TestEnvironment::create("pcat-svc").await;
    env.apply_application("shop", json!({"owner": "team-shop"}))
        .await;
    env.apply_service("db-proxy", service("shop", "db-proxy", too_big()))
        .await;
    env.apply_service(
        "api",
        service(
            "shop",
            "api",
            json!({"ports": [{"name": "grpc", "port": 9000}, {"name": "http", "port": 8080}]}),
        ),
    )
    .await;
    env.apply_service(
        "web",
        service(
            "shop",
            "web",
            json!({"expose": {}, "dependsOn": ["api", "db-proxy"]}),
        ),
    )
    .await;

    let services = env.services();
    let web = wait_object(
        &services,
        "web",
        "web's dependencies: api ready, db-proxy not",
        |s| {
            let dependencies = &s.data["status"]["dependencies"];
            (*dependencies
                == json!([{"name": "api", "ready": true}, {"name": "db-proxy", "ready": false}]))
            .then_some(())
            .ok_or_else(|| format!("dependencies {dependencies}"))
        },
    )
    .await;
    let status = &web.data["status"];
    let url = status["url"].as_str().unwrap_or_default();
    assert_eq!(
        url.trim_end_matches('/'),
        format!("http://web.{}", env.domain),
        "url of expose {{}}"
    );
    assert_eq!(
        status["endpoint"],
        json!(format!("web.{}.svc.cluster.local:8080", env.namespace))
    );
    assert_eq!(status["image"], json!(image("web", "1.0")));
    let api = wait_ready(&services, "api").await;
    assert_eq!(
        api.data["status"]["endpoint"],
        json!(format!("api.{}.svc.cluster.local:9000", env.namespace)),
        "the endpoint is on the first port"
    );
    assert!(
        api.data["status"]["url"].is_null(),
        "no url when not exposed"
    );

    // The dependency becomes ready: the dependent's status follows.
    env.apply_service("db-proxy", service("shop", "db-proxy", json!({})))
        .await;
    wait_object(&services, "web", "web's dependencies all ready", |s| {
        let dependencies = &s.data["status"]["dependencies"];
        (*dependencies
            == json!([{"name": "api", "ready": true}, {"name": "db-proxy", "ready": true}]))
        .then_some(())
        .ok_or_else(|| format!("dependencies {dependencies}"))
    })
    .await;
}

/// `kubectl get` output as the apiserver renders it: column names and the cells
/// of the row named `name`.
async fn table_row(
    client: &kube::Client,
    path: &str,
    name: &str,
) -> Result<Vec<(String, Value)>, String> {
    let request = http::Request::get(path)
        .header("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io")
        .body(Vec::new())
        .unwrap();
    let table: Value = client.request(request).await.map_err(|e| e.to_string())?;
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["name"].as_str().unwrap_or_default().to_string())
        .collect();
    let row = table["rows"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| r["cells"][0] == name)
        .ok_or_else(|| format!("no row {name} in {path}"))?;
    let cells = row["cells"].as_array().cloned().unwrap_or_default();
    Ok(columns.into_iter().zip(cells).collect())
}

fn cell(row: &[(String, Value)], column: &str) -> Value {
    row.iter()
        .find(|(c, _)| c == column)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("no column {column} in {row:?}"))
}

#[tokio::test]
async fn kubectl_get_paved_lists_the_three_kinds_with_ready_image_and_url_columns() {
    let env = TestEnvironment::create("pcat-kubectl").await;
    let resources = env
        .client
        .list_api_group_resources("paved.dev/v1alpha1")
        .await
        .unwrap();
    for (plural, short) in [
        ("environments", "penv"),
        ("applications", "papp"),
        ("services", "psvc"),
    ] {
        let resource = resources
            .resources
            .iter()
            .find(|r| r.name == plural)
            .unwrap_or_else(|| panic!("{plural} is served"));
        assert_eq!(
            resource.short_names.clone().unwrap_or_default(),
            vec![short.to_string()]
        );
        assert!(
            resource.categories.iter().flatten().any(|c| c == "paved"),
            "{plural} is in the category paved: {:?}",
            resource.categories
        );
    }

    env.apply_application(
        "shop",
        json!({"owner": "team-shop", "lifecycle": "production"}),
    )
    .await;
    env.apply_service("web", service("shop", "web", json!({"expose": {}})))
        .await;
    let web = wait_ready(&env.services(), "web").await;
    let url = web.data["status"]["url"].clone();

    let services_path = format!(
        "/apis/paved.dev/v1alpha1/namespaces/{}/services",
        env.namespace
    );
    let row = table_row(&env.client, &services_path, "web").await.unwrap();
    assert_eq!(cell(&row, "Ready"), "True");
    assert_eq!(cell(&row, "Application"), "shop");
    assert_eq!(cell(&row, "Image"), json!(image("web", "1.0")));
    assert_eq!(cell(&row, "URL"), url);

    let applications_path = format!(
        "/apis/paved.dev/v1alpha1/namespaces/{}/applications",
        env.namespace
    );
    let row = crate::support::wait_until(
        "the Application row to show 1/1",
        crate::support::WAIT,
        || async {
            let row = table_row(&env.client, &applications_path, "shop").await?;
            (cell(&row, "Ready") == "True" && cell(&row, "Services") == "1/1")
                .then_some(row.clone())
                .ok_or_else(|| format!("{row:?}"))
        },
    )
    .await;
    assert_eq!(cell(&row, "Owner"), "team-shop");

    let row = crate::support::wait_until(
        "the Environment row to show 1/1",
        crate::support::WAIT,
        || async {
            let row = table_row(
                &env.client,
                "/apis/paved.dev/v1alpha1/environments",
                &env.name,
            )
            .await?;
            (cell(&row, "Ready") == "True" && cell(&row, "Services") == "1/1")
                .then_some(row.clone())
                .ok_or_else(|| format!("{row:?}"))
        },
    )
    .await;
    assert_eq!(cell(&row, "Namespace"), json!(env.namespace));
    assert_eq!(cell(&row, "Type"), "development");
}
