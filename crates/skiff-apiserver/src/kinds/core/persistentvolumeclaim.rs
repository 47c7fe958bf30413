//! core/v1 PersistentVolumeClaims: the volume mode default, access mode and storage request
//! rules, which parts of the spec may change once created, the `Pending` phase a new claim
//! starts in, and the `kubectl get pvc` columns.

use k8s_openapi::api::core::v1::PersistentVolumeClaim;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use super::persistentvolume::{
    access_modes, access_modes_string, class_of, or_unset, quantity, storage_class_name,
};
use crate::defaults::{ensure, set};
use crate::object;
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub};
use crate::table::{age, col, name, str_at, wide, Column, AGE, NAME};
use crate::validation::{quote, Errs};

pub struct PersistentVolumeClaims;

impl Strategy for PersistentVolumeClaims {
    type Object = PersistentVolumeClaim;
    type Protobuf = pb::PersistentVolumeClaim;
    const RESOURCE: Entry = Entry {
        short_names: &["pvc"],
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Status"),
        col("Volume"),
        col("Capacity"),
        col("Access Modes"),
        col("StorageClass"),
        col("VolumeAttributesClass"),
        AGE,
        wide("VolumeMode"),
    ];

    fn defaults(&self, obj: &mut Value) {
        set(ensure(obj, "spec"), "volumeMode", json!("Filesystem"));
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending"});
    }

    fn validate(
        &self,
        new: Obj<'_, PersistentVolumeClaim>,
        old: Option<Obj<'_, PersistentVolumeClaim>>,
        errs: &mut Errs,
    ) {
        let spec = &new.json["spec"];
        access_modes(
            &spec["accessModes"],
            "spec.accessModes",
            "at least 1 access mode is required",
            errs,
        );
        match spec.pointer("/resources/requests/storage") {
            None => errs.required("spec.resources[storage]", ""),
            Some(q) => {
                let q = quantity(Some(q));
                let number: String = q
                    .chars()
                    .take_while(|c| c.is_ascii_digit() || matches!(c, '.' | '+' | '-'))
                    .collect();
                if number.parse::<f64>().is_ok_and(|n| n <= 0.0) {
                    errs.invalid(
                        "spec.resources[storage]",
                        quote(&q),
                        "must be greater than zero",
                    );
                }
            }
        }
        storage_class_name(&spec["storageClassName"], "spec.storageClassName", errs);
        if let Some(old) = old {
            // Requests may grow and the attributes class change; binding sets the volume
            // name once.
            let unbound = old.json["spec"]["volumeName"]
                .as_str()
                .is_none_or(str::is_empty);
            let fixed = |o: &Value| {
                let mut s = o["spec"].clone();
                if let Some(m) = s.as_object_mut() {
                    m.remove("volumeAttributesClassName");
                    if let Some(r) = m.get_mut("resources").and_then(Value::as_object_mut) {
                        r.remove("requests");
                    }
                    if unbound {
                        m.remove("volumeName");
                    }
                }
                s
            };
            if fixed(new.json) != fixed(old.json) {
                errs.forbidden(
                    "spec",
                    "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims",
                );
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let phase = if object::is_deleting(o) {
            "Terminating"
        } else {
            str_at(o, "/status/phase")
        };
        let volume = str_at(o, "/spec/volumeName");
        let (capacity, modes) = if volume.is_empty() {
            (String::new(), String::new())
        } else {
            (
                quantity(o.pointer("/status/capacity/storage")),
                access_modes_string(o.pointer("/status/accessModes")),
            )
        };
        vec![
            name(o),
            json!(phase),
            json!(volume),
            json!(capacity),
            json!(modes),
            json!(class_of(o)),
            json!(or_unset(o.pointer("/spec/volumeAttributesClassName"))),
            age(o),
            json!(or_unset(o.pointer("/spec/volumeMode"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn pvc() -> Value {
        let mut c = json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data", "namespace": "shop"},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}});
        Kind::defaults(&PersistentVolumeClaims, &mut c);
        c
    }

    #[test]
    fn a_claim_needs_modes_and_a_storage_request() {
        let bare = json!({"metadata": {"name": "data"}, "spec": {}});
        let err = Kind::validate(&PersistentVolumeClaims, &bare, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.accessModes: Required value: at least 1 access mode is required",
                "spec.resources[storage]: Required value",
            ]
        );
        assert!(Kind::validate(&PersistentVolumeClaims, &pvc(), None).is_ok());
    }

    #[test]
    fn only_requests_and_the_binding_may_change() {
        let old = pvc();
        let mut grown = old.clone();
        grown["spec"]["resources"]["requests"]["storage"] = json!("2Gi");
        grown["spec"]["volumeName"] = json!("pv1");
        assert!(Kind::validate(&PersistentVolumeClaims, &grown, Some(&old)).is_ok());
        let mut changed = old.clone();
        changed["spec"]["accessModes"] = json!(["ReadWriteMany"]);
        let err = Kind::validate(&PersistentVolumeClaims, &changed, Some(&old)).unwrap_err();
        assert_eq!(err.causes[0].field, "spec");
    }

    #[test]
    fn row_shows_capacity_only_once_bound() {
        let mut c = pvc();
        Kind::prepare_for_create(&PersistentVolumeClaims, &mut c);
        let cells = Kind::cells(&PersistentVolumeClaims, &c);
        assert_eq!(
            &cells[1..5],
            [json!("Pending"), json!(""), json!(""), json!("")]
        );
        c["spec"]["volumeName"] = json!("pv1");
        c["status"] = json!({"phase": "Bound", "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"]});
        let cells = Kind::cells(&PersistentVolumeClaims, &c);
        assert_eq!(
            &cells[1..5],
            [json!("Bound"), json!("pv1"), json!("1Gi"), json!("RWO")]
        );
    }
}
