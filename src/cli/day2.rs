//! Day-2 commands: `paved rollback`, `paved restart`, `paved stop`, `paved start`.
//!
//! They act like a user with kubectl: the kubeconfig (`KUBECONFIG`, its current
//! context and namespace), one JSON merge patch of the user's `spec` under the
//! field manager `paved-cli` (never the controller's `paved`), and a line saying
//! what changed. The controller then does the rest, exactly as if the spec had
//! been edited by hand.
//!
//! Under GitOps the spec lives in Git: a change made here is reverted by the next
//! sync (at once with self-heal). When the object carries Argo CD's tracking
//! label or annotation, each command says so on stderr.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::api::service::RevisionRecord;
use crate::api::{Environment, Service};
use crate::names::CLI_FIELD_MANAGER;

/// The Day-2 subcommands, flattened into `paved`'s own.
#[derive(Subcommand, Debug)]
pub enum Day2Command {
    /// Set a Service's image back to a revision recorded in its status.history.
    Rollback(RollbackArgs),
    /// Restart every pod of a Service (sets spec.restartedAt to now).
    Restart(ServiceArgs),
    /// Scale every workload of an Environment to zero, deleting nothing (spec.lifecycle.stopped: true).
    Stop(EnvironmentArgs),
    /// Restore the declared replicas and HPAs of a stopped Environment (spec.lifecycle.stopped: false).
    Start(EnvironmentArgs),
}

#[derive(Args, Debug)]
pub struct RollbackArgs {
    /// Name of the Service.
    pub service: String,
    /// Revision to go back to (see `kubectl get psvc NAME -o yaml`, status.history).
    #[arg(long = "to", value_name = "REVISION")]
    pub to: i64,
    /// Namespace of the Service (default: the kubeconfig context's namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct ServiceArgs {
    /// Name of the Service.
    pub service: String,
    /// Namespace of the Service (default: the kubeconfig context's namespace).
    #[arg(short, long)]
    pub namespace: Option<String>,
}

#[derive(Args, Debug)]
pub struct EnvironmentArgs {
    /// Name of the Environment.
    pub environment: String,
}

/// Why a Day-2 command did nothing.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Kube(#[from] kube::Error),
    #[error("{kind} {name} not found{}", namespace.as_ref().map(|ns| format!(" in namespace {ns}")).unwrap_or_default())]
    NotFound {
        kind: &'static str,
        name: String,
        namespace: Option<String>,
    },
    #[error("Service {service} has no revision {revision}; recorded revisions: {known}")]
    UnknownRevision {
        service: String,
        revision: i64,
        known: String,
    },
    #[error(
        "the cluster's Environment CRD has no spec.lifecycle.stopped (the field was dropped): install the CRDs of this paved version (kubectl apply --server-side -f crds/)"
    )]
    LifecycleUnsupported,
}

/// Run one Day-2 command; messages go to stdout, hints and errors to stderr.
pub fn main(command: Day2Command) -> ExitCode {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    match runtime.block_on(run(command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("paved: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Day2Command) -> Result<(), CliError> {
    let client = Client::try_default().await?;
    match command {
        Day2Command::Rollback(args) => {
            let namespace = namespace_or_default(&client, args.namespace);
            rollback(&client, &namespace, &args.service, args.to).await
        }
        Day2Command::Restart(args) => {
            let namespace = namespace_or_default(&client, args.namespace);
            restart(&client, &namespace, &args.service).await
        }
        Day2Command::Stop(args) => set_stopped(&client, &args.environment, true).await,
        Day2Command::Start(args) => set_stopped(&client, &args.environment, false).await,
    }
}

fn namespace_or_default(client: &Client, namespace: Option<String>) -> String {
    namespace.unwrap_or_else(|| client.default_namespace().to_string())
}

fn patch_params() -> PatchParams {
    PatchParams {
        field_manager: Some(CLI_FIELD_MANAGER.into()),
        ..PatchParams::default()
    }
}

async fn get_service(api: &Api<Service>, namespace: &str, name: &str) -> Result<Service, CliError> {
    api.get_opt(name).await?.ok_or_else(|| CliError::NotFound {
        kind: "Service",
        name: name.into(),
        namespace: Some(namespace.into()),
    })
}

/// `paved rollback SERVICE --to REVISION`.
pub async fn rollback(
    client: &Client,
    namespace: &str,
    name: &str,
    revision: i64,
) -> Result<(), CliError> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = get_service(&api, namespace, name).await?;
    let plan = plan_rollback(&service, revision)?;
    let Some(plan) = plan else {
        println!(
            "service/{name} already runs {} (revision {revision}); nothing changed",
            service.spec.image
        );
        return Ok(());
    };
    api.patch(
        name,
        &patch_params(),
        &Patch::Merge(json!({"spec": {"image": plan.target.image}})),
    )
    .await?;
    println!(
        "service/{name} rolled back to revision {revision}: image {} → {}",
        plan.from_image, plan.target.image
    );
    if plan.config_changed_since {
        println!(
            "note: only the image is rolled back; the configuration (env, referenced Secrets and ConfigMaps) changed since revision {revision} and stays as it is now"
        );
    }
    gitops_hint("Service", &service.metadata, "spec.image");
    Ok(())
}

/// What a rollback changes.
#[derive(Debug, PartialEq, Eq)]
pub struct RollbackPlan {
    pub from_image: String,
    pub target: RevisionRecord,
    /// The recorded configuration hash differs from the current revision's.
    pub config_changed_since: bool,
}

/// The recorded revision to go back to; `None` when the spec already has its image.
pub fn plan_rollback(service: &Service, revision: i64) -> Result<Option<RollbackPlan>, CliError> {
    let history = service
        .status
        .as_ref()
        .map(|s| s.history.as_slice())
        .unwrap_or_default();
    let target = history
        .iter()
        .find(|r| r.revision == revision)
        .ok_or_else(|| CliError::UnknownRevision {
            service: service.name_any(),
            revision,
            known: if history.is_empty() {
                "none yet".into()
            } else {
                history
                    .iter()
                    .map(|r| format!("{} ({})", r.revision, r.image))
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })?;
    if target.image == service.spec.image {
        return Ok(None);
    }
    Ok(Some(RollbackPlan {
        from_image: service.spec.image.clone(),
        target: target.clone(),
        config_changed_since: history
            .first()
            .is_some_and(|current| current.config_hash != target.config_hash),
    }))
}

/// `paved restart SERVICE`: a new `spec.restartedAt` rolls every pod.
pub async fn restart(client: &Client, namespace: &str, name: &str) -> Result<(), CliError> {
    let api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let service = get_service(&api, namespace, name).await?;
    // Milliseconds: two restarts within one second must still differ.
    let now = k8s_openapi::jiff::Timestamp::now();
    let at = now
        .round(k8s_openapi::jiff::Unit::Millisecond)
        .unwrap_or(now)
        .to_string();
    api.patch(
        name,
        &patch_params(),
        &Patch::Merge(json!({"spec": {"restartedAt": at}})),
    )
    .await?;
    println!("service/{name} restarting: spec.restartedAt set to {at}; its pods roll one by one");
    gitops_hint("Service", &service.metadata, "spec.restartedAt");
    Ok(())
}

/// `paved stop ENV` / `paved start ENV`.
pub async fn set_stopped(client: &Client, name: &str, stopped: bool) -> Result<(), CliError> {
    let api: Api<Environment> = Api::all(client.clone());
    let environment = api.get_opt(name).await?.ok_or_else(|| CliError::NotFound {
        kind: "Environment",
        name: name.into(),
        namespace: None,
    })?;
    let patched = api
        .patch(
            name,
            &patch_params(),
            &Patch::Merge(json!({"spec": {"lifecycle": {"stopped": stopped}}})),
        )
        .await?;
    if patched.spec.lifecycle.as_ref().and_then(|l| l.stopped) != Some(stopped) {
        return Err(CliError::LifecycleUnsupported);
    }
    let scheduled = patched
        .spec
        .lifecycle
        .as_ref()
        .and_then(|l| l.schedule.as_ref());
    if stopped {
        println!(
            "environment/{name} stopped: its workloads scale to zero and their HPAs are removed; nothing else is deleted. `paved start {name}` restores them"
        );
    } else {
        println!(
            "environment/{name} started: the declared replicas and HPAs of its Services are restored"
        );
        if let Some(schedule) = scheduled {
            println!(
                "note: its schedule still applies (stop \"{}\", start \"{}\"): inside a stop window it stays stopped",
                schedule.stop, schedule.start
            );
        }
    }
    gitops_hint(
        "Environment",
        &environment.metadata,
        "spec.lifecycle.stopped",
    );
    Ok(())
}

/// Argo CD's tracking label or annotation on an object, as `key=value`.
pub fn gitops_tracking(meta: &ObjectMeta) -> Option<String> {
    let is_tracking =
        |key: &str| key == "app.kubernetes.io/instance" || key.starts_with("argocd.argoproj.io/");
    meta.labels
        .iter()
        .flatten()
        .chain(meta.annotations.iter().flatten())
        .find(|(key, _)| is_tracking(key))
        .map(|(key, value)| format!("{key}={value}"))
}

fn gitops_hint(kind: &str, meta: &ObjectMeta, field: &str) {
    if let Some(tracking) = gitops_tracking(meta) {
        eprintln!(
            "hint: {kind} {} is managed by GitOps ({tracking}): make the same change to {field} in Git, or the next sync reverts it",
            meta.name.as_deref().unwrap_or_default()
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::api::ServiceStatus;
    use crate::resolve::tests::service;

    fn record(revision: i64, image: &str, config_hash: &str) -> RevisionRecord {
        RevisionRecord {
            revision,
            image: image.into(),
            config_hash: config_hash.into(),
            deployed_at: "2026-11-23T10:00:00Z".into(),
        }
    }

    fn with_history() -> Service {
        let mut web = service("staging", "web", "shop");
        web.spec.image = "ghcr.io/acme/web:3".into();
        web.status = Some(ServiceStatus {
            revision: 3,
            history: vec![
                record(3, "ghcr.io/acme/web:3", "c2"),
                record(2, "ghcr.io/acme/web:2", "c2"),
                record(1, "ghcr.io/acme/web:1", "c1"),
            ],
            ..ServiceStatus::default()
        });
        web
    }

    #[test]
    fn rollback_goes_to_the_recorded_image_and_says_whether_config_moved_since() {
        let web = with_history();
        let plan = plan_rollback(&web, 2).unwrap().unwrap();
        assert_eq!(plan.from_image, "ghcr.io/acme/web:3");
        assert_eq!(plan.target.image, "ghcr.io/acme/web:2");
        assert!(!plan.config_changed_since);
        assert!(
            plan_rollback(&web, 1)
                .unwrap()
                .unwrap()
                .config_changed_since
        );
    }

    #[test]
    fn rollback_to_the_running_image_changes_nothing() {
        assert_eq!(plan_rollback(&with_history(), 3).unwrap(), None);
    }

    #[test]
    fn an_unknown_revision_is_an_error_listing_the_recorded_ones() {
        let error = plan_rollback(&with_history(), 7).unwrap_err().to_string();
        assert!(error.contains("no revision 7"), "{error}");
        assert!(error.contains("2 (ghcr.io/acme/web:2)"), "{error}");
        let fresh = service("staging", "api", "shop");
        let error = plan_rollback(&fresh, 1).unwrap_err().to_string();
        assert!(error.contains("none yet"), "{error}");
    }

    #[test]
    fn argo_cd_tracking_is_recognised_on_labels_and_annotations() {
        let mut meta = ObjectMeta::default();
        assert_eq!(gitops_tracking(&meta), None);
        meta.labels = Some(BTreeMap::from([("team".into(), "shop".into())]));
        assert_eq!(gitops_tracking(&meta), None);
        meta.annotations = Some(BTreeMap::from([(
            "argocd.argoproj.io/tracking-id".into(),
            "shop:paved.dev/Service:staging/web".into(),
        )]));
        assert_eq!(
            gitops_tracking(&meta).as_deref(),
            Some("argocd.argoproj.io/tracking-id=shop:paved.dev/Service:staging/web")
        );
        meta.annotations = None;
        meta.labels = Some(BTreeMap::from([(
            "app.kubernetes.io/instance".into(),
            "shop".into(),
        )]));
        assert_eq!(
            gitops_tracking(&meta).as_deref(),
            Some("app.kubernetes.io/instance=shop")
        );
    }
}
