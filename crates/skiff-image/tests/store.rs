//! The image store's public API: load/save/import, lookups, tag/rmi/prune and snapshots.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::path::Path;

use common::{entries, temp_dir, Layer};
use serde_json::json;
use skiff_core::ids::sha256_digest;
use skiff_core::{ErrorKind, HasKind};
use skiff_image::testutil::{busybox_docker_archive, busybox_rootfs_tar};
use skiff_image::{ImageStore, ImageUser, Removed};

const NOT_USED: &dyn Fn(&str) -> Option<ImageUser> = &|_| None;

fn store() -> (tempfile::TempDir, ImageStore) {
    let tmp = temp_dir();
    let store = ImageStore::open(&tmp.path().join("image")).unwrap();
    (tmp, store)
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// An OCI image-layout archive of one image with one (gzipped) layer; returns the archive
/// and the image id.
fn oci_archive(layer: &[u8], created: &str, annotations: serde_json::Value) -> (Vec<u8>, String) {
    let blob = gzip(layer);
    let config = serde_json::to_vec(&json!({
        "architecture": oci_spec::image::Arch::default().to_string(), "os": "linux", "created": created,
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(layer)]},
    }))
    .unwrap();
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha256_digest(&blob), "size": blob.len()}],
    }))
    .unwrap();
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha256_digest(&manifest),
                       "size": manifest.len(), "annotations": annotations}],
    }))
    .unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut add = |path: String, data: &[u8]| {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        tar.append_data(&mut h, path, data).unwrap();
    };
    for b in [&blob, &config, &manifest] {
        add(format!("blobs/sha256/{}", &sha256_digest(b)[7..]), b);
    }
    add("index.json".into(), &index);
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    (tar.into_inner().unwrap(), sha256_digest(&config))
}

fn archive_files(archive: &[u8]) -> Vec<String> {
    let mut names: Vec<String> = tar::Archive::new(archive)
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .filter(|p| !p.starts_with("blobs/"))
        .collect();
    names.sort();
    names
}

fn blob_count(root: &Path) -> usize {
    entries(&root.join("image/blobs/sha256")).len()
}

#[test]
fn load_save_load_round_trip_keeps_the_id() {
    let (_tmp, store) = store();
    assert_eq!(
        store
            .load(busybox_docker_archive("busybox").as_slice())
            .unwrap(),
        ["busybox:latest"]
    );
    let image = store.get("busybox").unwrap();
    assert!(image.id.starts_with("sha256:") && image.id.len() == 71);
    assert_eq!(image.repo_tags, ["busybox:latest"]);
    assert_eq!(
        image.config.config().as_ref().unwrap().cmd().as_deref(),
        Some(&["sh".to_string()][..])
    );
    store.tag("busybox", "localhost:5000/x/y:1").unwrap();

    let mut saved = Vec::new();
    store
        .save(
            &["busybox".into(), "localhost:5000/x/y:1".into()],
            &mut saved,
        )
        .unwrap();
    assert_eq!(
        archive_files(&saved),
        ["index.json", "manifest.json", "oci-layout", "repositories"]
    );
    let mut manifest_json = String::new();
    tar::Archive::new(saved.as_slice())
        .entries()
        .unwrap()
        .map(|e| e.unwrap())
        .find(|e| e.path().unwrap().to_str() == Some("manifest.json"))
        .unwrap()
        .read_to_string(&mut manifest_json)
        .unwrap();
    let items: serde_json::Value = serde_json::from_str(&manifest_json).unwrap();
    assert_eq!(
        items[0]["RepoTags"],
        json!(["busybox:latest", "localhost:5000/x/y:1"])
    );

    let (_tmp2, other) = store_pair();
    let loaded = other.load(saved.as_slice()).unwrap();
    assert_eq!(loaded, ["busybox:latest", "localhost:5000/x/y:1"]);
    let again = other.get("localhost:5000/x/y:1").unwrap();
    assert_eq!(again.id, image.id);
    assert_eq!(again.repo_tags, ["busybox:latest", "localhost:5000/x/y:1"]);
    assert_eq!(again.diff_ids, image.diff_ids);

    // A store reopened from disk sees the same images.
    drop(other);
    let reopened = ImageStore::open(&_tmp2.path().join("image")).unwrap();
    assert_eq!(reopened.get("busybox:latest").unwrap().id, image.id);
}

fn store_pair() -> (tempfile::TempDir, ImageStore) {
    store()
}

#[test]
fn lookups_accept_names_ids_and_prefixes() {
    let (_tmp, store) = store();
    store
        .load(busybox_docker_archive("busybox:1.36").as_slice())
        .unwrap();
    let id = store.get("busybox:1.36").unwrap().id;
    let hex = &id[7..];
    for query in [
        "docker.io/library/busybox:1.36",
        "library/busybox:1.36",
        id.as_str(),
        hex,
        &hex[..12],
        &id[..19],
    ] {
        assert_eq!(store.get(query).unwrap().id, id, "{query}");
    }
    for missing in ["busybox", "busybox:latest", "nope", "ffffffffffff"] {
        assert_eq!(
            store.get(missing).unwrap_err().kind(),
            ErrorKind::NotFound,
            "{missing}"
        );
    }
    assert_eq!(
        store.get("nope").unwrap_err().to_string(),
        "No such image: nope:latest"
    );
}

#[test]
fn loads_oci_layout_archives() {
    let (_tmp, store) = store();
    let layer = Layer::new().file("hello", "oci").build();
    let (archive, id) = oci_archive(
        &layer,
        "2024-02-01T00:00:00Z",
        json!({"io.containerd.image.name": "docker.io/library/ocitest:v1"}),
    );
    assert_eq!(store.load(archive.as_slice()).unwrap(), ["ocitest:v1"]);
    assert_eq!(store.get("ocitest:v1").unwrap().id, id);

    let (archive, _) = oci_archive(
        &layer,
        "2024-02-02T00:00:00Z",
        json!({"org.opencontainers.image.ref.name": "quay.io/a/b:2"}),
    );
    assert_eq!(store.load(archive.as_slice()).unwrap(), ["quay.io/a/b:2"]);

    // A bare tag in ref.name names nothing: the image loads untagged and is reported by id.
    let (archive, id) = oci_archive(
        &layer,
        "2024-02-03T00:00:00Z",
        json!({"org.opencontainers.image.ref.name": "latest"}),
    );
    assert_eq!(store.load(archive.as_slice()).unwrap(), [id.as_str()]);
    assert!(store.get(&id).unwrap().repo_tags.is_empty());

    // The layer is gzip in the store and unpacks like any other.
    let lowers = store.prepare_rootfs(&id).unwrap();
    assert_eq!(fs::read_to_string(lowers[0].join("hello")).unwrap(), "oci");
}

#[test]
fn rejects_archive_whose_layer_does_not_match_its_diff_id() {
    let (tmp, store) = store();
    let (archive, _) = oci_archive(
        &Layer::new().file("a", "1").build(),
        "2024-01-01T00:00:00Z",
        json!({}),
    );
    // Swap the layer content for another while keeping the config's diff id.
    let mut rebuilt = tar::Builder::new(Vec::new());
    let evil = gzip(&Layer::new().file("a", "2").build());
    for entry in tar::Archive::new(archive.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        let mut path = entry.path().unwrap().to_string_lossy().into_owned();
        if data.starts_with(&[0x1f, 0x8b]) {
            data = evil.clone();
            path = format!("blobs/sha256/{}", &sha256_digest(&data)[7..]);
        }
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        rebuilt.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    let err = store
        .load(rebuilt.into_inner().unwrap().as_slice())
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(blob_count(tmp.path()), 0, "nothing half-stored");
}

#[test]
fn rejects_garbage_archives() {
    let (_tmp, store) = store();
    for garbage in [
        &b"not a tar at all"[..],
        &Layer::new().file("x", "y").build(),
    ] {
        assert_eq!(
            store.load(garbage).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }
    let escaping = Layer::new().file("../manifest.json", "[]").build();
    assert_eq!(
        store.load(escaping.as_slice()).unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
}

#[test]
fn import_with_changes_sets_the_config() {
    let (_tmp, store) = store();
    let changes: Vec<String> = [
        r#"CMD ["/bin/sh", "-c", "echo hi"]"#,
        "ENV GREETING=hello",
        "WORKDIR /srv",
        "EXPOSE 8080",
    ]
    .map(String::from)
    .to_vec();
    let id = store
        .import(
            gzip(&busybox_rootfs_tar()).as_slice(),
            Some("imported:v1"),
            &changes,
            Some("from test"),
        )
        .unwrap();
    let image = store.get("imported:v1").unwrap();
    assert_eq!(image.id, id);
    let config = image.config.config().clone().unwrap();
    assert_eq!(config.cmd().clone().unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(config.env().clone().unwrap(), ["GREETING=hello"]);
    assert_eq!(config.working_dir().as_deref(), Some("/srv"));
    assert_eq!(config.exposed_ports().clone().unwrap(), ["8080/tcp"]);
    assert_eq!(image.diff_ids, [sha256_digest(&busybox_rootfs_tar())]);
    assert_eq!(
        image.config.history().as_ref().unwrap()[0]
            .comment()
            .as_deref(),
        Some("from test")
    );
    let lowers = store.prepare_rootfs(&id).unwrap();
    assert!(lowers[0].join("bin/busybox").is_file());
}

#[test]
fn import_rejects_unknown_instruction_and_stores_nothing() {
    let (tmp, store) = store();
    let err = store
        .import(
            busybox_rootfs_tar().as_slice(),
            None,
            &["RUN rm -rf /".into()],
            None,
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert_eq!(err.to_string(), "run is not a valid change command");
    let err = store
        .import(&b"garbage"[..], Some("x"), &[], None)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(blob_count(tmp.path()), 0);
}

#[test]
fn tag_moves_names_and_validates_them() {
    let (_tmp, store) = store();
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    let imported = store
        .import(
            Layer::new().file("f", "x").build().as_slice(),
            Some("other"),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(
        store.tag("busybox", "Bad:Name").unwrap_err().kind(),
        ErrorKind::InvalidArgument
    );
    assert_eq!(
        store.tag("missing", "x").unwrap_err().kind(),
        ErrorKind::NotFound
    );
    store.tag(&imported, "busybox:latest").unwrap();
    assert_eq!(store.get("busybox").unwrap().id, imported);
    let listed = store.list().unwrap();
    assert_eq!(listed.len(), 2);
    let dangling = listed.iter().find(|i| i.id != imported).unwrap();
    assert!(dangling.repo_tags.is_empty());
}

#[test]
fn rmi_untags_then_deletes_and_refuses_images_in_use() {
    let (tmp, store) = store();
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    let id = store.get("busybox").unwrap().id;
    store.tag("busybox", "busybox:2").unwrap();
    store.tag("busybox", "mine/box").unwrap();
    let stopped = ImageUser {
        container: "c0ffee".repeat(10) + "abcd",
        running: false,
    };
    let in_use = |i: &str| (i == id).then(|| stopped.clone());

    // Removing one of several names only untags, even while in use.
    assert_eq!(
        store.remove("busybox:2", false, &in_use).unwrap(),
        [Removed::Untagged("busybox:2".into())]
    );
    // By id with names in two repositories: needs force.
    let err = store.remove(&id[7..19], false, NOT_USED).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert!(err.to_string().contains("must be forced"), "{err}");
    store.remove("mine/box", false, NOT_USED).unwrap();
    // The last name of an image in use: refused without force, naming the container.
    let err = store.remove("busybox", false, &in_use).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict);
    assert_eq!(
        err.to_string(),
        format!(
            "conflict: unable to remove repository reference \"busybox\" (must force) - container c0ffeec0ffee is using its referenced image {}",
            &id[7..19]
        )
    );
    // By id: a stopped container's image needs force, a running one's cannot be forced.
    let err = store.remove(&id, false, &in_use).unwrap_err();
    assert!(
        err.to_string()
            .ends_with("(must be forced) - image is being used by stopped container c0ffeec0ffee"),
        "{err}"
    );
    let running = |i: &str| {
        (i == id).then(|| ImageUser {
            running: true,
            ..stopped.clone()
        })
    };
    let err = store.remove(&id, true, &running).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "(cannot be forced) - image is being used by running container c0ffeec0ffee"
        ),
        "{err}"
    );
    assert_eq!(store.get("busybox").unwrap().id, id);
    let lowers = store.prepare_rootfs(&id).unwrap();
    // Forced: untagged and deleted; the blobs go, the in-use image's snapshot stays.
    assert_eq!(
        store.remove("busybox", true, &in_use).unwrap(),
        [
            Removed::Untagged("busybox:latest".into()),
            Removed::Deleted(id.clone())
        ]
    );
    assert_eq!(store.get(&id).unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(blob_count(tmp.path()), 0);
    assert!(lowers[0].join("bin/busybox").exists());
    assert_eq!(
        store.remove(&id, false, NOT_USED).unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Not in use and addressed by id: untag everything and delete, snapshots included.
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    let lowers = store.prepare_rootfs(&id).unwrap();
    assert_eq!(
        store.remove(&id, false, NOT_USED).unwrap(),
        [
            Removed::Untagged("busybox:latest".into()),
            Removed::Deleted(id.clone())
        ]
    );
    assert!(!lowers[0].exists());

    // The last name of an image a running container uses, forced: untagged, the image stays.
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    assert_eq!(
        store.remove("busybox", true, &running).unwrap(),
        [Removed::Untagged("busybox:latest".into())]
    );
    assert!(store.get(&id).unwrap().repo_tags.is_empty());
}

#[test]
fn prune_removes_dangling_then_all_unused() {
    let (tmp, store) = store();
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    let busybox = store.get("busybox").unwrap().id;
    let a = store
        .import(
            Layer::new().file("a", "1").build().as_slice(),
            Some("a"),
            &[],
            None,
        )
        .unwrap();
    let b = store
        .import(
            Layer::new().file("b", "2").build().as_slice(),
            Some("b"),
            &[],
            None,
        )
        .unwrap();
    store.tag(&b, "a").unwrap(); // `a`'s image is now dangling
    let (removed, bytes) = store.prune(false, &|_| false).unwrap();
    assert_eq!(removed, [Removed::Deleted(a.clone())]);
    assert!(bytes > 0);
    let in_use = |i: &str| i == busybox;
    let (removed, _) = store.prune(true, &in_use).unwrap();
    assert_eq!(
        removed,
        [
            Removed::Untagged("a:latest".into()),
            Removed::Untagged("b:latest".into()),
            Removed::Deleted(b.clone())
        ]
    );
    let left: Vec<String> = store.list().unwrap().into_iter().map(|i| i.id).collect();
    assert_eq!(left, [busybox.as_str()]);
    assert_eq!(
        blob_count(tmp.path()),
        3,
        "manifest, config and layer of busybox"
    );
    assert_eq!(store.prune(true, &in_use).unwrap(), (vec![], 0));
}

#[test]
fn prepare_rootfs_unpacks_each_chain_once() {
    let (tmp, store) = store();
    let base = Layer::new()
        .file("etc/base", "1")
        .file("etc/old", "x")
        .build();
    let top = Layer::new()
        .file("etc/top", "2")
        .file("etc/.wh.old", "")
        .build();
    // A two-layer docker-archive built by hand.
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(&base), sha256_digest(&top)]},
    }))
    .unwrap();
    let manifest = json!([{"Config": "config.json", "RepoTags": ["two:layers"], "Layers": ["l1/layer.tar", "l2/layer.tar"]}]);
    let mut tar = tar::Builder::new(Vec::new());
    for (path, data) in [
        ("l1/layer.tar", base),
        ("l2/layer.tar", top),
        ("config.json", config),
        ("manifest.json", manifest.to_string().into_bytes()),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        tar.append_data(&mut h, path, data.as_slice()).unwrap();
    }
    store.load(tar.into_inner().unwrap().as_slice()).unwrap();
    let id = store.get("two:layers").unwrap().id;

    let results: Vec<Vec<std::path::PathBuf>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| store.prepare_rootfs(&id).unwrap()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|r| *r == results[0]));
    let lowers = &results[0];
    assert_eq!(lowers.len(), 2);
    assert!(lowers[0].join("etc/top").exists(), "top-most first");
    assert!(lowers[1].join("etc/base").exists());
    assert_eq!(entries(&tmp.path().join("image/snapshots")).len(), 2);
    assert_eq!(entries(&tmp.path().join("image/tmp")), Vec::<String>::new());

    // An image without layers gets one empty dir.
    let empty = store.import(
        tar::Builder::new(Vec::new())
            .into_inner()
            .unwrap()
            .as_slice(),
        None,
        &[],
        None,
    );
    let empty = empty.unwrap();
    let lowers = store.prepare_rootfs(&empty).unwrap();
    assert_eq!(lowers.len(), 1);
}

#[test]
fn failed_unpack_leaves_no_snapshot_behind() {
    let (tmp, store) = store();
    let hostile = Layer::new()
        .file("ok", "1")
        .file("../../escape", "x")
        .build();
    let id = store
        .import(hostile.as_slice(), Some("hostile"), &[], None)
        .unwrap();
    let err = store.prepare_rootfs(&id).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"layer entry "../../escape" escapes the image root"#
    );
    assert_eq!(entries(&tmp.path().join("image/snapshots")).len(), 0);
    assert_eq!(entries(&tmp.path().join("image/tmp")), Vec::<String>::new());
}

#[test]
fn busybox_rootfs_runs_under_overlay() {
    let (tmp, store) = store();
    store
        .load(busybox_docker_archive("busybox").as_slice())
        .unwrap();
    let lowers = store.prepare_rootfs("busybox").unwrap();
    let dir = |n: &str| {
        let p = tmp.path().join(n);
        fs::create_dir(&p).unwrap();
        p
    };
    let (upper, work, merged) = (dir("upper"), dir("work"), dir("merged"));
    skiff_image::overlay::mount(&lowers, &upper, &work, &merged).unwrap();
    let _guard = common::MountGuard(merged.clone());
    let out = std::process::Command::new("chroot")
        .arg(&merged)
        .args([
            "/bin/sh",
            "-c",
            "echo hi > /tmp/x; cat /etc/passwd | head -1",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "root:x:0:0:root:/root:/bin/sh\n"
    );
    assert!(upper.join("tmp/x").exists(), "writes go to the upper dir");
    assert!(!lowers[0].join("tmp/x").exists());
}
