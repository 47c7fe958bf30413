//! `backoffLimitPerIndex` of Indexed Jobs (kube-controller-manager's per-index back-off): each
//! index has its own count of failures, carried from one pod of the index to its replacement
//! in the `batch.kubernetes.io/job-index-failure-count` annotation (and the failures a
//! `podFailurePolicy` ignored in `…/job-index-ignored-failure-count`), so it survives the
//! deletion of the failed pods. An index whose count goes past the limit, or whose pod
//! matched a `FailIndex` rule, is failed for good: it is listed in `status.failedIndexes` and
//! never retried, while the other indexes go on. Each index waits out its own exponential
//! back-off before it is retried.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

use super::failure::Verdict;
use super::indexed;
use crate::cachedpod::CachedPod;

/// The failures counted for an index before this pod was created.
pub const FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-failure-count";
/// The failures of an index that a `podFailurePolicy` rule ignored.
pub const IGNORED_FAILURE_COUNT_KEY: &str = "batch.kubernetes.io/job-index-ignored-failure-count";

/// What the failed pods of a Job say about its indexes.
#[derive(Debug, Default, PartialEq)]
pub struct Indexes {
    /// Counted failures per index (what the index's next pod carries).
    pub failures: BTreeMap<i32, i32>,
    /// Ignored failures per index.
    pub ignored: BTreeMap<i32, i32>,
    /// When each index last failed.
    pub last_failure: BTreeMap<i32, Timestamp>,
    /// Indexes failed for good.
    pub failed: BTreeSet<i32>,
}

fn annotation(p: &CachedPod, key: &str) -> i32 {
    p.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(key))
        .and_then(|v| v.parse::<i32>().ok())
        .unwrap_or(0)
        .max(0)
}

/// Judges the failed pods (`failed`, each with its verdict and when it finished) against
/// `limit`; `recorded` is `status.failedIndexes` as written before (pods may be gone since).
pub fn assess(
    failed: &[(&CachedPod, &Verdict, Option<Timestamp>)],
    limit: i32,
    completions: i32,
    recorded: &str,
) -> Indexes {
    let mut out = Indexes {
        failed: indexed::parse_ranges(recorded, completions),
        ..Default::default()
    };
    for (pod, verdict, finished) in failed {
        let Some(i) = indexed::index_of(pod, completions) else {
            continue;
        };
        let before = annotation(pod, FAILURE_COUNT_KEY);
        let ignored_before = annotation(pod, IGNORED_FAILURE_COUNT_KEY);
        let (count, ignored) = match verdict {
            Verdict::Ignore => (before, ignored_before.saturating_add(1)),
            _ => (before.saturating_add(1), ignored_before),
        };
        let f = out.failures.entry(i).or_default();
        *f = (*f).max(count);
        let g = out.ignored.entry(i).or_default();
        *g = (*g).max(ignored);
        if matches!(verdict, Verdict::FailIndex) || count > limit {
            out.failed.insert(i);
        }
        if let Some(t) = finished {
            let last = out.last_failure.entry(i).or_insert(*t);
            *last = (*last).max(*t);
        }
    }
    out
}

impl Indexes {
    /// Marks `pod` (a new pod for `index`) with the failures its index has had.
    pub fn annotate(&self, pod: &mut Pod, index: i32) {
        let annotations = pod
            .metadata
            .annotations
            .get_or_insert_with(Default::default);
        let failures = self.failures.get(&index).copied().unwrap_or(0);
        annotations.insert(FAILURE_COUNT_KEY.into(), failures.to_string());
        if let Some(n) = self.ignored.get(&index).filter(|n| **n > 0) {
            annotations.insert(IGNORED_FAILURE_COUNT_KEY.into(), n.to_string());
        }
    }

    /// When `index` may run again: its last failure plus a back-off of `base` doubled per
    /// counted failure after the first, at most `max` (None: at once).
    pub fn retry_at(&self, index: i32, base: Duration, max: Duration) -> Option<Timestamp> {
        let failures = *self.failures.get(&index).filter(|n| **n > 0)?;
        let wait = base
            .saturating_mul(2u32.saturating_pow((failures - 1) as u32))
            .min(max);
        let last = self.last_failure.get(&index)?;
        last.checked_add(SignedDuration::try_from(wait).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn failed_pod(index: i32, before: Option<i32>) -> CachedPod {
        let mut annotations = json!({indexed::INDEX_KEY: index.to_string()});
        if let Some(n) = before {
            annotations[FAILURE_COUNT_KEY] = json!(n.to_string());
        }
        serde_json::from_value(json!({"metadata": {"name": format!("p{index}"),
            "annotations": annotations}, "status": {"phase": "Failed"}}))
        .unwrap()
    }

    #[test]
    fn counts_carry_over_and_fail_an_index_past_its_limit() {
        let t = Timestamp::from_second(1_000).unwrap();
        let (a, b, c, d) = (
            failed_pod(0, None),
            failed_pod(1, Some(1)),
            failed_pod(2, Some(0)),
            failed_pod(3, Some(0)),
        );
        let pods = [
            (&a, &Verdict::Count, Some(t)),
            (&b, &Verdict::Count, Some(t)),
            (&c, &Verdict::FailIndex, None),
            (&d, &Verdict::Ignore, None),
        ];
        let got = assess(&pods, 1, 5, "4");
        assert_eq!(
            got.failures,
            BTreeMap::from([(0, 1), (1, 2), (2, 1), (3, 0)])
        );
        assert_eq!(got.ignored.get(&3), Some(&1));
        // Index 1 went past the limit, index 2 matched FailIndex, index 4 was recorded.
        assert_eq!(got.failed, BTreeSet::from([1, 2, 4]));
        let mut next: Pod = Default::default();
        got.annotate(&mut next, 0);
        assert_eq!(
            next.metadata.annotations.unwrap()[FAILURE_COUNT_KEY],
            "1",
            "the replacement of index 0 carries its failure"
        );
        let base = Duration::from_secs(10);
        let max = Duration::from_secs(360);
        assert_eq!(
            got.retry_at(0, base, max),
            Some(Timestamp::from_second(1_010).unwrap())
        );
        assert_eq!(
            got.retry_at(1, base, max),
            Some(Timestamp::from_second(1_020).unwrap())
        );
        assert_eq!(got.retry_at(3, base, max), None, "ignored: no back-off");
    }
}
