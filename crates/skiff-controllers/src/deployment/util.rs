//! Deployment arithmetic and bookkeeping as kube-controller-manager's `deploymentutil` does
//! it: the template hash, revisions and their annotations, `maxSurge`/`maxUnavailable`
//! resolution with Kubernetes' rounding, and conditions.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::Timestamp;

pub const REVISION: &str = "deployment.kubernetes.io/revision";
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// Annotations of the Deployment that its ReplicaSets do not copy.
const NOT_COPIED: &[&str] = &[
    crate::cachedpod::LAST_APPLIED,
    REVISION,
    REVISION_HISTORY,
    DESIRED_REPLICAS,
    MAX_REPLICAS,
    "deprecated.deployment.rollback.to",
];
/// Kubernetes' bound on the revision-history annotation.
const MAX_REVISION_HISTORY_CHARS: usize = 2000;

// Condition reasons, as Kubernetes writes them.
pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
pub const RS_UPDATED: &str = "ReplicaSetUpdated";
pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
pub const PAUSED: &str = "DeploymentPaused";
pub const RESUMED: &str = "DeploymentResumed";
pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";

pub use crate::template::{equal_ignore_hash, template_hash, HASH_LABEL};

pub fn replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

pub fn rs_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

pub fn rs_status_replicas(rs: &ReplicaSet) -> i32 {
    rs.status.as_ref().map_or(0, |s| s.replicas)
}

pub fn rs_available(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0)
}

pub fn rs_ready(rs: &ReplicaSet) -> i32 {
    rs.status
        .as_ref()
        .and_then(|s| s.ready_replicas)
        .unwrap_or(0)
}

pub fn is_recreate(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        == Some("Recreate")
}

pub fn paused(d: &Deployment) -> bool {
    d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false)
}

pub fn min_ready_seconds(d: &Deployment) -> i32 {
    d.spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0)
}

/// `progressDeadlineSeconds`, unless unset or "never" (MaxInt32).
pub fn progress_deadline(d: &Deployment) -> Option<i32> {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .filter(|s| *s != i32::MAX)
}

pub fn revision_history_limit(d: &Deployment) -> Option<i32> {
    d.spec.as_ref().and_then(|s| s.revision_history_limit)
}

/// Kubernetes' `GetScaledValueFromIntOrPercent`: an int, or a percentage of `total` rounded
/// up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> Result<i32, String> {
    match v {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
            let scaled = pct * i64::from(total);
            let v = if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            };
            Ok(v as i32)
        }
    }
}

/// Kubernetes' `ResolveFenceposts`: (maxSurge, maxUnavailable) for `desired` replicas;
/// both zero would stall a rollout, so maxUnavailable becomes 1.
pub fn fenceposts(d: &Deployment) -> (i32, i32) {
    let desired = replicas(d);
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let pct25 = IntOrString::String("25%".into());
    let surge_v = ru
        .and_then(|r| r.max_surge.clone())
        .unwrap_or(pct25.clone());
    let unavail_v = ru.and_then(|r| r.max_unavailable.clone()).unwrap_or(pct25);
    let surge = scaled_value(&surge_v, desired, true).unwrap_or(0);
    let unavailable = scaled_value(&unavail_v, desired, false).unwrap_or(0);
    if surge == 0 && unavailable == 0 {
        (0, 1)
    } else {
        (surge, unavailable)
    }
}

/// Kubernetes' `MaxSurge`.
pub fn max_surge(d: &Deployment) -> i32 {
    if is_recreate(d) {
        0
    } else {
        fenceposts(d).0
    }
}

/// Kubernetes' `MaxUnavailable`.
pub fn max_unavailable(d: &Deployment) -> i32 {
    if is_recreate(d) || replicas(d) == 0 {
        return 0;
    }
    fenceposts(d).1.min(replicas(d))
}

fn annotations(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> BTreeMap<String, String> {
    meta.annotations.clone().unwrap_or_default()
}

/// The revision of a ReplicaSet (0 when absent or unparsable).
pub fn revision(rs: &ReplicaSet) -> i64 {
    annotations(&rs.metadata)
        .get(REVISION)
        .and_then(|r| r.parse().ok())
        .unwrap_or(0)
}

pub fn max_revision(rss: &[ReplicaSet]) -> i64 {
    rss.iter().map(revision).max().unwrap_or(0)
}

fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    annotations(&rs.metadata).get(key)?.parse().ok()
}

pub fn desired_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, DESIRED_REPLICAS)
}

pub fn max_replicas_annotation(rs: &ReplicaSet) -> Option<i32> {
    int_annotation(rs, MAX_REPLICAS)
}

/// Kubernetes' `SetNewReplicaSetAnnotations`: copies the Deployment's annotations, moves
/// the revision forward (keeping the old one in `revision-history`), and on a new
/// ReplicaSet sets the replica annotations. Returns whether anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut ann = annotations(&rs.metadata);
    let before = ann.clone();
    for (k, v) in annotations(&d.metadata) {
        if !NOT_COPIED.contains(&k.as_str()) {
            ann.insert(k, v);
        }
    }
    let old: Option<i64> = ann.get(REVISION).and_then(|r| r.parse().ok());
    if old.is_none_or(|o| o < new_revision) {
        ann.insert(REVISION.into(), new_revision.to_string());
        if let Some(o) = old {
            let mut history: Vec<String> = ann
                .get(REVISION_HISTORY)
                .map(|h| h.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            history.push(o.to_string());
            while history.join(",").len() > MAX_REVISION_HISTORY_CHARS && history.len() > 1 {
                history.remove(0);
            }
            ann.insert(REVISION_HISTORY.into(), history.join(","));
        }
    }
    if !exists {
        ann.insert(DESIRED_REPLICAS.into(), replicas(d).to_string());
        ann.insert(
            MAX_REPLICAS.into(),
            (replicas(d) + max_surge(d)).to_string(),
        );
    }
    let changed = ann != before;
    rs.metadata.annotations = Some(ann);
    changed
}

/// Whether `rs`'s replica annotations are not those of `d` now.
pub fn replica_annotations_stale(rs: &ReplicaSet, d: &Deployment) -> bool {
    desired_annotation(rs) != Some(replicas(d))
        || max_replicas_annotation(rs) != Some(replicas(d) + max_surge(d))
}

/// Kubernetes' `NewDeploymentCondition`.
pub fn condition(type_: &str, status: &str, reason: &str, message: String) -> DeploymentCondition {
    let now = Some(Time(Timestamp::now()));
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message),
        last_update_time: now.clone(),
        last_transition_time: now,
    }
}

pub fn get_condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// Kubernetes' `SetDeploymentCondition`: same status and reason → nothing changes; same
/// status → the transition time stays.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = get_condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::apps::v1::{DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment};

    fn deploy(replicas: i32, surge: IntOrString, unavailable: IntOrString) -> Deployment {
        Deployment {
            spec: Some(DeploymentSpec {
                replicas: Some(replicas),
                strategy: Some(DeploymentStrategy {
                    type_: Some("RollingUpdate".into()),
                    rolling_update: Some(RollingUpdateDeployment {
                        max_surge: Some(surge),
                        max_unavailable: Some(unavailable),
                    }),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn percentages_round_surge_up_and_unavailable_down() {
        let pct = |s: &str| IntOrString::String(s.into());
        let d = deploy(10, pct("25%"), pct("25%"));
        assert_eq!(fenceposts(&d), (3, 2));
        let d = deploy(3, pct("25%"), pct("25%"));
        assert_eq!(fenceposts(&d), (1, 0));
        // Both zero would never progress: one may be unavailable.
        let d = deploy(3, IntOrString::Int(0), pct("10%"));
        assert_eq!(fenceposts(&d), (0, 1));
        let d = deploy(2, IntOrString::Int(1), IntOrString::Int(5));
        assert_eq!(max_unavailable(&d), 2);
        assert!(scaled_value(&pct("x%"), 10, true).is_err());
    }

    #[test]
    fn revision_moves_forward_and_keeps_history() {
        let d = deploy(3, IntOrString::Int(1), IntOrString::Int(0));
        let mut rs = ReplicaSet::default();
        assert!(set_new_rs_annotations(&d, &mut rs, 1, false));
        assert_eq!(revision(&rs), 1);
        assert_eq!(desired_annotation(&rs), Some(3));
        assert_eq!(max_replicas_annotation(&rs), Some(4));
        assert!(!set_new_rs_annotations(&d, &mut rs, 1, true));
        assert!(set_new_rs_annotations(&d, &mut rs, 3, true));
        assert_eq!(revision(&rs), 3);
        assert_eq!(annotations(&rs.metadata)[REVISION_HISTORY], "1");
    }
}
