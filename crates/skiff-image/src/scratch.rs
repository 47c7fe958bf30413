//! The empty image `FROM scratch` starts from: a config with no layers and no history, the
//! same bytes every time (no timestamp), so it always has the same id.

use oci_spec::image::{
    Config, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder, MediaType, RootFsBuilder,
};

use crate::error::{ImageError, Result};
use crate::store::{oci_digest, Store};

fn internal(e: oci_spec::OciSpecError) -> ImageError {
    ImageError::invalid(format!("build image config: {e}"))
}

pub(crate) fn scratch(store: &Store) -> Result<String> {
    let image_config = ImageConfigurationBuilder::default()
        .config(Config::default())
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(Vec::<String>::new())
                .build()
                .map_err(internal)?,
        )
        .build()
        .map_err(internal)?;
    let config_json = image_config.to_string().map_err(internal)?;
    let _ingest = store.ingest_guard();
    let config_digest = store.write_blob(config_json.as_bytes())?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_json.len() as u64,
            oci_digest(&config_digest),
        ))
        .layers(Vec::new())
        .build()
        .map_err(internal)?;
    let manifest_digest = store.write_blob(manifest.to_string().map_err(internal)?.as_bytes())?;
    store.commit(&manifest_digest, &[])
}
