//! Objects ⇄ store bytes: JSON encoding in the storage version, `resourceVersion` from the
//! store's revisions, encryption of Secrets at rest.
//!
//! Knows nothing of HTTP; every handler reads and writes objects only through here.

use std::sync::Arc;

use serde_json::{json, Value};
use skiff_store::{KeyValue, Store};

use crate::convert::{convert, storage_info};
use crate::error::ApiError;
use crate::object;
use crate::resources::ResourceInfo;
use crate::secrets::SecretCodec;

/// A page of objects read from the store.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
    pub more: bool,
}

/// The object layer over a [`Store`].
#[derive(Clone)]
pub struct Storage {
    pub store: Arc<dyn Store>,
    secrets: SecretCodec,
}

impl Storage {
    pub fn new(store: Arc<dyn Store>, secrets: SecretCodec) -> Self {
        Storage { store, secrets }
    }

    /// Bytes to store for `obj` (converted to the storage version, without resourceVersion).
    fn encode(&self, info: &ResourceInfo, obj: &Value) -> Result<Vec<u8>, ApiError> {
        let mut stored = convert(obj.clone(), storage_info(info));
        object::meta_mut(&mut stored).remove("resourceVersion");
        let bytes = serde_json::to_vec(&stored)
            .map_err(|e| ApiError::internal(format!("encode object: {e}")))?;
        Ok(if info.kind == "Secret" {
            self.secrets.seal(&bytes)
        } else {
            bytes
        })
    }

    /// The object held by `kv`, in `info`'s version, with its resourceVersion.
    pub fn decode(&self, info: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
        let bytes = if info.kind == "Secret" {
            self.secrets.open(&kv.value)?
        } else {
            kv.value.clone()
        };
        let obj: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key)))?;
        let mut obj = convert(obj, info);
        object::meta_mut(&mut obj)
            .insert("resourceVersion".into(), json!(kv.mod_revision.to_string()));
        Ok(obj)
    }

    /// Reads one object; None when absent.
    pub async fn get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self.store.get(&info.key(ns, name)).await? {
            Some(kv) => Ok(Some(self.decode(info, &kv)?)),
            None => Ok(None),
        }
    }

    /// Reads one object; 404 when absent.
    pub async fn must_get(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        self.get(info, ns, name)
            .await?
            .ok_or_else(|| ApiError::not_found(info.group, info.plural, name))
    }

    /// Stores a new object; returns it with its resourceVersion.
    pub async fn create(&self, info: &ResourceInfo, obj: &Value) -> Result<Value, ApiError> {
        let key = key_of(info, obj);
        let rev = self
            .store
            .create(&key, self.encode(info, obj)?)
            .await
            .map_err(|e| match e {
                skiff_store::StoreError::AlreadyExists(_) => {
                    already_exists(info, object::name(obj))
                }
                e => e.into(),
            })?;
        Ok(with_rv(obj.clone(), rev))
    }

    /// Replaces an object if it is still at `expected` revision.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        expected: i64,
    ) -> Result<Value, ApiError> {
        let key = key_of(info, obj);
        let rev = self
            .store
            .update(&key, self.encode(info, obj)?, expected)
            .await
            .map_err(|e| map_conflict(e, info, object::name(obj)))?;
        Ok(with_rv(obj.clone(), rev))
    }

    /// Deletes an object if it is still at `expected` revision; returns its last state.
    pub async fn delete(
        &self,
        info: &ResourceInfo,
        obj: &Value,
        expected: i64,
    ) -> Result<Value, ApiError> {
        let key = key_of(info, obj);
        let (_, rev) = self
            .store
            .delete(&key, Some(expected))
            .await
            .map_err(|e| map_conflict(e, info, object::name(obj)))?;
        Ok(with_rv(obj.clone(), rev))
    }

    /// One page of a resource's objects (in one namespace or all), at `revision` (None = now).
    pub async fn list(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<Page, ApiError> {
        let r = self
            .store
            .list(&info.namespace_prefix(ns), start_after, limit, revision)
            .await?;
        let items = r
            .items
            .iter()
            .map(|kv| self.decode(info, kv))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            revision: r.revision,
            more: r.more,
        })
    }
}

fn with_rv(mut obj: Value, rev: i64) -> Value {
    object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(rev.to_string()));
    obj
}

fn qualified(info: &ResourceInfo) -> String {
    if info.group.is_empty() {
        info.plural.to_string()
    } else {
        format!("{}.{}", info.plural, info.group)
    }
}

/// 409 AlreadyExists, worded as Kubernetes does.
pub fn already_exists(info: &ResourceInfo, name: &str) -> ApiError {
    let message = format!("{} \"{name}\" already exists", qualified(info));
    ApiError::new(409, "AlreadyExists", message).about(info.group, info.plural, name)
}

/// 409 Conflict for a stale resourceVersion, worded as Kubernetes does.
pub fn conflict(info: &ResourceInfo, name: &str) -> ApiError {
    let message = format!(
        "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your \
         changes to the latest version and try again",
        qualified(info)
    );
    ApiError::new(409, "Conflict", message).about(info.group, info.plural, name)
}

/// The store key of an object of `info`.
fn key_of(info: &ResourceInfo, obj: &Value) -> String {
    info.key(Some(object::namespace(obj)), object::name(obj))
}

fn map_conflict(e: skiff_store::StoreError, info: &ResourceInfo, name: &str) -> ApiError {
    match e {
        skiff_store::StoreError::Conflict { .. } => conflict(info, name),
        skiff_store::StoreError::NotFound(_) => ApiError::not_found(info.group, info.plural, name),
        e => e.into(),
    }
}
