//! A hostile registry through the Engine API and the docker CLI: what it sends that does not
//! match its digests fails the pull with a clear message, and nothing of it stays in the
//! store.

use std::path::Path;

use crate::common::{stderr, Daemon, HttpReply};
use crate::registry_support::fake::{self, Content, FakeRegistry};
use crate::servers;

/// An image whose one layer blob is not the content its digest names (same size).
fn lying_image() -> (Content, String) {
    let layer = fake::tar_with("hello.txt", b"hello from a layer\n");
    let arch = skiff_image::registry::Platform::host().architecture;
    let img = fake::image(&[layer], "linux", &arch);
    let mut content = Content::default().with_image("1", &img);
    let digest = img.layer_digests[0].clone();
    let declared = img.blobs[&digest].len();
    let evil = content.blobs.get_mut(&digest).expect("layer blob");
    *evil = fake::gzip(&fake::tar_with("evil.txt", b"swapped"));
    evil.resize(declared, 0);
    (content, digest)
}

fn json_lines(reply: &HttpReply) -> Vec<serde_json::Value> {
    reply
        .body
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            serde_json::from_slice(l)
                .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(l)))
        })
        .collect()
}

/// Nothing of a failed pull is left: no blob `digest`, nothing staged in the store's tmp.
fn assert_nothing_kept(root: &Path, digest: &str) {
    let hex = digest.trim_start_matches("sha256:");
    assert!(
        !root.join("image/blobs/sha256").join(hex).exists(),
        "the lying blob was stored"
    );
    let tmp = root.join("image/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{} holds {left:?}", tmp.display());
}

#[test]
fn a_blob_that_is_not_its_digest_fails_the_pull_in_the_stream() {
    let rt = servers();
    let (content, digest) = lying_image();
    let registry = rt.block_on(FakeRegistry::start(content));
    let d = Daemon::start();
    let images_before = d.docker_ok(&["images", "-q", "--no-trunc"]);

    let reply = d
        .http(
            "POST",
            &format!("/v1.50/images/create?fromImage={}/x/y&tag=1", registry.addr),
            None,
        )
        .expect("pull request");
    // The manifest was fine, so the stream had started: the error is its last message.
    assert_eq!(reply.status, 200);
    let lines = json_lines(&reply);
    assert_eq!(lines[0]["status"], "Pulling from x/y", "{lines:?}");
    let last = lines.last().expect("messages");
    let want = format!("filesystem layer verification failed for digest {digest}");
    assert_eq!(last["error"], want.as_str(), "{lines:?}");
    assert_eq!(last["errorDetail"]["message"], want.as_str());
    assert!(
        !lines.iter().any(|l| l["status"] == "Pull complete"),
        "{lines:?}"
    );

    assert_eq!(d.docker_ok(&["images", "-q", "--no-trunc"]), images_before);
    assert_nothing_kept(&d.root(), &digest);

    // The docker CLI prints the stream's error and fails.
    let name = format!("{}/x/y:1", registry.addr);
    let out = d.docker(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(&want), "{}", stderr(&out));
    assert_nothing_kept(&d.root(), &digest);
}

#[test]
fn an_oversized_manifest_is_refused_before_any_progress() {
    let rt = servers();
    let arch = skiff_image::registry::Platform::host().architecture;
    let img = fake::image(&[fake::tar_with("a", b"a")], "linux", &arch);
    let mut manifest: serde_json::Value = serde_json::from_slice(&img.manifest).unwrap();
    manifest["annotations"] = serde_json::json!({ "padding": "x".repeat(5 << 20) });
    let mut content = Content::default().with_image("1", &img);
    content.manifests.insert(
        "1".into(),
        (
            fake::DOCKER_MANIFEST.into(),
            serde_json::to_vec(&manifest).unwrap(),
        ),
    );
    let registry = rt.block_on(FakeRegistry::start(content));
    let d = Daemon::start();
    let reply = d
        .http(
            "POST",
            &format!("/v1.50/images/create?fromImage={}/x/y&tag=1", registry.addr),
            None,
        )
        .expect("pull request");
    assert_eq!(reply.status, 500);
    assert!(
        reply.message().contains("over the 4194304 byte limit"),
        "{}",
        reply.message()
    );
}

#[test]
fn docker_search_asks_the_registry_and_reports_one_without_the_search_api() {
    use crate::registry_support::real::{Auth, RealRegistry};
    let rt = servers();
    let fake = rt.block_on(FakeRegistry::start(Content::default()));
    let real = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let out = d.docker_ok(&[
        "search",
        "--format",
        "{{.Name}} {{.StarCount}} {{.Description}}",
        &format!("{}/tools", fake.addr),
    ]);
    assert_eq!(out, "tools 7 from the fake registry");
    // Debian's registry (the distribution registry) has no search API: dockerd's words.
    let out = d.docker(&["search", &format!("{}/tools", real.addr)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Unexpected status code 404"),
        "{}",
        stderr(&out)
    );
}
