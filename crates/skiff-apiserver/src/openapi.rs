//! OpenAPI v3: `/openapi/v3` (the index of group-version documents) and one document per
//! served group version, with component schemas generated from k8s-openapi's `schemars`
//! implementations and tagged with `x-kubernetes-group-version-kind` as kubectl expects.
//!
//! Documents are built once per process and cached.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::response::Response;
use http::HeaderMap;
use k8s_openapi::api::autoscaling;
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::resources::{self, ResourceInfo, Sub};

/// Registers `T` in the generator and returns its component name.
fn add<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The served group versions as OpenAPI paths (`api/v1`, `apis/apps/v1`).
fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in resources::all().map(|k| k.info()) {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    out
}

fn path_of(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// One group version's OpenAPI v3 document.
fn document(group: &str, version: &str) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut tagged = Vec::new();
    let mut paths = serde_json::Map::new();
    for k in resources::all().filter(|k| k.info().group == group && k.info().version == version) {
        let r = k.info();
        let name = k.schema(&mut gen);
        paths.insert(item_path(r), item_operations(r, &name));
        tagged.push((
            name,
            json!([{"group": r.group, "version": r.version, "kind": r.kind}]),
        ));
        if r.has_subresource(Sub::Scale)
            && !tagged
                .iter()
                .any(|(n, _)| n.ends_with("autoscaling.v1.Scale"))
        {
            let name = add::<autoscaling::v1::Scale>(&mut gen);
            tagged.push((
                name,
                json!([{"group": "autoscaling", "version": "v1", "kind": "Scale"}]),
            ));
        }
    }
    for (name, gvk) in [
        (
            add::<k8s_openapi::apimachinery::pkg::apis::meta::v1::Status>(&mut gen),
            json!([{"group": "", "version": "v1", "kind": "Status"}]),
        ),
        (
            add::<k8s_openapi::apimachinery::pkg::apis::meta::v1::DeleteOptions>(&mut gen),
            json!([{"group": "", "version": "v1", "kind": "DeleteOptions"}]),
        ),
    ] {
        tagged.push((name, gvk));
    }
    let mut schemas = gen.take_definitions(true);
    for (name, gvk) in tagged {
        if let Some(Value::Object(s)) = schemas.get_mut(&name) {
            s.insert("x-kubernetes-group-version-kind".into(), gvk);
        }
    }
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::router::KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// `/apis/<g>/<v>/[namespaces/{namespace}/]<plural>/{name}`.
fn item_path(r: &ResourceInfo) -> String {
    let ns = if r.namespaced {
        "namespaces/{namespace}/"
    } else {
        ""
    };
    format!("/{}/{ns}{}/{{name}}", path_of(r.group, r.version), r.plural)
}

/// The operations on one object. kubectl looks here for a PATCH of the kind (tagged with a
/// single-object `x-kubernetes-group-version-kind`) accepting `fieldValidation`.
fn item_operations(r: &ResourceInfo, schema: &str) -> Value {
    let gvk = json!({"group": r.group, "version": r.version, "kind": r.kind});
    let query = |name: &str| json!({"name": name, "in": "query", "schema": {"type": "string", "uniqueItems": true}});
    let object = json!({"$ref": format!("#/components/schemas/{schema}")});
    let ok =
        json!({"200": {"description": "OK", "content": {"application/json": {"schema": object}}}});
    let mut params =
        vec![json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}})];
    if r.namespaced {
        params.push(json!({"name": "namespace", "in": "path", "required": true, "schema": {"type": "string"}}));
    }
    json!({
        "get": {"operationId": format!("read{}", r.kind), "x-kubernetes-action": "get", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "put": {"operationId": format!("replace{}", r.kind), "x-kubernetes-action": "put", "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation")], "responses": ok},
        "patch": {"operationId": format!("patch{}", r.kind), "x-kubernetes-action": "patch", "x-kubernetes-group-version-kind": gvk,
            "parameters": [query("dryRun"), query("fieldManager"), query("fieldValidation"), query("force")], "responses": ok},
        "delete": {"operationId": format!("delete{}", r.kind), "x-kubernetes-action": "delete", "x-kubernetes-group-version-kind": gvk, "responses": ok},
        "parameters": params,
    })
}

struct Cached {
    bytes: Vec<u8>,
    hash: String,
}

fn documents() -> &'static BTreeMap<String, Cached> {
    static DOCS: OnceLock<BTreeMap<String, Cached>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| {
                let bytes = serde_json::to_vec(&document(g, v)).unwrap_or_default();
                let mut h = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut h);
                (
                    path_of(g, v),
                    Cached {
                        bytes,
                        hash: format!("{:016X}", h.finish()),
                    },
                )
            })
            .collect()
    })
}

pub fn serve(segs: &[String], _headers: &HeaderMap) -> Result<Response, ApiError> {
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    match segs.first().map(String::as_str) {
        Some("v3") => {}
        _ => return Err(not_found()),
    }
    if segs.len() == 1 {
        let paths: serde_json::Map<String, Value> = documents()
            .iter()
            .map(|(p, c)| {
                (
                    p.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{p}?hash={}", c.hash)}),
                )
            })
            .collect();
        return Ok(crate::http::json(200, &json!({"paths": paths})));
    }
    let doc = documents()
        .get(&segs[1..].join("/"))
        .ok_or_else(not_found)?;
    let mut r = Response::new(axum::body::Body::from(doc.bytes.clone()));
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    if let Ok(etag) = http::HeaderValue::from_str(&format!("\"{}\"", doc.hash)) {
        r.headers_mut().insert(http::header::ETAG, etag);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apps_document_tags_deployment_and_resolves_refs() {
        let doc = document("apps", "v1");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        let text = serde_json::to_string(&doc).unwrap();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = r.split('"').next().unwrap();
            let name = target
                .strip_prefix("#/components/schemas/")
                .expect("refs point into components");
            assert!(schemas.contains_key(name), "dangling ref {name}");
        }
    }

    #[test]
    fn index_points_at_every_group_version() {
        let docs = documents();
        assert!(docs.contains_key("api/v1"));
        assert!(docs.contains_key("apis/autoscaling/v1"));
    }
}
