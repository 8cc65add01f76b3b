//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are safe:
//! only the holder runs the controllers, and it never writes once another
//! replica could have taken the Lease.
//!
//! The semantics are client-go's `leaderelection`: the holder renews every
//! `retry_period`; a standby takes the Lease once it has seen the record
//! unchanged for `lease_duration` (on its own monotonic clock) or once it is
//! released; every update carries the resourceVersion it read, so two replicas
//! cannot both win a round. On top of that, each successful renewal grants the
//! write fence (`fence.rs`) until its start plus `renew_deadline`: when the
//! deadline passes without a renewal (API server down, process paused) the
//! controllers' writes are refused at once and the controllers are stopped; the
//! process keeps running, serves `/healthz`, and competes again. On shutdown the
//! holder revokes the fence, lets its in-flight writes land, then releases the
//! Lease so a standby takes over within one retry period.
//!
//! Hand-written rather than a crate: the maintained Lease crates for kube-rs
//! renew and report leadership but do not fence writes against a pause past the
//! renew deadline, which is the guarantee that matters here.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use tokio::time::Instant;

use super::fence::Fence;
use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    /// How long a standby waits, after it last saw the Lease change, before taking it.
    pub lease_duration: Duration,
    /// How long the holder keeps writing after the start of its last successful
    /// renewal; past it, it stops its controllers. Shorter than `lease_duration`.
    pub renew_deadline: Duration,
    /// Pause between two attempts to acquire or renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// `retry_period < renew_deadline < lease_duration`, else two replicas could write at once
    /// (or the holder could never renew in time).
    pub fn check(&self) -> std::result::Result<(), String> {
        if self.retry_period.is_zero() {
            return Err("the retry period must be positive".into());
        }
        if self.renew_deadline >= self.lease_duration {
            return Err(format!(
                "the renew deadline ({:?}) must be shorter than the lease duration ({:?})",
                self.renew_deadline, self.lease_duration
            ));
        }
        if self.retry_period >= self.renew_deadline {
            return Err(format!(
                "the retry period ({:?}) must be shorter than the renew deadline ({:?})",
                self.retry_period, self.renew_deadline
            ));
        }
        if self.lease_duration.as_secs() < 1 {
            return Err("the lease duration must be at least one second".into());
        }
        Ok(())
    }
}

/// The Lease record as this replica last saw it change, on its monotonic clock:
/// a standby judges expiry by how long the record has stayed unchanged, never by
/// comparing the holder's clock (`renewTime`) with its own.
#[derive(Debug)]
struct Observed {
    holder: Option<String>,
    renew_time: Option<MicroTime>,
    at: Instant,
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
    fence: Arc<Fence>,
    observed: Mutex<Option<Observed>>,
}

impl LeaderElector {
    /// `client` must not be fenced (its writes renew the Lease); `fence` is granted
    /// on every successful renewal and revoked when leadership ends.
    pub fn new(client: Client, config: LeaseConfig, fence: Arc<Fence>) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
            fence,
            observed: Mutex::new(None),
        }
    }

    /// Wait until this replica holds the Lease.
    pub async fn acquire(&self) {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired leadership");
                    return;
                }
                Ok(false) => tracing::debug!("another replica leads; standing by"),
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(self.config.retry_period).await;
        }
    }

    /// Renew every retry period; return (with the fence revoked) when another
    /// replica took the Lease or when the renew deadline passed without a
    /// successful renewal, whichever comes first. The caller then stops the
    /// controllers and competes again.
    pub async fn hold(&self) {
        loop {
            let Some(deadline) = self.fence.valid_until() else {
                return;
            };
            tokio::select! {
                biased;
                () = tokio::time::sleep_until(deadline) => {
                    self.fence.revoke();
                    tracing::warn!(renew_deadline = ?self.config.renew_deadline, "could not renew the lease before the renew deadline; stopping the controllers");
                    return;
                }
                () = tokio::time::sleep(self.config.retry_period) => {}
            }
            match tokio::time::timeout_at(deadline, self.try_acquire_or_renew()).await {
                Ok(Ok(true)) => {}
                Ok(Ok(false)) => {
                    self.fence.revoke();
                    tracing::warn!("leadership lost to another replica; stopping the controllers");
                    return;
                }
                Ok(Err(error)) => tracing::warn!(%error, "lease renewal failed"),
                // The next round returns on the deadline.
                Err(_elapsed) => {}
            }
        }
    }

    /// Give the Lease up (on shutdown) so a standby takes over without waiting.
    /// Revoke the fence (and let allowed writes land) before calling this.
    pub async fn release(&self) {
        self.fence.revoke();
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => tracing::info!("released leadership"),
            Err(error) => tracing::warn!(%error, "could not release the lease"),
        }
    }

    /// Remember the record if it changed; `true` when it has stayed unchanged
    /// for a lease duration (its holder stopped renewing).
    fn expired(&self, spec: &LeaseSpec) -> bool {
        let mut observed = self.observed.lock().expect("lease observation lock");
        let now = Instant::now();
        let same = observed
            .as_ref()
            .is_some_and(|o| o.holder == spec.holder_identity && o.renew_time == spec.renew_time);
        if !same {
            *observed = Some(Observed {
                holder: spec.holder_identity.clone(),
                renew_time: spec.renew_time.clone(),
                at: now,
            });
        }
        let since = observed.as_ref().map(|o| o.at).unwrap_or(now);
        let duration = spec
            .lease_duration_seconds
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs)
            .unwrap_or(self.config.lease_duration);
        now.duration_since(since) > duration
    }

    /// One round of the election; `Ok(true)` when this replica holds the Lease
    /// afterwards (and the fence is then granted until the renew deadline).
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
        // The fence counts from before the request: the renewal cannot have
        // been seen by another replica earlier than this.
        let started = Instant::now();
        let now = Timestamp::now();
        let seconds = i32::try_from(self.config.lease_duration.as_secs()).unwrap_or(15);
        let existing = self
            .api
            .get_opt(&self.config.name)
            .await
            .map_err(Error::kube("read", format!("Lease {}", self.config.name)))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(MicroTime(now)),
                    renew_time: Some(MicroTime(now)),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => {
                    self.fence.grant_until(started + self.config.renew_deadline);
                    Ok(true)
                }
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(source) => Err(Error::Kube {
                    step: "create",
                    object: format!("Lease {}", lease.name_any()),
                    source,
                }),
            };
        };

        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        let mine = spec.holder_identity.as_deref() == Some(self.config.identity.as_str());
        let expired = self.expired(spec);
        if !mine && !is_free(spec) && !expired {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        // `replace` carries the resourceVersion read above: if anyone renewed or
        // took the Lease in between, this fails with 409 instead of stealing it.
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.fence.grant_until(started + self.config.renew_deadline);
                Ok(true)
            }
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(Error::Kube {
                step: "renew",
                object: format!("Lease {}", self.config.name),
                source,
            }),
        }
    }
}

/// A Lease is free when nobody holds it (never taken, or released on shutdown).
pub fn is_free(spec: &LeaseSpec) -> bool {
    spec.holder_identity.as_deref().is_none_or(str::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(duration: u64, deadline: u64, retry: u64) -> LeaseConfig {
        LeaseConfig {
            name: "paved".into(),
            namespace: "default".into(),
            identity: "me".into(),
            lease_duration: Duration::from_secs(duration),
            renew_deadline: Duration::from_secs(deadline),
            retry_period: Duration::from_secs(retry),
        }
    }

    #[test]
    fn the_renew_deadline_must_be_shorter_than_the_lease_and_longer_than_a_retry() {
        assert!(config(15, 10, 2).check().is_ok());
        assert!(config(15, 15, 2).check().is_err(), "deadline = duration");
        assert!(config(10, 15, 2).check().is_err(), "deadline > duration");
        assert!(config(15, 10, 10).check().is_err(), "retry = deadline");
        assert!(config(15, 10, 0).check().is_err(), "retry 0");
    }

    #[test]
    fn a_lease_is_free_only_when_nobody_holds_it() {
        let held = LeaseSpec {
            holder_identity: Some("other".into()),
            ..LeaseSpec::default()
        };
        assert!(!is_free(&held));
        assert!(is_free(&LeaseSpec::default()));
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..LeaseSpec::default()
        };
        assert!(is_free(&released));
    }
}
