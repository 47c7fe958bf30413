//! scheduling.k8s.io/v1 PriorityClasses: the two system classes every cluster has
//! (`system-node-critical`, `system-cluster-critical`, which cannot be deleted), the rules
//! for user classes (no `system-` prefix, at most one billion), at most one global default
//! (the Priority admission plugin's rule), what may not change, and the `kubectl get
//! priorityclasses` columns.

use futures::future::BoxFuture;
use k8s_openapi::api::scheduling::v1::PriorityClass;
use k8s_pb::api::scheduling::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::set;
use crate::error::ApiError;
use crate::object;
use crate::registry::{Admission, Kind, Obj, Strategy};
use crate::resources::Entry;
use crate::router::ApiState;
use crate::table::{age, bool_col, int_col, name, Column, AGE, NAME};
use crate::validation::{quote, Errs};

const SYSTEM_PREFIX: &str = "system-";
/// The highest value a user-defined class may have.
const HIGHEST_USER_DEFINABLE: i64 = 1_000_000_000;
const PREEMPTION_POLICIES: &[&str] = &["Never", "PreemptLowerPriority"];

/// The system classes: name, value, description.
const SYSTEM_CLASSES: &[(&str, i64, &str)] = &[
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

pub struct PriorityClasses;

impl Strategy for PriorityClasses {
    type Object = PriorityClass;
    type Protobuf = pb::PriorityClass;
    const RESOURCE: Entry = Entry {
        short_names: &["pc"],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[
        NAME,
        int_col("Value"),
        bool_col("Global-Default"),
        AGE,
        crate::table::col("PreemptionPolicy"),
    ];

    fn defaults(&self, obj: &mut Value) {
        set(obj, "preemptionPolicy", json!("PreemptLowerPriority"));
    }

    fn validate(
        &self,
        new: Obj<'_, PriorityClass>,
        old: Option<Obj<'_, PriorityClass>>,
        errs: &mut Errs,
    ) {
        let pc = new.typed;
        let name = object::name(new.json);
        if name.starts_with(SYSTEM_PREFIX) {
            if let Err(why) = known_system_class(name, i64::from(pc.value), pc.global_default) {
                errs.forbidden(
                    "metadata.name",
                    &format!("priority class names with '{SYSTEM_PREFIX}' prefix are reserved for system use only. error: {why}"),
                );
            }
        } else if i64::from(pc.value) > HIGHEST_USER_DEFINABLE {
            errs.forbidden(
                "value",
                &format!(
                    "maximum allowed value of a user defined priority is {HIGHEST_USER_DEFINABLE}"
                ),
            );
        }
        if let Some(p) = pc
            .preemption_policy
            .as_deref()
            .filter(|p| !PREEMPTION_POLICIES.contains(p))
        {
            errs.not_supported("preemptionPolicy", p, PREEMPTION_POLICIES);
        }
        if let Some(old) = old {
            if old.typed.value != pc.value {
                errs.forbidden("value", "may not be changed in an update.");
            }
            if old.typed.preemption_policy != pc.preemption_policy {
                errs.invalid(
                    "preemptionPolicy",
                    quote(pc.preemption_policy.as_deref().unwrap_or("")),
                    "field is immutable",
                );
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            name(o),
            json!(o.get("value").and_then(Value::as_i64).unwrap_or(0)),
            json!(o.get("globalDefault") == Some(&json!(true))),
            age(o),
            json!(o
                .get("preemptionPolicy")
                .and_then(Value::as_str)
                .unwrap_or_default()),
        ]
    }

    fn bootstrap(&self) -> Vec<Value> {
        SYSTEM_CLASSES
            .iter()
            .map(|(name, value, description)| {
                json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
                    "metadata": {"name": name}, "value": value, "description": description})
            })
            .collect()
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> BoxFuture<'a, Result<(), ApiError>> {
        Box::pin(async move {
            let info = self.info();
            let (obj, updating) = match op {
                Admission::Delete { obj, .. } => {
                    let name = object::name(obj);
                    if SYSTEM_CLASSES.iter().any(|(n, _, _)| *n == name) {
                        return Err(ApiError::forbidden(
                            info.group,
                            info.plural,
                            name,
                            "this is a system priority class and cannot be deleted",
                        ));
                    }
                    return Ok(());
                }
                Admission::Create { obj, .. } => (&*obj, false),
                Admission::Update { new, .. } => (&*new, true),
                _ => return Ok(()),
            };
            if obj.get("globalDefault") != Some(&json!(true)) {
                return Ok(());
            }
            let name = object::name(obj);
            let page = state.storage.list(info, None, None, 0, None).await?;
            let other_default = page.items.iter().find(|pc| {
                pc.get("globalDefault") == Some(&json!(true))
                    && (!updating || object::name(pc) != name)
            });
            match other_default {
                Some(d) => Err(ApiError::forbidden(
                    info.group,
                    info.plural,
                    name,
                    &format!(
                        "PriorityClass {} is already marked as default. Only one default can exist",
                        object::name(d)
                    ),
                )),
                None => Ok(()),
            }
        })
    }
}

/// Whether `name` is a system class with its system value and no global default.
fn known_system_class(name: &str, value: i64, global_default: Option<bool>) -> Result<(), String> {
    let Some((_, want, _)) = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("{name} is not a known system priority class"));
    };
    if value != *want {
        return Err(format!("value of {name} PriorityClass must be {want}"));
    }
    if global_default == Some(true) {
        return Err(format!(
            "globalDefault of {name} PriorityClass must be false"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pc(name: &str, value: i64) -> Value {
        let mut p = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass", "metadata": {"name": name}, "value": value});
        Kind::defaults(&PriorityClasses, &mut p);
        p
    }

    #[test]
    fn system_classes_are_valid_and_the_prefix_is_reserved() {
        for obj in Kind::bootstrap(&PriorityClasses) {
            let mut obj = obj;
            Kind::defaults(&PriorityClasses, &mut obj);
            assert!(
                Kind::validate(&PriorityClasses, &obj, None).is_ok(),
                "{obj}"
            );
        }
        let err = Kind::validate(&PriorityClasses, &pc("system-mine", 10), None).unwrap_err();
        assert_eq!(
            err.message,
            "PriorityClass.scheduling.k8s.io \"system-mine\" is invalid: metadata.name: Forbidden: priority class names with 'system-' prefix are reserved for system use only. error: system-mine is not a known system priority class"
        );
        let err = Kind::validate(&PriorityClasses, &pc("huge", 2_000_000_000), None).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Forbidden: maximum allowed value of a user defined priority is 1000000000"
        );
    }

    #[test]
    fn value_is_fixed_and_row_matches_kubectl() {
        let old = pc("high", 1000);
        let mut new = old.clone();
        new["value"] = json!(2000);
        let err = Kind::validate(&PriorityClasses, &new, Some(&old)).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Forbidden: may not be changed in an update."
        );
        let c = Kind::cells(&PriorityClasses, &old);
        assert_eq!(&c[1..3], [json!(1000), json!(false)]);
        assert_eq!(c[4], "PreemptLowerPriority");
    }
}
