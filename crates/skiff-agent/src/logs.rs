//! Pod container logs, as kubelet serves `containerLogs`: the output of the current attempt
//! of a container (or of the one before it, `previous`), stdout and stderr interleaved as
//! written, with `follow`, `tailLines`, `sinceSeconds`/`sinceTime`, `timestamps` and
//! `limitBytes`. Read from the engine's json-file logs of the container's engine container.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use skiff_engine::Engine;

use crate::observe;
use crate::sync::latest;

/// What a log request asks for (kubelet's `PodLogOptions`, the container already chosen).
#[derive(Debug, Clone, Default)]
pub struct LogRequest {
    pub container: String,
    pub follow: bool,
    pub previous: bool,
    pub tail_lines: Option<i64>,
    /// Unix seconds; only lines written at or after it.
    pub since: Option<f64>,
    pub timestamps: bool,
    pub limit_bytes: Option<i64>,
}

/// Why a pod's logs cannot be read (worded as kubelet words it).
#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("container {container:?} in pod {pod:?} is waiting to start: {reason}")]
    Waiting {
        container: String,
        pod: String,
        reason: String,
    },
    #[error("previous terminated container {container:?} in pod {pod:?} not found")]
    NoPrevious { container: String, pod: String },
    #[error("the pod object cannot be read")]
    BadPod(#[source] serde_json::Error),
    #[error("reading the container's log")]
    Engine(#[from] skiff_engine::EngineError),
    #[error("listing the pod's containers")]
    Agent(#[from] crate::AgentError),
}

/// Reads the logs of pods on this node's engine.
#[derive(Clone)]
pub struct PodLogs {
    pub(crate) engine: Arc<Engine>,
}

impl PodLogs {
    pub fn new(engine: Arc<Engine>) -> Self {
        PodLogs { engine }
    }

    /// The log of `req.container` of `pod` (a Pod as the API stores it) as a byte stream
    /// (ends at the end of the log, or with `follow` when the container stops).
    pub async fn logs(
        &self,
        pod: serde_json::Value,
        req: LogRequest,
    ) -> Result<BoxStream<'static, Bytes>, LogsError> {
        let pod: Pod = serde_json::from_value(pod).map_err(LogsError::BadPod)?;
        let pod = &pod;
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let instances = observe::pod_instances(&self.engine, &uid).await?;
        let (last, prev) = latest(&instances, &req.container);
        let chosen = if req.previous { prev } else { last };
        let Some(instance) = chosen else {
            if req.previous {
                return Err(LogsError::NoPrevious {
                    container: req.container,
                    pod: pod_name,
                });
            }
            let reason = waiting_reason(pod, &req.container);
            return Err(LogsError::Waiting {
                container: req.container,
                pod: pod_name,
                reason,
            });
        };
        let opts = skiff_engine::LogOptions {
            stdout: true,
            stderr: true,
            follow: req.follow && !req.previous,
            since: req.since,
            until: None,
            timestamps: req.timestamps,
            tail: req.tail_lines.map(|n| n.max(0).to_string()),
            details: false,
        };
        let logs = self.engine.container_logs(&instance.id, opts).await?;
        let chunks = logs.stream.map(|c| c.data);
        Ok(match req.limit_bytes {
            Some(limit) => limited(chunks, limit.max(0) as usize).boxed(),
            None => chunks.boxed(),
        })
    }
}

/// The waiting reason the pod's status gives the container (`ContainerCreating` by default).
fn waiting_reason(pod: &Pod, container: &str) -> String {
    let status = pod.status.as_ref();
    status
        .into_iter()
        .flat_map(|s| {
            s.container_statuses
                .iter()
                .flatten()
                .chain(s.init_container_statuses.iter().flatten())
        })
        .find(|c| c.name == container)
        .and_then(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .unwrap_or_else(|| "ContainerCreating".into())
}

/// At most `limit` bytes of `chunks` (the last chunk cut), then the end.
fn limited(
    chunks: impl futures::Stream<Item = Bytes> + Send + 'static,
    limit: usize,
) -> impl futures::Stream<Item = Bytes> + Send + 'static {
    chunks
        .scan(limit, |left, mut chunk| {
            if *left == 0 {
                return futures::future::ready(None);
            }
            if chunk.len() > *left {
                chunk.truncate(*left);
            }
            *left -= chunk.len();
            futures::future::ready(Some(chunk))
        })
        .take_while(|c| futures::future::ready(!c.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn limit_bytes_cuts_the_stream() {
        let chunks = futures::stream::iter(vec![
            Bytes::from_static(b"hello\n"),
            Bytes::from_static(b"world\n"),
            Bytes::from_static(b"more\n"),
        ]);
        let out: Vec<Bytes> = limited(chunks, 8).collect().await;
        assert_eq!(out.concat(), b"hello\nwo");
    }

    #[test]
    fn waiting_reason_comes_from_the_status() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p"},
            "status": {"containerStatuses": [{"name": "c", "image": "i", "imageID": "",
                "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ImagePullBackOff"}}}]},
        }))
        .unwrap();
        assert_eq!(waiting_reason(&pod, "c"), "ImagePullBackOff");
        assert_eq!(waiting_reason(&pod, "other"), "ContainerCreating");
    }
}
