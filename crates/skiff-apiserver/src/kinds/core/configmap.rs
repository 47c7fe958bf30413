//! core/v1 ConfigMaps: key and size rules, `immutable`, and the `kubectl get configmaps`
//! columns.

use k8s_openapi::api::core::v1::ConfigMap;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use super::data::{data_keys, immutable, MAX_DATA_BYTES};
use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{col, Column, AGE, NAME};
use crate::validation::Errs;

pub struct ConfigMaps;

impl Strategy for ConfigMaps {
    type Object = ConfigMap;
    type Protobuf = pb::ConfigMap;
    const RESOURCE: Entry = Entry {
        short_names: &["cm"],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[NAME, col("Data"), AGE];

    fn validate(&self, new: Obj<'_, ConfigMap>, old: Option<Obj<'_, ConfigMap>>, errs: &mut Errs) {
        validate_config_map(new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            crate::table::name(o),
            count(o, &["data", "binaryData"]),
            crate::table::age(o),
        ]
    }
}

/// Number of keys across the given map fields.
pub fn count(o: &Value, fields: &[&str]) -> Value {
    json!(fields
        .iter()
        .map(|f| o.get(*f).and_then(Value::as_object).map_or(0, |m| m.len()))
        .sum::<usize>())
}

fn validate_config_map(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let total = data_keys(
        &[("data", &obj["data"]), ("binaryData", &obj["binaryData"])],
        false,
        errs,
    );
    if total > MAX_DATA_BYTES {
        errs.too_long("", &format!("must have at most {MAX_DATA_BYTES} bytes"));
    }
    immutable(obj, old, &["data", "binaryData"], errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn messages(obj: &Value, old: Option<&Value>) -> Vec<String> {
        match Kind::validate(&ConfigMaps, obj, old) {
            Ok(()) => vec![],
            Err(e) => e
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn config_map_keys_may_not_repeat_across_data_and_binary_data() {
        let cm = json!({"metadata": {"name": "c"}, "data": {"a": "1", "ok.key": "2"}, "binaryData": {"a": "aGk="}});
        assert_eq!(
            messages(&cm, None),
            ["binaryData[a]: Invalid value: \"a\": duplicate of key present in binaryData"]
        );
    }
}
