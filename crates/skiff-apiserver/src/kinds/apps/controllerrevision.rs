//! apps/v1 ControllerRevisions: the immutable snapshots of a DaemonSet's or StatefulSet's
//! template that their controllers keep, printed with the owning controller and revision.

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_pb::api::apps::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{age, col, name, Column, AGE, NAME};
use crate::validation::Errs;

pub struct ControllerRevisions;

impl Strategy for ControllerRevisions {
    type Object = ControllerRevision;
    type Protobuf = pb::ControllerRevision;
    const RESOURCE: Entry = Entry::DEFAULT;
    const COLUMNS: &'static [Column] = &[NAME, col("Controller"), col("Revision"), AGE];

    fn validate(
        &self,
        new: Obj<'_, ControllerRevision>,
        old: Option<Obj<'_, ControllerRevision>>,
        errs: &mut Errs,
    ) {
        if new.json["data"].is_null() {
            errs.required("data", "data is mandatory");
        }
        errs.min("revision", &new.json["revision"], 0);
        if let Some(old) = old {
            if new.json["data"] != old.json["data"] {
                errs.invalid(
                    "data",
                    "runtime.RawExtension{...}".into(),
                    "field is immutable",
                );
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            name(o),
            json!(controller_of(o)),
            json!(o.get("revision").and_then(Value::as_i64).unwrap_or(0)),
            age(o),
        ]
    }
}

/// `<kind>.<group>/<name>` of the controlling owner (lower case), or `<none>`.
fn controller_of(o: &Value) -> String {
    let owner = o
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|r| r["controller"] == true);
    let Some(r) = owner else {
        return "<none>".into();
    };
    let group = r["apiVersion"]
        .as_str()
        .and_then(|av| av.rsplit_once('/'))
        .map_or("", |(g, _)| g);
    let kind = r["kind"].as_str().unwrap_or_default();
    let name = r["name"].as_str().unwrap_or_default();
    let group_kind = if group.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}.{group}")
    };
    if group_kind.is_empty() {
        return name.to_string();
    }
    format!("{}/{name}", group_kind.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn data_is_required_and_immutable() {
        let bare = json!({"metadata": {"name": "web-1"}, "revision": -1});
        let err = Kind::validate(&ControllerRevisions, &bare, None).unwrap_err();
        assert_eq!(
            err.message,
            "ControllerRevision.apps \"web-1\" is invalid: data: Required value: data is mandatory, revision: Invalid value: -1: must be greater than or equal to 0"
        );
        let old = json!({"metadata": {"name": "web-1"}, "revision": 1, "data": {"spec": {}}});
        let mut new = old.clone();
        new["data"] = json!({"spec": {"x": 1}});
        new["revision"] = json!(2);
        let err = Kind::validate(&ControllerRevisions, &new, Some(&old)).unwrap_err();
        assert_eq!(err.causes.len(), 1);
        assert_eq!(err.causes[0].field, "data");
    }

    #[test]
    fn row_names_the_controller() {
        let cr = json!({"metadata": {"name": "web-7d9f", "ownerReferences": [
            {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
            "revision": 3, "data": {}});
        let c = Kind::cells(&ControllerRevisions, &cr);
        assert_eq!(&c[1..3], [json!("statefulset.apps/web"), json!(3)]);
    }
}
