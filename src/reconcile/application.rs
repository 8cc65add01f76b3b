//! Application reconcile: no children; resolve its environment and aggregate its
//! Services into status.

use std::sync::Arc;

use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::controller::Action;

use super::status_writer::deferred;
use super::{Context, Start, StatusWrite, now, prologue, write_status};
use crate::api::Application;
use crate::error::{Error, Result};
use crate::status::application_status;

pub async fn reconcile(application: Arc<Application>, ctx: Arc<Context>) -> Result<Action> {
    let (_timer, start) = prologue(&ctx, application);
    let application = match start {
        Start::Reconcile(application) => application,
        Start::Deleting(_) | Start::Nothing => return Ok(Action::await_change()),
    };
    let namespace = application
        .namespace()
        .ok_or_else(|| Error::InvalidObject(application.name_any()))?;
    // All an Application reads is in its namespace.
    let snapshot = ctx.stores.snapshot_in(&namespace);
    let in_environment = snapshot
        .environment_of(&namespace, "Application")
        .map(|_| ());
    if let Err(error) = &in_environment {
        ctx.metrics.stalled("Application", error.reason());
    }
    let mut status = application_status(
        &application,
        &snapshot,
        in_environment.as_ref().map(|_| ()),
        &now(),
    );
    let before = application.status.clone().unwrap_or_default();
    // Progress only, and written too recently: the rest would be computed for nothing.
    if let Some(wait) = deferred(&ctx, application.as_ref(), &before, &status) {
        return Ok(Action::requeue(
            StatusWrite::Deferred(wait).requeue(ctx.resync_of(application.as_ref())),
        ));
    }
    let name = application.name_any();
    let services = snapshot.services_of(&namespace, &name);
    status.usage = ctx
        .usage
        .sum(
            &namespace,
            services
                .iter()
                .map(|s| s.metadata.name.as_deref().unwrap_or_default()),
            crate::usage::Quota::default(),
        )
        // Before the first poll: what status says already.
        .or_else(|| application.status.as_ref().and_then(|s| s.usage.clone()));
    let scorecard = crate::insights::application_scorecard(
        &application,
        &snapshot,
        Some(&ctx.usage),
        &ctx.insights,
    );
    status.scorecard = Some(scorecard);
    status.cost = ctx.prices.as_ref().map(|prices| {
        let mut cost =
            crate::cost::application_cost(&namespace, &application.name_any(), &snapshot, prices);
        crate::cost::add_usage(&mut cost, status.usage.as_ref(), prices);
        cost
    });
    status.delivery = crate::delivery::services_delivery(
        snapshot.services_of(&namespace, &application.name_any()),
    );

    let api: Api<Application> = Api::namespaced(ctx.client.clone(), &namespace);
    let written = write_status(&ctx, &api, application.as_ref(), &before, &status).await?;
    Ok(Action::requeue(
        written.requeue(ctx.resync_of(application.as_ref())),
    ))
}
