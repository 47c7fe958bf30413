//! Verbs that read: ps, inspect, logs, top, events, version, info.

use std::collections::HashMap;

use anyhow::bail;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions, TopOptions};
use bollard::Docker;
use futures::StreamExt;
use std::io::Write;

use super::{ago, binary_size, daemon_error, print_table, Outcome};

#[derive(clap::Args, Debug)]
pub struct Empty {}

#[derive(clap::Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short = 'a', long)]
    all: bool,
    /// Only display container IDs
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
    /// Show n last created containers (includes all states)
    #[arg(short = 'n', long = "last")]
    last: Option<i32>,
    /// Don't truncate output
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(clap::Args, Debug)]
pub struct InspectArgs {
    /// Only inspect objects of this type (container or image)
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short = 'f', long)]
    follow: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a unix timestamp or a relative duration (e.g. 42s, 10m, 1h)
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a unix timestamp or a relative duration
    #[arg(long)]
    until: Option<String>,
    /// Show timestamps
    #[arg(short = 't', long)]
    timestamps: bool,
    container: String,
}

#[derive(clap::Args, Debug)]
pub struct TopArgs {
    container: String,
    /// ps options
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    ps_args: Vec<String>,
}

#[derive(clap::Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp
    #[arg(long)]
    since: Option<String>,
    /// Stream events until this timestamp
    #[arg(long)]
    until: Option<String>,
    /// Filter output based on conditions provided (key=value)
    #[arg(short = 'f', long = "filter")]
    filter: Vec<String>,
}

/// `key=value` flags into Docker's filter map.
fn filter_map(pairs: &[String]) -> anyhow::Result<Option<HashMap<String, Vec<String>>>> {
    let mut map: HashMap<String, Vec<String>> = HashMap::new();
    for pair in pairs {
        let Some((k, v)) = pair.split_once('=') else {
            bail!("bad format of filter (expected name=value)")
        };
        map.entry(k.to_owned()).or_default().push(v.to_owned());
    }
    Ok((!map.is_empty()).then_some(map))
}

/// A unix timestamp from `--since`/`--until`: a timestamp passes through, a duration such as
/// `10m` counts back from now.
fn timestamp(raw: &str) -> anyhow::Result<i64> {
    if let Ok(secs) = raw.parse::<f64>() {
        return Ok(secs as i64);
    }
    let (num, unit) = raw.split_at(raw.find(|c: char| !c.is_ascii_digit()).unwrap_or(raw.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid time value: {raw}"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => bail!("invalid time value: {raw}"),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    Ok(now - secs)
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        format!("{}…", s.chars().take(max - 1).collect::<String>())
    }
}

pub async fn ps(docker: &Docker, args: PsArgs) -> Outcome {
    let opts = ListContainersOptions {
        all: args.all,
        limit: args.last,
        size: false,
        filters: filter_map(&args.filter)?,
    };
    let containers = docker
        .list_containers(Some(opts))
        .await
        .map_err(daemon_error)?;
    if args.quiet {
        for c in containers {
            let id = c.id.unwrap_or_default();
            println!(
                "{}",
                if args.no_trunc {
                    &id
                } else {
                    skiff_core::ids::short_id(&id)
                }
            );
        }
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = containers
        .into_iter()
        .map(|c| {
            let id = c.id.unwrap_or_default();
            let command = format!("\"{}\"", c.command.unwrap_or_default());
            let names = c
                .names
                .unwrap_or_default()
                .iter()
                .map(|n| n.trim_start_matches('/').to_owned())
                .collect::<Vec<_>>();
            vec![
                if args.no_trunc {
                    id.clone()
                } else {
                    skiff_core::ids::short_id(&id).to_owned()
                },
                c.image.unwrap_or_default(),
                if args.no_trunc {
                    command
                } else {
                    truncate(&command, 20)
                },
                ago(c.created.unwrap_or_default()),
                c.status.unwrap_or_default(),
                super::network::ports_column(c.ports.as_deref().unwrap_or_default()),
                names.join(","),
            ]
        })
        .collect();
    print_table(
        &[
            "CONTAINER ID",
            "IMAGE",
            "COMMAND",
            "CREATED",
            "STATUS",
            "PORTS",
            "NAMES",
        ],
        &rows,
    );
    Ok(0)
}

pub async fn inspect(docker: &Docker, args: InspectArgs) -> Outcome {
    let mut out = Vec::new();
    let mut failed = false;
    for name in &args.names {
        let container = match args.kind.as_deref() {
            Some("image") | Some("network") => None,
            _ => docker
                .inspect_container(name, None)
                .await
                .ok()
                .map(serde_json::to_value),
        };
        let found = match container {
            Some(v) => Some(v?),
            None if !matches!(args.kind.as_deref(), Some("container") | Some("network")) => docker
                .inspect_image(name)
                .await
                .ok()
                .map(serde_json::to_value)
                .transpose()?,
            None => None,
        };
        let found = match found {
            None if matches!(args.kind.as_deref(), None | Some("network")) => docker
                .inspect_network(name, None)
                .await
                .ok()
                .map(serde_json::to_value)
                .transpose()?,
            other => other,
        };
        match found {
            Some(v) => out.push(v),
            None => {
                eprintln!("Error: No such object: {name}");
                failed = true;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(u8::from(failed))
}

pub async fn logs(docker: &Docker, args: LogsArgs) -> Outcome {
    let opts = LogsOptions {
        follow: args.follow,
        stdout: true,
        stderr: true,
        since: args
            .since
            .as_deref()
            .map(timestamp)
            .transpose()?
            .unwrap_or(0) as i32,
        until: args
            .until
            .as_deref()
            .map(timestamp)
            .transpose()?
            .unwrap_or(0) as i32,
        timestamps: args.timestamps,
        tail: args.tail,
    };
    let mut stream = docker.logs(&args.container, Some(opts));
    while let Some(chunk) = stream.next().await {
        match chunk.map_err(daemon_error)? {
            bollard::container::LogOutput::StdErr { message } => {
                std::io::stderr().lock().write_all(&message)?
            }
            other => {
                let mut out = std::io::stdout().lock();
                out.write_all(&other.into_bytes())?;
                out.flush()?;
            }
        }
    }
    Ok(0)
}

pub async fn top(docker: &Docker, args: TopArgs) -> Outcome {
    let opts = (!args.ps_args.is_empty()).then(|| TopOptions {
        ps_args: args.ps_args.join(" "),
    });
    let top = docker
        .top_processes(&args.container, opts)
        .await
        .map_err(daemon_error)?;
    let titles = top.titles.unwrap_or_default();
    let header: Vec<&str> = titles.iter().map(String::as_str).collect();
    print_table(&header, &top.processes.unwrap_or_default());
    Ok(0)
}

pub async fn events(docker: &Docker, args: EventsArgs) -> Outcome {
    let opts = EventsOptions {
        since: args
            .since
            .as_deref()
            .map(timestamp)
            .transpose()?
            .map(|t| t.to_string()),
        until: args
            .until
            .as_deref()
            .map(timestamp)
            .transpose()?
            .map(|t| t.to_string()),
        filters: filter_map(&args.filter)?,
    };
    let mut stream = docker.events(Some(opts));
    while let Some(event) = stream.next().await {
        let e = event.map_err(daemon_error)?;
        let time = e.time_nano.map(chrono_time).unwrap_or_default();
        let actor = e.actor.unwrap_or_default();
        let mut attrs: Vec<String> = actor
            .attributes
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        attrs.sort();
        let kind = e.typ.map(|t| t.to_string()).unwrap_or_default();
        println!(
            "{time} {kind} {} {} ({})",
            e.action.unwrap_or_default(),
            actor.id.unwrap_or_default(),
            attrs.join(", ")
        );
    }
    Ok(0)
}

/// RFC 3339 in UTC with nanoseconds, as `docker events` prints.
fn chrono_time(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let sub = nanos.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{sub:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

pub async fn version(docker: &Docker, _args: Empty) -> Outcome {
    println!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           {}/{}\n",
        env!("CARGO_PKG_VERSION"),
        docker.client_version(),
        std::env::consts::OS,
        std::env::consts::ARCH
    );
    let v = docker.version().await.map_err(daemon_error)?;
    println!("Server:");
    println!(" Engine:");
    println!("  Version:          {}", v.version.unwrap_or_default());
    println!(
        "  API version:      {} (minimum version {})",
        v.api_version.unwrap_or_default(),
        v.min_api_version.unwrap_or_default()
    );
    println!(
        "  OS/Arch:          {}/{}",
        v.os.unwrap_or_default(),
        v.arch.unwrap_or_default()
    );
    println!(
        "  Kernel Version:   {}",
        v.kernel_version.unwrap_or_default()
    );
    Ok(0)
}

pub async fn info(docker: &Docker, _args: Empty) -> Outcome {
    let i = docker.info().await.map_err(daemon_error)?;
    println!("Server:");
    println!(" Containers: {}", i.containers.unwrap_or(0));
    println!("  Running: {}", i.containers_running.unwrap_or(0));
    println!("  Paused: {}", i.containers_paused.unwrap_or(0));
    println!("  Stopped: {}", i.containers_stopped.unwrap_or(0));
    println!(" Images: {}", i.images.unwrap_or(0));
    println!(" Server Version: {}", i.server_version.unwrap_or_default());
    println!(" Storage Driver: {}", i.driver.unwrap_or_default());
    println!(
        " Cgroup Driver: {}",
        i.cgroup_driver.map(|d| d.to_string()).unwrap_or_default()
    );
    println!(
        " Cgroup Version: {}",
        i.cgroup_version.map(|d| d.to_string()).unwrap_or_default()
    );
    println!(
        " Default Runtime: {}",
        i.default_runtime.unwrap_or_default()
    );
    println!(" Kernel Version: {}", i.kernel_version.unwrap_or_default());
    println!(
        " Operating System: {}",
        i.operating_system.unwrap_or_default()
    );
    println!(" CPUs: {}", i.ncpu.unwrap_or(0));
    println!(
        " Total Memory: {}",
        binary_size(i.mem_total.unwrap_or(0).max(0) as u64)
    );
    println!(
        " Docker Root Dir: {}",
        i.docker_root_dir.unwrap_or_default()
    );
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_times_are_rfc3339() {
        assert_eq!(
            chrono_time(1_700_000_000_000_000_001),
            "2023-11-14T22:13:20.000000001Z"
        );
        assert_eq!(chrono_time(0), "1970-01-01T00:00:00.000000000Z");
    }

    #[test]
    fn filters_need_key_value() {
        let m = filter_map(&["status=exited".into(), "status=created".into()])
            .unwrap()
            .unwrap();
        assert_eq!(m["status"], vec!["exited", "created"]);
        assert!(filter_map(&["bogus".into()]).is_err());
    }
}
