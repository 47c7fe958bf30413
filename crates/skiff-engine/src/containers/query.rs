//! `docker inspect` and `docker ps`: records rendered as Docker's wire models, list filters,
//! and the human-readable status column.

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerInspectResponse, ContainerPruneResponse, ContainerState, ContainerStateStatusEnum,
    ContainerSummary, ContainerSummaryHostConfig, ContainerSummaryNetworkSettings,
    ContainerSummaryStateEnum, DriverData, EndpointSettings, Health, HealthStatusEnum, HostConfig,
    HostConfigCgroupnsModeEnum, MountPoint, NetworkSettings,
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

fn mount_points(rec: &ContainerRecord) -> Vec<MountPoint> {
    rec.mounts
        .iter()
        .map(|m| MountPoint {
            typ: Some(m.kind.clone()),
            name: (m.kind == "volume").then(|| m.name.clone()),
            source: Some(m.source.to_string_lossy().into_owned()),
            destination: Some(m.destination.clone()),
            driver: (m.kind == "volume").then(|| "local".to_string()),
            mode: Some(m.options.join(",")),
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

fn networks(rec: &ContainerRecord) -> HashMap<String, EndpointSettings> {
    let name = network_name(rec);
    if name.starts_with("container:") {
        return HashMap::new();
    }
    HashMap::from([(
        name.clone(),
        EndpointSettings {
            network_id: Some(name),
            ip_address: Some(String::new()),
            ..Default::default()
        },
    )])
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
            network_settings: Some(NetworkSettings {
                sandbox_key: Some(String::new()),
                ports: Some(HashMap::new()),
                networks: Some(networks(&rec)),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    fn sizes(&self, c: &Container, rec: &ContainerRecord) -> (Option<i64>, Option<i64>) {
        let rw = dir_size(&c.dir.join("fs/upper")) as i64;
        let image = self
            .images
            .get(&rec.image_id)
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
        for s in f.get("status") {
            if ![
                "created",
                "restarting",
                "running",
                "removing",
                "paused",
                "exited",
                "dead",
            ]
            .contains(&s.as_str())
            {
                return Err(EngineError::invalid(format!("invalid filter 'status={s}'")));
            }
        }
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
            let keep = f.any("id", |id| rec.id.starts_with(id))
                && f.any("name", |n| {
                    rec.short_name().contains(n.trim_start_matches('/'))
                })
                && f.labels_match("label", &labels)
                && f.any("status", |s| s == status.as_str())
                && f.any("exited", |e| {
                    status == Status::Exited && e.parse() == Ok(rec.state.exit_code)
                })
                && f.any("ancestor", |_| image_ids.contains(&rec.image_id))
                && f.any("volume", |v| {
                    rec.mounts.iter().any(|m| m.name == v || m.destination == v)
                })
                && f.any("network", |n| network_name(&rec) == n)
                && f.any("is-task", |t| t == "false")
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
            let command = std::iter::once(rec.path.as_str())
                .chain(rec.args.iter().map(String::as_str))
                .collect::<Vec<_>>()
                .join(" ");
            out.push(ContainerSummary {
                id: Some(rec.id.clone()),
                names: Some(vec![rec.name.clone()]),
                image: Some(rec.image_name.clone()),
                image_id: Some(rec.image_id.clone()),
                command: Some(command),
                created: parse_time(&rec.created).map(|t| t.timestamp()),
                ports: Some(Vec::new()),
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
                    networks: Some(networks(&rec)),
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
            let excluded = filters.get("label!").iter().any(|l| {
                Filters::from_pairs([("label", l.as_str())]).labels_match("label", &labels)
            });
            if too_new || excluded || !filters.labels_match("label", &labels) {
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

/// `until` as Unix seconds, RFC 3339, or a Go duration like `10m`/`24h` before now.
pub(crate) fn parse_until(u: &str) -> Result<DateTime<Utc>> {
    if let Ok(secs) = u.parse::<f64>() {
        return DateTime::from_timestamp(secs as i64, 0)
            .ok_or_else(|| EngineError::invalid(format!("invalid until: {u}")));
    }
    if let Some(t) = parse_time(u) {
        return Ok(t);
    }
    let (num, unit) = u.split_at(u.find(|c: char| !c.is_ascii_digit()).unwrap_or(u.len()));
    let n: i64 = num
        .parse()
        .map_err(|_| EngineError::invalid(format!("invalid until: {u}")))?;
    let d = match unit {
        "s" => chrono::Duration::seconds(n),
        "m" => chrono::Duration::minutes(n),
        "h" => chrono::Duration::hours(n),
        _ => return Err(EngineError::invalid(format!("invalid until: {u}"))),
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
    fn until_accepts_durations_and_timestamps() {
        assert_eq!(parse_until("100").unwrap().timestamp(), 100);
        assert!(parse_until("10m").unwrap() < Utc::now());
        assert!(parse_until("bogus").is_err());
    }
}
