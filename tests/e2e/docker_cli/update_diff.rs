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

    // A block-I/O weight: applied where the host has proportional block I/O, else accepted,
    // discarded and warned of, as dockerd does (this VM's disk has no such scheduler).
    let out = d.docker(&["update", "--blkio-weight", "300", "upd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!("{}{}", crate::common::stdout(&out), stderr(&out));
    let weight = d.inspect("upd", "{{.HostConfig.BlkioWeight}}");
    if said.contains("Your kernel does not support Block I/O weight") {
        assert_eq!(weight, "0", "{said}");
    } else {
        assert_eq!(weight, "300", "{said}");
        assert_eq!(cgroup(&d, "blkio/blkio.weight"), "300");
    }
    let out = d.docker(&["run", "--rm", "--blkio-weight", "5", BUSYBOX, "true"]);
    let said = format!("{}{}", crate::common::stdout(&out), stderr(&out));
    assert!(
        said.contains("Weight discarded")
            || said.contains("Range of blkio weight is from 10 to 1000"),
        "{said}"
    );
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

/// Regression: the generated /etc/hostname, /etc/hosts and /etc/resolv.conf had their mount
/// points created in the container's own layer, so every container showed `C /etc` in
/// `docker diff` and carried them into `docker commit`. Like Docker, they are bind-mounted
/// from the container's directory onto an init layer.
#[test]
fn diff_and_commit_leave_the_generated_etc_files_out() {
    let d = Daemon::start();
    d.docker_ok(&["run", "--name", "fresh", BUSYBOX, "true"]);
    assert_eq!(
        d.docker_ok(&["diff", "fresh"]),
        "",
        "an untouched container"
    );

    d.docker_ok(&[
        "run",
        "--name",
        "writer",
        "--hostname",
        "named",
        BUSYBOX,
        "sh",
        "-c",
        "echo from-writer > /f; cat /etc/hostname",
    ]);
    assert_eq!(d.docker_ok(&["diff", "writer"]), "A /f");
    let id = d.docker_ok(&[
        "commit",
        "--change",
        "CMD [\"cat\", \"/f\"]",
        "-m",
        "cli note",
        "writer",
        "clicommit:1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Comment}}",
        "clicommit:1",
    ]);
    assert_eq!(
        history.lines().next(),
        Some("sh -c echo from-writer > /f; cat /etc/hostname|cli note"),
        "{history}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "clicommit:1"]), "from-writer");
    // The new container has its own name in /etc/hostname, not the committed one's.
    let hostname = d.docker_ok(&[
        "run",
        "--rm",
        "--hostname",
        "other",
        "clicommit:1",
        "cat",
        "/etc/hostname",
    ]);
    assert_eq!(hostname, "other");
    // A container that never ran has nothing to add: the image's layers, one more history entry.
    d.docker_ok(&["create", "--name", "never-ran", BUSYBOX, "true"]);
    d.docker_ok(&["commit", "never-ran", "never:1"]);
    assert_eq!(
        d.inspect("never:1", "{{len .RootFS.Layers}}"),
        d.inspect(BUSYBOX, "{{len .RootFS.Layers}}")
    );
    let out = d.docker(&["commit", "nosuch"]);
    assert!(
        stderr(&out).contains("No such container"),
        "{}",
        stderr(&out)
    );
}

/// Regression: an image without `/proc`, `/sys` or `/dev` (here a `docker import` of a rootfs
/// holding only busybox) got them made in the container's own layer by the runtime, so
/// `docker diff` listed `A /dev`, `A /proc` and `A /sys` and `docker commit` carried them.
/// Like Docker's, the init layer holds these mount points.
#[test]
fn diff_leaves_the_runtime_mount_points_out_of_an_image_without_them() {
    let d = Daemon::start();
    let busybox = std::fs::read("/bin/busybox").expect("/bin/busybox (install busybox-static)");
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o755);
    h.set_size(busybox.len() as u64);
    h.set_uid(0);
    h.set_gid(0);
    tar.append_data(&mut h, "bin/busybox", busybox.as_slice())
        .expect("tar busybox");
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Symlink);
    h.set_mode(0o777);
    h.set_size(0);
    tar.append_link(&mut h, "bin/ls", "busybox")
        .expect("tar symlink");
    let dir = tempfile::tempdir().expect("tempdir");
    let archive = dir.path().join("bare.tar");
    std::fs::write(&archive, tar.into_inner().expect("tar")).expect("write tar");
    d.docker_ok(&["import", archive.to_str().expect("utf-8"), "bare:1"]);

    let proc_listing = d.docker_ok(&["run", "--name", "bare", "bare:1", "/bin/ls", "/proc/self"]);
    assert!(
        proc_listing.contains("status"),
        "/proc is mounted: {proc_listing}"
    );
    assert_eq!(
        d.docker_ok(&["diff", "bare"]),
        "",
        "mount points are no changes"
    );
    d.docker_ok(&["commit", "bare", "bare:2"]);
    assert_eq!(
        d.inspect("bare:2", "{{len .RootFS.Layers}}"),
        d.inspect("bare:1", "{{len .RootFS.Layers}}"),
        "nothing to commit"
    );
}
