//! PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386) and Kubernetes strategic
//! merge patch, applied to the current object. Pure functions over JSON values: this module
//! does not read or write the store, validate, default or touch `metadata.managedFields`.

pub mod meta;
mod strategic;

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::validation::schema::Node;

pub const JSON_PATCH: &str = "application/json-patch+json";
pub const MERGE_PATCH: &str = "application/merge-patch+json";
pub const STRATEGIC_MERGE_PATCH: &str = "application/strategic-merge-patch+json";

/// Applies a PATCH `body` of `content_type` to `current` and returns the patched object.
///
/// Unknown content types give 415 `UnsupportedMediaType`; bodies that do not parse give 400;
/// a JSON patch whose operations cannot be applied (missing path, failed `test`) and a patch
/// that leaves something other than an object give 422.
pub fn apply_patch(
    info: &ResourceInfo,
    content_type: &str,
    current: &Value,
    body: &[u8],
) -> Result<Value, ApiError> {
    let media = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let result = match media.as_str() {
        JSON_PATCH => {
            let ops: json_patch::Patch = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
            let mut doc = current.clone();
            json_patch::patch(&mut doc, &ops).map_err(|e| unprocessable(e.to_string()))?;
            doc
        }
        MERGE_PATCH => {
            let patch = parse_json(body)?;
            let mut doc = current.clone();
            json_patch::merge(&mut doc, &patch);
            doc
        }
        STRATEGIC_MERGE_PATCH => {
            let patch = parse_json(body)?;
            if !patch.is_object() {
                return Err(ApiError::bad_request("strategic merge patch must be a JSON object"));
            }
            strategic::merge(current, &patch, Node::root(info))?
        }
        _ => {
            return Err(ApiError::new(
                415,
                "UnsupportedMediaType",
                format!("the body of the request was in an unknown format - accepted media types include: {JSON_PATCH}, {MERGE_PATCH}, {STRATEGIC_MERGE_PATCH}, application/apply-patch+yaml"),
            ))
        }
    };
    if !result.is_object() {
        return Err(unprocessable(
            "the patched object is not a JSON object".into(),
        ));
    }
    Ok(result)
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
}

/// 422 with a message only, as Kubernetes answers patches it cannot apply.
fn unprocessable(message: String) -> ApiError {
    ApiError::new(422, "Invalid", message)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_kind;
    use serde_json::json;

    fn deployment() -> Value {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app": "web"}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "nginx", "image": "nginx:1.25"}]}
                }
            }
        })
    }

    fn deploy_info() -> &'static ResourceInfo {
        find_kind("apps/v1", "Deployment").unwrap().info()
    }

    #[test]
    fn kubectl_scale_merge_patch_sets_replicas() {
        let out = apply_patch(
            deploy_info(),
            MERGE_PATCH,
            &deployment(),
            br#"{"spec":{"replicas":3}}"#,
        )
        .unwrap();
        assert_eq!(out["spec"]["replicas"], 3);
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.25"
        );
    }

    #[test]
    fn merge_patch_null_deletes_and_lists_replace() {
        let body = br#"{"metadata":{"labels":{"app":null,"tier":"fe"}},"spec":{"template":{"spec":{"containers":[{"name":"x","image":"busybox"}]}}}}"#;
        let out = apply_patch(
            deploy_info(),
            "application/merge-patch+json; charset=utf-8",
            &deployment(),
            body,
        )
        .unwrap();
        assert_eq!(out["metadata"]["labels"], json!({"tier": "fe"}));
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"],
            json!([{"name": "x", "image": "busybox"}])
        );
    }

    #[test]
    fn kubectl_rollout_undo_json_patch_replaces_template() {
        let body = br#"[{"op":"replace","path":"/spec/template","value":{"metadata":{"labels":{"app":"web"}},"spec":{"containers":[{"name":"nginx","image":"nginx:1.24"}]}}},{"op":"replace","path":"/metadata/annotations","value":{"deployment.kubernetes.io/revision":"1"}}]"#;
        let mut cur = deployment();
        cur["metadata"]["annotations"] = json!({"deployment.kubernetes.io/revision": "2"});
        let out = apply_patch(deploy_info(), JSON_PATCH, &cur, body).unwrap();
        assert_eq!(
            out["spec"]["template"]["spec"]["containers"][0]["image"],
            "nginx:1.24"
        );
        assert_eq!(
            out["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
            "1"
        );
    }

    #[test]
    fn json_patch_failures_are_422_and_garbage_is_400() {
        let err = apply_patch(
            deploy_info(),
            JSON_PATCH,
            &deployment(),
            br#"[{"op":"remove","path":"/spec/nope"}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        let err = apply_patch(
            deploy_info(),
            JSON_PATCH,
            &deployment(),
            br#"[{"op":"test","path":"/spec/replicas","value":5}]"#,
        )
        .unwrap_err();
        assert_eq!(err.code, 422);
        for ct in [JSON_PATCH, MERGE_PATCH, STRATEGIC_MERGE_PATCH] {
            let err = apply_patch(deploy_info(), ct, &deployment(), b"{not json").unwrap_err();
            assert_eq!((err.code, err.reason.as_str()), (400, "BadRequest"), "{ct}");
        }
        let err =
            apply_patch(deploy_info(), STRATEGIC_MERGE_PATCH, &deployment(), b"[1]").unwrap_err();
        assert_eq!(err.code, 400);
        let err = apply_patch(deploy_info(), MERGE_PATCH, &deployment(), b"5").unwrap_err();
        assert_eq!(err.code, 422);
    }

    #[test]
    fn unknown_content_type_is_415() {
        let err = apply_patch(deploy_info(), "text/plain", &deployment(), b"{}").unwrap_err();
        assert_eq!(
            (err.code, err.reason.as_str()),
            (415, "UnsupportedMediaType")
        );
        assert_eq!(err.to_status()["code"], 415);
    }
}
