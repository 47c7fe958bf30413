//! `docker load` and `docker save` archives: docker-archive (`manifest.json`, including the
//! docker 25+ variant with an OCI layout inside) and OCI image-layout archives.
//!
//! An archive is untrusted: it is staged into a private temp dir under flat generated
//! names (archive paths never reach the filesystem), symlinks and hard links between
//! its files are resolved lexically inside the archive, and every blob and layer is
//! checked against its digest and the config's diff ids before it is indexed.

mod load;
mod save;

pub(crate) use load::load;
pub(crate) use save::save;

/// One docker-archive `manifest.json` item.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifestItem {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}
