//! End-to-end tests of `skiff shim`: the real binary, launched through
//! `skiff_runtime::shim::launch`, runs busybox containers through a real OCI runtime, and is
//! driven with `ShimClient` the way the engine drives it.
//!
//! Every fixture lives in a `skiff-e2e-shim-*` temp dir with its own runtime root and a
//! `/skiff-shim-*` cgroup named after the container; all of it (shim, container, runtime state, cgroups) is
//! removed on drop, also when a test fails.

use std::io::BufRead;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use skiff_runtime::shim::{self, ExecRequest, ShimClient, ShimConfig, ShimError, Status};
use skiff_runtime::spec::{self, ContainerSpec, ExecSpec, NetworkMode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

#[path = "shim/hubs.rs"]
mod hubs;
#[path = "shim/robustness.rs"]
mod robustness;

use hubs::*;
use robustness::*;

/// Longest any single step may take before the test is declared hung.
const DEADLINE: Duration = Duration::from_secs(60);

const APPLETS: &[&str] = &[
    "head", "tr", "sh", "cat", "echo", "sleep", "stty", "tty", "true", "seq", "[", "grep", "yes",
];

/// One container's bundle, state dir and runtime root, cleaned up on drop.
struct Fixture {
    dir: tempfile::TempDir,
    /// The shim's state dir (inside `dir`).
    state: PathBuf,
    id: String,
    runtime: String,
    cgroup: String,
    tty: bool,
    open_stdin: bool,
    stdin_once: bool,
    log_max_size: Option<u64>,
    mount_hubs: Vec<PathBuf>,
}

impl Fixture {
    fn new(runtime: &str, args: &[&str], tty: bool) -> Result<Fixture> {
        Fixture::with_memory(runtime, args, tty, None)
    }

    /// A fixture whose container may use at most `memory` bytes (no swap).
    fn with_memory(
        runtime: &str,
        args: &[&str],
        tty: bool,
        memory: Option<i64>,
    ) -> Result<Fixture> {
        Fixture::build(runtime, args, tty, memory, vec![])
    }

    fn build(
        runtime: &str,
        args: &[&str],
        tty: bool,
        memory: Option<i64>,
        mounts: Vec<spec::MountSpec>,
    ) -> Result<Fixture> {
        let dir = tempfile::Builder::new()
            .prefix("skiff-e2e-shim-")
            .tempdir()?;
        let id = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace("skiff-e2e-shim-", "skiff-shim-")
            .to_lowercase();
        let rootfs = dir.path().join("bundle/rootfs");
        for sub in ["bin", "etc", "proc", "dev", "sys", "tmp"] {
            std::fs::create_dir_all(rootfs.join(sub))?;
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox"))
            .context("copying /bin/busybox (busybox-static)")?;
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n")?;
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n")?;
        let cgroup = format!("/{id}");
        let container = ContainerSpec {
            id: id.clone(),
            rootfs,
            args: args.iter().map(|a| a.to_string()).collect(),
            env: vec![],
            cwd: String::new(),
            user: String::new(),
            hostname: String::new(),
            tty,
            mounts,
            network: NetworkMode::Isolated,
            host_pid: false,
            host_ipc: false,
            host_uts: false,
            privileged: false,
            cap_add: vec![],
            cap_drop: vec![],
            read_only_rootfs: false,
            security_opt: vec![],
            memory_limit: memory,
            memory_swap: memory,
            nano_cpus: None,
            cpu_shares: None,
            pids_limit: None,
            cgroups_path: cgroup.clone(),
            etc_files: vec![],
            init_path: None,
            sysctls: vec![],
            annotations: vec![],
            ..Default::default()
        };
        spec::write_bundle(&spec::generate(&container)?, &dir.path().join("bundle"))?;
        Ok(Fixture {
            state: dir.path().join("state"),
            dir,
            id,
            runtime: runtime.to_string(),
            cgroup,
            tty,
            open_stdin: false,
            stdin_once: false,
            log_max_size: None,
            mount_hubs: vec![],
        })
    }

    fn state_dir(&self) -> PathBuf {
        self.state.clone()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("logs/container.log")
    }

    fn config(&self) -> ShimConfig {
        ShimConfig {
            id: self.id.clone(),
            bundle: self.dir.path().join("bundle"),
            state_dir: self.state_dir(),
            runtime: self.runtime.clone(),
            runtime_root: self.dir.path().join("runtime"),
            log_path: Some(self.log_path()),
            log_max_size: self.log_max_size,
            log_max_files: 3,
            tty: self.tty,
            open_stdin: self.open_stdin,
            stdin_once: self.stdin_once,
            // Found in the bundle, as for shims launched by older engines.
            cgroups_path: None,
            mount_hubs: self.mount_hubs.clone(),
        }
    }

    /// Launches the shim like the engine does (blocking call off the async runtime).
    async fn launch(&self) -> Result<ShimClient> {
        let config = self.config();
        tokio::task::spawn_blocking(move || {
            shim::launch(Path::new(env!("CARGO_BIN_EXE_skiff")), &config)
        })
        .await??;
        Ok(ShimClient::new(&self.state_dir()))
    }

    /// The log's entries as JSON objects.
    fn log_entries(&self) -> Result<Vec<serde_json::Value>> {
        let text = std::fs::read_to_string(self.log_path())?;
        text.lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("log line {l:?}")))
            .collect()
    }

    /// An exec of `args` in this fixture's container, attached to stdout and stderr.
    fn exec_request(
        &self,
        exec_id: &str,
        args: &[&str],
        tty: bool,
        stdin: bool,
    ) -> Result<ExecRequest> {
        let container =
            serde_json::from_slice(&std::fs::read(self.dir.path().join("bundle/config.json"))?)?;
        let process = spec::exec_process(
            &container,
            &ExecSpec {
                args: args.iter().map(|a| a.to_string()).collect(),
                tty,
                ..Default::default()
            },
        )?;
        Ok(ExecRequest {
            exec_id: exec_id.into(),
            process,
            tty,
            attach_stdin: stdin,
            attach_stdout: true,
            attach_stderr: true,
        })
    }

    fn shim_pid(&self) -> Option<i32> {
        std::fs::read_to_string(shim::pid_path(&self.state_dir()))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log =
                std::fs::read_to_string(self.state_dir().join("shim.log")).unwrap_or_default();
            eprintln!("--- shim.log of {} ---\n{log}", self.id);
        }
        // The shim is ours (we launched it); make sure it is not a reused pid.
        if let Some(pid) = self.shim_pid() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline)
                .contains(&self.state_dir().to_string_lossy().into_owned())
            {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
        if let Ok(backend) =
            skiff_runtime::backend::by_name(&self.runtime, &self.dir.path().join("runtime"))
        {
            let _ = backend.delete(&self.id, true);
        }
        if let Err(e) = skiff_runtime::cgroups::remove(&self.cgroup) {
            eprintln!("cannot remove cgroup {}: {e}", self.cgroup);
        }
    }
}

/// Runs `future`, failing the test instead of hanging when it does not finish.
async fn within<T>(what: &str, future: impl std::future::Future<Output = T>) -> Result<T> {
    tokio::time::timeout(DEADLINE, future)
        .await
        .with_context(|| format!("{what} did not finish within {DEADLINE:?}"))
}

/// Splits Docker's multiplexed stream into (stdout, stderr).
fn demux(mut bytes: &[u8]) -> Result<(String, String)> {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    while !bytes.is_empty() {
        ensure!(bytes.len() >= 8, "truncated frame header: {bytes:?}");
        let len = u32::from_be_bytes(bytes[4..8].try_into()?) as usize;
        ensure!(
            bytes[1..4] == [0, 0, 0],
            "bad frame header {:?}",
            &bytes[..8]
        );
        ensure!(bytes.len() >= 8 + len, "truncated frame");
        match bytes[0] {
            1 => out.extend_from_slice(&bytes[8..8 + len]),
            2 => err.extend_from_slice(&bytes[8..8 + len]),
            other => bail!("unknown stream {other}"),
        }
        bytes = &bytes[8 + len..];
    }
    Ok((String::from_utf8(out)?, String::from_utf8(err)?))
}

async fn read_all(stream: &mut UnixStream) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    within(
        "reading the stream to its end",
        stream.read_to_end(&mut bytes),
    )
    .await??;
    Ok(bytes)
}

/// Reads until `needle` has been seen; returns everything read.
async fn read_until(stream: &mut UnixStream, needle: &str) -> Result<String> {
    let mut seen = Vec::new();
    within(&format!("waiting for {needle:?}"), async {
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&seen).contains(needle) {
            let n = stream.read(&mut buf).await?;
            ensure!(
                n > 0,
                "stream ended before {needle:?}: {:?}",
                String::from_utf8_lossy(&seen)
            );
            seen.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(())
    })
    .await??;
    Ok(String::from_utf8_lossy(&seen).into_owned())
}

/// Polls until the shim has gone away after its container exited.
async fn shim_gone(client: &ShimClient) -> Result<()> {
    within("the shim exiting", async {
        loop {
            match client.state().await {
                Err(ShimError::NotRunning(_)) => return Ok(()),
                Err(e) => return Err(anyhow::Error::from(e)),
                Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await?
}

async fn run_echo_is_logged_as_json_file_and_wait_gives_exit_code(runtime: &str) -> Result<()> {
    let fx = Fixture::new(
        runtime,
        &["sh", "-c", "echo hello; echo oops >&2; exit 3"],
        false,
    )?;
    let client = fx.launch().await?;
    let state = client.state().await?;
    assert_eq!(state.status, Status::Created);
    assert!(state.pid > 0);
    assert_eq!(client.start().await?, state.pid);
    let exit = within("wait", client.wait()).await??;
    assert_eq!(exit.exit_code, 3);
    assert!(!exit.oom_killed);
    let entries = fx.log_entries()?;
    let lines: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["stream"].as_str().unwrap_or(""),
                e["log"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert!(lines.contains(&("stdout", "hello\n")), "{lines:?}");
    assert!(lines.contains(&("stderr", "oops\n")), "{lines:?}");
    for entry in &entries {
        let time = entry["time"].as_str().context("time")?;
        assert!(
            time.ends_with('Z') && time.contains('T'),
            "not RFC 3339 UTC: {time}"
        );
    }
    Ok(())
}

async fn run_log_rotates_by_size(runtime: &str) -> Result<()> {
    let mut fx = Fixture::new(
        runtime,
        &["sh", "-c", "for i in $(seq 1 40); do echo line $i; done"],
        false,
    )?;
    fx.log_max_size = Some(300);
    let client = fx.launch().await?;
    client.start().await?;
    assert_eq!(within("wait", client.wait()).await??.exit_code, 0);
    let rotated = |n: u32| PathBuf::from(format!("{}.{n}", fx.log_path().display()));
    assert!(
        rotated(1).exists() && rotated(2).exists(),
        "the log was rotated to .1 and .2"
    );
    assert!(
        !rotated(3).exists(),
        "at most log_max_files (3) files are kept"
    );
    let last = fx
        .log_entries()?
        .last()
        .cloned()
        .context("current log has entries")?;
    assert_eq!(last["log"], "line 40\n");
    Ok(())
}

async fn run_slow_attacher_does_not_stall_the_container(runtime: &str) -> Result<()> {
    // About 2.7 MB of output, more than the shim buffers for one client.
    let fx = Fixture::new(runtime, &["seq", "1", "400000"], false)?;
    let client = fx.launch().await?;
    let mut idle = client.attach(false, true, true).await?;
    client.start().await?;
    let exit = within("wait while an attacher reads nothing", client.wait()).await??;
    assert_eq!(exit.exit_code, 0);
    let last = fx
        .log_entries()?
        .last()
        .cloned()
        .context("log has entries")?;
    assert_eq!(last["log"], "400000\n", "the log has everything");
    let (out, _) = demux(&read_all(&mut idle).await?)?;
    assert!(
        out.starts_with("1\n2\n3\n"),
        "the slow attacher gets whole frames from the start"
    );
    assert!(
        out.len() < 2_000_000,
        "what did not fit was dropped for the slow attacher, not buffered without bound"
    );
    Ok(())
}

async fn run_pause_resume_and_hostile_requests(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["sleep", "1000"], false)?;
    let client = fx.launch().await?;
    match client.pause().await {
        Err(ShimError::Remote(e)) => {
            assert!(e.message.contains("created"), "{e}");
            assert_eq!(e.kind, skiff_core::ErrorKind::WrongState, "{e}");
        }
        other => bail!("pausing a created container: {other:?}"),
    }
    client.start().await?;
    client.pause().await?;
    assert_eq!(client.state().await?.status, Status::Paused);
    client.resume().await?;
    assert_eq!(client.state().await?.status, Status::Running);

    let socket = shim::socket_path(&fx.state_dir());
    for (garbage, kind) in [
        (&b"not json\n"[..], "invalid_argument"),
        (b"{\"op\":\"format_disk\"}\n", "invalid_argument"),
        // One byte over the shim's 1 MiB limit: it has read everything when it answers and
        // closes (a longer request would find the socket closed under it: broken pipe).
        (&vec![b'x'; (1 << 20) + 1][..], "too_large"),
    ] {
        let mut raw = UnixStream::connect(&socket).await?;
        raw.write_all(garbage).await?;
        let reply = String::from_utf8(read_line(&mut raw).await?)?;
        let reply: serde_json::Value = serde_json::from_str(&reply)?;
        assert_eq!(reply["error"]["kind"], kind, "{reply}");
        assert!(reply["error"]["message"].is_string(), "{reply}");
    }
    assert_eq!(
        client.state().await?.status,
        Status::Running,
        "the shim survives garbage"
    );
    client.kill(9, false).await?;
    assert_eq!(within("wait", client.wait()).await??.exit_code, 137);
    Ok(())
}

async fn read_line(stream: &mut UnixStream) -> Result<Vec<u8>> {
    let mut line = Vec::new();
    within("reading a reply line", async {
        loop {
            let byte = stream.read_u8().await?;
            if byte == b'\n' {
                return anyhow::Ok(());
            }
            line.push(byte);
        }
    })
    .await??;
    Ok(line)
}

async fn run_oom_kill_is_recorded(runtime: &str) -> Result<()> {
    let hog = "a=$(tr '\\0' x < /dev/zero | head -c 300000000); echo survived";
    let fx = Fixture::with_memory(runtime, &["sh", "-c", hog], false, Some(32 << 20))?;
    let client = fx.launch().await?;
    client.start().await?;
    let exit = within("wait", client.wait()).await??;
    assert!(exit.oom_killed, "{exit:?}");
    assert_eq!(exit.exit_code, 137, "{exit:?}");
    Ok(())
}

async fn run_attach_sees_output_and_sends_stdin(runtime: &str) -> Result<()> {
    let mut fx = Fixture::new(runtime, &["cat"], false)?;
    fx.open_stdin = true;
    fx.stdin_once = true;
    let client = fx.launch().await?;
    let mut writer = client.attach(true, true, true).await?;
    let mut watcher = client.attach(false, true, true).await?;
    client.start().await?;
    writer.write_all(b"ping\n").await?;
    // Closing the attached stdin (stdin_once) closes cat's stdin: it ends.
    writer.shutdown().await?;
    let (out, err) = demux(&read_all(&mut writer).await?)?;
    assert_eq!((out.as_str(), err.as_str()), ("ping\n", ""));
    let (out, _) = demux(&read_all(&mut watcher).await?)?;
    assert_eq!(out, "ping\n", "every attacher gets the same output");
    assert_eq!(within("wait", client.wait()).await??.exit_code, 0);
    Ok(())
}

/// Attach and start in one request: the stream still gets the very first output, and a start
/// that cannot happen (the container already runs) is refused on that same connection.
async fn run_attach_and_start_in_one_request(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["sh", "-c", "echo first; echo second >&2"], false)?;
    let client = fx.launch().await?;
    let (mut stream, pid) = client.attach_and_start(false, true, true).await?;
    ensure!(pid > 0, "pid {pid}");
    let (out, err) = demux(&read_all(&mut stream).await?)?;
    assert_eq!((out.as_str(), err.as_str()), ("first\n", "second\n"));
    assert_eq!(within("wait", client.wait()).await??.exit_code, 0);

    let fx = Fixture::new(runtime, &["sleep", "30"], false)?;
    let client = fx.launch().await?;
    client.start().await?;
    match client.attach_and_start(false, true, true).await {
        Err(ShimError::Remote(e)) => {
            ensure!(e.message.contains("cannot be started"), "{e}");
            ensure!(e.kind == skiff_core::ErrorKind::WrongState, "{e:?}");
        }
        other => bail!("a second start: {:?}", other.map(|(_, pid)| pid)),
    }
    client.kill(9, true).await?;
    assert_eq!(within("wait", client.wait()).await??.exit_code, 137);
    Ok(())
}

async fn run_tty_mode_streams_raw_bytes_and_resizes(runtime: &str) -> Result<()> {
    let mut fx = Fixture::new(runtime, &["sh"], true)?;
    fx.open_stdin = true;
    let client = fx.launch().await?;
    let mut stream = client.attach(true, true, true).await?;
    client.start().await?;
    client.resize(31, 101).await?;
    stream.write_all(b"stty size; exit 5\n").await?;
    let seen = read_until(&mut stream, "31 101").await?;
    assert_ne!(
        seen.as_bytes()[0],
        1,
        "tty output is raw, not framed: {seen:?}"
    );
    assert_eq!(within("wait", client.wait()).await??.exit_code, 5);
    let logged: String = fx
        .log_entries()?
        .iter()
        .map(|e| e["log"].as_str().unwrap_or("").to_string())
        .collect();
    assert!(
        logged.contains("31 101"),
        "tty output is logged as stdout: {logged:?}"
    );
    Ok(())
}

/// On a tty, an attach session that ends (a client detaching or closing its input) leaves the
/// container's input open even with `stdin_once`, as Docker does: the next attach types on.
async fn run_tty_input_outlives_an_attach_session(runtime: &str) -> Result<()> {
    let mut fx = Fixture::new(runtime, &["sh"], true)?;
    fx.open_stdin = true;
    fx.stdin_once = true;
    let client = fx.launch().await?;
    let mut first = client.attach(true, true, true).await?;
    client.start().await?;
    first.write_all(b"echo one-$((40+2))\n").await?;
    read_until(&mut first, "one-42").await?;
    first.shutdown().await?;
    drop(first);
    let mut second = client.attach(true, true, true).await?;
    second.write_all(b"echo two-$((40+3)); exit 3\n").await?;
    read_until(&mut second, "two-43").await?;
    assert_eq!(within("wait", client.wait()).await??.exit_code, 3);
    Ok(())
}

async fn run_exec_gives_output_and_exit_code_and_kill_stops(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["sleep", "1000"], false)?;
    let client = fx.launch().await?;
    client.start().await?;
    let exec = |exec_id: &str, args: &[&str], tty: bool, stdin: bool| {
        fx.exec_request(exec_id, args, tty, stdin)
    };

    let mut stream = client
        .exec(&exec(
            "e1",
            &["sh", "-c", "echo out; echo err >&2; exit 7"],
            false,
            false,
        )?)
        .await?;
    let (out, err) = demux(&read_all(&mut stream).await?)?;
    assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
    assert_eq!(within("exec_wait", client.exec_wait("e1")).await??, 7);
    assert!(client.exec_pid("e1").await? > 0);

    let mut stream = client.exec(&exec("cat", &["cat"], false, true)?).await?;
    stream.write_all(b"to exec\n").await?;
    stream.shutdown().await?; // closes the exec's stdin: cat ends
    let (out, _) = demux(&read_all(&mut stream).await?)?;
    assert_eq!(out, "to exec\n");
    assert_eq!(within("exec_wait", client.exec_wait("cat")).await??, 0);

    let mut stream = client.exec(&exec("e2", &["sh"], true, true)?).await?;
    client.exec_resize("e2", 20, 40).await?;
    stream.write_all(b"tty; stty size; exit 3\n").await?;
    let out = read_until(&mut stream, "20 40").await?;
    assert!(
        out.contains("/dev/pts/"),
        "exec with a tty gets its own pty: {out:?}"
    );
    assert_ne!(
        out.as_bytes()[0],
        1,
        "tty output is raw, not framed: {out:?}"
    );
    read_all(&mut stream).await?;
    assert_eq!(within("exec_wait", client.exec_wait("e2")).await??, 3);
    match client.exec_wait("nope").await {
        Err(ShimError::Remote(e)) => {
            assert!(e.message.contains("nope"), "{e}");
            assert_eq!(e.kind, skiff_core::ErrorKind::NotFound, "{e}");
        }
        other => bail!("unknown exec: {other:?}"),
    }

    client.kill(9, false).await?;
    let exit = within("wait", client.wait()).await??;
    assert_eq!(exit.exit_code, 137, "SIGKILL is 128 + 9");
    shim_gone(&client).await?;
    assert!(
        !shim::socket_path(&fx.state_dir()).exists(),
        "the shim removes its socket"
    );
    Ok(())
}

async fn run_exit_is_recorded_when_nobody_is_connected(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["sh", "-c", "exit 42"], false)?;
    let client = fx.launch().await?;
    client.start().await?;
    shim_gone(&client).await?;
    let exit = shim::read_exit(&fx.state_dir()).context("exit.json written")?;
    assert_eq!(exit.exit_code, 42);
    assert!(chrono_like(&exit.finished_at), "{}", exit.finished_at);
    assert_eq!(
        client.wait().await?.exit_code,
        42,
        "wait after the shim is gone reads exit.json"
    );
    Ok(())
}

fn chrono_like(time: &str) -> bool {
    time.len() > 20 && time.ends_with('Z') && time.as_bytes()[10] == b'T'
}

async fn run_launch_reports_the_creation_error(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["true"], false)?;
    std::fs::remove_file(fx.dir.path().join("bundle/config.json"))?;
    let err = fx
        .launch()
        .await
        .err()
        .context("launch without config.json must fail")?;
    let message = format!("{err:#}").to_lowercase();
    assert!(
        message.contains("config.json") || message.contains("no such file"),
        "the runtime's error: {message}"
    );
    assert!(!shim::socket_path(&fx.state_dir()).exists());
    Ok(())
}

async fn run_a_missing_command_arrives_as_a_kind(runtime: &str) -> Result<()> {
    let fx = Fixture::new(runtime, &["/no/such/binary"], false)?;
    // The runtime refuses at create (runc, libcontainer) or at start.
    let err = match fx.launch().await {
        Err(e) => e.downcast::<ShimError>()?,
        Ok(client) => client
            .start()
            .await
            .err()
            .context("starting a missing command must fail")?,
    };
    let ShimError::Remote(e) = err else {
        bail!("not the runtime's answer: {err:?}")
    };
    assert_eq!(e.kind, skiff_core::ErrorKind::InvalidArgument, "{e}");
    assert_eq!(
        e.command,
        Some(skiff_runtime::backend::CommandError::NotFound),
        "{e}"
    );
    assert!(e.message.contains("/no/such/binary"), "{e}");
    Ok(())
}

macro_rules! runtime_tests {
    ($($runtime:ident),*) => {$(
        mod $runtime {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn echo_is_logged_as_json_file_and_wait_gives_exit_code() -> anyhow::Result<()> {
                super::run_echo_is_logged_as_json_file_and_wait_gives_exit_code(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slow_attacher_does_not_stall_the_container() -> anyhow::Result<()> {
                super::run_slow_attacher_does_not_stall_the_container(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pause_resume_and_hostile_requests() -> anyhow::Result<()> {
                super::run_pause_resume_and_hostile_requests(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn oom_kill_is_recorded() -> anyhow::Result<()> {
                super::run_oom_kill_is_recorded(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn log_rotates_by_size() -> anyhow::Result<()> {
                super::run_log_rotates_by_size(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attach_sees_output_and_sends_stdin() -> anyhow::Result<()> {
                super::run_attach_sees_output_and_sends_stdin(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn attach_and_start_in_one_request() -> anyhow::Result<()> {
                super::run_attach_and_start_in_one_request(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tty_mode_streams_raw_bytes_and_resizes() -> anyhow::Result<()> {
                super::run_tty_mode_streams_raw_bytes_and_resizes(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn tty_input_outlives_an_attach_session() -> anyhow::Result<()> {
                super::run_tty_input_outlives_an_attach_session(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exec_gives_output_and_exit_code_and_kill_stops() -> anyhow::Result<()> {
                super::run_exec_gives_output_and_exit_code_and_kill_stops(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn exit_is_recorded_when_nobody_is_connected() -> anyhow::Result<()> {
                super::run_exit_is_recorded_when_nobody_is_connected(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn launch_reports_the_creation_error() -> anyhow::Result<()> {
                super::run_launch_reports_the_creation_error(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_missing_command_arrives_as_a_kind() -> anyhow::Result<()> {
                super::run_a_missing_command_arrives_as_a_kind(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shim_survives_its_launcher_being_killed() -> anyhow::Result<()> {
                super::run_shim_survives_its_launcher_being_killed(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn shim_works_under_a_state_dir_longer_than_sun_len() -> anyhow::Result<()> {
                super::run_shim_works_under_a_state_dir_longer_than_sun_len(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn a_mount_hub_keeps_only_the_containers_own_mounts() -> anyhow::Result<()> {
                super::run_a_mount_hub_keeps_only_the_containers_own_mounts(stringify!($runtime)).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn container_processes_do_not_ignore_sigpipe() -> anyhow::Result<()> {
                super::run_container_processes_do_not_ignore_sigpipe(stringify!($runtime)).await
            }
        }
    )*};
}

runtime_tests!(runc, embedded);
