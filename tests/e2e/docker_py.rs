//! docker-py 7.1 (pyenv's `python3`) against `skiff daemon`: the script tests/e2e/docker_py.py
//! runs one section per test, each against a fresh daemon — containers.run, logs, wait,
//! exec_run and images.load (basics); what create keeps and the container runs with
//! (config); output never lost to a client slow to read the upgrade head (streams); detach
//! keys (detach); commit; corrupt loads and the stats' `networks` member (load_and_stats);
//! user networks, ports, DNS and the daemon's network errors (networks);
//! images.build with build args, labels, the cache and a failing step (build).

mod common;

use std::time::Duration;

use common::{reference, stderr, stdout, Daemon};

fn run_section(section: &str) {
    let d = Daemon::start();
    let scratch = tempfile::Builder::new()
        .prefix("skiff-e2e-py")
        .tempdir()
        .expect("tmp");
    let tar = scratch.path().join("busybox.tar");
    std::fs::write(
        &tar,
        skiff_image::testutil::busybox_docker_archive(common::BUSYBOX),
    )
    .expect("tar");
    let config = scratch.path().join("docker-config");
    std::fs::create_dir(&config).expect("docker config dir");
    let mut cmd = std::process::Command::new("python3");
    // Tests run in the package root, where `file!()` is relative to.
    cmd.arg(std::path::Path::new(file!()).with_file_name("docker_py.py"))
        .arg(&tar)
        .arg(section)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", &config)
        .stdin(std::process::Stdio::null());
    if !reference() {
        cmd.env("SKIFF_STATE", d.state());
    }
    // A subnet and a host port of this daemon's own (the networks section).
    let (subnet, port) = if reference() {
        ("10.250.210.0/24".to_string(), 29_050)
    } else {
        (d.slot().subnet(10), 20_000 + d.slot().n as u16 * 20 + 15)
    };
    cmd.env("E2E_SUBNET", subnet)
        .env("E2E_PORT", port.to_string());
    let out = common::run_with_timeout(cmd, Duration::from_secs(300));
    assert!(
        out.status.success(),
        "docker-py section {section} failed:\n{}\n{}\ndaemon log:\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
}

#[test]
fn docker_py_runs_containers_and_loads_images() {
    run_section("basics");
}

/// `Env: ["Foo"]` kept, `GroupAdd` honoured (names and ids, execs too), max-file without
/// max-size accepted, `Runtime: "runc"` runs on runc, `CgroupnsMode` and `MemorySwappiness`
/// as Docker reports them.
#[test]
fn docker_py_create_keeps_and_runs_what_it_was_given() {
    run_section("config");
}

/// Regression: output sent right after the `101` head (an exec with a tty, the log replay of
/// `attach(logs=True)`) was lost when docker-py read the head late, as under load.
#[test]
fn docker_py_output_is_not_lost_to_a_late_head_read() {
    run_section("streams");
}

#[test]
fn docker_py_detach_keys_end_the_session_not_the_process() {
    run_section("detach");
}

#[test]
fn docker_py_commit_makes_an_image_that_runs() {
    run_section("commit");
}

#[test]
fn docker_py_corrupt_load_and_stats_networks() {
    run_section("load_and_stats");
}

/// A user network with a static subnet through docker-py: published port, DNS by name and
/// alias, connect with a fixed address, disconnect, prune, and the errors only the daemon
/// checks (port specs, duplicate names, overlaps, networks in use, addresses outside).
#[test]
fn docker_py_networks_ports_dns_and_server_side_errors() {
    run_section("networks");
}

#[test]
fn docker_py_builds_images_with_cache_and_errors() {
    run_section("build");
}
