//! Verbs that change a container's state: start, stop, restart, kill, pause, unpause, rm,
//! wait, rename, update.

use bollard::models::ContainerUpdateBody;
use bollard::query_parameters::{
    KillContainerOptions, RemoveContainerOptions, RenameContainerOptions, RestartContainerOptions,
    StopContainerOptions, WaitContainerOptions,
};
use bollard::Docker;
use futures::StreamExt;

use skiff_core::units::ram_in_bytes;

use super::{daemon_error, each, Outcome};

/// One or more container names or ids.
#[derive(clap::Args, Debug)]
pub struct Names {
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// Attach STDOUT/STDERR and forward signals
    #[arg(short = 'a', long)]
    attach: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct StopArgs {
    /// Signal to send to the container
    #[arg(short = 's', long)]
    signal: Option<String>,
    /// Seconds to wait before killing the container
    #[arg(
        short = 't',
        long = "time",
        alias = "timeout",
        allow_hyphen_values = true
    )]
    time: Option<i32>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct KillArgs {
    /// Signal to send to the container
    #[arg(short = 's', long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short = 'f', long)]
    force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short = 'v', long)]
    volumes: bool,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit (e.g. 128m)
    #[arg(short = 'm', long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long = "cpu-shares")]
    cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct RenameArgs {
    container: String,
    new_name: String,
}

pub async fn start(docker: &Docker, args: StartArgs) -> Outcome {
    if args.attach {
        let [id] = args.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        let opts = bollard::query_parameters::AttachContainerOptions {
            stdout: true,
            stderr: true,
            stream: true,
            ..Default::default()
        };
        let attached = docker
            .attach_container(id, Some(opts))
            .await
            .map_err(daemon_error)?;
        let mut waiter = docker.wait_container(
            id,
            Some(WaitContainerOptions {
                condition: "next-exit".into(),
            }),
        );
        docker
            .start_container(id, None)
            .await
            .map_err(daemon_error)?;
        super::run::pump(attached.output, None).await?;
        return super::run::exit_code(waiter.next().await);
    }
    each(&args.containers, |c| async move {
        docker.start_container(&c, None).await
    })
    .await
}

pub async fn stop(docker: &Docker, args: StopArgs) -> Outcome {
    let opts = StopContainerOptions {
        signal: args.signal.clone(),
        t: args.time,
    };
    each(&args.containers, |c| {
        let opts = opts.clone();
        async move { docker.stop_container(&c, Some(opts)).await }
    })
    .await
}

pub async fn restart(docker: &Docker, args: StopArgs) -> Outcome {
    let opts = RestartContainerOptions {
        signal: args.signal.clone(),
        t: args.time,
    };
    each(&args.containers, |c| {
        let opts = opts.clone();
        async move { docker.restart_container(&c, Some(opts)).await }
    })
    .await
}

pub async fn kill(docker: &Docker, args: KillArgs) -> Outcome {
    let opts = KillContainerOptions {
        signal: args.signal.clone(),
    };
    each(&args.containers, |c| {
        let opts = opts.clone();
        async move { docker.kill_container(&c, Some(opts)).await }
    })
    .await
}

pub async fn pause(docker: &Docker, args: Names) -> Outcome {
    each(&args.containers, |c| async move {
        docker.pause_container(&c).await
    })
    .await
}

pub async fn unpause(docker: &Docker, args: Names) -> Outcome {
    each(&args.containers, |c| async move {
        docker.unpause_container(&c).await
    })
    .await
}

pub async fn rm(docker: &Docker, args: RmArgs) -> Outcome {
    let opts = RemoveContainerOptions {
        force: args.force,
        v: args.volumes,
        link: false,
    };
    each(&args.containers, |c| {
        let opts = opts.clone();
        async move { docker.remove_container(&c, Some(opts)).await }
    })
    .await
}

pub async fn wait(docker: &Docker, args: Names) -> Outcome {
    let mut failed = false;
    for c in &args.containers {
        let mut waiter = docker.wait_container(c, None::<WaitContainerOptions>);
        match super::run::exit_code(waiter.next().await) {
            Ok(code) => println!("{code}"),
            Err(e) => {
                eprintln!("{e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

pub async fn rename(docker: &Docker, args: RenameArgs) -> Outcome {
    let opts = RenameContainerOptions {
        name: args.new_name,
    };
    docker
        .rename_container(&args.container, opts)
        .await
        .map_err(daemon_error)?;
    Ok(0)
}

pub async fn update(docker: &Docker, args: UpdateArgs) -> Outcome {
    let swap = |raw: &str| {
        if raw == "-1" {
            Ok(-1)
        } else {
            ram_in_bytes(raw)
        }
    };
    let body = ContainerUpdateBody {
        memory: args.memory.as_deref().map(ram_in_bytes).transpose()?,
        memory_swap: args.memory_swap.as_deref().map(swap).transpose()?,
        nano_cpus: args.cpus.map(|c| (c * 1e9) as i64),
        cpu_shares: args.cpu_shares,
        pids_limit: args.pids_limit,
        restart_policy: args
            .restart
            .as_deref()
            .map(super::run::restart_policy)
            .transpose()?,
        ..Default::default()
    };
    each(&args.containers, |c| {
        let body = body.clone();
        async move { docker.update_container(&c, body).await }
    })
    .await
}
