//! API discovery generated from [`crate::resources::CATALOG`]: plain (`APIVersions`,
//! `APIGroupList`, `APIGroup`, `APIResourceList`) and aggregated (`apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList`, when the Accept header asks for it).

use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{json as reply, json_with_type};
use crate::resources::{ResourceInfo, CATALOG};

const VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
const SUB_VERBS: &[&str] = &["get", "patch", "update"];
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Groups in discovery order, each with its versions (preferred first).
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for r in CATALOG.iter().filter(|r| !r.group.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == r.group) {
            Some((_, vs)) if !vs.contains(&r.version) => vs.push(r.version),
            Some(_) => {}
            None => out.push((r.group, vec![r.version])),
        }
    }
    out
}

fn wants_aggregated(headers: &HeaderMap) -> bool {
    let accept = headers
        .get(http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    accept.split(',').any(|alt| {
        let params: Vec<&str> = alt.split(';').map(str::trim).collect();
        ["g=apidiscovery.k8s.io", "v=v2", "as=APIGroupDiscoveryList"]
            .iter()
            .all(|want| params.contains(want))
    })
}

pub fn serve(segs: &[String], headers: &HeaderMap) -> Result<Response, ApiError> {
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let aggregated = wants_aggregated(headers);
    Ok(match s.as_slice() {
        ["api"] if aggregated => {
            json_with_type(200, &aggregated_list(&[("", vec!["v1"])]), AGGREGATED)
        }
        ["api"] => reply(
            200,
            &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}]}),
        ),
        ["apis"] if aggregated => json_with_type(200, &aggregated_list(&groups()), AGGREGATED),
        ["apis"] => {
            let gs: Vec<Value> = groups().iter().map(|(g, vs)| api_group(g, vs)).collect();
            reply(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": gs}),
            )
        }
        ["apis", g] => {
            let (g, vs) = groups()
                .into_iter()
                .find(|(name, _)| name == g)
                .ok_or_else(not_found)?;
            let mut group = api_group(g, &vs);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            reply(200, &group)
        }
        ["api", v] => resource_list("", v)?,
        ["apis", g, v] => resource_list(g, v)?,
        _ => return Err(not_found()),
    })
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn api_group(g: &str, versions: &[&str]) -> Value {
    let vs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
        .collect();
    json!({"name": g, "versions": vs, "preferredVersion": vs[0]})
}

fn in_version<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    CATALOG
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

fn resource_list(group: &str, version: &str) -> Result<Response, ApiError> {
    let mut resources = Vec::new();
    for r in in_version(group, version) {
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular, "namespaced": r.namespaced, "kind": r.kind,
            "verbs": VERBS, "storageVersionHash": "",
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for sub in subresources(r) {
            let kind = if sub == "scale" { "Scale" } else { r.kind };
            let group_version = if sub == "scale" {
                json!({"group": "autoscaling", "version": "v1"})
            } else {
                json!({})
            };
            let mut e = json!({"name": format!("{}/{sub}", r.plural), "singularName": "", "namespaced": r.namespaced,
                "kind": kind, "verbs": if sub == "finalize" { json!(["update"]) } else { json!(SUB_VERBS) }});
            if let Some(g) = group_version.get("group") {
                e["group"] = g.clone();
                e["version"] = group_version["version"].clone();
            }
            resources.push(e);
        }
    }
    if resources.is_empty() {
        return Err(not_found());
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Ok(reply(
        200,
        &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
    ))
}

fn subresources(r: &ResourceInfo) -> Vec<&'static str> {
    let mut subs: Vec<&'static str> = r.subresources.to_vec();
    if r.kind == "Namespace" {
        subs.push("finalize");
    }
    subs
}

/// The aggregated discovery document of `groups`.
fn aggregated_list(groups: &[(&str, Vec<&str>)]) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = in_version(g, v).map(aggregated_resource).collect();
                    json!({"version": v, "resources": resources, "freshness": "Current"})
                })
                .collect();
            let mut meta = json!({"creationTimestamp": null});
            if !g.is_empty() {
                meta["name"] = json!(g);
            }
            json!({"metadata": meta, "versions": vs})
        })
        .collect();
    json!({"kind": "APIGroupDiscoveryList", "apiVersion": "apidiscovery.k8s.io/v2", "metadata": {}, "items": items})
}

fn aggregated_resource(r: &'static ResourceInfo) -> Value {
    let subs: Vec<Value> = subresources(r)
        .into_iter()
        .map(|sub| {
            let kind = if sub == "scale" {
                json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
            } else {
                json!({"group": r.group, "version": r.version, "kind": r.kind})
            };
            let verbs = if sub == "finalize" {
                json!(["update"])
            } else {
                json!(SUB_VERBS)
            };
            json!({"subresource": sub, "responseKind": kind, "verbs": verbs})
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": VERBS,
    });
    if !r.short_names.is_empty() {
        e["shortNames"] = json!(r.short_names);
    }
    if !r.categories.is_empty() {
        e["categories"] = json!(r.categories);
    }
    if !subs.is_empty() {
        e["subresources"] = json!(subs);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_list_preferred_version_first() {
        let gs = groups();
        let (_, autoscaling) = gs.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(autoscaling, &vec!["v2", "v1"]);
        assert!(!gs.iter().any(|(g, _)| *g == "metrics.k8s.io"));
    }

    #[test]
    fn aggregated_discovery_lists_deployments_with_scale() {
        let doc = aggregated_list(&groups());
        let apps = doc["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["metadata"]["name"] == "apps")
            .unwrap();
        let deploy = apps["versions"][0]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["resource"] == "deployments")
            .unwrap();
        assert_eq!(deploy["shortNames"][0], "deploy");
        assert!(deploy["subresources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["subresource"] == "scale"));
    }
}
