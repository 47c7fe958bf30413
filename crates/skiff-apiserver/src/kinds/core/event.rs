//! core/v1 Events: written by components (a PUT creates a missing one), selectable by
//! the involved object, printed as `kubectl get events` does.

use k8s_openapi::api::core::v1::Event;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::registry::Strategy;
use crate::resources::Entry;
use crate::table::{col, int, name, since, str_at, wide, Column};

pub struct Events;

impl Strategy for Events {
    type Object = Event;
    type Protobuf = pb::Event;
    const RESOURCE: Entry = Entry {
        short_names: &["ev"],
        ..Entry::DEFAULT
    };
    const CREATE_ON_UPDATE: bool = true;
    const FIELD_SELECTORS: &'static [&'static str] = &[
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ];
    const COLUMNS: &'static [Column] = &[
        col("Last Seen"),
        col("Type"),
        col("Reason"),
        col("Object"),
        wide("Subobject"),
        wide("Source"),
        col("Message"),
        wide("First Seen"),
        wide("Count"),
        wide("Name"),
    ];

    fn cells(&self, obj: &Value) -> Vec<Value> {
        event_cells(obj)
    }
}

fn event_cells(o: &Value) -> Vec<Value> {
    let ts = |f: &str| o.get(f).and_then(Value::as_str).filter(|s| !s.is_empty());
    let last = ts("lastTimestamp").or_else(|| ts("eventTime")).or_else(|| {
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
    });
    let first = ts("firstTimestamp").or_else(|| ts("eventTime")).or(last);
    let kind = str_at(o, "/involvedObject/kind").to_lowercase();
    let obj_name = str_at(o, "/involvedObject/name");
    let source = o
        .pointer("/source/component")
        .or_else(|| o.get("reportingComponent"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let host = str_at(o, "/source/host");
    vec![
        json!(since(last)),
        json!(o.get("type").and_then(Value::as_str).unwrap_or_default()),
        json!(o.get("reason").and_then(Value::as_str).unwrap_or_default()),
        json!(format!("{kind}/{obj_name}")),
        json!(str_at(o, "/involvedObject/fieldPath")),
        json!(if host.is_empty() {
            source.to_string()
        } else {
            format!("{source}, {host}")
        }),
        json!(o
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .trim()),
        json!(since(first)),
        int(o, "/count"),
        name(o),
    ]
}
