//! `docker update`: new limits reach the running container's cgroups at once, the restart
//! policy and limits are recorded, and refused updates change nothing. `docker diff`: what a
//! container changed, as Docker reports it.

use crate::common::{stderr, Daemon, BUSYBOX};

/// A cgroup file of the container as the container itself sees it.
fn cgroup(d: &Daemon, file: &str) -> String {
    d.docker_ok(&["exec", "upd", "cat", &format!("/sys/fs/cgroup/{file}")])
}

#[test]
fn update_changes_limits_of_a_running_container() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "upd",
        "-m",
        "64m",
        "--pids-limit",
        "50",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    assert_eq!(cgroup(&d, "memory/memory.limit_in_bytes"), "67108864");

    d.docker_ok(&[
        "update",
        "-m",
        "128m",
        "--memory-swap",
        "256m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "100",
        "--restart",
        "unless-stopped",
        "upd",
    ]);
    assert_eq!(cgroup(&d, "memory/memory.limit_in_bytes"), "134217728");
    assert_eq!(cgroup(&d, "pids/pids.max"), "100");
    assert_eq!(cgroup(&d, "cpu/cpu.cfs_quota_us"), "50000");
    let recorded = d.inspect(
        "upd",
        "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}} {{.HostConfig.PidsLimit}} {{.HostConfig.RestartPolicy.Name}}",
    );
    assert_eq!(recorded, "134217728 500000000 100 unless-stopped");

    // Refused: nothing changes.
    for (args, message) in [
        (vec!["update", "--cpus", "1000", "upd"], "Range of CPUs"),
        (vec!["update", "-m", "1k", "upd"], "Minimum memory limit"),
        (vec!["update", "-m", "64m", "nosuch"], "No such container"),
    ] {
        let out = d.docker(&args);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(message), "{args:?}: {}", stderr(&out));
    }
    assert_eq!(cgroup(&d, "memory/memory.limit_in_bytes"), "134217728");

    // A lifted pids limit is lifted in the cgroup too; a stopped container starts with the
    // updated limits.
    d.docker_ok(&["update", "--pids-limit", "-1", "upd"]);
    assert_eq!(cgroup(&d, "pids/pids.max"), "max");
    d.docker_ok(&["stop", "-t", "0", "upd"]);
    d.docker_ok(&["update", "-m", "96m", "upd"]);
    d.docker_ok(&["start", "upd"]);
    assert_eq!(cgroup(&d, "memory/memory.limit_in_bytes"), "100663296");
    d.docker_ok(&["rm", "-f", "upd"]);
}

#[test]
fn diff_lists_what_the_container_added_changed_and_deleted() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "--name",
        "chg",
        "-v",
        "/data",
        BUSYBOX,
        "sh",
        "-c",
        "mkdir -p /srv/app && echo x > /srv/app/f && rm /etc/group && echo y >> /etc/passwd",
    ]);
    let diff = d.docker_ok(&["diff", "chg"]);
    let lines: Vec<&str> = diff.lines().collect();
    for want in [
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
        "A /srv",
        "A /srv/app",
        "A /srv/app/f",
        "A /data",
    ] {
        assert!(lines.contains(&want), "{want:?} missing from:\n{diff}");
    }
    assert!(
        !diff.contains("/etc/hosts") && !diff.contains("/etc/resolv.conf"),
        "generated /etc files are not changes:\n{diff}"
    );
    let out = d.docker(&["diff", "nosuch"]);
    assert!(
        stderr(&out).contains("No such container"),
        "{}",
        stderr(&out)
    );
}
