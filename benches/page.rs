//! How long the catalog page takes to render for a large catalog: 1,000
//! Services (50 Applications of 5 Services in each of 4 Environments), the
//! overview and one Service's page. Figures, not assertions (`make bench`
//! prints them; the target is under 200 ms per page).

use std::sync::Arc;
use std::time::{Duration, Instant};

use paved::api::{Application, Environment, Service};
use paved::page::{Catalog, html};

fn from_json<T: serde::de::DeserializeOwned>(value: serde_json::Value) -> Arc<T> {
    Arc::new(serde_json::from_value(value).expect("fixture"))
}

fn large_catalog() -> Catalog {
    let types = ["development", "staging", "production", "preview"];
    let mut catalog = Catalog::default();
    for (e, type_) in types.iter().enumerate() {
        let env = format!("env-{e}");
        catalog.environments.push(from_json::<Environment>(serde_json::json!({
            "metadata": {"name": env},
            "spec": {"type": type_, "domain": format!("{env}.example.com")},
            "status": {"quota": {"hard": {"requests.cpu": "40"}, "used": {"requests.cpu": "12500m"}}},
        })));
        for a in 0..50 {
            let app = format!("app-{a}");
            catalog.applications.push(from_json::<Application>(serde_json::json!({
                "metadata": {"name": app, "namespace": env},
                "spec": {"owner": format!("team-{a}"), "description": "A <b>busy</b> application"},
                "status": {"ready": "5/5"},
            })));
            for s in 0..5 {
                let name = format!("{app}-svc-{s}");
                let history: Vec<_> = (1..=10)
                    .rev()
                    .map(|r| serde_json::json!({"revision": r, "image": format!("ghcr.io/acme/{name}:1.{r}.0"),
                                                "configHash": "abcdef", "deployedAt": "2026-11-23T10:00:00Z"}))
                    .collect();
                catalog.services.push(from_json::<Service>(serde_json::json!({
                    "metadata": {"name": name, "namespace": env},
                    "spec": {"application": app, "image": format!("ghcr.io/acme/{name}:1.10.0"),
                             "dependsOn": if s > 0 { vec![format!("{app}-svc-0")] } else { vec![] }},
                    "status": {"url": format!("https://{name}.{env}.example.com/"), "revision": 10, "history": history,
                               "conditions": [{"type": "Ready", "status": "True", "reason": "Available", "message": "2 of 2 pods available"}]},
                })));
            }
        }
    }
    catalog
}

fn measure(what: &str, runs: u32, mut render: impl FnMut() -> usize) {
    let mut times: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    for _ in 0..runs {
        let start = Instant::now();
        bytes = render();
        times.push(start.elapsed());
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what}: median {:.1} ms, slowest {:.1} ms over {runs} runs ({} KiB of HTML)",
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1]),
        bytes / 1024
    );
}

fn main() {
    let catalog = large_catalog();
    println!(
        "catalog page, {} Environments, {} Applications, {} Services:",
        catalog.environments.len(),
        catalog.applications.len(),
        catalog.services.len()
    );
    measure("  overview", 30, || {
        html::overview(&catalog).into_string().len()
    });
    let service = catalog.services[1].clone();
    measure("  one Service's page", 30, || {
        html::service_page(&catalog, &service, &[])
            .into_string()
            .len()
    });
    let env = catalog.environments[2].clone();
    measure("  one Environment's page (250 Services)", 30, || {
        html::environment_page(&catalog, &env).into_string().len()
    });
}
