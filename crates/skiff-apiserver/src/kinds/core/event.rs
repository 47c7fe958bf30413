//! core/v1 Events: written by components (a PUT creates a missing one), the namespace
//! and reporting rules Kubernetes applies to every event, selectable by the involved
//! object, printed as `kubectl get events` does. events.k8s.io/v1 Events are the same
//! objects ([`crate::kinds::events::event`]).

use k8s_openapi::api::core::v1::Event;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{col, name, since, str_at, wide, Column};
use crate::validation::{names, quote, Errs};

/// The `kubectl get events` columns (both API versions).
pub const COLUMNS: &[Column] = &[
    col("Last Seen"),
    col("Type"),
    col("Reason"),
    col("Object"),
    wide("Subobject"),
    wide("Source"),
    col("Message"),
    wide("First Seen"),
    wide("Count"),
    Column("Name", "string", "name", 1),
];
/// Kubernetes' length limits of event fields.
const REPORTING_INSTANCE_MAX: usize = 128;
const ACTION_MAX: usize = 128;
const REASON_MAX: usize = 128;
const NOTE_MAX: usize = 1024;

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
    const COLUMNS: &'static [Column] = COLUMNS;

    fn validate(&self, new: Obj<'_, Event>, _old: Option<Obj<'_, Event>>, errs: &mut Errs) {
        legacy_rules(new.json, errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        event_cells(obj)
    }

    fn convert_from(&self, obj: Value) -> Value {
        crate::kinds::events::event::to_core(obj)
    }
}

/// What Kubernetes requires of every event (core form): its namespace agrees with the
/// involved object's, and an event with `eventTime` (the new style) says who reported it,
/// with what action and reason, within the length limits.
pub fn legacy_rules(e: &Value, errs: &mut Errs) {
    let s = |f: &str| e[f].as_str().unwrap_or("");
    let ns = e
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let involved_ns = str_at(e, "/involvedObject/namespace");
    let mismatch = |errs: &mut Errs| {
        errs.invalid(
            "involvedObject.namespace",
            quote(involved_ns),
            "does not match event.namespace",
        )
    };
    let new_style = e["eventTime"].as_str().is_some_and(|t| !t.is_empty());
    if !new_style {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                mismatch(errs);
            }
        } else if ns != involved_ns {
            mismatch(errs);
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            mismatch(errs);
        }
        let controller = s("reportingComponent");
        if controller.is_empty() {
            errs.required("reportingController", "");
        }
        for m in names::qualified_name(controller) {
            errs.invalid("reportingController", quote(controller), &m);
        }
        for (field, max) in [
            ("reportingInstance", REPORTING_INSTANCE_MAX),
            ("action", ACTION_MAX),
            ("reason", REASON_MAX),
        ] {
            if s(field).is_empty() {
                errs.required(field, "");
            }
            if s(field).len() > max {
                errs.invalid(
                    field,
                    quote(""),
                    &format!("can have at most {max} characters"),
                );
            }
        }
        if s("message").len() > NOTE_MAX {
            errs.invalid(
                "message",
                quote(""),
                &format!("can have at most {NOTE_MAX} characters"),
            );
        }
    }
    for m in names::dns1123_subdomain(ns)
        .into_iter()
        .filter(|_| !ns.is_empty())
    {
        errs.invalid("namespace", quote(ns), &m);
    }
}

/// Kubernetes' event row: the last and first time seen (from the timestamps, the event
/// time or the series), the involved object, the source, and the count (1 for a singleton).
fn event_cells(o: &Value) -> Vec<Value> {
    let ts = |p: &str| {
        o.pointer(p)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let first = match ts("/firstTimestamp") {
        Some(t) => since(Some(t)),
        None => since(ts("/eventTime")),
    };
    let mut last = match ts("/lastTimestamp") {
        Some(t) => since(Some(t)),
        None => first.clone(),
    };
    let mut count = o.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = o.get("series").filter(|s| s.is_object()) {
        last = since(series.get("lastObservedTime").and_then(Value::as_str));
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = str_at(o, "/involvedObject/kind").to_lowercase();
    let obj_name = str_at(o, "/involvedObject/name");
    let target = if obj_name.is_empty() {
        kind
    } else {
        format!("{kind}/{obj_name}")
    };
    let first_non_empty = |a: &str, b: &str| {
        let v = str_at(o, a);
        if v.is_empty() {
            str_at(o, b).to_string()
        } else {
            v.to_string()
        }
    };
    let component = first_non_empty("/source/component", "/reportingComponent");
    let instance = first_non_empty("/source/host", "/reportingInstance");
    let source = if instance.is_empty() {
        component
    } else {
        format!("{component}, {instance}")
    };
    vec![
        json!(last),
        json!(str_at(o, "/type")),
        json!(str_at(o, "/reason")),
        json!(target),
        json!(str_at(o, "/involvedObject/fieldPath")),
        json!(source),
        json!(str_at(o, "/message").trim()),
        json!(first),
        json!(count),
        name(o),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn an_event_elsewhere_than_default_names_its_object() {
        let e = json!({"metadata": {"name": "x.1", "namespace": "shop"}, "reason": "Started", "message": "hi"});
        let err = Kind::validate(&Events, &e, None).unwrap_err();
        assert_eq!(
            err.message,
            "Event \"x.1\" is invalid: involvedObject.namespace: Invalid value: \"\": does not match event.namespace"
        );
        let in_default = json!({"metadata": {"name": "x.1", "namespace": "default"}});
        assert!(Kind::validate(&Events, &in_default, None).is_ok());
        let new_style = json!({"metadata": {"name": "x.1", "namespace": "shop"}, "eventTime": "2026-01-01T00:00:00.000000Z",
            "involvedObject": {"kind": "Pod", "name": "web", "namespace": "shop"}});
        let err = Kind::validate(&Events, &new_style, None).unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "reportingController",
                "reportingController",
                "reportingInstance",
                "action",
                "reason"
            ]
        );
    }

    #[test]
    fn row_counts_singletons_and_series() {
        let e = json!({"metadata": {"name": "web.1"}, "type": "Normal", "reason": "Pulled",
            "involvedObject": {"kind": "Pod", "name": "web"}, "source": {"component": "kubelet", "host": "n1"},
            "message": " done ", "firstTimestamp": "2026-01-01T00:00:00Z"});
        let c = Kind::cells(&Events, &e);
        assert_eq!(c[3], "pod/web");
        assert_eq!(c[5], "kubelet, n1");
        assert_eq!(c[6], "done");
        assert_eq!(c[8], 1);
        assert_eq!(c[0], c[7]);
        let mut series = e.clone();
        series["series"] = json!({"count": 4, "lastObservedTime": "2026-01-01T00:00:00.000000Z"});
        assert_eq!(Kind::cells(&Events, &series)[8], 4);
    }
}
