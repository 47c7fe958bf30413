//! Leader election on a `coordination.k8s.io` Lease, with client-go's semantics (its
//! `leaderelection` package and `resourcelock.LeaseLock`): a candidate takes the Lease when
//! it is free or its holder has not renewed it for `leaseDurationSeconds` as *this*
//! candidate observed it (local clock, no trust in other clocks); the leader renews every
//! `retryPeriod` and steps down when it could not renew for `renewDeadline`. Every write
//! is an update pinned to the Lease's resourceVersion, so two candidates never both win.
//! `leaseTransitions` counts changes of holder.
//!
//! The one elector of skiff: the scheduler (`kube-system/kube-scheduler`) and the controller
//! set (`kube-system/kube-controller-manager`) both run on it. It knows nothing of what the
//! leader does. No maintained crate matched these semantics on kube 5 (see ADR 0017, leader
//! election).

#![forbid(unsafe_code)]

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};

/// Timing of an election (kube-controller-manager's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    /// Where the Lease lives (`kube-system`).
    pub namespace: String,
    /// Its name (`kube-controller-manager`).
    pub name: String,
    /// This candidate's holder identity.
    pub identity: String,
    /// How long a holder's claim lasts after its last renewal.
    pub lease_duration: Duration,
    /// How long a leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// How often candidates try to acquire and leaders renew.
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// Kubernetes' defaults for the Lease `kube-system/<name>`.
    pub fn new(name: &str, identity: &str) -> Self {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: name.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

/// A holder identity in client-go's form: `<hostname>_<random>`.
pub fn default_identity() -> String {
    use rand::Rng;
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "skiff".into());
    let suffix: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(10)
        .map(|c| char::from(c).to_ascii_lowercase())
        .collect();
    format!("{host}_{suffix}")
}

/// One candidate in one election.
pub struct Elector {
    api: Api<Lease>,
    config: LeaseConfig,
    /// The last record seen and when this candidate saw it change.
    observed: Option<(LeaseSpec, Instant)>,
}

impl Elector {
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            api: Api::namespaced(client, &config.namespace),
            config,
            observed: None,
        }
    }

    /// Runs `lead()` whenever this candidate is the leader, until `shutdown` completes;
    /// then releases the Lease if it holds it. When leadership is lost `lead()`'s future is
    /// dropped (everything it started stops) and the candidate competes again.
    pub async fn run<F, Fut>(mut self, mut lead: F, shutdown: impl Future<Output = ()>)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = ()>,
    {
        tokio::pin!(shutdown);
        loop {
            // Candidate: try every retryPeriod.
            loop {
                if self.try_acquire_or_renew().await {
                    break;
                }
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(jittered(self.config.retry_period)) => {}
                }
            }
            tracing::info!(lease = %self.config.name, identity = %self.config.identity, "became leader");
            // Boxed so that dropping it stops the work before the Lease is given up.
            let mut work = Box::pin(lead());
            let mut last_renew = Instant::now();
            let mut work_ended = false;
            let lost = loop {
                tokio::select! {
                    _ = &mut shutdown => break false,
                    // The work ended by itself: keep renewing the lease until shutdown.
                    _ = &mut work, if !work_ended => work_ended = true,
                    _ = tokio::time::sleep(self.config.retry_period) => {
                        if self.try_acquire_or_renew().await {
                            last_renew = Instant::now();
                        } else if last_renew.elapsed() >= self.config.renew_deadline {
                            break true;
                        }
                    }
                }
            };
            drop(work);
            if !lost {
                self.release().await;
                return;
            }
            tracing::warn!(lease = %self.config.name, identity = %self.config.identity, "leadership lost");
        }
    }

    fn record(&self, old: Option<&LeaseSpec>) -> LeaseSpec {
        let now = MicroTime(Timestamp::now());
        let mine =
            old.and_then(|o| o.holder_identity.as_deref()) == Some(self.config.identity.as_str());
        let transitions = old.and_then(|o| o.lease_transitions).unwrap_or(0);
        LeaseSpec {
            holder_identity: Some(self.config.identity.clone()),
            lease_duration_seconds: Some(self.config.lease_duration.as_secs().max(1) as i32),
            acquire_time: if mine {
                old.and_then(|o| o.acquire_time.clone())
            } else {
                Some(now.clone())
            },
            renew_time: Some(now),
            lease_transitions: Some(if mine || old.is_none() {
                transitions
            } else {
                transitions + 1
            }),
            ..Default::default()
        }
    }

    /// client-go's `tryAcquireOrRenew`.
    pub async fn try_acquire_or_renew(&mut self) -> bool {
        let lease = match self.api.get_opt(&self.config.name).await {
            Ok(l) => l,
            Err(e) => {
                tracing::debug!(error = %e, "reading the lease failed");
                return false;
            }
        };
        let Some(mut lease) = lease else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.config.name.clone()),
                    namespace: Some(self.config.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(self.record(None)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(created) => {
                    self.observe(created.spec.unwrap_or_default());
                    true
                }
                Err(e) => {
                    tracing::debug!(error = %e, "creating the lease failed");
                    false
                }
            };
        };
        let old = lease.spec.clone().unwrap_or_default();
        self.observe(old.clone());
        let holder = old.holder_identity.as_deref().unwrap_or("");
        let held_by_other = !holder.is_empty() && holder != self.config.identity;
        if held_by_other {
            let duration =
                Duration::from_secs(old.lease_duration_seconds.unwrap_or(0).max(0) as u64);
            let seen = self
                .observed
                .as_ref()
                .map(|(_, t)| *t)
                .unwrap_or_else(Instant::now);
            if seen.elapsed() < duration {
                return false;
            }
        }
        // Taking a released or expired Lease counts a transition (`record` sees another holder).
        lease.spec = Some(self.record(Some(&old)));
        match self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            Ok(updated) => {
                self.observe(updated.spec.unwrap_or_default());
                true
            }
            Err(e) => {
                tracing::debug!(error = %e, "updating the lease failed");
                false
            }
        }
    }

    fn observe(&mut self, spec: LeaseSpec) {
        if self.observed.as_ref().map(|(s, _)| s) != Some(&spec) {
            self.observed = Some((spec, Instant::now()));
        }
    }

    /// Gives the Lease up (client-go's `ReleaseOnCancel`): no holder, a one-second duration.
    async fn release(&mut self) {
        let Ok(Some(mut lease)) = self.api.get_opt(&self.config.name).await else {
            return;
        };
        let old = lease.spec.clone().unwrap_or_default();
        if old.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return;
        }
        let now = MicroTime(Timestamp::now());
        lease.spec = Some(LeaseSpec {
            holder_identity: None,
            lease_duration_seconds: Some(1),
            acquire_time: Some(now.clone()),
            renew_time: Some(now),
            lease_transitions: old.lease_transitions,
            ..Default::default()
        });
        if let Err(e) = self
            .api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
        {
            tracing::debug!(error = %e, "releasing the lease failed");
        }
    }
}

/// `d` plus up to 20 % (client-go's JitterFactor 1.2).
fn jittered(d: Duration) -> Duration {
    use rand::Rng;
    d.mul_f64(1.0 + rand::thread_rng().gen_range(0.0..0.2))
}
