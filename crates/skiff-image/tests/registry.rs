//! The registry client against Debian's real `docker-registry` (anonymous, htpasswd and
//! token auth, mirrors, cross-repository mounts); the hostile answers a real registry cannot
//! be made to send are in `registry_fake.rs`. Images come from `skiff_image::testutil` (the
//! host's busybox), no internet.

mod registry_support;

use registry_support::real::{Auth, RealRegistry};
use registry_support::token::{self, TokenServer};
use registry_support::{
    assert_store_empty, no_progress, r, registries, store_with_busybox, temp_store, Recorder,
};
use skiff_core::{ErrorKind, HasKind};
use skiff_image::registry::{Credentials, PullOptions, PushOptions, Registries, RegistryConfig};
use skiff_image::ImageStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_round_trips_through_a_real_registry() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let name = format!("{}/test/busybox:1", registry.addr);
    let (_a, source) = store_with_busybox(&name);
    let regs = registries();

    let pushed_log = Recorder::default();
    let pushed = source
        .push(
            &regs,
            &r(&name),
            &PushOptions::default(),
            &pushed_log.sink(),
        )
        .await
        .unwrap();
    assert!(pushed_log.has("Pushed"), "{:?}", pushed_log.statuses());
    assert_eq!(
        pushed_log.statuses()[0],
        format!(
            "The push refers to repository [{}/test/busybox]",
            registry.addr
        )
    );
    assert!(pushed_log.has(&format!(
        "1: digest: {} size: {}",
        pushed.digest, pushed.size
    )));
    let aux = pushed_log.all().into_iter().find_map(|p| p.aux).unwrap();
    assert_eq!(aux["Digest"], pushed.digest);
    let source_image = source.get(&name).unwrap();
    assert_eq!(pushed.digest, source_image.manifest_digest);
    assert_eq!(
        source_image.repo_digests,
        [format!("{}/test/busybox@{}", registry.addr, pushed.digest)]
    );

    let (dest_dir, dest) = temp_store();
    let log = Recorder::default();
    let pulled = dest
        .pull(&regs, &r(&name), &PullOptions::default(), &log.sink())
        .await
        .unwrap();
    assert_eq!(pulled.image_id, source_image.id);
    assert_eq!(pulled.digest, pushed.digest);
    assert!(pulled.downloaded);
    let statuses = log.statuses();
    for want in [
        "Pulling fs layer",
        "Downloading",
        "Verifying Checksum",
        "Download complete",
        "Extracting",
        "Pull complete",
    ] {
        assert!(
            statuses.iter().any(|s| s == want),
            "no {want:?} in {statuses:?}"
        );
    }
    assert_eq!(statuses[0], "Pulling from test/busybox");
    assert!(statuses.contains(&format!("Digest: {}", pushed.digest)));
    assert_eq!(
        statuses.last().unwrap(),
        &format!("Status: Downloaded newer image for {name}")
    );
    let downloading = log
        .all()
        .into_iter()
        .rfind(|p| p.status == "Downloading")
        .unwrap();
    let detail = downloading.detail.unwrap();
    assert_eq!(detail.current, detail.total);
    assert!(detail.total.unwrap() > 100_000, "busybox layer is large");

    let image = dest.get(&name).unwrap();
    assert_eq!(image.repo_tags, std::slice::from_ref(&name));
    assert_eq!(image.diff_ids, source_image.diff_ids);
    // The layer was unpacked during the pull: the rootfs is ready without another unpack.
    let snapshots = std::fs::read_dir(dest_dir.path().join("snapshots"))
        .unwrap()
        .count();
    assert_eq!(snapshots, 1);
    let lowers = dest.prepare_rootfs(&image.id).unwrap();
    assert!(lowers[0].join("bin/busybox").is_file());

    // Pulling again downloads nothing.
    let again = Recorder::default();
    let second = dest
        .pull(&regs, &r(&name), &PullOptions::default(), &again.sink())
        .await
        .unwrap();
    assert!(!second.downloaded);
    // As dockerd: an image that is up to date gets no line per layer.
    assert_eq!(
        again.statuses(),
        [
            "Pulling from test/busybox".to_string(),
            format!("Digest: {}", pushed.digest),
            format!("Status: Image is up to date for {name}"),
        ]
    );
    assert_eq!(
        again.statuses().last().unwrap(),
        &format!("Status: Image is up to date for {name}")
    );

    // Pushing again uploads nothing.
    let repush = Recorder::default();
    source
        .push(&regs, &r(&name), &PushOptions::default(), &repush.sink())
        .await
        .unwrap();
    assert!(
        repush.has("Layer already exists"),
        "{:?}",
        repush.statuses()
    );
    assert!(!repush.has("Pushing"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_by_digest_records_the_repository_digest_without_a_tag() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let name = format!("{}/test/busybox:1", registry.addr);
    let (_a, source) = store_with_busybox(&name);
    let regs = registries();
    let pushed = source
        .push(&regs, &r(&name), &PushOptions::default(), &no_progress())
        .await
        .unwrap();

    let (_b, dest) = temp_store();
    let by_digest = format!("{}/test/busybox@{}", registry.addr, pushed.digest);
    let pulled = dest
        .pull(
            &regs,
            &r(&by_digest),
            &PullOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    let image = dest.get(&by_digest).unwrap();
    assert_eq!(image.id, pulled.image_id);
    assert!(image.repo_tags.is_empty());
    assert_eq!(image.repo_digests, std::slice::from_ref(&by_digest));
    // Survives a reopen of the store.
    drop(dest);
    let reopened = ImageStore::open(_b.path()).unwrap();
    assert_eq!(
        reopened.get(&by_digest).unwrap().repo_digests,
        std::slice::from_ref(&by_digest)
    );

    // A digest the registry does not have.
    let missing = format!("{}/test/busybox@sha256:{}", registry.addr, "0".repeat(64));
    let err = reopened
        .pull(&regs, &r(&missing), &PullOptions::default(), &no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");

    // An image known by its digest only is not dangling: prune keeps it.
    let (removed, _) = reopened.prune(false, &|_| false).unwrap();
    assert!(removed.is_empty(), "{removed:?}");
    // rmi by the digest reference deletes it and says what it untagged.
    let removed = reopened.remove(&by_digest, false, &|_| None).unwrap();
    assert_eq!(
        removed,
        [
            skiff_image::Removed::Untagged(by_digest.clone()),
            skiff_image::Removed::Deleted(pulled.image_id.clone()),
        ]
    );
    assert!(reopened.list().unwrap().is_empty());

    // A tagged pull also records the digest; removing the tag removes both.
    reopened
        .pull(&regs, &r(&name), &PullOptions::default(), &no_progress())
        .await
        .unwrap();
    let removed = reopened.remove(&name, false, &|_| None).unwrap();
    assert_eq!(
        removed,
        [
            skiff_image::Removed::Untagged(name.clone()),
            skiff_image::Removed::Untagged(by_digest),
            skiff_image::Removed::Deleted(pulled.image_id),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_tags_are_not_found_in_dockers_words() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let (_d, store) = temp_store();
    let name = format!("{}/nothing/here:nope", registry.addr);
    let err = store
        .pull(
            &registries(),
            &r(&name),
            &PullOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(
        err.to_string()
            .starts_with(&format!("manifest for {name} not found")),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_that_fails_at_the_manifest_reports_no_progress() {
    // dockerd answers such a pull with an HTTP error, not a progress stream: nothing may
    // have been reported before the manifest arrived.
    let registry = RealRegistry::start(Auth::Anonymous);
    let (_d, store) = temp_store();
    let log = Recorder::default();
    let err = store
        .pull(
            &registries(),
            &r(&format!("{}/nothing/here:nope", registry.addr)),
            &PullOptions::default(),
            &log.sink(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(log.all().is_empty(), "{:?}", log.statuses());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn layers_in_the_store_are_not_downloaded_again() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let regs = registries();
    let first = format!("{}/test/busybox:1", registry.addr);
    let second = format!("{}/test/echo:1", registry.addr);
    let (_a, source) = store_with_busybox(&first);
    // Same layer, another config.
    source
        .import(
            &skiff_image::testutil::busybox_rootfs_tar()[..],
            Some(&second),
            &[r#"CMD ["echo", "hi"]"#.to_string()],
            None,
        )
        .unwrap();
    assert_eq!(
        source.get(&first).unwrap().diff_ids,
        source.get(&second).unwrap().diff_ids
    );
    for name in [&first, &second] {
        source
            .push(&regs, &r(name), &PushOptions::default(), &no_progress())
            .await
            .unwrap();
    }

    let (_b, dest) = temp_store();
    dest.pull(&regs, &r(&first), &PullOptions::default(), &no_progress())
        .await
        .unwrap();
    let log = Recorder::default();
    dest.pull(&regs, &r(&second), &PullOptions::default(), &log.sink())
        .await
        .unwrap();
    assert!(log.has("Already exists"), "{:?}", log.statuses());
    assert!(!log.has("Downloading"), "{:?}", log.statuses());
    assert_eq!(
        dest.get(&second)
            .unwrap()
            .config
            .config()
            .as_ref()
            .unwrap()
            .cmd()
            .clone()
            .unwrap(),
        ["echo", "hi"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_mounts_blobs_from_another_repository() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let regs = registries();
    let first = format!("{}/team/base:1", registry.addr);
    let second = format!("{}/team/app:1", registry.addr);
    let (_a, store) = store_with_busybox(&first);
    store
        .push(&regs, &r(&first), &PushOptions::default(), &no_progress())
        .await
        .unwrap();
    store.tag(&first, &second).unwrap();
    let log = Recorder::default();
    store
        .push(&regs, &r(&second), &PushOptions::default(), &log.sink())
        .await
        .unwrap();
    assert!(log.has("Mounted from team/base"), "{:?}", log.statuses());
    assert!(!log.has("Pushing"));
    // The mounted repository serves the image.
    let (_b, dest) = temp_store();
    dest.pull(&regs, &r(&second), &PullOptions::default(), &no_progress())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn htpasswd_registry_needs_the_right_password() {
    let registry = RealRegistry::start(Auth::Htpasswd(vec![("alice".into(), "s3cret".into())]));
    let regs = registries();
    let name = format!("{}/private/busybox:1", registry.addr);
    let (_a, source) = store_with_busybox(&name);
    let good = Credentials {
        serveraddress: registry.addr.clone(),
        ..Credentials::basic("alice", "s3cret")
    };
    let bad = Credentials {
        serveraddress: registry.addr.clone(),
        ..Credentials::basic("alice", "wrong")
    };

    assert_eq!(regs.login(&good).await.unwrap().status, "Login Succeeded");
    let err = regs.login(&bad).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        err.to_string(),
        format!(
            "login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            registry.addr
        )
    );

    let err = source
        .push(&regs, &r(&name), &PushOptions::default(), &no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err:?}");
    source
        .push(
            &regs,
            &r(&name),
            &PushOptions {
                credentials: good.clone(),
            },
            &no_progress(),
        )
        .await
        .unwrap();

    let (dest_dir, dest) = temp_store();
    let err = dest
        .pull(&regs, &r(&name), &PullOptions::default(), &no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert_store_empty(dest_dir.path(), &dest);
    let opts = PullOptions {
        credentials: good,
        platform: None,
    };
    dest.pull(&regs, &r(&name), &opts, &no_progress())
        .await
        .unwrap();
    assert_eq!(dest.list().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_registry_works_with_a_token_server() {
    let tokens = TokenServer::start(&[("bob", "hunter2")]).await;
    let registry = RealRegistry::start(Auth::Token {
        realm: tokens.realm.clone(),
        service: token::SERVICE.into(),
        issuer: token::ISSUER.into(),
        cert_pem: tokens.cert_pem.clone(),
    });
    let regs = registries();
    let name = format!("{}/secure/busybox:1", registry.addr);
    let (_a, source) = store_with_busybox(&name);
    let creds = |password: &str| Credentials {
        serveraddress: format!("http://{}/v2/", registry.addr),
        ..Credentials::basic("bob", password)
    };

    regs.login(&creds("hunter2")).await.unwrap();
    let err = regs.login(&creds("nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    assert_eq!(
        err.to_string(),
        format!(
            "Get \"http://{}/v2/\": unauthorized: incorrect username or password",
            registry.addr
        )
    );

    // Credentials travel as Docker's X-Registry-Auth header would carry them.
    use base64::Engine as _;
    let header = base64::engine::general_purpose::URL_SAFE.encode(
        serde_json::json!({"username": "bob", "password": "hunter2", "serveraddress": registry.addr})
            .to_string(),
    );
    let from_header = Credentials::from_header(&header).unwrap();
    let err = source
        .push(
            &regs,
            &r(&name),
            &PushOptions {
                credentials: creds("nope"),
            },
            &no_progress(),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    source
        .push(
            &regs,
            &r(&name),
            &PushOptions {
                credentials: from_header.clone(),
            },
            &no_progress(),
        )
        .await
        .unwrap();

    let (dest_dir, dest) = temp_store();
    let err = dest
        .pull(&regs, &r(&name), &PullOptions::default(), &no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized, "{err}");
    assert_store_empty(dest_dir.path(), &dest);
    let opts = PullOptions {
        credentials: from_header,
        platform: None,
    };
    let pulled = dest
        .pull(&regs, &r(&name), &opts, &no_progress())
        .await
        .unwrap();
    assert_eq!(pulled.image_id, source.get(&name).unwrap().id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_names_come_from_a_configured_mirror() {
    let mirror = RealRegistry::start(Auth::Anonymous);
    let in_mirror = format!("{}/library/busybox:latest", mirror.addr);
    let (_a, source) = store_with_busybox(&in_mirror);
    source
        .push(
            &registries(),
            &r(&in_mirror),
            &PushOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();

    let regs = Registries::new(RegistryConfig {
        mirrors: vec![format!("http://{}", mirror.addr)],
        ..Default::default()
    })
    .unwrap();
    let (_b, dest) = temp_store();
    let pulled = dest
        .pull(
            &regs,
            &r("busybox"),
            &PullOptions::default(),
            &no_progress(),
        )
        .await
        .unwrap();
    let image = dest.get("busybox").unwrap();
    assert_eq!(image.id, pulled.image_id);
    assert_eq!(image.repo_tags, ["busybox:latest"]);
    assert_eq!(image.repo_digests, [format!("busybox@{}", pulled.digest)]);
}
