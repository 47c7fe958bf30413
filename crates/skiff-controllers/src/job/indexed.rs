//! Indexed Jobs (`completionMode: Indexed`): each of `completions` indexes needs one pod to
//! succeed. A pod carries its index in the `batch.kubernetes.io/job-completion-index`
//! annotation and label, in `JOB_COMPLETION_INDEX` (from the label, through the downward
//! API) and in its hostname `<job>-<index>`; `status.completedIndexes` lists the succeeded
//! indexes as compressed ranges (`0-2,4`), as kube-controller-manager writes them.

use std::collections::BTreeSet;

use crate::cachedpod::CachedPod;
use k8s_openapi::api::batch::v1::JobSpec;
use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector, Pod};

/// The annotation and label naming a pod's index.
pub const INDEX_KEY: &str = "batch.kubernetes.io/job-completion-index";
/// The environment variable holding it.
pub const INDEX_ENV: &str = "JOB_COMPLETION_INDEX";

/// Whether the Job runs in Indexed completion mode.
pub fn is_indexed(spec: &JobSpec) -> bool {
    spec.completion_mode.as_deref() == Some("Indexed")
}

/// The index of a pod (annotation first, then label), if it is a valid one below
/// `completions`.
pub fn index_of(p: &CachedPod, completions: i32) -> Option<i32> {
    let m = &p.metadata;
    let value = m
        .annotations
        .as_ref()
        .and_then(|a| a.get(INDEX_KEY))
        .or_else(|| m.labels.as_ref().and_then(|l| l.get(INDEX_KEY)))?;
    value
        .parse::<i32>()
        .ok()
        .filter(|i| (0..completions).contains(i))
}

/// The indexes of `completedIndexes` (`1,3-5`) below `completions`; malformed parts are
/// skipped.
pub fn parse_ranges(s: &str, completions: i32) -> BTreeSet<i32> {
    let mut out = BTreeSet::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<i32>(), b.parse::<i32>()),
            None => (part.parse::<i32>(), part.parse::<i32>()),
        };
        if let (Ok(lo), Ok(hi)) = (lo, hi) {
            out.extend((lo.max(0)..=hi.min(completions - 1)).filter(|i| *i >= lo));
        }
    }
    out
}

/// `indexes` as compressed ranges: consecutive runs as `a-b`, single ones alone.
pub fn format_ranges(indexes: &BTreeSet<i32>) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut run: Option<(i32, i32)> = None;
    for &i in indexes {
        run = match run {
            Some((lo, hi)) if i == hi + 1 => Some((lo, i)),
            Some(r) => {
                parts.push(range(r));
                Some((i, i))
            }
            None => Some((i, i)),
        };
    }
    if let Some(r) = run {
        parts.push(range(r));
    }
    parts.join(",")
}

fn range((lo, hi): (i32, i32)) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}-{hi}")
    }
}

/// Makes `pod` (from the Job's template) the pod of `index`.
pub fn for_index(mut pod: Pod, job: &str, index: i32) -> Pod {
    let value = index.to_string();
    pod.metadata.generate_name = Some(format!("{job}-{index}-"));
    pod.metadata
        .annotations
        .get_or_insert_with(Default::default)
        .insert(INDEX_KEY.into(), value.clone());
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(INDEX_KEY.into(), value);
    if let Some(spec) = pod.spec.as_mut() {
        spec.hostname = Some(format!("{job}-{index}"));
        let env = EnvVar {
            name: INDEX_ENV.into(),
            value: None,
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    api_version: Some("v1".into()),
                    field_path: format!("metadata.labels['{INDEX_KEY}']"),
                }),
                ..Default::default()
            }),
        };
        let containers = spec
            .containers
            .iter_mut()
            .chain(spec.init_containers.iter_mut().flatten());
        for c in containers {
            let vars = c.env.get_or_insert_with(Vec::new);
            if !vars.iter().any(|v| v.name == INDEX_ENV) {
                vars.push(env.clone());
            }
        }
    }
    pod
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completed_indexes_round_trip_as_compressed_ranges() {
        let set: BTreeSet<i32> = [0, 1, 2, 4, 6, 7].into();
        assert_eq!(format_ranges(&set), "0-2,4,6-7");
        assert_eq!(parse_ranges("0-2,4,6-7", 10), set);
        assert_eq!(format_ranges(&BTreeSet::new()), "");
        // Beyond completions, reversed or malformed parts are dropped.
        assert_eq!(parse_ranges("3-1,x,5-9,2", 6), [2, 5].into());
    }

    #[test]
    fn a_pod_for_an_index_carries_it_everywhere() {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"labels": {"app": "x"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}],
                "initContainers": [{"name": "i", "image": "busybox"}]},
        }))
        .unwrap();
        let p = for_index(pod, "work", 3);
        assert_eq!(p.metadata.generate_name.as_deref(), Some("work-3-"));
        assert_eq!(index_of(&p.clone().into(), 4), Some(3));
        assert_eq!(index_of(&p.clone().into(), 3), None, "out of range");
        let spec = p.spec.unwrap();
        assert_eq!(spec.hostname.as_deref(), Some("work-3"));
        for c in spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
        {
            let env = &c.env.as_ref().unwrap()[0];
            assert_eq!(env.name, "JOB_COMPLETION_INDEX");
            assert_eq!(
                env.value_from
                    .as_ref()
                    .unwrap()
                    .field_ref
                    .as_ref()
                    .unwrap()
                    .field_path,
                "metadata.labels['batch.kubernetes.io/job-completion-index']"
            );
        }
    }
}
