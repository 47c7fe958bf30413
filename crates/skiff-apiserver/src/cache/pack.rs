//! Cached JSON kept zstd-compressed against a dictionary of its resource: the first object
//! the cache of a resource holds, taken as zstd's raw-content dictionary. Objects of one
//! resource repeat each other's keys and most values (a pod's defaulted spec, its token
//! volume, tolerations, managedFields), so a pod of ~2 KB packs into ~200 bytes; with
//! 10,000 pods the cache held ~25 MB of JSON. Unpacking costs ~1 µs per object (a list of
//! 500 pods: well under a millisecond). ADR 0040.

use std::cell::RefCell;
use std::sync::Arc;

use zstd_safe::{CCtx, CDict, DCtx, DDict};

/// zstd's fastest level: writes pay for packing, and the dictionary does most of the work.
const LEVEL: i32 = 1;

/// Objects shorter than this are kept as they are (a frame has ~10 bytes of overhead).
const MIN_PACKED: usize = 64;

/// The dictionary of one resource, prepared for both directions.
pub(crate) struct Dictionary {
    compress: CDict<'static>,
    decompress: DDict<'static>,
}

impl std::fmt::Debug for Dictionary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dictionary")
    }
}

thread_local! {
    static CCTX: RefCell<CCtx<'static>> = RefCell::new(CCtx::create());
    static DCTX: RefCell<DCtx<'static>> = RefCell::new(DCtx::create());
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// An object's JSON as the cache keeps it.
#[derive(Debug)]
pub(crate) enum Body {
    /// As it is (short, or no dictionary yet).
    Plain(Box<[u8]>),
    /// A zstd frame made with `dict`, of `len` bytes of JSON.
    Packed {
        frame: Box<[u8]>,
        len: u32,
        dict: Arc<Dictionary>,
    },
}

impl Dictionary {
    /// A dictionary whose content is `sample` (an object of the resource); None if zstd
    /// refuses it.
    pub fn new(sample: &[u8]) -> Option<Arc<Dictionary>> {
        Some(Arc::new(Dictionary {
            compress: CDict::try_create(sample, LEVEL)?,
            decompress: DDict::try_create(sample)?,
        }))
    }
}

impl Body {
    /// `plain`, packed with `dict` when that makes it smaller.
    pub fn new(plain: Vec<u8>, dict: Option<&Arc<Dictionary>>) -> Body {
        let (Some(dict), Ok(len)) = (dict, u32::try_from(plain.len())) else {
            return Body::Plain(plain.into());
        };
        if plain.len() < MIN_PACKED {
            return Body::Plain(plain.into());
        }
        let packed = CCTX.with(|c| {
            let mut frame = Vec::with_capacity(zstd_safe::compress_bound(plain.len()));
            c.borrow_mut()
                .compress_using_cdict(&mut frame, &plain, &dict.compress)
                .ok()
                .map(|_| frame)
        });
        match packed {
            Some(frame) if frame.len() < plain.len() => Body::Packed {
                frame: frame.into(),
                len,
                dict: dict.clone(),
            },
            _ => Body::Plain(plain.into()),
        }
    }

    /// Bytes of the JSON.
    pub fn len(&self) -> usize {
        match self {
            Body::Plain(b) => b.len(),
            Body::Packed { len, .. } => *len as usize,
        }
    }

    /// Bytes held on the heap.
    #[cfg(test)]
    pub fn held(&self) -> usize {
        match self {
            Body::Plain(b) => b.len(),
            Body::Packed { frame, .. } => frame.len(),
        }
    }

    /// Calls `f` with the JSON; Err if a frame does not unpack (it was made here, so only
    /// if memory is corrupt).
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> Result<R, String> {
        match self {
            Body::Plain(b) => Ok(f(b)),
            Body::Packed { frame, len, dict } => SCRATCH.with(|s| {
                // A reentrant call (f unpacking another body) gets a buffer of its own.
                let mut own = Vec::new();
                let mut guard = s.try_borrow_mut();
                let buf = match &mut guard {
                    Ok(b) => &mut **b,
                    Err(_) => &mut own,
                };
                buf.clear();
                buf.reserve(*len as usize);
                DCTX.with(|d| {
                    d.borrow_mut()
                        .decompress_using_ddict(buf, frame, &dict.decompress)
                })
                .map_err(|code| {
                    format!(
                        "cached object does not unpack: {}",
                        zstd_safe::get_error_name(code)
                    )
                })?;
                let out = f(buf);
                // Keep the scratch buffer from growing for good after one large object.
                if buf.capacity() > 1 << 20 {
                    *buf = Vec::new();
                }
                Ok(out)
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}"),
                "labels": {"app": "bench"}},
            "spec": {"containers": [{"name": "main", "image": "busybox",
                "terminationMessagePath": "/dev/termination-log"}],
                "dnsPolicy": "ClusterFirst", "restartPolicy": "Always",
                "schedulerName": "default-scheduler"},
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }))
        .unwrap()
    }

    #[test]
    fn objects_of_a_resource_pack_small_against_its_first_and_unpack_exactly() {
        let dict = Dictionary::new(&pod("first")).unwrap();
        let plain = pod("second-pod");
        let body = Body::new(plain.clone(), Some(&dict));
        assert!(matches!(body, Body::Packed { .. }));
        assert_eq!(body.len(), plain.len());
        assert!(
            body.held() * 3 < plain.len(),
            "{} bytes packed from {}",
            body.held(),
            plain.len()
        );
        assert_eq!(body.with(|b| b.to_vec()).unwrap(), plain);
    }

    #[test]
    fn short_or_dictionary_less_objects_stay_plain() {
        let dict = Dictionary::new(&pod("first")).unwrap();
        assert!(matches!(
            Body::new(b"{}".to_vec(), Some(&dict)),
            Body::Plain(_)
        ));
        let plain = pod("p");
        let body = Body::new(plain.clone(), None);
        assert!(matches!(body, Body::Plain(_)));
        assert_eq!(body.with(|b| b.to_vec()).unwrap(), plain);
    }

    #[test]
    fn unpacking_inside_an_unpack_gets_its_own_buffer() {
        let dict = Dictionary::new(&pod("first")).unwrap();
        let (a, b) = (pod("a-pod"), pod("b-pod"));
        let (pa, pb) = (
            Body::new(a.clone(), Some(&dict)),
            Body::new(b.clone(), Some(&dict)),
        );
        let both = pa
            .with(|x| pb.with(|y| (x.to_vec(), y.to_vec())).unwrap())
            .unwrap();
        assert_eq!(both, (a, b));
    }
}
