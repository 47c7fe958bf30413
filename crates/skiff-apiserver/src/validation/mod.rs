//! Validation shared by every kind: type checking against the k8s-openapi types (a wrong
//! JSON type is a 400 `BadRequest` naming the field, as Kubernetes' decoder says), object
//! metadata, the syntax of names and labels, pod specs and templates, and [`Errs`], the field
//! errors that give 422 `Invalid` with one cause per field, worded as Kubernetes words them.
//! Also the unknown-field report behind `fieldValidation=Strict|Warn`. Each kind's own
//! rules live in its file under [`crate::kinds`]. Validation never changes the object and
//! never reads the store.

pub mod names;
pub mod pod;
pub mod schema;
pub mod types;

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resources::ResourceInfo;

pub use types::unknown_fields;

/// The syntax a kind's object names follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: most kinds.
    Subdomain,
    /// RFC 1123 label: namespaces.
    Label,
    /// RFC 1035 label: services.
    Dns1035Label,
    /// Anything that can be a URL path segment (no `/`, `%`, `.` or `..`).
    PathSegment,
}

/// Name and label rules every kind shares.
pub fn metadata(rule: NameRule, obj: &Value, errs: &mut Errs) {
    let meta = &obj["metadata"];
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => errs.required("metadata.name", "name or generateName is required"),
        Some(name) => {
            let problems = match rule {
                NameRule::Label => names::dns1123_label(name),
                NameRule::Dns1035Label => names::dns1035_label(name),
                NameRule::Subdomain => names::dns1123_subdomain(name),
                NameRule::PathSegment => names::path_segment(name),
            };
            for p in problems {
                errs.invalid("metadata.name", quote(name), &p);
            }
        }
    }
    labels(&meta["labels"], "metadata.labels", errs);
    if let Some(annotations) = meta.get("annotations").and_then(Value::as_object) {
        let mut total = 0;
        for (k, v) in annotations {
            total += k.len() + v.as_str().map_or(0, str::len);
            for p in names::qualified_name(k) {
                errs.invalid("metadata.annotations", quote(k), &p);
            }
        }
        if total > 256 * 1024 {
            errs.too_long(
                "metadata.annotations",
                &format!("may not be more than {} bytes", 256 * 1024),
            );
        }
    }
}

/// Label keys and values of a label map at `field`.
pub fn labels(map: &Value, field: &str, errs: &mut Errs) {
    let Some(map) = map.as_object() else { return };
    for (k, v) in map {
        for p in names::qualified_name(k) {
            errs.invalid(field, quote(k), &p);
        }
        let v = v.as_str().unwrap_or("");
        for p in names::label_value(v) {
            errs.invalid(&format!("{field}.{k}"), quote(v), &p);
        }
    }
}

/// A value as Go's `%q` shows it in field errors.
pub fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A `map[string]string` as Go's `%#v` shows it.
pub fn go_map(v: &Value) -> String {
    let entries: Vec<String> = v
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{}:{}", quote(k), quote(v.as_str().unwrap_or(""))))
                .collect()
        })
        .unwrap_or_default();
    if entries.is_empty() && v.is_null() {
        return "map[string]string(nil)".into();
    }
    format!("map[string]string{{{}}}", entries.join(", "))
}

/// Field errors collected by the per-kind checks, worded like `k8s.io/apimachinery`'s
/// `field.Error`.
#[derive(Debug, Default)]
pub struct Errs(pub Vec<Cause>);

impl Errs {
    /// Ok when no error was added, else 422 Invalid about `obj` of `info`.
    pub fn into_result(self, info: &ResourceInfo, obj: &Value) -> Result<(), ApiError> {
        if self.0.is_empty() {
            return Ok(());
        }
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        Err(ApiError::invalid(info.group, info.kind, name, self.0))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        });
    }
    pub fn invalid(&mut self, field: &str, value: String, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {detail}"),
        );
    }
    pub fn required(&mut self, field: &str, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, message);
    }
    pub fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }
    pub fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
        let list: Vec<String> = supported.iter().map(|s| quote(s)).collect();
        self.push(
            "FieldValueNotSupported",
            field,
            format!(
                "Unsupported value: {}: supported values: {}",
                quote(value),
                list.join(", ")
            ),
        );
    }
    pub fn duplicate(&mut self, field: &str, value: String) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {value}"),
        );
    }
    pub fn not_found(&mut self, field: &str, value: String) {
        self.push("FieldValueNotFound", field, format!("Not found: {value}"));
    }
    pub fn too_long(&mut self, field: &str, detail: &str) {
        self.push("FieldValueTooLong", field, format!("Too long: {detail}"));
    }
    /// `field: Invalid value: <v>: must be greater than or equal to <min>` when `v < min`.
    pub fn min(&mut self, field: &str, v: &Value, min: i64) {
        if let Some(n) = v.as_i64().filter(|n| *n < min) {
            self.invalid(
                field,
                n.to_string(),
                &format!("must be greater than or equal to {min}"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find_kind;
    use serde_json::json;

    fn check(av: &str, kind: &str, obj: Value) -> Result<(), ApiError> {
        find_kind(av, kind).unwrap().validate(&obj, None)
    }

    #[test]
    fn bad_object_name_gets_the_kubernetes_message() {
        let err = check("v1", "ConfigMap", json!({"metadata": {"name": "Foo_Bar"}})).unwrap_err();
        assert_eq!((err.code, err.reason.as_str()), (422, "Invalid"));
        assert!(
            err.message.starts_with(r#"ConfigMap "Foo_Bar" is invalid: metadata.name: Invalid value: "Foo_Bar": a lowercase RFC 1123 subdomain must consist of"#),
            "{}",
            err.message
        );
        assert_eq!(err.causes[0].field, "metadata.name");
        assert_eq!(err.causes[0].reason, "FieldValueInvalid");
        let status = err.to_status();
        assert_eq!(status["details"]["causes"][0]["field"], "metadata.name");
    }

    #[test]
    fn namespace_and_service_names_are_labels() {
        assert!(check("v1", "Namespace", json!({"metadata": {"name": "team-a"}})).is_ok());
        let err = check("v1", "Namespace", json!({"metadata": {"name": "team.a"}})).unwrap_err();
        assert!(
            err.causes[0].message.contains("RFC 1123 label"),
            "{:?}",
            err.causes
        );
        let err = check(
            "v1",
            "Service",
            json!({"metadata": {"name": "1web"}, "spec": {"ports": [{"port": 80}]}}),
        )
        .unwrap_err();
        assert!(
            err.causes[0].message.contains("DNS-1035 label"),
            "{:?}",
            err.causes
        );
        let err = check("v1", "ConfigMap", json!({"metadata": {}})).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Required value: name or generateName is required"
        );
    }

    #[test]
    fn label_syntax() {
        let err = check(
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "labels": {"bad key": "ok", "good": "-bad"}}}),
        )
        .unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["metadata.labels", "metadata.labels.good"]);
        assert!(err.causes[1]
            .message
            .starts_with(r#"Invalid value: "-bad": a valid label must be"#));
        assert!(check(
            "v1",
            "ConfigMap",
            json!({"metadata": {"name": "a", "labels": {"app.kubernetes.io/name": "web"}}})
        )
        .is_ok());
    }
}
