//! `POST /apis/authentication.k8s.io/v1/selfsubjectreviews` (`kubectl auth whoami`): the
//! caller's own user as the server authenticated it. Nothing is stored.

use axum::response::Response;
use serde_json::json;

use crate::auth::UserInfo;

/// The SelfSubjectReview of `user`, in group version `version` (v1 or v1beta1).
pub fn answer(user: &UserInfo, version: &str) -> Response {
    let mut info = json!({"username": user.name, "groups": user.groups});
    if !user.uid.is_empty() {
        info["uid"] = json!(user.uid);
    }
    crate::http::json(
        201,
        &json!({
            "kind": "SelfSubjectReview",
            "apiVersion": format!("authentication.k8s.io/{version}"),
            "metadata": {"creationTimestamp": crate::object::now()},
            "status": {"userInfo": info},
        }),
    )
}
