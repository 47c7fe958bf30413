//! Encryption at rest of Secrets: seals the bytes [`crate::storage`] writes for a Secret and
//! opens them on read, and folds write-only `stringData` into `data` before anything is stored.
//!
//! Only the application of the cipher lives here; keys and the cipher itself are
//! [`crate::encryption`]'s.

use std::sync::Arc;

use base64::Engine;
use serde_json::{Map, Value};

use crate::encryption::Encryptor;
use crate::error::ApiError;
use crate::resources::ResourceInfo;

/// The resources encrypted at rest, by storage group and plural (the `resources` of
/// Kubernetes' `EncryptionConfiguration`).
const ENCRYPTED: &[(&str, &str)] = &[("", "secrets")];

/// Whether objects of `info` are stored encrypted.
pub fn encrypted(info: &ResourceInfo) -> bool {
    ENCRYPTED.contains(&(info.storage_group, info.plural))
}

/// Seals and opens Secret bytes with the cluster key.
#[derive(Clone, Debug)]
pub struct SecretCodec(Arc<Encryptor>);

impl SecretCodec {
    pub fn new(encryptor: Arc<Encryptor>) -> Self {
        SecretCodec(encryptor)
    }

    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.0.encrypt(plain)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, ApiError> {
        self.0.decrypt(sealed)
    }
}

/// Moves a Secret's `stringData` into `data` (base64), as Kubernetes does on write.
pub fn fold_string_data(secret: &mut Value) {
    let Some(string_data) = secret.as_object_mut().and_then(|m| m.remove("stringData")) else {
        return;
    };
    let Value::Object(entries) = string_data else {
        return;
    };
    if !secret.get("data").is_some_and(Value::is_object) {
        secret["data"] = Value::Object(Map::new());
    }
    let data = secret["data"]
        .as_object_mut()
        .expect("data was just made an object");
    for (k, v) in entries {
        let text = v.as_str().unwrap_or_default();
        data.insert(
            k,
            Value::String(base64::engine::general_purpose::STANDARD.encode(text)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_data_overrides_data() {
        let mut s =
            serde_json::json!({"data": {"a": "eA==", "b": "eQ=="}, "stringData": {"a": "hunter2"}});
        fold_string_data(&mut s);
        assert_eq!(s["data"]["a"], "aHVudGVyMg==");
        assert_eq!(s["data"]["b"], "eQ==");
        assert!(s.get("stringData").is_none());
    }
}
