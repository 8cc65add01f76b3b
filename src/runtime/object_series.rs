//! The per-object series (`paved_insights`, `paved_score`, the delivery
//! figures and the usage figures), made from the stores at each scrape, as
//! kube-state-metrics does. Usage is the poller's latest sample of each Service
//! in the store (`paved_usage_*`): two series per Service, once kept as live
//! series with the record of what each poll had published.
//!
//! Each series is what an object's status says (a Service's `scorecard` and
//! `delivery`, an Application's or Environment's score), read when Prometheus
//! asks, so nothing is kept per object between scrapes: no series to remove when
//! an insight goes away or an object is deleted, and a restarted controller shows
//! them once its stores are loaded. An Application's own insights (its Services
//! publish theirs) are its own rules, evaluated on its spec at the scrape.
//!
//! Kept as live series, with the record of what each object had published (to
//! remove what went away), they cost about 3 KB of memory per Service; a scrape
//! now costs a pass over the three stores instead. A standby, which holds no
//! store, shows the families and no series.

use std::fmt;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;

use crate::api::delivery::Delivery;
use crate::api::scorecard::Scorecard;
use crate::api::{Application, Environment, Service};
use crate::insights::InsightSettings;
use crate::reconcile::PublishedStores;
use crate::usage::Sample;

/// The collector, registered with the other metrics (see [`super::metrics`]).
#[derive(Debug)]
pub struct ObjectSeries {
    pub stores: PublishedStores,
    /// To evaluate an Application's own rules.
    pub insights: InsightSettings,
}

/// A delivery figure: its name, help, type and where it is in the status.
struct Figure {
    name: &'static str,
    help: &'static str,
    counter: bool,
    value: fn(&Delivery) -> Option<i64>,
}

const FIGURES: [Figure; 5] = [
    Figure {
        name: "deploys",
        help: "New revisions of a Service (image or configuration changed), as counted in its status.delivery",
        counter: true,
        value: |d| Some(d.deploys),
    },
    Figure {
        name: "change_failures",
        help: "Revisions of a Service that went Stalled or were rolled back, each once",
        counter: true,
        value: |d| Some(d.failures),
    },
    Figure {
        name: "restores",
        help: "Returns of a Service to Ready after it went Stalled",
        counter: true,
        value: |d| Some(d.restores),
    },
    Figure {
        name: "time_to_restore_seconds",
        help: "Sum of a Service's times to restore (leaving Ready to its return), in seconds",
        counter: true,
        value: |d| Some(d.time_to_restore_seconds_total),
    },
    Figure {
        name: "lead_time_seconds",
        help: "Lead time of a Service's latest deploy that carried a paved.dev/commit-time annotation, in seconds",
        counter: false,
        value: |d| d.last_lead_time_seconds,
    },
];

/// A usage figure: its name, help and what of the latest sample it is.
struct UsageFigure {
    name: &'static str,
    help: &'static str,
    value: fn(&Sample) -> f64,
}

const USAGE: [UsageFigure; 2] = [
    UsageFigure {
        name: "usage_cpu_cores",
        help: "CPU cores a Service's pods use, all together, at the latest poll of metrics.k8s.io",
        value: |s| s.cpu,
    },
    UsageFigure {
        name: "usage_memory_bytes",
        help: "Memory (working set, bytes) a Service's pods use, all together, at the latest poll of metrics.k8s.io",
        value: |s| s.memory,
    },
];

/// The objects one scrape reads, each store's list taken once (none on a standby).
#[derive(Default)]
struct Objects {
    services: Vec<Arc<Service>>,
    applications: Vec<Arc<Application>>,
    environments: Vec<Arc<Environment>>,
    /// Each Service's latest usage sample, in the order of `services`.
    usage: Vec<Option<Sample>>,
}

impl Collector for ObjectSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let objects = self
            .stores
            .current()
            .map(|stores| {
                let services = stores.services.state();
                let usage = stores
                    .usage
                    .latest(services.iter().map(|s| named(&s.metadata)));
                Objects {
                    services,
                    applications: stores.applications.state(),
                    environments: stores.environments.state(),
                    usage,
                }
            })
            .unwrap_or_default();
        self.encode_insights(&mut encoder, &objects)?;
        encode_scores(&mut encoder, &objects)?;
        for figure in &FIGURES {
            encode_delivery(&mut encoder, figure, &objects.services)?;
        }
        for figure in &USAGE {
            encode_usage(&mut encoder, figure, &objects)?;
        }
        Ok(())
    }
}

/// An object's namespace ("" for an Environment) and name, as label values.
fn named(metadata: &ObjectMeta) -> (&str, &str) {
    (
        metadata.namespace.as_deref().unwrap_or_default(),
        metadata.name.as_deref().unwrap_or_default(),
    )
}

impl ObjectSeries {
    fn encode_insights(&self, encoder: &mut DescriptorEncoder, objects: &Objects) -> fmt::Result {
        let mut family = encoder.encode_descriptor(
            "insights",
            "1 for each paved-path insight an object has now (its own rules), by rule, level, kind, namespace and name",
            None,
            MetricType::Gauge,
        )?;
        for service in &objects.services {
            let (namespace, name) = named(&service.metadata);
            let insights = service.status.as_ref().and_then(|s| s.scorecard.as_ref());
            for insight in insights.into_iter().flat_map(|s| &s.insights) {
                let level = insight.level.as_str();
                let labels = insight_labels(&insight.rule, level, "Service", namespace, name);
                family.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
        }
        for application in &objects.applications {
            let (namespace, name) = named(&application.metadata);
            let own = crate::insights::evaluate_application(application, &self.insights);
            for failed in own.iter().filter(|e| e.failed.is_some()) {
                let level = failed.level.as_str();
                let labels = insight_labels(failed.rule, level, "Application", namespace, name);
                family.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
        }
        Ok(())
    }
}

fn insight_labels<'a>(
    rule: &'a str,
    level: &'a str,
    kind: &'a str,
    namespace: &'a str,
    name: &'a str,
) -> [(&'static str, &'a str); 5] {
    [
        ("rule", rule),
        ("level", level),
        ("kind", kind),
        ("namespace", namespace),
        ("name", name),
    ]
}

fn encode_scores(encoder: &mut DescriptorEncoder, objects: &Objects) -> fmt::Result {
    let mut family = encoder.encode_descriptor(
        "score",
        "Paved-path score (0-100) of a Service, Application or Environment, rolled up",
        None,
        MetricType::Gauge,
    )?;
    let card = |status: Option<&Scorecard>| status.map(|s| s.score);
    let scored = (objects.services.iter())
        .map(|s| {
            (
                "Service",
                &s.metadata,
                card(s.status.as_ref().and_then(|s| s.scorecard.as_ref())),
            )
        })
        .chain(objects.applications.iter().map(|a| {
            (
                "Application",
                &a.metadata,
                card(a.status.as_ref().and_then(|s| s.scorecard.as_ref())),
            )
        }))
        .chain(objects.environments.iter().map(|e| {
            (
                "Environment",
                &e.metadata,
                card(e.status.as_ref().and_then(|s| s.scorecard.as_ref())),
            )
        }));
    for (kind, metadata, score) in scored {
        let Some(score) = score else { continue };
        let (namespace, name) = named(metadata);
        let labels = [("kind", kind), ("namespace", namespace), ("name", name)];
        family
            .encode_family(&labels)?
            .encode_gauge(&i64::from(score))?;
    }
    Ok(())
}

fn encode_delivery(
    encoder: &mut DescriptorEncoder,
    figure: &Figure,
    services: &[Arc<Service>],
) -> fmt::Result {
    let kind = if figure.counter {
        MetricType::Counter
    } else {
        MetricType::Gauge
    };
    let mut family = encoder.encode_descriptor(figure.name, figure.help, None, kind)?;
    for service in services {
        let delivery = service.status.as_ref().and_then(|s| s.delivery.as_ref());
        let Some(value) = delivery.and_then(figure.value) else {
            continue;
        };
        let labels = service_labels(service);
        encode_value(family.encode_family(&labels)?, figure.counter, value)?;
    }
    Ok(())
}

/// A Service's labels as the delivery and usage series carry them.
fn service_labels(service: &Service) -> [(&'static str, &str); 3] {
    let (namespace, name) = named(&service.metadata);
    [
        ("namespace", namespace),
        ("application", service.spec.application.as_str()),
        ("service", name),
    ]
}

/// The usage series: one per Service the latest poll saw (0 for a Service
/// without pods measured), none while the cluster serves no metrics.
fn encode_usage(
    encoder: &mut DescriptorEncoder,
    figure: &UsageFigure,
    objects: &Objects,
) -> fmt::Result {
    let mut family =
        encoder.encode_descriptor(figure.name, figure.help, None, MetricType::Gauge)?;
    for (service, sample) in objects.services.iter().zip(&objects.usage) {
        let Some(sample) = sample else { continue };
        family
            .encode_family(&service_labels(service))?
            .encode_gauge(&(figure.value)(sample))?;
    }
    Ok(())
}

fn encode_value(mut series: MetricEncoder, counter: bool, value: i64) -> fmt::Result {
    if counter {
        // A counter never goes below 0; a figure smaller than the last scrape's
        // (a Service created anew under the same name) is a counter reset.
        series.encode_counter::<NoLabelSet, _, u64>(&u64::try_from(value).unwrap_or(0), None)
    } else {
        series.encode_gauge(&value)
    }
}

#[cfg(test)]
mod tests {
    use kube::runtime::watcher::Event;

    use super::super::metrics::Metrics;
    use crate::api::delivery::Delivery;
    use crate::api::scorecard::{Insight, InsightLevel, Scorecard};
    use crate::api::{EnvironmentStatus, ServiceStatus};
    use crate::insights::InsightSettings;
    use crate::reconcile::{PublishedStores, StoreWriters, new_stores};
    use crate::resolve::tests::{application, environment, service};

    /// Metrics reading stores that the test fills through `writers`.
    fn metrics_with_stores() -> (Metrics, StoreWriters, crate::reconcile::stores::Publication) {
        let (stores, writers, _loader) = new_stores();
        let published = PublishedStores::default();
        let publication = published.publish(stores);
        let metrics = Metrics::new(published, InsightSettings::default());
        (metrics, writers, publication)
    }

    #[test]
    fn usage_series_are_the_latest_poll_of_each_service_in_the_store() {
        let (stores, mut writers, _loader) = new_stores();
        let published = PublishedStores::default();
        let _publication = published.publish(stores.clone());
        let metrics = Metrics::new(published, InsightSettings::default());
        let (api, web) = (
            service("shop", "api", "shop"),
            service("shop", "web", "shop"),
        );
        for s in [&api, &web] {
            writers
                .services
                .apply_watcher_event(&Event::Apply(s.clone()));
        }
        let poll = |cpu: f64| {
            let mut samples = std::collections::BTreeMap::new();
            let measured = crate::usage::Sample {
                pods: 1,
                cpu,
                memory: 1024.0,
                ..Default::default()
            };
            samples.insert(("shop".to_string(), "api".to_string()), measured);
            stores.usage.update(|records| {
                crate::usage::fold(
                    &stores.snapshot(),
                    records,
                    &samples,
                    &Default::default(),
                    jiff::Timestamp::now(),
                    &Default::default(),
                    &Default::default(),
                )
            });
        };
        let series = |text: &str, name: &str| {
            text.lines()
                .find(|l| l.starts_with(&format!("paved_usage_cpu_cores{{namespace=\"shop\",application=\"shop\",service=\"{name}\"}}")))
                .map(|l| l.rsplit(' ').next().unwrap().to_string())
        };
        poll(0.25);
        let text = metrics.encode();
        assert_eq!(
            series(&text, "api"),
            None,
            "no series before the cluster is known to serve metrics"
        );
        stores
            .usage
            .set_availability(crate::usage::Availability::Available);
        let text = metrics.encode();
        assert_eq!(series(&text, "api").as_deref(), Some("0.25"), "{text}");
        assert_eq!(
            series(&text, "web").as_deref(),
            Some("0.0"),
            "a Service without pods shows 0: {text}"
        );
        assert!(
            text.contains("paved_usage_memory_bytes{namespace=\"shop\",application=\"shop\",service=\"api\"} 1024.0"),
            "{text}"
        );
        poll(0.5);
        writers.services.apply_watcher_event(&Event::Delete(web));
        let text = metrics.encode();
        assert_eq!(
            series(&text, "api").as_deref(),
            Some("0.5"),
            "the latest poll: {text}"
        );
        assert_eq!(series(&text, "web"), None, "gone with its Service: {text}");
        stores
            .usage
            .set_availability(crate::usage::Availability::Unavailable(
                "no metrics.k8s.io".into(),
            ));
        assert_eq!(
            series(&metrics.encode(), "api"),
            None,
            "none without the metrics API"
        );
    }

    fn insight(rule: &str, level: InsightLevel) -> Insight {
        Insight {
            rule: rule.into(),
            level,
            message: format!("fix {rule}").into(),
            application: None,
            service: None,
        }
    }

    fn scored(
        mut s: crate::api::Service,
        insights: Vec<Insight>,
        score: i32,
    ) -> crate::api::Service {
        s.status = Some(ServiceStatus {
            scorecard: Some(Scorecard {
                score,
                insights,
                ..Default::default()
            }),
            ..Default::default()
        });
        s
    }

    #[test]
    fn insights_and_scores_are_what_status_says_and_go_with_their_object() {
        let (metrics, mut writers, publication) = metrics_with_stores();
        let api = scored(
            service("shop", "api", "shop"),
            vec![
                insight("image-pinned", InsightLevel::Critical),
                insight("health-check", InsightLevel::Warning),
            ],
            40,
        );
        writers
            .services
            .apply_watcher_event(&Event::Apply(api.clone()));
        // Reconciled by nobody yet: no status, no series.
        writers
            .services
            .apply_watcher_event(&Event::Apply(service("shop", "new", "shop")));
        writers
            .applications
            .apply_watcher_event(&Event::Apply(application("shop", "shop")));
        let mut env = environment("shop", "example.com");
        env.status = Some(EnvironmentStatus {
            scorecard: Some(Scorecard {
                score: 55,
                ..Default::default()
            }),
            ..Default::default()
        });
        writers.environments.apply_watcher_event(&Event::Apply(env));

        let text = metrics.encode();
        for series in [
            "paved_insights{rule=\"image-pinned\",level=\"critical\",kind=\"Service\",namespace=\"shop\",name=\"api\"} 1",
            "paved_insights{rule=\"health-check\",level=\"warning\",kind=\"Service\",namespace=\"shop\",name=\"api\"} 1",
            "paved_score{kind=\"Service\",namespace=\"shop\",name=\"api\"} 40",
            "paved_score{kind=\"Environment\",namespace=\"\",name=\"shop\"} 55",
            // The Application's own rules, from its spec (no description, no links).
            "rule=\"application-description\",level=\"info\",kind=\"Application\",namespace=\"shop\",name=\"shop\"} 1",
        ] {
            assert!(text.contains(series), "{series} missing from\n{text}");
        }
        assert!(!text.contains("name=\"new\""), "{text}");

        // An insight fixed, then the Service deleted: its series go with it.
        let fixed = scored(
            service("shop", "api", "shop"),
            vec![insight("health-check", InsightLevel::Warning)],
            70,
        );
        writers
            .services
            .apply_watcher_event(&Event::Apply(fixed.clone()));
        let text = metrics.encode();
        assert!(!text.contains("image-pinned"), "{text}");
        assert!(
            text.contains("paved_score{kind=\"Service\",namespace=\"shop\",name=\"api\"} 70"),
            "{text}"
        );
        writers.services.apply_watcher_event(&Event::Delete(fixed));
        let text = metrics.encode();
        assert!(!text.contains("name=\"api\""), "{text}");

        // The controllers stopped (a standby): the families, and no series.
        drop(publication);
        let text = metrics.encode();
        assert!(text.contains("# TYPE paved_insights gauge"), "{text}");
        assert!(!text.contains("namespace=\"shop\""), "{text}");
    }

    #[test]
    fn delivery_figures_are_the_status_figures_as_counters() {
        let (metrics, mut writers, _publication) = metrics_with_stores();
        let with = |deploys: i64, lead: Option<i64>| {
            let mut web = service("shop", "web", "shop");
            web.status = Some(ServiceStatus {
                delivery: Some(Delivery {
                    deploys,
                    failures: 1,
                    last_lead_time_seconds: lead,
                    ..Default::default()
                }),
                ..Default::default()
            });
            web
        };
        writers
            .services
            .apply_watcher_event(&Event::Apply(with(3, Some(90))));
        let series = "{namespace=\"shop\",application=\"shop\",service=\"web\"}";
        let text = metrics.encode();
        for line in [
            "# TYPE paved_deploys counter\n".to_string(),
            format!("paved_deploys_total{series} 3\n"),
            format!("paved_change_failures_total{series} 1\n"),
            format!("paved_restores_total{series} 0\n"),
            format!("paved_lead_time_seconds{series} 90\n"),
        ] {
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
        // Recreated under the same name: the counter starts again (a reset);
        // no lead time measured: no lead time series.
        writers
            .services
            .apply_watcher_event(&Event::Apply(with(1, None)));
        let text = metrics.encode();
        assert!(
            text.contains(&format!("paved_deploys_total{series} 1\n")),
            "{text}"
        );
        assert!(!text.contains("paved_lead_time_seconds{"), "{text}");
    }
}
