//! `docker inspect` and `docker ps`: records rendered as Docker's wire models, list filters,
//! and the human-readable status column.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerPruneResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, DriverData, Health, HealthStatusEnum, HostConfig,
    HostConfigCgroupnsModeEnum, MountPoint,
};
use chrono::{DateTime, Utc};

use super::Container;
use crate::error::{EngineError, Result};
use crate::filters::Filters;
use crate::store::{ContainerRecord, Status};
use crate::volumes::dir_size;
use crate::{Engine, ListOptions};

/// Go's zero time, which Docker prints for "never".
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

fn or_zero(t: &str) -> String {
    if t.is_empty() {
        ZERO_TIME.to_string()
    } else {
        t.to_string()
    }
}

fn parse_time(t: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// go-units' `HumanDuration` of a time difference, as `docker ps` prints it.
fn human_duration(d: chrono::Duration) -> String {
    skiff_core::units::human_duration(d.to_std().unwrap_or_default())
}

/// The STATUS column of `docker ps`.
pub(crate) fn status_text(rec: &ContainerRecord, now: DateTime<Utc>) -> String {
    let since = |t: &str| parse_time(t).map(|t| human_duration(now - t));
    let s = &rec.state;
    match s.status {
        Status::Created => "Created".into(),
        Status::Running => format!("Up {}", since(&s.started_at).unwrap_or_default()),
        Status::Paused => format!("Up {} (Paused)", since(&s.started_at).unwrap_or_default()),
        Status::Restarting => match since(&s.finished_at) {
            Some(ago) => format!("Restarting ({}) {ago} ago", s.exit_code),
            None => format!("Restarting ({})", s.exit_code),
        },
        Status::Removing => "Removal In Progress".into(),
        Status::Dead => "Dead".into(),
        Status::Exited => match since(&s.finished_at) {
            Some(ago) => format!("Exited ({}) {ago} ago", s.exit_code),
            None => format!("Exited ({})", s.exit_code),
        },
    }
}

/// What `docker ps` appends for a container with a health check.
fn health_suffix(h: Option<&Health>) -> String {
    match h.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => " (health: starting)".into(),
        Some(HealthStatusEnum::HEALTHY) => " (healthy)".into(),
        Some(HealthStatusEnum::UNHEALTHY) => " (unhealthy)".into(),
        _ => String::new(),
    }
}

fn state_enum(s: Status) -> ContainerStateStatusEnum {
    match s {
        Status::Created => ContainerStateStatusEnum::CREATED,
        Status::Running => ContainerStateStatusEnum::RUNNING,
        Status::Paused => ContainerStateStatusEnum::PAUSED,
        Status::Restarting => ContainerStateStatusEnum::RESTARTING,
        Status::Removing => ContainerStateStatusEnum::REMOVING,
        Status::Exited => ContainerStateStatusEnum::EXITED,
        Status::Dead => ContainerStateStatusEnum::DEAD,
    }
}

fn summary_state(s: Status) -> ContainerSummaryStateEnum {
    match s {
        Status::Created => ContainerSummaryStateEnum::CREATED,
        Status::Running => ContainerSummaryStateEnum::RUNNING,
        Status::Paused => ContainerSummaryStateEnum::PAUSED,
        Status::Restarting => ContainerSummaryStateEnum::RESTARTING,
        Status::Removing => ContainerSummaryStateEnum::REMOVING,
        Status::Exited => ContainerSummaryStateEnum::EXITED,
        Status::Dead => ContainerSummaryStateEnum::DEAD,
    }
}

/// The container's mounts as inspect and `ps` show them, as moby lists them: `--tmpfs` mounts
/// are not mount points (`--mount type=tmpfs` ones are), and a local volume mounted by `-v` or
/// `--mount` without a mode shows moby's default `z` (an image's or `-v /path`'s anonymous
/// volume, from `Config.Volumes`, shows none).
fn mount_points(rec: &ContainerRecord) -> Vec<MountPoint> {
    let from_tmpfs_flag = |m: &&crate::store::MountRecord| {
        m.kind == "tmpfs"
            && rec
                .host_config
                .tmpfs
                .as_ref()
                .is_some_and(|t| t.contains_key(&m.destination))
    };
    let from_config_volumes = |m: &crate::store::MountRecord| {
        m.anonymous
            && rec
                .config
                .volumes
                .as_ref()
                .is_some_and(|v| v.contains(&m.destination))
    };
    // `--mount` has no mode string (its `volume-nocopy` is not one).
    let from_mount_flag = |m: &crate::store::MountRecord| {
        rec.host_config
            .mounts
            .iter()
            .flatten()
            .any(|hm| hm.target.as_deref() == Some(m.destination.as_str()))
    };
    let mode = |m: &crate::store::MountRecord| {
        let options = if from_mount_flag(m) {
            &[][..]
        } else {
            &m.options[..]
        };
        if m.kind == "volume" && options.is_empty() && !from_config_volumes(m) {
            "z".to_string()
        } else {
            options.join(",")
        }
    };
    rec.mounts
        .iter()
        .filter(|m| !from_tmpfs_flag(m))
        .map(|m| MountPoint {
            typ: Some(m.kind.clone()),
            name: (m.kind == "volume").then(|| m.name.clone()),
            source: Some(m.source.to_string_lossy().into_owned()),
            destination: Some(m.destination.clone()),
            driver: (m.kind == "volume").then(|| "local".to_string()),
            mode: Some(mode(m)),
            rw: Some(!m.read_only),
            propagation: Some(if m.kind == "bind" {
                "rprivate".into()
            } else {
                String::new()
            }),
        })
        .collect()
}

/// The network name Docker shows for a NetworkMode.
fn network_name(rec: &ContainerRecord) -> String {
    match rec.host_config.network_mode.as_deref().unwrap_or("") {
        "" | "default" => "bridge".into(),
        m => m.to_string(),
    }
}

/// The host config as inspect reports it. Records written before create normalised these
/// settings: a container without a cgroup namespace mode ran with a private namespace, and a
/// swappiness of -1 means unset.
fn reported_host_config(hc: &HostConfig) -> HostConfig {
    let mut hc = hc.clone();
    if matches!(
        hc.cgroupns_mode,
        None | Some(HostConfigCgroupnsModeEnum::EMPTY)
    ) {
        hc.cgroupns_mode = Some(HostConfigCgroupnsModeEnum::PRIVATE);
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    // The defaults the container runs with, shown as dockerd records them at create: a
    // 64 MiB /dev/shm, a private IPC namespace, no pids limit (null), and the paths the
    // runtime masks and makes read-only.
    if hc.ipc_mode.as_deref().is_none_or(str::is_empty) {
        hc.ipc_mode = Some("private".into());
    }
    if hc.shm_size.is_none_or(|s| s <= 0)
        && matches!(hc.ipc_mode.as_deref(), Some("private" | "shareable"))
    {
        hc.shm_size = Some(64 * 1024 * 1024);
    }
    if hc.pids_limit.is_some_and(|l| l <= 0) {
        hc.pids_limit = None;
    }
    let unmasked = hc.privileged.unwrap_or(false)
        || hc
            .security_opt
            .iter()
            .flatten()
            .any(|o| o == "systempaths=unconfined");
    let listed = |paths: &[&str]| Some(paths.iter().map(|p| p.to_string()).collect());
    if !unmasked && hc.masked_paths.is_none() {
        hc.masked_paths = listed(skiff_runtime::spec::MASKED_PATHS);
    }
    if !unmasked && hc.readonly_paths.is_none() {
        hc.readonly_paths = listed(skiff_runtime::spec::READONLY_PATHS);
    }
    hc
}

impl Engine {
    pub(crate) async fn do_inspect(
        &self,
        key: &str,
        size: bool,
    ) -> Result<ContainerInspectResponse> {
        let c = self.find(key)?;
        let rec = c.rec();
        let s = &rec.state;
        let exec_ids = self.exec_ids(&c.id);
        let (size_rw, size_root) = if size {
            self.sizes(&c, &rec)
        } else {
            (None, None)
        };
        let log_path = if rec
            .host_config
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            == Some("none")
        {
            String::new()
        } else {
            c.log_path().to_string_lossy().into_owned()
        };
        let graph = DriverData {
            name: "overlay2".into(),
            data: HashMap::from([
                (
                    "UpperDir".to_string(),
                    c.dir.join("fs/upper").to_string_lossy().into_owned(),
                ),
                (
                    "WorkDir".to_string(),
                    c.dir.join("fs/work").to_string_lossy().into_owned(),
                ),
                (
                    "MergedDir".to_string(),
                    c.rootfs().to_string_lossy().into_owned(),
                ),
            ]),
        };
        Ok(ContainerInspectResponse {
            id: Some(rec.id.clone()),
            created: Some(rec.created.clone()),
            path: Some(rec.path.clone()),
            args: Some(rec.args.clone()),
            state: Some(ContainerState {
                status: Some(state_enum(s.status)),
                running: Some(s.status.is_alive()),
                paused: Some(s.status == Status::Paused),
                restarting: Some(s.status == Status::Restarting),
                oom_killed: Some(s.oom_killed),
                dead: Some(s.status == Status::Dead),
                pid: Some(s.pid),
                exit_code: Some(s.exit_code),
                error: Some(s.error.clone()),
                started_at: Some(or_zero(&s.started_at)),
                finished_at: Some(or_zero(&s.finished_at)),
                health: c.health_now(),
            }),
            image: Some(rec.image_id.clone()),
            resolv_conf_path: Some(c.dir.join("resolv.conf").to_string_lossy().into_owned()),
            hostname_path: Some(c.dir.join("hostname").to_string_lossy().into_owned()),
            hosts_path: Some(c.dir.join("hosts").to_string_lossy().into_owned()),
            log_path: Some(log_path),
            name: Some(rec.name.clone()),
            restart_count: Some(rec.restart_count),
            driver: Some("overlay2".into()),
            platform: Some("linux".into()),
            mount_label: Some(String::new()),
            process_label: Some(String::new()),
            app_armor_profile: Some(String::new()),
            exec_ids: (!exec_ids.is_empty()).then_some(exec_ids),
            host_config: Some(reported_host_config(&rec.host_config)),
            graph_driver: Some(graph),
            size_rw,
            size_root_fs: size_root,
            mounts: Some(mount_points(&rec)),
            config: Some(rec.config.clone()),
            network_settings: Some(self.container_net(&c, &rec).await.settings),
            ..Default::default()
        })
    }

    fn sizes(&self, c: &Container, rec: &ContainerRecord) -> (Option<i64>, Option<i64>) {
        let rw = dir_size(&c.dir.join("fs/upper")) as i64;
        let image = self
            .images
            .get_sized(&rec.image_id)
            .map(|i| i.size as i64)
            .unwrap_or(0);
        (Some(rw), Some(rw + image))
    }

    pub(crate) async fn do_list(&self, opts: &ListOptions) -> Result<Vec<ContainerSummary>> {
        let f = &opts.filters;
        f.validate(&[
            "id", "name", "label", "status", "exited", "ancestor", "before", "since", "volume",
            "network", "health", "is-task", "expose", "publish",
        ])?;
        // moby's messages (ValidateContainerState, ValidateHealthStatus).
        const STATES: [&str; 7] = [
            "created",
            "running",
            "paused",
            "restarting",
            "removing",
            "exited",
            "dead",
        ];
        const HEALTHS: [&str; 4] = ["none", "starting", "healthy", "unhealthy"];
        for s in f.get("status") {
            if !STATES.contains(&s.as_str()) {
                return Err(EngineError::invalid(format!(
                    "invalid filter 'status={s}': invalid value for state ({s}): must be one of {}",
                    STATES.join(", ")
                )));
            }
        }
        for h in f.get("health") {
            if !HEALTHS.contains(&h.as_str()) {
                return Err(EngineError::invalid(format!(
                    "invalid filter 'health={h}': invalid value for health ({h}): must be one of {}",
                    HEALTHS.join(", ")
                )));
            }
        }
        let is_task = f.bool_or("is-task", false)?;
        let names = name_patterns(f.get("name"))?;
        let mut recs: Vec<(ContainerRecord, std::sync::Arc<Container>)> = self
            .all_containers()
            .into_iter()
            .map(|c| (c.rec(), c))
            .collect();
        recs.sort_by(|a, b| b.0.created.cmp(&a.0.created));
        let created_of = |key: &str| -> Result<String> { Ok(self.find(key)?.rec().created) };
        let before: Option<String> = f.get("before").first().map(|k| created_of(k)).transpose()?;
        let since: Option<String> = f.get("since").first().map(|k| created_of(k)).transpose()?;
        let image_ids: Vec<String> = f
            .get("ancestor")
            .iter()
            .filter_map(|a| self.images.get(a).ok().map(|i| i.id))
            .collect();
        let all = opts.all
            || opts.limit.unwrap_or(0) > 0
            || !f.get("status").is_empty()
            || !f.get("exited").is_empty();
        let now = Utc::now();
        let mut out = Vec::new();
        for (rec, c) in recs {
            let status = rec.state.status;
            if !all
                && !matches!(
                    status,
                    Status::Running | Status::Paused | Status::Restarting
                )
            {
                continue;
            }
            let labels = rec.config.labels.clone().unwrap_or_default();
            let net = self.container_net(&c, &rec).await;
            let exposed: Vec<(u16, String)> =
                crate::networks::ports::exposed(&rec.config, &rec.host_config)
                    .into_iter()
                    .map(|k| (k.port, k.proto.to_string()))
                    .collect();
            let published: Vec<(u16, String)> = net
                .ports
                .iter()
                .filter(|p| p.public_port.is_some())
                .map(|p| {
                    (
                        p.private_port,
                        p.typ.map(|t| t.to_string()).unwrap_or_default(),
                    )
                })
                .collect();
            let keep = f.any("id", |id| rec.id.starts_with(id))
                && (names.is_empty()
                    || names
                        .iter()
                        .any(|n| n.is_match(&rec.name) || n.is_match(rec.short_name())))
                && f.labels_match("label", &labels)
                && f.any("status", |s| s == status.as_str())
                && f.any("exited", |e| {
                    status == Status::Exited && e.parse() == Ok(rec.state.exit_code)
                })
                && f.any("ancestor", |_| image_ids.contains(&rec.image_id))
                && f.any("volume", |v| {
                    rec.mounts.iter().any(|m| m.name == v || m.destination == v)
                })
                && f.any("network", |n| {
                    network_name(&rec) == n
                        || rec.networks.iter().any(|(name, e)| {
                            name == n || e.network_id.as_deref().is_some_and(|id| id.starts_with(n))
                        })
                })
                && f.any("expose", |p| port_filter(p, &exposed))
                && f.any("publish", |p| port_filter(p, &published))
                && !is_task
                && f.any("health", |h| h == health_status(c.health_now().as_ref()))
                && before.as_ref().is_none_or(|b| rec.created < *b)
                && since.as_ref().is_none_or(|s| rec.created > *s);
            if !keep {
                continue;
            }
            let (size_rw, size_root_fs) = if opts.size {
                self.sizes(&c, &rec)
            } else {
                (None, None)
            };
            let command = summary_command(&rec.path, &rec.args);
            out.push(ContainerSummary {
                id: Some(rec.id.clone()),
                names: Some(vec![rec.name.clone()]),
                image: Some(rec.image_name.clone()),
                image_id: Some(rec.image_id.clone()),
                command: Some(command),
                created: parse_time(&rec.created).map(|t| t.timestamp()),
                ports: Some(net.ports.clone()),
                size_rw,
                size_root_fs,
                labels: Some(labels),
                state: Some(summary_state(status)),
                status: Some(status_text(&rec, now) + &health_suffix(c.health_now().as_ref())),
                host_config: Some(ContainerSummaryHostConfig {
                    network_mode: Some(network_name(&rec)),
                    annotations: rec.host_config.annotations.clone(),
                }),
                network_settings: Some(ContainerSummaryNetworkSettings {
                    networks: Some(net.networks),
                }),
                mounts: Some(mount_points(&rec)),
                ..Default::default()
            });
            if opts.limit.is_some_and(|l| l > 0 && out.len() as i64 >= l) {
                break;
            }
        }
        Ok(out)
    }

    pub(crate) async fn do_container_prune(
        &self,
        filters: &Filters,
    ) -> Result<ContainerPruneResponse> {
        filters.validate(&["until", "label", "label!"])?;
        let until: Option<DateTime<Utc>> = match filters.get("until").first() {
            Some(u) => Some(parse_until(u)?),
            None => None,
        };
        let mut deleted = Vec::new();
        let mut reclaimed = 0i64;
        for c in self.all_containers() {
            let rec = c.rec();
            if !matches!(
                rec.state.status,
                Status::Created | Status::Exited | Status::Dead
            ) {
                continue;
            }
            let labels = rec.config.labels.clone().unwrap_or_default();
            let too_new = until.is_some_and(|u| parse_time(&rec.created).is_some_and(|t| t >= u));
            if too_new || !filters.prune_labels_match(&labels) {
                continue;
            }
            let size = dir_size(&c.dir.join("fs/upper")) as i64;
            if self.do_remove(&c.id, false, false).await.is_ok() {
                reclaimed += size;
                deleted.push(c.id.clone());
            }
        }
        self.events.emit(
            bollard_stubs::models::EventMessageTypeEnum::CONTAINER,
            "prune",
            "",
            HashMap::from([("reclaimed".to_string(), reclaimed.to_string())]),
        );
        Ok(ContainerPruneResponse {
            containers_deleted: Some(deleted),
            space_reclaimed: Some(reclaimed),
        })
    }
}

/// The `COMMAND` of `docker ps`: like moby, the arguments that contain a space are put in
/// single quotes (`sh -c 'exit 3'`).
fn summary_command(path: &str, args: &[String]) -> String {
    std::iter::once(path.to_string())
        .chain(args.iter().map(|a| {
            if a.contains(' ') {
                format!("'{a}'")
            } else {
                a.clone()
            }
        }))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `name` filter values as regular expressions (moby matches names with
/// `regexp.MatchString`, with and without the leading `/`); a value that is not a valid
/// expression matches only itself, as there.
pub(crate) fn name_patterns(values: &[String]) -> Result<Vec<regex::Regex>> {
    values
        .iter()
        .map(|v| {
            regex::Regex::new(v)
                .or_else(|_| regex::Regex::new(&format!("^{}$", regex::escape(v))))
                .map_err(|e| EngineError::invalid(format!("invalid filter 'name={v}': {e}")))
        })
        .collect()
}

/// The health status a `health` filter compares with: `none` without a health check.
fn health_status(h: Option<&Health>) -> &'static str {
    match h.and_then(|h| h.status) {
        Some(HealthStatusEnum::STARTING) => "starting",
        Some(HealthStatusEnum::HEALTHY) => "healthy",
        Some(HealthStatusEnum::UNHEALTHY) => "unhealthy",
        _ => "none",
    }
}

/// The `expose`/`publish` filters of `docker ps`: `80`, `80/udp`, `8000-8010/tcp` against
/// container ports.
fn port_filter(filter: &str, ports: &[(u16, String)]) -> bool {
    let (range, proto) = filter.split_once('/').unwrap_or((filter, "tcp"));
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) else {
        return false;
    };
    ports
        .iter()
        .any(|(p, pr)| (a..=b).contains(p) && pr.eq_ignore_ascii_case(proto))
}

/// `until` as Unix seconds, RFC 3339, or a Go duration like `10m`/`24h` before now; moby's
/// message (`timestamp.GetTimestamp`) for anything else.
pub(crate) fn parse_until(u: &str) -> Result<DateTime<Utc>> {
    let bad = || EngineError::invalid(format!("failed to parse value as time or duration: {u:?}"));
    if let Ok(secs) = u.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0).ok_or_else(bad);
    }
    if let Some(t) = parse_time(u) {
        return Ok(t);
    }
    let (num, unit) = u.split_at(u.find(|c: char| !c.is_ascii_digit()).unwrap_or(u.len()));
    let n: i64 = num.parse().map_err(|_| bad())?;
    let d = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        _ => return Err(bad()),
    };
    Ok(Utc::now() - d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::State;

    #[test]
    fn status_column() {
        let now = Utc::now();
        let ago = |s: i64| (now - chrono::Duration::seconds(s)).to_rfc3339();
        let mut rec: ContainerRecord = serde_json::from_value(serde_json::json!({
            "id": "x", "name": "/x", "created": "", "image_name": "", "image_id": "", "path": "", "args": [],
            "config": {}, "host_config": {}, "state": State::default(), "runtime": "runc", "mounts": [],
            "restart_count": 0, "manually_stopped": false
        }))
        .unwrap();
        assert_eq!(status_text(&rec, now), "Created");
        rec.state.status = Status::Running;
        rec.state.started_at = ago(30);
        assert_eq!(status_text(&rec, now), "Up 30 seconds");
        rec.state.status = Status::Exited;
        rec.state.exit_code = 3;
        rec.state.finished_at = ago(120);
        assert_eq!(status_text(&rec, now), "Exited (3) 2 minutes ago");
    }

    #[test]
    fn ps_command_quotes_arguments_with_spaces() {
        let args = ["-c".to_string(), "exit 3".to_string()];
        assert_eq!(summary_command("sh", &args), "sh -c 'exit 3'");
        assert_eq!(summary_command("true", &[]), "true");
    }

    #[test]
    fn name_filters_are_regular_expressions() {
        let p = name_patterns(&["^web$".to_string()]).unwrap();
        assert!(p[0].is_match("web") && !p[0].is_match("web2") && !p[0].is_match("/web"));
        let p = name_patterns(&["eb".to_string(), "(".to_string()]).unwrap();
        assert!(p[0].is_match("/web"));
        assert!(p[1].is_match("(") && !p[1].is_match("a"));
    }

    #[test]
    fn until_accepts_durations_and_timestamps() {
        assert_eq!(parse_until("100").unwrap().timestamp(), 100);
        assert!(parse_until("10m").unwrap() < Utc::now());
        assert_eq!(
            parse_until("bogus").unwrap_err().to_string(),
            "failed to parse value as time or duration: \"bogus\""
        );
    }
}
