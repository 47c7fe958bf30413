//! `docker cp` through the engine API against a running container that plants symlinks to
//! `/`, to `../../..` and to a host directory: nothing is ever written or read outside the
//! container's root, and files land where Docker would put them (the symlink followed inside
//! the container).

use std::io::Read;

use crate::common::*;
use futures::StreamExt;
use skiff_engine::{Engine, EngineError};

fn one_file_tar(name: &str, data: &str) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    b.append_data(&mut h, name, data.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

/// The content of the regular file `path` in the container, read through the archive API.
async fn read_in_container(engine: &Engine, id: &str, path: &str) -> Option<String> {
    let (_, stream) = engine.container_archive_get(id, path).await.ok()?;
    let bytes: Vec<u8> = stream
        .map(|chunk| chunk.unwrap().to_vec())
        .collect::<Vec<_>>()
        .await
        .concat();
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut entry = archive.entries().unwrap().next()?.unwrap();
    let mut text = String::new();
    entry.read_to_string(&mut text).unwrap();
    Some(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_put_through_container_symlinks_stays_in_the_container() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let host = tempfile::Builder::new()
        .prefix("skiff-e2e-victim")
        .tempdir_in("/tmp")
        .unwrap();
    let host_dir = host.path().to_str().unwrap().to_owned();
    let victim = host.path().join("victim.txt");
    std::fs::write(&victim, "original").unwrap();
    std::fs::write(host.path().join("secret.txt"), "host secret").unwrap();
    let script = format!(
        "mkdir -p {host_dir} /tmp && ln -s / /escape && ln -s ../../.. /tmp/up && \
         ln -s {host_dir} /hostlink && touch /ready && exec sleep 300"
    );
    let id = engine
        .container_create(None, sh(&script), None)
        .await
        .unwrap()
        .id;
    engine.container_start(&id).await.unwrap();
    poll("the container's symlinks", async || {
        engine.container_archive_stat(&id, "/ready").await.ok()
    })
    .await;

    for dest in [
        format!("/escape{host_dir}"),
        format!("/tmp/up{host_dir}"),
        "/hostlink".to_string(),
    ] {
        let written = format!("through {dest}");
        engine
            .container_archive_put(
                &id,
                &dest,
                body_stream(one_file_tar("victim.txt", &written)),
                false,
            )
            .await
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(&victim).unwrap(),
            "original",
            "{dest}"
        );
        // Where Docker puts it: the symlink followed inside the container.
        let inside = format!("{host_dir}/victim.txt");
        assert_eq!(
            read_in_container(&engine, &id, &inside).await.as_deref(),
            Some(written.as_str()),
            "{dest}"
        );
    }
    // Entries of the archive that go through the symlinks stay inside too.
    let tar = one_file_tar(
        &format!("escape{host_dir}/victim.txt"),
        "entry through /escape",
    );
    engine
        .container_archive_put(&id, "/", body_stream(tar), false)
        .await
        .unwrap();
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original");

    // Reading never follows a symlink out either: the host's secret is not in the container.
    let err = engine
        .container_archive_stat(&id, "/hostlink/secret.txt")
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NoSuchPath { .. }), "{err}");
    assert_eq!(
        read_in_container(&engine, &id, "/escape/etc/../../hostlink/secret.txt").await,
        None
    );
    let link = engine
        .container_archive_stat(&id, "/hostlink")
        .await
        .unwrap();
    assert_eq!(link.link_target, host_dir);
    engine.container_remove(&id, true, true).await.unwrap();
}
