//! The one error type of the API server; it renders as a `meta.k8s.io/v1 Status`.

use serde::Serialize;

/// One field-level cause of a validation failure (`Status.details.causes[]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// e.g. `FieldValueRequired`, `FieldValueInvalid`, `FieldValueDuplicate`, `FieldValueNotSupported`.
    pub reason: String,
    pub message: String,
    /// Dotted field path, e.g. `spec.containers[0].image`.
    pub field: String,
}

/// What an error is about: `Status.details.{name,group,kind}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub name: String,
    pub group: String,
    /// The resource (plural) or kind named in the error.
    pub kind: String,
}

/// An error the API answers with. `reason` is the Kubernetes `StatusReason`
/// (`NotFound`, `AlreadyExists`, `Conflict`, `Invalid`, `BadRequest`, `Unauthorized`,
/// `Forbidden`, `Expired`, `RequestEntityTooLarge`, `MethodNotAllowed`, `InternalError`, …).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: String,
    pub message: String,
    /// `details.name`, `details.group`, `details.kind` when known (boxed: errors travel in
    /// every `Result` of the crate and should stay small).
    pub subject: Option<Box<Subject>>,
    pub causes: Vec<Cause>,
    /// `details.retryAfterSeconds` (and the `Retry-After` header) when non-zero.
    pub retry_after_seconds: u32,
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            subject: None,
            causes: Vec::new(),
            retry_after_seconds: 0,
        }
    }
    /// Tells the client to retry after `seconds` (`details.retryAfterSeconds`).
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after_seconds = seconds;
        self
    }
    /// 429 TooManyRequests with `message` and one cause of `cause_type` (Kubernetes'
    /// `NewTooManyRequests` plus a cause, as eviction refusals read).
    pub fn too_many_requests(message: &str, cause_type: &str, cause: String) -> Self {
        let mut e = Self::new(429, "TooManyRequests", message);
        e.causes.push(Cause {
            reason: cause_type.into(),
            message: cause,
            field: String::new(),
        });
        e
    }
    /// Names what the error is about.
    pub fn about(mut self, group: &str, kind: &str, name: &str) -> Self {
        self.subject = Some(Box::new(Subject {
            name: name.into(),
            group: group.into(),
            kind: kind.into(),
        }));
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }
    /// `<plural>.<group> "<name>" not found`, as Kubernetes words it.
    pub fn not_found(group: &str, plural: &str, name: &str) -> Self {
        let resource = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(404, "NotFound", format!("{resource} \"{name}\" not found"))
            .about(group, plural, name)
    }
    /// 403 Forbidden: `<plural>.<group> "<name>" is forbidden: <reason>`, as admission and
    /// storage refusals read.
    pub fn forbidden(group: &str, plural: &str, name: &str, reason: &str) -> Self {
        let resource = if group.is_empty() {
            plural.to_string()
        } else {
            format!("{plural}.{group}")
        };
        Self::new(
            403,
            "Forbidden",
            format!("{resource} \"{name}\" is forbidden: {reason}"),
        )
        .about(group, plural, name)
    }
    /// 422 Invalid: `<Kind>.<group> "<name>" is invalid: <field>: <message>, …`.
    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        let qualified = if group.is_empty() {
            kind.to_string()
        } else {
            format!("{kind}.{group}")
        };
        let detail = causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect::<Vec<_>>()
            .join(", ");
        let mut e = Self::new(
            422,
            "Invalid",
            format!("{qualified} \"{name}\" is invalid: {detail}"),
        )
        .about(group, kind, name);
        e.causes = causes;
        e
    }

    /// The `meta.k8s.io/v1 Status` object for this error, encoded as kube-apiserver encodes
    /// it: Go's field order (kind, apiVersion, metadata, status, message, reason, details,
    /// code) and `omitempty` (no empty `details.group`).
    pub fn status(&self) -> Status<'_> {
        let details =
            (self.subject.is_some() || !self.causes.is_empty() || self.retry_after_seconds > 0)
                .then(|| Details {
                    name: self.subject.as_ref().map_or("", |s| &s.name),
                    group: self.subject.as_ref().map_or("", |s| &s.group),
                    kind: self.subject.as_ref().map_or("", |s| &s.kind),
                    causes: self
                        .causes
                        .iter()
                        .map(|c| StatusCause {
                            reason: &c.reason,
                            message: &c.message,
                            field: &c.field,
                        })
                        .collect(),
                    retry_after_seconds: self.retry_after_seconds,
                });
        Status {
            kind: "Status",
            api_version: "v1",
            metadata: ListMeta {},
            status: "Failure",
            message: &self.message,
            reason: &self.reason,
            details,
            code: self.code,
        }
    }

    /// [`ApiError::status`] as a JSON value (for embedding in other objects).
    pub fn to_status(&self) -> serde_json::Value {
        serde_json::to_value(self.status()).unwrap_or_default()
    }
}

/// `meta.k8s.io/v1 Status`, with its members in Go's order.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Status<'a> {
    kind: &'static str,
    api_version: &'static str,
    metadata: ListMeta,
    status: &'static str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<Details<'a>>,
    #[serde(skip_serializing_if = "is_zero")]
    code: u16,
}

/// An empty `metav1.ListMeta`: Go encodes it as `{}`.
#[derive(Debug, Serialize)]
struct ListMeta {}

#[derive(Debug, Serialize)]
struct Details<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    name: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    group: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    kind: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    causes: Vec<StatusCause<'a>>,
    #[serde(rename = "retryAfterSeconds", skip_serializing_if = "is_zero_u32")]
    retry_after_seconds: u32,
}

#[derive(Debug, Serialize)]
struct StatusCause<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    reason: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    message: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    field: &'a str,
}

fn is_zero(code: &u16) -> bool {
    *code == 0
}

fn is_zero_u32(n: &u32) -> bool {
    *n == 0
}

impl From<skiff_store::StoreError> for ApiError {
    fn from(e: skiff_store::StoreError) -> Self {
        use skiff_store::StoreError as S;
        match e {
            S::Compacted { .. } => ApiError::new(410, "Expired", format!("too old resource version: {e}")),
            S::Conflict { .. } => ApiError::new(
                409,
                "Conflict",
                "the object has been modified; please apply your changes to the latest version and try again",
            ),
            S::AlreadyExists(k) => ApiError::new(409, "AlreadyExists", format!("{k} already exists")),
            S::NotFound(k) => ApiError::new(404, "NotFound", format!("{k} not found")),
            S::FutureRevision { .. } => ApiError::new(504, "Timeout", e.to_string()),
            other => ApiError::internal(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Byte for byte what kube-apiserver 1.33 answers for `GET /api/v1/namespaces/default/configmaps/nope`.
    #[test]
    fn not_found_status_is_encoded_like_kube_apiserver() {
        let e = ApiError::not_found("", "configmaps", "nope");
        assert_eq!(
            serde_json::to_string(&e.status()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"configmaps \"nope\" not found","reason":"NotFound","details":{"name":"nope","kind":"configmaps"},"code":404}"#
        );
    }

    #[test]
    fn causes_keep_go_member_order_and_groups_show_when_set() {
        let e = ApiError::invalid(
            "apps",
            "Deployment",
            "web",
            vec![Cause {
                reason: "FieldValueRequired".into(),
                message: "Required value".into(),
                field: "spec.selector".into(),
            }],
        );
        assert_eq!(
            serde_json::to_string(&e.status()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Deployment.apps \"web\" is invalid: spec.selector: Required value","reason":"Invalid","details":{"name":"web","group":"apps","kind":"Deployment","causes":[{"reason":"FieldValueRequired","message":"Required value","field":"spec.selector"}]},"code":422}"#
        );
        let bare = ApiError::bad_request("nope");
        assert_eq!(
            serde_json::to_string(&bare.status()).unwrap(),
            r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"nope","reason":"BadRequest","code":400}"#
        );
    }
}
