//! Objects ⇄ store bytes: JSON encoding in the storage version, `resourceVersion` from the
//! store's revisions, encryption of Secrets at rest.
//!
//! Reads that only pass objects on as JSON (lists and gets answered as plain objects) go
//! through [`Storage::write_json`], which copies the stored JSON instead of building a
//! `serde_json::Value` tree per object and encoding it again: a pod's tree costs about ten
//! times its JSON in small allocations, so 10,000 listed pods meant ~200 MB of heap that the
//! allocator then kept.
//!
//! Knows nothing of HTTP; every handler reads and writes objects only through here.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use serde_json::value::RawValue;
use serde_json::{json, Value};
use skiff_store::{KeyValue, Store};

use crate::convert::{convert_to, storage_info};
use crate::error::ApiError;
use crate::object;
use crate::resources::ResourceInfo;
use crate::secrets::SecretCodec;

/// A page of objects read from the store.
pub struct Page {
    pub items: Vec<Value>,
    pub revision: i64,
}

/// The object layer over a [`Store`].
#[derive(Clone)]
pub struct Storage {
    pub store: Arc<dyn Store>,
    secrets: SecretCodec,
    /// The newest revision an object write through this layer made.
    written: Arc<AtomicI64>,
}

impl Storage {
    pub fn new(store: Arc<dyn Store>, secrets: SecretCodec) -> Self {
        Storage {
            store,
            secrets,
            written: Arc::default(),
        }
    }

    /// The newest revision of an object write this server made: a read at it sees every
    /// write this server answered before (read-your-writes without asking the store).
    pub fn written(&self) -> i64 {
        self.written.load(Ordering::Acquire)
    }

    fn wrote(&self, revision: i64) -> i64 {
        self.written.fetch_max(revision, Ordering::AcqRel);
        revision
    }

    /// Bytes to store for `obj` (converted to the storage version; `obj` has no
    /// resourceVersion). An object already in the storage version is encoded as it is.
    fn encode(&self, info: &ResourceInfo, obj: &Value) -> Result<Vec<u8>, ApiError> {
        let to = storage_info(info);
        let encoded = if obj.get("apiVersion").and_then(Value::as_str) == Some(&to.api_version())
            && obj.get("kind").and_then(Value::as_str) == Some(to.kind)
        {
            serde_json::to_vec(obj)
        } else {
            serde_json::to_vec(&convert_to(obj.clone(), to))
        };
        let bytes = encoded.map_err(|e| ApiError::internal(format!("encode object: {e}")))?;
        Ok(if crate::secrets::encrypted(info) {
            self.secrets.seal(&bytes)
        } else {
            bytes
        })
    }

    /// The plain JSON bytes of a stored value of `info` (encrypted resources decrypted): what
    /// the watch cache holds.
    pub(crate) fn open<'a>(
        &self,
        info: &ResourceInfo,
        value: &'a [u8],
    ) -> Result<Cow<'a, [u8]>, ApiError> {
        Ok(if crate::secrets::encrypted(info) {
            Cow::Owned(self.secrets.open(value)?)
        } else {
            Cow::Borrowed(value)
        })
    }

    /// The object held by `kv`, in `info`'s version, with its resourceVersion.
    pub fn decode(&self, info: &ResourceInfo, kv: &KeyValue) -> Result<Value, ApiError> {
        decode_plain(info, &kv.key, &self.open(info, &kv.value)?, kv.mod_revision)
    }

    /// Appends to `out` the JSON of what [`Storage::decode`] gives for `kv` (see
    /// [`write_json_plain`]).
    pub fn write_json(
        &self,
        info: &ResourceInfo,
        kv: &KeyValue,
        out: &mut Vec<u8>,
    ) -> Result<(), ApiError> {
        write_json_plain(
            info,
            &kv.key,
            &self.open(info, &kv.value)?,
            kv.mod_revision,
            out,
        )
    }

    /// Reads one object as stored (see [`Storage::write_json`]); None when absent.
    pub async fn get_stored(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        name: &str,
    ) -> Result<Option<KeyValue>, ApiError> {
        Ok(self.store.get(&info.key(ns, name)).await?)
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
    pub async fn create(&self, info: &ResourceInfo, mut obj: Value) -> Result<Value, ApiError> {
        object::meta_mut(&mut obj).remove("resourceVersion");
        let key = key_of(info, &obj);
        let rev = self
            .store
            .create(&key, self.encode(info, &obj)?)
            .await
            .map_err(|e| match e {
                skiff_store::StoreError::AlreadyExists(_) => {
                    already_exists(info, object::name(&obj))
                }
                e => e.into(),
            })?;
        Ok(with_rv(obj, self.wrote(rev)))
    }

    /// Replaces an object if it is still at `expected` revision.
    pub async fn update(
        &self,
        info: &ResourceInfo,
        mut obj: Value,
        expected: i64,
    ) -> Result<Value, ApiError> {
        object::meta_mut(&mut obj).remove("resourceVersion");
        let key = key_of(info, &obj);
        let rev = self
            .store
            .update(&key, self.encode(info, &obj)?, expected)
            .await
            .map_err(|e| map_conflict(e, info, object::name(&obj)))?;
        Ok(with_rv(obj, self.wrote(rev)))
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
        Ok(with_rv(obj.clone(), self.wrote(rev)))
    }

    /// One page of a resource's objects as stored, not decoded (see [`Storage::write_json`]).
    pub async fn list_stored(
        &self,
        info: &ResourceInfo,
        ns: Option<&str>,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<skiff_store::ListResult, ApiError> {
        Ok(self
            .store
            .list(&info.namespace_prefix(ns), start_after, limit, revision)
            .await?)
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
            .list_stored(info, ns, start_after, limit, revision)
            .await?;
        let items = r
            .items
            .iter()
            .map(|kv| self.decode(info, kv))
            .collect::<Result<_, _>>()?;
        Ok(Page {
            items,
            revision: r.revision,
        })
    }
}

/// The object whose plain stored JSON is `plain` (key `key`, last written at `revision`), in
/// `info`'s version, with its resourceVersion.
pub(crate) fn decode_plain(
    info: &ResourceInfo,
    key: &str,
    plain: &[u8],
    revision: i64,
) -> Result<Value, ApiError> {
    let obj: Value = serde_json::from_slice(plain).map_err(|e| corrupt(key, e))?;
    let mut obj = convert_to(obj, info);
    object::meta_mut(&mut obj).insert("resourceVersion".into(), json!(revision.to_string()));
    Ok(obj)
}

/// Appends to `out` the JSON of what [`decode_plain`] gives, the same object with the same
/// keys in the same order, but without building its `Value` tree when `info` is the storage
/// version: only the top level and `metadata` are split (into borrowed raw JSON) to set
/// `apiVersion`, `kind` and `resourceVersion`.
pub(crate) fn write_json_plain(
    info: &ResourceInfo,
    key: &str,
    plain: &[u8],
    revision: i64,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    if storage_info(info).api_version() != info.api_version() {
        let obj = decode_plain(info, key, plain, revision)?;
        return serde_json::to_writer(out, &obj).map_err(|e| corrupt(key, e));
    }
    let top: BTreeMap<Cow<'_, str>, &RawValue> =
        serde_json::from_slice(plain).map_err(|e| corrupt(key, e))?;
    let mut meta: BTreeMap<Cow<'_, str>, &RawValue> = match top.get("metadata") {
        Some(m) if m.get().starts_with('{') => {
            serde_json::from_str(m.get()).map_err(|e| corrupt(key, e))?
        }
        _ => BTreeMap::new(),
    };
    let raw = |v: String| RawValue::from_string(v).map_err(|e| corrupt(key, e));
    let rv = raw(format!("\"{revision}\""))?;
    meta.insert(Cow::Borrowed("resourceVersion"), &rv);
    let meta = raw(serde_json::to_string(&meta).map_err(|e| corrupt(key, e))?)?;
    let api_version = raw(json!(info.api_version()).to_string())?;
    let kind = raw(json!(info.kind).to_string())?;
    let mut top = top;
    top.insert(Cow::Borrowed("apiVersion"), &api_version);
    top.insert(Cow::Borrowed("kind"), &kind);
    top.insert(Cow::Borrowed("metadata"), &meta);
    serde_json::to_writer(out, &top).map_err(|e| corrupt(key, e))
}

/// Appends to `out` the `meta.k8s.io/v1 PartialObjectMetadata` of the stored JSON `plain`
/// with resourceVersion `revision`: what `partial_metadata(decode_plain(..))` gives, without
/// building the object's `Value` tree (the rest of the object is skipped, only `metadata` is
/// split into borrowed raw JSON). Metadata is the same in every version of a kind, so no
/// conversion is needed.
pub(crate) fn write_partial_metadata_plain(
    key: &str,
    plain: &[u8],
    revision: i64,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    #[derive(serde::Deserialize)]
    struct Top<'a> {
        #[serde(borrow, default)]
        metadata: Option<&'a RawValue>,
    }
    let top: Top<'_> = serde_json::from_slice(plain).map_err(|e| corrupt(key, e))?;
    let mut meta: BTreeMap<Cow<'_, str>, &RawValue> = match top.metadata {
        Some(m) if m.get().starts_with('{') => {
            serde_json::from_str(m.get()).map_err(|e| corrupt(key, e))?
        }
        _ => BTreeMap::new(),
    };
    let rv = RawValue::from_string(format!("\"{revision}\"")).map_err(|e| corrupt(key, e))?;
    meta.insert(Cow::Borrowed("resourceVersion"), &rv);
    out.extend_from_slice(
        br#"{"apiVersion":"meta.k8s.io/v1","kind":"PartialObjectMetadata","metadata":"#,
    );
    serde_json::to_writer(&mut *out, &meta).map_err(|e| corrupt(key, e))?;
    out.push(b'}');
    Ok(())
}

fn corrupt(key: &str, e: serde_json::Error) -> ApiError {
    ApiError::internal(format!("stored object {key} is corrupt: {e}"))
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
