//! What controllers need to know about pods: active, ready, available, who controls them,
//! which to delete first (kube-controller-manager's `ActivePodsWithRanks`), and a pod made
//! from a template for an owner.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};

use crate::cachedpod::CachedPod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// The annotation that orders deletions among otherwise equal pods (lower goes first).
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// The owner reference marked `controller: true`, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// An owner reference that makes `owner` the controller of what carries it.
pub fn controller_ref(api_version: &str, kind: &str, owner: &ObjectMeta) -> OwnerReference {
    OwnerReference {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
        name: owner.name.clone().unwrap_or_default(),
        uid: owner.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod's phase (Pending until its node says otherwise).
pub fn phase(pod: &CachedPod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// Neither finished nor being deleted (kube-controller-manager's `IsPodActive`).
pub fn is_active(pod: &CachedPod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed") && pod.metadata.deletion_timestamp.is_none()
}

/// Not finished (it may be terminating): what a Service's endpoints may still list.
pub fn is_active_or_terminating(pod: &CachedPod) -> bool {
    !matches!(phase(pod), "Succeeded" | "Failed")
}

/// When the pod's `Ready` condition last turned true, if it is true.
pub fn ready_since(pod: &CachedPod) -> Option<Option<Timestamp>> {
    let cond = pod
        .status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")?;
    (cond.status == "True").then(|| cond.last_transition_time.as_ref().map(|t| t.0))
}

/// The pod's `Ready` condition is true.
pub fn is_ready(pod: &CachedPod) -> bool {
    ready_since(pod).is_some()
}

/// Ready for at least `min_ready_seconds` (kube-controller-manager's `IsPodAvailable`).
pub fn is_available(pod: &CachedPod, min_ready_seconds: i32, now: Timestamp) -> bool {
    match ready_since(pod) {
        None => false,
        Some(_) if min_ready_seconds <= 0 => true,
        Some(None) => false,
        Some(Some(since)) => since
            .saturating_add(SignedDuration::from_secs(min_ready_seconds.into()))
            .is_ok_and(|at| at <= now),
    }
}

/// How long until a ready pod becomes available, if it is ready but not yet available.
pub fn until_available(
    pod: &CachedPod,
    min_ready_seconds: i32,
    now: Timestamp,
) -> Option<std::time::Duration> {
    let since = ready_since(pod)??;
    let at = since
        .saturating_add(SignedDuration::from_secs(min_ready_seconds.into()))
        .ok()?;
    (at > now).then(|| std::time::Duration::try_from(at.duration_since(now)).unwrap_or_default())
}

fn restarts(pod: &CachedPod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map_or(0, |cs| {
            cs.iter().map(|c| c.restart_count).max().unwrap_or(0)
        })
}

fn deletion_cost(pod: &CachedPod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The node a pod is bound to (`spec.nodeName`), if any.
pub fn node_of(pod: &CachedPod) -> Option<&str> {
    pod.spec
        .as_ref()?
        .node_name
        .as_deref()
        .filter(|n| !n.is_empty())
}

fn node(pod: &CachedPod) -> &str {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or("")
}

/// Orders `a` before `b` when `a` should be deleted first. `rank_*` is how many of the
/// controller's pods share that pod's node (doubled-up pods go first). Kubernetes' order:
/// unscheduled, then Pending < Unknown < Running, not ready, lower deletion cost, higher
/// rank, ready for a shorter time, more restarts, newer.
pub fn deletion_order(a: &CachedPod, rank_a: usize, b: &CachedPod, rank_b: usize) -> Ordering {
    let unassigned = |p: &CachedPod| node(p).is_empty();
    let phase_rank = |p: &CachedPod| match phase(p) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    };
    unassigned(b)
        .cmp(&unassigned(a))
        .then_with(|| phase_rank(a).cmp(&phase_rank(b)))
        .then_with(|| is_ready(a).cmp(&is_ready(b)))
        .then_with(|| deletion_cost(a).cmp(&deletion_cost(b)))
        .then_with(|| rank_b.cmp(&rank_a))
        .then_with(|| {
            // Both ready: the one ready for less time (later transition) goes first.
            match (ready_since(a).flatten(), ready_since(b).flatten()) {
                (Some(ta), Some(tb)) if is_ready(a) && is_ready(b) => tb.cmp(&ta),
                _ => Ordering::Equal,
            }
        })
        .then_with(|| restarts(b).cmp(&restarts(a)))
        .then_with(|| {
            let created = |p: &CachedPod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            match (created(a), created(b)) {
                (None, Some(_)) => Ordering::Less,
                (Some(_), None) => Ordering::Greater,
                (ta, tb) => tb.cmp(&ta),
            }
        })
}

/// A time as Kubernetes writes it in conditions: RFC 3339, whole seconds, UTC.
pub fn rfc3339(t: Timestamp) -> String {
    t.round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(t)
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The `n` pods to delete first among `pods`.
pub fn pick_victims(pods: &[&CachedPod], n: usize) -> Vec<CachedPod> {
    let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
    for p in pods {
        if !node(p).is_empty() {
            *per_node.entry(node(p)).or_default() += 1;
        }
    }
    let rank = |p: &CachedPod| per_node.get(node(p)).copied().unwrap_or(0);
    let mut ranked: Vec<&CachedPod> = pods.to_vec();
    ranked.sort_by(|a, b| deletion_order(a, rank(a), b, rank(b)));
    ranked.into_iter().take(n).cloned().collect()
}

/// A pod for `owner` from `template`: its labels, annotations, finalizers and spec, the
/// name `<owner>-<5 random characters>` (the API server fills in `generateName`), and the
/// owner as its controller.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner_name: &str,
    owner: OwnerReference,
) -> Pod {
    let meta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(namespace.to_string()),
            labels: meta.labels,
            annotations: meta.annotations,
            finalizers: meta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

/// Whether every label of the template is on the pod (`fullyLabeledReplicas`).
pub fn fully_labeled(pod: &CachedPod, template: &PodTemplateSpec) -> bool {
    let want = template.metadata.as_ref().and_then(|m| m.labels.as_ref());
    let have = pod.metadata.labels.as_ref();
    want.is_none_or(|w| {
        w.iter()
            .all(|(k, v)| have.and_then(|h| h.get(k)) == Some(v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(
        name: &str,
        node: &str,
        phase: &str,
        ready_at: Option<i64>,
        restarts: i32,
        born: i64,
    ) -> CachedPod {
        let t = |s: i64| Time(Timestamp::from_second(s).unwrap());
        CachedPod::from(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(t(born)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: ready_at.map(|r| {
                    vec![PodCondition {
                        type_: "Ready".into(),
                        status: "True".into(),
                        last_transition_time: Some(t(r)),
                        ..Default::default()
                    }]
                }),
                container_statuses: Some(vec![ContainerStatus {
                    restart_count: restarts,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    fn names(v: &[CachedPod]) -> Vec<&str> {
        v.iter()
            .map(|p| p.metadata.name.as_deref().unwrap())
            .collect()
    }

    #[test]
    fn deletes_unscheduled_then_pending_then_not_ready_first() {
        let running = pod("running", "n1", "Running", Some(100), 0, 10);
        let not_ready = pod("not-ready", "n2", "Running", None, 0, 10);
        let pending = pod("pending", "n3", "Pending", None, 0, 10);
        let unscheduled = pod("unscheduled", "", "Pending", None, 0, 10);
        let all = [&running, &not_ready, &pending, &unscheduled];
        assert_eq!(
            names(&pick_victims(&all, 4)),
            ["unscheduled", "pending", "not-ready", "running"]
        );
    }

    #[test]
    fn among_ready_pods_deletes_doubled_up_then_recently_ready_then_restarted_then_young() {
        let a = pod("alone", "n1", "Running", Some(100), 0, 10);
        let d1 = pod("doubled-old", "n2", "Running", Some(100), 0, 10);
        let d2 = pod("doubled-young", "n2", "Running", Some(100), 0, 20);
        assert_eq!(names(&pick_victims(&[&a, &d1, &d2], 1)), ["doubled-young"]);

        let long = pod("ready-long", "n1", "Running", Some(100), 0, 10);
        let short = pod("ready-short", "n2", "Running", Some(200), 0, 10);
        assert_eq!(names(&pick_victims(&[&long, &short], 1)), ["ready-short"]);

        let calm = pod("calm", "n1", "Running", Some(100), 0, 10);
        let crashy = pod("crashy", "n2", "Running", Some(100), 5, 10);
        assert_eq!(names(&pick_victims(&[&calm, &crashy], 1)), ["crashy"]);
    }

    #[test]
    fn available_only_after_min_ready_seconds() {
        let p = pod("p", "n", "Running", Some(100), 0, 10);
        let at = |s| Timestamp::from_second(s).unwrap();
        assert!(is_available(&p, 0, at(100)));
        assert!(!is_available(&p, 10, at(105)));
        assert!(is_available(&p, 10, at(110)));
        assert_eq!(
            until_available(&p, 10, at(105)),
            Some(std::time::Duration::from_secs(5))
        );
    }
}
