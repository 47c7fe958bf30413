//! The `authentication.k8s.io/v1` reviews. `SelfSubjectReview` (`kubectl auth whoami`): the
//! caller's own user as the server authenticated it. `TokenReview`: who a bearer token is,
//! asked by a webhook or proxy that was handed one, answered by the server's bearer-token
//! authenticators (the token file, the node join token, service-account JWTs) for the
//! audiences asked. Nothing is stored.

use axum::response::Response;
use serde_json::{json, Value};

use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::reviews::Review;
use crate::router::ApiState;

fn user_info(user: &UserInfo) -> Value {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    info
}

/// The SelfSubjectReview of `user` (`body` is the request).
pub fn whoami(user: &UserInfo, mut body: Value) -> Result<Response, ApiError> {
    crate::reviews::echo(Review::SelfSubject, &mut body)?;
    body["metadata"]["creationTimestamp"] = json!(crate::object::now());
    body["status"] = json!({"userInfo": user_info(user)});
    Ok(crate::http::json(201, &body))
}

/// The TokenReview `body` answered: `status.authenticated`, the user and the audiences the
/// token is valid for among `spec.audiences` (the API's own when none are asked), or the
/// error that made a service-account token fail. Upstream's `tokenreview.REST`.
pub async fn token(state: &ApiState, mut body: Value) -> Result<Response, ApiError> {
    crate::reviews::echo(Review::Token, &mut body)?;
    let token = body["spec"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if token.is_empty() {
        return Err(ApiError::bad_request(
            "token is required for TokenReview in authentication",
        ));
    }
    let api = state.sa_signer.audiences();
    let asked: Vec<String> = body["spec"]["audiences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect();
    let asked = if asked.is_empty() {
        api.to_vec()
    } else {
        asked
    };
    let outcome = match state.tokens.authenticate(&token) {
        // Token-file and join tokens know no audience: they are the API's own (upstream's
        // `WrapAudienceAgnosticToken`).
        Some(user) => {
            let valid: Vec<String> = api.iter().filter(|a| asked.contains(a)).cloned().collect();
            Ok((!valid.is_empty()).then_some((user, valid)))
        }
        None => super::authn::review(state, &token, &asked).await,
    };
    body["status"] = match outcome {
        Ok(Some((mut user, audiences))) => {
            if !user.groups.iter().any(|g| g == crate::auth::AUTHENTICATED) {
                user.groups.push(crate::auth::AUTHENTICATED.to_string());
            }
            json!({"authenticated": true, "user": user_info(&user), "audiences": audiences})
        }
        Ok(None) => json!({"user": {}}),
        Err(why) => json!({"user": {}, "error": why}),
    };
    Ok(crate::http::json(201, &body))
}
