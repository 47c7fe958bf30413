//! Container probes, as kubelet's prober runs them: `startupProbe`, then `livenessProbe` and
//! `readinessProbe`, each `exec` (in the container, through the engine), `httpGet` (2xx/3xx
//! from the pod's address) or `tcpSocket` (a connection), every `periodSeconds` after
//! `initialDelaySeconds`, with `timeoutSeconds` and the success/failure thresholds. Results are
//! kept per engine container (a new attempt starts over); a change asks the pod loop to sync
//! the pod (readiness drives `ready` and the Ready condition), and a failed liveness or startup
//! probe kills the container so the restart policy takes over.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Container, Pod, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::runtime::reflector::{ObjectRef, Store};

use crate::events::Type;
use crate::observe;
use crate::pods::Ctx;

/// How often the prober looks for due probes.
const TICK: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Startup,
    Liveness,
    Readiness,
}

impl Kind {
    fn word(self) -> &'static str {
        match self {
            Kind::Startup => "Startup",
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
        }
    }
}

#[derive(Debug)]
struct State {
    /// The current result.
    ok: bool,
    successes: i32,
    failures: i32,
    last: Option<Instant>,
}

/// Probe results by engine container id.
#[derive(Default)]
pub struct Results {
    states: Mutex<HashMap<(String, Kind), State>>,
}

impl Results {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Kind), State>> {
        self.states.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn result(&self, id: &str, kind: Kind) -> Option<bool> {
        self.lock().get(&(id.to_string(), kind)).map(|s| s.ok)
    }

    /// Whether the running engine container `id` of `c` has started (its startup probe, if
    /// any, succeeded).
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.result(id, Kind::Startup) == Some(true)
    }

    /// Whether the running engine container `id` of `c` is ready.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none() || self.result(id, Kind::Readiness) == Some(true))
    }

    /// Forgets containers not in `live`.
    fn retain(&self, live: &std::collections::HashSet<String>) {
        self.lock().retain(|(id, _), _| live.contains(id));
    }
}

/// Runs the probes of the pods in `store` until `stop`.
pub async fn run(
    ctx: Arc<Ctx>,
    store: Store<Pod>,
    resync: futures::channel::mpsc::UnboundedSender<ObjectRef<Pod>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(TICK);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = crate::until_stopped(&mut stop) => return,
        }
        let mut live = std::collections::HashSet::new();
        for pod in store.state() {
            let probed = pod.spec.iter().flat_map(|s| s.containers.iter()).any(|c| {
                c.startup_probe.is_some()
                    || c.liveness_probe.is_some()
                    || c.readiness_probe.is_some()
            });
            if !probed || pod.metadata.deletion_timestamp.is_some() {
                continue;
            }
            let uid = pod.metadata.uid.clone().unwrap_or_default();
            let Ok(instances) = observe::pod_instances(&ctx.engine, &uid).await else {
                continue;
            };
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .and_then(|ip| ip.parse::<IpAddr>().ok());
            for c in pod.spec.iter().flat_map(|s| s.containers.iter()) {
                let Some(i) = instances
                    .iter()
                    .rev()
                    .find(|i| i.name == c.name && i.kind == "app")
                    .filter(|i| i.running())
                else {
                    continue;
                };
                live.insert(i.id.clone());
                let since_start = i
                    .started_at
                    .and_then(|t| (chrono::Utc::now() - t).to_std().ok())
                    .unwrap_or_default();
                let mut changed = false;
                for (kind, probe) in [
                    (Kind::Startup, &c.startup_probe),
                    (Kind::Liveness, &c.liveness_probe),
                    (Kind::Readiness, &c.readiness_probe),
                ] {
                    let Some(probe) = probe else { continue };
                    if kind != Kind::Startup && !ctx.probes.started(c, &i.id) {
                        continue;
                    }
                    changed |= probe_once(&ctx, &pod, c, &i.id, kind, probe, ip, since_start).await;
                }
                if changed {
                    let r = ObjectRef::from_obj(&*pod);
                    let _ = resync.unbounded_send(r);
                }
            }
        }
        ctx.probes.retain(&live);
    }
}

fn seconds(v: Option<i32>, default: i32) -> Duration {
    Duration::from_secs(v.unwrap_or(default).max(0) as u64)
}

/// Runs one probe if it is due; true when its result changed.
#[allow(clippy::too_many_arguments)]
async fn probe_once(
    ctx: &Ctx,
    pod: &Pod,
    c: &Container,
    id: &str,
    kind: Kind,
    probe: &Probe,
    ip: Option<IpAddr>,
    since_start: Duration,
) -> bool {
    let key = (id.to_string(), kind);
    let period = seconds(probe.period_seconds, 10).max(Duration::from_secs(1));
    {
        let mut states = ctx.probes.lock();
        let state = states.entry(key.clone()).or_insert(State {
            // kubelet's initial results: not ready, not started, alive.
            ok: kind == Kind::Liveness,
            successes: 0,
            failures: 0,
            last: None,
        });
        if since_start < seconds(probe.initial_delay_seconds, 0) {
            return false;
        }
        if state.last.is_some_and(|l| l.elapsed() < period) {
            return false;
        }
        state.last = Some(Instant::now());
    }
    let timeout = seconds(probe.timeout_seconds, 1).max(Duration::from_secs(1));
    let outcome = match tokio::time::timeout(timeout, run_probe(ctx, c, id, probe, ip)).await {
        Ok(r) => r,
        Err(_) => Err(format!(
            "timeout: failed to connect service within {}s",
            timeout.as_secs()
        )),
    };
    let success_threshold = probe.success_threshold.unwrap_or(1).max(1);
    let failure_threshold = probe.failure_threshold.unwrap_or(3).max(1);
    let (changed, now_ok) = {
        let mut states = ctx.probes.lock();
        let Some(state) = states.get_mut(&key) else {
            return false;
        };
        let before = state.ok;
        match &outcome {
            Ok(()) => {
                state.successes += 1;
                state.failures = 0;
                if state.successes >= success_threshold {
                    state.ok = true;
                }
            }
            Err(_) => {
                state.failures += 1;
                state.successes = 0;
                if state.failures >= failure_threshold {
                    state.ok = false;
                }
            }
        }
        (before != state.ok, state.ok)
    };
    let field = format!("spec.containers{{{}}}", c.name);
    if let Err(msg) = &outcome {
        ctx.events.pod(
            pod,
            Some(&field),
            Type::Warning,
            "Unhealthy",
            format!("{} probe failed: {msg}", kind.word()),
        );
    }
    if changed && !now_ok && kind != Kind::Readiness {
        let what = if kind == Kind::Liveness {
            "liveness"
        } else {
            "startup"
        };
        ctx.events.pod(
            pod,
            Some(&field),
            Type::Normal,
            "Killing",
            format!(
                "Container {} failed {what} probe, will be restarted",
                c.name
            ),
        );
        let grace = crate::sync::grace_seconds(pod);
        if let Err(e) = ctx
            .engine
            .container_stop(id, Some("SIGTERM"), Some(grace))
            .await
        {
            tracing::warn!(error = %e, "cannot stop a container that failed its probe");
        }
    }
    changed
}

pub(crate) fn port(c: &Container, p: &IntOrString) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => c
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name))
            .and_then(|p| u16::try_from(p.container_port).ok())
            .ok_or_else(|| format!("couldn't find port {name:?} in the container")),
    }
}

async fn run_probe(
    ctx: &Ctx,
    c: &Container,
    id: &str,
    probe: &Probe,
    ip: Option<IpAddr>,
) -> Result<(), String> {
    if let Some(exec) = &probe.exec {
        return exec_probe(ctx, id, exec.command.clone().unwrap_or_default()).await;
    }
    if let Some(t) = &probe.tcp_socket {
        let host = t
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .or(ip)
            .ok_or("the pod has no address yet")?;
        let port = port(c, &t.port)?;
        return tokio::net::TcpStream::connect((host, port))
            .await
            .map(|_| ())
            .map_err(|e| format!("dial tcp {host}:{port}: {e}"));
    }
    if let Some(h) = &probe.http_get {
        let host: IpAddr = h
            .host
            .as_deref()
            .and_then(|h| h.parse().ok())
            .or(ip)
            .ok_or("the pod has no address yet")?;
        let port = port(c, &h.port)?;
        let path = h.path.clone().unwrap_or_else(|| "/".into());
        return http_probe(
            host,
            port,
            &path,
            h.http_headers.as_deref().unwrap_or_default(),
        )
        .await;
    }
    Err("the probe has no handler (exec, httpGet or tcpSocket)".into())
}

pub(crate) async fn exec_probe(ctx: &Ctx, id: &str, cmd: Vec<String>) -> Result<(), String> {
    let config = skiff_engine::models::ExecConfig {
        cmd: Some(cmd.clone()),
        attach_stdout: Some(true),
        attach_stderr: Some(true),
        ..Default::default()
    };
    let exec = ctx
        .engine
        .exec_create(id, config)
        .await
        .map_err(|e| e.to_string())?;
    let start = skiff_engine::models::ExecStartConfig::default();
    let mut output = Vec::new();
    if let Some(mut attached) = ctx
        .engine
        .exec_start(&exec, &start)
        .await
        .map_err(|e| e.to_string())?
    {
        use tokio::io::AsyncReadExt;
        let _ = attached.io.read_to_end(&mut output).await;
    }
    let code = ctx
        .engine
        .exec_inspect(&exec)
        .await
        .map_err(|e| e.to_string())?
        .exit_code
        .unwrap_or(-1);
    if code == 0 {
        Ok(())
    } else {
        Err(format!("command {cmd:?} exited with {code}"))
    }
}

/// kubelet's HTTP probe: a GET with `User-Agent: kube-probe/<version>`; 200–399 is success.
pub(crate) async fn http_probe(
    host: IpAddr,
    port: u16,
    path: &str,
    headers: &[k8s_openapi::api::core::v1::HTTPHeader],
) -> Result<(), String> {
    let url = format!(
        "http://{}/{}",
        std::net::SocketAddr::new(host, port),
        path.trim_start_matches('/')
    );
    let stream = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("Get {url:?}: dial tcp {host}:{port}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| format!("Get {url:?}: {e}"))?;
    tokio::spawn(conn);
    let mut req = http::Request::get(format!("/{}", path.trim_start_matches('/')))
        .header(http::header::HOST, format!("{host}:{port}"))
        .header(http::header::USER_AGENT, "kube-probe/1.33")
        .header(http::header::ACCEPT, "*/*");
    for h in headers {
        req = req.header(h.name.as_str(), h.value.as_str());
    }
    let req = req
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let resp = sender
        .send_request(req)
        .await
        .map_err(|e| format!("Get {url:?}: {e}"))?;
    let code = resp.status().as_u16();
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}
