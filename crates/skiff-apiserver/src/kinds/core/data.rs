//! Rules Secrets and ConfigMaps share: data key syntax, the 1 MiB size limit and
//! `immutable: true`.

use std::collections::HashSet;

use base64::Engine;
use serde_json::Value;

use crate::validation::{names, quote, Errs};

/// Kubernetes' `MaxSecretSize`, also the ConfigMap limit.
pub const MAX_DATA_BYTES: usize = 1024 * 1024;

/// Data key syntax and the total size limit shared by Secrets and ConfigMaps.
pub fn data_keys(maps: &[(&str, &Value)], decode_base64: bool, errs: &mut Errs) -> usize {
    let mut total = 0;
    let mut seen = HashSet::new();
    for (field, map) in maps {
        for (k, v) in map.as_object().into_iter().flatten() {
            let f = format!("{field}[{k}]");
            for m in names::config_key(k) {
                errs.invalid(&f, quote(k), &m);
            }
            if !seen.insert(k.as_str()) {
                errs.invalid(&f, quote(k), "duplicate of key present in binaryData");
            }
            let s = v.as_str().unwrap_or("");
            total += if decode_base64 || *field == "binaryData" {
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_or(s.len(), |b| b.len())
            } else {
                s.len()
            };
        }
    }
    total
}

/// `immutable: true` freezes data (and the flag itself) once stored.
pub fn immutable(obj: &Value, old: Option<&Value>, fields: &[&str], errs: &mut Errs) {
    let Some(old) = old.filter(|o| o["immutable"] == true) else {
        return;
    };
    const MSG: &str = "field is immutable when `immutable` is set";
    for f in fields {
        if obj[*f] != old[*f] {
            errs.forbidden(f, MSG);
        }
    }
    if obj["immutable"] != true {
        errs.forbidden("immutable", MSG);
    }
}
