//! The one error type of the API server; it renders as a `meta.k8s.io/v1 Status`.

use serde_json::json;

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
}

impl ApiError {
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> Self {
        ApiError {
            code,
            reason: reason.to_string(),
            message: message.into(),
            subject: None,
            causes: Vec::new(),
        }
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

    /// The `meta.k8s.io/v1 Status` object for this error.
    pub fn to_status(&self) -> serde_json::Value {
        let mut details = serde_json::Map::new();
        if let Some(s) = &self.subject {
            details.insert("name".into(), json!(s.name));
            details.insert("group".into(), json!(s.group));
            details.insert("kind".into(), json!(s.kind));
        }
        if !self.causes.is_empty() {
            details.insert(
                "causes".into(),
                json!(self
                    .causes
                    .iter()
                    .map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field}))
                    .collect::<Vec<_>>()),
            );
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if !details.is_empty() {
            status["details"] = serde_json::Value::Object(details);
        }
        status
    }
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
