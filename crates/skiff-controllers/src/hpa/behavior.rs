//! From the metrics' recommendation to the replica count the HPA sets, as
//! kube-controller-manager normalises it: stabilisation over the recent recommendations
//! (`stabilizationWindowSeconds`), the rate the `behavior` policies allow (Pods / Percent per
//! `periodSeconds`, `selectPolicy`), and `minReplicas`/`maxReplicas`. Without a `behavior`
//! the older rules apply: the downscale stabilisation window and at most double (or 4).
//!
//! The recommendations and scale events of each HPA are the controller's memory, as in
//! kube-controller-manager; a restarted controller starts with the current size.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{HPAScalingRules, HorizontalPodAutoscalerBehavior};
use k8s_openapi::jiff::{SignedDuration, Timestamp};

/// A condition to set: (reason, message).
pub type Why = (&'static str, &'static str);

pub const READY_FOR_NEW_SCALE: Why = ("ReadyForNewScale", "recommended size matches current size");
pub const SCALE_UP_STABILIZED: Why = (
    "ScaleUpStabilized",
    "recent recommendations were lower than current one, applying the lowest recent recommendation",
);
pub const SCALE_DOWN_STABILIZED: Why = (
    "ScaleDownStabilized",
    "recent recommendations were higher than current one, applying the highest recent recommendation",
);
pub const SCALE_UP_LIMIT: Why = (
    "ScaleUpLimit",
    "the desired replica count is increasing faster than the maximum scale rate",
);
pub const SCALE_DOWN_LIMIT: Why = (
    "ScaleDownLimit",
    "the desired replica count is decreasing faster than the maximum scale rate",
);
pub const TOO_MANY: Why = (
    "TooManyReplicas",
    "the desired replica count is more than the maximum replica count",
);
pub const TOO_FEW: Why = (
    "TooFewReplicas",
    "the desired replica count is less than the minimum replica count",
);
pub const WITHIN_RANGE: Why = (
    "DesiredWithinRange",
    "the desired count is within the acceptable range",
);

/// The outcome of normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Normalized {
    pub replicas: i32,
    /// The AbleToScale condition's reason (stabilised or not).
    pub able: Why,
    /// The ScalingLimited condition: whether limited, and why.
    pub limited: (bool, Why),
}

/// What one HPA asks for in one sync.
#[derive(Debug, Clone, Copy)]
pub struct Args<'a> {
    pub current: i32,
    pub desired: i32,
    pub min: i32,
    pub max: i32,
    pub behavior: Option<&'a HorizontalPodAutoscalerBehavior>,
}

#[derive(Debug, Default)]
struct History {
    /// (when, unstabilised recommendation).
    recommendations: Vec<(Timestamp, i32)>,
    /// (when, replicas added) and (when, replicas removed).
    ups: Vec<(Timestamp, i32)>,
    downs: Vec<(Timestamp, i32)>,
}

/// The controller's memory of every HPA's recommendations and scale events.
#[derive(Debug)]
pub struct Memory {
    /// The stabilisation window of HPAs without a behavior.
    downscale_window: Duration,
    per_hpa: Mutex<HashMap<String, History>>,
}

fn since(now: Timestamp, secs: i64) -> Timestamp {
    now.checked_sub(SignedDuration::from_secs(secs))
        .unwrap_or(Timestamp::MIN)
}

/// Replicas added (or removed) within the last `period` seconds.
fn changed_within(events: &[(Timestamp, i32)], now: Timestamp, period: i32) -> i32 {
    let cutoff = since(now, i64::from(period));
    events
        .iter()
        .filter(|(t, _)| *t > cutoff)
        .map(|(_, n)| n)
        .sum()
}

/// The most replicas the scale-up rules allow now.
fn up_limit(current: i32, h: &History, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    if rules.select_policy.as_deref() == Some("Disabled") {
        return current;
    }
    let pick_min = rules.select_policy.as_deref() == Some("Min");
    let mut out = if pick_min { i32::MAX } else { i32::MIN };
    for p in rules.policies.iter().flatten() {
        let added = changed_within(&h.ups, now, p.period_seconds);
        let removed = changed_within(&h.downs, now, p.period_seconds);
        let start = current - added + removed;
        let proposed = match p.type_.as_str() {
            "Pods" => start.saturating_add(p.value),
            _ => (f64::from(start) * (1.0 + f64::from(p.value) / 100.0)).ceil() as i32,
        };
        out = if pick_min {
            out.min(proposed)
        } else {
            out.max(proposed)
        };
    }
    out
}

/// The fewest replicas the scale-down rules allow now.
fn down_limit(current: i32, h: &History, rules: &HPAScalingRules, now: Timestamp) -> i32 {
    if rules.select_policy.as_deref() == Some("Disabled") {
        return current;
    }
    let pick_min = rules.select_policy.as_deref() == Some("Min");
    let mut out = if pick_min { i32::MIN } else { i32::MAX };
    for p in rules.policies.iter().flatten() {
        let added = changed_within(&h.ups, now, p.period_seconds);
        let removed = changed_within(&h.downs, now, p.period_seconds);
        let start = current - added + removed;
        let proposed = match p.type_.as_str() {
            "Pods" => start - p.value,
            _ => (f64::from(start) * (1.0 - f64::from(p.value) / 100.0)) as i32,
        };
        // "Max" picks the policy allowing the biggest change: the lowest limit.
        out = if pick_min {
            out.max(proposed)
        } else {
            out.min(proposed)
        };
    }
    out
}

impl Memory {
    pub fn new(downscale_window: Duration) -> Self {
        Memory {
            downscale_window,
            per_hpa: Mutex::default(),
        }
    }

    /// The HPA `key` starts from `current` when the controller has seen nothing of it yet.
    pub fn start(&self, key: &str, current: i32, now: Timestamp) {
        let mut map = self.per_hpa.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key.to_string()).or_default();
        if h.recommendations.is_empty() {
            h.recommendations.push((now, current));
        }
    }

    /// Forgets a deleted HPA.
    pub fn forget(&self, key: &str) {
        self.per_hpa
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }

    /// Records a rescale from `from` to `to`.
    pub fn scaled(&self, key: &str, from: i32, to: i32, now: Timestamp) {
        let mut map = self.per_hpa.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key.to_string()).or_default();
        if to > from {
            h.ups.push((now, to - from));
        } else if to < from {
            h.downs.push((now, from - to));
        }
    }

    /// The replica count to set for HPA `key`.
    pub fn normalize(&self, key: &str, a: Args<'_>, now: Timestamp) -> Normalized {
        let mut map = self.per_hpa.lock().unwrap_or_else(|e| e.into_inner());
        let h = map.entry(key.to_string()).or_default();
        let default_down = self.downscale_window.as_secs() as i32;
        let (up_window, down_window) = match a.behavior {
            Some(b) => (
                b.scale_up
                    .as_ref()
                    .and_then(|r| r.stabilization_window_seconds)
                    .unwrap_or(0),
                b.scale_down
                    .as_ref()
                    .and_then(|r| r.stabilization_window_seconds)
                    .unwrap_or(default_down),
            ),
            None => (0, default_down),
        };
        // Stabilise: no higher than the lowest recommendation of the up window, no lower
        // than the highest of the down window.
        let (up_cut, down_cut) = (since(now, up_window.into()), since(now, down_window.into()));
        let mut up_rec = a.desired;
        let mut down_rec = a.desired;
        for (t, r) in &h.recommendations {
            if *t > up_cut {
                up_rec = up_rec.min(*r);
            }
            if *t > down_cut {
                down_rec = down_rec.max(*r);
            }
        }
        let stabilized = a.current.max(up_rec).min(down_rec);
        let keep = since(now, i64::from(up_window.max(down_window)));
        h.recommendations.retain(|(t, _)| *t > keep);
        h.recommendations.push((now, a.desired));
        let able = match stabilized.cmp(&a.desired) {
            std::cmp::Ordering::Equal => READY_FOR_NEW_SCALE,
            std::cmp::Ordering::Less => SCALE_UP_STABILIZED,
            std::cmp::Ordering::Greater => SCALE_DOWN_STABILIZED,
        };

        // Rate limits and bounds.
        let (replicas, why) = match a.behavior {
            Some(b) => self.with_rules(h, a, b, stabilized, now),
            None => without_rules(a, stabilized),
        };
        let longest = 1800;
        let old = since(now, longest);
        h.ups.retain(|(t, _)| *t > old);
        h.downs.retain(|(t, _)| *t > old);
        Normalized {
            replicas,
            able,
            limited: (replicas != stabilized, why),
        }
    }

    fn with_rules(
        &self,
        h: &History,
        a: Args<'_>,
        b: &HorizontalPodAutoscalerBehavior,
        desired: i32,
        now: Timestamp,
    ) -> (i32, Why) {
        if desired > a.current {
            let limit = b
                .scale_up
                .as_ref()
                .map_or(i32::MAX, |r| up_limit(a.current, h, r, now))
                .max(a.current);
            let (most, why) = if a.max > limit {
                (limit, SCALE_UP_LIMIT)
            } else {
                (a.max, TOO_MANY)
            };
            if desired > most {
                return (most, why);
            }
        } else if desired < a.current {
            let limit = b
                .scale_down
                .as_ref()
                .map_or(i32::MIN, |r| down_limit(a.current, h, r, now))
                .min(a.current);
            let (least, why) = if a.min < limit {
                (limit, SCALE_DOWN_LIMIT)
            } else {
                (a.min, TOO_FEW)
            };
            if desired < least {
                return (least, why);
            }
        }
        (desired, WITHIN_RANGE)
    }
}

/// Without a behavior: at most double (at least 4), within min and max.
fn without_rules(a: Args<'_>, desired: i32) -> (i32, Why) {
    let up = (a.current.saturating_mul(2)).max(4);
    let (most, why) = if a.max > up {
        (up, SCALE_UP_LIMIT)
    } else {
        (a.max, TOO_MANY)
    };
    if desired < a.min {
        (a.min, TOO_FEW)
    } else if desired > most {
        (most, why)
    } else {
        (desired, WITHIN_RANGE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::autoscaling::v2::HPAScalingPolicy;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_second(1_000_000 + s).unwrap()
    }

    fn rules(window: i32, select: &str, policies: &[(&str, i32, i32)]) -> HPAScalingRules {
        HPAScalingRules {
            stabilization_window_seconds: Some(window),
            select_policy: Some(select.into()),
            policies: Some(
                policies
                    .iter()
                    .map(|(k, v, p)| HPAScalingPolicy {
                        type_: k.to_string(),
                        value: *v,
                        period_seconds: *p,
                    })
                    .collect(),
            ),
            ..Default::default()
        }
    }

    /// autoscaling/v2's defaults.
    fn defaults(down_window: i32) -> HorizontalPodAutoscalerBehavior {
        HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(0, "Max", &[("Pods", 4, 15), ("Percent", 100, 15)])),
            scale_down: Some(rules(down_window, "Max", &[("Percent", 100, 15)])),
        }
    }

    fn args(current: i32, desired: i32, b: &HorizontalPodAutoscalerBehavior) -> Args<'_> {
        Args {
            current,
            desired,
            min: 1,
            max: 10,
            behavior: Some(b),
        }
    }

    #[test]
    fn scale_up_is_immediate_scale_down_waits_for_the_window() {
        let m = Memory::new(Duration::from_secs(300));
        let b = defaults(60);
        m.start("a", 1, t(0));
        let n = m.normalize("a", args(1, 3, &b), t(1));
        assert_eq!((n.replicas, n.able), (3, READY_FOR_NEW_SCALE));
        m.scaled("a", 1, 3, t(1));
        // Load gone 10 s later: the 3 of 9 s ago holds it.
        let n = m.normalize("a", args(3, 1, &b), t(10));
        assert_eq!((n.replicas, n.able), (3, SCALE_DOWN_STABILIZED));
        // Past the window: down to 1.
        let n = m.normalize("a", args(3, 1, &b), t(75));
        assert_eq!(
            (n.replicas, n.able, n.limited.0),
            (1, READY_FOR_NEW_SCALE, false)
        );
    }

    #[test]
    fn policies_limit_the_rate() {
        let m = Memory::new(Duration::from_secs(300));
        // At most 1 pod per 60 s up.
        let b = HorizontalPodAutoscalerBehavior {
            scale_up: Some(rules(0, "Max", &[("Pods", 1, 60)])),
            scale_down: Some(rules(0, "Max", &[("Percent", 50, 60)])),
        };
        let n = m.normalize("a", args(2, 8, &b), t(0));
        assert_eq!((n.replicas, n.limited), (3, (true, SCALE_UP_LIMIT)));
        m.scaled("a", 2, 3, t(0));
        // Within the same minute no more.
        let n = m.normalize("a", args(3, 8, &b), t(30));
        assert_eq!(n.replicas, 3);
        // Down by at most half of 8 per minute.
        let n = m.normalize("b", args(8, 1, &b), t(0));
        assert_eq!((n.replicas, n.limited), (4, (true, SCALE_DOWN_LIMIT)));
        // maxReplicas bounds even an allowed rate.
        let wide = defaults(0);
        let n = m.normalize(
            "c",
            Args {
                max: 5,
                ..args(4, 20, &wide)
            },
            t(0),
        );
        assert_eq!((n.replicas, n.limited), (5, (true, TOO_MANY)));
        // Disabled scale-down never goes down.
        let off = HorizontalPodAutoscalerBehavior {
            scale_up: None,
            scale_down: Some(rules(0, "Disabled", &[("Percent", 100, 15)])),
        };
        assert_eq!(m.normalize("d", args(5, 1, &off), t(0)).replicas, 5);
    }

    #[test]
    fn without_a_behavior_at_most_double_and_the_flag_window() {
        let m = Memory::new(Duration::from_secs(30));
        let a = Args {
            current: 3,
            desired: 20,
            min: 1,
            max: 50,
            behavior: None,
        };
        let n = m.normalize("a", a, t(0));
        assert_eq!((n.replicas, n.limited), (6, (true, SCALE_UP_LIMIT)));
        let n = m.normalize(
            "a",
            Args {
                current: 6,
                desired: 1,
                ..a
            },
            t(10),
        );
        assert_eq!(
            n.replicas, 6,
            "the recommendation of 20 is within the 30 s window"
        );
        let n = m.normalize(
            "a",
            Args {
                current: 6,
                desired: 0,
                min: 2,
                ..a
            },
            t(45),
        );
        assert_eq!((n.replicas, n.limited), (2, (true, TOO_FEW)));
    }
}
