//! Layer unpacking: applies one layer tarball (plain or gzip) to a new snapshot directory
//! through the one confined extractor ([`crate::confined::extract`] with
//! [`Policy::Layer`]), which refuses every entry that would land outside the snapshot and
//! translates OCI whiteouts into overlayfs ones. On error `dest` may hold a partial tree:
//! callers unpack into a temporary directory and drop it on failure.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crate::confined::{self, Policy};
use crate::error::{ImageError, IoContext, Result};

/// Wraps `reader` in a gzip decoder when it starts with the gzip magic.
pub(crate) fn decompress<'a>(reader: impl Read + 'a) -> Result<Box<dyn Read + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered.fill_buf().ctx(|| "read layer".to_string())?;
    if head.starts_with(&[0x1f, 0x8b]) {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(buffered)))
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Err(ImageError::invalid(
            "zstd-compressed layers are not supported",
        ))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Unpacks one layer (plain or gzip tar) into the existing directory `dest`; returns the
/// number of bytes of regular-file content written.
pub fn unpack_layer(layer: impl Read, dest: &Path) -> Result<u64> {
    let root = confined::open_root(dest)?;
    confined::extract(decompress(layer)?, &root, Path::new("/"), Policy::Layer)
}
