//! The replica count one Resource metric asks for, by kube-controller-manager's replica
//! calculator: `ceil(current × usage / target)` over the pods that report, with a tolerance
//! around the target, pods without metrics counted against the direction of the change and
//! not-yet-ready pods (CPU only) counted as idle when scaling up.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// How long after a pod's start its CPU figures may still reflect start-up work
/// (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_PERIOD: Duration = Duration::from_secs(300);
/// How long after its start a pod's readiness may still flip as it comes up
/// (`--horizontal-pod-autoscaler-initial-readiness-delay`).
pub const INITIAL_READINESS_DELAY: Duration = Duration::from_secs(30);

/// What the calculator needs of a pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub name: String,
    /// Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    pub deleting: bool,
    /// The Ready condition: (status, lastTransitionTime); None when it has none.
    pub ready: Option<(bool, Option<Timestamp>)>,
    pub start_time: Option<Timestamp>,
    /// The pod's request for the resource, in thousandths of its unit; None when a
    /// container has none.
    pub request_milli: Option<i64>,
}

/// One pod's usage of the resource.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// Thousandths of the resource's unit (millicores, millibytes).
    pub milli: i64,
    pub timestamp: Timestamp,
    pub window: Duration,
}

/// What the metric aims at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Target {
    /// Percent of the pods' requests.
    Utilization(i32),
    /// Per-pod usage, in thousandths of the unit.
    AverageValue(i64),
}

/// The calculator's answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proposal {
    pub replicas: i32,
    /// Percent of requests (Utilization targets).
    pub utilization: Option<i32>,
    /// Average usage per reporting pod, in thousandths of the unit.
    pub average_milli: i64,
}

/// Why no proposal could be made (the ScalingActive condition's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CalcError {
    #[error("no pods returned by selector while calculating replica count")]
    NoPods,
    #[error("did not receive metrics for targeted pods (pods might be unready)")]
    NoMetrics,
    #[error("missing request for {resource} in pod {pod}")]
    MissingRequest { resource: String, pod: String },
    #[error("no metrics returned matched known pods")]
    NoMatchingPods,
}

fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX))
        .unwrap_or(Timestamp::MAX)
}

/// Sorts pods into those that count, those not ready yet, those without metrics and those
/// ignored (deleting, failed), as upstream's `groupPods`.
struct Groups {
    ready: usize,
    unready: HashSet<String>,
    missing: HashSet<String>,
    ignored: HashSet<String>,
}

fn group(pods: &[PodInfo], metrics: &HashMap<String, Sample>, cpu: bool, now: Timestamp) -> Groups {
    let mut g = Groups {
        ready: 0,
        unready: HashSet::new(),
        missing: HashSet::new(),
        ignored: HashSet::new(),
    };
    for p in pods {
        if p.deleting || p.phase == "Failed" {
            g.ignored.insert(p.name.clone());
            continue;
        }
        if p.phase == "Pending" {
            g.unready.insert(p.name.clone());
            continue;
        }
        let Some(sample) = metrics.get(&p.name) else {
            g.missing.insert(p.name.clone());
            continue;
        };
        if cpu {
            let unready = match (p.ready, p.start_time) {
                (Some((ready, transition)), Some(start)) => {
                    let transition = transition.unwrap_or(start);
                    if after(start, CPU_INITIALIZATION_PERIOD) > now {
                        // Still starting: count it only once ready and sampled since.
                        !ready || sample.timestamp < after(transition, sample.window)
                    } else {
                        !ready && after(start, INITIAL_READINESS_DELAY) > transition
                    }
                }
                _ => true,
            };
            if unready {
                g.unready.insert(p.name.clone());
                continue;
            }
        }
        g.ready += 1;
    }
    g
}

/// The usage ratio (usage / target) of `metrics`, and the utilization or average it is made of.
fn ratio(
    metrics: &HashMap<String, Sample>,
    requests: &HashMap<String, i64>,
    target: Target,
) -> Result<(f64, Option<i32>, i64), CalcError> {
    match target {
        Target::Utilization(pct) => {
            let (mut used, mut requested, mut n) = (0i64, 0i64, 0i64);
            for (pod, s) in metrics {
                if let Some(r) = requests.get(pod) {
                    used += s.milli;
                    requested += r;
                    n += 1;
                }
            }
            if requested == 0 {
                return Err(CalcError::NoMatchingPods);
            }
            let utilization = (used * 100 / requested) as i32;
            Ok((
                utilization as f64 / pct.max(1) as f64,
                Some(utilization),
                used / n.max(1),
            ))
        }
        Target::AverageValue(per_pod) => {
            let total: i64 = metrics.values().map(|s| s.milli).sum();
            let average = total / (metrics.len().max(1) as i64);
            Ok((average as f64 / per_pod.max(1) as f64, None, average))
        }
    }
}

/// The replicas that bring the pods' usage of a resource to `target`.
pub fn calculate(
    current: i32,
    target: Target,
    resource: &str,
    pods: &[PodInfo],
    mut metrics: HashMap<String, Sample>,
    tolerance: f64,
    now: Timestamp,
) -> Result<Proposal, CalcError> {
    if pods.is_empty() {
        return Err(CalcError::NoPods);
    }
    let g = group(pods, &metrics, resource == "cpu", now);
    metrics.retain(|pod, _| !g.ignored.contains(pod) && !g.unready.contains(pod));
    // Only pods that still exist count.
    metrics.retain(|pod, _| pods.iter().any(|p| &p.name == pod));
    if metrics.is_empty() {
        return Err(CalcError::NoMetrics);
    }
    let mut requests = HashMap::new();
    if let Target::Utilization(_) = target {
        for p in pods {
            let r = p.request_milli.ok_or_else(|| CalcError::MissingRequest {
                resource: resource.to_string(),
                pod: p.name.clone(),
            })?;
            requests.insert(p.name.clone(), r);
        }
    }
    let (usage_ratio, utilization, average) = ratio(&metrics, &requests, target)?;
    let proposal = |replicas| Proposal {
        replicas,
        utilization,
        average_milli: average,
    };
    let scale_up_with_unready = !g.unready.is_empty() && usage_ratio > 1.0;
    if !scale_up_with_unready && g.missing.is_empty() {
        if (1.0 - usage_ratio).abs() <= tolerance {
            return Ok(proposal(current));
        }
        return Ok(proposal((usage_ratio * g.ready as f64).ceil() as i32));
    }
    // Pods without metrics: on the way down as if at their request (or the target), on the
    // way up as idle. Pods not ready yet on the way up: as idle.
    if !g.missing.is_empty() {
        for pod in &g.missing {
            let value = if usage_ratio < 1.0 {
                match target {
                    Target::Utilization(pct) => {
                        requests.get(pod).copied().unwrap_or(0) * i64::from(pct.max(100)) / 100
                    }
                    Target::AverageValue(v) => v,
                }
            } else {
                0
            };
            if usage_ratio != 1.0 {
                metrics.insert(
                    pod.clone(),
                    Sample {
                        milli: value,
                        timestamp: now,
                        window: Duration::ZERO,
                    },
                );
            }
        }
    }
    if scale_up_with_unready {
        for pod in &g.unready {
            metrics.insert(
                pod.clone(),
                Sample {
                    milli: 0,
                    timestamp: now,
                    window: Duration::ZERO,
                },
            );
        }
    }
    let (new_ratio, _, _) = ratio(&metrics, &requests, target)?;
    if (1.0 - new_ratio).abs() <= tolerance
        || (usage_ratio < 1.0 && new_ratio > 1.0)
        || (usage_ratio > 1.0 && new_ratio < 1.0)
    {
        return Ok(proposal(current));
    }
    let replicas = (new_ratio * metrics.len() as f64).ceil() as i32;
    if (new_ratio < 1.0 && replicas > current) || (new_ratio > 1.0 && replicas < current) {
        return Ok(proposal(current));
    }
    Ok(proposal(replicas))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        Timestamp::from_second(1_000_000).unwrap()
    }

    /// A pod running for an hour, ready for as long, requesting 100m.
    fn pod(name: &str) -> PodInfo {
        let start = now() - SignedDuration::from_secs(3600);
        PodInfo {
            name: name.into(),
            phase: "Running".into(),
            deleting: false,
            ready: Some((true, Some(start))),
            start_time: Some(start),
            request_milli: Some(100),
        }
    }

    fn used(pairs: &[(&str, i64)]) -> HashMap<String, Sample> {
        pairs
            .iter()
            .map(|(p, m)| {
                let s = Sample {
                    milli: *m,
                    timestamp: now(),
                    window: Duration::from_secs(10),
                };
                (p.to_string(), s)
            })
            .collect()
    }

    fn calc(
        current: i32,
        target: Target,
        pods: &[PodInfo],
        m: &[(&str, i64)],
    ) -> Result<Proposal, CalcError> {
        calculate(current, target, "cpu", pods, used(m), 0.1, now())
    }

    #[test]
    fn scales_by_usage_over_target() {
        // 90% against 50%: ceil(1 × 1.8) = 2; three pods at 90%: ceil(3 × 1.8) = 6.
        let p = calc(1, Target::Utilization(50), &[pod("a")], &[("a", 90)]).unwrap();
        assert_eq!((p.replicas, p.utilization), (2, Some(90)));
        let pods = [pod("a"), pod("b"), pod("c")];
        let p = calc(
            3,
            Target::Utilization(50),
            &pods,
            &[("a", 90), ("b", 90), ("c", 90)],
        )
        .unwrap();
        assert_eq!(p.replicas, 6);
        // Idle: zero (minReplicas applies later).
        let p = calc(
            3,
            Target::Utilization(50),
            &pods,
            &[("a", 0), ("b", 1), ("c", 0)],
        )
        .unwrap();
        assert_eq!(p.replicas, 0);
    }

    #[test]
    fn within_the_tolerance_nothing_changes() {
        let pods = [pod("a"), pod("b")];
        let p = calc(2, Target::Utilization(50), &pods, &[("a", 54), ("b", 54)]).unwrap();
        assert_eq!(p.replicas, 2);
        let p = calc(2, Target::Utilization(50), &pods, &[("a", 57), ("b", 57)]).unwrap();
        assert_eq!(p.replicas, 3);
    }

    #[test]
    fn average_value_targets_divide_the_mean() {
        let pods = [pod("a"), pod("b")];
        let p = calc(
            2,
            Target::AverageValue(100),
            &pods,
            &[("a", 300), ("b", 100)],
        )
        .unwrap();
        assert_eq!((p.replicas, p.average_milli, p.utilization), (4, 200, None));
    }

    #[test]
    fn pods_without_metrics_hold_back_the_change() {
        let pods = [pod("a"), pod("b")];
        // Scale down: the missing pod counts at its request (100%), so 2 × (10+100)/200/0.5.
        let p = calc(2, Target::Utilization(50), &pods, &[("a", 10)]).unwrap();
        assert_eq!(p.replicas, 2);
        // Scale up: the missing pod counts as idle: 2 × (200+0)/200/0.5 = 4.
        let p = calc(2, Target::Utilization(50), &pods, &[("a", 200)]).unwrap();
        assert_eq!(p.replicas, 4);
    }

    #[test]
    fn unready_and_pending_pods_count_as_idle_on_the_way_up() {
        let mut young = pod("b");
        let start = now() - SignedDuration::from_secs(20);
        young.start_time = Some(start);
        young.ready = Some((false, Some(start)));
        let mut pending = pod("c");
        pending.phase = "Pending".into();
        let pods = [pod("a"), young, pending];
        // a at 100% of its request; b and c count as 0: 3 × 100/300/0.5 = 2.
        let p = calc(3, Target::Utilization(50), &pods, &[("a", 100), ("b", 100)]).unwrap();
        assert_eq!(p.replicas, 3);
        let p = calc(1, Target::Utilization(50), &pods, &[("a", 200), ("b", 100)]).unwrap();
        assert_eq!(p.replicas, 4);
    }

    #[test]
    fn failures_say_why() {
        assert_eq!(
            calc(1, Target::Utilization(50), &[], &[]),
            Err(CalcError::NoPods)
        );
        assert_eq!(
            calc(1, Target::Utilization(50), &[pod("a")], &[]),
            Err(CalcError::NoMetrics)
        );
        let mut no_request = pod("a");
        no_request.request_milli = None;
        let err = calc(1, Target::Utilization(50), &[no_request], &[("a", 5)]).unwrap_err();
        assert_eq!(err.to_string(), "missing request for cpu in pod a");
        let mut deleting = pod("a");
        deleting.deleting = true;
        assert_eq!(
            calc(1, Target::Utilization(50), &[deleting], &[("a", 5)]),
            Err(CalcError::NoMetrics)
        );
    }
}
