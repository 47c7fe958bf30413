//! The OpenAPI documents: v2 (one Swagger 2.0 document for the whole API) and v3 (one per
//! group version), written from the served kinds' operations ([`super::operations`]) and the
//! schemas of their k8s-openapi types (`schemars`), each kind's schema (and its list and
//! subresource types) tagged with `x-kubernetes-group-version-kind` as kubectl expects.

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::operations::{self, query_param, Body, Operation, PathItem, Reply};
use crate::registry::Kind;
use crate::resources;
use crate::reviews::Review;

/// Which OpenAPI a document is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V2,
    V3,
}

impl Version {
    fn settings(self) -> SchemaSettings {
        match self {
            Version::V2 => SchemaSettings::draft07(),
            Version::V3 => SchemaSettings::openapi3(),
        }
    }

    fn reference(self, name: &str) -> Value {
        match self {
            Version::V2 => json!({"$ref": format!("#/definitions/{name}")}),
            Version::V3 => json!({"$ref": format!("#/components/schemas/{name}")}),
        }
    }
}

fn add<T: JsonSchema>(gen: &mut SchemaGenerator) -> String {
    gen.subschema_for::<T>();
    T::schema_name().into_owned()
}

/// The schemas an operation refers to.
struct Names {
    object: String,
    list: String,
    scale: String,
    binding: String,
    token_request: String,
    eviction: String,
    status: String,
    delete_options: String,
    patch: String,
    watch_event: String,
}

/// Collects schemas and tags them.
struct Schemas {
    gen: SchemaGenerator,
    version: Version,
    lists: Vec<(String, Value)>,
    tags: Vec<(String, Value)>,
}

impl Schemas {
    fn new(version: Version) -> Self {
        Schemas {
            gen: version.settings().into_generator(),
            version,
            lists: Vec::new(),
            tags: Vec::new(),
        }
    }

    fn tag(&mut self, name: &str, group: &str, version: &str, kind: &str) {
        if !self.tags.iter().any(|(n, _)| n == name) {
            self.tags.push((
                name.to_string(),
                json!([{"group": group, "version": version, "kind": kind}]),
            ));
        }
    }

    /// Registers `review`'s schema (k8s-openapi's type) and the shared types.
    fn review(&mut self, review: Review) -> Names {
        use k8s_openapi::api::{authentication::v1 as authn, authorization::v1 as authz};
        let gen = &mut self.gen;
        let object = match review {
            Review::SelfSubject => add::<authn::SelfSubjectReview>(gen),
            Review::Token => add::<authn::TokenReview>(gen),
            Review::LocalSubjectAccess => add::<authz::LocalSubjectAccessReview>(gen),
            Review::SelfSubjectAccess => add::<authz::SelfSubjectAccessReview>(gen),
            Review::SelfSubjectRules => add::<authz::SelfSubjectRulesReview>(gen),
            Review::SubjectAccess => add::<authz::SubjectAccessReview>(gen),
        };
        let r = review.info();
        self.tag(&object, r.group, r.version, r.kind);
        // A review has no list: no operation answers with one.
        self.shared(object, String::new())
    }

    /// Registers `kind`'s schema, its list and the shared types; returns their names.
    fn kind(&mut self, kind: &dyn Kind) -> Names {
        let r = kind.info();
        let object = kind.schema(&mut self.gen);
        self.tag(&object, r.group, r.version, r.kind);
        let list = format!("{object}List");
        let list_meta = add::<meta::ListMeta>(&mut self.gen);
        if !self.lists.iter().any(|(n, _)| *n == list) {
            self.lists.push((
                list.clone(),
                json!({
                    "description": format!("{}List is a list of {}.", r.kind, r.kind),
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
                        "items": {"type": "array", "items": self.version.reference(&object), "description": format!("List of {}.", r.plural)},
                        "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
                        "metadata": self.version.reference(&list_meta),
                    },
                }),
            ));
            self.tag(&list, r.group, r.version, &format!("{}List", r.kind));
        }
        self.shared(object, list)
    }

    /// Registers the types every document's operations share; returns the names of all
    /// with `object` and `list`.
    fn shared(&mut self, object: String, list: String) -> Names {
        let scale = add::<k8s_openapi::api::autoscaling::v1::Scale>(&mut self.gen);
        self.tag(&scale, "autoscaling", "v1", "Scale");
        let binding = add::<k8s_openapi::api::core::v1::Binding>(&mut self.gen);
        self.tag(&binding, "", "v1", "Binding");
        let token_request =
            add::<k8s_openapi::api::authentication::v1::TokenRequest>(&mut self.gen);
        self.tag(
            &token_request,
            "authentication.k8s.io",
            "v1",
            "TokenRequest",
        );
        let eviction = add::<k8s_openapi::api::policy::v1::Eviction>(&mut self.gen);
        self.tag(&eviction, "policy", "v1", "Eviction");
        let status = add::<meta::Status>(&mut self.gen);
        self.tag(&status, "", "v1", "Status");
        let delete_options = add::<meta::DeleteOptions>(&mut self.gen);
        self.tag(&delete_options, "", "v1", "DeleteOptions");
        let patch = add::<meta::Patch>(&mut self.gen);
        let watch_event = add::<meta::WatchEvent<()>>(&mut self.gen);
        self.tag(&watch_event, "", "v1", "WatchEvent");
        Names {
            object,
            list,
            scale,
            binding,
            token_request,
            eviction,
            status,
            delete_options,
            patch,
            watch_event,
        }
    }

    /// All definitions, lists included, tagged.
    fn finish(self) -> Map<String, Value> {
        let Schemas {
            mut gen,
            lists,
            tags,
            version,
        } = self;
        let mut defs = gen.take_definitions(true);
        for (name, schema) in lists {
            defs.insert(name, schema);
        }
        for (name, gvk) in tags {
            if let Some(Value::Object(s)) = defs.get_mut(&name) {
                s.insert("x-kubernetes-group-version-kind".into(), gvk);
            }
        }
        patch_extensions(&mut defs);
        metadata_optional(&mut defs);
        if version == Version::V2 {
            for schema in defs.values_mut() {
                plain_refs(schema);
            }
        }
        defs
    }
}

/// Swagger 2.0 as Kubernetes writes it: a field of another type is `{"$ref": …,
/// "description": …}`, not schemars' `{"allOf": [{"$ref": …}], …}`, which kubectl's v2
/// reader takes for an untyped value (and so did not validate nested fields).
fn plain_refs(schema: &mut Value) {
    match schema {
        Value::Object(o) => {
            let single_ref = match o.get("allOf") {
                Some(Value::Array(all)) if all.len() == 1 => all[0]
                    .as_object()
                    .filter(|r| r.len() == 1)
                    .and_then(|r| r.get("$ref"))
                    .cloned(),
                _ => None,
            };
            if let Some(reference) = single_ref {
                o.remove("allOf");
                o.insert("$ref".into(), reference);
            }
            for v in o.values_mut() {
                plain_refs(v);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(plain_refs),
        _ => {}
    }
}

/// k8s-openapi makes every object's `metadata` a required field (its Rust type is not an
/// `Option`), where Kubernetes' documents leave it optional in every kind but core/v1
/// Event. kubectl validates the kinds it cannot send with `fieldValidation` (the reviews)
/// against the v2 document on its own and refused a SubjectAccessReview without metadata;
/// `kubectl explain` marked `metadata` required.
fn metadata_optional(defs: &mut Map<String, Value>) {
    for (name, schema) in defs.iter_mut() {
        if name == "io.k8s.api.core.v1.Event" {
            continue;
        }
        let Some(Value::Array(required)) = schema.get_mut("required") else {
            continue;
        };
        required.retain(|r| r != "metadata");
        if required.is_empty() {
            if let Value::Object(s) = schema {
                s.remove("required");
            }
        }
    }
}

/// The merge metadata of lists and atomic structs that strategic merge patch and
/// server-side apply use (the server's own, [`crate::patch::meta`]), as the
/// `x-kubernetes-*` extensions kubectl reads to compute `kubectl apply` patches.
fn patch_extensions(defs: &mut Map<String, Value>) {
    for (def, field, meta) in crate::patch::meta::lists() {
        let Some(Value::Object(prop)) = defs
            .get_mut(&def)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(field))
        else {
            continue;
        };
        if let Some(key) = meta.merge_key {
            prop.insert("x-kubernetes-patch-merge-key".into(), json!(key));
        }
        if meta.merge_key.is_some() || meta.set {
            prop.insert("x-kubernetes-patch-strategy".into(), json!("merge"));
        }
        if meta.set {
            prop.insert("x-kubernetes-list-type".into(), json!("set"));
        } else if !meta.map_keys.is_empty() {
            prop.insert("x-kubernetes-list-type".into(), json!("map"));
            prop.insert("x-kubernetes-list-map-keys".into(), json!(meta.map_keys));
        }
    }
    for def in crate::patch::meta::atomic_structs() {
        if let Some(Value::Object(d)) = defs.get_mut(*def) {
            d.insert("x-kubernetes-map-type".into(), json!("atomic"));
        }
    }
}

fn parameter(version: Version, name: &str, location: &str) -> Value {
    let (ty, description) = match (name, location) {
        ("name", "path") => ("string", "name of the object"),
        ("namespace", "path") => (
            "string",
            "object name and auth scope, such as for teams and projects",
        ),
        _ => query_param(name),
    };
    let mut p = json!({"name": name, "in": location, "description": description});
    if location == "path" {
        p["required"] = json!(true);
    } else {
        p["uniqueItems"] = json!(true);
    }
    match version {
        Version::V2 => p["type"] = json!(ty),
        Version::V3 => p["schema"] = json!({"type": ty, "uniqueItems": true}),
    }
    p
}

fn operation(version: Version, op: &Operation, names: &Names) -> Value {
    let object = match op.gvk.2 {
        "Scale" => &names.scale,
        "Binding" => &names.binding,
        "TokenRequest" => &names.token_request,
        "Eviction" => &names.eviction,
        _ => &names.object,
    };
    let reply = match op.reply {
        Reply::Object => object,
        Reply::List => &names.list,
        Reply::Status => &names.status,
        Reply::WatchEvent => &names.watch_event,
    };
    let reply_schema = version.reference(reply);
    let produces: &[&str] = match op.reply {
        Reply::WatchEvent => &[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
            "application/json;stream=watch",
            "application/vnd.kubernetes.protobuf;stream=watch",
        ],
        _ => &[
            "application/json",
            "application/yaml",
            "application/vnd.kubernetes.protobuf",
        ],
    };
    let mut responses = Map::new();
    for code in op.codes {
        let description = match code {
            201 => "Created",
            202 => "Accepted",
            _ => "OK",
        };
        let r = match version {
            Version::V2 => json!({"description": description, "schema": reply_schema}),
            Version::V3 => {
                let content: Map<String, Value> = produces
                    .iter()
                    .map(|m| (m.to_string(), json!({"schema": reply_schema})))
                    .collect();
                json!({"description": description, "content": content})
            }
        };
        responses.insert(code.to_string(), r);
    }
    responses.insert("401".into(), json!({"description": "Unauthorized"}));
    let mut params: Vec<Value> = op
        .query
        .iter()
        .map(|q| parameter(version, q, "query"))
        .collect();
    let body_schema = op.body.map(|b| match b {
        Body::Object => version.reference(object),
        Body::Patch => version.reference(&names.patch),
        Body::DeleteOptions => version.reference(&names.delete_options),
    });
    let (group, v, kind) = op.gvk;
    let mut o = json!({
        "description": op.description,
        "operationId": op.id,
        "responses": responses,
        "tags": [tag(group, v)],
        "x-kubernetes-action": op.action,
        "x-kubernetes-group-version-kind": {"group": group, "version": v, "kind": kind},
    });
    match (version, body_schema) {
        (Version::V2, Some(schema)) => {
            params.insert(
                0,
                json!({"name": "body", "in": "body", "required": op.body != Some(Body::DeleteOptions), "schema": schema}),
            );
        }
        (Version::V3, Some(schema)) => {
            let content: Map<String, Value> = op
                .consumes
                .iter()
                .map(|m| (m.to_string(), json!({"schema": schema})))
                .collect();
            o["requestBody"] =
                json!({"content": content, "required": op.body != Some(Body::DeleteOptions)});
        }
        _ => {}
    }
    if !params.is_empty() {
        o["parameters"] = json!(params);
    }
    if version == Version::V2 {
        o["produces"] = json!(produces);
        o["schemes"] = json!(["https"]);
        if !op.consumes.is_empty() {
            o["consumes"] = json!(op.consumes);
        }
    }
    o
}

/// The tag of a group version's operations: `core_v1`, `apps_v1`, `events_v1`.
fn tag(group: &str, version: &str) -> String {
    let g = if group.is_empty() {
        "core".to_string()
    } else {
        group.split('.').next().unwrap_or(group).to_string()
    };
    format!("{g}_{version}")
}

fn path_item(version: Version, item: &PathItem, names: &Names) -> Value {
    let mut p = Map::new();
    for op in &item.operations {
        p.insert(op.method.into(), operation(version, op, names));
    }
    let mut params: Vec<Value> = item
        .params
        .iter()
        .map(|n| parameter(version, n, "path"))
        .collect();
    params.push(parameter(version, "pretty", "query"));
    p.insert("parameters".into(), json!(params));
    Value::Object(p)
}

/// The paths and definitions of `kinds` and `reviews`.
fn write(
    version: Version,
    kinds: &[&'static dyn Kind],
    reviews: &[Review],
) -> (Map<String, Value>, Map<String, Value>) {
    let mut schemas = Schemas::new(version);
    let mut paths = Map::new();
    for kind in kinds {
        let names = schemas.kind(*kind);
        for item in operations::paths(*kind) {
            paths.insert(item.path.clone(), path_item(version, &item, &names));
        }
    }
    for &review in reviews {
        let names = schemas.review(review);
        for item in operations::review_paths(review) {
            paths.insert(item.path.clone(), path_item(version, &item, &names));
        }
    }
    (paths, schemas.finish())
}

/// The Swagger 2.0 document of the whole API (`/openapi/v2`).
pub fn v2() -> Value {
    let kinds: Vec<&'static dyn Kind> = resources::all().collect();
    let (paths, definitions) = write(Version::V2, &kinds, &Review::ALL);
    json!({
        "swagger": "2.0",
        "info": {"title": "Kubernetes", "version": crate::router::KUBE_VERSION},
        "paths": paths,
        "definitions": definitions,
    })
}

/// The OpenAPI 3 document of one group version (`/openapi/v3/apis/<group>/<version>`).
pub fn v3(group: &str, version: &str) -> Value {
    let kinds: Vec<&'static dyn Kind> = resources::all()
        .filter(|k| k.info().group == group && k.info().version == version)
        .collect();
    let reviews: Vec<Review> = Review::in_version(group, version).collect();
    let (paths, schemas) = write(Version::V3, &kinds, &reviews);
    json!({
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": crate::router::KUBE_VERSION},
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `doc` names a schema the document has.
    fn refs_resolve(doc: &Value, prefix: &str, schemas: &Map<String, Value>) {
        let text = serde_json::to_string(doc).unwrap();
        for r in text.split("\"$ref\":\"").skip(1) {
            let target = r.split('"').next().unwrap();
            let name = target
                .strip_prefix(prefix)
                .unwrap_or_else(|| panic!("ref {target} outside {prefix}"));
            assert!(schemas.contains_key(name), "dangling ref {name}");
        }
    }

    #[test]
    fn apps_document_tags_deployment_and_resolves_refs() {
        let doc = v3("apps", "v1");
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        let d = &schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d["x-kubernetes-group-version-kind"][0]["kind"],
            "Deployment"
        );
        assert_eq!(
            schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"][0]
                ["kind"],
            "DeploymentList"
        );
        refs_resolve(&doc, "#/components/schemas/", schemas);
        let create = &doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments"]["post"];
        assert_eq!(
            create["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.Deployment"
        );
        let codes: Vec<&String> = create["responses"].as_object().unwrap().keys().collect();
        assert_eq!(codes, ["200", "201", "202", "401"]);
        let containers = &schemas["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
        assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
        assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
        assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    }

    #[test]
    fn v2_has_every_kind_with_its_group_version_kind() {
        let doc = v2();
        let defs = doc["definitions"].as_object().unwrap();
        refs_resolve(&doc, "#/definitions/", defs);
        for kind in resources::all() {
            let i = kind.info();
            let tagged = defs.values().any(|d| {
                d["x-kubernetes-group-version-kind"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|g| {
                        g["kind"] == i.kind && g["group"] == i.group && g["version"] == i.version
                    })
            });
            assert!(tagged, "{kind:?} has no definition");
        }
        let review = &defs["io.k8s.api.authorization.v1.SubjectAccessReview"];
        assert_eq!(
            review["x-kubernetes-group-version-kind"][0]["group"],
            "authorization.k8s.io"
        );
        assert_eq!(
            defs["io.k8s.api.apps.v1.DeploymentSpec"]["properties"]["template"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.PodTemplateSpec"
        );
        assert!(!doc.to_string().contains("allOf"));
        // Required as in Kubernetes' own document: metadata only in core/v1 Event.
        assert_eq!(review["required"], json!(["spec"]));
        assert_eq!(defs["io.k8s.api.apps.v1.Deployment"].get("required"), None);
        assert_eq!(
            defs["io.k8s.api.core.v1.Event"]["required"],
            json!(["involvedObject", "metadata"])
        );
        let create = &doc["paths"]["/apis/authentication.k8s.io/v1/tokenreviews"]["post"];
        assert_eq!(
            create["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.authentication.v1.TokenReview"
        );
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/configmaps/{name}"]["patch"];
        assert_eq!(patch["parameters"][0]["in"], "body");
        assert!(patch["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "fieldValidation"));
    }
}
