//! The `authorization.k8s.io/v1` reviews: `SelfSubjectAccessReview` (`kubectl auth can-i`),
//! `SelfSubjectRulesReview` (`kubectl auth can-i --list`), `SubjectAccessReview` and the
//! namespaced `LocalSubjectAccessReview` (may another user do something). Nothing is
//! stored: each POST is answered with the request and its `status` (201), as upstream.
//! Whether the caller may ask is decided before, like any create.

use axum::response::Response;
use serde_json::{json, Value};

use super::{grant, is_master, rules_for, Request};
use crate::auth::{Attributes, UserInfo};
use crate::error::{ApiError, Cause};
use crate::reviews::Review;
use crate::router::ApiState;

const GROUP: &str = "authorization.k8s.io";

fn invalid(review: Review, field: &str, reason: &str, message: String) -> ApiError {
    ApiError::invalid(
        GROUP,
        review.info().kind,
        "",
        vec![Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        }],
    )
}

/// Answers `review` asked by `user` (in namespace `ns` for the local one) with `body`.
pub async fn answer(
    state: &ApiState,
    user: &UserInfo,
    review: Review,
    ns: Option<&str>,
    mut body: Value,
) -> Result<Response, ApiError> {
    crate::reviews::echo(review, &mut body)?;
    let spec = body.get("spec").cloned().unwrap_or_else(|| json!({}));
    body["status"] = match review {
        Review::SelfSubjectRules => rules_status(state, user, spec["namespace"].as_str()).await?,
        Review::SelfSubjectAccess => access_status(state, user, review, &spec).await?,
        Review::SubjectAccess | Review::LocalSubjectAccess => {
            let subject = subject(review, &spec)?;
            if review == Review::LocalSubjectAccess {
                local_namespace(&mut body, ns.unwrap_or_default())?;
            }
            access_status(state, &subject, review, &body["spec"].clone()).await?
        }
        Review::SelfSubject | Review::Token => {
            return Err(ApiError::bad_request(format!(
                "{} is not an access review",
                review.info().kind
            )))
        }
    };
    Ok(crate::http::json(201, &body))
}

/// The user a (Local)SubjectAccessReview asks about.
fn subject(review: Review, spec: &Value) -> Result<UserInfo, ApiError> {
    let name = spec["user"].as_str().unwrap_or_default().to_string();
    let groups: Vec<String> = spec["groups"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    if name.is_empty() && groups.is_empty() {
        return Err(invalid(
            review,
            "spec.user",
            "FieldValueInvalid",
            "Invalid value: \"\": at least one of user or group must be specified".into(),
        ));
    }
    Ok(UserInfo {
        name,
        uid: spec["uid"].as_str().unwrap_or_default().to_string(),
        groups,
    })
}

/// A LocalSubjectAccessReview asks about its own namespace only.
fn local_namespace(body: &mut Value, ns: &str) -> Result<(), ApiError> {
    let review = Review::LocalSubjectAccess;
    if body["spec"]
        .get("nonResourceAttributes")
        .is_some_and(|v| !v.is_null())
    {
        return Err(invalid(
            review,
            "spec.nonResourceAttributes",
            "FieldValueInvalid",
            "Invalid value: \"\": disallowed on this kind of request".into(),
        ));
    }
    let meta_ns = crate::object::namespace(body).to_string();
    if !meta_ns.is_empty() && meta_ns != ns {
        return Err(ApiError::bad_request(format!(
            "namespace of provided object ({meta_ns}) does not match the namespace sent on the request ({ns})"
        )));
    }
    body["metadata"]["namespace"] = json!(ns);
    let attrs = &mut body["spec"]["resourceAttributes"];
    if attrs.is_object() {
        let want = attrs["namespace"].as_str().unwrap_or_default();
        if want.is_empty() {
            attrs["namespace"] = json!(ns);
        } else if want != ns {
            return Err(ApiError::bad_request(format!(
                "spec.resourceAttributes.namespace must match namespace: {ns}"
            )));
        }
    }
    Ok(())
}

/// `status` of an access review of `spec` for `user`.
async fn access_status(
    state: &ApiState,
    user: &UserInfo,
    review: Review,
    spec: &Value,
) -> Result<Value, ApiError> {
    let present = |f: &str| spec.get(f).is_some_and(|v| v.is_object());
    let (res, non_res) = (
        present("resourceAttributes"),
        present("nonResourceAttributes"),
    );
    if res == non_res {
        let field = if res {
            "spec.nonResourceAttributes"
        } else {
            "spec.resourceAttributes"
        };
        let value = if res { "{...}" } else { "null" };
        return Err(invalid(
            review,
            field,
            "FieldValueInvalid",
            format!("Invalid value: \"{value}\": exactly one of nonResourceAttributes or resourceAttributes must be specified"),
        ));
    }
    let s = |v: &Value, f: &str| v[f].as_str().unwrap_or_default().to_string();
    let (allowed, reason) = if res {
        let ra = &spec["resourceAttributes"];
        let (verb, group, resource, sub, ns, name) = (
            s(ra, "verb"),
            s(ra, "group"),
            s(ra, "resource"),
            s(ra, "subresource"),
            s(ra, "namespace"),
            s(ra, "name"),
        );
        fn some(x: &str) -> Option<&str> {
            (!x.is_empty()).then_some(x)
        }
        let a = Attributes {
            verb: &verb,
            group: &group,
            resource: &resource,
            subresource: some(&sub),
            namespace: some(&ns),
            name: some(&name),
        };
        decide(state, user, Request::Resource(&a)).await?
    } else {
        let na = &spec["nonResourceAttributes"];
        let (verb, path) = (s(na, "verb"), s(na, "path"));
        decide(
            state,
            user,
            Request::NonResource {
                verb: &verb,
                path: &path,
            },
        )
        .await?
    };
    let mut status = json!({"allowed": allowed});
    if !reason.is_empty() {
        status["reason"] = json!(reason);
    }
    Ok(status)
}

/// The whole chain's answer for `user` and why (masters, then RBAC, then the Node
/// authorizer for nodes and join-token callers).
async fn decide(
    state: &ApiState,
    user: &UserInfo,
    req: Request<'_>,
) -> Result<(bool, String), ApiError> {
    if is_master(user) {
        return Ok((true, String::new()));
    }
    if let Some(g) = grant(state, user, req).await? {
        return Ok((true, g.reason()));
    }
    if let Request::Resource(a) = req {
        if crate::nodeauth::is_restricted(user) {
            return match crate::nodeauth::authorize(state, user, a, &[]).await {
                Ok(()) => Ok((true, String::new())),
                Err(e) if e.code == 403 => Ok((false, String::new())),
                Err(e) => Err(e),
            };
        }
    }
    Ok((false, String::new()))
}

/// `status` of a rules review: every rule `user` holds in `ns`, split into resource and
/// non-resource rules as upstream lists them.
async fn rules_status(
    state: &ApiState,
    user: &UserInfo,
    ns: Option<&str>,
) -> Result<Value, ApiError> {
    let ns = ns.filter(|n| !n.is_empty());
    let rules = rules_for(state, user, ns).await?;
    let mut resource = Vec::new();
    let mut non_resource = Vec::new();
    for r in rules {
        let has = |f: &str| r[f].as_array().is_some_and(|a| !a.is_empty());
        if has("nonResourceURLs") {
            non_resource
                .push(json!({"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}));
        }
        if has("resources") {
            let mut rule = json!({"verbs": r["verbs"], "apiGroups": r["apiGroups"],
                "resources": r["resources"]});
            if has("resourceNames") {
                rule["resourceNames"] = r["resourceNames"].clone();
            }
            resource.push(rule);
        }
    }
    let mut status = json!({"resourceRules": resource, "nonResourceRules": non_resource,
        "incomplete": false});
    if crate::nodeauth::is_restricted(user) {
        // What the Node authorizer allows is decided per object, not listed as rules.
        status["incomplete"] = json!(true);
        status["evaluationError"] = json!("node authorizer does not support user rule resolution");
    }
    Ok(status)
}
