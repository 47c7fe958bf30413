//! core/v1 PersistentVolumes: reclaim policy and volume mode defaults, the capacity, access
//! mode and volume source rules, the `Pending` phase a new volume starts in, the phase
//! transition time `/status` keeps, and the `kubectl get pv` columns. Also the access mode
//! and storage class helpers claims share.

use k8s_openapi::api::core::v1::PersistentVolume;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set};
use crate::object;
use crate::registry::{keep, Obj, Strategy};
use crate::resources::{Entry, Sub};
use crate::table::{age, col, name, str_at, wide, Column, AGE, NAME};
use crate::validation::{names, quote, Errs};

/// Kubernetes' access modes, in the order of its error messages.
pub const ACCESS_MODES: &[&str] = &[
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];
const RECLAIM_POLICIES: &[&str] = &["Delete", "Recycle", "Retain"];
const VOLUME_MODES: &[&str] = &["Block", "Filesystem"];
/// The annotation that names a storage class before `storageClassName` existed.
const BETA_CLASS: &str = "volume.beta.kubernetes.io/storage-class";
/// The fields of `PersistentVolumeSource`: a volume has exactly one.
const SOURCES: &[&str] = &[
    "awsElasticBlockStore",
    "azureDisk",
    "azureFile",
    "cephfs",
    "cinder",
    "csi",
    "fc",
    "flexVolume",
    "flocker",
    "gcePersistentDisk",
    "glusterfs",
    "hostPath",
    "iscsi",
    "local",
    "nfs",
    "photonPersistentDisk",
    "portworxVolume",
    "quobyte",
    "rbd",
    "scaleIO",
    "storageos",
    "vsphereVolume",
];

pub struct PersistentVolumes;

impl Strategy for PersistentVolumes {
    type Object = PersistentVolume;
    type Protobuf = pb::PersistentVolume;
    const RESOURCE: Entry = Entry {
        short_names: &["pv"],
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Capacity"),
        col("Access Modes"),
        col("Reclaim Policy"),
        col("Status"),
        col("Claim"),
        col("StorageClass"),
        col("VolumeAttributesClass"),
        col("Reason"),
        AGE,
        wide("VolumeMode"),
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
        set(spec, "volumeMode", json!("Filesystem"));
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        obj["status"] = json!({"phase": "Pending", "lastPhaseTransitionTime": object::now()});
    }

    /// `/status` keeps the transition time unless the phase changes.
    fn prepare_for_subresource(&self, sub: Sub, new: Value, old: &Value) -> Value {
        let mut out = old.clone();
        if sub != Sub::Status {
            return out;
        }
        keep(&mut out, &new, "status");
        let phase = |o: &Value| o.pointer("/status/phase").cloned();
        let time = |o: &Value| o.pointer("/status/lastPhaseTransitionTime").cloned();
        if out.get("status").is_some_and(Value::is_object) {
            if phase(old) == phase(&out) && time(&out).is_none() {
                if let Some(t) = time(old) {
                    out["status"]["lastPhaseTransitionTime"] = t;
                }
            } else if phase(old) != phase(&out) && (time(&out).is_none() || time(&out) == time(old))
            {
                out["status"]["lastPhaseTransitionTime"] = json!(object::now());
            }
        }
        out
    }

    fn validate(
        &self,
        new: Obj<'_, PersistentVolume>,
        old: Option<Obj<'_, PersistentVolume>>,
        errs: &mut Errs,
    ) {
        let spec = &new.json["spec"];
        access_modes(&spec["accessModes"], "spec.accessModes", "", errs);
        let capacity = spec["capacity"].as_object();
        if capacity.is_none_or(|c| c.is_empty()) {
            errs.required("spec.capacity", "");
        }
        if capacity.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
            let shown = match capacity {
                None => "core.ResourceList(nil)".to_string(),
                Some(c) => format!(
                    "core.ResourceList{{{}}}",
                    c.keys().map(|k| quote(k)).collect::<Vec<_>>().join(", ")
                ),
            };
            errs.push(
                "FieldValueNotSupported",
                "spec.capacity",
                format!("Unsupported value: {shown}: supported values: \"storage\""),
            );
        }
        if let Some(p) = spec["persistentVolumeReclaimPolicy"]
            .as_str()
            .filter(|p| !p.is_empty() && !RECLAIM_POLICIES.contains(p))
        {
            errs.not_supported("spec.persistentVolumeReclaimPolicy", p, RECLAIM_POLICIES);
        }
        storage_class_name(&spec["storageClassName"], "spec.storageClassName", errs);
        if let Some(m) = spec["volumeMode"]
            .as_str()
            .filter(|m| !VOLUME_MODES.contains(m))
        {
            errs.not_supported("spec.volumeMode", m, VOLUME_MODES);
        }
        let sources: Vec<&str> = SOURCES
            .iter()
            .copied()
            .filter(|s| !spec[*s].is_null())
            .collect();
        match sources.len() {
            0 => errs.required("spec", "must specify a volume type"),
            1 => {}
            _ => errs.forbidden(
                &format!("spec.{}", sources[1]),
                "may not specify more than 1 volume type",
            ),
        }
        if let Some(old) = old {
            let source = |o: &Value| {
                SOURCES
                    .iter()
                    .map(|s| o["spec"][*s].clone())
                    .collect::<Vec<_>>()
            };
            if source(new.json) != source(old.json) {
                errs.forbidden(
                    "spec.persistentvolumesource",
                    "spec.persistentvolumesource is immutable after creation",
                );
            }
            if spec["volumeMode"] != old.json["spec"]["volumeMode"] {
                errs.invalid(
                    "spec.volumeMode",
                    quote(spec["volumeMode"].as_str().unwrap_or("")),
                    "field is immutable",
                );
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let claim = match o.pointer("/spec/claimRef") {
            Some(c) if c.is_object() => {
                format!("{}/{}", str_at(c, "/namespace"), str_at(c, "/name"))
            }
            _ => String::new(),
        };
        let phase = if object::is_deleting(o) {
            "Terminating"
        } else {
            str_at(o, "/status/phase")
        };
        vec![
            name(o),
            json!(quantity(o.pointer("/spec/capacity/storage"))),
            json!(access_modes_string(o.pointer("/spec/accessModes"))),
            json!(str_at(o, "/spec/persistentVolumeReclaimPolicy")),
            json!(phase),
            json!(claim),
            json!(class_of(o)),
            json!(or_unset(o.pointer("/spec/volumeAttributesClassName"))),
            json!(str_at(o, "/status/reason")),
            age(o),
            json!(or_unset(o.pointer("/spec/volumeMode"))),
        ]
    }
}

/// The access modes at `field`: at least one (`required` words the error), each supported.
pub fn access_modes(modes: &Value, field: &str, required: &str, errs: &mut Errs) {
    let list: Vec<&str> = modes
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    if list.is_empty() {
        errs.required(field, required);
    }
    for m in &list {
        if !ACCESS_MODES.contains(m) {
            errs.not_supported(field, m, ACCESS_MODES);
        }
    }
    if list.contains(&"ReadWriteOncePod") && list.len() > 1 {
        errs.forbidden(
            field,
            "may not use ReadWriteOncePod with other access modes",
        );
    }
}

/// A `storageClassName` is a subdomain when set.
pub fn storage_class_name(class: &Value, field: &str, errs: &mut Errs) {
    if let Some(c) = class.as_str().filter(|c| !c.is_empty()) {
        for m in names::dns1123_subdomain(c) {
            errs.invalid(field, quote(c), &m);
        }
    }
}

/// Access modes as `kubectl get` abbreviates them (RWO,ROX,RWX,RWOP).
pub fn access_modes_string(modes: Option<&Value>) -> String {
    let list: Vec<&str> = modes
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    [
        ("ReadWriteOnce", "RWO"),
        ("ReadOnlyMany", "ROX"),
        ("ReadWriteMany", "RWX"),
        ("ReadWriteOncePod", "RWOP"),
    ]
    .iter()
    .filter(|(m, _)| list.contains(m))
    .map(|(_, short)| *short)
    .collect::<Vec<_>>()
    .join(",")
}

/// The storage class of a volume or claim: the beta annotation wins over the field.
pub fn class_of(o: &Value) -> String {
    o.pointer(&format!(
        "/metadata/annotations/{}",
        BETA_CLASS.replace('/', "~1")
    ))
    .or_else(|| o.pointer("/spec/storageClassName"))
    .and_then(Value::as_str)
    .unwrap_or_default()
    .to_string()
}

/// A quantity cell ("0" when absent, as Go prints a zero Quantity).
pub fn quantity(q: Option<&Value>) -> String {
    match q {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "0".into(),
    }
}

/// A string field, or `<unset>`.
pub fn or_unset(v: Option<&Value>) -> String {
    v.and_then(Value::as_str).unwrap_or("<unset>").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn pv() -> Value {
        json!({"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": "pv1"},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/data"}}})
    }

    #[test]
    fn a_volume_needs_capacity_modes_and_one_source() {
        let bare = json!({"metadata": {"name": "pv1"}, "spec": {}});
        let err = Kind::validate(&PersistentVolumes, &bare, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.accessModes: Required value",
                "spec.capacity: Required value",
                "spec.capacity: Unsupported value: core.ResourceList(nil): supported values: \"storage\"",
                "spec: Required value: must specify a volume type",
            ]
        );
        let mut ok = pv();
        Kind::defaults(&PersistentVolumes, &mut ok);
        Kind::prepare_for_create(&PersistentVolumes, &mut ok);
        assert!(Kind::validate(&PersistentVolumes, &ok, None).is_ok());
        assert_eq!(ok["status"]["phase"], "Pending");
        assert_eq!(ok["spec"]["persistentVolumeReclaimPolicy"], "Retain");
    }

    #[test]
    fn row_matches_kubectl_get_pv() {
        let mut v = pv();
        Kind::defaults(&PersistentVolumes, &mut v);
        v["spec"]["accessModes"] = json!(["ReadWriteMany", "ReadWriteOnce"]);
        v["spec"]["claimRef"] = json!({"namespace": "shop", "name": "data"});
        v["spec"]["storageClassName"] = json!("local");
        v["status"] = json!({"phase": "Bound"});
        let c = Kind::cells(&PersistentVolumes, &v);
        assert_eq!(
            &c[1..9],
            [
                json!("1Gi"),
                json!("RWO,RWX"),
                json!("Retain"),
                json!("Bound"),
                json!("shop/data"),
                json!("local"),
                json!("<unset>"),
                json!("")
            ]
        );
        assert_eq!(c[10], "Filesystem");
    }

    #[test]
    fn status_writes_keep_or_set_the_transition_time() {
        let mut old = pv();
        Kind::prepare_for_create(&PersistentVolumes, &mut old);
        let t0 = old["status"]["lastPhaseTransitionTime"].clone();
        let same = Kind::prepare_for_subresource(
            &PersistentVolumes,
            Sub::Status,
            json!({"status": {"phase": "Pending"}}),
            &old,
        );
        assert_eq!(same["status"]["lastPhaseTransitionTime"], t0);
        let bound = Kind::prepare_for_subresource(
            &PersistentVolumes,
            Sub::Status,
            json!({"spec": {"capacity": {"storage": "5Gi"}}, "status": {"phase": "Bound"}}),
            &old,
        );
        assert_eq!(bound["status"]["phase"], "Bound");
        assert!(bound["status"]["lastPhaseTransitionTime"].is_string());
        assert_eq!(
            bound["spec"]["capacity"]["storage"], "1Gi",
            "spec is not /status's"
        );
    }
}
