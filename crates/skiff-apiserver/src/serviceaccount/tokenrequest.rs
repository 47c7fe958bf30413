//! `POST /api/v1/namespaces/NS/serviceaccounts/NAME/token`: an `authentication.k8s.io/v1
//! TokenRequest` answered with a signed, bound token (kube-apiserver's `TokenREST`).
//! Audiences default to the API's, `expirationSeconds` to 3600 (at least 600, at most 2^32,
//! cut to the server's maximum when one is set); a `boundObjectRef` names a Pod (which must
//! use this service account), Secret or Node of the namespace, whose uid goes into the token
//! so that it dies with the object.

use axum::response::Response;
use k8s_openapi::api::authentication::v1::TokenRequest;
use serde_json::{json, Value};

use super::signer::{self, Claims, KubernetesClaim, ObjectRef};
use crate::error::{ApiError, Cause};
use crate::handlers::Ctx;
use crate::object;
use crate::router::ApiState;

/// kube-apiserver's default `expirationSeconds`.
pub const DEFAULT_EXPIRATION: i64 = 3600;
/// The shortest token asked for (10 minutes).
pub const MIN_EXPIRATION: i64 = 600;
/// The longest (2^32 s), whatever the server allows.
const MAX_EXPIRATION: i64 = 1 << 32;

/// POST of a TokenRequest for the service account named on the path.
pub async fn create(ctx: Ctx<'_>, body: &[u8]) -> Result<Response, ApiError> {
    let mut req = crate::http::decode_object(ctx.headers, body)?;
    // Typed decoding follows in `validate`, after defaulting.
    crate::handlers::check_subresource_body::<serde::de::IgnoredAny>(
        &req,
        &["authentication.k8s.io/v1"],
        "TokenRequest",
    )?;
    let ns = ctx.ns().unwrap_or_default().to_string();
    let name = ctx.name().to_string();
    let dry_run = ctx.params.dry_run()?;
    let mut spec = validate(&mut req, &name, ctx.state.sa_max_expiration)?;
    if spec.audiences.is_empty() {
        spec.audiences = ctx.state.sa_signer.audiences().to_vec();
    }
    let sa = get(ctx.state, "serviceaccounts", Some(&ns), &name)
        .await?
        .ok_or_else(|| ApiError::not_found("", "serviceaccounts", &name))?;
    let mut kubernetes = KubernetesClaim {
        namespace: ns.clone(),
        serviceaccount: object_ref(&sa),
        ..Default::default()
    };
    if let Some(bound) = &spec.bound_object_ref {
        bind(ctx.state, &ns, &name, bound, &mut kubernetes).await?;
    }
    let now = chrono::Utc::now();
    let exp = now.timestamp() + spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
    let claims = Claims {
        iss: String::new(),
        sub: signer::username(&ns, &name),
        aud: spec.audiences.clone(),
        exp,
        iat: now.timestamp(),
        nbf: now.timestamp(),
        jti: object::new_uid(),
        kubernetes,
    };
    let token = if dry_run {
        String::new()
    } else {
        ctx.state.sa_signer.sign_bound(claims).map_err(|e| {
            tracing::error!(error = ?e, "cannot sign a service-account token");
            ApiError::internal("cannot sign the token")
        })?
    };
    let expires = chrono::DateTime::from_timestamp(exp, 0)
        .unwrap_or(now)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let out = json!({
        "kind": "TokenRequest",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"name": name, "namespace": ns, "creationTimestamp": object::now()},
        "spec": serde_json::to_value(&spec).unwrap_or_default(),
        "status": {"token": token, "expirationTimestamp": expires},
    });
    Ok(crate::http::json(201, &out))
}

/// The service account or bound object of `ns` (or the cluster for nodes).
async fn get(
    state: &ApiState,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>, ApiError> {
    crate::lookup::get(state, crate::lookup::core(plural), ns, name).await
}

fn object_ref(obj: &Value) -> ObjectRef {
    ObjectRef {
        name: object::name(obj).to_string(),
        uid: object::meta_str(obj, "uid").to_string(),
    }
}

/// The request's spec, defaulted and checked (Kubernetes' `ValidateTokenRequest`), its
/// expiry cut to `max` when the server sets one.
fn validate(
    req: &mut Value,
    name: &str,
    max: Option<i64>,
) -> Result<k8s_openapi::api::authentication::v1::TokenRequestSpec, ApiError> {
    // The client's status (kubectl sends an empty one) is the server's to fill.
    if let Some(m) = req.as_object_mut() {
        m.remove("status");
    }
    let spec = crate::defaults::ensure(req, "spec");
    crate::defaults::set(spec, "expirationSeconds", json!(DEFAULT_EXPIRATION));
    let typed: TokenRequest = serde_json::from_value(req.clone())
        .map_err(|e| ApiError::bad_request(format!("error decoding TokenRequest: {e}")))?;
    let mut spec = typed.spec;
    let secs = spec.expiration_seconds.unwrap_or(DEFAULT_EXPIRATION);
    let invalid = |message: String| {
        ApiError::invalid(
            "authentication.k8s.io",
            "TokenRequest",
            name,
            vec![Cause {
                reason: "FieldValueInvalid".into(),
                message,
                field: "spec.expirationSeconds".into(),
            }],
        )
    };
    if secs < MIN_EXPIRATION {
        return Err(invalid(format!(
            "Invalid value: {secs}: may not specify a duration less than 10 minutes"
        )));
    }
    if secs > MAX_EXPIRATION {
        return Err(invalid(format!(
            "Invalid value: {secs}: may not specify a duration larger than 2^32 seconds"
        )));
    }
    spec.expiration_seconds = Some(max.map_or(secs, |m| secs.min(m)));
    Ok(spec)
}

/// Puts the bound object into the claims, or refuses as kube-apiserver does.
async fn bind(
    state: &ApiState,
    ns: &str,
    sa: &str,
    bound: &k8s_openapi::api::authentication::v1::BoundObjectReference,
    claims: &mut KubernetesClaim,
) -> Result<(), ApiError> {
    let kind = bound.kind.as_deref().unwrap_or_default();
    let av = bound.api_version.as_deref().unwrap_or("v1");
    let name = bound.name.as_deref().unwrap_or_default();
    let plural = match (av, kind) {
        ("v1", "Pod") => "pods",
        ("v1", "Secret") => "secrets",
        ("v1", "Node") => "nodes",
        _ => {
            return Err(ApiError::bad_request(format!(
                "cannot bind token to object of type {av}, Kind={kind}"
            )))
        }
    };
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "boundObjectRef.name: Required value: the bound object needs a name",
        ));
    }
    let scope = (plural != "nodes").then_some(ns);
    let obj = get(state, plural, scope, name)
        .await?
        .ok_or_else(|| ApiError::not_found("", plural, name))?;
    let found = object_ref(&obj);
    if let Some(uid) = bound.uid.as_deref().filter(|u| !u.is_empty()) {
        if uid != found.uid {
            return Err(ApiError::bad_request(format!(
                "the UID in the bound object reference ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                found.uid
            )));
        }
    }
    match plural {
        "pods" => {
            let pod_sa = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            if pod_sa != sa {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token for serviceaccount {sa:?} to pod {name:?}: pod uses serviceaccount {pod_sa:?}"
                )));
            }
            if object::is_deleting(&obj) {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to pod {name:?}: it is being deleted"
                )));
            }
            // As kube-apiserver 1.30+: the pod's node goes into the token too.
            let node = obj.pointer("/spec/nodeName").and_then(Value::as_str);
            if let Some(node) = node.filter(|n| !n.is_empty()) {
                if let Some(n) = get(state, "nodes", None, node).await? {
                    claims.node = Some(object_ref(&n));
                }
            }
            claims.pod = Some(found);
        }
        "secrets" => claims.secret = Some(found),
        _ => claims.node = Some(found),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satoken_request_defaults_and_limits_expiration() {
        let mut req = json!({"spec": {}});
        let spec = validate(&mut req, "sa", None).unwrap();
        assert_eq!(spec.expiration_seconds, Some(3600));
        let mut req = json!({"spec": {"expirationSeconds": 599}});
        let e = validate(&mut req, "sa", None).unwrap_err();
        assert_eq!(e.code, 422);
        assert!(e.message.contains("less than 10 minutes"), "{}", e.message);
        let mut req = json!({"spec": {"expirationSeconds": 1i64 << 33}});
        assert_eq!(validate(&mut req, "sa", None).unwrap_err().code, 422);
        let mut req = json!({"spec": {"expirationSeconds": 86400}});
        let spec = validate(&mut req, "sa", Some(7200)).unwrap();
        assert_eq!(spec.expiration_seconds, Some(7200));
        let mut req = json!({"spec": {}, "status": {"token": ""}});
        assert!(
            validate(&mut req, "sa", None).is_ok(),
            "a client's status is dropped"
        );
        let mut req = json!({"spec": {"expirationSeconds": "soon"}});
        assert_eq!(validate(&mut req, "sa", None).unwrap_err().code, 400);
    }
}
