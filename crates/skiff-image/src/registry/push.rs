//! `docker push`: layers, config and manifest of a stored image to a registry. Blobs the
//! repository has are skipped, blobs another repository of the same registry has (known
//! from the names of local images holding them) are mounted across repositories, the rest
//! are uploaded; the manifest goes last, byte for byte as stored, so the pushed digest is
//! the local one.

use std::collections::BTreeSet;
use std::sync::Arc;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use oci_client::errors::OciDistributionError;
use oci_client::Client;
use oci_spec::image::Descriptor;
use tokio::io::AsyncReadExt;

use super::config::Resolved;
use super::error::{RegistryError, Result};
use super::progress::{short, Progress, ProgressSink};
use super::{media, oci_client_for, oci_ref, Credentials};
use crate::reference::ImageRef;
use crate::store::{RepoDigest, Store};
use crate::ImageError;

/// What to push with.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    pub credentials: Credentials,
}

/// A finished push (Docker's `aux` record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub tag: String,
    /// The manifest digest in the registry.
    pub digest: String,
    /// The manifest's size in bytes.
    pub size: usize,
}

pub(crate) async fn push(
    store: &Arc<Store>,
    resolved: &Resolved,
    r: &ImageRef,
    opts: &PushOptions,
    progress: ProgressSink<'_>,
) -> Result<Pushed> {
    let tagged = r.tagged().ok_or_else(|| {
        RegistryError::Invalid(format!("cannot push {r}: push a tag, not a digest"))
    })?;
    progress(Progress::status(format!(
        "The push refers to repository [{}/{}]",
        r.domain(),
        r.path()
    )));
    let (_, entry) = store.entry(&tagged.full()).map_err(|e| match e {
        ImageError::NotFound(_) => RegistryError::NotFound(format!(
            "An image does not exist locally with the tag: {}",
            tagged.familiar_repository()
        )),
        other => RegistryError::Store(other),
    })?;
    let endpoint = resolved.endpoint(r.domain());
    let client = oci_client_for(&endpoint, resolved.config.max_concurrent_uploads)?;
    let oref = oci_ref(r, &endpoint);
    let auth = opts.credentials.to_auth()?;
    client
        .store_auth_if_needed(oref.resolve_registry(), &auth)
        .await;

    // Other repositories of this registry whose local images hold each blob.
    let sources = {
        let state = store.lock();
        let mut sources: Vec<(String, BTreeSet<String>)> = Vec::new();
        for e in state.images.values() {
            let repos: BTreeSet<String> = e
                .names
                .iter()
                .filter(|n| n.domain() == r.domain() && n.path() != r.path())
                .map(|n| n.path().to_string())
                .collect();
            if !repos.is_empty() {
                sources.push((e.blob_digests().collect::<Vec<_>>().join(" "), repos));
            }
        }
        sources
    };
    let mount_sources = |digest: &str| -> Vec<String> {
        let mut out = BTreeSet::new();
        for (blobs, repos) in &sources {
            if blobs.split(' ').any(|b| b == digest) {
                out.extend(repos.iter().cloned());
            }
        }
        out.into_iter().collect()
    };

    let layers: Vec<Descriptor> = entry.manifest.layers().iter().rev().cloned().collect();
    for layer in &layers {
        progress(Progress::layer(
            &short(layer.digest().as_ref()),
            "Preparing",
        ));
    }
    let concurrency = resolved.config.max_concurrent_uploads.max(1);
    for layer in layers.iter().skip(concurrency) {
        progress(Progress::layer(&short(layer.digest().as_ref()), "Waiting"));
    }
    // Owned items: a closure taking references would make this future not provably `Send`
    // (rust-lang/rust#102211), and callers spawn it.
    let (client_ref, oref_ref) = (&client, &oref);
    futures::stream::iter(layers.clone())
        .map(move |layer| {
            let sources = mount_sources(layer.digest().as_ref());
            async move { push_layer(store, client_ref, oref_ref, &layer, sources, progress).await }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;

    let config = entry.manifest.config();
    let config_digest = config.digest().to_string();
    let exists = client
        .blob_exists(&oref, &config_digest)
        .await
        .map_err(|e| RegistryError::transport(format!("check blob {config_digest}"), e))?;
    if !exists {
        let bytes = read_blob(store, &config_digest)?;
        client
            .push_blob(&oref, bytes, &config_digest)
            .await
            .map_err(|e| {
                RegistryError::transport(format!("push image config {config_digest}"), e)
            })?;
    }

    let manifest = read_blob(store, &entry.manifest_digest)?;
    let size = manifest.len();
    let content_type = media::manifest_content_type(&manifest);
    let content_type = content_type.parse().map_err(|_| {
        RegistryError::BadContent(format!("stored manifest has media type {content_type:?}"))
    })?;
    client
        .push_manifest_raw(&oref, manifest, content_type)
        .await
        .map_err(|e| RegistryError::transport(format!("push manifest of {r}"), e))?;
    let digest = entry.manifest_digest.clone();
    store.commit_with_digests(&digest, &[], &[RepoDigest::new(r, &digest)])?;
    let tag = tagged.tag().to_string();
    progress(Progress::status(format!(
        "{tag}: digest: {digest} size: {size}"
    )));
    progress(Progress {
        detail: Some(Default::default()),
        aux: Some(serde_json::json!({ "Tag": tag, "Digest": digest, "Size": size })),
        ..Progress::status("")
    });
    Ok(Pushed { tag, digest, size })
}

fn read_blob(store: &Store, digest: &str) -> Result<Bytes> {
    let path = store.blob_path(digest)?;
    std::fs::read(&path).map(Bytes::from).map_err(|e| {
        RegistryError::Store(ImageError::Io {
            context: format!("read blob {digest}"),
            source: e,
        })
    })
}

async fn push_layer(
    store: &Store,
    client: &Client,
    oref: &oci_client::Reference,
    layer: &Descriptor,
    sources: Vec<String>,
    progress: ProgressSink<'_>,
) -> Result<()> {
    let digest = layer.digest().to_string();
    let id = short(&digest);
    let exists = client
        .blob_exists(oref, &digest)
        .await
        .map_err(|e| RegistryError::transport(format!("check blob {digest}"), e))?;
    if exists {
        progress(Progress::layer(&id, "Layer already exists"));
        return Ok(());
    }
    for source in sources {
        let from = oci_client::Reference::with_tag(
            oref.registry().to_string(),
            source.clone(),
            "latest".into(),
        );
        match client.mount_blob(oref, &from, &digest).await {
            Ok(()) => {
                progress(Progress::layer(&id, format!("Mounted from {source}")));
                return Ok(());
            }
            Err(error) => {
                tracing::debug!(%digest, %source, %error, "cross-repository mount refused")
            }
        }
    }

    let path = store.blob_path(&digest)?;
    let file = tokio::fs::File::open(&path).await.map_err(|e| {
        RegistryError::Store(ImageError::Io {
            context: format!("open blob {digest}"),
            source: e,
        })
    })?;
    let total = layer.size();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
    let chunks = futures::stream::unfold((Some(file), 0u64), move |(file, sent)| {
        let tx = tx.clone();
        async move {
            let mut file = file?;
            let mut buf = vec![0u8; 1 << 20];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    let sent = sent + n as u64;
                    let _ = tx.send(sent);
                    Some((Ok(Bytes::from(buf)), (Some(file), sent)))
                }
                Err(e) => Some((Err(OciDistributionError::IoError(e)), (None, sent))),
            }
        }
    });
    let upload = client.push_blob_stream(oref, chunks, &digest, Some(total));
    let report = async {
        while let Some(sent) = rx.recv().await {
            progress(Progress::bytes(&id, "Pushing", sent, total));
        }
    };
    let (uploaded, ()) = tokio::join!(upload, report);
    uploaded.map_err(|e| RegistryError::transport(format!("push layer {digest}"), e))?;
    progress(Progress::layer(&id, "Pushed"));
    Ok(())
}
