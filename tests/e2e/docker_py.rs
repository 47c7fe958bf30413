//! docker-py 7.1 (pyenv's `python3`) against `skiff daemon`: the script
//! tests/e2e/docker_py.py drives containers.run, detached logs/wait/remove, exec_run and
//! images.load.

mod common;

use std::time::Duration;

use common::{stderr, stdout, Daemon};

#[test]
fn docker_py_runs_containers_and_loads_images() {
    let d = Daemon::start();
    let archive = tempfile::Builder::new()
        .prefix("skiff-e2e-py")
        .tempdir()
        .expect("tmp");
    let tar = archive.path().join("busybox.tar");
    std::fs::write(
        &tar,
        skiff_image::testutil::busybox_docker_archive(common::BUSYBOX),
    )
    .expect("tar");
    let mut cmd = std::process::Command::new("python3");
    // Tests run in the package root, where `file!()` is relative to.
    cmd.arg(std::path::Path::new(file!()).with_file_name("docker_py.py"))
        .arg(&tar)
        .env("DOCKER_HOST", d.host())
        .stdin(std::process::Stdio::null());
    let out = common::run_with_timeout(cmd, Duration::from_secs(300));
    assert!(
        out.status.success(),
        "docker-py script failed:\n{}\n{}\ndaemon log:\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
}
