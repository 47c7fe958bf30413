//! storage.k8s.io/v1 StorageClasses: reclaim and binding defaults, the provisioner and
//! parameter rules, what may not change, and the `kubectl get storageclasses` columns (the
//! default class marked `(default)`).

use k8s_openapi::api::storage::v1::StorageClass;
use k8s_pb::api::storage::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::set;
use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{age, col, str_at, Column, AGE, NAME};
use crate::validation::{names, quote, Errs};

const RECLAIM_POLICIES: &[&str] = &["Delete", "Retain"];
const BINDING_MODES: &[&str] = &["Immediate", "WaitForFirstConsumer"];
/// Kubernetes' limits on provisioner parameters.
const MAX_PARAMETERS: usize = 512;
const MAX_PARAMETER_BYTES: usize = 256 * 1024;
const DEFAULT_ANNOTATIONS: &[&str] = &[
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

pub struct StorageClasses;

impl Strategy for StorageClasses {
    type Object = StorageClass;
    type Protobuf = pb::StorageClass;
    const RESOURCE: Entry = Entry {
        short_names: &["sc"],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Provisioner"),
        col("ReclaimPolicy"),
        col("VolumeBindingMode"),
        col("AllowVolumeExpansion"),
        AGE,
    ];

    fn defaults(&self, obj: &mut Value) {
        set(obj, "reclaimPolicy", json!("Delete"));
        set(obj, "volumeBindingMode", json!("Immediate"));
    }

    fn validate(
        &self,
        new: Obj<'_, StorageClass>,
        old: Option<Obj<'_, StorageClass>>,
        errs: &mut Errs,
    ) {
        let sc = new.json;
        let provisioner = sc["provisioner"].as_str().unwrap_or("");
        if provisioner.is_empty() {
            errs.required("provisioner", "");
        } else {
            for m in names::qualified_name(&provisioner.to_lowercase()) {
                errs.invalid("provisioner", quote(provisioner), &m);
            }
        }
        let params = sc["parameters"].as_object();
        if params.is_some_and(|p| p.len() > MAX_PARAMETERS) {
            errs.too_long(
                "parameters",
                &format!("may not contain more than {MAX_PARAMETERS} parameters"),
            );
        }
        let size: usize = params
            .into_iter()
            .flatten()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if size > MAX_PARAMETER_BYTES {
            errs.too_long(
                "parameters",
                &format!("may not be more than {MAX_PARAMETER_BYTES} bytes"),
            );
        }
        if let Some(p) = sc["reclaimPolicy"]
            .as_str()
            .filter(|p| !p.is_empty() && !RECLAIM_POLICIES.contains(p))
        {
            errs.not_supported("reclaimPolicy", p, RECLAIM_POLICIES);
        }
        match sc["volumeBindingMode"].as_str() {
            None => errs.required("volumeBindingMode", ""),
            Some(m) if !BINDING_MODES.contains(&m) => {
                errs.not_supported("volumeBindingMode", m, BINDING_MODES)
            }
            Some(_) => {}
        }
        if let Some(old) = old.map(|o| o.json) {
            for (field, what) in [
                ("parameters", "parameters"),
                ("provisioner", "provisioner"),
                ("reclaimPolicy", "reclaimPolicy"),
            ] {
                if sc[field] != old[field] {
                    errs.forbidden(field, &format!("updates to {what} are forbidden."));
                }
            }
            if sc["volumeBindingMode"] != old["volumeBindingMode"] {
                errs.invalid(
                    "volumeBindingMode",
                    quote(sc["volumeBindingMode"].as_str().unwrap_or("")),
                    "field is immutable",
                );
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let mut name = crate::object::name(o).to_string();
        let default = DEFAULT_ANNOTATIONS.iter().any(|a| {
            o.pointer("/metadata/annotations")
                .and_then(|m| m.get(*a))
                .and_then(Value::as_str)
                == Some("true")
        });
        if default {
            name.push_str(" (default)");
        }
        let or = |ptr: &str, default: &str| {
            let v = str_at(o, ptr);
            json!(if v.is_empty() { default } else { v })
        };
        vec![
            json!(name),
            json!(str_at(o, "/provisioner")),
            or("/reclaimPolicy", "Delete"),
            or("/volumeBindingMode", "Immediate"),
            json!(o.get("allowVolumeExpansion") == Some(&json!(true))),
            age(o),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn provisioner_is_required_and_settings_are_fixed() {
        let mut bare = json!({"metadata": {"name": "fast"}});
        Kind::defaults(&StorageClasses, &mut bare);
        let err = Kind::validate(&StorageClasses, &bare, None).unwrap_err();
        assert_eq!(
            err.message,
            "StorageClass.storage.k8s.io \"fast\" is invalid: provisioner: Required value"
        );
        let mut old = json!({"metadata": {"name": "fast"}, "provisioner": "rancher.io/local-path"});
        Kind::defaults(&StorageClasses, &mut old);
        assert!(Kind::validate(&StorageClasses, &old, None).is_ok());
        let mut new = old.clone();
        new["reclaimPolicy"] = json!("Retain");
        let err = Kind::validate(&StorageClasses, &new, Some(&old)).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Forbidden: updates to reclaimPolicy are forbidden."
        );
    }

    #[test]
    fn row_marks_the_default_class() {
        let mut sc = json!({"metadata": {"name": "local-path", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
            "provisioner": "rancher.io/local-path", "volumeBindingMode": "WaitForFirstConsumer"});
        Kind::defaults(&StorageClasses, &mut sc);
        let c = Kind::cells(&StorageClasses, &sc);
        assert_eq!(
            &c[..5],
            [
                json!("local-path (default)"),
                json!("rancher.io/local-path"),
                json!("Delete"),
                json!("WaitForFirstConsumer"),
                json!(false)
            ]
        );
    }
}
