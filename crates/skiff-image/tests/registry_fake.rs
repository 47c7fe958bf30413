//! The registry client against a fake registry serving whatever bytes a test wants: wrong
//! digests, truncated or escaping layers, oversize manifests, platform indexes, zstd layers and
//! concurrent downloads. A hostile registry must not leave anything in the store.

mod registry_support;

use registry_support::fake::{self, Content, FakeRegistry};
use registry_support::{assert_store_empty, no_progress, r, registries, temp_store};
use skiff_core::{ErrorKind, HasKind};
use skiff_image::registry::{Credentials, Platform, PullOptions, RegistryError};
use skiff_image::ImageStore;

fn small_layer() -> Vec<u8> {
    fake::tar_with("hello.txt", b"hello from a layer\n")
}

async fn pull_from_fake(
    content: Content,
    reference: &str,
    platform: Option<&str>,
) -> (tempfile::TempDir, ImageStore, Result<(), RegistryError>) {
    let fake = FakeRegistry::start(content).await;
    let (dir, store) = temp_store();
    let opts = PullOptions {
        credentials: Credentials::anonymous(),
        platform: platform.map(|p| Platform::parse(p).unwrap()),
    };
    let reference = format!("{}/{reference}", fake.addr);
    let result = store
        .pull(&registries(), &r(&reference), &opts, &no_progress())
        .await
        .map(|_| ());
    (dir, store, result)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_registry_serves_a_good_image() {
    // The harness itself: a well-formed image pulls, so the failures below are the faults.
    let img = fake::image(&[small_layer()], "linux", &Platform::host().architecture);
    let (_d, store, result) =
        pull_from_fake(Content::default().with_image("1", &img), "x/y:1", None).await;
    result.unwrap();
    let image = store.list().unwrap().remove(0);
    let lowers = store.prepare_rootfs(&image.id).unwrap();
    assert_eq!(
        std::fs::read_to_string(lowers[0].join("hello.txt")).unwrap(),
        "hello from a layer\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_blob_whose_content_does_not_match_its_digest() {
    let img = fake::image(&[small_layer()], "linux", &Platform::host().architecture);
    let mut content = Content::default().with_image("1", &img);
    let layer = img.layer_digests[0].clone();
    content.blobs.insert(
        layer.clone(),
        fake::gzip(&fake::tar_with("evil.txt", b"swapped")),
    );
    // Same size as declared would be a stronger lie; pad or cut to it.
    let declared = img.blobs[&layer].len();
    content.blobs.get_mut(&layer).unwrap().resize(declared, 0);
    let (dir, store, result) = pull_from_fake(content, "x/y:1", None).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RegistryError::BadContent(_)), "{err:?}");
    assert!(err.to_string().contains("verification failed"), "{err}");
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_truncated_layer() {
    let big: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
    let img = fake::image(
        &[fake::tar_with("big.bin", &big)],
        "linux",
        &Platform::host().architecture,
    );
    let mut content = Content::default().with_image("1", &img);
    let layer = img.layer_digests[0].clone();
    let blob = content.blobs.get_mut(&layer).unwrap();
    blob.truncate(blob.len() / 2);
    let (dir, store, result) = pull_from_fake(content, "x/y:1", None).await;
    let err = result.unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_manifest_over_the_size_limit() {
    let img = fake::image(&[small_layer()], "linux", &Platform::host().architecture);
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["annotations"] = serde_json::json!({ "padding": "x".repeat(5 << 20) });
    let huge = serde_json::to_vec(&manifest).unwrap();
    let mut content = Content::default().with_image("1", &img);
    content
        .manifests
        .insert("1".into(), (fake::DOCKER_MANIFEST.into(), huge));
    let (dir, store, result) = pull_from_fake(content, "x/y:1", None).await;
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("over the 4194304 byte limit"),
        "{err}"
    );
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_layer_that_escapes_the_rootfs() {
    let good = small_layer();
    let evil = fake::tar_with("../../escaped.txt", b"owned");
    let img = fake::image(&[good, evil], "linux", &Platform::host().architecture);
    let (dir, store, result) =
        pull_from_fake(Content::default().with_image("1", &img), "x/y:1", None).await;
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::Store(skiff_image::ImageError::Hostile { .. })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("escapes the image root"), "{err}");
    assert_store_empty(dir.path(), &store);
    assert!(!dir.path().join("escaped.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejects_a_layer_whose_content_is_not_its_diff_id() {
    let img = fake::image(&[small_layer()], "linux", &Platform::host().architecture);
    // Rewrite the config to claim another diff id (and re-point the manifest at it).
    let mut config: serde_json::Value = serde_json::from_slice(&img.config).unwrap();
    config["rootfs"]["diff_ids"][0] = format!("sha256:{}", "1".repeat(64)).into();
    let config = serde_json::to_vec(&config).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["config"]["digest"] = fake::digest(&config).into();
    manifest["config"]["size"] = config.len().into();
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let mut content = Content::default().with_image("1", &img);
    content.blobs.insert(fake::digest(&config), config);
    content
        .manifests
        .insert("1".into(), (fake::DOCKER_MANIFEST.into(), manifest));
    let (dir, store, result) = pull_from_fake(content, "x/y:1", None).await;
    let err = result.unwrap_err();
    assert!(
        err.to_string().contains("but the image config says"),
        "{err}"
    );
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manifest_that_is_not_the_digest_asked_for_is_refused() {
    let img = fake::image(&[small_layer()], "linux", &Platform::host().architecture);
    let other = fake::image(&[fake::tar_with("other", b"x")], "linux", "amd64");
    let mut content = Content::default().with_image("1", &img);
    let wanted = fake::digest(&img.manifest);
    content.manifests.insert(
        wanted.clone(),
        (fake::DOCKER_MANIFEST.into(), other.manifest.clone()),
    );
    let (dir, store, result) = pull_from_fake(content, &format!("x/y@{wanted}"), None).await;
    let err = result.unwrap_err();
    assert!(matches!(err, RegistryError::BadContent(_)), "{err:?}");
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexes_resolve_to_the_host_or_the_requested_platform() {
    let host = Platform::host();
    let mine = fake::image(&[small_layer()], "linux", &host.architecture);
    let foreign_arch = if host.architecture == "s390x" {
        "ppc64le"
    } else {
        "s390x"
    };
    let foreign = fake::image(
        &[fake::tar_with("foreign.txt", b"f")],
        "linux",
        foreign_arch,
    );
    let index = fake::index(&[
        (&foreign, "linux", foreign_arch),
        (&mine, "linux", &host.architecture),
    ]);
    let mut content = Content::default()
        .with_image("mine", &mine)
        .with_image("foreign", &foreign);
    content
        .manifests
        .insert("multi".into(), (fake::OCI_INDEX.into(), index.clone()));

    let (_d, store, result) = pull_from_fake(content.clone(), "x/y:multi", None).await;
    result.unwrap();
    let image = store.list().unwrap().remove(0);
    assert_eq!(image.manifest_digest, fake::digest(&mine.manifest));
    // The repository digest is the index's, as Docker records it.
    assert!(
        image.repo_digests[0].ends_with(&fake::digest(&index)),
        "{:?}",
        image.repo_digests
    );

    let wanted = format!("linux/{foreign_arch}");
    let (_d, store, result) = pull_from_fake(content.clone(), "x/y:multi", Some(&wanted)).await;
    result.unwrap();
    assert_eq!(
        store.list().unwrap()[0].manifest_digest,
        fake::digest(&foreign.manifest)
    );

    let (dir, store, result) =
        pull_from_fake(content.clone(), "x/y:multi", Some("linux/mips64le")).await;
    let err = result.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        "no matching manifest for linux/mips64le in the manifest list entries"
    );
    assert_store_empty(dir.path(), &store);

    // A single-platform image for another platform is refused when a platform is asked for.
    let (dir, store, result) = pull_from_fake(
        content,
        "x/y:foreign",
        Some(&format!("linux/{}", host.architecture)),
    )
    .await;
    let err = result.unwrap_err();
    assert!(
        err.to_string()
            .contains("does not match the specified platform"),
        "{err}"
    );
    assert_store_empty(dir.path(), &store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zstd_layers_pull() {
    fn zstd(bytes: &[u8]) -> Vec<u8> {
        ruzstd::encoding::compress_to_vec(bytes, ruzstd::encoding::CompressionLevel::Fastest)
    }
    let img = fake::image_with(
        &[small_layer()],
        "linux",
        &Platform::host().architecture,
        "application/vnd.oci.image.layer.v1.tar+zstd",
        zstd,
    );
    let (_d, store, result) =
        pull_from_fake(Content::default().with_image("1", &img), "x/z:1", None).await;
    result.unwrap();
    let image = store.list().unwrap().remove(0);
    let lowers = store.prepare_rootfs(&image.id).unwrap();
    assert!(lowers[0].join("hello.txt").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_download_concurrently() {
    let layers: Vec<Vec<u8>> = (0..3)
        .map(|i| fake::tar_with(&format!("layer{i}.txt"), format!("layer {i}").as_bytes()))
        .collect();
    let img = fake::image(&layers, "linux", &Platform::host().architecture);
    let mut content = Content::default().with_image("1", &img);
    // Every layer's answer waits until all three are requested: a sequential client
    // would wait for ever (the fake gives up with a 503 after 20 s).
    content.gate = Some((
        std::sync::Arc::new(tokio::sync::Barrier::new(3)),
        img.layer_digests.clone(),
    ));
    let (_d, store, result) = pull_from_fake(content, "x/many:1", None).await;
    result.unwrap();
    let image = store.list().unwrap().remove(0);
    assert_eq!(image.diff_ids.len(), 3);
    let lowers = store.prepare_rootfs(&image.id).unwrap();
    assert!(lowers[0].join("layer2.txt").is_file());
}
