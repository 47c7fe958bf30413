//! LimitRanger admission (kube-apiserver's `LimitRanger` plugin) on the create of pods and
//! PersistentVolumeClaims: containers get the `defaultRequest`/`default` of the namespace's
//! `Container` limits for what they leave out (recorded in the `kubernetes.io/limit-ranger`
//! annotation), then `min`, `max` and `maxLimitRequestRatio` of the `Container`, `Pod` and
//! `PersistentVolumeClaim` limits are enforced with Kubernetes' messages.

use kube_quantity::ParsedQuantity;
use serde_json::{json, Map, Value};
use skiff_quota::{self as q, ResourceList};

use super::forbidden;
use crate::error::ApiError;
use crate::kinds::core::limitrange::LimitRanges;
use crate::object;
use crate::resources::ResourceInfo;
use crate::router::ApiState;

/// Defaults and checks a new pod or claim against the LimitRanges of its namespace.
pub async fn admit(state: &ApiState, info: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    let pods = info.group.is_empty() && info.plural == "pods";
    let claims = info.group.is_empty() && info.plural == "persistentvolumeclaims";
    if !pods && !claims {
        return Ok(());
    }
    let ranges = crate::lookup::list(state, &LimitRanges, object::namespace(obj)).await?;
    if ranges.is_empty() {
        return Ok(());
    }
    let limits: Vec<&Value> = ranges
        .iter()
        .flat_map(|r| r.pointer("/spec/limits").and_then(Value::as_array))
        .flatten()
        .collect();
    let mut errors = Vec::new();
    if pods {
        apply_defaults(obj, &limits);
        for l in &limits {
            check_pod(obj, l, &mut errors);
        }
    } else {
        for l in limits
            .iter()
            .filter(|l| l["type"] == "PersistentVolumeClaim")
        {
            let requests = q::resource_list(obj.pointer("/spec/resources/requests"));
            for (r, enforced) in entries(l, "min") {
                if let Err(e) = min_constraint(
                    "PersistentVolumeClaim",
                    &r,
                    &enforced,
                    &requests,
                    &ResourceList::new(),
                ) {
                    errors.push(e);
                }
            }
            for (r, enforced) in entries(l, "max") {
                if let Some(req) = requests.get(&r).filter(|v| **v > enforced.1) {
                    errors.push(format!(
                        "maximum {r} usage per PersistentVolumeClaim is {}, but request is {}",
                        enforced.0,
                        q::format_quantity(req)
                    ));
                }
            }
        }
    }
    match errors.len() {
        0 => Ok(()),
        1 => Err(forbidden(info, obj, &errors[0])),
        _ => Err(forbidden(info, obj, &format!("[{}]", errors.join(", ")))),
    }
}

/// The quantities of `limit[field]` by resource: (as written, parsed).
fn entries(limit: &Value, field: &str) -> Vec<(String, (String, ParsedQuantity))> {
    limit[field]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| {
            let s = v.as_str()?;
            Some((k.clone(), (s.to_string(), q::parse(s)?)))
        })
        .collect()
}

/// Sets the `Container` limits' defaults on every container that lacks them, and records
/// what was set in the `kubernetes.io/limit-ranger` annotation.
fn apply_defaults(pod: &mut Value, limits: &[&Value]) {
    let (mut requests, mut lims) = (Map::new(), Map::new());
    for l in limits.iter().filter(|l| l["type"] == "Container") {
        for (field, into) in [("defaultRequest", &mut requests), ("default", &mut lims)] {
            for (k, v) in l[field].as_object().into_iter().flatten() {
                into.insert(k.clone(), v.clone());
            }
        }
    }
    if requests.is_empty() && lims.is_empty() {
        return;
    }
    let mut notes = Vec::new();
    for field in ["initContainers", "containers"] {
        let Some(list) = pod
            .pointer_mut(&format!("/spec/{field}"))
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for c in list {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            if !c["resources"].is_object() {
                c["resources"] = json!({});
            }
            for (kind, defaults) in [("requests", &requests), ("limits", &lims)] {
                if !c["resources"][kind].is_object() {
                    c["resources"][kind] = json!({});
                }
                let mut set = Vec::new();
                for (k, v) in defaults {
                    let have = &mut c["resources"][kind];
                    if have.get(k).is_none() {
                        have[k] = v.clone();
                        set.push(k.clone());
                    }
                }
                if c["resources"][kind].as_object().is_some_and(Map::is_empty) {
                    if let Some(r) = c["resources"].as_object_mut() {
                        r.remove(kind);
                    }
                }
                if !set.is_empty() {
                    let word = if kind == "requests" {
                        "request"
                    } else {
                        "limit"
                    };
                    notes.push(format!(
                        "{} {word} for {} {name}",
                        set.join(", "),
                        &field[..field.len() - 1].replace("initContainer", "init container")
                    ));
                }
            }
        }
    }
    if !notes.is_empty() {
        let meta = object::meta_mut(pod);
        if !meta.get("annotations").is_some_and(Value::is_object) {
            meta.insert("annotations".into(), json!({}));
        }
        meta["annotations"]["kubernetes.io/limit-ranger"] =
            json!(format!("LimitRanger plugin set: {}", notes.join("; ")));
    }
}

/// A container's requests and limits, or the pod's sums (for `Pod` limits).
fn resources_of(c: &Value) -> (ResourceList, ResourceList) {
    (
        q::resource_list(c.pointer("/resources/requests")),
        q::resource_list(c.pointer("/resources/limits")),
    )
}

/// Enforces one limit of a LimitRange on `pod` (Kubernetes' `PodValidateLimitFunc`).
fn check_pod(pod: &Value, limit: &Value, errors: &mut Vec<String>) {
    let ty = limit["type"].as_str().unwrap_or_default();
    let targets: Vec<(ResourceList, ResourceList)> = match ty {
        "Container" => ["initContainers", "containers"]
            .iter()
            .flat_map(|f| pod.pointer(&format!("/spec/{f}")).and_then(Value::as_array))
            .flatten()
            .map(resources_of)
            .collect(),
        "Pod" => {
            let (mut reqs, mut lims) = (ResourceList::new(), ResourceList::new());
            for c in pod
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let (r, l) = resources_of(c);
                q::add_into(&mut reqs, &r);
                q::add_into(&mut lims, &l);
            }
            vec![(reqs, lims)]
        }
        _ => return,
    };
    for (requests, limits) in &targets {
        for (r, enforced) in entries(limit, "min") {
            if let Err(e) = min_constraint(ty, &r, &enforced, requests, limits) {
                errors.push(e);
            }
        }
        for (r, enforced) in entries(limit, "max") {
            if let Err(e) = max_constraint(ty, &r, &enforced, requests, limits) {
                errors.push(e);
            }
        }
        for (r, enforced) in entries(limit, "maxLimitRequestRatio") {
            if let Err(e) = ratio_constraint(ty, &r, &enforced, requests, limits) {
                errors.push(e);
            }
        }
    }
}

fn min_constraint(
    ty: &str,
    r: &str,
    (shown, enforced): &(String, ParsedQuantity),
    requests: &ResourceList,
    limits: &ResourceList,
) -> Result<(), String> {
    let Some(req) = requests.get(r) else {
        return Err(format!(
            "minimum {r} usage per {ty} is {shown}.  No request is specified"
        ));
    };
    if req < enforced {
        return Err(format!(
            "minimum {r} usage per {ty} is {shown}, but request is {}",
            q::format_quantity(req)
        ));
    }
    if let Some(lim) = limits.get(r).filter(|l| *l < enforced) {
        return Err(format!(
            "minimum {r} usage per {ty} is {shown}, but limit is {}",
            q::format_quantity(lim)
        ));
    }
    Ok(())
}

fn max_constraint(
    ty: &str,
    r: &str,
    (shown, enforced): &(String, ParsedQuantity),
    requests: &ResourceList,
    limits: &ResourceList,
) -> Result<(), String> {
    let Some(lim) = limits.get(r) else {
        return Err(format!(
            "maximum {r} usage per {ty} is {shown}.  No limit is specified"
        ));
    };
    if lim > enforced {
        return Err(format!(
            "maximum {r} usage per {ty} is {shown}, but limit is {}",
            q::format_quantity(lim)
        ));
    }
    if let Some(req) = requests.get(r).filter(|v| *v > enforced) {
        return Err(format!(
            "maximum {r} usage per {ty} is {shown}, but request is {}",
            q::format_quantity(req)
        ));
    }
    Ok(())
}

fn ratio_constraint(
    ty: &str,
    r: &str,
    (shown, enforced): &(String, ParsedQuantity),
    requests: &ResourceList,
    limits: &ResourceList,
) -> Result<(), String> {
    let value =
        |q: Option<&ParsedQuantity>| q.and_then(ParsedQuantity::to_bytes_f64).unwrap_or(0.0);
    let req = value(requests.get(r));
    if req == 0.0 {
        return Err(format!("{r} max limit to request ratio per {ty} is {shown}, but no request is specified or request is 0"));
    }
    let lim = value(limits.get(r));
    if lim == 0.0 {
        return Err(format!("{r} max limit to request ratio per {ty} is {shown}, but no limit is specified or limit is 0"));
    }
    let ratio = lim / req;
    if ratio > enforced.to_bytes_f64().unwrap_or(f64::MAX) {
        return Err(format!(
            "{r} max limit to request ratio per {ty} is {shown}, but provided ratio is {ratio:.6}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_only_what_containers_leave_out() {
        let limit = json!({"type": "Container", "default": {"cpu": "500m", "memory": "128Mi"}, "defaultRequest": {"cpu": "100m"}});
        let mut pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "a"}, {"name": "b", "resources": {"limits": {"cpu": "1"}}}]}});
        apply_defaults(&mut pod, &[&limit]);
        let a = &pod["spec"]["containers"][0]["resources"];
        assert_eq!(
            a,
            &json!({"requests": {"cpu": "100m"}, "limits": {"cpu": "500m", "memory": "128Mi"}})
        );
        assert_eq!(
            pod["spec"]["containers"][1]["resources"]["limits"]["cpu"],
            "1"
        );
        assert!(pod["metadata"]["annotations"]["kubernetes.io/limit-ranger"]
            .as_str()
            .unwrap()
            .starts_with("LimitRanger plugin set: cpu request for container a; cpu, memory limit for container a"));
    }

    #[test]
    fn bounds_are_reported_as_kubernetes_words_them() {
        let limit = json!({"type": "Container", "max": {"cpu": "1"}, "min": {"memory": "64Mi"}, "maxLimitRequestRatio": {"cpu": "2"}});
        let pod = json!({"spec": {"containers": [{"name": "a", "resources": {
            "requests": {"cpu": "500m"}, "limits": {"cpu": "2"}}}]}});
        let mut errors = Vec::new();
        check_pod(&pod, &limit, &mut errors);
        assert_eq!(
            errors,
            [
                "minimum memory usage per Container is 64Mi.  No request is specified",
                "maximum cpu usage per Container is 1, but limit is 2",
                "cpu max limit to request ratio per Container is 2, but provided ratio is 4.000000",
            ]
        );
    }
}
