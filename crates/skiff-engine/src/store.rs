//! Container records on disk: `<root>/containers/<id>/config.json`, written atomically
//! (temporary file + rename), holding Docker's own `Config` and `HostConfig` plus the state.

use std::path::{Path, PathBuf};

use bollard_stubs::models::{ContainerConfig, HostConfig};
use serde::{Deserialize, Serialize};

use crate::error::{IoContext, Result};

/// Lifecycle status, as Docker names it in `State.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Status {
    #[default]
    Created,
    Running,
    Paused,
    Restarting,
    Removing,
    Exited,
    Dead,
}

impl Status {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Restarting => "restarting",
            Status::Removing => "removing",
            Status::Exited => "exited",
            Status::Dead => "dead",
        }
    }

    /// Whether a container process exists (running or frozen).
    pub(crate) fn is_alive(self) -> bool {
        matches!(self, Status::Running | Status::Paused)
    }
}

/// `State` of a container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct State {
    pub status: Status,
    pub pid: i64,
    pub exit_code: i64,
    pub error: String,
    pub oom_killed: bool,
    /// RFC 3339; empty = never.
    pub started_at: String,
    pub finished_at: String,
}

/// A volume or bind mount as resolved at create time (`Mounts` in inspect).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MountRecord {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// Volume name (empty for binds and tmpfs).
    pub name: String,
    /// Host path (volume's `_data` dir for volumes).
    pub source: PathBuf,
    pub destination: String,
    pub read_only: bool,
    /// Mount options (tmpfs) or mode string as given (`ro`, `z`…).
    pub options: Vec<String>,
    /// Anonymous volume created for this container (removed with `rm -v` / `--rm`).
    pub anonymous: bool,
}

/// Everything the engine keeps about one container.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: String,
    /// With the leading slash: `/web`.
    pub name: String,
    /// RFC 3339 with nanoseconds.
    pub created: String,
    /// The image as the user named it (`busybox`).
    pub image_name: String,
    /// `sha256:…`.
    pub image_id: String,
    /// argv[0] and the rest, as inspect shows them.
    pub path: String,
    pub args: Vec<String>,
    pub config: ContainerConfig,
    pub host_config: HostConfig,
    pub state: State,
    /// `embedded`, `runc` or `crun`.
    pub runtime: String,
    pub mounts: Vec<MountRecord>,
    pub restart_count: i64,
    /// Set by `docker stop` (restart policies leave the container alone), cleared by start.
    pub manually_stopped: bool,
    /// `linux.cgroupsPath` of the container (`/<parent>/<id>`), fixed at create.
    #[serde(default)]
    pub cgroups_path: String,
    /// The networks the container is connected to, by name, with what it asked for on each
    /// (`Aliases`, `IPAMConfig`, `NetworkID`); the addresses it got live in skiff-net while
    /// it runs. Empty for `host`, `container:` and `none`.
    #[serde(default)]
    pub networks: std::collections::BTreeMap<String, bollard_stubs::models::EndpointSettings>,
    /// `docker network disconnect` took the last network: `networks` is empty on purpose (an
    /// empty map is otherwise a record older than `networks`, on its network mode's network).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub networks_cleared: bool,
}

pub(crate) const RECORD: &str = "config.json";

impl ContainerRecord {
    /// Writes the record atomically into `dir`.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".config.json.tmp");
        let bytes = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .ctx(|| "encode record".into())?;
        std::fs::write(&tmp, bytes).ctx(|| format!("write {}", tmp.display()))?;
        let dest = dir.join(RECORD);
        std::fs::rename(&tmp, &dest).ctx(|| format!("write {}", dest.display()))
    }

    /// Deletes the record in `dir`: from now on the directory belongs to no container.
    pub(crate) fn delete(dir: &Path) -> Result<()> {
        let path = dir.join(RECORD);
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).ctx(|| format!("remove {}", path.display()))
            }
            _ => Ok(()),
        }
    }

    pub(crate) fn load(dir: &Path) -> Result<ContainerRecord> {
        let path = dir.join(RECORD);
        let bytes = std::fs::read(&path).ctx(|| format!("read {}", path.display()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            .ctx(|| format!("parse {}", path.display()))
    }

    /// Every record under `containers_dir`; unreadable ones are logged and skipped.
    pub(crate) fn load_all(containers_dir: &Path) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        let entries = match std::fs::read_dir(containers_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e).ctx(|| format!("read {}", containers_dir.display())),
        };
        for entry in entries.flatten() {
            let dir = entry.path();
            match ContainerRecord::load(&dir) {
                Ok(rec) => out.push(rec),
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), error = %e, "skipping unreadable container record")
                }
            }
        }
        Ok(out)
    }

    /// The name without its leading slash.
    pub(crate) fn short_name(&self) -> &str {
        self.name.trim_start_matches('/')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_atomically() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("a");
        std::fs::create_dir(&dir).unwrap();
        std::fs::create_dir(root.path().join("garbage")).unwrap();
        let rec = ContainerRecord {
            id: "a".repeat(64),
            name: "/web".into(),
            created: "2024-01-01T00:00:00Z".into(),
            image_name: "busybox".into(),
            image_id: "sha256:00".into(),
            path: "sh".into(),
            args: vec!["-c".into(), "true".into()],
            config: ContainerConfig {
                env: Some(vec!["A=1".into()]),
                ..Default::default()
            },
            host_config: HostConfig {
                memory: Some(1 << 30),
                ..Default::default()
            },
            state: State {
                status: Status::Exited,
                exit_code: 3,
                ..Default::default()
            },
            runtime: "runc".into(),
            mounts: vec![],
            networks: [("mynet".to_string(), Default::default())].into(),
            networks_cleared: false,
            restart_count: 2,
            manually_stopped: true,
            cgroups_path: format!("/skiff/{}", "a".repeat(64)),
        };
        rec.save(&dir).unwrap();
        let back = ContainerRecord::load(&dir).unwrap();
        assert_eq!(back.state, rec.state);
        assert_eq!(back.config.env, rec.config.env);
        assert_eq!(back.host_config.memory, Some(1 << 30));
        assert_eq!(back.short_name(), "web");
        assert!(!dir.join(".config.json.tmp").exists());
        let all = ContainerRecord::load_all(root.path()).unwrap();
        assert_eq!(
            all.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
            vec![rec.id.clone()]
        );
    }
}
