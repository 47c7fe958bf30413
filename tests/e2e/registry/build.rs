//! `docker build` pulling what it needs from a registry: a base image the engine lacks
//! (with the credentials the CLI sends in `X-Registry-Config`), an image named by
//! `COPY --from`, and `--pull` refreshing a base the engine already has.

use crate::common::{stderr, stdout, Daemon};
use crate::registry_support::real::{Auth, RealRegistry};

fn context(dockerfile: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-regbuild")
        .tempdir()
        .expect("context dir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
    dir
}

fn build(d: &Daemon, args: &[&str], ctx: &tempfile::TempDir) -> String {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    all.push(ctx.path().to_str().expect("utf-8 path"));
    let out = d.docker(&all);
    assert!(
        out.status.success(),
        "docker {all:?}:\n{}\n{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    stdout(&out)
}

#[test]
fn docker_build_pulls_missing_images_with_credentials_and_pull_refreshes_them() {
    let registry = RealRegistry::start(Auth::Htpasswd(vec![("alice".into(), "s3cret".into())]));
    let d = Daemon::start();
    d.docker_ok(&["login", &registry.addr, "-u", "alice", "-p", "s3cret"]);
    let base = format!("{}/private/base:1", registry.addr);
    let other = format!("{}/private/other:1", registry.addr);

    let v1 = context("FROM busybox\nRUN echo v1 > /version\n");
    build(&d, &["-q", "-t", &base, "-t", &other], &v1);
    let v1_id = d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", &base]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["push", &other]);
    d.docker_ok(&["rmi", &base, &other]);

    // Neither image is in the engine: both are pulled, with alice's credentials.
    let app = context(&format!(
        "FROM {base}\nCOPY --from={other} /version /other\nCMD [\"cat\", \"/version\", \"/other\"]\n"
    ));
    let out = build(&d, &["-t", "app"], &app);
    assert!(out.contains("Pulling from private/base"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", "app"]), "v1\nv1");

    // A newer base in the registry; the engine keeps the old one under the name.
    let v2 = context("FROM busybox\nRUN echo v2 > /version\n");
    build(&d, &["-q", "-t", &base], &v2);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["tag", &v1_id, &base]);

    let out = build(&d, &["-t", "app"], &app);
    assert!(
        !out.contains("Pulling from"),
        "the local base is used: {out}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "app"]), "v1\nv1");
    build(&d, &["--pull", "-t", "app"], &app);
    assert_eq!(d.docker_ok(&["run", "--rm", "app"]), "v2\nv1");

    // Without credentials the registry refuses, and the build says so.
    d.docker_ok(&["logout", &registry.addr]);
    d.docker_ok(&["rmi", "-f", &base]);
    let out = d.docker(&[
        "build",
        "-t",
        "app",
        app.path().to_str().expect("utf-8 path"),
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).to_lowercase().contains("unauthorized")
            || stderr(&out).contains("no basic auth credentials"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn a_base_image_pull_streams_docker_json_progress_in_the_build_output() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let base = format!("{}/e2e/base:1", registry.addr);
    crate::push_busybox(&d, &base);
    d.docker_ok(&["rmi", &base, crate::common::BUSYBOX]);

    let dockerfile = format!("FROM {base}\n");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(dockerfile.len() as u64);
    h.set_mode(0o644);
    h.set_cksum();
    tar.append_data(&mut h, "Dockerfile", dockerfile.as_bytes())
        .expect("tar");
    let tar = tar.into_inner().expect("tar");
    let reply = d
        .http(
            "POST",
            "/v1.50/build?t=app",
            Some(("application/x-tar", &tar)),
        )
        .expect("POST /build");
    assert_eq!(reply.status, 200);
    let messages: Vec<serde_json::Value> = String::from_utf8_lossy(&reply.body)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The layer's download as `docker pull` streams it: status, byte counts, layer id.
    let downloading = messages
        .iter()
        .find(|m| m["status"] == "Downloading")
        .unwrap_or_else(|| panic!("no Downloading message in {messages:?}"));
    assert!(
        downloading["progressDetail"]["total"].as_u64() > Some(0),
        "{downloading}"
    );
    assert!(
        downloading["id"].as_str().is_some_and(|id| id.len() == 12),
        "{downloading}"
    );
    assert!(
        messages.iter().any(|m| m["status"] == "Pull complete"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m["aux"]["ID"].is_string()),
        "the build finished: {messages:?}"
    );
}
