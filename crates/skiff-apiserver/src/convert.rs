//! Conversion between the served versions of one resource and its storage version (the
//! first served version stored under the same prefix): each kind converts objects of the
//! other versions into its own ([`crate::registry::Strategy::convert_from`]).
//!
//! Routing between versions only; no storage.

use serde_json::{json, Value};

use crate::registry::Kind;
use crate::resources::{self, ResourceInfo};

/// The version objects of `info`'s resource are stored in.
pub fn storage_info(info: &ResourceInfo) -> &'static ResourceInfo {
    resources::storage_kind(info).info()
}

/// Converts `obj` (of any served version of `to`'s resource) to `to`'s version.
pub fn convert(obj: Value, to: &dyn Kind) -> Value {
    let info = to.info();
    let target = info.api_version();
    let from = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if !from.is_empty() && from != target {
        return to.convert_from(obj);
    }
    let mut obj = obj;
    obj["apiVersion"] = json!(target);
    obj["kind"] = json!(info.kind);
    obj
}

/// Converts `obj` to the served version `to` (looked up by its resource entry).
pub fn convert_to(obj: Value, to: &ResourceInfo) -> Value {
    let kind =
        resources::find(to.group, to.version, to.plural).expect("only served kinds are stored");
    convert(obj, kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hpa_round_trips_cpu_target_between_versions() {
        let v1 = resources::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = resources::storage_kind(v1.info());
        assert_eq!(v2.info().version, "v2");
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
