//! Container lifecycle hooks as kubelet runs them: `postStart` right after the container
//! started (the sync waits for it; a failure is a `FailedPostStartHook` event and the
//! container is killed, to be restarted by the pod's policy), `preStop` before the SIGTERM of
//! a stop, within the grace period (a failure is a `FailedPreStopHook` event and the stop goes
//! on). Handlers: `exec` in the container, `httpGet` to the pod's address (or the hook's
//! `host`), `sleep`.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, LifecycleHandler, Pod};

use crate::events::Type;
use crate::pods::Ctx;
use crate::spec::Kind;
use crate::sync::{field_path, pod_ref};

/// Which hook.
#[derive(Debug, Clone, Copy)]
pub enum Hook {
    PostStart,
    PreStop,
}

impl Ctx {
    /// The pod's address for `httpGet` hooks (the node's on the host's network).
    fn hook_address(&self, pod: &Pod) -> Option<IpAddr> {
        let uid = pod.metadata.uid.as_deref().unwrap_or_default();
        let sb = self.sandboxes.get(uid)?;
        if sb.host_network {
            Some(self.node_ip)
        } else {
            sb.ip.map(IpAddr::V4)
        }
    }

    async fn run_handler(
        &self,
        pod: &Pod,
        c: &Container,
        id: &str,
        h: &LifecycleHandler,
    ) -> Result<(), String> {
        if let Some(exec) = &h.exec {
            let cmd = exec.command.clone().unwrap_or_default();
            return crate::probes::exec_probe(self, id, cmd.clone())
                .await
                .map_err(|e| format!("Exec lifecycle hook ({cmd:?}) for Container {:?} in Pod {:?} failed - error: {e}", c.name, pod_ref(pod)));
        }
        if let Some(get) = &h.http_get {
            let host = get
                .host
                .as_deref()
                .and_then(|h| h.parse().ok())
                .or_else(|| self.hook_address(pod))
                .ok_or("the pod has no address")?;
            let port = crate::probes::port(c, &get.port)?;
            let path = get.path.clone().unwrap_or_else(|| "/".into());
            return crate::probes::http_probe(
                host,
                port,
                &path,
                get.http_headers.as_deref().unwrap_or_default(),
            )
            .await
            .map_err(|e| {
                format!(
                    "HTTP lifecycle hook ({path}) for Container {:?} in Pod {:?} failed - error: {e}",
                    c.name,
                    pod_ref(pod)
                )
            });
        }
        if let Some(sleep) = &h.sleep {
            tokio::time::sleep(Duration::from_secs(sleep.seconds.max(0) as u64)).await;
            return Ok(());
        }
        Err("the hook has no handler (exec, httpGet or sleep)".into())
    }

    /// Runs container `c`'s `hook` (if it has one) in engine container `id`, for at most
    /// `limit`; Err is the event's message, already recorded.
    pub(crate) async fn run_hook(
        &self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        id: &str,
        hook: Hook,
        limit: Duration,
    ) -> Result<(), String> {
        let lifecycle = c.lifecycle.as_ref();
        let handler = match hook {
            Hook::PostStart => lifecycle.and_then(|l| l.post_start.as_ref()),
            Hook::PreStop => lifecycle.and_then(|l| l.pre_stop.as_ref()),
        };
        let Some(handler) = handler else {
            return Ok(());
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, self.run_handler(pod, c, id, handler)).await
        {
            Ok(r) => r,
            Err(_) => Err(format!(
                "{hook:?} hook of container {:?} did not finish within {}s",
                c.name,
                limit.as_secs()
            )),
        };
        tracing::debug!(?hook, container = %c.name, took = ?started.elapsed(), ok = result.is_ok(), "lifecycle hook");
        if let Err(msg) = &result {
            let reason = match hook {
                Hook::PostStart => "FailedPostStartHook",
                Hook::PreStop => "FailedPreStopHook",
            };
            self.events.pod(
                pod,
                Some(&field_path(kind, &c.name)),
                Type::Warning,
                reason,
                msg.clone(),
            );
        }
        result
    }
}
