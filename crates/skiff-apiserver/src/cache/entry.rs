//! One cached object and one cached change: the plain stored JSON (packed against its
//! resource's dictionary, [`super::pack`]), kept once and shared by the object map and the
//! event ring, plus the few fields selectors look at.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use serde_json::Value;
use skiff_store::KeyValue;

use crate::convert::storage_info;
use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::storage::{decode_plain, write_json_plain, write_partial_metadata_plain, Storage};

use super::pack::{Body, Dictionary};
use super::pruned::pruned;

/// Objects shorter than this do not make a resource's dictionary.
const DICTIONARY_MIN: usize = 256;

/// An object as the watch cache holds it.
#[derive(Debug)]
pub(crate) struct Entry {
    pub key: Box<str>,
    /// The object's JSON in the storage version, decrypted, with its resourceVersion: exactly
    /// what the API returns for the storage version (a list copies it), never ciphertext.
    /// Empty when `broken`.
    value: Body,
    pub mod_revision: i64,
    /// What selectors read, as one string in pieces (two allocations per object, not two
    /// per label and one per field: with 10,000 pods those were ~2 MB of small strings):
    /// `metadata.labels` sorted by key as pieces `key, value, …`, then the value of each of
    /// the cache's field-selector fields in its order.
    selectable: Box<str>,
    /// Where each piece of `selectable` ends.
    ends: Box<[u32]>,
    /// How many labels `selectable` starts with.
    labels: u32,
    /// Why the stored value cannot be read (readers get this error, as from the store).
    broken: Option<Box<str>>,
}

impl Entry {
    /// The entry for `kv`, with the values of `fields` (field-selector paths) extracted, its
    /// JSON packed with the resource's dictionary `dict` (the first object long enough to
    /// be one becomes it).
    pub fn new(
        storage: &Storage,
        info: &ResourceInfo,
        fields: &[&str],
        kv: &KeyValue,
        dict: &OnceLock<Option<Arc<Dictionary>>>,
    ) -> Entry {
        let parsed = storage.open(info, &kv.value).and_then(|plain| {
            // Only what `selectable` takes is parsed (see `super::pruned`).
            let mut paths: Vec<&str> = fields
                .iter()
                .map(|f| crate::selector::value_path(f))
                .collect();
            paths.push("metadata.labels");
            let obj: Value = pruned(&plain, &paths).map_err(|e| {
                ApiError::internal(format!("stored object {} is corrupt: {e}", kv.key))
            })?;
            let mut served = Vec::with_capacity(plain.len() + 64);
            write_json_plain(
                storage_info(info),
                &kv.key,
                &plain,
                kv.mod_revision,
                &mut served,
            )?;
            Ok((served, obj))
        });
        let (value, obj) = match parsed {
            Ok(v) => v,
            Err(e) => {
                return Entry {
                    key: kv.key.as_str().into(),
                    value: Body::Plain(Box::default()),
                    mod_revision: kv.mod_revision,
                    selectable: Box::default(),
                    ends: Box::default(),
                    labels: 0,
                    broken: Some(e.message.into()),
                }
            }
        };
        let label_map = crate::object::labels(&obj);
        let mut labels: Vec<(&str, &str)> = label_map
            .iter()
            .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?)))
            .collect();
        labels.sort();
        let field_values: Vec<String> = fields
            .iter()
            .map(|f| crate::selector::field_value(&obj, f))
            .collect();
        let mut selectable = String::new();
        let mut ends = Vec::with_capacity(labels.len() * 2 + field_values.len());
        let pieces = labels
            .iter()
            .flat_map(|(k, v)| [*k, *v])
            .chain(field_values.iter().map(String::as_str));
        for piece in pieces {
            selectable.push_str(piece);
            // A stored object is at most a few MiB (the API's request limit).
            ends.push(selectable.len() as u32);
        }
        let dict = match dict.get() {
            Some(d) => d.as_ref(),
            None if value.len() >= DICTIONARY_MIN => {
                dict.get_or_init(|| Dictionary::new(&value)).as_ref()
            }
            None => None,
        };
        Entry {
            key: kv.key.as_str().into(),
            value: Body::new(value, dict),
            mod_revision: kv.mod_revision,
            selectable: selectable.into(),
            ends: ends.into(),
            labels: labels.len() as u32,
            broken: None,
        }
    }

    /// Calls `f` with the object's JSON.
    fn with<R>(&self, f: impl FnOnce(&[u8]) -> Result<R, ApiError>) -> Result<R, ApiError> {
        if let Some(why) = &self.broken {
            return Err(ApiError::internal(why.to_string()));
        }
        self.value.with(f).map_err(ApiError::internal)?
    }

    /// Bytes of the object's JSON.
    pub fn len(&self) -> usize {
        self.value.len()
    }

    /// Piece `i` of `selectable`.
    fn piece(&self, i: usize) -> Option<&str> {
        let end = *self.ends.get(i)? as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        self.selectable.get(start..end)
    }

    /// The value of label `key`.
    pub fn label(&self, key: &str) -> Option<&str> {
        let (mut lo, mut hi) = (0, self.labels as usize);
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.piece(2 * mid)?.cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return self.piece(2 * mid + 1),
            }
        }
        None
    }

    /// The value of field-selector field number `i` of the cache.
    pub fn field(&self, i: usize) -> Option<&str> {
        self.piece(2 * self.labels as usize + i)
    }

    /// The object in `info`'s version with resourceVersion `revision`.
    pub fn decode_at(&self, info: &ResourceInfo, revision: i64) -> Result<Value, ApiError> {
        self.with(|v| decode_plain(info, &self.key, v, revision))
    }

    /// The object in `info`'s version, as the store would give it.
    pub fn decode(&self, info: &ResourceInfo) -> Result<Value, ApiError> {
        self.decode_at(info, self.mod_revision)
    }

    /// Appends the JSON of [`Entry::decode`] to `out`: a copy in the storage version, without
    /// building its `Value` tree.
    pub fn write_json(&self, info: &ResourceInfo, out: &mut Vec<u8>) -> Result<(), ApiError> {
        self.with(|value| {
            if storage_info(info).api_version() == info.api_version() {
                out.extend_from_slice(value);
                return Ok(());
            }
            write_json_plain(info, &self.key, value, self.mod_revision, out)
        })
    }

    /// [`Entry::write_json`] with resourceVersion `revision` (a deletion's revision).
    pub fn write_json_at(
        &self,
        info: &ResourceInfo,
        revision: i64,
        out: &mut Vec<u8>,
    ) -> Result<(), ApiError> {
        if revision == self.mod_revision {
            return self.write_json(info, out);
        }
        self.with(|v| write_json_plain(info, &self.key, v, revision, out))
    }

    /// Appends the object's `PartialObjectMetadata` with resourceVersion `revision` (a
    /// deletion's revision, or its own) to `out`, without decoding the whole object.
    pub fn write_partial_metadata(&self, revision: i64, out: &mut Vec<u8>) -> Result<(), ApiError> {
        self.with(|v| write_partial_metadata_plain(&self.key, v, revision, out))
    }

    /// Bytes this entry holds on the heap (for tests of the memory layout).
    #[cfg(test)]
    pub fn heap_bytes(&self) -> usize {
        self.key.len() + self.value.held() + self.selectable.len() + self.ends.len() * 4
    }
}

/// One change of a cached resource, in revision order.
#[derive(Debug)]
pub(crate) struct CacheEvent {
    pub revision: i64,
    /// For a deletion: the last state of the object (its resourceVersion is the deletion's
    /// revision when sent). Otherwise the new state.
    pub object: Arc<Entry>,
    /// The state before a create/update (None for a create and for a deletion).
    pub prev: Option<Arc<Entry>>,
    pub deleted: bool,
    /// The object's `PartialObjectMetadata` JSON, written by the first metadata-only watch
    /// that sends this change and copied by the others, until the change is no longer among
    /// the newest few of its resource ([`CacheEvent::age`]).
    metadata: Mutex<Metadata>,
}

/// The `PartialObjectMetadata` JSON a change keeps for metadata-only watches.
#[derive(Debug)]
enum Metadata {
    /// Not written yet.
    Unmade,
    /// Written (or failed) once for every watch that sends the change.
    Made(Result<bytes::Bytes, Box<str>>),
    /// The change has aged: watches that still send it (resuming from an older
    /// resourceVersion, or far behind) write it each for themselves.
    Aged,
}

impl CacheEvent {
    pub fn new(revision: i64, object: Arc<Entry>, prev: Option<Arc<Entry>>, deleted: bool) -> Self {
        CacheEvent {
            revision,
            object,
            prev,
            deleted,
            metadata: Mutex::new(Metadata::Unmade),
        }
    }

    /// The `PartialObjectMetadata` JSON of the object as this change sends it (at this
    /// change's revision), made once for every watch of it while the change is recent.
    pub fn partial_metadata(&self) -> Result<bytes::Bytes, ApiError> {
        let mut held = self.metadata.lock().unwrap_or_else(PoisonError::into_inner);
        let made = match &*held {
            Metadata::Made(made) => made.clone(),
            Metadata::Unmade => {
                let made = self.write_partial_metadata();
                *held = Metadata::Made(made.clone());
                made
            }
            Metadata::Aged => {
                drop(held);
                self.write_partial_metadata()
            }
        };
        made.map_err(|why| ApiError::internal(why.to_string()))
    }

    fn write_partial_metadata(&self) -> Result<bytes::Bytes, Box<str>> {
        let mut out = Vec::with_capacity(self.object.len() / 2);
        self.object
            .write_partial_metadata(self.revision, &mut out)
            .map(|()| bytes::Bytes::from(out))
            .map_err(|e| e.message.into())
    }

    /// Drops the metadata JSON this change holds: from now on each watch that sends it
    /// writes its own. The ring calls it on changes no longer among the newest few, which
    /// the watches that keep up have sent already.
    pub fn age(&self) {
        *self.metadata.lock().unwrap_or_else(PoisonError::into_inner) = Metadata::Aged;
    }

    /// Whether this change holds its metadata JSON (tests of the memory layout).
    #[cfg(test)]
    pub fn holds_metadata(&self) -> bool {
        matches!(
            *self.metadata.lock().unwrap_or_else(PoisonError::into_inner),
            Metadata::Made(_)
        )
    }
}
