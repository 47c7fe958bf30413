//! REST verbs over any served kind, one module per verb: they translate a parsed request
//! into reads and compare-on-revision writes through [`crate::storage`].
//!
//! Object semantics shared by the verbs (metadata rules, generation, finalizers) live in
//! [`update`]; wire formats live in [`crate::http`] and [`crate::table`].

#[cfg(test)]
mod admission_tests;
mod binding;
mod create;
mod delete;
mod eviction;
mod patch;
mod read;
mod scale;
mod update;

use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::http::{self as wire, Params, Want};
use crate::registry::{Backend, Kind};
use crate::resources::{ResourceInfo, Sub};
use crate::router::{ApiState, Target};

pub use create::{bootstrap, create_object};
pub use read::Filter;
pub use update::{write_update, UpdateKind};

/// One request's context.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub state: &'a ApiState,
    pub target: &'a Target,
    pub params: &'a Params,
    pub headers: &'a HeaderMap,
    pub user: &'a UserInfo,
}

impl Ctx<'_> {
    pub fn kind(&self) -> &'static dyn Kind {
        self.target.kind
    }

    pub fn info(&self) -> &'static ResourceInfo {
        self.target.kind.info()
    }

    pub fn ns(&self) -> Option<&str> {
        self.target.namespace.as_deref()
    }

    /// The object name of the request (only called for verbs that have one).
    pub fn name(&self) -> &str {
        self.target.name.as_deref().unwrap_or_default()
    }

    /// The stored object the request names, or NotFound.
    pub async fn current(&self) -> Result<Value, ApiError> {
        self.state
            .storage
            .must_get(self.info(), self.ns(), self.name())
            .await
    }
}

pub async fn dispatch(ctx: Ctx<'_>, verb: &str, body: Bytes) -> Result<Response, ApiError> {
    let sub = ctx.target.subresource;
    if let Some(s @ (Sub::Binding | Sub::Eviction)) = sub {
        return match verb {
            "create" if s == Sub::Binding => binding::create(ctx, &body).await,
            "create" => eviction::create(ctx, &body).await,
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{verb} is not supported on this path"),
            )),
        };
    }
    if sub == Some(Sub::Token) {
        return match verb {
            "create" => crate::serviceaccount::tokenrequest::create(ctx, &body).await,
            _ => Err(ApiError::new(
                405,
                "MethodNotAllowed",
                format!("{verb} is not supported on this path"),
            )),
        };
    }
    let named = ctx.target.name.is_some();
    let needs_name = matches!(verb, "get" | "update" | "patch" | "delete");
    if needs_name != named && verb != "watch" {
        return Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on this path"),
        ));
    }
    match ctx.kind().backend() {
        Backend::Store => {}
        Backend::Metrics => return crate::metrics::serve(ctx, verb).await,
        Backend::Components => return crate::components::serve(ctx, verb).await,
    }
    match (verb, sub) {
        ("get", Some(Sub::Scale)) => scale::get(ctx).await,
        ("update" | "patch", Some(Sub::Scale)) => scale::write(ctx, verb, &body).await,
        ("get", _) => read::get(ctx).await,
        ("list", None) => read::list(ctx).await,
        ("watch", None) => crate::watch::serve(ctx).await,
        ("create", None) => create::create(ctx, &body).await,
        ("update", _) => update::put(ctx, &body).await,
        ("patch", _) => patch::patch(ctx, &body).await,
        ("delete", None) => delete::delete(ctx, &body).await,
        ("deletecollection", None) => delete::delete_collection(ctx, &body).await,
        _ => Err(ApiError::new(
            405,
            "MethodNotAllowed",
            format!("{verb} is not supported on this path"),
        )),
    }
}

/// Replies with one object, as a Table or partial metadata when the client asked for one.
pub fn reply(ctx: Ctx<'_>, code: u16, obj: &Value) -> Result<Response, ApiError> {
    Ok(match wire::negotiate(ctx.headers) {
        Want::Table => wire::json(
            code,
            &crate::table::table(ctx.kind(), std::slice::from_ref(obj), "", ctx.params),
        ),
        Want::PartialMetadata => wire::json(code, &partial_metadata(obj)),
        Want::Object => wire::json(code, obj),
    })
}

/// `meta.k8s.io/v1 PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj.get("metadata").cloned().unwrap_or(json!({}))})
}

/// Fails unless namespace `ns` exists and accepts new objects (NamespaceLifecycle): a
/// namespace being deleted refuses new `info` objects such as `name`.
pub async fn require_namespace(
    state: &ApiState,
    info: &ResourceInfo,
    ns: &str,
    name: &str,
) -> Result<(), ApiError> {
    let deleting = match state.namespaces.lookup(ns) {
        Some(deleting) => deleting,
        None => {
            let info = crate::kinds::core::namespace::info();
            match state.storage.get(info, None, ns).await? {
                None => return Err(ApiError::not_found("", "namespaces", ns)),
                Some(n) => crate::object::is_deleting(&n),
            }
        }
    };
    match deleting {
        true => Err(crate::namespaces::terminating(info, ns, name)),
        false => Ok(()),
    }
}

/// Checks a body's apiVersion/kind against the endpoint and fills them in when missing,
/// converts a body of another version of the resource, and applies what decoding does for
/// the kind (a Secret's write-only `stringData` folds into `data`).
pub fn check_type(kind: &dyn Kind, obj: &mut Value) -> Result<(), ApiError> {
    let info = kind.info();
    let av = obj
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let body_kind = obj
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let same_resource = crate::resources::find_kind(&av, &body_kind)
        .is_some_and(|r| r.info().prefix() == info.prefix());
    if !av.is_empty() && !body_kind.is_empty() && !same_resource {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({av}) does not match the expected API version ({})",
            info.api_version()
        )));
    }
    if av.is_empty() || body_kind.is_empty() {
        obj["apiVersion"] = json!(info.api_version());
        obj["kind"] = json!(info.kind);
    }
    // Bodies of another served version of this resource are converted to the endpoint's.
    *obj = crate::convert::convert(std::mem::take(obj), kind);
    kind.decode_body(obj);
    Ok(())
}

/// The field manager of a non-apply write: `?fieldManager=`, else the client's User-Agent
/// program name (as Kubernetes derives it).
pub fn field_manager(ctx: Ctx<'_>) -> String {
    if let Some(m) = ctx
        .params
        .field_manager
        .as_deref()
        .filter(|m| !m.is_empty())
    {
        return m.to_string();
    }
    let ua = ctx
        .headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    ua.split('/').next().unwrap_or("unknown").to_string()
}

/// Records a non-apply write of the main resource in `managedFields`.
pub fn record_write(ctx: Ctx<'_>, old: Option<&Value>, new: &mut Value) {
    if ctx.target.subresource.is_none() {
        crate::ssa::record_update(ctx.info(), old, new, &field_manager(ctx));
    }
}

/// What Kubernetes does to every written object before validating it: the kind's decoding
/// (Secret `stringData` folded into `data`), then its defaults.
pub fn normalize(kind: &dyn Kind, obj: &mut Value) {
    kind.decode_body(obj);
    kind.defaults(obj);
}

/// Applies `fieldValidation`: Strict rejects unknown fields, Warn returns them as warnings.
pub fn field_validation(ctx: Ctx<'_>, obj: &Value) -> Result<Vec<String>, ApiError> {
    let unknown = crate::validation::unknown_fields(ctx.info(), obj);
    match ctx.params.field_validation.as_deref().unwrap_or("Warn") {
        "Ignore" => Ok(Vec::new()),
        // `unknown_fields` words each one as Kubernetes does: `unknown field "spec.foo"`.
        "Strict" if !unknown.is_empty() => Err(ApiError::bad_request(format!(
            "strict decoding error: {}",
            unknown.join(", ")
        ))),
        "Strict" | "Warn" => Ok(unknown),
        other => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, got \"{other}\""
        ))),
    }
}

/// [`field_validation`] of a POST or PUT body. Kubernetes words a Strict failure there as a
/// body it cannot decode (`Deployment in version "v1" cannot be handled as a Deployment:
/// strict decoding error: unknown field "spec.replica"`); a patch's is the bare error.
pub fn body_field_validation(ctx: Ctx<'_>, obj: &Value) -> Result<Vec<String>, ApiError> {
    field_validation(ctx, obj).map_err(|mut e| {
        if e.message.starts_with("strict decoding error") {
            let info = ctx.info();
            e.message = format!(
                "{} in version {:?} cannot be handled as a {}: {}",
                info.kind, info.version, info.kind, e.message
            );
        }
        e
    })
}

/// Refuses a POSTed subresource body (a Binding, an Eviction, a TokenRequest) that is not a
/// `kind` of one of `versions` — a body without apiVersion or kind is taken as one — or that
/// does not decode as `T` (all `versions` share `T`'s fields).
pub fn check_subresource_body<T: serde::de::DeserializeOwned>(
    body: &Value,
    versions: &[&str],
    kind: &str,
) -> Result<(), ApiError> {
    let av = body.get("apiVersion").and_then(Value::as_str);
    let body_kind = body.get("kind").and_then(Value::as_str);
    let version_ok = av.is_none_or(|av| versions.contains(&av));
    if !version_ok || body_kind.is_some_and(|k| k != kind) {
        let first = versions.first().copied().unwrap_or_default();
        let article = match first.starts_with(['a', 'e', 'i', 'o', 'u']) {
            true => "an",
            false => "a",
        };
        return Err(ApiError::bad_request(format!(
            "the body must be {article} {first} {kind}, got {} {}",
            av.unwrap_or_default(),
            body_kind.unwrap_or_default()
        )));
    }
    let mut typed = body.clone();
    if let Some(m) = typed.as_object_mut() {
        m.remove("apiVersion");
        m.remove("kind");
    }
    serde_json::from_value::<T>(typed)
        .map(drop)
        .map_err(|e| ApiError::bad_request(format!("error decoding {kind}: {e}")))
}

/// What a subresource POST that did what it was asked answers (`pods/binding`,
/// `pods/eviction`): a 201 `Success` Status.
pub fn created_status() -> Response {
    wire::json(
        201,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
    )
}

#[cfg(test)]
mod subresource_tests {
    use super::*;

    #[test]
    fn subresource_bodies_of_another_kind_are_refused_with_kubernetes_words() {
        let binding = |b: Value| {
            check_subresource_body::<k8s_openapi::api::core::v1::Binding>(&b, &["v1"], "Binding")
        };
        assert!(binding(json!({"target": {"name": "n"}})).is_ok());
        assert!(
            binding(json!({"apiVersion": "v1", "kind": "Binding", "target": {"name": "n"}}))
                .is_ok()
        );
        let e = binding(json!({"apiVersion": "v1", "kind": "Pod"})).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_str()),
            (400, "the body must be a v1 Binding, got v1 Pod")
        );
        let e = binding(json!({"target": "n"})).unwrap_err();
        assert!(
            e.message.starts_with("error decoding Binding: "),
            "{}",
            e.message
        );
        let token = json!({"apiVersion": "v1", "kind": "TokenRequest"});
        let e = check_subresource_body::<serde::de::IgnoredAny>(
            &token,
            &["authentication.k8s.io/v1"],
            "TokenRequest",
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "the body must be an authentication.k8s.io/v1 TokenRequest, got v1 TokenRequest"
        );
    }
}
