//! `docker update`: new memory, CPU and pids limits and a new restart policy for an existing
//! container — recorded, and applied to its cgroups while it runs. Zero means "unchanged",
//! as in Docker; settings skiff does not run with are refused, not ignored, and those the
//! host cannot apply (a block-I/O weight without a proportional scheduler) are discarded
//! with dockerd's warning.

use std::collections::HashMap;

use bollard_stubs::models::{ContainerUpdateBody, ContainerUpdateResponse, HostConfig};
use skiff_runtime::spec::{self, ContainerSpec};

use super::config;
use crate::error::{EngineError, Result};
use crate::restart::Policy;
use crate::store::Status;
use crate::Engine;

/// Folds the update into the host config: the new settings, validated, and warnings for
/// the client (settings this host discards, as dockerd's).
fn merge(
    mut hc: HostConfig,
    body: &ContainerUpdateBody,
    blkio_supported: bool,
) -> Result<(HostConfig, Vec<String>)> {
    let unsupported = [
        (
            "--cpu-rt-period",
            body.cpu_realtime_period.is_some_and(|v| v != 0),
        ),
        (
            "--cpu-rt-runtime",
            body.cpu_realtime_runtime.is_some_and(|v| v != 0),
        ),
    ];
    if let Some((flag, _)) = unsupported.iter().find(|(_, set)| *set) {
        return Err(EngineError::invalid(format!(
            "updating {flag} is not supported by skiff yet"
        )));
    }
    let changed = |v: Option<i64>| v.filter(|v| *v != 0);
    if let Some(v) = changed(body.memory) {
        hc.memory = Some(v);
    }
    if let Some(v) = changed(body.memory_swap) {
        hc.memory_swap = Some(v);
    }
    if let Some(v) = changed(body.nano_cpus) {
        hc.nano_cpus = Some(v);
    }
    if let Some(v) = changed(body.cpu_shares) {
        hc.cpu_shares = Some(v);
    }
    if let Some(v) = changed(body.cpu_period) {
        hc.cpu_period = Some(v);
    }
    if let Some(v) = changed(body.cpu_quota) {
        hc.cpu_quota = Some(v);
    }
    if let Some(v) = changed(body.memory_reservation) {
        hc.memory_reservation = Some(v);
    }
    if let Some(v) = body.cpuset_cpus.as_ref().filter(|v| !v.is_empty()) {
        hc.cpuset_cpus = Some(v.clone());
    }
    if let Some(v) = body.cpuset_mems.as_ref().filter(|v| !v.is_empty()) {
        hc.cpuset_mems = Some(v.clone());
    }
    if let Some(v) = body.pids_limit {
        // 0 and -1 lift the limit.
        hc.pids_limit = (v > 0).then_some(v);
    }
    if let Some(policy) = body.restart_policy.as_ref().filter(|p| p.name.is_some()) {
        if hc.auto_remove.unwrap_or(false) {
            return Err(EngineError::invalid(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        Policy::from_wire(Some(policy), false)?;
        hc.restart_policy = Some(policy.clone());
    }
    let mut warnings = Vec::new();
    if let Some(w) = body.blkio_weight.filter(|w| *w != 0) {
        let mut update = HostConfig {
            blkio_weight: Some(w),
            ..Default::default()
        };
        warnings = config::blkio_weight(&mut update, blkio_supported)?;
        if update.blkio_weight.is_some() {
            hc.blkio_weight = update.blkio_weight;
        }
    }
    config::validate_resources(&hc)?;
    Ok((hc, warnings))
}

impl Engine {
    pub(crate) async fn do_update(
        &self,
        key: &str,
        body: &ContainerUpdateBody,
    ) -> Result<ContainerUpdateResponse> {
        let c = self.find(key)?;
        let _op = c.op.lock().await;
        // A prepared container has its cgroup limits already.
        self.discard_prepared(&c).await;
        let rec = c.rec();
        let (hc, warnings) = merge(
            rec.host_config.clone(),
            body,
            body.blkio_weight.is_some_and(|w| w != 0)
                && skiff_runtime::cgroups::blkio_weight_supported(),
        )?;
        if matches!(rec.state.status, Status::Running | Status::Paused) {
            let positive = |v: Option<i64>| v.filter(|v| *v > 0);
            let limits = spec::limits(&ContainerSpec {
                memory_limit: positive(hc.memory),
                memory_swap: hc.memory_swap.filter(|v| *v != 0),
                nano_cpus: positive(hc.nano_cpus),
                cpu_shares: positive(hc.cpu_shares).map(|v| v as u64),
                cpu_period: positive(hc.cpu_period).map(|v| v as u64),
                cpu_quota: positive(hc.cpu_quota),
                cpuset_cpus: hc.cpuset_cpus.clone().filter(|s| !s.is_empty()),
                cpuset_mems: hc.cpuset_mems.clone().filter(|s| !s.is_empty()),
                memory_reservation: positive(hc.memory_reservation),
                pids_limit: positive(hc.pids_limit),
                blkio_weight: hc.blkio_weight.filter(|w| *w > 0),
                ..Default::default()
            })?;
            skiff_runtime::cgroups::update(&c.cgroups_path(), &limits).map_err(|e| {
                EngineError::invalid(format!("Cannot update container {}: {e}", c.id))
            })?;
        }
        c.update(|r| r.host_config = hc)?;
        self.emit_container("update", &c, HashMap::new());
        Ok(ContainerUpdateResponse {
            warnings: Some(warnings),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};

    #[test]
    fn zero_keeps_and_nonzero_replaces() {
        let hc = HostConfig {
            memory: Some(64 << 20),
            nano_cpus: Some(500_000_000),
            pids_limit: Some(10),
            ..Default::default()
        };
        let body = ContainerUpdateBody {
            memory: Some(0),
            nano_cpus: Some(1_000_000_000),
            pids_limit: Some(-1),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        let (out, warnings) = merge(hc, &body, false).unwrap();
        assert!(warnings.is_empty());
        assert_eq!(out.memory, Some(64 << 20));
        assert_eq!(out.nano_cpus, Some(1_000_000_000));
        assert_eq!(out.pids_limit, None);
        assert_eq!(
            out.restart_policy.and_then(|p| p.name),
            Some(RestartPolicyNameEnum::ALWAYS)
        );
    }

    #[test]
    fn refuses_what_docker_refuses_and_what_skiff_cannot_apply() {
        let rm = HostConfig {
            auto_remove: Some(true),
            ..Default::default()
        };
        let policy = ContainerUpdateBody {
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        };
        assert!(merge(rm, &policy, true)
            .unwrap_err()
            .to_string()
            .contains("AutoRemove"));
        let tiny = ContainerUpdateBody {
            memory: Some(1024),
            ..Default::default()
        };
        assert!(merge(HostConfig::default(), &tiny, true)
            .unwrap_err()
            .to_string()
            .contains("Minimum memory limit"));
        let weight = ContainerUpdateBody {
            blkio_weight: Some(300),
            ..Default::default()
        };
        // A block-I/O weight: discarded with dockerd's warning where the host has none,
        // recorded where it has, and refused out of range there.
        let (hc, warnings) = merge(HostConfig::default(), &weight, false).unwrap();
        assert_eq!(hc.blkio_weight, None);
        assert_eq!(
            warnings,
            ["Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."]
        );
        let (hc, warnings) = merge(HostConfig::default(), &weight, true).unwrap();
        assert_eq!((hc.blkio_weight, warnings.len()), (Some(300), 0));
        let heavy = ContainerUpdateBody {
            blkio_weight: Some(5000),
            ..Default::default()
        };
        assert_eq!(
            merge(HostConfig::default(), &heavy, true)
                .unwrap_err()
                .to_string(),
            "Range of blkio weight is from 10 to 1000"
        );
        // CFS, cpuset and reservation settings are applied now.
        let quota = ContainerUpdateBody {
            cpu_quota: Some(50_000),
            cpuset_cpus: Some("0".into()),
            ..Default::default()
        };
        let (hc, _) = merge(HostConfig::default(), &quota, true).unwrap();
        assert_eq!(
            (hc.cpu_quota, hc.cpuset_cpus.as_deref()),
            (Some(50_000), Some("0"))
        );
    }
}
