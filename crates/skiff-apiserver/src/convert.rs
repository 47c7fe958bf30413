//! Conversion between the served versions of one resource and its storage version
//! (today: HorizontalPodAutoscaler `autoscaling/v1` ⇄ `autoscaling/v2`, stored as v2, with
//! the field mapping of [`crate::defaults`]).
//!
//! Routing between versions only; no storage.

use serde_json::{json, Value};

use crate::resources::{ResourceInfo, CATALOG};

/// The version objects of `info`'s resource are stored in (the first one in the catalog).
pub fn storage_info(info: &ResourceInfo) -> &'static ResourceInfo {
    CATALOG
        .iter()
        .find(|r| r.prefix() == info.prefix())
        .expect("every catalog entry is its own storage candidate")
}

/// Converts `obj` (of any version of `to`'s resource) to `to`'s version.
pub fn convert(mut obj: Value, to: &ResourceInfo) -> Value {
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let target = to.api_version();
    if from != target && to.kind == "HorizontalPodAutoscaler" {
        obj = match to.version {
            "v1" => crate::defaults::hpa_v2_to_v1(&obj),
            _ => crate::defaults::hpa_v1_to_v2(&obj),
        };
    }
    obj["apiVersion"] = json!(target);
    obj["kind"] = json!(to.kind);
    obj
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_cpu_target_between_versions() {
        let v1 = crate::resources::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = storage_info(v1);
        assert_eq!(v2.version, "v2");
        let obj = json!({"apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "spec": {"maxReplicas": 5, "targetCPUUtilizationPercentage": 80}});
        let stored = convert(obj, v2);
        assert_eq!(
            stored["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
            80
        );
        let back = convert(stored, v1);
        assert_eq!(back["spec"]["targetCPUUtilizationPercentage"], 80);
        assert_eq!(back["apiVersion"], "autoscaling/v1");
    }
}
