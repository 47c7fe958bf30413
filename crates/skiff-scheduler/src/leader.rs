//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's `leaderelection`
//! does it: a candidate takes the Lease when it is free or its holder stopped renewing it
//! for `leaseDurationSeconds`, renews it every retry period, and stops leading when it could
//! not renew for the renew deadline. Writes compare on resourceVersion, so two candidates
//! never both win. On shutdown the leader releases the Lease so another takes over at once.
//!
//! A minimal implementation for the scheduler; the controller set's elector can replace it
//! behind the same [`run_elected`] call.

use std::future::Future;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Client};

/// Timing of an election (client-go's defaults: 15 s, 10 s, 2 s).
#[derive(Debug, Clone)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_deadline: Duration,
    pub retry_period: Duration,
}

impl LeaseConfig {
    /// kube-scheduler's Lease `kube-system/kube-scheduler` held by `identity`.
    pub fn scheduler(identity: String) -> Self {
        LeaseConfig {
            namespace: "kube-system".into(),
            name: "kube-scheduler".into(),
            identity,
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }
}

fn now() -> MicroTime {
    MicroTime(k8s_openapi::jiff::Timestamp::now())
}

/// The Lease record as last seen, and when this candidate saw it change. Expiry is judged
/// on this candidate's own clock (client-go's `observedTime`): the holder's `renewTime` comes
/// from another machine's clock and is only compared for change.
#[derive(Default)]
struct Observed {
    record: Option<(Option<String>, Option<MicroTime>)>,
    at: Option<Instant>,
}

/// Tries once to take or renew the Lease; true when this candidate holds it afterwards.
async fn try_acquire(
    api: &Api<Lease>,
    cfg: &LeaseConfig,
    seen: &mut Observed,
) -> Result<bool, kube::Error> {
    let spec = |transitions: i32, acquired: Option<MicroTime>| LeaseSpec {
        holder_identity: Some(cfg.identity.clone()),
        lease_duration_seconds: Some(cfg.lease_duration.as_secs().max(1) as i32),
        acquire_time: acquired.or_else(|| Some(now())),
        renew_time: Some(now()),
        lease_transitions: Some(transitions),
        ..Default::default()
    };
    let Some(mut lease) = api.get_opt(&cfg.name).await? else {
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some(cfg.name.clone()),
                namespace: Some(cfg.namespace.clone()),
                ..Default::default()
            },
            spec: Some(spec(0, None)),
        };
        return match api.create(&PostParams::default(), &lease).await {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
            Err(e) => Err(e),
        };
    };
    let current = lease.spec.clone().unwrap_or_default();
    let holder = current.holder_identity.clone().unwrap_or_default();
    let ours = holder == cfg.identity;
    let record = Some((current.holder_identity.clone(), current.renew_time.clone()));
    if seen.record != record {
        seen.record = record;
        seen.at = Some(Instant::now());
    }
    let duration = Duration::from_secs(current.lease_duration_seconds.unwrap_or(15).max(1) as u64);
    let expired = seen.at.is_none_or(|at| at.elapsed() >= duration);
    if !ours && !holder.is_empty() && !expired {
        return Ok(false);
    }
    let transitions = current.lease_transitions.unwrap_or(0) + i32::from(!ours);
    let acquired = if ours { current.acquire_time } else { None };
    lease.spec = Some(spec(transitions, acquired));
    match api.replace(&cfg.name, &PostParams::default(), &lease).await {
        Ok(written) => {
            let s = written.spec.unwrap_or_default();
            seen.record = Some((s.holder_identity, s.renew_time));
            seen.at = Some(Instant::now());
            Ok(true)
        }
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
        Err(e) => Err(e),
    }
}

/// Gives the Lease up (empty holder), if this candidate still holds it.
async fn release(api: &Api<Lease>, cfg: &LeaseConfig) {
    let Ok(Some(mut lease)) = api.get_opt(&cfg.name).await else {
        return;
    };
    let spec = lease.spec.get_or_insert_with(Default::default);
    if spec.holder_identity.as_deref() != Some(cfg.identity.as_str()) {
        return;
    }
    spec.holder_identity = None;
    spec.lease_duration_seconds = Some(1);
    spec.renew_time = Some(now());
    if let Err(e) = api.replace(&cfg.name, &PostParams::default(), &lease).await {
        tracing::debug!(error = %e, "cannot release the lease");
    }
}

/// Runs `work` while this candidate leads, until `stop` completes. `work` gets a future
/// that completes when leadership is lost (it must then stop); after losing, the candidate
/// campaigns again and starts a fresh `work`.
pub async fn run_elected<W, F>(
    client: Client,
    cfg: LeaseConfig,
    stop: impl Future<Output = ()>,
    work: W,
) where
    W: Fn(tokio::sync::oneshot::Receiver<()>) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    let api: Api<Lease> = Api::namespaced(client, &cfg.namespace);
    let mut seen = Observed::default();
    tokio::pin!(stop);
    loop {
        // Campaign.
        loop {
            match try_acquire(&api, &cfg, &mut seen).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::debug!(error = %e, "leader election: cannot reach the lease"),
            }
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(cfg.retry_period) => {}
            }
        }
        tracing::info!(lease = %cfg.name, identity = %cfg.identity, "became leader");
        let (lost_tx, lost_rx) = tokio::sync::oneshot::channel();
        let mut running = tokio::spawn(work(lost_rx));
        let mut renewed = Instant::now();
        let mut finished = false;
        let stopping = loop {
            tokio::select! {
                _ = &mut stop => break true,
                _ = &mut running => {
                    finished = true;
                    break false;
                }
                _ = tokio::time::sleep(cfg.retry_period) => {}
            }
            match try_acquire(&api, &cfg, &mut seen).await {
                Ok(true) => renewed = Instant::now(),
                Ok(false) => break false,
                Err(e) => {
                    tracing::debug!(error = %e, "leader election: renewal failed");
                    if renewed.elapsed() >= cfg.renew_deadline {
                        break false;
                    }
                }
            }
        };
        let _ = lost_tx.send(());
        if !finished {
            let _ = running.await;
        }
        if stopping {
            release(&api, &cfg).await;
            return;
        }
        tracing::warn!(lease = %cfg.name, identity = %cfg.identity, "lost leadership");
    }
}
