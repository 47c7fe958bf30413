//! The docker-like client verbs (`skiff run`, `skiff ps`, …): a client of the Docker Engine
//! API served by `skiff daemon`, through bollard. Verbs, flags and output mirror docker's.
//!
//! Nothing here touches engine state directly; every verb is API calls.

mod cp;
mod docker_config;
mod exec;
mod images;
mod lifecycle;
mod progress;
mod registry;
mod run;
mod show;
mod stats;
mod term;
mod transport;

use std::process::ExitCode;

use anyhow::Context;
use bollard::Docker;

/// Where the engine is.
#[derive(clap::Args, Debug, Clone)]
pub struct Conn {
    /// Engine socket (`unix:///path` or a path); default `$DOCKER_HOST`, then /run/skiff/skiff.sock
    #[arg(short = 'H', long = "host", env = "DOCKER_HOST")]
    host: Option<String>,
}

/// A verb's own flags plus the connection flags every verb takes.
#[derive(clap::Args, Debug)]
pub struct With<T: clap::Args> {
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    args: T,
}

/// Client verbs.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Create and run a new container from an image
    Run(Box<With<run::RunArgs>>),
    /// Create a new container
    Create(Box<With<run::RunArgs>>),
    /// Start one or more stopped containers
    Start(With<lifecycle::StartArgs>),
    /// Stop one or more running containers
    Stop(With<lifecycle::StopArgs>),
    /// Restart one or more containers
    Restart(With<lifecycle::StopArgs>),
    /// Kill one or more running containers
    Kill(With<lifecycle::KillArgs>),
    /// Pause all processes within one or more containers
    Pause(With<lifecycle::Names>),
    /// Unpause all processes within one or more containers
    Unpause(With<lifecycle::Names>),
    /// Remove one or more containers
    Rm(With<lifecycle::RmArgs>),
    /// Block until one or more containers stop, then print their exit codes
    Wait(With<lifecycle::Names>),
    /// Rename a container
    Rename(With<lifecycle::RenameArgs>),
    /// Update configuration of one or more containers
    Update(With<lifecycle::UpdateArgs>),
    /// List containers
    Ps(With<show::PsArgs>),
    /// Return low-level information on containers or images
    Inspect(With<show::InspectArgs>),
    /// Fetch the logs of a container
    Logs(With<show::LogsArgs>),
    /// Display the running processes of a container
    Top(With<show::TopArgs>),
    /// Display a live stream of container resource usage statistics
    Stats(With<stats::StatsArgs>),
    /// Get real time events from the server
    Events(With<show::EventsArgs>),
    /// Show the client and engine version information
    Version(With<show::Empty>),
    /// Display system-wide information
    Info(With<show::Empty>),
    /// Copy files/folders between a container and the local filesystem
    Cp(With<cp::CpArgs>),
    /// Execute a command in a running container
    Exec(With<exec::ExecArgs>),
    /// List images
    Images(With<images::ListArgs>),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag(With<images::TagArgs>),
    /// Remove one or more images
    Rmi(With<images::RmiArgs>),
    /// Load an image from a tar archive or STDIN
    Load(With<images::LoadArgs>),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(With<images::SaveArgs>),
    /// Import the contents from a tarball to create a filesystem image
    Import(With<images::ImportArgs>),
    /// Manage images
    #[command(subcommand)]
    Image(images::ImageCommand),
    /// Download an image from a registry
    Pull(With<registry::PullArgs>),
    /// Upload an image to a registry
    Push(With<registry::PushArgs>),
    /// Log in to a registry (credentials are kept in the docker CLI's config.json)
    Login(With<registry::LoginArgs>),
    /// Log out from a registry
    Logout(registry::LogoutArgs),
}

/// The engine socket path from `--host`, `DOCKER_HOST` or the default.
fn socket_path(conn: &Conn) -> String {
    match &conn.host {
        Some(h) => h.strip_prefix("unix://").unwrap_or(h).to_owned(),
        None => skiff_core::paths::DEFAULT_ENGINE_SOCKET.to_owned(),
    }
}

async fn connect(conn: &Conn) -> anyhow::Result<Docker> {
    let path = socket_path(conn);
    let docker = transport::unix(path.as_ref(), 600)
        .with_context(|| format!("connecting to the engine at unix://{path}"))?;
    docker.negotiate_version().await.map_err(|e| {
        daemon_error(e).context(format!(
            "cannot connect to the skiff daemon at unix://{path}. Is the daemon running?"
        ))
    })
}

/// Formats an API error the way the docker CLI does.
pub fn daemon_error(e: bollard::errors::Error) -> anyhow::Error {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => {
            anyhow::anyhow!("Error response from daemon: {message}")
        }
        other => anyhow::Error::new(other),
    }
}

/// Outcome of a verb: the process exit code, or an error (exit 1, or 125 for run/create).
pub type Outcome = anyhow::Result<u8>;

pub fn run(command: Command) -> ExitCode {
    let failure_code = match command {
        Command::Run(_) | Command::Create(_) => 125,
        _ => 1,
    };
    // One thread: a client mostly waits on one request at a time, and handing every
    // response from a worker thread to the waiting one costs a wake-up each (measurable in
    // `run --rm`, which makes five requests). Blocking work still goes to spawn_blocking.
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("skiff: starting tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(dispatch(command));
    // Blocking stdin readers must not keep the process alive.
    rt.shutdown_background();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("skiff: {e:#}");
            ExitCode::from(failure_code)
        }
    }
}

async fn dispatch(command: Command) -> Outcome {
    macro_rules! go {
        ($w:expr, $f:path) => {{
            let w = $w;
            let docker = connect(&w.conn).await?;
            $f(&docker, w.args).await
        }};
    }
    match command {
        Command::Run(w) => {
            let docker = connect(&w.conn).await?;
            run::run(&docker, &w.conn, w.args).await
        }
        Command::Create(w) => {
            let docker = connect(&w.conn).await?;
            run::create(&docker, &w.conn, w.args).await
        }
        Command::Start(w) => go!(w, lifecycle::start),
        Command::Stop(w) => go!(w, lifecycle::stop),
        Command::Restart(w) => go!(w, lifecycle::restart),
        Command::Kill(w) => go!(w, lifecycle::kill),
        Command::Pause(w) => go!(w, lifecycle::pause),
        Command::Unpause(w) => go!(w, lifecycle::unpause),
        Command::Rm(w) => go!(w, lifecycle::rm),
        Command::Wait(w) => go!(w, lifecycle::wait),
        Command::Rename(w) => go!(w, lifecycle::rename),
        Command::Update(w) => go!(w, lifecycle::update),
        Command::Ps(w) => go!(w, show::ps),
        Command::Inspect(w) => go!(w, show::inspect),
        Command::Logs(w) => go!(w, show::logs),
        Command::Top(w) => go!(w, show::top),
        Command::Stats(w) => go!(w, stats::stats),
        Command::Events(w) => go!(w, show::events),
        Command::Version(w) => go!(w, show::version),
        Command::Info(w) => go!(w, show::info),
        Command::Cp(w) => go!(w, cp::cp),
        Command::Exec(w) => go!(w, exec::exec),
        Command::Images(w) => go!(w, images::list),
        Command::Tag(w) => go!(w, images::tag),
        Command::Rmi(w) => go!(w, images::rmi),
        Command::Load(w) => go!(w, images::load),
        Command::Save(w) => go!(w, images::save),
        Command::Import(w) => go!(w, images::import),
        Command::Image(sub) => images::image_command(sub).await,
        Command::Pull(w) => {
            let docker = connect(&w.conn).await?;
            registry::pull(&w.conn, &docker, w.args).await
        }
        Command::Push(w) => {
            let docker = connect(&w.conn).await?;
            registry::push(&w.conn, &docker, w.args).await
        }
        Command::Login(w) => {
            let docker = connect(&w.conn).await?;
            registry::login(&w.conn, &docker, w.args).await
        }
        Command::Logout(args) => registry::logout(args).await,
    }
}

/// Runs `f` on each name, printing the name on success and the error otherwise, like the
/// docker CLI's multi-container verbs; exit 1 if any failed.
async fn each<F, Fut>(names: &[String], mut f: F) -> Outcome
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), bollard::errors::Error>>,
{
    let mut failed = false;
    for name in names {
        match f(name.clone()).await {
            Ok(()) => println!("{name}"),
            Err(e) => {
                eprintln!("{:#}", daemon_error(e));
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

/// Prints rows as docker's tables: columns padded to their widest cell plus three spaces.
fn print_table(header: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(header, rows));
}

/// [`print_table`]'s text, one `\n`-terminated line per row.
fn format_table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i < last {
                text.push_str(&" ".repeat(widths[i] - cell.chars().count() + 3));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// "5 minutes ago" for a unix timestamp.
fn ago(unix: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(unix);
    format!("{} ago", skiff_core::units::human_duration_secs(now - unix))
}

/// Docker's `units.HumanSizeWithPrecision(size, 3)`: decimal units, three significant digits.
fn human_size(bytes: i64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < units.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    let mut text = format!("{value:.digits$}");
    if text.contains('.') {
        text = text.trim_end_matches('0').trim_end_matches('.').to_owned();
    }
    format!("{text}{}", units[unit])
}

/// Docker's `units.BytesSize` (binary units, two decimals), used by `stats`.
fn binary_size(bytes: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < units.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.2}{}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_docker() {
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(1_000_000), "1MB");
        assert_eq!(human_size(12_340_000), "12.3MB");
        assert_eq!(binary_size(64 * 1024 * 1024), "64.00MiB");
    }
}
