//! skiff's own docker-like CLI (`skiff run`, `skiff ps`, …) against `skiff daemon`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{stderr, stdout, Daemon, BUSYBOX};

fn skiff(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args)
        .env("DOCKER_HOST", d.host())
        .stdin(std::process::Stdio::null());
    common::run_with_timeout(cmd, Duration::from_secs(120))
}

fn skiff_ok(d: &Daemon, args: &[&str]) -> String {
    let out = skiff(d, args);
    assert!(
        out.status.success(),
        "skiff {args:?}: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

#[test]
fn skiff_run_rm_prints_output_and_exit_code() {
    let d = Daemon::start();
    assert_eq!(
        skiff_ok(&d, &["run", "--rm", BUSYBOX, "echo", "hi"]),
        "hi\n"
    );
    let out = skiff(&d, &["run", "--rm", BUSYBOX, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = skiff(&d, &["run", "--rm", "nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Unable to find image 'nosuchimage' locally"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn skiff_verbs_manage_containers_and_images() {
    let d = Daemon::start();
    let id = skiff_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "svc",
            "-e",
            "GREETING=hey",
            BUSYBOX,
            "sleep",
            "300",
        ],
    );
    assert_eq!(id.trim().len(), 64);
    let top = skiff_ok(&d, &["top", "svc"]);
    assert!(top.lines().any(|l| l.contains("sleep 300")), "{top}");
    let stats = skiff_ok(&d, &["stats", "--no-stream", "svc"]);
    assert!(
        stats.starts_with("CONTAINER ID") && stats.contains("svc"),
        "{stats}"
    );
    let ps = skiff_ok(&d, &["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE"), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.contains(&id.trim()[..12]) && l.ends_with("svc")),
        "{ps}"
    );
    assert_eq!(
        skiff_ok(&d, &["exec", "svc", "sh", "-c", "echo $GREETING"]),
        "hey\n"
    );
    assert_eq!(
        skiff(&d, &["exec", "svc", "sh", "-c", "exit 6"])
            .status
            .code(),
        Some(6)
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&skiff_ok(&d, &["inspect", "svc"])).expect("json");
    assert_eq!(inspect[0]["State"]["Running"], true);
    skiff_ok(&d, &["stop", "-t", "1", "svc"]);
    assert!(skiff_ok(&d, &["ps", "-a", "-q"]).trim() == &id.trim()[..12]);
    skiff_ok(&d, &["rm", "svc"]);
    assert_eq!(skiff_ok(&d, &["ps", "-aq"]), "");
    let images = skiff_ok(&d, &["images"]);
    assert!(images.starts_with("REPOSITORY   TAG"), "{images}");
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("busybox") && l.contains("latest")),
        "{images}"
    );
    skiff_ok(&d, &["tag", BUSYBOX, "copy:1"]);
    let history = skiff_ok(&d, &["image", "history", "copy:1"]);
    assert!(
        history.starts_with("IMAGE") && history.contains("skiff testutil"),
        "{history}"
    );
    assert!(skiff_ok(&d, &["images"])
        .lines()
        .any(|l| l.starts_with("copy")));
    let logs = skiff_ok(
        &d,
        &[
            "run",
            "--name",
            "talker",
            BUSYBOX,
            "sh",
            "-c",
            "echo one; echo two",
        ],
    );
    assert_eq!(logs, "one\ntwo\n");
    assert_eq!(skiff_ok(&d, &["logs", "--tail", "1", "talker"]), "two\n");
}
