//! API discovery generated from the served kinds ([`crate::resources::all`]) and the
//! create-only reviews ([`crate::reviews`]): plain (`APIVersions`,
//! `APIGroupList`, `APIGroup`, `APIResourceList`) and aggregated (`apidiscovery.k8s.io/v2`
//! `APIGroupDiscoveryList`, when the Accept header asks for it).

use axum::response::Response;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{json as reply, json_with_type};
use crate::registry::{Backend, Kind};
use crate::resources::{self, Sub};
use crate::reviews::Review;

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
/// The verbs of a read-only kind (`metrics.k8s.io`).
const READ_VERBS: &[&str] = &["get", "list"];
/// The verbs of a review: kube-apiserver lists its virtual resources as create-only.
const CREATE: &[&str] = &["create"];
const AGGREGATED: &str = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// Groups in discovery order, each with its versions (preferred first).
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    let served = resources::all()
        .map(|k| (k.info().group, k.info().version))
        .chain(
            Review::ALL
                .iter()
                .map(|r| (r.info().group, r.info().version)),
        );
    for (group, version) in served.filter(|(g, _)| !g.is_empty()) {
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, vs)) if !vs.contains(&version) => vs.push(version),
            Some(_) => {}
            None => out.push((group, vec![version])),
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
) -> impl Iterator<Item = &'static dyn Kind> + 'a {
    resources::all().filter(move |k| k.info().group == group && k.info().version == version)
}

fn verbs(k: &dyn Kind) -> &'static [&'static str] {
    match k.backend() {
        Backend::Store => VERBS,
        Backend::Metrics | Backend::Components => READ_VERBS,
    }
}

/// The kind a subresource answers with, as (group, version, kind).
fn sub_kind(k: &dyn Kind, sub: Sub) -> (&'static str, &'static str, &'static str) {
    let r = k.info();
    match sub {
        Sub::Scale => ("autoscaling", "v1", "Scale"),
        Sub::Binding => ("", "v1", "Binding"),
        Sub::Token => ("authentication.k8s.io", "v1", "TokenRequest"),
        Sub::Eviction => ("policy", "v1", "Eviction"),
        _ => (r.group, r.version, r.kind),
    }
}

fn resource_list(group: &str, version: &str) -> Result<Response, ApiError> {
    let mut resources = Vec::new();
    for k in in_version(group, version) {
        let r = k.info();
        let mut entry = json!({
            "name": r.plural, "singularName": r.singular(), "namespaced": r.namespaced, "kind": r.kind,
            "verbs": verbs(k), "storageVersionHash": "",
        });
        if !r.short_names.is_empty() {
            entry["shortNames"] = json!(r.short_names);
        }
        if !r.categories.is_empty() {
            entry["categories"] = json!(r.categories);
        }
        resources.push(entry);
        for &sub in r.subresources {
            let (g, v, kind) = sub_kind(k, sub);
            let mut e = json!({"name": format!("{}/{}", r.plural, sub.name()), "singularName": "", "namespaced": r.namespaced,
                "kind": kind, "verbs": sub.verbs()});
            if (g, v) != (r.group, r.version) {
                e["group"] = json!(g);
                e["version"] = json!(v);
            }
            resources.push(e);
        }
    }
    for r in Review::in_version(group, version).map(Review::info) {
        resources.push(json!({"name": r.plural, "singularName": r.singular(),
            "namespaced": r.namespaced, "kind": r.kind, "verbs": CREATE}));
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

/// The aggregated discovery document of `groups`.
fn aggregated_list(groups: &[(&str, Vec<&str>)]) -> Value {
    let items: Vec<Value> = groups
        .iter()
        .map(|(g, versions)| {
            let vs: Vec<Value> = versions
                .iter()
                .map(|v| {
                    let resources: Vec<Value> = in_version(g, v)
                        .map(aggregated_resource)
                        .chain(Review::in_version(g, v).map(aggregated_review))
                        .collect();
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

fn aggregated_resource(k: &'static dyn Kind) -> Value {
    let r = k.info();
    let subs: Vec<Value> = r
        .subresources
        .iter()
        .map(|&sub| {
            let (g, v, kind) = sub_kind(k, sub);
            json!({"subresource": sub.name(), "responseKind": {"group": g, "version": v, "kind": kind}, "verbs": sub.verbs()})
        })
        .collect();
    let mut e = json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": verbs(k),
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

fn aggregated_review(review: Review) -> Value {
    let r = review.info();
    json!({
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular(),
        "verbs": CREATE,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_list_preferred_version_first() {
        let gs = groups();
        let (_, autoscaling) = gs.iter().find(|(g, _)| *g == "autoscaling").unwrap();
        assert_eq!(autoscaling, &vec!["v2", "v1"]);
        let (_, metrics) = gs.iter().find(|(g, _)| *g == "metrics.k8s.io").unwrap();
        assert_eq!(metrics, &vec!["v1beta1"]);
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

    #[test]
    fn reviews_are_discoverable_as_create_only() {
        let gs = groups();
        for group in ["authentication.k8s.io", "authorization.k8s.io"] {
            assert!(
                gs.iter().any(|(g, vs)| *g == group && vs == &vec!["v1"]),
                "{group}"
            );
        }
        let doc = aggregated_list(&gs);
        let resources = |group: &str| {
            doc["items"]
                .as_array()
                .unwrap()
                .iter()
                .find(|i| i["metadata"]["name"] == group)
                .unwrap()["versions"][0]["resources"]
                .as_array()
                .unwrap()
                .clone()
        };
        let authz = resources("authorization.k8s.io");
        let local = authz
            .iter()
            .find(|r| r["resource"] == "localsubjectaccessreviews")
            .unwrap();
        assert_eq!(local["scope"], "Namespaced");
        assert_eq!(local["verbs"], json!(["create"]));
        assert_eq!(local["responseKind"]["kind"], "LocalSubjectAccessReview");
        let authn: Vec<Value> = resources("authentication.k8s.io")
            .iter()
            .map(|r| r["resource"].clone())
            .collect();
        assert_eq!(authn, [json!("selfsubjectreviews"), json!("tokenreviews")]);
    }
}
