//! Media types the client accepts and how layers are compressed.

use std::io::{BufRead, BufReader, Read};

use oci_spec::image::Descriptor;

use super::error::{RegistryError, Result};

pub(crate) const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub(crate) const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// The `Accept` list for manifests: Docker schema 2 and OCI, images and indexes.
pub(crate) const MANIFEST_TYPES: &[&str] = &[DOCKER_MANIFEST, DOCKER_LIST, OCI_MANIFEST, OCI_INDEX];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ManifestKind {
    Manifest,
    Index,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sniff {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde::de::IgnoredAny>,
    layers: Option<serde::de::IgnoredAny>,
}

/// Whether a manifest body is an image manifest or an index (by `mediaType`, or by its
/// fields when the optional `mediaType` is absent, as OCI allows).
pub(crate) fn manifest_kind(body: &[u8]) -> Result<ManifestKind> {
    let sniff: Sniff = serde_json::from_slice(body)
        .map_err(|e| RegistryError::BadContent(format!("invalid manifest: {e}")))?;
    if sniff.schema_version != Some(2) {
        return Err(RegistryError::BadContent(format!(
            "unsupported manifest schema version {:?} (schema 1 images are not supported)",
            sniff.schema_version
        )));
    }
    match sniff.media_type.as_deref() {
        Some(DOCKER_MANIFEST | OCI_MANIFEST) => Ok(ManifestKind::Manifest),
        Some(DOCKER_LIST | OCI_INDEX) => Ok(ManifestKind::Index),
        Some(other) => Err(RegistryError::BadContent(format!(
            "unsupported manifest media type {other}"
        ))),
        None if sniff.manifests.is_some() => Ok(ManifestKind::Index),
        None if sniff.layers.is_some() => Ok(ManifestKind::Manifest),
        None => Err(RegistryError::BadContent(
            "manifest has neither layers nor manifests".into(),
        )),
    }
}

/// The `Content-Type` to push a stored manifest with.
pub(crate) fn manifest_content_type(body: &[u8]) -> String {
    serde_json::from_slice::<Sniff>(body)
        .ok()
        .and_then(|s| s.media_type)
        .unwrap_or_else(|| OCI_MANIFEST.to_string())
}

/// Refuses manifests whose config is not an image config (Helm charts, WASM artifacts…).
pub(crate) fn check_config_type(desc: &Descriptor) -> Result<()> {
    match desc.media_type().to_string().as_str() {
        "application/vnd.docker.container.image.v1+json"
        | "application/vnd.oci.image.config.v1+json" => Ok(()),
        other => Err(RegistryError::BadContent(format!(
            "{other} is not a container image config; this is not a container image"
        ))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
    Zstd,
}

/// How a layer is compressed, from its media type; other media types are refused.
pub(crate) fn layer_compression(desc: &Descriptor) -> Result<Compression> {
    let media_type = desc.media_type().to_string();
    let base = media_type
        .strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
        .or_else(|| media_type.strip_prefix("application/vnd.oci.image.layer.v1."));
    match (media_type.as_str(), base) {
        (_, Some("tar")) | ("application/vnd.docker.image.rootfs.diff.tar", _) => {
            Ok(Compression::None)
        }
        (_, Some("tar+gzip"))
        | (
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            _,
        ) => Ok(Compression::Gzip),
        (_, Some("tar+zstd")) => Ok(Compression::Zstd),
        _ => Err(RegistryError::BadContent(format!(
            "unsupported layer media type {media_type}"
        ))),
    }
}

/// The uncompressed tar stream of a layer. Gzip is also recognised by its magic bytes, as
/// registries mislabel layers (Docker itself sniffs).
pub(crate) fn decompress<'a>(
    reader: impl Read + Send + 'a,
    compression: Compression,
) -> Result<Box<dyn Read + Send + 'a>> {
    let mut buffered = BufReader::with_capacity(64 * 1024, reader);
    let head = buffered
        .fill_buf()
        .map_err(|e| RegistryError::BadContent(format!("cannot read layer: {e}")))?;
    let sniffed = if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Compression::Zstd
    } else {
        compression
    };
    Ok(match sniffed {
        Compression::None => Box::new(buffered),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(buffered)),
        Compression::Zstd => Box::new(
            ruzstd::decoding::StreamingDecoder::new(buffered)
                .map_err(|e| RegistryError::BadContent(format!("invalid zstd layer: {e}")))?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    fn desc(media_type: &str) -> Descriptor {
        Descriptor::new(
            MediaType::from(media_type),
            1,
            format!("sha256:{}", "a".repeat(64))
                .parse::<oci_spec::image::Digest>()
                .unwrap(),
        )
    }

    #[test]
    fn layer_media_types() {
        for (t, c) in [
            (
                "application/vnd.docker.image.rootfs.diff.tar.gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+gzip",
                Compression::Gzip,
            ),
            (
                "application/vnd.oci.image.layer.v1.tar+zstd",
                Compression::Zstd,
            ),
            ("application/vnd.oci.image.layer.v1.tar", Compression::None),
            (
                "application/vnd.docker.image.rootfs.diff.tar",
                Compression::None,
            ),
        ] {
            assert_eq!(layer_compression(&desc(t)).unwrap(), c, "{t}");
        }
        assert!(layer_compression(&desc("application/vnd.wasm.content.layer.v1+wasm")).is_err());
    }

    #[test]
    fn manifest_kinds_by_media_type_or_shape() {
        let k = |s: &str| manifest_kind(s.as_bytes());
        assert_eq!(
            k(&format!(
                r#"{{"schemaVersion":2,"mediaType":"{DOCKER_LIST}","manifests":[]}}"#
            ))
            .unwrap(),
            ManifestKind::Index
        );
        assert_eq!(
            k(r#"{"schemaVersion":2,"layers":[]}"#).unwrap(),
            ManifestKind::Manifest
        );
        assert_eq!(
            k(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            ManifestKind::Index
        );
        assert!(k(r#"{"schemaVersion":1,"fsLayers":[]}"#).is_err());
        assert!(k(r#"{"schemaVersion":2,"mediaType":"text/html"}"#).is_err());
        assert!(k("<html>").is_err());
    }

    #[test]
    fn zstd_and_gzip_layers_decompress() {
        let plain = b"hello layer".repeat(100);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &plain).unwrap();
        let gz = gz.finish().unwrap();
        let mut out = Vec::new();
        decompress(&gz[..], Compression::None)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, plain);
        // A zstd frame (level 1) of "hello zstd\n", made with the zstd CLI.
        let zst: &[u8] = &[
            0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x48, 0x59, 0x00, 0x00, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
            0x20, 0x7a, 0x73, 0x74, 0x64, 0x0a, 0x6c, 0x57, 0xf9, 0x51,
        ];
        let mut out = Vec::new();
        decompress(zst, Compression::Zstd)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, b"hello zstd\n");
    }
}
