//! `paved crd`: the CustomResourceDefinitions, generated from [`crate::api`].
//! `crds/` holds this output, one file per kind; a test fails when it drifts.

use std::path::Path;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::api::{Application, Environment, Service};

/// All CRDs, in apply order.
pub fn all() -> Vec<CustomResourceDefinition> {
    vec![Environment::crd(), Application::crd(), Service::crd()]
        .into_iter()
        .map(with_pending_status)
        .collect()
}

/// What an object's status reads before Paved first wrote it.
pub const PENDING_MESSAGE: &str =
    "Paved has not reconciled this object yet; if this lasts, check that the paved controller runs";

/// The API server fills an absent `status` with this default on every read, so
/// an object Paved has not reconciled yet (just created, or no controller
/// running) reads as `Reconciling` and not Ready, observedGeneration 0. Without
/// it, kstatus (kpt, Flux, cli-utils) calls a brand-new object `Current`, and
/// `kubectl wait` or a GitOps sync would pass before Paved looked at it. Defaults
/// are not stored: Paved's first status write replaces the whole of `status`.
fn with_pending_status(mut crd: CustomResourceDefinition) -> CustomResourceDefinition {
    let pending = |type_: &str, status: &str| serde_json::json!({"type": type_, "status": status, "reason": crate::names::reasons::PENDING, "message": PENDING_MESSAGE});
    let default = serde_json::json!({
        "observedGeneration": 0,
        "conditions": [pending("Ready", "False"), pending("Reconciling", "True")],
    });
    for version in &mut crd.spec.versions {
        let status = version
            .schema
            .as_mut()
            .and_then(|s| s.open_api_v3_schema.as_mut())
            .and_then(|s| s.properties.as_mut())
            .and_then(|p| p.get_mut("status"));
        if let Some(status) = status {
            status.default = Some(
                k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::JSON(
                    default.clone(),
                ),
            );
        }
    }
    crd
}

/// One CRD as a YAML document (with the `---` separator).
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    let body = serde_yaml::to_string(crd).expect("a CRD serializes to YAML");
    format!("---\n{body}")
}

/// File name of a CRD inside `crds/`: `<plural>.<group>.yaml`.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Every CRD, as one multi-document YAML stream.
pub fn all_yaml() -> String {
    all().iter().map(to_yaml).collect()
}

/// Write one file per CRD into `dir`.
pub fn write_dir(dir: &Path) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for crd in all() {
        let name = file_name(&crd);
        std::fs::write(dir.join(&name), to_yaml(&crd))?;
        written.push(name);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_crds_match_what_paved_crd_generates() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
        for crd in all() {
            let path = dir.join(file_name(&crd));
            let committed = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                committed == to_yaml(&crd),
                "{} is out of date: run `cargo run -- crd --out-dir crds` and commit the result",
                path.display()
            );
        }
    }

    #[test]
    fn crds_have_short_names_category_and_status_subresource() {
        for (crd, short) in all().iter().zip(["penv", "papp", "psvc"]) {
            let names = &crd.spec.names;
            assert_eq!(names.short_names.as_deref(), Some(&[short.to_string()][..]));
            assert_eq!(
                names.categories.as_deref(),
                Some(&["paved".to_string()][..])
            );
            let version = &crd.spec.versions[0];
            assert!(version.subresources.as_ref().unwrap().status.is_some());
            assert_eq!(crd.spec.group, "paved.dev");
        }
        assert_eq!(Environment::crd().spec.scope, "Cluster");
        assert_eq!(Service::crd().spec.scope, "Namespaced");
    }

    #[test]
    fn the_schema_carries_the_cel_rules() {
        let yaml = all_yaml();
        for rule in [
            "set either replicas or autoscaling, not both",
            "autoscaling.min must be less than or equal to autoscaling.max",
            "spec.namespace is immutable",
            "port numbers in spec.ports must be unique",
            "x-kubernetes-list-type: map",
        ] {
            assert!(yaml.contains(rule), "missing {rule}");
        }
    }

    #[test]
    fn an_object_paved_has_not_reconciled_yet_reads_as_reconciling_and_not_ready() {
        for crd in all() {
            let schema = crd.spec.versions[0].schema.clone().unwrap();
            let status = &schema.open_api_v3_schema.unwrap().properties.unwrap()["status"];
            let default = status.default.clone().expect("a default status").0;
            assert_eq!(default["observedGeneration"], 0, "{:?}", crd.metadata.name);
            let conditions = default["conditions"].as_array().unwrap();
            let find = |t: &str| conditions.iter().find(|c| c["type"] == t).unwrap();
            assert_eq!(find("Ready")["status"], "False");
            assert_eq!(find("Reconciling")["status"], "True");
            assert_eq!(find("Reconciling")["reason"], "Pending");
            // It deserializes as Paved's own status, so the reconcile reads it.
            match crd.spec.names.kind.as_str() {
                "Service" => {
                    drop(serde_json::from_value::<crate::api::ServiceStatus>(default).unwrap())
                }
                "Application" => {
                    drop(serde_json::from_value::<crate::api::ApplicationStatus>(default).unwrap())
                }
                "Environment" => {
                    drop(serde_json::from_value::<crate::api::EnvironmentStatus>(default).unwrap())
                }
                other => panic!("unexpected kind {other}"),
            }
        }
    }
}
