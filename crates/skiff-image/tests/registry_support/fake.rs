//! A fake registry serving fixed manifests and blobs, so tests can send what no real
//! registry would: blobs whose content does not match their digest, truncated blobs,
//! huge manifests, hostile layers, indexes without the wanted platform.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use sha2::{Digest as _, Sha256};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// What the fake serves: manifests by tag or digest, blobs by digest.
#[derive(Default, Clone)]
pub struct Content {
    pub manifests: HashMap<String, (String, Vec<u8>)>,
    pub blobs: HashMap<String, Vec<u8>>,
    /// Blobs whose answers wait until this many of them are being requested at once
    /// (proves concurrent downloads); a request waiting 20 s gets a 503.
    pub gate: Option<(Arc<tokio::sync::Barrier>, Vec<String>)>,
}

impl Content {
    /// Serves `image` under `tag` and its digest, with all its blobs.
    pub fn with_image(mut self, tag: &str, image: &Image) -> Content {
        let m = (DOCKER_MANIFEST.to_string(), image.manifest.clone());
        self.manifests.insert(tag.into(), m.clone());
        self.manifests.insert(digest(&image.manifest), m);
        self.blobs.extend(image.blobs.clone());
        self
    }
}

/// A schema-2 image made of gzip layers.
#[derive(Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub config: Vec<u8>,
    pub blobs: HashMap<String, Vec<u8>>,
    pub layer_digests: Vec<String>,
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, bytes).unwrap();
    gz.finish().unwrap()
}

/// An image of `layers` (uncompressed tars), gzip-compressed, for `os/arch`.
pub fn image(layers: &[Vec<u8>], os: &str, arch: &str) -> Image {
    image_with(
        layers,
        os,
        arch,
        "application/vnd.docker.image.rootfs.diff.tar.gzip",
        gzip,
    )
}

pub fn image_with(
    layers: &[Vec<u8>],
    os: &str,
    arch: &str,
    media_type: &str,
    compress: fn(&[u8]) -> Vec<u8>,
) -> Image {
    let diff_ids: Vec<String> = layers.iter().map(|l| digest(l)).collect();
    let compressed: Vec<Vec<u8>> = layers.iter().map(|l| compress(l)).collect();
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": arch,
        "os": os,
        "config": { "Cmd": ["sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {
            "mediaType": "application/vnd.docker.container.image.v1+json",
            "size": config.len(),
            "digest": digest(&config),
        },
        "layers": compressed.iter().map(|c| serde_json::json!({
            "mediaType": media_type,
            "size": c.len(),
            "digest": digest(c),
        })).collect::<Vec<_>>(),
    }))
    .unwrap();
    let mut blobs = HashMap::new();
    blobs.insert(digest(&config), config.clone());
    let layer_digests = compressed.iter().map(|c| digest(c)).collect();
    for c in compressed {
        blobs.insert(digest(&c), c);
    }
    Image {
        manifest,
        config,
        blobs,
        layer_digests,
    }
}

/// An OCI index of `(image, os, arch)` entries.
pub fn index(entries: &[(&Image, &str, &str)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries.iter().map(|(img, os, arch)| serde_json::json!({
            "mediaType": DOCKER_MANIFEST,
            "size": img.manifest.len(),
            "digest": digest(&img.manifest),
            "platform": { "os": os, "architecture": arch },
        })).collect::<Vec<_>>(),
    }))
    .unwrap()
}

/// A tar with one file.
pub fn tar_with(path: &str, data: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    let old = h.as_old_mut();
    old.name[..path.len()].copy_from_slice(path.as_bytes());
    h.set_entry_type(tar::EntryType::Regular);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    b.append(&h, data).unwrap();
    b.into_inner().unwrap()
}

pub struct FakeRegistry {
    /// `127.0.0.1:PORT`.
    pub addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl FakeRegistry {
    pub async fn start(content: Content) -> FakeRegistry {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let app = Router::new()
            .route("/v2/", get(|| async { axum::Json(serde_json::json!({})) }))
            .route("/v2/{*rest}", get(serve).head(serve))
            // The v1 search API (Docker Hub has it; the distribution registry does not):
            // one result named after the query.
            .route(
                "/v1/search",
                get(
                    |axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>| async move {
                        let name = q.get("q").cloned().unwrap_or_default();
                        axum::Json(serde_json::json!({"results": [{
                            "name": name, "description": "from the fake registry",
                            "star_count": 7, "is_official": false, "is_automated": false,
                        }]}))
                    },
                ),
            )
            .with_state(Arc::new(content));
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FakeRegistry { addr, task }
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn unknown(code: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "application/json")],
        format!(
            r#"{{"errors":[{{"code":"{code}","message":"{} unknown"}}]}}"#,
            code.to_lowercase().replace("_unknown", "")
        ),
    )
        .into_response()
}

async fn serve(
    State(content): State<Arc<Content>>,
    method: Method,
    Path(rest): Path<String>,
) -> Response {
    let (body, content_type) = if let Some((_, reference)) = rest.rsplit_once("/manifests/") {
        match content.manifests.get(reference) {
            Some((ct, body)) => (body.clone(), ct.clone()),
            None => return unknown("MANIFEST_UNKNOWN"),
        }
    } else if let Some((_, d)) = rest.rsplit_once("/blobs/") {
        if let Some((barrier, gated)) = &content.gate {
            if method == Method::GET && gated.iter().any(|g| g == d) {
                let waited =
                    tokio::time::timeout(std::time::Duration::from_secs(20), barrier.wait()).await;
                if waited.is_err() {
                    return (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "layers were not requested concurrently",
                    )
                        .into_response();
                }
            }
        }
        match content.blobs.get(d) {
            Some(body) => (body.clone(), "application/octet-stream".to_string()),
            None => return unknown("BLOB_UNKNOWN"),
        }
    } else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let len = body.len();
    let body = if method == Method::HEAD {
        Vec::new()
    } else {
        body
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        body,
    )
        .into_response()
}
