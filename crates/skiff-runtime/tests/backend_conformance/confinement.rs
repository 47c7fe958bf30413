//! Conformance cases about confinement: read-only filesystems, resource limits, capabilities,
//! masked /proc paths, seccomp, namespaces and cgroup cleanup.

use super::*;

pub(super) fn read_only_rootfs(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&["touch", "/skiff-ro-test"]);
    c.read_only_rootfs = true;
    let (code, _, err) = cx.run(&c)?;
    ensure!(code != 0, "write to a read-only rootfs succeeded");
    ensure!(err.contains("Read-only file system"), "stderr {err:?}");
    ensure!(!cx.rootfs.join("skiff-ro-test").exists());
    Ok(())
}

/// Unmounts (lazily) and removes a host directory with a tmpfs submount, even on failure.
struct SubmountDir(PathBuf);

impl Drop for SubmountDir {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0.join("sub"), nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `-v src:/data:ro` where `src` has a mount below it: the submount must be read-only too.
pub(super) fn read_only_bind_left_submounts_writable(cx: &Ctx) -> Result<()> {
    let dir = SubmountDir(std::env::temp_dir().join(format!(
        "skiff-conf-robind-{}-{}",
        cx.backend.name(),
        std::process::id()
    )));
    std::fs::create_dir_all(dir.0.join("sub"))?;
    nix::mount::mount(
        Some("tmpfs"),
        &dir.0.join("sub"),
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .context("mounting a tmpfs below the bind source")?;
    std::fs::write(dir.0.join("file"), "original")?;
    let mut c = cx.spec(&[
        "sh",
        "-c",
        "touch /data/top; touch /data/sub/inner; echo changed > /file; cat /file",
    ]);
    c.mounts = vec![
        spec::MountSpec::Bind {
            source: dir.0.clone(),
            destination: "/data".into(),
            read_only: true,
        },
        // A single file can be bound read-only too (`-v /host/file:/file:ro`).
        spec::MountSpec::Bind {
            source: dir.0.join("file"),
            destination: "/file".into(),
            read_only: true,
        },
    ];
    let (_, out, err) = cx.run(&c)?;
    ensure!(
        out == "original" && std::fs::read_to_string(dir.0.join("file"))? == "original",
        "wrote through a read-only file bind: {out:?} {err:?}"
    );
    ensure!(
        !dir.0.join("top").exists(),
        "wrote through a read-only bind"
    );
    ensure!(
        !dir.0.join("sub/inner").exists(),
        "wrote into a submount of a read-only bind: {err:?}"
    );
    Ok(())
}

pub(super) fn memory_limit_oom_kill(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]);
    c.memory_limit = Some(16 << 20);
    let mut ctr = cx.create(&c)?;
    let limit = cgroups::stats(&ctr.cgroups_path)?.memory.limit;
    ensure!(limit == Some(16 << 20), "memory limit in cgroup {limit:?}");
    cx.backend.start(&ctr.id)?;
    let code = wait_exit(ctr.pid)?;
    ensure!(code == 137, "exit code {code}, want 137 (OOM kill)");
    ensure!(
        cgroups::oom_killed(&ctr.cgroups_path),
        "oom_killed is false"
    );
    ctr.delete()
}

pub(super) fn pids_limit(cx: &Ctx) -> Result<()> {
    // runc's init is a Go program: its runtime threads count against the
    // limit until it execs the entrypoint, and under load it starts more of
    // them. A limit of 5 killed runc's init before `start` now and then, so
    // the limit leaves room for them and the loop goes well past it.
    let mut c = cx.spec(&[
        "sh",
        "-c",
        "i=0; while [ $i -lt 40 ]; do sleep 100 & i=$((i+1)); done; echo done",
    ]);
    c.pids_limit = Some(16);
    let mut ctr = cx.create(&c)?;
    let pids = cgroups::stats(&ctr.cgroups_path)?.pids;
    ensure!(
        pids.limit == Some(16),
        "pids limit in cgroup {:?}",
        pids.limit
    );
    cx.backend.start(&ctr.id)?;
    wait_exit(ctr.pid)?;
    let err = read_all(&ctr.stderr)?;
    ensure!(
        err.contains("can't fork"),
        "forks were not refused: {err:?}"
    );
    ctr.delete()
}

pub(super) fn status_field(status: &str, key: &str) -> Result<String> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
        .ok_or_else(|| anyhow!("no {key} in {status:?}"))
}

pub(super) fn default_capabilities_and_no_new_privs(cx: &Ctx) -> Result<()> {
    let (code, out, _) = cx.run(&cx.spec(&["cat", "/proc/self/status"]))?;
    ensure!(code == 0);
    let want: u64 = DEFAULT_CAP_BITS.iter().map(|b| 1u64 << b).sum();
    for key in ["CapEff:", "CapPrm:", "CapBnd:"] {
        let got = u64::from_str_radix(&status_field(&out, key)?, 16)?;
        ensure!(got == want, "{key} {got:#x}, want {want:#x}");
    }
    ensure!(status_field(&out, "CapAmb:")? == "0000000000000000");
    ensure!(
        status_field(&out, "NoNewPrivs:")? == "1",
        "no_new_privs not set"
    );
    ensure!(status_field(&out, "Seccomp:")? == "2", "no seccomp filter");
    Ok(())
}

pub(super) fn masked_and_readonly_proc(cx: &Ctx) -> Result<()> {
    // Which masked entries exist depends on the kernel: check those this host has.
    let host_has = |kind: fn(&std::fs::Metadata) -> bool| {
        spec::MASKED_PATHS
            .iter()
            .filter(|p| p.starts_with("/proc/") && std::fs::metadata(p).is_ok_and(|m| kind(&m)))
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
    };
    let files = host_has(|m| m.is_file());
    let dirs = host_has(|m| m.is_dir());
    ensure!(
        !files.is_empty() && !dirs.is_empty(),
        "host has none of the masked /proc paths"
    );
    let script = format!(
        "cat {} | wc -c; ls -A {} | wc -l; echo x > /proc/sys/kernel/domainname",
        files.join(" "),
        dirs.join(" ")
    );
    let (code, out, err) = cx.run(&cx.spec(&["sh", "-c", &script]))?;
    let lines: Vec<&str> = out.lines().map(str::trim).collect();
    ensure!(
        lines.first() == Some(&"0"),
        "masked files {files:?} readable: {out:?} {err:?}"
    );
    ensure!(
        lines.get(1) == Some(&"0"),
        "masked dirs {dirs:?} not empty: {out:?} {err:?}"
    );
    ensure!(
        code != 0 && err.contains("Read-only file system"),
        "/proc/sys writable: {code} {err:?}"
    );
    Ok(())
}

pub(super) fn seccomp_blocks_user_namespaces(cx: &Ctx) -> Result<()> {
    // Creating a user namespace needs no capability, so only the filter stops it.
    let (code, _, err) = cx.run(&cx.spec(&["unshare", "-U", "true"]))?;
    ensure!(
        code != 0 && err.contains("Operation not permitted"),
        "unshare allowed: {code} {err:?}"
    );
    let mut c = cx.spec(&["unshare", "-U", "true"]);
    c.security_opt = vec!["seccomp=unconfined".into()];
    let (code, _, err) = cx.run(&c)?;
    ensure!(
        code == 0,
        "control without seccomp failed too ({code} {err:?}): the check proves nothing"
    );
    Ok(())
}

pub(super) fn namespace_isolation(cx: &Ctx) -> Result<()> {
    let script =
        "echo $$; hostname; for n in pid uts ipc mnt net; do readlink /proc/self/ns/$n; done";
    let (code, out, err) = cx.run(&cx.spec(&["sh", "-c", script]))?;
    ensure!(code == 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    ensure!(lines.len() == 7, "output {out:?}");
    ensure!(lines[0] == "1", "shell is pid {} inside, not 1", lines[0]);
    ensure!(lines[1] == "skiff-conf", "hostname {}", lines[1]);
    for (i, ns) in ["pid", "uts", "ipc", "mnt", "net"].iter().enumerate() {
        let host = std::fs::read_link(format!("/proc/self/ns/{ns}"))?;
        ensure!(
            Path::new(lines[2 + i]) != host,
            "{ns} namespace shared with the host"
        );
    }
    Ok(())
}

pub(super) fn delete_removes_cgroups(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&["sleep", "1000"]);
    c.memory_limit = Some(64 << 20);
    c.pids_limit = Some(50);
    let mut ctr = cx.create(&c)?;
    cx.backend.start(&ctr.id)?;
    let existing: Vec<_> = cgroups::dirs(&ctr.cgroups_path)?
        .into_iter()
        .filter(|d| d.exists())
        .collect();
    ensure!(!existing.is_empty(), "container has no cgroup dir at all");
    ensure!(
        cgroups::pids(&ctr.cgroups_path)? == vec![ctr.pid],
        "cgroup processes"
    );
    let err = match cx.backend.delete(&ctr.id, false) {
        Ok(()) => bail!("deleting a running container without force succeeded"),
        Err(e) => e,
    };
    ensure!(!err.to_string().is_empty());
    ensure!(ctr.kill_and_wait(Signal::SIGKILL, false)? == 137);
    ctr.delete()?;
    match cx.backend.start(&ctr.id) {
        Err(backend::BackendError::NotFound(_)) => Ok(()),
        other => bail!("start after delete: {other:?}"),
    }
}

pub(super) fn stats_report_usage(cx: &Ctx) -> Result<()> {
    let script =
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 1000 & echo busy-done; wait";
    let mut c = cx.spec(&["sh", "-c", script]);
    c.memory_limit = Some(256 << 20);
    let mut ctr = cx.create(&c)?;
    cx.backend.start(&ctr.id)?;
    let out = read_until(&ctr.stdout, |s| s.contains("busy-done"))?;
    ensure!(out.contains("busy-done"), "no output: {out:?}");
    let s = cgroups::stats(&ctr.cgroups_path)?;
    ensure!(s.cpu.total_usage > 0, "no cpu usage: {s:?}");
    ensure!(
        s.cpu.system_cpu_usage > s.cpu.total_usage,
        "system cpu usage {s:?}"
    );
    ensure!(
        s.memory.usage > 0 && s.memory.limit == Some(256 << 20),
        "memory {:?}",
        s.memory
    );
    ensure!(
        s.pids.current == 2,
        "pids.current {} (want sh and sleep)",
        s.pids.current
    );
    ensure!(ctr.kill_and_wait(Signal::SIGKILL, true)? == 137);
    ctr.delete()
}

pub(super) fn create_error_is_explained(cx: &Ctx) -> Result<()> {
    let c = cx.spec(&["/skiff-no-such-binary"]);
    let result: Result<()> = cx.create(&c).and_then(|mut ctr| {
        cx.backend.start(&ctr.id)?;
        let code = wait_exit(ctr.pid)?;
        ctr.delete()?;
        bail!("started a missing binary (exit code {code})")
    });
    let err = format!("{:#}", result.err().context("no error")?);
    ensure!(
        err.contains("skiff-no-such-binary") || err.contains("No such file"),
        "unhelpful error: {err}"
    );
    Ok(())
}
