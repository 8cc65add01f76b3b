//! Real usage: the pods' CPU and memory (from `metrics.k8s.io`, polled by
//! `runtime::usage`) folded per Service, the step rule that decides when a
//! status changes, and the bounded memory behind the over-provisioned and idle
//! insights: a streak (since when, and the most used in it) per Service, never
//! a list of samples.
//!
//! ```text
//!  PodMetrics ─▶ aggregate ─▶ Sample per Service ─▶ Record::observe ─▶ Published
//!                                (pods by paved.dev/service)  streaks,    (what status shows;
//!                                                             step rule   changes only by a step)
//!  Published ─▶ service_usage (Service status), totals ─▶ totals_usage (Application, Environment)
//! ```
//!
//! Pure but for [`UsageStore`], the lock the poller writes and the reconcilers
//! read, so reading metrics never sits in a reconcile.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use jiff::{SignedDuration, Timestamp};

use crate::api::usage::{ResourceUsage, Usage};

const MIB: f64 = 1024.0 * 1024.0;

/// What one pod uses now (CPU in cores, memory in bytes), and whose it is.
#[derive(Clone, Debug, PartialEq)]
pub struct PodUsage {
    pub namespace: String,
    /// The pod's `paved.dev/service` label.
    pub service: String,
    pub cpu: f64,
    pub memory: f64,
}

/// A Service's pods at one moment: sums and the busiest pod.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub pods: u32,
    /// Cores, all pods together.
    pub cpu: f64,
    /// Bytes, all pods together.
    pub memory: f64,
    pub peak_pod_cpu: f64,
    pub peak_pod_memory: f64,
}

/// (namespace, Service name).
pub type ServiceKey = (String, String);

/// The pods folded per Service.
pub fn aggregate(pods: impl IntoIterator<Item = PodUsage>) -> BTreeMap<ServiceKey, Sample> {
    let mut samples: BTreeMap<ServiceKey, Sample> = BTreeMap::new();
    for pod in pods {
        let sample = samples.entry((pod.namespace, pod.service)).or_default();
        sample.pods += 1;
        sample.cpu += pod.cpu;
        sample.memory += pod.memory;
        sample.peak_pod_cpu = sample.peak_pod_cpu.max(pod.cpu);
        sample.peak_pod_memory = sample.peak_pod_memory.max(pod.memory);
    }
    samples
}

/// How far a figure must move before status shows it: by `relative` of its
/// last shown value, and by at least the absolute step of its resource (so a
/// figure near zero does not flap).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Steps {
    pub relative: f64,
    /// Cores.
    pub cpu: f64,
    /// Bytes.
    pub memory: f64,
    /// How long a Service with fewer pods measured than ready keeps what it
    /// shows (see [`Record::observe_poll`]): metrics-server measures a new pod
    /// after two scrapes (up to two minutes at its default resolution).
    pub unmeasured_for: SignedDuration,
}

impl Default for Steps {
    fn default() -> Self {
        Steps {
            relative: 0.10,
            cpu: 0.005,
            memory: 4.0 * MIB,
            unmeasured_for: SignedDuration::from_mins(3),
        }
    }
}

/// Whether `after` differs from `before` by a step (a hair of tolerance, so
/// 100m → 110m is the 10 % it looks like in floating point too).
pub fn moved(before: f64, after: f64, relative: f64, absolute: f64) -> bool {
    (after - before).abs() * (1.0 + 1e-9) >= absolute.max(relative * before.abs())
}

impl Sample {
    /// The figures as status writes them (whole millicores and MiB, computed
    /// as [`quantity_value`](crate::children::guardrails::quantity_value)
    /// reads them back), so what a restarted controller reads from status is
    /// exactly what it would have kept in memory: the sums, percents, costs
    /// and suggestions derived from either are the same.
    pub fn as_shown(&self) -> Sample {
        let cpu = |cores: f64| (cores * 1000.0).round() * 1e-3;
        let memory = |bytes: f64| (bytes / MIB).round() * MIB;
        Sample {
            pods: self.pods,
            cpu: cpu(self.cpu),
            memory: memory(self.memory),
            peak_pod_cpu: cpu(self.peak_pod_cpu),
            peak_pod_memory: memory(self.peak_pod_memory),
        }
    }

    /// Whether any figure moved from `shown` by a step (or the pods changed).
    pub fn moved_from(&self, shown: &Sample, steps: &Steps) -> bool {
        let cpu = |a: f64, b: f64| moved(a, b, steps.relative, steps.cpu);
        let memory = |a: f64, b: f64| moved(a, b, steps.relative, steps.memory);
        self.pods != shown.pods
            || cpu(shown.cpu, self.cpu)
            || cpu(shown.peak_pod_cpu, self.peak_pod_cpu)
            || memory(shown.memory, self.memory)
            || memory(shown.peak_pod_memory, self.peak_pod_memory)
    }
}

/// One pod's request and limit, as Kubernetes settles them (see
/// [`crate::cost::pod_resources`]). CPU in cores, memory in bytes; 0 or None: unset.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodResources {
    pub cpu_request: f64,
    pub memory_request: f64,
    pub cpu_limit: Option<f64>,
    pub memory_limit: Option<f64>,
}

/// A run of samples that all stayed within a bound: since when, and the most
/// a pod used in it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Streak {
    pub since: Timestamp,
    pub peak: f64,
}

fn follow(streak: &mut Option<Streak>, within: bool, value: f64, now: Timestamp) {
    match (within, streak.as_mut()) {
        (false, _) => *streak = None,
        (true, Some(streak)) => streak.peak = streak.peak.max(value),
        (true, None) => {
            *streak = Some(Streak {
                since: now,
                peak: value,
            })
        }
    }
}

/// When usage counts as far below requests, or as none, and for how long it
/// must stay so (controller flags, chart values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Thresholds {
    /// Over-provisioned: the busiest pod stays under this percent of its request…
    pub low_percent: u32,
    /// …for this long…
    pub low_for: SignedDuration,
    /// …and a pod's request exceeds its use by at least this many millicores
    /// of CPU (or MiB of memory): no insight for a saving not worth a change.
    pub low_min_saving_millicores: u32,
    pub low_min_saving_mib: u32,
    /// Idle: every pod stays at or under this many millicores of CPU…
    pub idle_millicores: u32,
    /// …for this long.
    pub idle_for: SignedDuration,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            low_percent: 25,
            low_for: SignedDuration::from_hours(24),
            low_min_saving_millicores: 0,
            low_min_saving_mib: 0,
            idle_millicores: 1,
            idle_for: SignedDuration::from_hours(72),
        }
    }
}

/// A Service's figures as its status shows them: the sample that last moved
/// by a step, and the streaks as of then.
#[derive(Clone, Debug, PartialEq)]
pub struct Published {
    pub sample: Sample,
    pub resources: PodResources,
    pub at: Timestamp,
    pub cpu_low: Option<Streak>,
    pub memory_low: Option<Streak>,
    pub idle_since: Option<Timestamp>,
}

/// Which usage insights hold, as of a [`Published`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Verdicts {
    pub cpu_over_provisioned: bool,
    pub memory_over_provisioned: bool,
    pub idle: bool,
}

fn lasted(since: Option<Timestamp>, at: Timestamp, at_least: SignedDuration) -> bool {
    since.is_some_and(|since| at.duration_since(since) >= at_least)
}

impl Published {
    pub fn verdicts(&self, thresholds: &Thresholds) -> Verdicts {
        Verdicts {
            cpu_over_provisioned: lasted(
                self.cpu_low.map(|s| s.since),
                self.at,
                thresholds.low_for,
            ),
            memory_over_provisioned: lasted(
                self.memory_low.map(|s| s.since),
                self.at,
                thresholds.low_for,
            ),
            idle: lasted(self.idle_since, self.at, thresholds.idle_for),
        }
    }
}

/// What Paved remembers of one Service between polls: bounded, whatever the
/// number of samples.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Record {
    pub cpu_low: Option<Streak>,
    pub memory_low: Option<Streak>,
    pub idle_since: Option<Timestamp>,
    /// What status shows; None until the first sample.
    pub published: Option<Published>,
    /// Since when fewer of the Service's pods are measured than are ready.
    pub unmeasured_since: Option<Timestamp>,
    /// The latest poll's sample as it was (the `paved_usage_*` series).
    pub latest: Sample,
}

impl Record {
    /// Fold one poll's sample in, knowing how many of the Service's pods are
    /// ready. Fewer measured than ready means pods metrics-server has not
    /// measured yet (a rollout, a scale-up, pods restarted): such a sample is
    /// incomplete, and for up to `steps.unmeasured_for` it is skipped (status
    /// keeps what it shows, streaks neither grow nor break), so a rollout does
    /// not write a Service without pods and then its pods again. Past that, the
    /// pods measured are shown (a node whose metrics fail must not freeze the
    /// figures). True when what status shows changes, as [`observe`](Self::observe).
    pub fn observe_poll(
        &mut self,
        sample: Sample,
        ready: u32,
        resources: PodResources,
        now: Timestamp,
        thresholds: &Thresholds,
        steps: &Steps,
    ) -> bool {
        if sample.pods < ready {
            let since = *self.unmeasured_since.get_or_insert(now);
            if now.duration_since(since) < steps.unmeasured_for {
                return false;
            }
        } else {
            self.unmeasured_since = None;
        }
        self.observe(sample, resources, now, thresholds, steps)
    }

    /// Fold one sample in. True when what status shows changes (a figure moved
    /// by a step, the requests changed, or an insight starts or ends): the
    /// Service is then woken to write it. A Service without pods measured
    /// (stopped, starting) breaks its streaks.
    pub fn observe(
        &mut self,
        sample: Sample,
        resources: PodResources,
        now: Timestamp,
        thresholds: &Thresholds,
        steps: &Steps,
    ) -> bool {
        // Kept as status shows it, to the second and the millicore/MiB.
        let sample = sample.as_shown();
        let now = now.round(jiff::Unit::Second).unwrap_or(now);
        let running = sample.pods > 0;
        let low = f64::from(thresholds.low_percent) / 100.0;
        let far_below = |peak: f64, request: f64, min_saving: f64| {
            running && request > 0.0 && peak < low * request && request - peak >= min_saving
        };
        follow(
            &mut self.cpu_low,
            far_below(
                sample.peak_pod_cpu,
                resources.cpu_request,
                f64::from(thresholds.low_min_saving_millicores) / 1000.0,
            ),
            sample.peak_pod_cpu,
            now,
        );
        follow(
            &mut self.memory_low,
            far_below(
                sample.peak_pod_memory,
                resources.memory_request,
                f64::from(thresholds.low_min_saving_mib) * MIB,
            ),
            sample.peak_pod_memory,
            now,
        );
        let idle = running && sample.peak_pod_cpu * 1000.0 <= f64::from(thresholds.idle_millicores);
        self.idle_since = match (idle, self.idle_since) {
            (false, _) => None,
            (true, since) => Some(since.unwrap_or(now)),
        };
        let candidate = Published {
            sample,
            resources,
            at: now,
            cpu_low: self.cpu_low,
            memory_low: self.memory_low,
            idle_since: self.idle_since,
        };
        let changed = match &self.published {
            None => true,
            Some(shown) => {
                sample.moved_from(&shown.sample, steps)
                    || resources != shown.resources
                    || candidate.verdicts(thresholds) != shown.verdicts(thresholds)
            }
        };
        if changed {
            self.published = Some(candidate);
        }
        changed
    }

    /// The record a Service's status implies, so a restarted controller keeps
    /// its streaks and writes nothing until a figure moves.
    pub fn from_status(usage: &Usage, resources: PodResources) -> Option<Record> {
        if !usage.available {
            return None;
        }
        let at: Timestamp = usage.sampled_at.as_deref()?.parse().ok()?;
        let time = |text: &Option<String>| text.as_deref().and_then(|t| t.parse().ok());
        let value = |text: &Option<String>| {
            text.as_deref()
                .and_then(crate::children::guardrails::quantity_value)
        };
        let figures = |r: &Option<ResourceUsage>| {
            r.as_ref().map_or((0.0, 0.0, None), |r| {
                let streak = time(&r.low_since).map(|since| Streak {
                    since,
                    peak: value(&r.low_peak_pod).unwrap_or(0.0),
                });
                (
                    value(&Some(r.used.clone())).unwrap_or(0.0),
                    value(&r.peak_pod).unwrap_or(0.0),
                    streak,
                )
            })
        };
        let (cpu, peak_pod_cpu, cpu_low) = figures(&usage.cpu);
        let (memory, peak_pod_memory, memory_low) = figures(&usage.memory);
        let idle_since = time(&usage.idle_since);
        let published = Published {
            sample: Sample {
                pods: u32::try_from(usage.pods).unwrap_or(0),
                cpu,
                memory,
                peak_pod_cpu,
                peak_pod_memory,
            },
            resources,
            at,
            cpu_low,
            memory_low,
            idle_since,
        };
        Some(Record {
            cpu_low,
            memory_low,
            idle_since,
            published: Some(published),
            unmeasured_since: None,
            latest: Sample::default(),
        })
    }
}

/// CPU cores as Kubernetes writes millicores: `250m`.
pub fn cpu_text(cores: f64) -> String {
    format!("{}m", (cores * 1000.0).round() as i64)
}

/// Bytes in MiB: `96Mi`.
pub fn memory_text(bytes: f64) -> String {
    format!("{}Mi", (bytes / MIB).round() as i64)
}

fn percent(used: f64, of: f64) -> Option<i32> {
    (of > 0.0).then(|| (100.0 * used / of).floor() as i32)
}

fn rfc3339(at: Timestamp) -> String {
    crate::lifecycle::rfc3339(at)
}

/// A Service's `status.usage`.
pub fn service_usage(shown: &Published) -> Usage {
    let pods = f64::from(shown.sample.pods);
    let r = &shown.resources;
    let resource = |used: f64,
                    peak: f64,
                    request: f64,
                    limit: Option<f64>,
                    low: Option<Streak>,
                    text: fn(f64) -> String| {
        ResourceUsage {
            used: text(used),
            peak_pod: Some(text(peak)),
            requested: (request > 0.0).then(|| text(request * pods)),
            limit: limit.map(|l| text(l * pods)),
            percent_of_requested: percent(used, request * pods),
            quota: None,
            percent_of_quota: None,
            low_since: low.map(|s| rfc3339(s.since)),
            low_peak_pod: low.map(|s| text(s.peak)),
        }
    };
    Usage {
        available: true,
        reason: None,
        pods: shown.sample.pods as i32,
        cpu: Some(resource(
            shown.sample.cpu,
            shown.sample.peak_pod_cpu,
            r.cpu_request,
            r.cpu_limit,
            shown.cpu_low,
            cpu_text,
        )),
        memory: Some(resource(
            shown.sample.memory,
            shown.sample.peak_pod_memory,
            r.memory_request,
            r.memory_limit,
            shown.memory_low,
            memory_text,
        )),
        idle_since: shown.idle_since.map(rfc3339),
        sampled_at: Some(rfc3339(shown.at)),
    }
}

/// Sums over several Services' shown figures.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Totals {
    pub pods: u32,
    pub cpu: f64,
    pub memory: f64,
    pub cpu_requested: f64,
    pub memory_requested: f64,
    /// None once a measured pod has no limit (the sum is unbounded).
    pub cpu_limit: Option<f64>,
    pub memory_limit: Option<f64>,
    /// The latest sample among them.
    pub at: Option<Timestamp>,
}

/// Sum the shown figures of several Services.
pub fn totals<'a>(shown: impl IntoIterator<Item = &'a Published>) -> Totals {
    let mut totals = Totals {
        cpu_limit: Some(0.0),
        memory_limit: Some(0.0),
        ..Totals::default()
    };
    for p in shown {
        let pods = f64::from(p.sample.pods);
        totals.pods += p.sample.pods;
        totals.cpu += p.sample.cpu;
        totals.memory += p.sample.memory;
        totals.cpu_requested += p.resources.cpu_request * pods;
        totals.memory_requested += p.resources.memory_request * pods;
        if p.sample.pods > 0 {
            let add = |sum: Option<f64>, limit: Option<f64>| Some(sum? + limit? * pods);
            totals.cpu_limit = add(totals.cpu_limit, p.resources.cpu_limit);
            totals.memory_limit = add(totals.memory_limit, p.resources.memory_limit);
        }
        totals.at = totals.at.max(Some(p.at));
    }
    totals
}

/// An Environment's quota on requests: `requests.cpu` (cores) and
/// `requests.memory` (bytes), either absent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quota {
    pub cpu: Option<f64>,
    pub memory: Option<f64>,
}

/// An Application's or Environment's `status.usage` from the sums of its Services.
pub fn totals_usage(totals: &Totals, quota: Quota) -> Usage {
    let resource = |used: f64,
                    requested: f64,
                    limit: Option<f64>,
                    quota: Option<f64>,
                    text: fn(f64) -> String| ResourceUsage {
        used: text(used),
        peak_pod: None,
        requested: (requested > 0.0).then(|| text(requested)),
        limit: limit.filter(|_| totals.pods > 0).map(text),
        percent_of_requested: percent(used, requested),
        quota: quota.map(text),
        percent_of_quota: quota.and_then(|q| percent(used, q)),
        low_since: None,
        low_peak_pod: None,
    };
    Usage {
        available: true,
        reason: None,
        pods: totals.pods as i32,
        cpu: Some(resource(
            totals.cpu,
            totals.cpu_requested,
            totals.cpu_limit,
            quota.cpu,
            cpu_text,
        )),
        memory: Some(resource(
            totals.memory,
            totals.memory_requested,
            totals.memory_limit,
            quota.memory,
            memory_text,
        )),
        idle_since: None,
        sampled_at: totals.at.map(rfc3339),
    }
}

/// Fold one poll into the records: every Service of `snapshot` gets its sample
/// (none measured: zero pods) against its `ready` pods (its Deployment's ready
/// replicas; absent: none), a Service seen for the first time starts from
/// what its status shows, and records of Services gone are dropped. Returns
/// the Services whose shown figures changed (to wake), but not a Service first
/// seen without pods: zeros are news to nobody, and its next reconcile (its
/// pods starting, a change) writes them anyway.
pub fn fold(
    snapshot: &crate::resolve::Snapshot,
    records: &mut BTreeMap<ServiceKey, Record>,
    samples: &BTreeMap<ServiceKey, Sample>,
    ready: &BTreeMap<ServiceKey, u32>,
    now: Timestamp,
    thresholds: &Thresholds,
    steps: &Steps,
) -> Vec<ServiceKey> {
    let mut changed = Vec::new();
    let mut present = std::collections::BTreeSet::new();
    for service in &snapshot.services {
        let namespace = service.metadata.namespace.clone().unwrap_or_default();
        let key = (namespace, service.metadata.name.clone().unwrap_or_default());
        let environment = snapshot.environment_of(&key.0, "Service").ok();
        let resources = crate::cost::pod_resources(service, environment);
        let fresh = !records.contains_key(&key);
        let record = records.entry(key.clone()).or_insert_with(|| {
            service
                .status
                .as_ref()
                .and_then(|s| s.usage.as_ref())
                .and_then(|u| Record::from_status(u, resources))
                .unwrap_or_default()
        });
        let sample = samples.get(&key).copied().unwrap_or_default();
        record.latest = sample;
        let ready = ready.get(&key).copied().unwrap_or(0);
        if record.observe_poll(sample, ready, resources, now, thresholds, steps)
            && !(fresh && sample.pods == 0)
        {
            changed.push(key.clone());
        }
        present.insert(key);
    }
    records.retain(|key, _| present.contains(key));
    changed
}

/// Whether the cluster serves `metrics.k8s.io`, as the poller last found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Availability {
    /// Not asked yet: status carries no usage at all.
    #[default]
    Unknown,
    Available,
    /// Why there are no figures.
    Unavailable(String),
}

/// The poller's records and what it found of the metrics API, shared with the
/// reconcilers (who only read).
#[derive(Clone, Default)]
pub struct UsageStore {
    state: Arc<RwLock<UsageState>>,
}

#[derive(Default)]
struct UsageState {
    availability: Availability,
    records: BTreeMap<ServiceKey, Record>,
}

impl UsageStore {
    pub fn availability(&self) -> Availability {
        self.state.read().expect("usage lock").availability.clone()
    }

    /// Set what the poller found; true when it changed.
    pub fn set_availability(&self, availability: Availability) -> bool {
        let mut state = self.state.write().expect("usage lock");
        let changed = state.availability != availability;
        state.availability = availability;
        changed
    }

    /// Change the records (the poller, once per poll).
    pub fn update<R>(&self, change: impl FnOnce(&mut BTreeMap<ServiceKey, Record>) -> R) -> R {
        change(&mut self.state.write().expect("usage lock").records)
    }

    /// The latest poll's sample of each of `services` (namespace, name), in
    /// their order; None for one the poller has not seen, and for all while the
    /// cluster serves no metrics. One read of the records, so a caller can go
    /// on without holding them (a scrape streams what it read).
    pub fn latest<'a>(
        &self,
        services: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Vec<Option<Sample>> {
        let state = self.state.read().expect("usage lock");
        let available = state.availability == Availability::Available;
        services
            .into_iter()
            .map(|(namespace, name)| {
                let key = (namespace.to_string(), name.to_string());
                available
                    .then(|| state.records.get(&key).map(|r| r.latest))
                    .flatten()
            })
            .collect()
    }

    /// What a Service shows of its own, if anything.
    pub fn published(&self, namespace: &str, service: &str) -> Option<Published> {
        let state = self.state.read().expect("usage lock");
        state
            .records
            .get(&(namespace.to_string(), service.to_string()))?
            .published
            .clone()
    }

    /// A Service's `status.usage`: none before the first poll.
    pub fn service(&self, namespace: &str, service: &str) -> Option<Usage> {
        match self.availability() {
            Availability::Unknown => None,
            Availability::Unavailable(reason) => Some(unavailable(reason)),
            Availability::Available => Some(
                self.published(namespace, service)
                    .map(|shown| service_usage(&shown))
                    .unwrap_or(Usage {
                        available: true,
                        ..Usage::default()
                    }),
            ),
        }
    }

    /// What a Service's status shows and the figures its insights judge. Until
    /// the first poll, both come from its status as it is (a restarted
    /// controller neither drops nor rewrites them, nor flips its usage insights).
    pub fn shown(
        &self,
        service: &crate::api::Service,
        environment: Option<&crate::api::Environment>,
    ) -> (Option<Usage>, Option<Published>) {
        let namespace = service.metadata.namespace.as_deref().unwrap_or_default();
        let name = service.metadata.name.as_deref().unwrap_or_default();
        match self.availability() {
            Availability::Unknown => {
                let usage = service.status.as_ref().and_then(|s| s.usage.clone());
                let resources = crate::cost::pod_resources(service, environment);
                let published = usage
                    .as_ref()
                    .and_then(|u| Record::from_status(u, resources))
                    .and_then(|r| r.published);
                (usage, published)
            }
            Availability::Unavailable(_) => (self.service(namespace, name), None),
            Availability::Available => (
                self.service(namespace, name),
                self.published(namespace, name),
            ),
        }
    }

    /// The sums of several Services (an Application's, an Environment's).
    pub fn sum<'a>(
        &self,
        namespace: &str,
        services: impl IntoIterator<Item = &'a str>,
        quota: Quota,
    ) -> Option<Usage> {
        match self.availability() {
            Availability::Unknown => None,
            Availability::Unavailable(reason) => Some(unavailable(reason)),
            Availability::Available => {
                let shown: Vec<Published> = services
                    .into_iter()
                    .filter_map(|s| self.published(namespace, s))
                    .collect();
                Some(totals_usage(&totals(&shown), quota))
            }
        }
    }
}

fn unavailable(reason: String) -> Usage {
    Usage {
        available: false,
        reason: Some(reason),
        ..Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(service: &str, millicores: f64, mib: f64) -> PodUsage {
        PodUsage {
            namespace: "shop".into(),
            service: service.into(),
            cpu: millicores / 1000.0,
            memory: mib * MIB,
        }
    }

    fn at(minutes: i64) -> Timestamp {
        Timestamp::UNIX_EPOCH + SignedDuration::from_mins(minutes)
    }

    fn resources(cpu_request: f64, memory_mib: f64) -> PodResources {
        PodResources {
            cpu_request,
            memory_request: memory_mib * MIB,
            cpu_limit: None,
            memory_limit: Some(2.0 * memory_mib * MIB),
        }
    }

    fn sample(pods: u32, millicores_each: f64, mib_each: f64) -> Sample {
        aggregate((0..pods).map(|_| pod("api", millicores_each, mib_each)))
            .into_values()
            .next()
            .unwrap_or_default()
    }

    #[test]
    fn pods_are_summed_per_service_with_the_busiest_pod_kept() {
        let samples = aggregate([
            pod("api", 100.0, 64.0),
            pod("api", 300.0, 32.0),
            pod("web", 5.0, 10.0),
        ]);
        let api = samples[&("shop".to_string(), "api".to_string())];
        assert_eq!(api.pods, 2);
        assert!((api.cpu - 0.4).abs() < 1e-9);
        assert_eq!(api.peak_pod_cpu, 0.3);
        assert_eq!(api.peak_pod_memory, 64.0 * MIB);
        assert_eq!(samples.len(), 2);
    }

    #[test]
    fn a_figure_moves_by_ten_percent_and_at_least_the_absolute_step() {
        assert!(!moved(0.100, 0.109, 0.10, 0.005));
        assert!(moved(0.100, 0.110, 0.10, 0.005));
        assert!(moved(0.100, 0.090, 0.10, 0.005));
        // Near zero the absolute step rules: 1m → 4m is no step, 0 → 5m is.
        assert!(!moved(0.001, 0.004, 0.10, 0.005));
        assert!(moved(0.0, 0.005, 0.10, 0.005));
    }

    #[test]
    fn steady_usage_with_jitter_below_the_step_publishes_once() {
        let mut record = Record::default();
        let (t, s) = (Thresholds::default(), Steps::default());
        let mut writes = 0;
        // One hour of polls every minute, jitter of ±5 % around 200m and 100Mi.
        for minute in 0..60 {
            let jitter = if minute % 2 == 0 { 1.05 } else { 0.95 };
            let sample = sample(2, 200.0 * jitter, 100.0 * jitter);
            writes +=
                usize::from(record.observe(sample, resources(0.25, 128.0), at(minute), &t, &s));
        }
        assert_eq!(writes, 1, "steady usage costs one write, the first");
    }

    #[test]
    fn a_step_publishes_and_the_status_shows_the_new_figures() {
        let mut record = Record::default();
        let (t, s) = (Thresholds::default(), Steps::default());
        assert!(record.observe(sample(1, 100.0, 64.0), resources(0.5, 256.0), at(0), &t, &s));
        assert!(!record.observe(sample(1, 105.0, 64.0), resources(0.5, 256.0), at(1), &t, &s));
        assert!(record.observe(sample(1, 150.0, 64.0), resources(0.5, 256.0), at(2), &t, &s));
        let usage = service_usage(record.published.as_ref().unwrap());
        let cpu = usage.cpu.unwrap();
        assert_eq!(cpu.used, "150m");
        assert_eq!(cpu.requested.as_deref(), Some("500m"));
        assert_eq!(cpu.percent_of_requested, Some(30));
        assert_eq!(cpu.limit, None, "no CPU limit, none shown");
        let memory = usage.memory.unwrap();
        assert_eq!(
            (memory.used.as_str(), memory.limit.as_deref()),
            ("64Mi", Some("512Mi"))
        );
        assert_eq!(usage.sampled_at.as_deref(), Some("1970-01-01T00:02:00Z"));
    }

    #[test]
    fn usage_far_below_requests_becomes_an_insight_only_once_sustained() {
        let t = Thresholds {
            low_for: SignedDuration::from_mins(30),
            ..Thresholds::default()
        };
        let s = Steps::default();
        let mut record = Record::default();
        let r = resources(1.0, 1024.0);
        // 50m of a 1000m request: 5 %, under 25 %; memory at half: not low.
        assert!(record.observe(sample(2, 50.0, 512.0), r, at(0), &t, &s));
        for minute in 1..30 {
            let wrote = record.observe(sample(2, 50.0, 512.0), r, at(minute), &t, &s);
            assert!(!wrote, "minute {minute}");
        }
        assert!(
            record.observe(sample(2, 52.0, 512.0), r, at(30), &t, &s),
            "the insight starts: a write"
        );
        let shown = record.published.clone().unwrap();
        let verdicts = shown.verdicts(&t);
        assert!(verdicts.cpu_over_provisioned && !verdicts.memory_over_provisioned);
        let cpu = service_usage(&shown).cpu.unwrap();
        assert_eq!(cpu.low_since.as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(cpu.low_peak_pod.as_deref(), Some("52m"));
        // A busy minute ends the streak and the insight: a write.
        assert!(record.observe(sample(2, 400.0, 512.0), r, at(31), &t, &s));
        assert!(!record.published.unwrap().verdicts(&t).cpu_over_provisioned);
    }

    #[test]
    fn a_saving_below_the_minimum_is_no_streak() {
        let t = Thresholds {
            low_min_saving_millicores: 100,
            low_min_saving_mib: 64,
            ..Thresholds::default()
        };
        let mut record = Record::default();
        // 1m of a 50m request is 2 %, but saves only 49m; 1Mi of 128Mi saves 127Mi.
        record.observe(
            sample(1, 1.0, 1.0),
            resources(0.05, 128.0),
            at(0),
            &t,
            &Steps::default(),
        );
        assert_eq!(record.cpu_low, None);
        assert!(record.memory_low.is_some());
    }

    #[test]
    fn no_cpu_for_the_idle_period_is_idle_and_no_pods_break_the_streak() {
        let t = Thresholds {
            idle_for: SignedDuration::from_mins(10),
            ..Thresholds::default()
        };
        let s = Steps::default();
        let mut record = Record::default();
        let r = resources(0.1, 64.0);
        record.observe(sample(1, 0.0, 20.0), r, at(0), &t, &s);
        record.observe(sample(1, 1.0, 20.0), r, at(5), &t, &s);
        assert!(record.observe(sample(1, 0.0, 20.0), r, at(10), &t, &s));
        assert!(record.published.clone().unwrap().verdicts(&t).idle);
        // Stopped: no pods measured, no streak.
        assert!(record.observe(Sample::default(), r, at(11), &t, &s));
        assert_eq!(record.idle_since, None);
        record.observe(sample(1, 0.0, 20.0), r, at(12), &t, &s);
        assert_eq!(record.idle_since, Some(at(12)));
    }

    #[test]
    fn a_record_read_back_from_status_is_exactly_the_one_kept_in_memory() {
        // Figures as metrics-server reports them: nanocores and KiB, nothing round;
        // and a poll in the middle of a second.
        let t = Thresholds {
            low_for: SignedDuration::from_secs(20),
            ..Thresholds::default()
        };
        let s = Steps::default();
        let r = resources(1.0, 1024.0);
        let odd = |cpu: f64, mib: f64| Sample {
            pods: 2,
            cpu: 2.0 * cpu,
            memory: 2.0 * mib * MIB,
            peak_pod_cpu: cpu,
            peak_pod_memory: mib * MIB,
        };
        let mut kept = Record::default();
        let start = at(0) + SignedDuration::from_millis(400);
        kept.observe(odd(0.014_499_7, 100.4), r, start, &t, &s);
        kept.observe(
            odd(0.014_611, 100.6),
            r,
            start + SignedDuration::from_secs(30),
            &t,
            &s,
        );
        let shown = kept.published.clone().unwrap();
        assert!(shown.verdicts(&t).cpu_over_provisioned);
        let status = service_usage(&shown);
        let read = Record::from_status(&status, r).unwrap();
        assert_eq!(read.published.as_ref(), Some(&shown));
        assert_eq!(service_usage(read.published.as_ref().unwrap()), status);
        assert_eq!(
            totals([read.published.as_ref().unwrap()]),
            totals([&shown]),
            "an Application's or Environment's sums do not move either"
        );
        assert_eq!(
            (read.cpu_low, read.idle_since),
            (kept.cpu_low, kept.idle_since)
        );
        // Idle (no CPU at all) reads back the same way, verdict included.
        let mut idle = Record::default();
        idle.observe(odd(0.0, 100.4), r, start, &t, &s);
        idle.observe(
            odd(0.0, 100.6),
            r,
            start + SignedDuration::from_hours(80),
            &t,
            &s,
        );
        let shown = idle.published.clone().unwrap();
        assert!(shown.verdicts(&t).idle);
        let read = Record::from_status(&service_usage(&shown), r).unwrap();
        assert_eq!(read.published, Some(shown));
        assert_eq!(read.idle_since, idle.idle_since);
    }

    #[test]
    fn pods_ready_but_not_measured_yet_keep_what_status_shows_for_a_while() {
        let t = Thresholds::default();
        let s = Steps::default();
        let r = resources(0.5, 256.0);
        let mut record = Record::default();
        record.observe_poll(sample(2, 20.0, 100.0), 2, r, at(0), &t, &s);
        let shown = record.published.clone();
        let streak = record.cpu_low;
        assert!(streak.is_some());
        // A rollout: the new pods are ready, metrics-server has measured none or one.
        assert!(!record.observe_poll(Sample::default(), 2, r, at(1), &t, &s));
        assert!(!record.observe_poll(sample(1, 20.0, 100.0), 2, r, at(2), &t, &s));
        assert_eq!((&record.published, record.cpu_low), (&shown, streak));
        // Measured again at the same use: nothing to write.
        assert!(!record.observe_poll(sample(2, 21.0, 100.0), 2, r, at(3), &t, &s));
        assert_eq!(record.unmeasured_since, None);
        // Still unmeasured past `unmeasured_for`: the pods measured are shown.
        assert!(!record.observe_poll(sample(1, 20.0, 100.0), 2, r, at(4), &t, &s));
        assert!(record.observe_poll(sample(1, 20.0, 100.0), 2, r, at(7), &t, &s));
        assert_eq!(record.published.as_ref().unwrap().sample.pods, 1);
        // More measured than ready (pods still terminating, or not ready) is no gap.
        assert!(record.observe_poll(sample(3, 20.0, 100.0), 2, r, at(8), &t, &s));
        // Stopped: nothing ready, nothing measured, shown at once.
        assert!(record.observe_poll(Sample::default(), 0, r, at(9), &t, &s));
    }

    #[test]
    fn a_restart_in_a_rollout_shows_no_service_without_pods() {
        let mut snapshot = crate::resolve::tests::shop();
        let key = (
            snapshot.services[0].metadata.namespace.clone().unwrap(),
            snapshot.services[0].metadata.name.clone().unwrap(),
        );
        let environment = snapshot.environment_of(&key.0, "Service").ok().cloned();
        let r = crate::cost::pod_resources(&snapshot.services[0], environment.as_ref());
        let service = std::sync::Arc::make_mut(&mut snapshot.services[0]);
        let (t, s) = (Thresholds::default(), Steps::default());
        let mut before = Record::default();
        before.observe(sample(2, 20.0, 100.0), r, at(0), &t, &s);
        let shown = before.published.clone().unwrap();
        service.status = Some(crate::api::ServiceStatus {
            usage: Some(service_usage(&shown)),
            ..Default::default()
        });
        // The new controller's first poll: the Service's two new pods are ready
        // but not measured yet.
        let mut records = BTreeMap::new();
        let ready = BTreeMap::from([(key.clone(), 2)]);
        let woken = fold(
            &snapshot,
            &mut records,
            &BTreeMap::new(),
            &ready,
            at(5),
            &t,
            &s,
        );
        assert!(!woken.contains(&key));
        assert_eq!(records[&key].published.as_ref(), Some(&shown));
    }

    #[test]
    fn a_record_read_back_from_status_writes_nothing_until_a_figure_moves() {
        let t = Thresholds::default();
        let s = Steps::default();
        let r = resources(0.5, 256.0);
        let mut first = Record::default();
        first.observe(sample(2, 20.0, 100.0), r, at(0), &t, &s);
        let status = service_usage(first.published.as_ref().unwrap());
        let mut restarted = Record::from_status(&status, r).unwrap();
        assert_eq!(restarted.cpu_low.map(|s| s.since), Some(at(0)));
        assert!(!restarted.observe(sample(2, 21.0, 101.0), r, at(90), &t, &s));
        assert!(restarted.observe(sample(2, 40.0, 101.0), r, at(91), &t, &s));
        assert_eq!(Record::from_status(&unavailable("x".into()), r), None);
    }

    #[test]
    fn sums_add_services_and_an_environment_shows_its_quota() {
        let one = Published {
            sample: sample(2, 100.0, 100.0),
            resources: resources(0.25, 128.0),
            at: at(1),
            cpu_low: None,
            memory_low: None,
            idle_since: None,
        };
        let other = Published {
            sample: sample(1, 300.0, 300.0),
            resources: PodResources {
                memory_limit: None,
                ..resources(0.5, 512.0)
            },
            at: at(3),
            ..one.clone()
        };
        let sums = totals([&one, &other]);
        let usage = totals_usage(
            &sums,
            Quota {
                cpu: Some(4.0),
                memory: None,
            },
        );
        let cpu = usage.cpu.unwrap();
        assert_eq!(usage.pods, 3);
        assert_eq!(cpu.used, "500m");
        assert_eq!(cpu.requested.as_deref(), Some("1000m"));
        assert_eq!(
            (cpu.quota.as_deref(), cpu.percent_of_quota),
            (Some("4000m"), Some(12))
        );
        let memory = usage.memory.unwrap();
        assert_eq!(
            memory.limit, None,
            "one Service's pods have no memory limit"
        );
        assert_eq!(memory.quota, None);
        assert_eq!(usage.sampled_at.as_deref(), Some("1970-01-01T00:03:00Z"));
    }

    #[test]
    fn a_poll_wakes_new_and_moved_services_and_forgets_those_gone() {
        let snapshot = crate::resolve::tests::shop();
        let services: Vec<ServiceKey> = snapshot
            .services
            .iter()
            .map(|s| {
                (
                    s.metadata.namespace.clone().unwrap(),
                    s.metadata.name.clone().unwrap(),
                )
            })
            .collect();
        assert!(services.len() >= 2, "the fixture has Services");
        let (t, s) = (Thresholds::default(), Steps::default());
        let mut records = BTreeMap::new();
        records.insert(("gone".to_string(), "old".to_string()), Record::default());
        let mut samples = BTreeMap::new();
        samples.insert(services[0].clone(), sample(1, 100.0, 50.0));
        let first = fold(
            &snapshot,
            &mut records,
            &samples,
            &BTreeMap::new(),
            at(0),
            &t,
            &s,
        );
        assert_eq!(
            first,
            [services[0].clone()],
            "only a Service with pods is news"
        );
        assert!(!records.contains_key(&("gone".to_string(), "old".to_string())));
        assert_eq!(
            records[&services[1]]
                .published
                .as_ref()
                .unwrap()
                .sample
                .pods,
            0
        );
        samples.insert(services[0].clone(), sample(1, 200.0, 50.0));
        let second = fold(
            &snapshot,
            &mut records,
            &samples,
            &BTreeMap::new(),
            at(1),
            &t,
            &s,
        );
        assert_eq!(second, [services[0].clone()]);
    }

    #[test]
    fn before_the_first_poll_a_service_shows_what_its_status_already_says() {
        let mut service: crate::api::Service = serde_yaml::from_str(
            "apiVersion: paved.dev/v1alpha1\nkind: Service\nmetadata: {name: api, namespace: shop}\nspec: {application: shop, image: a:1, resources: {requests: {cpu: '1'}}}",
        )
        .unwrap();
        let store = UsageStore::default();
        assert_eq!(store.shown(&service, None), (None, None));
        let mut record = Record::default();
        let r = crate::cost::pod_resources(&service, None);
        let t = Thresholds {
            low_for: SignedDuration::ZERO,
            ..Thresholds::default()
        };
        record.observe(sample(1, 10.0, 10.0), r, at(0), &t, &Steps::default());
        let written = service_usage(record.published.as_ref().unwrap());
        service.status = Some(crate::api::ServiceStatus {
            usage: Some(written.clone()),
            ..Default::default()
        });
        let (usage, published) = store.shown(&service, None);
        assert_eq!(usage, Some(written));
        assert!(published.unwrap().verdicts(&t).cpu_over_provisioned);
        store.set_availability(Availability::Available);
        assert_eq!(
            store.shown(&service, None).1,
            None,
            "the store rules once it polled"
        );
    }

    #[test]
    fn the_store_says_nothing_before_the_first_poll_and_why_there_are_no_figures_after() {
        let store = UsageStore::default();
        assert_eq!(store.service("shop", "api"), None);
        assert!(store.set_availability(Availability::Unavailable("no metrics-server".into())));
        assert!(!store.set_availability(Availability::Unavailable("no metrics-server".into())));
        let usage = store.service("shop", "api").unwrap();
        assert!(!usage.available);
        assert_eq!(usage.reason.as_deref(), Some("no metrics-server"));
        assert_eq!(store.sum("shop", ["api"], Quota::default()), Some(usage));
        store.set_availability(Availability::Available);
        assert_eq!(store.service("shop", "api").unwrap().pods, 0);
    }
}
