//! events.k8s.io/v1 Events: the same objects as core/v1 Events (stored with them, as in
//! Kubernetes), converted field by field between the two versions, with the stricter rules
//! Kubernetes applies to events written through this API (eventTime, reportingController,
//! reportingInstance, action and reason required; no deprecated fields).

use k8s_openapi::api::events::v1::Event;
use k8s_pb::api::events::v1 as pb;
use serde_json::{json, Map, Value};

use crate::kinds::core::event::{legacy_rules, Events as CoreEvents, COLUMNS};
use crate::registry::{Kind, Obj, Strategy};
use crate::resources::Entry;
use crate::table::Column;
use crate::validation::{quote, Errs};

pub const API_VERSION: &str = "events.k8s.io/v1";

/// events.k8s.io/v1 field ⇄ core/v1 field, for the fields that differ in name.
const RENAMED: &[(&str, &str)] = &[
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

pub struct EventsV1;

impl Strategy for EventsV1 {
    type Object = Event;
    type Protobuf = pb::Event;
    const RESOURCE: Entry = Entry {
        short_names: &["ev"],
        stored_with_group: Some(""),
        ..Entry::DEFAULT
    };
    const CREATE_ON_UPDATE: bool = true;
    /// Kubernetes' field labels of events.k8s.io/v1 Events (the core ones under this
    /// version's names; `source` is still accepted).
    const FIELD_SELECTORS: &'static [&'static str] = &[
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "regarding.apiVersion",
        "regarding.resourceVersion",
        "regarding.fieldPath",
        "reason",
        "reportingController",
        "source",
        "type",
    ];
    const COLUMNS: &'static [Column] = COLUMNS;

    fn validate(&self, new: Obj<'_, Event>, _old: Option<Obj<'_, Event>>, errs: &mut Errs) {
        let core = to_core(new.json.clone());
        legacy_rules(&core, errs);
        strict_rules(&core, errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        Kind::cells(&CoreEvents, &to_core(obj.clone()))
    }

    fn convert_from(&self, obj: Value) -> Value {
        rename(obj, |core| {
            RENAMED.iter().find(|(_, c)| *c == core).map(|(v1, _)| *v1)
        })
    }
}

/// An events.k8s.io/v1 Event as core/v1 has it.
pub fn to_core(obj: Value) -> Value {
    let mut out = rename(obj, |v1| {
        RENAMED
            .iter()
            .find(|(e, _)| *e == v1)
            .map(|(_, core)| *core)
    });
    out["apiVersion"] = json!("v1");
    out
}

/// `obj` with the top-level fields `renamed` maps renamed.
fn rename(obj: Value, renamed: impl Fn(&str) -> Option<&'static str>) -> Value {
    let Value::Object(m) = obj else { return obj };
    let out: Map<String, Value> = m
        .into_iter()
        .map(|(k, v)| match renamed(&k) {
            Some(to) => (to.to_string(), v),
            None => (k, v),
        })
        .collect();
    Value::Object(out)
}

/// What Kubernetes requires of events written through events.k8s.io (on the core form, so
/// field paths use core names as Kubernetes' messages do).
fn strict_rules(e: &Value, errs: &mut Errs) {
    let set = |f: &str| !e[f].is_null() && e[f] != "" && e[f] != 0;
    if let Some(series) = e.get("series").filter(|s| s.is_object()) {
        if series["count"].as_i64().unwrap_or(0) < 2 {
            errs.invalid("series.count", quote(""), "should be at least 2");
        }
        if series["lastObservedTime"].is_null() {
            errs.required("series.lastObservedTime", "");
        }
    }
    if !set("eventTime") {
        errs.required("eventTime", "");
    }
    let ty = e["type"].as_str().unwrap_or("");
    if ty != "Normal" && ty != "Warning" {
        errs.invalid("type", quote(""), &format!("has invalid value: {ty}"));
    }
    for f in ["firstTimestamp", "lastTimestamp", "count"] {
        if set(f) {
            errs.invalid(f, quote(""), "needs to be unset");
        }
    }
    let source_set = ["component", "host"]
        .iter()
        .any(|k| e["source"][k].as_str().is_some_and(|s| !s.is_empty()));
    if source_set {
        errs.invalid("source", quote(""), "needs to be unset");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources;

    fn event() -> Value {
        json!({"apiVersion": API_VERSION, "kind": "Event", "metadata": {"name": "web.1", "namespace": "shop"},
            "eventTime": "2026-01-01T00:00:00.000000Z", "reportingController": "skiff.io/scheduler",
            "reportingInstance": "node-1", "action": "Binding", "reason": "Scheduled", "type": "Normal",
            "regarding": {"kind": "Pod", "name": "web", "namespace": "shop"}, "note": "assigned"})
    }

    #[test]
    fn both_versions_share_storage_and_convert() {
        let v1 = resources::find("events.k8s.io", "v1", "events").unwrap();
        let core = resources::find("", "v1", "events").unwrap();
        assert_eq!(v1.info().prefix(), core.info().prefix());
        assert_eq!(resources::storage_kind(v1.info()).info().group, "");
        let stored = crate::convert::convert(event(), core);
        assert_eq!(stored["apiVersion"], "v1");
        assert_eq!(stored["involvedObject"]["name"], "web");
        assert_eq!(stored["message"], "assigned");
        assert_eq!(stored["reportingComponent"], "skiff.io/scheduler");
        let back = crate::convert::convert(stored, v1);
        assert_eq!(back, event());
    }

    #[test]
    fn strict_rules_apply_to_new_api_writes() {
        assert!(Kind::validate(&EventsV1, &event(), None).is_ok());
        let mut e = event();
        let m = e.as_object_mut().unwrap();
        m.remove("eventTime");
        m.remove("action");
        m.insert("deprecatedCount".into(), json!(3));
        let err = Kind::validate(&EventsV1, &e, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "eventTime: Required value",
                "count: Invalid value: \"\": needs to be unset"
            ]
        );
    }
}
