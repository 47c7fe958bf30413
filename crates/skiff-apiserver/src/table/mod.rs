//! `meta.k8s.io/v1 Table` rendering: the columns `kubectl get` prints for each kind (declared
//! by the kind, [`crate::registry::Strategy::COLUMNS`]), with the same names, types,
//! wide-only priorities and cell formats as Kubernetes, and the cell helpers kinds share.
//!
//! Presentation only.

use serde_json::{json, Value};

use crate::http::Params;
use crate::registry::Kind;

/// One column: name, type, format, priority (0 = always, 1 = `-o wide`).
#[derive(Debug, Clone, Copy)]
pub struct Column(pub &'static str, pub &'static str, pub &'static str, pub u8);

pub const NAME: Column = Column("Name", "string", "name", 0);
pub const AGE: Column = col("Age");
pub const CONTAINERS: Column = wide("Containers");
pub const IMAGES: Column = wide("Images");
pub const SELECTOR: Column = wide("Selector");

/// A string column shown always.
pub const fn col(name: &'static str) -> Column {
    Column(name, "string", "", 0)
}

/// An integer column shown always.
pub const fn int_col(name: &'static str) -> Column {
    Column(name, "integer", "", 0)
}

/// A boolean column shown always.
pub const fn bool_col(name: &'static str) -> Column {
    Column(name, "boolean", "", 0)
}

/// A string column shown only with `-o wide`.
pub const fn wide(name: &'static str) -> Column {
    Column(name, "string", "", 1)
}

/// A Table of `items` (objects of `kind`) at list revision `rv`.
pub fn table(kind: &dyn Kind, items: &[Value], rv: &str, params: &Params) -> Value {
    let columns: Vec<Value> = kind
        .columns()
        .iter()
        .map(|c| {
            json!({"name": c.0, "type": c.1, "format": c.2, "description": column_description(c.0), "priority": c.3})
        })
        .collect();
    let include = params.include_object.as_deref().unwrap_or("Metadata");
    let rows: Vec<Value> = items
        .iter()
        .map(|o| {
            let mut row = json!({"cells": kind.cells(o)});
            match include {
                "None" => {}
                "Object" => row["object"] = o.clone(),
                _ => row["object"] = crate::handlers::partial_metadata(o),
            }
            row
        })
        .collect();
    let mut metadata = json!({});
    if !rv.is_empty() {
        metadata["resourceVersion"] = json!(rv);
    }
    json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": metadata, "columnDefinitions": columns, "rows": rows})
}

fn column_description(name: &str) -> &'static str {
    match name {
        "Name" => "Name must be unique within a namespace. Cannot be updated.",
        "Age" => "CreationTimestamp is a timestamp representing the server time when this object was created.",
        _ => "",
    }
}

// Cell helpers shared by the per-kind printers.

pub fn name(o: &Value) -> Value {
    json!(crate::object::name(o))
}

pub fn age(o: &Value) -> Value {
    json!(since(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    ))
}

/// Age of an RFC 3339 timestamp as Kubernetes prints it ("<unknown>" when absent).
pub fn since(ts: Option<&str>) -> String {
    let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "<unknown>".into();
    };
    human_duration(chrono::Utc::now().signed_duration_since(t).num_seconds())
}

/// Go's `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return two_units(minutes, 'm', seconds % 60, 's');
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return two_units(hours, 'h', minutes % 60, 'm');
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return two_units(hours / 24, 'd', hours % 24, 'h');
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return two_units(hours / 24 / 365, 'y', (hours / 24) % 365, 'd');
    }
    format!("{}y", hours / 24 / 365)
}

/// `3h` or, with a non-zero remainder, `3h2m`.
fn two_units(major: i64, major_unit: char, minor: i64, minor_unit: char) -> String {
    if minor == 0 {
        format!("{major}{major_unit}")
    } else {
        format!("{major}{major_unit}{minor}{minor_unit}")
    }
}

/// The items of the list at `ptr` (none when absent).
pub fn arr<'a>(o: &'a Value, ptr: &str) -> Vec<&'a Value> {
    o.pointer(ptr)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect()
}

/// A string field at `ptr`, or "" when absent.
pub fn str_at<'a>(o: &'a Value, ptr: &str) -> &'a str {
    o.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

/// A string field at `ptr`, or `<none>`.
pub fn str_or_none(o: &Value, ptr: &str) -> Value {
    json!(o
        .pointer(ptr)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("<none>"))
}

/// An integer field at `ptr`, or 0.
pub fn int(o: &Value, ptr: &str) -> Value {
    json!(o.pointer(ptr).and_then(Value::as_i64).unwrap_or(0))
}

/// `k=v,k2=v2` of a string map, sorted, or `<none>`.
pub fn format_labels(m: Option<&Value>) -> String {
    let mut pairs: Vec<String> = m
        .and_then(Value::as_object)
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    pairs.sort();
    join_or(&pairs, "<none>")
}

/// `items` comma-joined, or `empty` when there are none.
pub fn join_or(items: &[String], empty: &str) -> String {
    if items.is_empty() {
        empty.into()
    } else {
        items.join(",")
    }
}

/// Names and images of a pod template's containers, comma-joined.
pub fn containers_and_images(spec: Option<&Value>) -> (Value, Value) {
    let cs: Vec<&Value> = spec
        .and_then(|s| s.get("containers"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let names: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("name").and_then(Value::as_str))
        .collect();
    let images: Vec<&str> = cs
        .iter()
        .filter_map(|c| c.get("image").and_then(Value::as_str))
        .collect();
    (json!(names.join(",")), json!(images.join(",")))
}

/// A workload row: name, the kind's `own` cells, age, then the pod template's containers and
/// images (wide), and the selector when the kind shows one.
pub fn workload_row(o: &Value, own: Vec<Value>, with_selector: bool) -> Vec<Value> {
    let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
    let mut row = vec![name(o)];
    row.extend(own);
    row.extend([age(o), containers, images]);
    if with_selector {
        row.push(selector_cell(o.pointer("/spec/selector")));
    }
    row
}

/// `ready/desired` replicas, as the Ready column of deployments and statefulsets.
pub fn ready_of_desired(o: &Value) -> Value {
    json!(format!(
        "{}/{}",
        int(o, "/status/readyReplicas"),
        desired(o)
    ))
}

/// `spec.replicas`, 1 when unset.
pub fn desired(o: &Value) -> i64 {
    o.pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1)
}

/// A label selector (`matchLabels`/`matchExpressions`) as `kubectl` prints it, or `<none>`.
pub fn selector_cell(selector: Option<&Value>) -> Value {
    let s = crate::selector::label_selector_string(selector.unwrap_or(&Value::Null));
    json!(if s.is_empty() {
        "<none>".to_string()
    } else {
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_durations_match_kubectl() {
        for (s, want) in [
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (150, "2m30s"),
            (3 * 3600, "3h"),
            (48 * 3600, "2d"),
            (730 * 86400, "2y"),
            (600, "10m"),
            (3 * 3600 + 120, "3h2m"),
            (9 * 3600, "9h"),
            (50 * 3600, "2d2h"),
            (800 * 86400, "2y70d"),
        ] {
            assert_eq!(human_duration(s), want);
        }
    }

    #[test]
    fn unknown_kinds_get_name_and_age() {
        let kind = crate::resources::find("coordination.k8s.io", "v1", "leases").unwrap();
        let t = table(
            kind,
            &[json!({"metadata": {"name": "x"}})],
            "7",
            &Params::default(),
        );
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["rows"][0]["cells"][0], "x");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
    }
}
