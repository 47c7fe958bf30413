//! core/v1 Secrets: write-only `stringData` folded into `data`, per-type required keys,
//! size and key rules, `immutable`, and the `kubectl get secrets` columns. Encryption at
//! rest is the storage layer's ([`crate::secrets`]).

use k8s_openapi::api::core::v1::Secret;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use super::data::{data_keys, immutable, MAX_DATA_BYTES};
use crate::defaults::set;
use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{col, Column, AGE, NAME};
use crate::validation::{quote, Errs};

pub struct Secrets;

impl Strategy for Secrets {
    type Object = Secret;
    type Protobuf = pb::Secret;
    const RESOURCE: Entry = Entry::DEFAULT;
    const FIELD_SELECTORS: &'static [&'static str] = &["type"];
    const COLUMNS: &'static [Column] = &[NAME, col("Type"), col("Data"), AGE];

    fn decode_body(&self, obj: &mut Value) {
        crate::secrets::fold_string_data(obj);
    }

    fn defaults(&self, obj: &mut Value) {
        set(obj, "type", json!("Opaque"));
    }

    fn validate(&self, new: Obj<'_, Secret>, old: Option<Obj<'_, Secret>>, errs: &mut Errs) {
        validate_secret(new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            crate::table::name(o),
            json!(o.get("type").and_then(Value::as_str).unwrap_or("Opaque")),
            super::configmap::count(o, &["data"]),
            crate::table::age(o),
        ]
    }
}

fn validate_secret(obj: &Value, old: Option<&Value>, errs: &mut Errs) {
    let total = data_keys(&[("data", &obj["data"])], true, errs)
        + obj["stringData"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(_, v)| v.as_str().map_or(0, str::len))
            .sum::<usize>();
    if total > MAX_DATA_BYTES {
        errs.too_long(
            "data",
            &format!("may not be more than {MAX_DATA_BYTES} bytes"),
        );
    }
    let ty = obj["type"].as_str().unwrap_or("Opaque");
    let has = |k: &str| obj["data"].get(k).is_some() || obj["stringData"].get(k).is_some();
    let required: &[&str] = match ty {
        "kubernetes.io/tls" => &["tls.crt", "tls.key"],
        "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
        "kubernetes.io/dockercfg" => &[".dockercfg"],
        "kubernetes.io/basic-auth" | "kubernetes.io/ssh-auth" => &[],
        _ => &[],
    };
    for k in required.iter().filter(|k| !has(k)) {
        errs.required(&format!("data[{k}]"), "");
    }
    if ty == "kubernetes.io/ssh-auth" && !has("ssh-privatekey") {
        errs.required("data[ssh-privatekey]", "");
    }
    if let Some(old) = old {
        let was = old["type"].as_str().unwrap_or("Opaque");
        if was != ty {
            errs.invalid("type", quote(ty), "field is immutable");
        }
    }
    immutable(obj, old, &["data"], errs);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn messages(kind: &dyn Kind, obj: &Value, old: Option<&Value>) -> Vec<String> {
        match kind.validate(obj, old) {
            Ok(()) => vec![],
            Err(e) => e
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn secret_keys_and_size() {
        let bad = json!({"metadata": {"name": "s"}, "data": {"bad key": "aGk="}});
        let m = messages(&Secrets, &bad, None);
        assert!(
            m[0].starts_with(
                "data[bad key]: Invalid value: \"bad key\": a valid config key must consist of"
            ),
            "{m:?}"
        );
        use base64::Engine;
        let big = base64::engine::general_purpose::STANDARD.encode(vec![0u8; 1024 * 1024 + 1]);
        let huge = json!({"metadata": {"name": "s"}, "data": {"blob": big}});
        assert_eq!(
            messages(&Secrets, &huge, None),
            ["data: Too long: may not be more than 1048576 bytes"]
        );
        let tls = json!({"metadata": {"name": "s"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "aGk="}});
        assert_eq!(
            messages(&Secrets, &tls, None),
            ["data[tls.key]: Required value"]
        );
    }

    #[test]
    fn immutable_secret_and_config_map() {
        let old = json!({"metadata": {"name": "s"}, "immutable": true, "data": {"a": "aGk="}});
        let mut new = old.clone();
        new["data"]["a"] = json!("aG8=");
        assert_eq!(
            messages(&Secrets, &new, Some(&old)),
            ["data: Forbidden: field is immutable when `immutable` is set"]
        );
        let mut relabel = old.clone();
        relabel["metadata"]["labels"] = json!({"x": "y"});
        assert!(messages(&Secrets, &relabel, Some(&old)).is_empty());
        let old_cm = json!({"metadata": {"name": "c"}, "immutable": true, "data": {"a": "1"}});
        let mut cm = old_cm.clone();
        cm["immutable"] = json!(false);
        assert_eq!(
            messages(&super::super::configmap::ConfigMaps, &cm, Some(&old_cm)),
            ["immutable: Forbidden: field is immutable when `immutable` is set"]
        );
    }

    #[test]
    fn secrets_default_to_opaque() {
        let mut s = json!({});
        Kind::defaults(&Secrets, &mut s);
        assert_eq!(s["type"], "Opaque");
        let mut tls = json!({"type": "kubernetes.io/tls"});
        Kind::defaults(&Secrets, &mut tls);
        assert_eq!(tls["type"], "kubernetes.io/tls");
    }
}
