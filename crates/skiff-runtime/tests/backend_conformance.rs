//! One conformance suite for every runtime backend (`embedded`, `runc`, `crun`): each case
//! generates a spec with `skiff_runtime::spec`, runs a busybox container through the backend
//! and checks what a user would see.
//!
//! A `harness = false` target driven by `libtest-mimic`: every backend × case is one test
//! named `<backend>::<case>`, so the usual filters work (`cargo test -p skiff-runtime --test
//! backend_conformance -- crun::`) and the summary counts passed, failed and ignored cases.
//! A backend this host cannot run (crun on hybrid cgroups, see docs/adr/0004) has its cases
//! reported as ignored with the backend's own reason; so are all cases when not root.
//!
//! Everything runs on the main thread (`--test-threads` is forced to 1), because libcontainer
//! clones and must not do so in a multi-threaded process. The process makes itself a child
//! subreaper so that container processes are re-parented to it and can be waited for.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use libtest_mimic::{Arguments, Completion, Failed, Trial};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use skiff_runtime::backend::{self, Backend, Stdio};
use skiff_runtime::cgroups;
use skiff_runtime::spec::{self, ContainerSpec, ExecSpec};

#[path = "backend_conformance/confinement.rs"]
mod confinement;

use confinement::status_field;

const DEADLINE: Duration = Duration::from_secs(30);
/// Docker's default capabilities, by kernel number.
const DEFAULT_CAP_BITS: &[u32] = &[0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31];

/// Removes the suite's temporary directories even when a case panics.
struct TempDirs(Vec<PathBuf>);

impl Drop for TempDirs {
    fn drop(&mut self) {
        for d in &self.0 {
            let _ = std::fs::remove_dir_all(d);
        }
        let _ = cgroups::remove(&cgroup_parent());
    }
}

/// The cgroup parent of this run's containers, removed at the end.
fn cgroup_parent() -> String {
    format!("/skiff-conformance-{}", std::process::id())
}

struct Ctx<'a> {
    backend: &'a dyn Backend,
    rootfs: PathBuf,
    bundles: PathBuf,
    case: &'static str,
}

/// A created container; deleted (force) when dropped unless [`Ctr::delete`] ran.
struct Ctr<'a> {
    backend: &'a dyn Backend,
    id: String,
    cgroups_path: String,
    spec: oci_spec::runtime::Spec,
    pid: i32,
    stdout: OwnedFd,
    stderr: OwnedFd,
    deleted: bool,
}

impl Drop for Ctr<'_> {
    fn drop(&mut self) {
        if !self.deleted {
            let _ = self.backend.delete(&self.id, true);
            let _ = waitpid(Pid::from_raw(self.pid), Some(WaitPidFlag::WNOHANG));
            let _ = cgroups::remove(&self.cgroups_path);
        }
    }
}

/// Pipes for a process: (stdio to hand over, our stdout end, our stderr end).
fn pipes() -> Result<(Stdio, OwnedFd, OwnedFd)> {
    let (out_r, out_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (err_r, err_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let stdin: OwnedFd = std::fs::File::open("/dev/null")?.into();
    Ok((
        Stdio::Fds {
            stdin,
            stdout: out_w,
            stderr: err_w,
        },
        out_r,
        err_r,
    ))
}

fn remaining(deadline: Instant) -> Result<PollTimeout> {
    let left = deadline
        .checked_duration_since(Instant::now())
        .ok_or_else(|| anyhow!("timed out"))?;
    Ok(PollTimeout::from(left.as_millis().min(60_000) as u16))
}

/// Reads `fd` until EOF (or until `stop` matches what was read so far).
fn read_until(fd: &OwnedFd, stop: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + DEADLINE;
    let mut out = Vec::new();
    loop {
        if stop(&String::from_utf8_lossy(&out)) {
            break;
        }
        let mut fds = [PollFd::new(fd.as_fd(), PollFlags::POLLIN)];
        if poll(&mut fds, remaining(deadline)?)? == 0 {
            continue;
        }
        let mut buf = [0u8; 4096];
        match nix::unistd::read(fd, &mut buf)? {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn read_all(fd: &OwnedFd) -> Result<String> {
    read_until(fd, |_| false).context("reading output")
}

/// Waits for `pid` (a child of ours thanks to the subreaper) and returns a shell-style exit
/// code (128 + signal when killed).
fn wait_exit(pid: i32) -> Result<i32> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG))? {
            WaitStatus::Exited(_, code) => return Ok(code),
            WaitStatus::Signaled(_, sig, _) => return Ok(128 + sig as i32),
            _ if Instant::now() > deadline => {
                bail!("process {pid} did not exit within {DEADLINE:?}")
            }
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

impl Ctx<'_> {
    fn spec(&self, args: &[&str]) -> ContainerSpec {
        let id = format!(
            "skiff-conf-{}-{}-{}",
            self.backend.name(),
            self.case.replace('_', "-"),
            std::process::id()
        );
        ContainerSpec {
            cgroups_path: format!("{}/{id}", cgroup_parent()),
            id,
            rootfs: self.rootfs.clone(),
            args: args.iter().map(|a| a.to_string()).collect(),
            hostname: "skiff-conf".into(),
            ..Default::default()
        }
    }

    /// Creates (not starts) a container.
    fn create(&self, c: &ContainerSpec) -> Result<Ctr<'_>> {
        let spec = spec::generate(c)?;
        let bundle = self.bundles.join(&c.id);
        spec::write_bundle(&spec, &bundle)?;
        let (stdio, stdout, stderr) = pipes()?;
        let pid = self.backend.create(&c.id, &bundle, stdio)?;
        Ok(Ctr {
            backend: self.backend,
            id: c.id.clone(),
            cgroups_path: c.cgroups_path.clone(),
            spec,
            pid,
            stdout,
            stderr,
            deleted: false,
        })
    }

    /// Runs a container to completion: (exit code, stdout, stderr).
    fn run(&self, c: &ContainerSpec) -> Result<(i32, String, String)> {
        let mut ctr = self.create(c)?;
        self.backend.start(&ctr.id)?;
        let code = wait_exit(ctr.pid)?;
        let out = read_all(&ctr.stdout)?;
        let err = read_all(&ctr.stderr)?;
        ctr.delete()?;
        Ok((code, out, err))
    }
}

impl Ctr<'_> {
    /// Deletes the container and checks that no cgroup directory of it is left.
    fn delete(&mut self) -> Result<()> {
        self.backend.delete(&self.id, false).context("delete")?;
        self.deleted = true;
        let left: Vec<_> = cgroups::dirs(&self.cgroups_path)?
            .into_iter()
            .filter(|d| d.exists())
            .collect();
        ensure!(left.is_empty(), "cgroup dirs left after delete: {left:?}");
        // Gone from the runtime too: a second delete (`docker rm` twice) finds nothing.
        match self.backend.delete(&self.id, false) {
            Err(backend::BackendError::NotFound(_)) => Ok(()),
            other => bail!("a second delete answered {other:?}, want not found"),
        }
    }

    fn kill_and_wait(&self, signal: Signal, all: bool) -> Result<i32> {
        self.backend.kill(&self.id, signal as i32, all)?;
        wait_exit(self.pid)
    }
}

fn output_and_exit_code(cx: &Ctx) -> Result<()> {
    let (code, out, err) = cx.run(&cx.spec(&["sh", "-c", "echo hello; echo oops >&2; exit 3"]))?;
    ensure!(code == 3, "exit code {code}");
    ensure!(out == "hello\n", "stdout {out:?}");
    ensure!(err == "oops\n", "stderr {err:?}");
    Ok(())
}

fn env_cwd_user_hostname(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&[
        "sh",
        "-c",
        "echo $FOO; pwd; id -u; id -g; id -G; hostname; echo $HOME",
    ]);
    c.env = vec!["FOO=bar".into()];
    c.cwd = "/tmp".into();
    c.user = "skiffuser".into();
    let (code, out, err) = cx.run(&c)?;
    ensure!(code == 0, "exit code {code}, stderr {err:?}");
    let want = "bar\n/tmp\n1000\n1000\n1000 2000\nskiff-conf\n/home/skiffuser\n";
    ensure!(out == want, "stdout {out:?}, want {want:?}");
    Ok(())
}

fn kill_sigterm(cx: &Ctx) -> Result<()> {
    // pid 1 ignores signals it has no handler for: trap TERM, then say so.
    let mut ctr = cx.create(&cx.spec(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; echo ready; sleep 1000 & wait",
    ]))?;
    cx.backend.start(&ctr.id)?;
    let out = read_until(&ctr.stdout, |s| s.contains("ready"))?;
    ensure!(out.contains("ready"), "no ready line: {out:?}");
    let code = ctr.kill_and_wait(Signal::SIGTERM, false)?;
    ensure!(code == 42, "exit code {code}, want the trap's 42");
    ctr.delete()
}

fn kill_sigkill_all(cx: &Ctx) -> Result<()> {
    let mut ctr = cx.create(&cx.spec(&["sleep", "1000"]))?;
    cx.backend.start(&ctr.id)?;
    let code = ctr.kill_and_wait(Signal::SIGKILL, true)?;
    ensure!(code == 137, "exit code {code}");
    ctr.delete()
}

fn pause_resume(cx: &Ctx) -> Result<()> {
    let mut ctr = cx.create(&cx.spec(&["sleep", "1000"]))?;
    cx.backend.start(&ctr.id)?;
    ensure!(!cgroups::frozen(&ctr.cgroups_path)?, "frozen before pause");
    cx.backend.pause(&ctr.id)?;
    ensure!(
        cgroups::frozen(&ctr.cgroups_path)?,
        "not frozen after pause"
    );
    cx.backend.resume(&ctr.id)?;
    ensure!(
        !cgroups::frozen(&ctr.cgroups_path)?,
        "still frozen after resume"
    );
    ensure!(ctr.kill_and_wait(Signal::SIGKILL, false)? == 137);
    ctr.delete()
}

fn exec_output_and_exit_code(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&["sleep", "1000"]);
    c.env = vec!["FOO=from-container".into()];
    let mut ctr = cx.create(&c)?;
    cx.backend.start(&ctr.id)?;
    let exec = ExecSpec {
        args: vec![
            "sh".into(),
            "-c".into(),
            "echo exec-out $FOO $BAR; cat /proc/1/cmdline; exit 5".into(),
        ],
        env: vec!["BAR=from-exec".into()],
        ..ExecSpec::default()
    };
    let process = spec::exec_process(&ctr.spec, &exec)?;
    let (stdio, out_r, _err_r) = pipes()?;
    let pid = cx.backend.exec(&ctr.id, &process, stdio)?;
    let code = wait_exit(pid)?;
    let out = read_all(&out_r)?;
    ensure!(code == 5, "exec exit code {code}");
    ensure!(
        out.starts_with("exec-out from-container from-exec\nsleep"),
        "exec stdout {out:?}"
    );
    ensure!(ctr.kill_and_wait(Signal::SIGKILL, false)? == 137);
    ctr.delete()
}

fn exec_is_confined_like_init(cx: &Ctx) -> Result<()> {
    let mut ctr = cx.create(&cx.spec(&["sleep", "1000"]))?;
    cx.backend.start(&ctr.id)?;
    let script = "grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; unshare -U true";
    let exec = ExecSpec {
        args: vec!["sh".into(), "-c".into(), script.into()],
        ..ExecSpec::default()
    };
    let (stdio, out_r, err_r) = pipes()?;
    let pid = cx
        .backend
        .exec(&ctr.id, &spec::exec_process(&ctr.spec, &exec)?, stdio)?;
    let code = wait_exit(pid)?;
    let (out, err) = (read_all(&out_r)?, read_all(&err_r)?);
    let want: u64 = DEFAULT_CAP_BITS.iter().map(|b| 1u64 << b).sum();
    ensure!(
        u64::from_str_radix(&status_field(&out, "CapEff:")?, 16)? == want,
        "exec caps: {out}"
    );
    ensure!(
        status_field(&out, "NoNewPrivs:")? == "1",
        "exec without no_new_privs: {out}"
    );
    ensure!(
        status_field(&out, "Seccomp:")? == "2",
        "exec without seccomp filter: {out}"
    );
    ensure!(
        code != 0 && err.contains("Operation not permitted"),
        "exec could unshare: {code} {err:?}"
    );
    ensure!(ctr.kill_and_wait(Signal::SIGKILL, false)? == 137);
    ctr.delete()
}

/// Receives the pty master a runtime sent over the console socket.
fn receive_master(listener: &std::os::unix::net::UnixListener) -> Result<OwnedFd> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    use std::os::fd::{AsRawFd, FromRawFd};
    let (conn, _) = listener.accept()?;
    let mut buf = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        MsgFlags::empty(),
    )?;
    for c in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return Ok(unsafe { OwnedFd::from_raw_fd(*fd) });
            }
        }
    }
    bail!("no descriptor received on the console socket")
}

fn console_socket_tty(cx: &Ctx) -> Result<()> {
    let mut c = cx.spec(&["sh", "-c", "tty; [ -t 1 ] && echo is-a-tty; echo done"]);
    c.tty = true;
    let spec = spec::generate(&c)?;
    let bundle = cx.bundles.join(&c.id);
    spec::write_bundle(&spec, &bundle)?;
    let socket = bundle.join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket)?;
    let pid = cx
        .backend
        .create(&c.id, &bundle, Stdio::Console { socket })?;
    // With a terminal there is no separate stderr: an unused pipe end stands in for it.
    let (_, _, no_stderr) = pipes()?;
    let mut ctr = Ctr {
        backend: cx.backend,
        id: c.id.clone(),
        cgroups_path: c.cgroups_path.clone(),
        spec,
        pid,
        stdout: receive_master(&listener)?,
        stderr: no_stderr,
        deleted: false,
    };
    cx.backend.start(&ctr.id)?;
    // Reading a pty master fails with EIO once the last slave is closed: read up to "done".
    let text = read_until(&ctr.stdout, |s| s.contains("done"))?;
    let code = wait_exit(ctr.pid)?;
    ensure!(code == 0, "exit code {code}, output {text:?}");
    ensure!(
        text.contains("/dev/pts/0") && text.contains("is-a-tty"),
        "not a terminal: {text:?}"
    );
    ctr.delete()
}

type Case = fn(&Ctx) -> Result<()>;

const CASES: &[(&str, Case)] = &[
    ("output_and_exit_code", output_and_exit_code),
    ("env_cwd_user_hostname", env_cwd_user_hostname),
    ("kill_sigterm", kill_sigterm),
    ("kill_sigkill_all", kill_sigkill_all),
    ("pause_resume", pause_resume),
    ("exec_output_and_exit_code", exec_output_and_exit_code),
    ("exec_is_confined_like_init", exec_is_confined_like_init),
    ("console_socket_tty", console_socket_tty),
    ("read_only_rootfs", confinement::read_only_rootfs),
    (
        "read_only_bind_left_submounts_writable",
        confinement::read_only_bind_left_submounts_writable,
    ),
    ("memory_limit_oom_kill", confinement::memory_limit_oom_kill),
    ("pids_limit", confinement::pids_limit),
    (
        "default_capabilities_and_no_new_privs",
        confinement::default_capabilities_and_no_new_privs,
    ),
    (
        "masked_and_readonly_proc",
        confinement::masked_and_readonly_proc,
    ),
    (
        "seccomp_blocks_user_namespaces",
        confinement::seccomp_blocks_user_namespaces,
    ),
    ("namespace_isolation", confinement::namespace_isolation),
    (
        "delete_removes_cgroups",
        confinement::delete_removes_cgroups,
    ),
    ("stats_report_usage", confinement::stats_report_usage),
    (
        "create_error_is_explained",
        confinement::create_error_is_explained,
    ),
];

/// A busybox rootfs: `/bin/busybox`, a symlink per applet, a user and groups to resolve.
fn build_rootfs(dir: &Path) -> Result<()> {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin)?;
    std::fs::copy("/bin/busybox", bin.join("busybox"))
        .context("copying /bin/busybox (install busybox-static)")?;
    let list = std::process::Command::new("/bin/busybox")
        .arg("--list")
        .output()?;
    for applet in String::from_utf8_lossy(&list.stdout)
        .lines()
        .filter(|a| *a != "busybox")
    {
        std::os::unix::fs::symlink("busybox", bin.join(applet))?;
    }
    for d in ["etc", "proc", "sys", "dev", "home/skiffuser"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    std::fs::create_dir_all(dir.join("tmp"))?;
    std::fs::set_permissions(
        dir.join("tmp"),
        std::os::unix::fs::PermissionsExt::from_mode(0o1777),
    )?;
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nskiffuser:x:1000:1000::/home/skiffuser:/bin/sh\n",
    )?;
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nskiffgrp:x:1000:\nextra:x:2000:skiffuser\n",
    )?;
    Ok(())
}

/// Prepares the suite: `Err(reason)` when it cannot run here at all (reported as ignored),
/// `Ok(Err(why))` when preparing failed (reported as a failure of every case).
fn setup(rootfs: &Path) -> std::result::Result<std::result::Result<(), String>, String> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err("needs root".into());
    }
    Ok(nix::sys::prctl::set_child_subreaper(true)
        .context("becoming a child subreaper")
        .and_then(|()| build_rootfs(rootfs))
        .map_err(|e| format!("setting up the suite: {e:#}")))
}

fn main() -> ExitCode {
    let mut args = Arguments::from_args();
    // libcontainer must not clone from a multi-threaded process: run every case on this thread.
    args.test_threads = Some(1);

    let base = PathBuf::from(format!("/run/skiff-conformance-{}", std::process::id()));
    let _cleanup = TempDirs(vec![base.clone()]);
    let rootfs = base.join("rootfs");
    // `--list` only names the cases: prepare nothing for it.
    let setup = if args.list {
        Ok(Ok(()))
    } else {
        setup(&rootfs)
    };

    let mut trials = Vec::new();
    for name in backend::NAMES {
        let root = base.join("state").join(name);
        // Why this backend's cases cannot run on this host, if they cannot.
        let host_blocked = match &setup {
            Err(reason) => Some(reason.clone()),
            Ok(_) => backend::by_name(name, &root)
                .and_then(|b| b.check_host())
                .err()
                .map(|e| e.to_string()),
        };
        let setup_failed = setup.clone().ok().and_then(Result::err);
        for &(case, run) in CASES {
            let (host_blocked, setup_failed) = (host_blocked.clone(), setup_failed.clone());
            let (root, rootfs, bundles) = (root.clone(), rootfs.clone(), base.join("bundles"));
            trials.push(Trial::ignorable_test(
                format!("{name}::{case}"),
                move || {
                    if let Some(reason) = host_blocked {
                        return Ok(Completion::ignored_with(reason));
                    }
                    if let Some(why) = setup_failed {
                        return Err(why.into());
                    }
                    let backend = backend::by_name(name, &root).map_err(|e| e.to_string())?;
                    let cx = Ctx {
                        backend: backend.as_ref(),
                        rootfs,
                        bundles,
                        case,
                    };
                    run(&cx).map_err(|e| Failed::from(format!("{e:#}")))?;
                    Ok(Completion::Completed)
                },
            ));
        }
    }
    let conclusion = libtest_mimic::run(&args, trials);

    // Reap whatever else was re-parented to us.
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if matches!(status, WaitStatus::StillAlive) {
            break;
        }
    }
    conclusion.exit_code()
}
