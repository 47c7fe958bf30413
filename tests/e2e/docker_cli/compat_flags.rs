//! `docker run` flags skiff once accepted and ignored (found by running the same command
//! lines against dockerd): `--volumes-from`, `--device`, `--cpu-period`/`--cpu-quota`,
//! `--cpuset-cpus`, `--memory-reservation`; and `--ipc host` on a host without /dev/mqueue.

use crate::common::{stderr, Daemon, BUSYBOX};

#[test]
fn volumes_from_shares_the_other_containers_volumes() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "--name",
        "db",
        "-v",
        "/data",
        "-v",
        "named:/named",
        BUSYBOX,
        "sh",
        "-c",
        "echo anon > /data/f && echo named > /named/f",
    ]);
    // Docker's backup recipe: another container reads them at the same paths.
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--volumes-from",
        "db",
        BUSYBOX,
        "cat",
        "/data/f",
        "/named/f",
    ]);
    assert_eq!(out, "anon\nnamed");
    let out = d.docker(&[
        "run",
        "--rm",
        "--volumes-from",
        "db:ro",
        BUSYBOX,
        "touch",
        "/named/x",
    ]);
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["run", "--rm", "--volumes-from", "nosuch", BUSYBOX, "true"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn devices_and_cpu_memory_settings_reach_the_container() {
    let d = Daemon::start();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--device",
        "/dev/null:/dev/mynull",
        BUSYBOX,
        "sh",
        "-c",
        "echo x > /dev/mynull && ls -l /dev/mynull",
    ]);
    assert!(out.starts_with("crw"), "a character device: {out}");
    let out = d.docker(&[
        "run",
        "--rm",
        "--device",
        "/dev/skiff-nosuch",
        BUSYBOX,
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("error gathering device information"),
        "{}",
        stderr(&out)
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--cpu-period",
        "50000",
        "--cpu-quota",
        "25000",
        "--cpuset-cpus",
        "0",
        "--memory-reservation",
        "10m",
        BUSYBOX,
        "cat",
        "/sys/fs/cgroup/cpu/cpu.cfs_period_us",
        "/sys/fs/cgroup/cpu/cpu.cfs_quota_us",
        "/sys/fs/cgroup/cpuset/cpuset.cpus",
        "/sys/fs/cgroup/memory/memory.soft_limit_in_bytes",
    ]);
    assert_eq!(out, "50000\n25000\n0\n10485760");
    let out = d.docker(&["run", "--rm", "--cpu-quota", "10", BUSYBOX, "true"]);
    assert!(
        stderr(&out).contains("CPU cfs quota can not be less than 1ms"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ipc_host_runs_without_a_host_dev_mqueue() {
    let d = Daemon::start();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--ipc",
        "host",
        BUSYBOX,
        "sh",
        "-c",
        "grep -c -E ' /dev/(shm|mqueue) ' /proc/mounts",
    ]);
    assert_eq!(out, "2");
}
