//! One pod's sync, as kubelet's `SyncPod`: compare the pod's spec with what the engine runs
//! for it and do the next step — sandbox, then init containers one at a time in order, then
//! every app container; restart what exited when the restart policy says so (with back-off);
//! stop everything of a pod being deleted and let the API delete it. Then write the status.
//! Level-triggered and idempotent: running it again changes nothing that is right.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Pod};
use kube::api::{Api, DeleteParams, Preconditions};

use crate::error::Result;
use crate::events::Type;
use crate::hooks::Hook;
use crate::labels;
use crate::observe::{self, Instance};
use crate::pods::Ctx;
use crate::spec::{Kind, Plan};

/// Resync when nothing else triggers one.
pub const RESYNC: Duration = Duration::from_secs(30);
/// How long a postStart hook may take (kubelet sets none; a stuck hook must not hold the
/// pod's sync for ever).
const POST_START_LIMIT: Duration = Duration::from_secs(120);
/// Seconds a container gets after its preStop hook at least (kubelet's minimum grace).
const HOOK_MIN: i64 = 2;
/// Look again this soon at a container whose ConfigMap or Secret is missing.
const CONFIG_RETRY: Duration = Duration::from_secs(5);

/// A container that is not running and why (`state.waiting` of its status).
#[derive(Debug, Clone)]
pub struct Waiting {
    pub reason: String,
    pub message: String,
}

/// What one sync decided, for the status.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Waiting reasons by container name.
    pub waiting: HashMap<String, Waiting>,
    /// When to look again at the latest (back-off ends).
    pub requeue: Option<Duration>,
}

impl Outcome {
    pub(crate) fn wait(&mut self, name: &str, reason: &str, message: String) {
        self.waiting.insert(
            name.to_string(),
            Waiting {
                reason: reason.into(),
                message,
            },
        );
    }

    pub(crate) fn again_in(&mut self, d: Duration) {
        self.requeue = Some(self.requeue.map_or(d, |r| r.min(d)));
    }
}

/// What a pod's containers are set up in: its sandbox and its volumes; and the sync's place
/// among the pods starting.
struct Setup<'a, 's> {
    sandbox: &'a crate::sandbox::PodSandbox,
    volumes: &'a HashMap<String, crate::volumes::Ready>,
    slot: &'a crate::starts::Slot<'s>,
}

pub(crate) fn pod_ref(pod: &Pod) -> String {
    format!(
        "{}_{}({})",
        pod.metadata.name.as_deref().unwrap_or(""),
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.uid.as_deref().unwrap_or("")
    )
}

pub(crate) fn field_path(kind: Kind, name: &str) -> String {
    match kind {
        Kind::Init => format!("spec.initContainers{{{name}}}"),
        Kind::App => format!("spec.containers{{{name}}}"),
    }
}

/// The latest attempt of container `name`, and the one before it.
pub(crate) fn latest<'a>(
    instances: &'a [Instance],
    name: &str,
) -> (Option<&'a Instance>, Option<&'a Instance>) {
    let mut mine = instances.iter().filter(|i| i.name == name).rev();
    (mine.next(), mine.next())
}

/// Seconds the pod's containers get between SIGTERM and SIGKILL.
pub(crate) fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
        .max(0)
}

impl Ctx {
    /// Syncs one pod; returns when to look at it again.
    pub async fn sync_pod(&self, pod: &Pod) -> Result<Duration> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            self.terminate(pod).await?;
            return Ok(RESYNC);
        }
        let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
        let mut instances = observe::pod_instances(&self.engine, &uid).await?;
        if matches!(phase, Some("Succeeded" | "Failed")) {
            // Finished for good: nothing restarts, the address goes back to the pool.
            self.stop_all(pod, &instances).await;
            self.sandboxes.net.remove_sandbox(&uid).await?;
            return Ok(RESYNC);
        }
        let mut out = Outcome::default();
        let slot = self.starts.slot();
        if self.sandboxes.get(&uid).is_none() {
            slot.hold().await;
        }
        let sandbox = match self.sandboxes.ensure(pod).await {
            Ok(sb) => sb,
            Err(e) => {
                let msg = crate::error::chain(&e);
                self.events.pod(
                    pod,
                    None,
                    Type::Warning,
                    "FailedCreatePodSandBox",
                    format!("Failed to create pod sandbox: {msg}"),
                );
                return Err(e);
            }
        };
        let volumes = match crate::volumes::prepare(&self.client, &self.tokens, pod, &sandbox).await
        {
            Ok(v) => v,
            Err(msg) => {
                // kubelet: the containers stay ContainerCreating until the volumes mount.
                self.events
                    .pod(pod, None, Type::Warning, "FailedMount", msg);
                self.write_status(pod, &instances, &out, Some(&sandbox))
                    .await?;
                return Ok(CONFIG_RETRY);
            }
        };
        let setup = Setup {
            sandbox: &sandbox,
            volumes: &volumes,
            slot: &slot,
        };
        let spec = pod.spec.clone().unwrap_or_default();
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        let mut initialized = true;
        for c in spec.init_containers.iter().flatten() {
            let (last, _) = latest(&instances, &c.name);
            match last {
                Some(i) if i.finished() && i.exit_code == 0 && !i.start_failed() => continue,
                Some(i) if i.running() => {}
                Some(i) if i.finished() && policy == "Never" => {
                    // A failed init container fails the pod.
                    let _ = i;
                }
                _ => {
                    self.step(pod, c, Kind::Init, last, &setup, &mut out)
                        .await?;
                }
            }
            initialized = false;
            break;
        }
        if initialized {
            for c in &spec.containers {
                let (last, _) = latest(&instances, &c.name);
                let restart = match last {
                    None => true,
                    Some(i) if i.running() => false,
                    Some(i) if !i.finished() => true,
                    Some(i) => match policy {
                        "Never" => false,
                        "OnFailure" => i.exit_code != 0 || i.start_failed(),
                        _ => true,
                    },
                };
                if restart {
                    self.step(pod, c, Kind::App, last, &setup, &mut out).await?;
                }
            }
        }
        slot.release();
        instances = observe::pod_instances(&self.engine, &uid).await?;
        self.write_status(pod, &instances, &out, Some(&sandbox))
            .await?;
        Ok(out.requeue.map_or(RESYNC, |r| r.min(RESYNC)))
    }

    /// Moves one container on: starts its first attempt, restarts it after its back-off, or
    /// starts a created one whose start a crash interrupted.
    async fn step(
        &self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        last: Option<&Instance>,
        setup: &Setup<'_, '_>,
        out: &mut Outcome,
    ) -> Result<()> {
        let (sandbox, volumes) = (setup.sandbox, setup.volumes);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{uid}/{}", c.name);
        if let Some(i) = last.filter(|i| i.status == "created" && !i.start_failed()) {
            // Created before a crash, never started.
            setup.slot.hold().await;
            return self
                .start(pod, c, kind, i.id.clone(), setup.slot, out)
                .await;
        }
        let attempt = match last {
            None => 0,
            Some(i) => {
                if i.ran_for() >= crate::backoff::RESET_AFTER {
                    self.backoff.reset(&key);
                }
                let since = i
                    .finished_at
                    .or_else(|| self.pull_failed_at(&format!("start/{}", i.id)))
                    .unwrap_or_else(chrono::Utc::now);
                if let Some(left) = self.backoff.remaining(&key, since, chrono::Utc::now()) {
                    let delay = self.backoff.delay(&key).unwrap_or_default();
                    out.wait(
                        &c.name,
                        "CrashLoopBackOff",
                        format!(
                            "back-off {} restarting failed container={} pod={}",
                            go_duration(delay),
                            c.name,
                            pod_ref(pod)
                        ),
                    );
                    out.again_in(left);
                    self.events.pod(
                        pod,
                        Some(&field_path(kind, &c.name)),
                        Type::Warning,
                        "BackOff",
                        format!(
                            "Back-off restarting failed container {} in pod {}",
                            c.name,
                            pod_ref(pod)
                        ),
                    );
                    return Ok(());
                }
                i.attempt + 1
            }
        };
        let Some(image_user) = self.image_ready(pod, c, kind, setup.slot, out).await else {
            return Ok(());
        };
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let sources =
            crate::env::EnvSources::fetch(&self.client, namespace, c, sandbox.host_network).await?;
        let host_ip = self.node_ip.to_string();
        let pod_ip = sandbox.ip.map(|ip| ip.to_string());
        let downward = crate::env::Downward {
            pod_ip: pod_ip
                .as_deref()
                .or(sandbox.host_network.then_some(host_ip.as_str())),
            host_ip: &host_ip,
        };
        let env = match crate::env::environment(pod, c, &sources, &downward) {
            Ok(env) => env,
            Err(msg) => {
                let fp = field_path(kind, &c.name);
                self.events.pod(
                    pod,
                    Some(&fp),
                    Type::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                out.wait(&c.name, "CreateContainerConfigError", msg);
                out.again_in(CONFIG_RETRY);
                return Ok(());
            }
        };
        let mounts = crate::volumes::mounts(c, volumes);
        let security = crate::security::resolve(pod, c, &image_user);
        let (mounts, security) = match (mounts, security) {
            (Ok(m), Ok(s)) => (m, s),
            (Err(msg), _) | (_, Err(msg)) => {
                self.events.pod(
                    pod,
                    Some(&field_path(kind, &c.name)),
                    Type::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                out.wait(&c.name, "CreateContainerConfigError", msg);
                out.again_in(CONFIG_RETRY);
                return Ok(());
            }
        };
        let plan = Plan {
            env: &env,
            mounts: &mounts,
            security: &security,
            pod,
            container: c,
            kind,
            attempt,
            sandbox,
            cgroup_parent: &self.pod_cgroup(pod),
        };
        let log = sandbox.termination_log(&c.name, attempt);
        if let Some(dir) = log.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = std::fs::write(&log, b"");
        let name = labels::container_name(
            &c.name,
            pod.metadata.name.as_deref().unwrap_or(""),
            pod.metadata.namespace.as_deref().unwrap_or(""),
            &uid,
            attempt,
        );
        let fp = field_path(kind, &c.name);
        setup.slot.hold().await;
        let created = match self
            .engine
            .container_create(Some(&name), plan.body(), None)
            .await
        {
            Ok(r) => r.id,
            Err(skiff_engine::EngineError::NameConflict { id, .. }) => {
                // Left by a crash before its labels were read back: start over.
                let _ = self.engine.container_remove(&id, true, false).await;
                return Ok(());
            }
            Err(e) => {
                let msg = e.to_string();
                self.events.pod(
                    pod,
                    Some(&fp),
                    Type::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                out.wait(&c.name, "CreateContainerError", msg);
                self.backoff.next(&key);
                out.again_in(self.backoff.delay(&key).unwrap_or(RESYNC));
                return Ok(());
            }
        };
        self.events.pod(
            pod,
            Some(&fp),
            Type::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        if last.is_some() {
            self.backoff.next(&key);
        }
        self.start(pod, c, kind, created, setup.slot, out).await?;
        // Older attempts than the previous one are of no more use (kubelet keeps one dead
        // container per container for `logs --previous`).
        for (id, l) in
            observe::labelled(&self.engine, &format!("{}={uid}", labels::POD_UID)).await?
        {
            let a: u32 = l
                .get(labels::RESTART_COUNT)
                .and_then(|a| a.parse().ok())
                .unwrap_or(0);
            if l.get(labels::CONTAINER_NAME) == Some(&c.name) && a + 1 < attempt {
                let _ = self.engine.container_remove(&id, true, false).await;
            }
        }
        Ok(())
    }

    async fn start(
        &self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        id: String,
        slot: &crate::starts::Slot<'_>,
        out: &mut Outcome,
    ) -> Result<()> {
        let fp = field_path(kind, &c.name);
        let key = &format!(
            "{}/{}",
            pod.metadata.uid.as_deref().unwrap_or_default(),
            c.name
        );
        match self.engine.container_start(&id).await {
            Ok(_) => {
                self.limit_pod_cgroup(pod).await;
                self.events.pod(
                    pod,
                    Some(&fp),
                    Type::Normal,
                    "Started",
                    format!("Started container {}", c.name),
                );
                let grace = grace_seconds(pod);
                if c.lifecycle.as_ref().is_some_and(|l| l.post_start.is_some()) {
                    // The hook may run for minutes: other pods start meanwhile.
                    slot.release();
                }
                if self
                    .run_hook(pod, c, kind, &id, Hook::PostStart, POST_START_LIMIT)
                    .await
                    .is_err()
                {
                    // kubelet kills a container whose postStart hook failed; the restart
                    // policy decides what comes next.
                    self.events.pod(
                        pod,
                        Some(&fp),
                        Type::Normal,
                        "Killing",
                        format!("FailedPostStartHook: Stopping container {}", c.name),
                    );
                    if let Err(e) = self
                        .engine
                        .container_stop(&id, Some("SIGTERM"), Some(grace))
                        .await
                    {
                        tracing::warn!(error = %e, "cannot stop a container whose postStart hook failed");
                    }
                }
            }
            Err(e) => {
                let msg = format!("failed to start container {:?}: {e}", c.name);
                self.events.pod(
                    pod,
                    Some(&fp),
                    Type::Warning,
                    "Failed",
                    format!("Error: {msg}"),
                );
                out.wait(&c.name, "RunContainerError", msg);
                self.pull_failures
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(format!("start/{id}"), chrono::Utc::now());
                if self.backoff.delay(key).is_none() {
                    self.backoff.next(key);
                }
                out.again_in(self.backoff.delay(key).unwrap_or(RESYNC));
            }
        }
        Ok(())
    }

    /// Stops every running container of the pod (its preStop hook, SIGTERM, the rest of the
    /// grace period, SIGKILL), all at once.
    pub(crate) async fn stop_all(&self, pod: &Pod, instances: &[Instance]) {
        let grace = grace_seconds(pod);
        let spec = pod.spec.clone().unwrap_or_default();
        let stops = instances.iter().filter(|i| i.running()).map(|i| {
            let kind = if i.kind == "init" {
                Kind::Init
            } else {
                Kind::App
            };
            let container = match kind {
                Kind::Init => spec
                    .init_containers
                    .iter()
                    .flatten()
                    .find(|c| c.name == i.name),
                Kind::App => spec.containers.iter().find(|c| c.name == i.name),
            };
            self.events.pod(
                pod,
                Some(&field_path(kind, &i.name)),
                Type::Normal,
                "Killing",
                format!("Stopping container {}", i.name),
            );
            async move {
                let started = std::time::Instant::now();
                if let Some(c) = container.filter(|_| grace > 0) {
                    let limit = Duration::from_secs(grace as u64);
                    let _ = self
                        .run_hook(pod, c, kind, &i.id, Hook::PreStop, limit)
                        .await;
                }
                // kubelet: what the hook used comes off the grace period, with 2 s left at least.
                let left = if grace > 0 {
                    (grace - started.elapsed().as_secs() as i64).max(HOOK_MIN)
                } else {
                    0
                };
                self.engine
                    .container_stop(&i.id, Some("SIGTERM"), Some(left))
                    .await
            }
        });
        for r in futures::future::join_all(stops).await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "cannot stop a pod container");
            }
        }
    }

    /// A pod being deleted: stop its containers with its grace period, remove them and its
    /// sandbox, then delete the pod object for good (grace 0, this uid only), as kubelet does.
    async fn terminate(&self, pod: &Pod) -> Result<()> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let instances = observe::pod_instances(&self.engine, &uid).await?;
        self.stop_all(pod, &instances).await;
        let instances = observe::pod_instances(&self.engine, &uid).await?;
        self.write_status(pod, &instances, &Outcome::default(), None)
            .await
            .ok();
        self.remove_pod_resources(&uid).await?;
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            pod.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(uid),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api
            .delete(pod.metadata.name.as_deref().unwrap_or(""), &params)
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.code == 404 || e.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// Go's `time.Duration` text for whole seconds and minutes (`10s`, `5m0s`, `2m40s`).
pub(crate) fn go_duration(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_go() {
        assert_eq!(go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(Duration::from_secs(300)), "5m0s");
        assert_eq!(go_duration(Duration::from_secs(160)), "2m40s");
    }
}
