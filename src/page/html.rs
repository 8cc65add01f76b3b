//! The pages as HTML: the overview matrix, an Environment, an Application and
//! a Service. Pure functions of a [`Catalog`]; maud escapes every value, and
//! user links go through [`safe_href`].

use kube::ResourceExt;
use maud::{DOCTYPE, Markup, html};

use super::svg::{self, GraphNode, UsageBar};
use super::{Catalog, ChildState, Health, paths, safe_href, version};
use crate::api::{Application, Condition, Environment, Service};
use crate::children::guardrails::quantity_value;

/// Seconds between two reloads of an open page (reload.js reads it from `<body>`).
pub const RELOAD_SECONDS: u32 = 15;

/// The stylesheet, served at [`paths::STYLESHEET`].
pub const STYLESHEET: &str = include_str!("page.css");
/// The timed reload, served at [`paths::SCRIPT`]; the only script on the pages.
pub const SCRIPT: &str = include_str!("reload.js");

fn layout(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="no-referrer";
                title { (title) " · Paved" }
                link rel="stylesheet" href=(paths::STYLESHEET);
                script src=(paths::SCRIPT) defer {}
            }
            body data-reload=(RELOAD_SECONDS) {
                header {
                    a.brand href=(paths::OVERVIEW) { "Paved" }
                    span.crumb { (title) }
                    span.note { "read-only · refreshes every " (RELOAD_SECONDS) " s" }
                }
                main { (body) }
            }
        }
    }
}

fn health_badge(health: Health) -> Markup {
    html! { span class={ "health " (health.class()) } { (health.label()) } }
}

/// A user-supplied URL: a link when it is http(s), else plain text.
fn user_link(url: &str, text: &str) -> Markup {
    html! {
        @if let Some(href) = safe_href(url) {
            a.external href=(href) rel="noopener noreferrer nofollow" target="_blank" { (text) }
        } @else {
            span.unsafe-link title="not an http(s) link, shown as text" { (text) " (" (url) ")" }
        }
    }
}

fn conditions_table(conditions: &[Condition]) -> Markup {
    html! {
        @if conditions.is_empty() {
            p.muted { "No conditions yet: the controller has not reported on it." }
        } @else {
            table.conditions {
                thead { tr { th { "Condition" } th { "Status" } th { "Reason" } th { "Message" } th { "Since" } } }
                tbody {
                    @for c in conditions {
                        tr class={ "condition-" (c.type_) " status-" (c.status) } {
                            td { (c.type_) } td { (c.status) } td { (c.reason) }
                            td.message { (c.message) }
                            td.muted { (c.last_transition_time.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    }
}

/// The paved-path scorecard (what to change, most severe first) and the cost
/// estimate, as the status of any of the three kinds carries them.
fn scorecard_and_cost(
    scorecard: Option<&crate::api::scorecard::Scorecard>,
    cost: Option<&crate::api::cost::CostEstimate>,
) -> Markup {
    html! {
        h2 { "Paved path" }
        @match scorecard {
            None => { p.muted { "No scorecard yet." } }
            Some(card) => {
                p.score {
                    "Score " strong { (card.score) } " / 100: "
                    (card.critical) " critical, " (card.warning) " warning, " (card.info) " info"
                }
                @if card.insights.is_empty() { p.muted { "Nothing to improve." } }
                @else {
                    table.insights {
                        thead { tr { th { "Level" } th { "Rule" } th { "Where" } th { "What to change" } } }
                        tbody {
                            @for insight in &card.insights {
                                tr class={ "insight-" (insight.level.as_str()) } {
                                    td { (insight.level.as_str()) }
                                    td { code { (insight.rule) } }
                                    td {
                                        @if let Some(service) = &insight.service { (service) }
                                        @else if let Some(application) = &insight.application { (application) }
                                    }
                                    td.message { (insight.message) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if let Some(cost) = cost {
            h2 { "Cost (estimate per month)" }
            dl.facts {
                dt { "Running" } dd { (cost.monthly) " " (cost.currency) }
                dt { "As declared" } dd { (cost.monthly_requested) " " (cost.currency) " (" (cost.cpu) " CPU, " (cost.memory_gib) " GiB)" }
                @if let Some(saved) = &cost.saved_by_stopping { dt { "Saved by stopping" } dd { (saved) " " (cost.currency) } }
            }
        }
    }
}

/// The delivery metrics as status carries them (counts since `since`).
fn delivery_facts(delivery: Option<&crate::api::delivery::Delivery>) -> Markup {
    html! {
        @if let Some(d) = delivery {
            h2 { "Delivery (since " (d.since) ")" }
            dl.facts {
                dt { "Deploys" } dd { (d.deploys) @if let Some(at) = &d.last_deploy_at { " (latest " (at) ")" } }
                dt { "Change failures" } dd { (d.failures) " (rate " (d.change_failure_rate) ")" }
                dt { "Restores" } dd {
                    (d.restores)
                    @if let Some(mean) = d.mean_time_to_restore_seconds { " (mean " (mean) " s)" }
                    @if let Some(since) = &d.failing_since { " · down since " (since) }
                }
                @if let Some(lead) = d.last_lead_time_seconds { dt { "Latest lead time" } dd { (lead) " s" } }
            }
        }
    }
}

fn environment_badges(env: &Environment) -> Markup {
    let status = env.status.clone().unwrap_or_default();
    html! {
        @if status.stopped {
            span.badge.stopped title=[status.stopped_until.as_deref().map(|t| format!("until {t}"))] { "stopped" }
        }
        @if let Some(expires) = &status.expires_at {
            span.badge.expiring title="deletes itself at this time (lifecycle.ttl)" { "expires " (expires) }
        }
    }
}

/// "cpu 250m/4 · memory 256Mi/8Gi": the quota as the column header shows it.
fn quota_summary(env: &Environment) -> Option<String> {
    let quota = env.status.as_ref()?.quota.as_ref()?;
    let parts: Vec<String> = quota
        .hard
        .iter()
        .map(|(resource, hard)| {
            let used = quota.used.get(resource).map(String::as_str).unwrap_or("0");
            format!("{} {used}/{hard}", resource.trim_start_matches("requests."))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// The "what runs where" matrix: Environments as columns, Applications and
/// their Services as rows, each cell a Service's health, version and URL.
pub fn overview(catalog: &Catalog) -> Markup {
    let envs = catalog.environments_in_order();
    let matrix = catalog.matrix();
    let namespaces: Vec<&str> = envs.iter().map(|e| e.namespace_str()).collect();
    let body = html! {
        h1 { "What runs where" }
        @if envs.is_empty() {
            p.muted { "No Environment yet. Create one with kubectl apply -f (see examples/)." }
        } @else {
            table.matrix {
                thead {
                    tr {
                        th.corner { "Application / Service" }
                        @for env in &envs {
                            th.env data-environment=(env.name_any()) {
                                a href=(paths::environment(&env.name_any())) { (env.name_any()) }
                                div.type { (env.spec.type_.as_str()) }
                                div.domain { (env.spec.domain) }
                                (environment_badges(env))
                                @if let Some(quota) = quota_summary(env) { div.quota { (quota) } }
                            }
                        }
                    }
                }
                tbody {
                    @for (app_name, services) in &matrix.rows {
                        tr.application {
                            th {
                                span.app-name { (app_name) }
                                @if let Some(owner) = owner_of(catalog, app_name) { span.owner { (owner) } }
                            }
                            @for namespace in &namespaces {
                                td {
                                    @if let Some(app) = catalog.application(namespace, app_name) {
                                        a href=(paths::application(namespace, app_name)) {
                                            "application " (app.status.as_ref().map(|s| s.ready.as_str()).filter(|r| !r.is_empty()).unwrap_or("0/0"))
                                        }
                                    }
                                }
                            }
                        }
                        @for (service_name, by_namespace) in services {
                            tr.service {
                                th.service-name { (service_name) }
                                @for namespace in &namespaces {
                                    td.cell {
                                        @if let Some(service) = by_namespace.get(*namespace) {
                                            (service_cell(service))
                                        } @else {
                                            span.muted { "–" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Catalog", body)
}

fn owner_of<'a>(catalog: &'a Catalog, app_name: &str) -> Option<&'a str> {
    catalog
        .applications
        .iter()
        .find(|a| a.metadata.name.as_deref() == Some(app_name))
        .map(|a| a.spec.owner.as_str())
}

fn service_cell(service: &Service) -> Markup {
    let namespace = service.namespace().unwrap_or_default();
    let status = service.status.as_ref();
    let image = status
        .and_then(|s| s.image.as_deref())
        .unwrap_or(&service.spec.image);
    html! {
        a.service-link href=(paths::service(&namespace, &service.name_any())) {
            (health_badge(Health::of_service(service)))
        }
        " "
        span.version title=(image) { (version(image)) }
        @if let Some(url) = status.and_then(|s| s.url.as_deref()) {
            div.url { (user_link(url, url)) }
        }
    }
}

/// A Service: health, image and revision timeline, conditions, children,
/// dependency graph and requests.
pub fn service_page(catalog: &Catalog, service: &Service, children: &[ChildState]) -> Markup {
    let namespace = service.namespace().unwrap_or_default();
    let name = service.name_any();
    let status = service.status.clone().unwrap_or_default();
    let environment = catalog.environment_of(&namespace);
    let health = Health::of_service(service);

    let node = |dep: &str| {
        let found = catalog.service(&namespace, dep);
        GraphNode {
            name: "",
            health: found.map_or(Health::Unknown, Health::of_service),
            href: found.map(|_| paths::service(&namespace, dep)),
        }
    };
    let dependency_names: Vec<String> = service
        .spec
        .depends_on
        .iter()
        .map(|d| d.to_string())
        .collect();
    let dependencies: Vec<GraphNode<'_>> = dependency_names
        .iter()
        .map(|d| GraphNode { name: d, ..node(d) })
        .collect();
    let dependent_services: Vec<&Service> = catalog
        .services_in(&namespace)
        .into_iter()
        .filter(|s| s.spec.depends_on.contains(&name))
        .collect();
    let dependent_names: Vec<String> = dependent_services.iter().map(|s| s.name_any()).collect();
    let dependents: Vec<GraphNode<'_>> = dependent_names
        .iter()
        .map(|d| GraphNode { name: d, ..node(d) })
        .collect();
    let center = GraphNode {
        name: &name,
        health,
        href: Some(paths::service(&namespace, &name)),
    };

    let body = html! {
        h1 { (name) " " (health_badge(health)) }
        dl.facts {
            dt { "Application" }
            dd { a href=(paths::application(&namespace, &service.spec.application)) { (service.spec.application) } }
            dt { "Environment" }
            dd {
                @if let Some(env) = environment {
                    a href=(paths::environment(&env.name_any())) { (env.name_any()) } " (" (env.spec.type_.as_str()) ")"
                } @else { (namespace) " (no Environment)" }
            }
            dt { "Image" }
            dd.image { (status.image.as_deref().unwrap_or(&service.spec.image)) }
            dt { "Revision" } dd { (status.revision) }
            dt { "Replicas" }
            dd { (status.replicas.ready) " ready / " (status.replicas.desired) " desired (" (status.replicas.updated) " updated, " (status.replicas.available) " available)" }
            dt { "URL" }
            dd.url { @if let Some(url) = &status.url { (user_link(url, url)) } @else { span.muted { "not exposed" } } }
            @if let Some(endpoint) = &status.endpoint { dt { "In-cluster" } dd { code { (endpoint) } } }
        }
        h2 { "Conditions" }
        (conditions_table(&status.conditions))
        h2 { "Revisions" }
        @if status.history.is_empty() { p.muted { "No revision deployed yet." } }
        @else { div.picture { (svg::revision_timeline(&status.history, status.revision)) } }
        h2 { "Children" }
        @if children.is_empty() { p.muted { "No child object in the controller's cache." } }
        @else {
            table.children {
                thead { tr { th { "Kind" } th { "Name" } th { "State" } } }
                tbody {
                    @for child in children {
                        tr class=(if child.healthy { "ok" } else { "bad" }) {
                            td { (child.kind) } td { (child.name) } td { (child.state) }
                        }
                    }
                }
            }
        }
        h2 { "Dependencies" }
        @if dependencies.is_empty() && dependents.is_empty() { p.muted { "Depends on nothing, and nothing depends on it." } }
        @else { div.picture { (svg::dependency_graph(&center, &dependents, &dependencies)) } }
        h2 { "Requests" }
        @match service.spec.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            Some(requests) if !requests.is_empty() => {
                table.requests { tbody { @for (resource, quantity) in requests { tr { td { (resource) } td { (quantity.0) } } } } }
            }
            _ => { p.muted { "No requests of its own (the Environment's defaults apply)." } }
        }
        (scorecard_and_cost(status.scorecard.as_ref(), status.cost.as_ref()))
        (delivery_facts(status.delivery.as_ref()))
    };
    layout(&format!("Service {namespace}/{name}"), body)
}

/// An Environment: what it runs, its base and overrides (previews), its
/// lifecycle, who has access, and its quota.
pub fn environment_page(catalog: &Catalog, env: &Environment) -> Markup {
    let name = env.name_any();
    let namespace = env.namespace_str();
    let status = env.status.clone().unwrap_or_default();
    let health = Health::of(&status.conditions);
    let services = catalog.services_in(namespace);
    let lifecycle = env.spec.lifecycle.clone().unwrap_or_default();
    let bars: Vec<UsageBar<'_>> = status
        .quota
        .as_ref()
        .map(|q| {
            q.hard
                .iter()
                .map(|(resource, hard)| {
                    let used = q.used.get(resource).map(String::as_str).unwrap_or("0");
                    UsageBar {
                        resource,
                        used,
                        hard,
                        ratio: quantity_value(used)
                            .zip(quantity_value(hard))
                            .filter(|(_, h)| *h > 0.0)
                            .map(|(u, h)| u / h),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let body = html! {
        h1 { (name) " " (health_badge(health)) " " (environment_badges(env)) }
        dl.facts {
            dt { "Type" } dd { (env.spec.type_.as_str()) }
            dt { "Namespace" } dd { (namespace) }
            dt { "Domain" } dd { (env.spec.domain) }
            dt { "Services" } dd { (status.services.ready) " ready of " (status.services.total) }
        }
        h2 { "What it runs" }
        @if services.is_empty() { p.muted { "No Service in this Environment." } }
        @else {
            table.services {
                thead { tr { th { "Application" } th { "Service" } th { "Health" } th { "Version" } th { "URL" } } }
                tbody {
                    @for service in &services {
                        tr {
                            td { a href=(paths::application(namespace, &service.spec.application)) { (service.spec.application) } }
                            td { a href=(paths::service(namespace, &service.name_any())) { (service.name_any()) } }
                            td { (health_badge(Health::of_service(service))) }
                            @let image = service.status.as_ref().and_then(|s| s.image.as_deref()).unwrap_or(&service.spec.image);
                            td.version title=(image) { (version(image)) }
                            td.url { @if let Some(url) = service.status.as_ref().and_then(|s| s.url.as_deref()) { (user_link(url, url)) } }
                        }
                    }
                }
            }
        }
        @if let Some(clone) = &env.spec.clone_from {
            section.preview {
                h2 { "Preview of " a href=(paths::environment(&clone.environment)) { (clone.environment) } }
                @if let Some(base) = &status.base {
                    @if !base.present { p.warning { "The base Environment is gone: the copies stay as they were." } }
                    p { "Copied from the base: " (base.applications.len()) " Applications, " (base.services.len()) " Services." }
                    @if !base.shadowed.is_empty() {
                        p { "Shadowed (an object of the same name created here takes precedence): "
                            @for (i, s) in base.shadowed.iter().enumerate() { @if i > 0 { ", " } code.shadowed { (s) } } }
                    }
                }
                h3 { "Overrides" }
                @if clone.overrides.is_empty() { p.muted { "None: an exact copy of the base." } }
                @else {
                    table.overrides {
                        thead { tr { th { "Service" } th { "Image" } th { "Replicas" } th { "Environment variables" } } }
                        tbody {
                            @for o in &clone.overrides {
                                tr {
                                    td { a href=(paths::service(namespace, &o.service)) { (o.service) } }
                                    td.image { (o.image.as_deref().unwrap_or("as in the base")) }
                                    td { @if let Some(r) = o.replicas { (r) } @else { "as in the base" } }
                                    td {
                                        @for (i, var) in o.env.iter().enumerate() {
                                            @if i > 0 { ", " }
                                            code { (var.name) @if let Some(value) = &var.value { "=" (value) } }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Lifecycle" }
        dl.facts.lifecycle {
            dt { "Stopped" } dd { @if status.stopped { "yes" @if let Some(until) = &status.stopped_until { ", until " (until) } } @else { "no" } }
            dt { "TTL" } dd { (lifecycle.ttl.as_deref().unwrap_or("none")) @if let Some(at) = &status.expires_at { " (deletes itself at " (at) ")" } }
            dt { "Schedule" }
            dd {
                @if let Some(schedule) = &lifecycle.schedule {
                    "stop " code { (schedule.stop) } ", start " code { (schedule.start) }
                    " (" (schedule.time_zone.as_deref().unwrap_or("UTC")) ")"
                } @else { "none" }
            }
            @if let Some(next) = &status.next_transition { dt { "Next transition" } dd { (next) } }
        }
        h2 { "Access" }
        @if env.spec.access.is_empty() { p.muted { "Nobody is bound in this Environment's namespace." } }
        @else {
            table.access {
                thead { tr { th { "Subject" } th { "Role" } } }
                tbody {
                    @for grant in &env.spec.access {
                        tr {
                            td {
                                @if let Some(group) = &grant.group { "group " (group) }
                                @if let Some(user) = &grant.user { "user " (user) }
                            }
                            td { (grant.role.as_str()) }
                        }
                    }
                }
            }
        }
        @if !bars.is_empty() {
            h2 { "Quota" }
            div.picture { (svg::usage_bars(&bars)) }
        }
        (scorecard_and_cost(status.scorecard.as_ref(), status.cost.as_ref()))
        (delivery_facts(status.delivery.as_ref()))
        h2 { "Conditions" }
        (conditions_table(&status.conditions))
    };
    layout(&format!("Environment {name}"), body)
}

/// An Application: ownership, description, links, and its Services.
pub fn application_page(catalog: &Catalog, app: &Application) -> Markup {
    let namespace = app.namespace().unwrap_or_default();
    let name = app.name_any();
    let status = app.status.clone().unwrap_or_default();
    let services: Vec<&Service> = catalog
        .services_in(&namespace)
        .into_iter()
        .filter(|s| s.spec.application == name)
        .collect();
    let body = html! {
        h1 { (name) " " (health_badge(Health::of(&status.conditions))) }
        @if let Some(description) = &app.spec.description { p.description { (description) } }
        dl.facts {
            dt { "Owner" } dd { (app.spec.owner) }
            dt { "Lifecycle" } dd { (app.spec.lifecycle.as_str()) }
            dt { "Environment" }
            dd {
                @if let Some(env) = catalog.environment_of(&namespace) {
                    a href=(paths::environment(&env.name_any())) { (env.name_any()) }
                } @else { (namespace) }
            }
        }
        @if !app.spec.links.is_empty() {
            h2 { "Links" }
            ul.links { @for link in &app.spec.links { li { (user_link(&link.url, &link.title)) } } }
        }
        h2 { "Services" }
        @if services.is_empty() { p.muted { "No Service names this Application." } }
        @else {
            table.services {
                thead { tr { th { "Service" } th { "Health" } th { "Version" } th { "URL" } } }
                tbody {
                    @for service in &services {
                        tr {
                            td { a href=(paths::service(&namespace, &service.name_any())) { (service.name_any()) } }
                            td { (health_badge(Health::of_service(service))) }
                            td.version { (version(service.status.as_ref().and_then(|s| s.image.as_deref()).unwrap_or(&service.spec.image))) }
                            td.url { @if let Some(url) = service.status.as_ref().and_then(|s| s.url.as_deref()) { (user_link(url, url)) } }
                        }
                    }
                }
            }
        }
        (scorecard_and_cost(status.scorecard.as_ref(), status.cost.as_ref()))
        (delivery_facts(status.delivery.as_ref()))
        h2 { "Conditions" }
        (conditions_table(&status.conditions))
    };
    layout(&format!("Application {namespace}/{name}"), body)
}

/// What a missing object's address answers (with status 404).
pub fn not_found(what: &str) -> Markup {
    layout(
        "Not found",
        html! {
            h1 { "Not found" }
            p { (what) " is not in the controller's cache. It may have been deleted; "
                a href=(paths::OVERVIEW) { "back to the overview" } "." }
        },
    )
}

/// What a replica without stores answers (with status 503).
pub fn standing_by() -> Markup {
    layout(
        "Standing by",
        html! {
            h1 { "This replica is standing by" }
            p { "Only the replica holding the leader Lease keeps the caches the page is drawn from. "
                "Reload in a moment, or reach the leader (the chart's Service routes to every replica)." }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn from_yaml<T: serde::de::DeserializeOwned>(yaml: &str) -> Arc<T> {
        Arc::new(serde_yaml::from_str(yaml).unwrap())
    }

    const HOSTILE: &str =
        r#"<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>"#;

    fn shop() -> Catalog {
        Catalog {
            environments: vec![
                from_yaml(
                    "metadata: {name: production}\nspec: {type: production, domain: shop.example.com}\n\
                           status: {stopped: false, quota: {hard: {requests.cpu: '4'}, used: {requests.cpu: 500m}}}",
                ),
                from_yaml(
                    "metadata: {name: staging}\nspec: {type: staging, domain: staging.example.com, \
                           access: [{group: team-shop, role: developer}], lifecycle: {schedule: {stop: '0 20 * * 1-5', start: '0 7 * * 1-5'}}}",
                ),
                from_yaml(
                    "metadata: {name: pr-7}\nspec: {type: preview, domain: pr-7.example.com, \
                           cloneFrom: {environment: staging, overrides: [{service: api, image: 'acme/api:pr-7'}]}}\n\
                           status: {stopped: true, expiresAt: '2026-12-01T00:00:00Z', base: {environment: staging, present: true, services: [api, web], overridden: [api], shadowed: [Service/web]}}",
                ),
            ],
            applications: vec![from_yaml(&format!(
                "metadata: {{name: shop, namespace: staging}}\nspec: {{owner: team-shop, description: {HOSTILE:?}, \
                 links: [{{title: Docs, url: 'https://docs.example.com'}}, {{title: Evil, url: \"javascript:document.title='pwned'\"}}]}}"
            ))],
            services: vec![
                from_yaml(
                    "metadata: {name: api, namespace: staging}\nspec: {application: shop, image: 'acme/api:1.4.2', dependsOn: [db]}\n\
                           status: {url: 'https://api.staging.example.com/', revision: 2, \
                           conditions: [{type: Ready, status: 'True', reason: Available, message: ok}], \
                           history: [{revision: 2, image: 'acme/api:1.4.2', configHash: b, deployedAt: '2026-11-23T10:00:00Z'}, \
                                     {revision: 1, image: 'acme/api:1.4.1', configHash: a, deployedAt: '2026-11-22T10:00:00Z'}]}",
                ),
                from_yaml(
                    "metadata: {name: web, namespace: staging}\nspec: {application: shop, image: 'acme/web:2', dependsOn: [api]}\n\
                           status: {url: 'javascript:alert(1)', conditions: [{type: Ready, status: 'False', reason: HostConflict, message: 'host web.staging.example.com is held by Service other'}, \
                           {type: Stalled, status: 'True', reason: HostConflict, message: 'host web.staging.example.com is held by Service other'}]}",
                ),
                from_yaml(
                    "metadata: {name: api, namespace: production}\nspec: {application: shop, image: 'acme/api:1.4.0'}",
                ),
            ],
        }
    }

    #[test]
    fn the_overview_has_one_column_per_environment_in_type_order() {
        let html = overview(&shop()).into_string();
        let columns: Vec<usize> = ["staging", "production", "pr-7"]
            .iter()
            .map(|e| {
                html.find(&format!("data-environment=\"{e}\""))
                    .unwrap_or_else(|| panic!("column {e}"))
            })
            .collect();
        assert!(
            columns.windows(2).all(|w| w[0] < w[1]),
            "staging, production, then previews"
        );
        assert!(html.contains("shop.example.com") && html.contains("cpu 500m/4"));
        assert!(html.contains("stopped") && html.contains("expires 2026-12-01T00:00:00Z"));
    }

    #[test]
    fn each_cell_shows_the_services_health_version_and_url() {
        let html = overview(&shop()).into_string();
        assert!(html.contains(r#"href="/catalog/services/staging/api""#));
        assert!(html.contains(">1.4.2<") && html.contains(">1.4.0<"));
        assert!(html.contains(r#"href="https://api.staging.example.com/""#));
        assert!(html.contains(">Stalled<"));
    }

    #[test]
    fn a_javascript_url_in_status_or_links_never_becomes_an_href() {
        let catalog = shop();
        let pages = [
            overview(&catalog).into_string(),
            application_page(&catalog, &catalog.applications[0]).into_string(),
            service_page(&catalog, &catalog.services[1], &[]).into_string(),
        ];
        for page in &pages {
            assert!(
                !page.to_lowercase().contains("href=\"javascript:"),
                "{page}"
            );
        }
        assert!(
            pages[1].contains(r#"href="https://docs.example.com""#),
            "the http link stays live"
        );
    }

    #[test]
    fn a_hostile_description_is_escaped_text() {
        let catalog = shop();
        let page = application_page(&catalog, &catalog.applications[0]).into_string();
        assert!(
            !page.contains("<img") && !page.contains("<script>document"),
            "{page}"
        );
        assert!(page.contains("&lt;img src=x onerror="));
    }

    #[test]
    fn a_stalled_services_page_shows_its_message_and_its_dependents() {
        let catalog = shop();
        let page = service_page(&catalog, &catalog.services[1], &[]).into_string();
        assert!(page.contains("host web.staging.example.com is held by Service other"));
        let api = service_page(&catalog, &catalog.services[0], &[]).into_string();
        assert!(
            api.contains("db (missing)"),
            "a dependency that does not exist"
        );
        assert!(
            api.contains(r#"href="/catalog/services/staging/web""#),
            "web depends on api"
        );
        assert!(
            api.contains(">r1<") && api.contains(">r2<"),
            "the revision timeline"
        );
    }

    #[test]
    fn a_previews_page_shows_its_base_overrides_and_shadowed_objects() {
        let catalog = shop();
        let page = environment_page(&catalog, catalog.environment("pr-7").unwrap()).into_string();
        assert!(page.contains(r#"href="/catalog/environments/staging""#));
        assert!(page.contains("acme/api:pr-7"));
        assert!(page.contains("Service/web"));
        assert!(page.contains("deletes itself at 2026-12-01T00:00:00Z"));
    }

    #[test]
    fn an_environments_page_shows_its_schedule_access_and_quota() {
        let catalog = shop();
        let staging =
            environment_page(&catalog, catalog.environment("staging").unwrap()).into_string();
        assert!(staging.contains("0 20 * * 1-5") && staging.contains("group team-shop"));
        let production =
            environment_page(&catalog, catalog.environment("production").unwrap()).into_string();
        assert!(production.contains("500m / 4"), "{production}");
    }

    #[test]
    fn a_services_page_lists_what_to_change_and_what_it_costs() {
        let mut service = (*shop().services[0]).clone();
        let status = service.status.get_or_insert_with(Default::default);
        status.scorecard = Some(serde_yaml::from_str(&format!(
            "{{score: 62, critical: 1, warning: 1, info: 0, insights: [\
             {{rule: image-pinned, level: critical, message: {HOSTILE:?}}}, \
             {{rule: health-check, level: warning, message: 'no spec.health: declare a readiness path'}}]}}"
        ))
        .unwrap());
        status.cost = Some(
            serde_yaml::from_str(
                "{currency: EUR, monthlyRequested: '12.50', monthly: '0.00', savedByStopping: '12.50', cpu: '0.5', memoryGib: '1'}",
            )
            .unwrap(),
        );
        let html = service_page(&shop(), &service, &[]).into_string();
        assert!(html.contains("Score <strong>62</strong> / 100"), "{html}");
        let critical = html.find("insight-critical").expect("the critical insight");
        let warning = html.find("insight-warning").expect("the warning");
        assert!(critical < warning, "most severe first, as status has them");
        assert!(html.contains("no spec.health: declare a readiness path"));
        assert!(
            !html.contains("<script>document.title"),
            "messages are text"
        );
        assert!(html.contains("Saved by stopping") && html.contains("12.50 EUR"));
        assert!(!html.contains("Delivery (since"), "no figures, no section");
        service.status.as_mut().unwrap().delivery = Some(
            serde_yaml::from_str(&format!(
                "{{since: {HOSTILE:?}, deploys: 4, failures: 1, changeFailureRate: '0.25', meanTimeToRestoreSeconds: 40}}"
            ))
            .unwrap(),
        );
        let html = service_page(&shop(), &service, &[]).into_string();
        assert!(
            html.contains("Change failures</dt><dd>1 (rate 0.25)"),
            "{html}"
        );
        assert!(html.contains("(mean 40 s)"), "{html}");
        assert!(!html.contains("<script>document.title"), "text, escaped");

        // Without a scorecard or prices: said, not hidden; no cost section.
        let bare = service_page(&shop(), &shop().services[1], &[]).into_string();
        assert!(bare.contains("No scorecard yet."));
        assert!(!bare.contains("Cost (estimate"));
    }
}
