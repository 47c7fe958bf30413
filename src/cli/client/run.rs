//! `skiff run` and `skiff create`: docker's container flags turned into a create request, and
//! run's attach → wait → start sequence with the container's exit code as ours.

use std::collections::HashMap;

use anyhow::{bail, Context};
use bollard::models::{ContainerCreateBody, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use bollard::query_parameters::{
    AttachContainerOptions, CreateContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;

use skiff_core::units::ram_in_bytes;

use super::{daemon_error, term, Conn, Outcome};

/// Flags of `run` and `create`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID (run only)
    #[arg(short = 'd', long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short = 't', long)]
    tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long = "env-file")]
    env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short = 'u', long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Container host name
    #[arg(long = "hostname")]
    hostname: Option<String>,
    /// Bind mount a volume (src:dst[:ro])
    #[arg(short = 'v', long = "volume")]
    volume: Vec<String>,
    /// Mount a tmpfs directory (path[:options])
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Memory limit (e.g. 64m)
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy: no, always, unless-stopped, on-failure[:max-retries]
    #[arg(long)]
    restart: Option<String>,
    /// Connect a container to a network
    #[arg(long = "network", alias = "net")]
    network: Option<String>,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Signal to stop the container
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Timeout (in seconds) to stop a container
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<i64>,
    /// Set meta data on a container (key=value)
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Add Linux capabilities
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long = "read-only")]
    read_only: bool,
    /// Security Options
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// Runtime to use for this container (embedded, runc, crun)
    #[arg(long)]
    runtime: Option<String>,
    /// Image to run
    image: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn restart_policy(raw: &str) -> anyhow::Result<RestartPolicy> {
    let (name, count) = match raw.split_once(':') {
        Some((n, c)) => (
            n,
            Some(
                c.parse::<i64>()
                    .map_err(|_| anyhow::anyhow!("invalid restart policy '{raw}'"))?,
            ),
        ),
        None => (raw, None),
    };
    let name = match name {
        "no" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        other => bail!("invalid restart policy '{other}'"),
    };
    Ok(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

/// `-e NAME` takes NAME's value from our environment; `-e NAME=value` is literal.
fn env_entry(raw: &str) -> Option<String> {
    if raw.contains('=') {
        Some(raw.to_owned())
    } else {
        std::env::var(raw).ok().map(|v| format!("{raw}={v}"))
    }
}

impl RunArgs {
    fn body(&self) -> anyhow::Result<ContainerCreateBody> {
        let mut env = Vec::new();
        for file in &self.env_file {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("reading {}", file.display()))?;
            env.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .filter_map(env_entry),
            );
        }
        env.extend(self.env.iter().filter_map(|e| env_entry(e)));
        let labels: HashMap<String, String> = self
            .label
            .iter()
            .map(|l| match l.split_once('=') {
                Some((k, v)) => (k.to_owned(), v.to_owned()),
                None => (l.clone(), String::new()),
            })
            .collect();
        let tmpfs: HashMap<String, String> = self
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((p, o)) => (p.to_owned(), o.to_owned()),
                None => (t.clone(), String::new()),
            })
            .collect();
        let host_config = HostConfig {
            binds: (!self.volume.is_empty()).then(|| self.volume.clone()),
            tmpfs: (!tmpfs.is_empty()).then_some(tmpfs),
            memory: self.memory.as_deref().map(ram_in_bytes).transpose()?,
            nano_cpus: self.cpus.map(|c| (c * 1e9) as i64),
            pids_limit: self.pids_limit,
            restart_policy: self.restart.as_deref().map(restart_policy).transpose()?,
            network_mode: self.network.clone(),
            init: self.init.then_some(true),
            privileged: self.privileged.then_some(true),
            cap_add: (!self.cap_add.is_empty()).then(|| self.cap_add.clone()),
            cap_drop: (!self.cap_drop.is_empty()).then(|| self.cap_drop.clone()),
            readonly_rootfs: self.read_only.then_some(true),
            security_opt: (!self.security_opt.is_empty()).then(|| self.security_opt.clone()),
            runtime: self.runtime.clone(),
            auto_remove: self.rm.then_some(true),
            ..Default::default()
        };
        let attach = !self.detach;
        Ok(ContainerCreateBody {
            image: Some(self.image.clone()),
            cmd: (!self.command.is_empty()).then(|| self.command.clone()),
            entrypoint: self.entrypoint.as_ref().map(|e| {
                if e.is_empty() {
                    vec![]
                } else {
                    vec![e.clone()]
                }
            }),
            env: (!env.is_empty()).then_some(env),
            working_dir: self.workdir.clone(),
            user: self.user.clone(),
            hostname: self.hostname.clone(),
            labels: (!labels.is_empty()).then_some(labels),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            tty: Some(self.tty),
            open_stdin: Some(self.interactive),
            stdin_once: Some(self.interactive),
            attach_stdin: Some(attach && self.interactive),
            attach_stdout: Some(attach),
            attach_stderr: Some(attach),
            host_config: Some(host_config),
            ..Default::default()
        })
    }
}

/// Creates the container; a missing image is reported as docker does (after trying to pull).
async fn create_container(docker: &Docker, conn: &Conn, args: &RunArgs) -> anyhow::Result<String> {
    let body = args.body()?;
    let options = CreateContainerOptions {
        name: args.name.clone(),
        platform: String::new(),
    };
    match docker
        .create_container(Some(options.clone()), body.clone())
        .await
    {
        Ok(created) => {
            for warning in created.warnings {
                eprintln!("WARNING: {warning}");
            }
            Ok(created.id)
        }
        // Like the docker CLI (errdefs.IsNotFound): a 404 to a create is a missing image.
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => {
            eprintln!("Unable to find image '{}' locally", args.image);
            // The pull's progress goes to stderr, as the docker CLI draws it.
            let reference = skiff_image::ImageRef::parse(&args.image)?;
            let raw = super::registry::raw_client(conn, docker);
            let mut stderr = std::io::stderr();
            let tty = std::io::IsTerminal::is_terminal(&stderr);
            super::registry::pull_image(&raw, &reference, None, Some(&mut stderr), tty).await?;
            let created = docker
                .create_container(Some(options), body)
                .await
                .map_err(daemon_error)?;
            Ok(created.id)
        }
        Err(e) => Err(daemon_error(e)),
    }
}

pub async fn create(docker: &Docker, conn: &Conn, args: RunArgs) -> Outcome {
    println!("{}", create_container(docker, conn, &args).await?);
    Ok(0)
}

pub async fn run(docker: &Docker, conn: &Conn, args: RunArgs) -> Outcome {
    let id = create_container(docker, conn, &args).await?;
    if args.detach {
        docker
            .start_container(&id, None)
            .await
            .map_err(daemon_error)?;
        println!("{id}");
        return Ok(0);
    }
    let attach = AttachContainerOptions {
        stdin: args.interactive,
        stdout: true,
        stderr: true,
        stream: true,
        logs: false,
        detach_keys: None,
    };
    let attached = docker
        .attach_container(&id, Some(attach))
        .await
        .map_err(daemon_error)?;
    let condition = if args.rm { "removed" } else { "next-exit" };
    let mut waiter = docker.wait_container(
        &id,
        Some(WaitContainerOptions {
            condition: condition.into(),
        }),
    );
    let exit = tokio::spawn(async move { exit_code(waiter.next().await) });
    let _raw = args.tty.then(term::RawMode::enable);
    docker
        .start_container(&id, None)
        .await
        .map_err(daemon_error)?;
    let _resizer = term::AbortOnDrop(
        args.tty
            .then(|| {
                let (docker, id) = (docker.clone(), id.clone());
                term::follow_size(move |rows, cols| {
                    let (docker, id) = (docker.clone(), id.clone());
                    async move {
                        let size = bollard::query_parameters::ResizeContainerTTYOptions {
                            h: rows.into(),
                            w: cols.into(),
                        };
                        let _ = docker.resize_container_tty(&id, size).await;
                    }
                })
            })
            .flatten(),
    );
    pump(attached.output, args.interactive.then_some(attached.input)).await?;
    exit.await.context("waiting for the container")?
}

/// The exit status from a wait stream item (bollard reports non-zero codes as errors).
pub fn exit_code(
    item: Option<Result<bollard::models::ContainerWaitResponse, bollard::errors::Error>>,
) -> anyhow::Result<u8> {
    match item {
        Some(Ok(resp)) => Ok(resp.status_code.clamp(0, 255) as u8),
        Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
            Ok(code.clamp(0, 255) as u8)
        }
        Some(Err(e)) => Err(daemon_error(e)),
        None => bail!("the engine ended the wait without an exit status"),
    }
}

/// Copies attached output to our stdout/stderr and, when given, our stdin to the container,
/// until the output ends.
pub async fn pump(
    mut output: std::pin::Pin<
        Box<
            dyn futures::Stream<
                    Item = Result<bollard::container::LogOutput, bollard::errors::Error>,
                > + Send,
        >,
    >,
    input: Option<std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>>,
) -> anyhow::Result<()> {
    use bollard::container::LogOutput;
    use std::io::Write;
    let stdin_task = input.map(|mut input| {
        let mut chunks = stdin_chunks();
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            while let Some(chunk) = chunks.recv().await {
                if input.write_all(&chunk).await.is_err() || input.flush().await.is_err() {
                    break;
                }
            }
            let _ = input.shutdown().await;
        })
    });
    while let Some(chunk) = output.next().await {
        match chunk.map_err(daemon_error)? {
            LogOutput::StdErr { message } => {
                let mut err = std::io::stderr().lock();
                err.write_all(&message)?;
                err.flush()?;
            }
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                let mut out = std::io::stdout().lock();
                out.write_all(&message)?;
                out.flush()?;
            }
            LogOutput::StdIn { .. } => {}
        }
    }
    if let Some(task) = stdin_task {
        task.abort();
    }
    Ok(())
}

/// Our stdin as chunks, read on a thread of its own (blocking reads cannot be cancelled; the
/// thread ends with the process). The channel closes at end of input.
fn stdin_chunks() -> tokio::sync::mpsc::Receiver<Vec<u8>> {
    use std::io::Read;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restart_policies_parse() {
        let p = restart_policy("on-failure:3").unwrap();
        assert_eq!(p.name, Some(RestartPolicyNameEnum::ON_FAILURE));
        assert_eq!(p.maximum_retry_count, Some(3));
        assert!(restart_policy("sometimes").is_err());
    }
}
