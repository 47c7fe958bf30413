//! The daemon stopped under running containers through the docker CLI: SIGKILL and a restart
//! keep them running and listed, SIGTERM shuts down gracefully and leaves them running.

use crate::common::{eventually, reference, Daemon, Streaming, BUSYBOX};
use crate::LONG;

#[test]
fn daemon_sigkill_and_restart_keeps_containers() {
    if reference() {
        eprintln!("skipped: the reference daemon is not ours to kill");
        return;
    }
    let mut d = Daemon::start();
    let script = "i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done";
    d.docker_ok(&[
        "run", "-d", "--name", "survivor", BUSYBOX, "sh", "-c", script,
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "short",
        BUSYBOX,
        "sh",
        "-c",
        "sleep 2; exit 7",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "phoenix",
        "--restart",
        "always",
        BUSYBOX,
        "sh",
        "-c",
        "sleep 2; exit 1",
    ]);
    let short_pid: i32 = d.inspect("short", "{{.State.Pid}}").parse().expect("pid");
    let survivor_pid = d.inspect("survivor", "{{.State.Pid}}");
    let phoenix_restarts: u32 = d
        .inspect("phoenix", "{{.RestartCount}}")
        .parse()
        .expect("count");
    d.kill_daemon();
    eventually(
        LONG,
        "the short container to exit while the daemon is down",
        || (!std::path::Path::new(&format!("/proc/{short_pid}")).exists()).then_some(()),
    );
    d.restart_daemon();
    assert_eq!(
        d.inspect("survivor", "{{.State.Running}} {{.State.Pid}}"),
        format!("true {survivor_pid}")
    );
    assert!(d.docker_ok(&["ps"]).contains("survivor"));
    assert_eq!(
        d.inspect("short", "{{.State.Status}} {{.State.ExitCode}}"),
        "exited 7"
    );
    let follow = Streaming::spawn(d.docker_cmd(&["logs", "-f", "--tail", "1", "survivor"]));
    let first: u32 = follow
        .expect_line(LONG, |l| l.starts_with("tick "))
        .trim_start_matches("tick ")
        .parse()
        .unwrap();
    follow.expect_line(LONG, |l| l == format!("tick {}", first + 3));
    eventually(
        LONG,
        "the restart policy to apply after the daemon restart",
        || {
            let n: u32 = d.inspect("phoenix", "{{.RestartCount}}").parse().ok()?;
            (n > phoenix_restarts).then_some(())
        },
    );
}

#[test]
fn daemon_sigterm_shuts_down_gracefully_and_leaves_containers_running() {
    if reference() {
        eprintln!("skipped: the reference daemon is not ours to stop");
        return;
    }
    let mut d = Daemon::start();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(d.socket())
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o660, "socket mode");
    d.docker_ok(&["run", "-d", "--name", "keeper", BUSYBOX, "sleep", "300"]);
    let pid: i32 = d.inspect("keeper", "{{.State.Pid}}").parse().expect("pid");
    let status = d.terminate_daemon();
    assert!(status.success(), "clean exit on SIGTERM: {status}");
    assert!(!d.socket().exists(), "socket removed on shutdown");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "container survives the daemon"
    );
    d.restart_daemon();
    assert_eq!(
        d.inspect("keeper", "{{.State.Running}} {{.State.Pid}}"),
        format!("true {pid}")
    );
}
