//! The paved-path scorecard: rules over the manifests and, in the controller,
//! over real usage (`over-provisioned`, `idle`: not applicable offline or
//! without metrics), each a row of [`RULES`], and the score they roll up to.
//!
//! ```text
//!  Service spec + its Environment ──▶ service rules ──┐
//!  Application spec ────────────────▶ application rules ├─▶ Evaluations ─▶ Scorecard
//!                                                       │   (passed or not)  score, counts,
//!  an Application = its rules + its Services' rules ────┘                    insights
//!  an Environment = every Application and Service in its namespace
//! ```
//!
//! Pure: the controller writes the result into the three statuses and the
//! `paved_insights` metric; `paved lint` prints it for manifests, offline. The
//! README's rule table is [`rules_markdown`], checked by a test.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::ResourceExt;

use crate::api::environment::EnvironmentType;
use crate::api::scorecard::{Insight, InsightLevel, Scorecard};
use crate::api::service::{PodSecurityLevel, Security};
use crate::api::{Application, Environment, Service};
use crate::resolve::Snapshot;

/// Insights kept in a status; the counts still cover all of them.
pub const MAX_INSIGHTS_IN_STATUS: usize = 20;

/// Thresholds and choices an admin can change (controller flags, chart values,
/// `paved lint` flags).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InsightSettings {
    /// `production-replicas`: fewest pods a production Service may run.
    pub production_min_replicas: i32,
    /// Rule ids not evaluated at all.
    pub disabled: BTreeSet<String>,
    /// A level per rule id in place of the table's.
    pub levels: BTreeMap<String, InsightLevel>,
    /// When usage counts as far below requests (`over-provisioned`) or as none
    /// (`idle`), and for how long.
    pub usage: crate::usage::Thresholds,
}

impl Default for InsightSettings {
    fn default() -> Self {
        InsightSettings {
            production_min_replicas: crate::children::PRODUCTION_DEFAULT_REPLICAS,
            disabled: BTreeSet::new(),
            levels: BTreeMap::new(),
            usage: crate::usage::Thresholds::default(),
        }
    }
}

impl InsightSettings {
    /// Refuse a rule id that no rule has, so a typo in a flag does not silently
    /// leave a rule on.
    pub fn check(&self) -> Result<(), String> {
        for id in self.disabled.iter().chain(self.levels.keys()) {
            if !RULES.iter().any(|r| r.id == id) {
                let known: Vec<&str> = RULES.iter().map(|r| r.id).collect();
                return Err(format!(
                    "unknown insight rule {id:?}; the rules are {}",
                    known.join(", ")
                ));
            }
        }
        if self.production_min_replicas < 1 {
            return Err("the production minimum of replicas must be at least 1".into());
        }
        if !(1..=100).contains(&self.usage.low_percent) {
            return Err("the over-provisioned percent must be between 1 and 100".into());
        }
        if self.usage.low_for.is_negative() || self.usage.idle_for.is_negative() {
            return Err("the over-provisioned and idle periods must not be negative".into());
        }
        Ok(())
    }
}

/// Parse `rule=level`, e.g. `image-digest=warning`.
pub fn parse_level_override(text: &str) -> Result<(String, InsightLevel), String> {
    let (rule, level) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected rule=level, e.g. image-digest=warning"))?;
    Ok((rule.trim().to_string(), parse_level(level.trim())?))
}

/// `info`, `warning` or `critical`.
pub fn parse_level(text: &str) -> Result<InsightLevel, String> {
    match text {
        "info" => Ok(InsightLevel::Info),
        "warning" => Ok(InsightLevel::Warning),
        "critical" => Ok(InsightLevel::Critical),
        other => Err(format!(
            "{other:?} is no insight level: info, warning or critical"
        )),
    }
}

/// What a rule looks at.
#[derive(Clone, Copy, Debug)]
pub enum Check {
    /// A Service, with its Environment when known.
    Service(fn(&ServiceFacts<'_>, &InsightSettings) -> Verdict),
    /// An Application.
    Application(fn(&Application) -> Verdict),
}

/// A Service and what its rules need to know around it.
pub struct ServiceFacts<'a> {
    pub service: &'a Service,
    /// Absent offline when the manifests carry no Environment for its namespace.
    pub environment: Option<&'a Environment>,
    /// What its pods use, as its status shows it; absent offline, without
    /// metrics, or before the first sample (the usage rules do not apply then).
    pub usage: Option<&'a crate::usage::Published>,
}

/// The outcome of one rule on one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The rule does not apply (counts neither way in the score).
    NotApplicable,
    Passed,
    /// Failed: what is wrong, in a few words (the rule's `fix` follows it).
    Failed(String),
}

/// One rule of the scorecard: a row of the README's table.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub id: &'static str,
    pub level: InsightLevel,
    /// What passes, for the README.
    pub passes_when: &'static str,
    /// What to change, the second half of every insight's message.
    pub fix: &'static str,
    pub check: Check,
}

/// Every rule, in the order the README lists them.
pub const RULES: &[Rule] = &[
    Rule {
        id: "health-check",
        level: InsightLevel::Warning,
        passes_when: "the Service declares `spec.health` (an HTTP readiness, liveness and startup check)",
        fix: "declare spec.health (an HTTP path and port) so hung pods are restarted and kept out of rotation",
        check: Check::Service(health_check),
    },
    Rule {
        id: "resource-requests",
        level: InsightLevel::Warning,
        passes_when: "the pod requests CPU and memory (`spec.resources.requests`, or the Environment's `guardrails.defaults`)",
        fix: "set spec.resources.requests.cpu and .memory so pods are scheduled, and costed, by what they need",
        check: Check::Service(resource_requests),
    },
    Rule {
        id: "memory-limit",
        level: InsightLevel::Info,
        passes_when: "the memory limit was chosen: `spec.resources.limits.memory`, or the Environment's `guardrails.defaults` (not only Paved's built-in 512Mi); a CPU limit is not asked for, it only throttles",
        fix: "set spec.resources.limits.memory to what the Service needs, so a leak kills one pod and a big heap is not killed for nothing",
        check: Check::Service(memory_limit),
    },
    Rule {
        id: "image-pinned",
        level: InsightLevel::Critical,
        passes_when: "`spec.image` has a tag other than `latest`, or a digest",
        fix: "pin spec.image to a version tag, better a digest (@sha256:...), so every pod runs the image you reviewed",
        check: Check::Service(image_pinned),
    },
    Rule {
        id: "image-digest",
        level: InsightLevel::Info,
        passes_when: "`spec.image` carries a digest (`@sha256:...`); only asked of an image with a tag",
        fix: "add the digest (image:tag@sha256:...) so a re-pushed tag cannot change what runs",
        check: Check::Service(image_digest),
    },
    Rule {
        id: "production-replicas",
        level: InsightLevel::Critical,
        passes_when: "in a `production` Environment: at least 2 pods (`replicas`, or `autoscaling.min`; unset means 2; threshold configurable)",
        fix: "run at least the production minimum of pods (spec.replicas or spec.autoscaling.min) so a node drain or a rollout is no outage",
        check: Check::Service(production_replicas),
    },
    Rule {
        id: "production-disruption-budget",
        level: InsightLevel::Warning,
        passes_when: "in a `production` Environment: Paved renders a PodDisruptionBudget (it does for every Service that may run more than one pod)",
        fix: "let the Service run more than one pod so Paved gives it a PodDisruptionBudget and drains evict its pods one at a time",
        check: Check::Service(production_disruption_budget),
    },
    Rule {
        id: "pod-security-restricted",
        level: InsightLevel::Warning,
        passes_when: "the pod passes PodSecurity `restricted` (no `spec.security.level: baseline` opt-out)",
        fix: "remove spec.security.level: baseline (run as a non-root user, without extra capabilities) so the pod passes PodSecurity restricted",
        check: Check::Service(pod_security_restricted),
    },
    Rule {
        id: "over-provisioned",
        level: InsightLevel::Warning,
        passes_when: "with usage (metrics.k8s.io) and pods running: the busiest pod has not stayed under 25 % of its CPU or memory request for 24 hours (percent, period and a minimum saving configurable)",
        fix: "lower spec.resources.requests to the suggestion (the most a pod used in that time, plus half again) so the requests, the quota and the cost follow what runs",
        check: Check::Service(over_provisioned),
    },
    Rule {
        id: "idle",
        level: InsightLevel::Warning,
        passes_when: "with usage (metrics.k8s.io) and pods running, outside production and not stopped: some pod used more than 1m CPU in the last 72 hours (threshold and period configurable)",
        fix: "stop the Environment while nobody uses it (spec.lifecycle.stopped: true), give it a stop/start spec.lifecycle.schedule, or a spec.lifecycle.ttl",
        check: Check::Service(idle),
    },
    Rule {
        id: "application-links",
        level: InsightLevel::Warning,
        passes_when: "the Application has at least one link (its `owner` is required by the schema already)",
        fix: "add spec.links to the Application (repository, runbook, dashboard) so whoever is paged finds them",
        check: Check::Application(application_links),
    },
    Rule {
        id: "application-description",
        level: InsightLevel::Info,
        passes_when: "the Application has a `description`",
        fix: "add spec.description to the Application: one line saying what it does, shown in portals",
        check: Check::Application(application_description),
    },
];

fn health_check(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    let spec = &facts.service.spec;
    if spec.health.is_some() {
        return Verdict::Passed;
    }
    match crate::children::probes(spec).kind {
        Some(crate::api::service::ProbeKind::TcpSocket) => {
            Verdict::Failed("only a TCP probe checks the pods".into())
        }
        _ => Verdict::Failed("nothing checks the pods".into()),
    }
}

/// The container's requests and limits as the pod gets them: the Service's
/// own, else the Environment's `guardrails.defaults` (a LimitRange).
fn effective(facts: &ServiceFacts<'_>, limits: bool, resource: &str) -> bool {
    let own = |r: &ResourceRequirements| {
        let map = if limits { &r.limits } else { &r.requests };
        map.as_ref().is_some_and(|m| m.contains_key(resource))
    };
    let defaulted = facts
        .environment
        .and_then(|e| e.spec.guardrails.as_ref())
        .and_then(|g| g.defaults.as_ref())
        .and_then(|d| d.resources.as_ref())
        .is_some_and(|d| {
            let map = if limits { &d.limits } else { &d.requests };
            map.contains_key(resource)
        });
    facts.service.spec.resources.as_ref().is_some_and(own) || defaulted
}

fn resource_requests(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    let missing: Vec<&str> = ["cpu", "memory"]
        .into_iter()
        .filter(|r| !effective(facts, false, r))
        .collect();
    if missing.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(format!(
            "no {} request set (by the Service or the Environment's defaults)",
            missing.join(" or ")
        ))
    }
}

fn memory_limit(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    if effective(facts, true, "memory") {
        Verdict::Passed
    } else if facts.environment.is_some() {
        // Paved's LimitRange gives every container a limit; nobody sized this one.
        Verdict::Failed(format!(
            "only Paved's built-in default memory limit ({}) applies",
            crate::children::guardrails::DEFAULT_MEMORY_LIMIT
        ))
    } else {
        Verdict::Failed("no memory limit".into())
    }
}

/// How an image reference names what it runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageReference<'a> {
    pub tag: Option<&'a str>,
    pub digest: Option<&'a str>,
}

/// Split `registry:5000/path/name:tag@sha256:...` into its tag and digest. The
/// tag is after the last ':' of the last path segment (a registry port is not one).
pub fn image_reference(image: &str) -> ImageReference<'_> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    let last_segment = name.rsplit('/').next().unwrap_or(name);
    let tag = last_segment.split_once(':').map(|(_, tag)| tag);
    ImageReference { tag, digest }
}

fn image_pinned(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    let image = &facts.service.spec.image;
    match image_reference(image) {
        ImageReference {
            digest: Some(_), ..
        } => Verdict::Passed,
        ImageReference { tag: None, .. } => Verdict::Failed(format!("image {image} has no tag")),
        ImageReference {
            tag: Some("latest"),
            ..
        } => Verdict::Failed(format!("image {image} follows latest")),
        ImageReference { tag: Some(_), .. } => Verdict::Passed,
    }
}

fn image_digest(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    let image = &facts.service.spec.image;
    match image_reference(image) {
        ImageReference {
            digest: Some(_), ..
        } => Verdict::Passed,
        ImageReference {
            tag: None | Some("latest"),
            ..
        } => Verdict::NotApplicable,
        ImageReference { tag: Some(_), .. } => {
            Verdict::Failed(format!("image {image} is pinned by tag only"))
        }
    }
}

fn in_production(facts: &ServiceFacts<'_>) -> bool {
    facts
        .environment
        .is_some_and(|e| e.spec.type_ == EnvironmentType::Production)
}

fn production_replicas(facts: &ServiceFacts<'_>, settings: &InsightSettings) -> Verdict {
    if !in_production(facts) {
        return Verdict::NotApplicable;
    }
    let spec = &facts.service.spec;
    let fewest = match (&spec.autoscaling, spec.replicas) {
        (Some(autoscaling), _) => autoscaling.min,
        (None, Some(replicas)) => replicas,
        (None, None) => crate::children::PRODUCTION_DEFAULT_REPLICAS,
    };
    if fewest >= settings.production_min_replicas {
        Verdict::Passed
    } else {
        Verdict::Failed(format!(
            "as few as {fewest} pod(s) in production, below {}",
            settings.production_min_replicas
        ))
    }
}

fn production_disruption_budget(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    if !in_production(facts) {
        return Verdict::NotApplicable;
    }
    if crate::children::pdb::may_run_several_pods(&facts.service.spec) {
        Verdict::Passed
    } else {
        Verdict::Failed("no PodDisruptionBudget (the Service runs one pod at most)".into())
    }
}

fn pod_security_restricted(facts: &ServiceFacts<'_>, _: &InsightSettings) -> Verdict {
    match Security::level(facts.service.spec.security.as_ref()) {
        PodSecurityLevel::Restricted => Verdict::Passed,
        PodSecurityLevel::Baseline => {
            Verdict::Failed("spec.security.level: baseline opts out of restricted".into())
        }
    }
}

/// A request from the most a pod used: half again, rounded up to 5m of CPU
/// or 16Mi of memory.
pub fn suggested_request(peak: f64, cpu: bool) -> String {
    if cpu {
        let millicores = (peak * 1500.0 / 5.0).ceil().max(1.0) * 5.0;
        format!("{millicores}m")
    } else {
        let mib = (peak * 1.5 / (1024.0 * 1024.0) / 16.0).ceil().max(1.0) * 16.0;
        format!("{mib}Mi")
    }
}

/// `24h`, `90m`, `45s`: a period as the flags take it.
fn period_text(period: jiff::SignedDuration) -> String {
    let seconds = period.as_secs();
    if seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

fn over_provisioned(facts: &ServiceFacts<'_>, settings: &InsightSettings) -> Verdict {
    let Some(usage) = facts.usage.filter(|u| u.sample.pods > 0) else {
        return Verdict::NotApplicable;
    };
    let thresholds = &settings.usage;
    let verdicts = usage.verdicts(thresholds);
    let mut findings = Vec::new();
    if let (true, Some(streak)) = (verdicts.cpu_over_provisioned, usage.cpu_low) {
        findings.push(format!(
            "the busiest pod used at most {} CPU of its {} request for {}+, suggested request {}",
            crate::usage::cpu_text(streak.peak),
            crate::usage::cpu_text(usage.resources.cpu_request),
            period_text(thresholds.low_for),
            suggested_request(streak.peak, true)
        ));
    }
    if let (true, Some(streak)) = (verdicts.memory_over_provisioned, usage.memory_low) {
        findings.push(format!(
            "the busiest pod used at most {} memory of its {} request for {}+, suggested request {}",
            crate::usage::memory_text(streak.peak),
            crate::usage::memory_text(usage.resources.memory_request),
            period_text(thresholds.low_for),
            suggested_request(streak.peak, false)
        ));
    }
    if findings.is_empty() {
        Verdict::Passed
    } else {
        Verdict::Failed(findings.join("; "))
    }
}

fn idle(facts: &ServiceFacts<'_>, settings: &InsightSettings) -> Verdict {
    let Some(usage) = facts.usage.filter(|u| u.sample.pods > 0) else {
        return Verdict::NotApplicable;
    };
    // Production is expected to wait for traffic; a stopped Environment is already stopped.
    if in_production(facts)
        || facts
            .environment
            .is_none_or(crate::children::environment_stopped)
    {
        return Verdict::NotApplicable;
    }
    if usage.verdicts(&settings.usage).idle {
        Verdict::Failed(format!(
            "no pod used more than {}m CPU for {}+",
            settings.usage.idle_millicores,
            period_text(settings.usage.idle_for)
        ))
    } else {
        Verdict::Passed
    }
}

fn application_links(application: &Application) -> Verdict {
    if application.spec.links.is_empty() {
        Verdict::Failed("no links".into())
    } else {
        Verdict::Passed
    }
}

fn application_description(application: &Application) -> Verdict {
    match &application.spec.description {
        Some(d) if !d.trim().is_empty() => Verdict::Passed,
        _ => Verdict::Failed("no description".into()),
    }
}

/// One rule applied to one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evaluation {
    pub rule: &'static str,
    pub level: InsightLevel,
    /// `None`: passed. `Some`: the insight's message.
    pub failed: Option<String>,
    pub application: Option<String>,
    pub service: Option<String>,
}

impl Evaluation {
    fn insight(&self) -> Option<Insight> {
        Some(Insight {
            rule: self.rule.into(),
            level: self.level,
            message: self.failed.as_deref()?.into(),
            application: self.application.clone(),
            service: self.service.clone(),
        })
    }
}

fn enabled<'s>(
    settings: &'s InsightSettings,
) -> impl Iterator<Item = (&'static Rule, InsightLevel)> + 's {
    RULES
        .iter()
        .filter(|r| !settings.disabled.contains(r.id))
        .map(|r| (r, settings.levels.get(r.id).copied().unwrap_or(r.level)))
}

fn evaluation(rule: &Rule, level: InsightLevel, verdict: Verdict) -> Option<Evaluation> {
    let failed = match verdict {
        Verdict::NotApplicable => return None,
        Verdict::Passed => None,
        Verdict::Failed(what) => Some(format!("{what}: {}", rule.fix)),
    };
    Some(Evaluation {
        rule: rule.id,
        level,
        failed,
        application: None,
        service: None,
    })
}

/// The Service rules on one Service, with what its pods use when known.
pub fn evaluate_service(
    service: &Service,
    environment: Option<&Environment>,
    usage: Option<&crate::usage::Published>,
    settings: &InsightSettings,
) -> Vec<Evaluation> {
    let facts = ServiceFacts {
        service,
        environment,
        usage,
    };
    enabled(settings)
        .filter_map(|(rule, level)| match rule.check {
            Check::Service(check) => evaluation(rule, level, check(&facts, settings)),
            Check::Application(_) => None,
        })
        .collect()
}

/// The Application rules on one Application.
pub fn evaluate_application(
    application: &Application,
    settings: &InsightSettings,
) -> Vec<Evaluation> {
    enabled(settings)
        .filter_map(|(rule, level)| match rule.check {
            Check::Application(check) => evaluation(rule, level, check(application)),
            Check::Service(_) => None,
        })
        .collect()
}

fn weight(level: InsightLevel) -> u32 {
    match level {
        InsightLevel::Critical => 5,
        InsightLevel::Warning => 3,
        InsightLevel::Info => 1,
    }
}

/// Score, counts and the most severe insights of a set of evaluations.
pub fn scorecard(evaluations: &[Evaluation]) -> Scorecard {
    let total: u32 = evaluations.iter().map(|e| weight(e.level)).sum();
    let passed: u32 = evaluations
        .iter()
        .filter(|e| e.failed.is_none())
        .map(|e| weight(e.level))
        .sum();
    let mut insights: Vec<Insight> = evaluations.iter().filter_map(Evaluation::insight).collect();
    insights.sort_by(|a, b| {
        (b.level, &a.application, &a.service, &a.rule).cmp(&(
            a.level,
            &b.application,
            &b.service,
            &b.rule,
        ))
    });
    let count = |level| insights.iter().filter(|i| i.level == level).count() as i32;
    let (critical, warning, info) = (
        count(InsightLevel::Critical),
        count(InsightLevel::Warning),
        count(InsightLevel::Info),
    );
    let omitted = insights.len().saturating_sub(MAX_INSIGHTS_IN_STATUS) as i32;
    insights.truncate(MAX_INSIGHTS_IN_STATUS);
    Scorecard {
        score: (100 * passed)
            .checked_div(total)
            .map_or(100, |score| score as i32),
        critical,
        warning,
        info,
        insights,
        omitted,
    }
}

/// A Service's scorecard: its own rules.
pub fn service_scorecard(
    service: &Service,
    environment: Option<&Environment>,
    usage: Option<&crate::usage::Published>,
    settings: &InsightSettings,
) -> Scorecard {
    scorecard(&evaluate_service(service, environment, usage, settings))
}

/// An Application's own rules, plus those of each of its Services (named).
pub fn application_evaluations(
    application: &Application,
    services: &[&Service],
    environment: Option<&Environment>,
    usage: Option<&crate::usage::UsageStore>,
    settings: &InsightSettings,
) -> Vec<Evaluation> {
    let mut evaluations = evaluate_application(application, settings);
    for service in services {
        let shown = usage_of(usage, service, environment);
        evaluations.extend(
            evaluate_service(service, environment, shown.as_ref(), settings)
                .into_iter()
                .map(|e| Evaluation {
                    service: Some(service.name_any()),
                    ..e
                }),
        );
    }
    evaluations
}

/// What a Service's status shows of its usage, from the controller's store.
fn usage_of(
    usage: Option<&crate::usage::UsageStore>,
    service: &Service,
    environment: Option<&Environment>,
) -> Option<crate::usage::Published> {
    usage?.shown(service, environment).1
}

/// An Application's scorecard, rolled up over its Services.
pub fn application_scorecard(
    application: &Application,
    snapshot: &Snapshot,
    usage: Option<&crate::usage::UsageStore>,
    settings: &InsightSettings,
) -> Scorecard {
    let namespace = application.namespace().unwrap_or_default();
    let environment = snapshot.environment_of(&namespace, "Application").ok();
    let name = application.name_any();
    let services = snapshot.services_of(&namespace, &name);
    scorecard(&application_evaluations(
        application,
        &services,
        environment,
        usage,
        settings,
    ))
}

/// Every evaluation in an Environment's namespace: each Application with its
/// Services, and Services whose Application is missing.
pub fn environment_evaluations(
    environment: &Environment,
    snapshot: &Snapshot,
    usage: Option<&crate::usage::UsageStore>,
    settings: &InsightSettings,
) -> Vec<Evaluation> {
    let namespace = environment.namespace_str();
    let mut evaluations = Vec::new();
    for application in snapshot.applications_in(namespace) {
        let evaluated = evaluate_application(application, settings);
        evaluations.extend(evaluated.into_iter().map(|e| Evaluation {
            application: Some(application.name_any()),
            ..e
        }));
    }
    for service in snapshot.services_in(namespace) {
        let shown = usage_of(usage, service, Some(environment));
        let evaluated = evaluate_service(service, Some(environment), shown.as_ref(), settings);
        evaluations.extend(evaluated.into_iter().map(|e| Evaluation {
            application: Some(service.spec.application.clone()),
            service: Some(service.name_any()),
            ..e
        }));
    }
    evaluations
}

/// An Environment's scorecard, rolled up over everything in its namespace.
pub fn environment_scorecard(
    environment: &Environment,
    snapshot: &Snapshot,
    usage: Option<&crate::usage::UsageStore>,
    settings: &InsightSettings,
) -> Scorecard {
    scorecard(&environment_evaluations(
        environment,
        snapshot,
        usage,
        settings,
    ))
}

/// The README's rule table, generated from [`RULES`].
pub fn rules_markdown() -> String {
    let mut out = String::from(
        "| rule | level | kind | passes when | the insight says |\n|---|---|---|---|---|\n",
    );
    for rule in RULES {
        let kind = match rule.check {
            Check::Service(_) => "Service",
            Check::Application(_) => "Application",
        };
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            rule.id,
            rule.level.as_str(),
            kind,
            rule.passes_when,
            rule.fix
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolve::tests::shop;

    fn service(yaml: &str) -> Service {
        serde_yaml::from_str(&format!(
            "apiVersion: paved.dev/v1alpha1\nkind: Service\nmetadata: {{name: api, namespace: shop}}\nspec: {yaml}"
        ))
        .unwrap()
    }

    fn environment(type_: &str) -> Environment {
        serde_yaml::from_str(&format!(
            "apiVersion: paved.dev/v1alpha1\nkind: Environment\nmetadata: {{name: shop}}\nspec: {{type: {type_}, domain: shop.example.com}}"
        ))
        .unwrap()
    }

    const GOOD: &str = "{application: shop, image: 'ghcr.io/acme/api:1.4.2@sha256:0123', ports: [{name: http, port: 8080}], health: {path: /healthz, port: http}, resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}}";

    fn failed_rules(evaluations: &[Evaluation]) -> Vec<&'static str> {
        evaluations
            .iter()
            .filter(|e| e.failed.is_some())
            .map(|e| e.rule)
            .collect()
    }

    #[test]
    fn a_service_on_the_paved_path_in_production_scores_100_with_no_insight() {
        let card = service_scorecard(
            &service(GOOD),
            Some(&environment("production")),
            None,
            &InsightSettings::default(),
        );
        assert_eq!(card.score, 100);
        assert!(card.insights.is_empty(), "{card:?}");
    }

    #[test]
    fn a_bare_latest_image_without_health_or_resources_gets_one_insight_per_rule_it_breaks() {
        let evaluations = evaluate_service(
            &service("{application: shop, image: 'nginx:latest', ports: [{name: http, port: 80}]}"),
            Some(&environment("staging")),
            None,
            &InsightSettings::default(),
        );
        assert_eq!(
            failed_rules(&evaluations),
            [
                "health-check",
                "resource-requests",
                "memory-limit",
                "image-pinned"
            ]
        );
        let pinned = evaluations
            .iter()
            .find(|e| e.rule == "image-pinned")
            .unwrap();
        assert_eq!(pinned.level, InsightLevel::Critical);
        assert_eq!(
            pinned.failed.as_deref(),
            Some(
                "image nginx:latest follows latest: pin spec.image to a version tag, better a digest (@sha256:...), so every pod runs the image you reviewed"
            )
        );
        // Production rules do not apply outside production; the digest rule not to an unpinned image.
        assert!(
            evaluations
                .iter()
                .all(|e| !e.rule.starts_with("production-") && e.rule != "image-digest")
        );
    }

    #[test]
    fn the_score_is_the_weight_passed_out_of_the_weight_that_applies() {
        // staging: health 3, requests 3, limit 1, pinned 5, digest (n/a), security 3 = 15;
        // only image-pinned fails → 10/15.
        let card = service_scorecard(
            &service(&GOOD.replace("api:1.4.2@sha256:0123", "api")),
            Some(&environment("staging")),
            None,
            &InsightSettings::default(),
        );
        assert_eq!(
            (card.score, card.critical, card.warning),
            (10 * 100 / 15, 1, 0)
        );
    }

    #[test]
    fn image_references_are_split_without_mistaking_a_registry_port_for_a_tag() {
        assert_eq!(image_reference("localhost:5000/api").tag, None);
        assert_eq!(image_reference("localhost:5000/api:2").tag, Some("2"));
        let both = image_reference("ghcr.io/a/b:1@sha256:ff");
        assert_eq!((both.tag, both.digest), (Some("1"), Some("sha256:ff")));
        let pinned = |image: &str| {
            image_pinned(
                &ServiceFacts {
                    service: &service(&format!("{{application: shop, image: '{image}'}}")),
                    environment: None,
                    usage: None,
                },
                &InsightSettings::default(),
            )
        };
        assert_eq!(pinned("busybox@sha256:ab"), Verdict::Passed);
        assert!(matches!(pinned("localhost:5000/api"), Verdict::Failed(m) if m.contains("no tag")));
    }

    #[test]
    fn one_pod_in_production_breaks_the_replicas_and_disruption_budget_rules_but_not_in_staging() {
        let one = service(&GOOD.replace("{application: shop,", "{application: shop, replicas: 1,"));
        let production = evaluate_service(
            &one,
            Some(&environment("production")),
            None,
            &InsightSettings::default(),
        );
        assert_eq!(
            failed_rules(&production),
            ["production-replicas", "production-disruption-budget"]
        );
        let staging = evaluate_service(
            &one,
            Some(&environment("staging")),
            None,
            &InsightSettings::default(),
        );
        assert!(failed_rules(&staging).is_empty());
    }

    #[test]
    fn the_production_minimum_is_a_setting_and_autoscaling_min_counts() {
        let scaled = service(&GOOD.replace(
            "{application: shop,",
            "{application: shop, autoscaling: {min: 2, max: 5},",
        ));
        let strict = InsightSettings {
            production_min_replicas: 3,
            ..InsightSettings::default()
        };
        let evaluations =
            evaluate_service(&scaled, Some(&environment("production")), None, &strict);
        let replicas = evaluations
            .iter()
            .find(|e| e.rule == "production-replicas")
            .unwrap();
        assert!(
            replicas
                .failed
                .as_deref()
                .unwrap()
                .starts_with("as few as 2 pod(s) in production, below 3")
        );
    }

    #[test]
    fn environment_defaults_count_as_requests_and_limits() {
        let mut staging = environment("staging");
        staging.spec.guardrails = serde_yaml::from_str(
            "{defaults: {resources: {requests: {cpu: 100m, memory: 64Mi}, limits: {memory: 128Mi}}}}",
        )
        .unwrap();
        let bare = service("{application: shop, image: 'a:1', health: null}");
        let evaluations =
            evaluate_service(&bare, Some(&staging), None, &InsightSettings::default());
        assert!(!failed_rules(&evaluations).contains(&"resource-requests"));
        assert!(!failed_rules(&evaluations).contains(&"memory-limit"));
        let alone = evaluate_service(&bare, None, None, &InsightSettings::default());
        let requests = alone
            .iter()
            .find(|e| e.rule == "resource-requests")
            .unwrap();
        assert!(
            requests
                .failed
                .as_deref()
                .unwrap()
                .starts_with("no cpu or memory request set")
        );
    }

    #[test]
    fn the_baseline_opt_out_is_flagged() {
        let opted_out = service(&GOOD.replace(
            "{application: shop,",
            "{application: shop, security: {level: baseline},",
        ));
        let evaluations = evaluate_service(&opted_out, None, None, &InsightSettings::default());
        assert_eq!(failed_rules(&evaluations), ["pod-security-restricted"]);
    }

    fn quiet(cpu_peak: f64, hours_low: i64, hours_idle: Option<i64>) -> crate::usage::Published {
        let at = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500);
        let ago = |hours: i64| at - jiff::SignedDuration::from_hours(hours);
        crate::usage::Published {
            sample: crate::usage::Sample {
                pods: 2,
                cpu: 2.0 * cpu_peak,
                memory: 200.0 * 1024.0 * 1024.0,
                peak_pod_cpu: cpu_peak,
                peak_pod_memory: 100.0 * 1024.0 * 1024.0,
            },
            resources: crate::usage::PodResources {
                cpu_request: 0.5,
                memory_request: 128.0 * 1024.0 * 1024.0,
                cpu_limit: None,
                memory_limit: None,
            },
            at,
            cpu_low: Some(crate::usage::Streak {
                since: ago(hours_low),
                peak: cpu_peak,
            }),
            memory_low: None,
            idle_since: hours_idle.map(ago),
        }
    }

    fn usage_findings(
        usage: &crate::usage::Published,
        environment: &Environment,
    ) -> Vec<(&'static str, Option<String>)> {
        evaluate_service(
            &service(GOOD),
            Some(environment),
            Some(usage),
            &InsightSettings::default(),
        )
        .into_iter()
        .filter(|e| e.rule == "over-provisioned" || e.rule == "idle")
        .map(|e| (e.rule, e.failed))
        .collect()
    }

    #[test]
    fn a_day_far_below_its_request_is_over_provisioned_with_a_suggested_request() {
        let findings = usage_findings(&quiet(0.040, 25, None), &environment("production"));
        let (rule, message) = &findings[0];
        assert_eq!(*rule, "over-provisioned");
        assert_eq!(
            message.as_deref(),
            Some(
                "the busiest pod used at most 40m CPU of its 500m request for 24h+, suggested request 60m: lower spec.resources.requests to the suggestion (the most a pod used in that time, plus half again) so the requests, the quota and the cost follow what runs"
            )
        );
        // Production is never idle; a quiet streak shorter than the period passes.
        assert_eq!(findings.len(), 1, "{findings:?}");
        let young = usage_findings(&quiet(0.040, 23, None), &environment("production"));
        assert_eq!(young, [("over-provisioned", None)]);
        assert_eq!(suggested_request(0.0001, true), "5m");
        assert_eq!(suggested_request(100.0 * 1024.0 * 1024.0, false), "160Mi");
    }

    #[test]
    fn three_days_without_cpu_outside_production_is_idle_but_not_once_stopped() {
        let idle = quiet(0.0, 80, Some(73));
        let findings = usage_findings(&idle, &environment("development"));
        let message = findings
            .iter()
            .find(|(rule, _)| *rule == "idle")
            .and_then(|(_, m)| m.clone())
            .unwrap();
        assert!(
            message.starts_with("no pod used more than 1m CPU for 72h+: stop the Environment"),
            "{message}"
        );
        let mut stopped = environment("development");
        stopped.spec.lifecycle = serde_yaml::from_str("{stopped: true}").unwrap();
        assert!(
            usage_findings(&idle, &stopped)
                .iter()
                .all(|(r, _)| *r != "idle")
        );
        // Without usage (offline, no metrics) neither rule applies.
        let offline = evaluate_service(
            &service(GOOD),
            Some(&environment("development")),
            None,
            &InsightSettings::default(),
        );
        assert!(
            offline
                .iter()
                .all(|e| e.rule != "idle" && e.rule != "over-provisioned")
        );
    }

    #[test]
    fn a_disabled_rule_is_not_evaluated_and_a_level_can_be_raised() {
        let settings = InsightSettings {
            disabled: ["health-check".to_string()].into(),
            levels: [("image-digest".to_string(), InsightLevel::Critical)].into(),
            ..InsightSettings::default()
        };
        let tagged = service("{application: shop, image: 'a:1'}");
        let evaluations = evaluate_service(&tagged, None, None, &settings);
        assert!(evaluations.iter().all(|e| e.rule != "health-check"));
        let digest = evaluations
            .iter()
            .find(|e| e.rule == "image-digest")
            .unwrap();
        assert_eq!(digest.level, InsightLevel::Critical);
    }

    #[test]
    fn an_unknown_rule_in_the_settings_is_refused_with_the_list_of_rules() {
        let settings = InsightSettings {
            disabled: ["health".to_string()].into(),
            ..InsightSettings::default()
        };
        let error = settings.check().unwrap_err();
        assert!(
            error.contains("\"health\"") && error.contains("health-check"),
            "{error}"
        );
        assert!(InsightSettings::default().check().is_ok());
    }

    #[test]
    fn an_application_rolls_up_its_services_and_names_them_in_its_insights() {
        let snapshot = shop();
        let application = snapshot.application("staging", "shop").unwrap();
        let card = application_scorecard(application, &snapshot, None, &InsightSettings::default());
        let services = snapshot.services_of("staging", "shop");
        assert!(
            card.insights
                .iter()
                .any(|i| i.service.is_none() && i.rule == "application-links")
        );
        for service in services {
            let own = service_scorecard(
                service,
                snapshot.environment_of("staging", "x").ok(),
                None,
                &InsightSettings::default(),
            );
            let named = card
                .insights
                .iter()
                .filter(|i| i.service.as_deref() == Some(service.name_any().as_str()))
                .count();
            assert_eq!(named, own.insights.len());
        }
        let environment = snapshot.environment_of("staging", "x").unwrap();
        let rolled =
            environment_scorecard(environment, &snapshot, None, &InsightSettings::default());
        assert_eq!(
            rolled.critical + rolled.warning + rolled.info,
            card.critical + card.warning + card.info
        );
        assert!(
            rolled
                .insights
                .iter()
                .all(|i| i.application.as_deref() == Some("shop"))
        );
    }

    #[test]
    fn a_scorecard_keeps_the_twenty_most_severe_insights_and_counts_all() {
        let many: Vec<Evaluation> = (0..30)
            .map(|n| Evaluation {
                rule: "image-digest",
                level: if n == 29 {
                    InsightLevel::Critical
                } else {
                    InsightLevel::Info
                },
                failed: Some("x".into()),
                application: None,
                service: Some(format!("s{n:02}")),
            })
            .collect();
        let card = scorecard(&many);
        assert_eq!(
            (card.insights.len(), card.omitted, card.info, card.critical),
            (20, 10, 29, 1)
        );
        assert_eq!(card.insights[0].level, InsightLevel::Critical);
        assert_eq!(card.score, 0);
    }

    #[test]
    fn the_chart_accepts_exactly_the_rule_ids_of_the_table() {
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../charts/paved/values.schema.json")).unwrap();
        let insights = &schema["properties"]["insights"]["properties"];
        let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
        for enumerated in [
            &insights["disable"]["items"]["enum"],
            &insights["levels"]["propertyNames"]["enum"],
        ] {
            let listed: Vec<&str> = enumerated
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap())
                .collect();
            assert_eq!(
                listed, ids,
                "values.schema.json lists other rules than RULES"
            );
        }
    }

    #[test]
    fn the_readme_lists_every_rule_exactly_as_the_table_says() {
        let readme = include_str!("../README.md");
        let table = rules_markdown();
        assert!(
            readme.contains(&table),
            "README.md is missing the rule table or it drifted; paste this in:\n{table}"
        );
    }
}
