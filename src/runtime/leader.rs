//! Leader election on a `coordination.k8s.io/v1` Lease, so two replicas are safe:
//! only the holder runs the controllers. The holder renews every `renew_every`;
//! another replica takes over once `lease_duration` passes without a renewal.
//! A holder that cannot renew in time stops (the process exits and restarts as a
//! candidate); on shutdown the holder releases the Lease so a standby takes over
//! at once.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};

use crate::error::{Error, Result};

#[derive(Clone, Debug)]
pub struct LeaseConfig {
    pub name: String,
    pub namespace: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_every: Duration,
}

pub struct LeaderElector {
    api: Api<Lease>,
    config: LeaseConfig,
}

impl LeaderElector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        LeaderElector {
            api: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// Wait until this replica holds the Lease.
    pub async fn acquire(&self) -> Result<()> {
        loop {
            match self.try_acquire_or_renew().await {
                Ok(true) => {
                    tracing::info!(lease = %self.config.name, identity = %self.config.identity, "acquired leadership");
                    return Ok(());
                }
                Ok(false) => tracing::debug!("another replica leads; standing by"),
                Err(error) => tracing::warn!(%error, "leader election attempt failed"),
            }
            tokio::time::sleep(self.config.renew_every).await;
        }
    }

    /// Renew until renewal fails for longer than the lease duration; then return.
    pub async fn hold(&self) {
        let mut last_renewal = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(self.config.renew_every).await;
            match self.try_acquire_or_renew().await {
                Ok(true) => last_renewal = tokio::time::Instant::now(),
                Ok(false) => {
                    tracing::error!("leadership lost to another replica");
                    return;
                }
                Err(error) => tracing::warn!(%error, "lease renewal failed"),
            }
            // Stop before another replica may consider the lease expired.
            if last_renewal.elapsed() + self.config.renew_every >= self.config.lease_duration {
                tracing::error!("could not renew the lease in time");
                return;
            }
        }
    }

    /// Give the Lease up (on shutdown) so a standby takes over without waiting.
    pub async fn release(&self) {
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

    /// One round of the election; `Ok(true)` when this replica holds the Lease afterwards.
    pub async fn try_acquire_or_renew(&self) -> Result<bool> {
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
                Ok(_) => Ok(true),
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
        if !mine && !is_free(spec, now) {
            return Ok(false);
        }
        if !mine {
            spec.acquire_time = Some(MicroTime(now));
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
        }
        spec.holder_identity = Some(self.config.identity.clone());
        spec.lease_duration_seconds = Some(seconds);
        spec.renew_time = Some(MicroTime(now));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            // Someone else renewed or took it between our read and write.
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(source) => Err(Error::Kube {
                step: "renew",
                object: format!("Lease {}", self.config.name),
                source,
            }),
        }
    }
}

/// A Lease is free when nobody holds it or its holder has not renewed within its duration.
pub fn is_free(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(holder) = spec.holder_identity.as_deref() else {
        return true;
    };
    if holder.is_empty() {
        return true;
    }
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(15)));
    match &spec.renew_time {
        Some(MicroTime(renewed)) => renewed
            .checked_add(duration)
            .map(|expiry| expiry < now)
            .unwrap_or(true),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held(renewed_seconds_ago: i64) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some("other".into()),
            lease_duration_seconds: Some(15),
            renew_time: Some(MicroTime(
                Timestamp::from_second(1_000_000 - renewed_seconds_ago).unwrap(),
            )),
            ..LeaseSpec::default()
        }
    }

    #[test]
    fn a_recently_renewed_lease_is_not_free_and_an_expired_one_is() {
        let now = Timestamp::from_second(1_000_000).unwrap();
        assert!(!is_free(&held(5), now));
        assert!(is_free(&held(30), now));
        assert!(is_free(&LeaseSpec::default(), now));
    }
}
