#![allow(dead_code)] // each test target uses a different part of the harness

//! Removing what a test's skiff processes leave on the host, also after a failed test: the
//! processes (by the PIDs whose command lines name the test's directories), mounts under those
//! directories, cgroups under the test's cgroup parent, links by name prefix, nftables tables.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Deletes every link of the current network namespace whose name starts with one of
/// `prefixes`.
pub fn remove_links(prefixes: &[&str]) {
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split(": ").nth(1) else {
            continue;
        };
        let name = name.split('@').next().unwrap_or(name);
        if prefixes.iter().any(|p| name.starts_with(p)) {
            let _ = Command::new("ip").args(["link", "del", name]).output();
        }
    }
}

/// Deletes nftables table `inet <name>`.
pub fn remove_table(name: &str) {
    let _ = Command::new("nft")
        .args(["delete", "table", "inet", name])
        .output();
}

/// SIGKILLs every process whose command line mentions `dir` (shims get paths under it).
pub fn kill_processes_mentioning(dir: &std::path::Path) {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// Detaches every mount at or below `dir`, deepest first.
pub fn unmount_under(dir: &std::path::Path) {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut points: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
    }
}

/// Kills what runs in, and removes, `parent` and every cgroup below it in every hierarchy,
/// at the hierarchy's root and below this process's own cgroup there: runc and containerd
/// (dockerd's `--cgroup-parent`) put a relative parent under their own cgroup, which is not
/// the root in every hierarchy (on this machine the memory controller's is not).
pub fn remove_cgroups(parent: &str) {
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut dirs = Vec::new();
    for controller in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let name = controller.file_name().to_string_lossy().into_owned();
        collect_dirs(&controller.path().join(parent), &mut dirs);
        // `/proc/self/cgroup` lines are `id:controllers:path` (`0::path` for cgroup2).
        let below_own = own.lines().find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrls, path) = (f.next()?, f.next()?, f.next()?);
            let matches = if ctrls.is_empty() {
                name == "unified"
            } else {
                ctrls == name
            };
            (matches && path != "/").then(|| path.trim_start_matches('/').to_string())
        });
        if let Some(path) = below_own {
            collect_dirs(&controller.path().join(path).join(parent), &mut dirs);
        }
    }
    for dir in &dirs {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
    // Deepest first.
    dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
    for dir in dirs {
        let _ = poll(Duration::from_secs(5), || {
            (std::fs::remove_dir(&dir).is_ok() || !dir.exists()).then_some(())
        });
    }
}

fn collect_dirs(dir: &std::path::Path, out: &mut Vec<PathBuf>) {
    let Ok(children) = std::fs::read_dir(dir) else {
        return;
    };
    for c in children.flatten() {
        if c.file_type().is_ok_and(|t| t.is_dir()) {
            collect_dirs(&c.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}
