//! `docker exec`: exec instances are created (recorded only), then started through the
//! container's shim; a task per started exec records its exit code and emits `exec_die`.
//! The attached stream reports end-of-file only once the exit code is recorded, so a client
//! inspecting the exec right after its output ends sees the code.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use bollard_stubs::models::{ExecConfig, ExecInspectResponse, ExecStartConfig, ProcessConfig};
use futures::future::BoxFuture;
use futures::FutureExt;
use skiff_runtime::shim::ExecRequest;
use skiff_runtime::spec::{self, ExecSpec};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;
use tokio::sync::watch;

use crate::error::{EngineError, IoContext, Result};
use crate::store::Status;
use crate::{Attached, Engine};

/// Exit code recorded when the shim could not report one (the container went away).
const LOST_EXIT: i64 = 137;

/// How long a resize waits for its exec to be started (Docker waits as long).
const LAUNCH_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Clone, Default)]
struct ExecState {
    started: bool,
    running: bool,
    exit_code: Option<i64>,
    pid: i64,
}

/// One exec instance.
pub(crate) struct Exec {
    pub id: String,
    pub container_id: String,
    config: ExecConfig,
    state: Mutex<ExecState>,
    /// True once the shim was asked to start the process (whatever it answered): resizes
    /// sent right after the start wait for it, as Docker's do.
    launched: watch::Sender<bool>,
    done: watch::Sender<bool>,
}

impl Exec {
    fn state(&self) -> std::sync::MutexGuard<'_, ExecState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn command(&self) -> String {
        self.config.cmd.clone().unwrap_or_default().join(" ")
    }
}

/// The exec's stdio; end-of-file waits for the recorded exit.
struct ExecStream {
    inner: UnixStream,
    done: BoxFuture<'static, ()>,
    finished: bool,
}

impl AsyncRead for ExecStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        if buf.filled().len() == before && !self.finished {
            ready!(self.done.as_mut().poll(cx));
            self.finished = true;
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for ExecStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The process of an exec in `c`, derived from the container's runtime spec.
pub(crate) fn exec_process(
    c: &super::Container,
    exec: &ExecSpec,
) -> Result<oci_spec::runtime::Process> {
    let container_spec =
        oci_spec::runtime::Spec::load(c.bundle().join("config.json")).map_err(|e| {
            EngineError::Conflict(format!("cannot read the container's runtime spec: {e}"))
        })?;
    Ok(spec::exec_process(&container_spec, exec)?)
}

impl Engine {
    fn find_exec(&self, exec_id: &str) -> Result<Arc<Exec>> {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(exec_id)
            .cloned()
            .ok_or_else(|| EngineError::NoSuchExec(exec_id.to_string()))
    }

    /// Ids of a container's exec instances.
    pub(crate) fn exec_ids(&self, container_id: &str) -> Vec<String> {
        let execs = self.execs.lock().unwrap_or_else(|e| e.into_inner());
        execs
            .values()
            .filter(|e| e.container_id == container_id)
            .map(|e| e.id.clone())
            .collect()
    }

    /// Drops the exec instances of a removed container.
    pub(crate) fn forget_execs(&self, container_id: &str) {
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| e.container_id != container_id);
    }

    fn require_running(&self, key: &str) -> Result<Arc<super::Container>> {
        let c = self.find(key)?;
        match c.rec().state.status {
            Status::Running => Ok(c),
            // moby names a paused container as the client did, a stopped one by its id.
            Status::Paused => Err(EngineError::Conflict(format!(
                "Container {key} is paused, unpause the container before exec"
            ))),
            _ => Err(EngineError::Conflict(format!(
                "Container {} is not running",
                c.id
            ))),
        }
    }

    pub(crate) async fn do_exec_create(&self, key: &str, config: ExecConfig) -> Result<String> {
        let c = self.require_running(key)?;
        if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(EngineError::invalid("No exec command specified"));
        }
        super::detach::exec_keys(config.detach_keys.as_deref())?;
        let id = skiff_core::ids::random_id();
        let exec = Arc::new(Exec {
            id: id.clone(),
            container_id: c.id.clone(),
            config,
            state: Mutex::new(ExecState::default()),
            launched: watch::channel(false).0,
            done: watch::channel(false).0,
        });
        let action = format!("exec_create: {}", exec.command());
        self.execs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.clone(), exec);
        self.emit_container(
            &action,
            &c,
            HashMap::from([("execID".to_string(), id.clone())]),
        );
        Ok(id)
    }

    pub(crate) async fn do_exec_start(
        &self,
        exec_id: &str,
        start: &ExecStartConfig,
    ) -> Result<Option<Attached>> {
        let detach = start.detach.unwrap_or(false);
        let exec = self.find_exec(exec_id)?;
        let c = self.require_running(&exec.container_id)?;
        let keys = super::detach::exec_keys(exec.config.detach_keys.as_deref())?;
        {
            let mut st = exec.state();
            if st.started {
                return Err(EngineError::Conflict(format!(
                    "Error: Exec command {exec_id} has already run"
                )));
            }
            st.started = true;
            st.running = true;
        }
        let cfg = &exec.config;
        let tty = start.tty.unwrap_or(false) || cfg.tty.unwrap_or(false);
        let process = exec_process(
            &c,
            &ExecSpec {
                args: cfg.cmd.clone().unwrap_or_default(),
                env: cfg.env.clone().unwrap_or_default(),
                cwd: cfg.working_dir.clone().unwrap_or_default(),
                user: cfg.user.clone().unwrap_or_default(),
                tty,
                privileged: cfg.privileged.unwrap_or(false),
                group_add: c.rec().host_config.group_add.unwrap_or_default(),
            },
        )?;
        let request = ExecRequest {
            exec_id: exec.id.clone(),
            process,
            tty,
            attach_stdin: !detach && cfg.attach_stdin.unwrap_or(false),
            attach_stdout: !detach && cfg.attach_stdout.unwrap_or(true),
            attach_stderr: !detach && cfg.attach_stderr.unwrap_or(true),
        };
        let client = c.shim();
        let launched = client.exec(&request).await;
        exec.launched.send_replace(true);
        let stream = match launched {
            Ok(s) => s,
            Err(e) => {
                let e = match e {
                    remote @ skiff_runtime::shim::ShimError::Remote(_) => {
                        EngineError::ExecFailed(remote)
                    }
                    other => EngineError::Shim {
                        context: format!("exec in {}", c.id),
                        source: other,
                    },
                };
                // Docker's codes: 127 for a command that does not exist, 126 for one that
                // cannot be executed (and for any other failure to start).
                let mut st = exec.state();
                st.running = false;
                st.exit_code = Some(e.start_exit_code().unwrap_or(126));
                exec.done.send_replace(true);
                return Err(e);
            }
        };
        if let Ok(pid) = client.exec_pid(&exec.id).await {
            exec.state().pid = pid as i64;
        }
        let console = start.console_size.as_ref().or(cfg.console_size.as_ref());
        if let (true, Some([h, w])) = (tty, console.map(Vec::as_slice)) {
            let clamp = |v: usize| v.min(u16::MAX as usize) as u16;
            if let Err(e) = client.exec_resize(&exec.id, clamp(*h), clamp(*w)).await {
                tracing::debug!(exec = %exec.id, error = %e, "initial console size");
            }
        }
        let attrs = HashMap::from([("execID".to_string(), exec.id.clone())]);
        self.emit_container(
            &format!("exec_start: {}", exec.command()),
            &c,
            attrs.clone(),
        );
        let engine = self.arc();
        let waiter = exec.clone();
        tokio::spawn(async move {
            let code = client
                .exec_wait(&waiter.id)
                .await
                .map(i64::from)
                .unwrap_or(LOST_EXIT);
            {
                let mut st = waiter.state();
                st.running = false;
                st.exit_code = Some(code);
            }
            waiter.done.send_replace(true);
            if let Some(engine) = engine {
                if let Ok(c) = engine.find(&waiter.container_id) {
                    let mut attrs = attrs;
                    attrs.insert("exitCode".into(), code.to_string());
                    engine.emit_container("exec_die", &c, attrs);
                }
            }
        });
        if detach {
            return Ok(None);
        }
        let mut done = exec.done.subscribe();
        let done = async move {
            let _ = done.wait_for(|d| *d).await;
        }
        .boxed();
        let io: Box<dyn crate::Duplex> = Box::new(ExecStream {
            inner: stream,
            done,
            finished: false,
        });
        // Like Docker, the detach keys work on a tty: the session ends, the exec runs on.
        let io: Box<dyn crate::Duplex> = if tty && request.attach_stdin {
            let engine = self.arc();
            let (container, exec_id) = (c.clone(), exec.id.clone());
            Box::new(super::detach::Detachable::new(io, keys, move || {
                tracing::debug!(exec = %exec_id, "client detached from exec");
                if let Some(engine) = engine {
                    engine.emit_container(
                        "exec_detach",
                        &container,
                        HashMap::from([("execID".to_string(), exec_id)]),
                    );
                }
            }))
        } else {
            io
        };
        Ok(Some(Attached { tty, io }))
    }

    pub(crate) async fn do_exec_inspect(&self, exec_id: &str) -> Result<ExecInspectResponse> {
        let exec = self.find_exec(exec_id)?;
        let st = exec.state().clone();
        let cfg = &exec.config;
        let cmd = cfg.cmd.clone().unwrap_or_default();
        Ok(ExecInspectResponse {
            can_remove: Some(false),
            detach_keys: Some(cfg.detach_keys.clone().unwrap_or_default()),
            id: Some(exec.id.clone()),
            running: Some(st.running),
            exit_code: st.exit_code,
            process_config: Some(ProcessConfig {
                privileged: Some(cfg.privileged.unwrap_or(false)),
                user: Some(cfg.user.clone().unwrap_or_default()),
                tty: Some(cfg.tty.unwrap_or(false)),
                entrypoint: cmd.first().cloned(),
                arguments: Some(cmd.iter().skip(1).cloned().collect()),
            }),
            open_stdin: Some(cfg.attach_stdin.unwrap_or(false)),
            open_stderr: Some(cfg.attach_stderr.unwrap_or(false)),
            open_stdout: Some(cfg.attach_stdout.unwrap_or(false)),
            container_id: Some(exec.container_id.clone()),
            pid: Some(st.pid),
        })
    }

    pub(crate) async fn do_exec_resize(
        &self,
        exec_id: &str,
        height: u16,
        width: u16,
    ) -> Result<()> {
        let exec = self.find_exec(exec_id)?;
        let c = self.find(&exec.container_id)?;
        let mut launched = exec.launched.subscribe();
        let wait = launched.wait_for(|l| *l);
        if !matches!(tokio::time::timeout(LAUNCH_WAIT, wait).await, Ok(Ok(_))) {
            return Err(EngineError::Conflict(
                "timeout waiting for exec session ready".into(),
            ));
        }
        c.shim()
            .exec_resize(&exec.id, height, width)
            .await
            .ctx(|| format!("resize exec {exec_id}"))
    }
}
