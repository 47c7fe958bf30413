//! Validation of objects before they are stored: type checking against the k8s-openapi types
//! (a wrong JSON type is a 400 `BadRequest` naming the field, as Kubernetes' decoder says),
//! then the per-kind rules that give 422 `Invalid` with one cause per field, worded as
//! Kubernetes words them. Also the unknown-field report behind `fieldValidation=Strict|Warn`.
//! Validation never changes the object and never reads the store.

mod kinds;
mod names;
mod pod;
pub mod schema;
mod types;

use serde_json::Value;

use crate::error::{ApiError, Cause};
use crate::resources::ResourceInfo;

pub use types::unknown_fields;

/// Validates `obj` (a create when `old` is None, else an update of `old`).
pub fn validate(info: &ResourceInfo, obj: &Value, old: Option<&Value>) -> Result<(), ApiError> {
    types::check(info, obj)?;
    let mut errs = Errs::default();
    metadata(info, obj, &mut errs);
    match (info.group, info.kind) {
        ("", "Pod") => pod::pod(obj, old, &mut errs),
        ("apps", "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet") => {
            pod::workload(info.kind, obj, old, &mut errs)
        }
        ("", "Service") => kinds::service(obj, old, &mut errs),
        ("", "Secret") => kinds::secret(obj, old, &mut errs),
        ("", "ConfigMap") => kinds::config_map(obj, old, &mut errs),
        ("autoscaling", "HorizontalPodAutoscaler") => kinds::hpa(info.version, obj, &mut errs),
        _ => {}
    }
    if errs.0.is_empty() {
        return Ok(());
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    Err(ApiError::invalid(info.group, info.kind, name, errs.0))
}

/// Name and label rules every kind shares.
fn metadata(info: &ResourceInfo, obj: &Value, errs: &mut Errs) {
    let meta = &obj["metadata"];
    match meta.get("name").and_then(Value::as_str) {
        None | Some("") => errs.required("metadata.name", "name or generateName is required"),
        Some(name) => {
            let problems = match info.kind {
                "Namespace" => names::dns1123_label(name),
                "Service" => names::dns1035_label(name),
                _ => names::dns1123_subdomain(name),
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
fn labels(map: &Value, field: &str, errs: &mut Errs) {
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
fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

/// A `map[string]string` as Go's `%#v` shows it.
fn go_map(v: &Value) -> String {
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
struct Errs(Vec<Cause>);

impl Errs {
    fn push(&mut self, reason: &str, field: &str, message: String) {
        self.0.push(Cause {
            reason: reason.into(),
            message,
            field: field.into(),
        });
    }
    fn invalid(&mut self, field: &str, value: String, detail: &str) {
        self.push(
            "FieldValueInvalid",
            field,
            format!("Invalid value: {value}: {detail}"),
        );
    }
    fn required(&mut self, field: &str, detail: &str) {
        let message = if detail.is_empty() {
            "Required value".to_string()
        } else {
            format!("Required value: {detail}")
        };
        self.push("FieldValueRequired", field, message);
    }
    fn forbidden(&mut self, field: &str, detail: &str) {
        self.push("FieldValueForbidden", field, format!("Forbidden: {detail}"));
    }
    fn not_supported(&mut self, field: &str, value: &str, supported: &[&str]) {
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
    fn duplicate(&mut self, field: &str, value: String) {
        self.push(
            "FieldValueDuplicate",
            field,
            format!("Duplicate value: {value}"),
        );
    }
    fn not_found(&mut self, field: &str, value: String) {
        self.push("FieldValueNotFound", field, format!("Not found: {value}"));
    }
    fn too_long(&mut self, field: &str, detail: &str) {
        self.push("FieldValueTooLong", field, format!("Too long: {detail}"));
    }
    /// `field: Invalid value: <v>: must be greater than or equal to <min>` when `v < min`.
    fn min(&mut self, field: &str, v: &Value, min: i64) {
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
        validate(find_kind(av, kind).unwrap(), &obj, None)
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
