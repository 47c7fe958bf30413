//! Renewal of the API server's kubelet-client certificate (the identity it presents to every
//! node's kubelet API), the way nodes renew theirs: once 70–90 % (random) of its lifetime has
//! passed since it was issued, a new one from the cluster CA valid for
//! `--cluster-signing-duration` replaces it on disk and in the kubelet client. A certificate
//! that would outlive that duration (one made before the flag was lowered, or by an older
//! skiff, which made them for centuries) counts as living for the duration from its issue.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::pki::Pki;
use crate::router::ApiState;

/// How long to wait after a failed renewal before trying again.
const RETRY: Duration = Duration::from_secs(5);

/// When the certificate issued at `issued`, valid until `not_after`, is renewed under a
/// signing duration of `lifetime`, at `fraction` of its (capped) life.
pub fn due(
    issued: SystemTime,
    not_after: SystemTime,
    lifetime: Duration,
    fraction: f64,
) -> SystemTime {
    let capped = not_after.min(issued + lifetime);
    skiff_core::certs::renew_at(issued, capped, fraction)
}

/// Renews the kubelet-client certificate before it expires until `stop` completes.
pub async fn run(
    state: Arc<ApiState>,
    pki: Pki,
    signing_seconds: i64,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let lifetime = Duration::from_secs(u64::try_from(signing_seconds).unwrap_or(1).max(1));
    loop {
        let fraction = 0.7 + 0.2 * rand::random::<f64>();
        let wait = match skiff_core::certs::validity(&pki.kubelet_client_cert()) {
            Some((issued, not_after)) => due(issued, not_after, lifetime, fraction)
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        tracing::debug!(
            in_seconds = wait.as_secs(),
            "next kubelet-client certificate renewal"
        );
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let renewed = pki
            .renew_kubelet_client(signing_seconds)
            .map_err(|e| e.to_string())
            .and_then(|m| {
                let client = state.kubelet().map_err(|e| e.message)?;
                client.set_identity(m).map_err(|e| e.to_string())
            });
        match renewed {
            Ok(()) => tracing::info!("kubelet-client certificate renewed"),
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the kubelet-client certificate; retrying");
                tokio::select! {
                    _ = &mut stop => return,
                    _ = tokio::time::sleep(RETRY) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inpod_kubelet_client_renewal_is_capped_by_the_signing_duration() {
        let issued = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let day = Duration::from_secs(86_400);
        // A certificate for centuries under a one-day signing duration: renewed within the day.
        let centuries = issued + day * 365 * 300;
        assert_eq!(due(issued, centuries, day, 0.8), issued + day.mul_f64(0.8));
        // One shorter than the duration: its own life counts.
        assert_eq!(
            due(issued, issued + Duration::from_secs(100), day, 0.8),
            issued + Duration::from_secs(80)
        );
    }

    #[test]
    fn inpod_renewed_kubelet_client_certificate_lives_for_the_signing_duration() {
        let dir = tempfile::tempdir().unwrap();
        let pki = Pki::new(dir.path());
        pki.ensure(&["localhost".to_string()]).unwrap();
        let before = std::fs::read(pki.kubelet_client_cert()).unwrap();
        pki.renew_kubelet_client(20).unwrap();
        assert_ne!(std::fs::read(pki.kubelet_client_cert()).unwrap(), before);
        let (issued, not_after) = skiff_core::certs::validity(&pki.kubelet_client_cert()).unwrap();
        let life = not_after.duration_since(issued).unwrap();
        assert!(life <= Duration::from_secs(20), "{life:?}");
        assert!(life >= Duration::from_secs(15), "{life:?}");
    }
}
