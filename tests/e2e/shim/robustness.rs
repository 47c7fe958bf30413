//! Shim robustness: surviving its launcher, long state dirs, signal dispositions handed to
//! containers.

use super::*;

/// The shim must outlive the process that launched it: a helper process (this test binary,
/// re-executed to run this same test with [`HELPER_ENV`] set) launches it and is then
/// SIGKILLed with its whole process group.
pub(super) async fn run_shim_survives_its_launcher_being_killed(runtime: &str) -> Result<()> {
    if let Some(config_path) = std::env::var_os(HELPER_ENV) {
        launcher_helper(Path::new(&config_path));
    }
    let mut fx = Fixture::new(runtime, &["sh", "-c", "read line; echo got $line"], false)?;
    fx.open_stdin = true;
    fx.stdin_once = true;
    let config_path = fx.dir.path().join("launch.json");
    std::fs::write(&config_path, serde_json::to_vec(&fx.config())?)?;
    let mut helper = Command::new(std::env::current_exe()?)
        .args(["--exact", "--nocapture", "--test-threads=1"])
        .arg(format!(
            "{runtime}::shim_survives_its_launcher_being_killed"
        ))
        .env(HELPER_ENV, &config_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .process_group(0)
        .spawn()?;
    let helper_pid = nix::unistd::Pid::from_raw(helper.id() as i32);
    let stdout = helper.stdout.take().context("helper stdout")?;
    let launched = tokio::task::spawn_blocking(move || {
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .find(|l| l.contains(HELPER_MARK))
    });
    let line = within("the helper launching the shim", launched).await??;
    let _ = nix::sys::signal::killpg(helper_pid, nix::sys::signal::Signal::SIGKILL);
    let _ = helper.wait();
    let line = line.context("the helper ended without launching")?;
    ensure!(
        line.contains(&format!("{HELPER_MARK} ok")),
        "helper said {line:?}"
    );

    let client = ShimClient::new(&fx.state_dir());
    assert_eq!(
        client.state().await?.status,
        Status::Created,
        "a new client re-adopts the shim"
    );
    let mut stream = client.attach(true, true, false).await?;
    client.start().await?;
    stream.write_all(b"alive\n").await?;
    let (out, _) = demux(&read_all(&mut stream).await?)?;
    assert_eq!(out, "got alive\n");
    assert_eq!(within("wait", client.wait()).await??.exit_code, 0);
    Ok(())
}

/// The helper's life: launch the shim described in `config_path`, say how that went, then
/// stay alive like a daemon until the test kills it.
fn launcher_helper(config_path: &Path) -> ! {
    let config: ShimConfig = serde_json::from_slice(&std::fs::read(config_path).unwrap()).unwrap();
    match shim::launch(Path::new(env!("CARGO_BIN_EXE_skiff")), &config) {
        Ok(()) => println!("{HELPER_MARK} ok"),
        Err(e) => println!("{HELPER_MARK} error {e}"),
    }
    loop {
        std::thread::park();
    }
}

/// Regression: the shim's socket lives in its state dir, and a state dir whose `shim.sock`
/// path exceeds `sun_path` (108 bytes) made both the shim's bind and the client's connect fail.
pub(super) async fn run_shim_works_under_a_state_dir_longer_than_sun_len(
    runtime: &str,
) -> Result<()> {
    let mut fx = Fixture::new(runtime, &["cat"], false)?;
    fx.state = fx.dir.path().join("s".repeat(120)).join("state");
    ensure!(shim::socket_path(&fx.state_dir()).as_os_str().len() > 108);
    fx.open_stdin = true;
    fx.stdin_once = true;
    let client = fx.launch().await?;
    assert_eq!(client.state().await?.status, Status::Created);
    let mut stream = client.attach(true, true, true).await?;
    client.start().await?;
    let mut exec = client
        .exec(&fx.exec_request("e1", &["echo", "from exec"], false, false)?)
        .await?;
    let (out, _) = demux(&read_all(&mut exec).await?)?;
    assert_eq!(out, "from exec\n");
    let mut tty_exec = client
        .exec(&fx.exec_request("e2", &["sh", "-c", "tty"], true, false)?)
        .await?;
    let out = String::from_utf8(read_all(&mut tty_exec).await?)?;
    assert!(out.contains("/dev/pts/"), "{out:?}");
    stream.write_all(b"long\n").await?;
    stream.shutdown().await?;
    let (out, _) = demux(&read_all(&mut stream).await?)?;
    assert_eq!(out, "long\n");
    assert_eq!(within("wait", client.wait()).await??.exit_code, 0);
    shim_gone(&client).await?;
    assert!(
        !shim::socket_path(&fx.state_dir()).exists(),
        "the shim removes its socket"
    );
    Ok(())
}

/// Whether SIGPIPE is ignored according to the `SigIgn:` line of a `/proc/<pid>/status`.
pub(super) fn sigpipe_ignored(status: &str) -> Result<bool> {
    let mask = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("SigIgn:"))
        .with_context(|| format!("no SigIgn line in {status:?}"))?;
    let mask = u64::from_str_radix(mask.trim(), 16)?;
    Ok(mask & (1 << (libc::SIGPIPE - 1)) != 0)
}

/// Regression: Rust ignores SIGPIPE at startup and an ignored signal stays ignored across
/// exec, so with the embedded backend the container's processes ignored SIGPIPE (`yes |
/// head -1` spun on EPIPE instead of `yes` dying).
pub(super) async fn run_container_processes_do_not_ignore_sigpipe(runtime: &str) -> Result<()> {
    let fx = Fixture::new(
        runtime,
        &["sh", "-c", "grep SigIgn /proc/self/status; exec sleep 1000"],
        false,
    )?;
    let client = fx.launch().await?;
    let mut stream = client.attach(false, true, true).await?;
    client.start().await?;
    let line = read_until(&mut stream, "\n").await?;
    let (init, _) = demux(line.as_bytes())?;
    assert!(!sigpipe_ignored(&init)?, "container init: {init:?}");

    let mut exec = client
        .exec(&fx.exec_request("e1", &["grep", "SigIgn", "/proc/self/status"], false, false)?)
        .await?;
    let (out, _) = demux(&read_all(&mut exec).await?)?;
    assert!(!sigpipe_ignored(&out)?, "exec: {out:?}");

    // What a user notices: `yes` dies of SIGPIPE (128 + 13) once `head` is done.
    let mut exec = client
        .exec(&fx.exec_request(
            "e2",
            &[
                "sh",
                "-c",
                "(yes; echo yes ended with $? >&2) | head -1 >/dev/null",
            ],
            false,
            false,
        )?)
        .await?;
    let (_, err) = demux(&read_all(&mut exec).await?)?;
    assert_eq!(err, "yes ended with 141\n");

    client.kill(9, false).await?;
    within("wait", client.wait()).await??;
    Ok(())
}

pub(super) const HELPER_ENV: &str = "SKIFF_E2E_SHIM_LAUNCH_CONFIG";
pub(super) const HELPER_MARK: &str = "skiff-e2e-launched";

/// Processes running `<skiff> shim -`: spare shims of this test binary, and shims that began
/// as one (only the spare test starts any here).
fn spare_pids() -> Vec<i32> {
    let wanted = [env!("CARGO_BIN_EXE_skiff"), "shim", "-"].join("\0") + "\0";
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes())
        })
        .collect()
}

/// The pipes (`pipe:[inode]`) among a process's open files.
fn pipes_of(pid: &str) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|l| l.to_string_lossy().into_owned())
        .filter(|l| l.starts_with("pipe:"))
        .collect()
}

/// The nice value in a `/proc/<pid>/stat` line (its 19th field).
fn nice_in_stat(stat: &str) -> Option<i32> {
    let after_comm = &stat[stat.rfind(')')? + 2..];
    after_comm.split(' ').nth(16)?.parse().ok()
}

/// A spare shim takes a container handed to it (the launch must not fall back to starting the
/// given executable, `/bin/false` here), and one dropped unused exits. Started at the lowest
/// priority (the engine starts spares from its nice-19 background thread), it runs the
/// container at the normal one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spare_shim_runs_the_container_handed_to_it_and_an_unused_one_exits() -> Result<()> {
    let script = "read stat < /proc/self/stat; echo \"from-spare $stat\"; exit 4";
    let fx = Fixture::new("embedded", &["sh", "-c", script], false)?;
    let skiff = Path::new(env!("CARGO_BIN_EXE_skiff"));
    let spare = std::thread::spawn(move || {
        // SAFETY: setpriority on this (new, dedicated) thread only.
        if unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, 19) } != 0 {
            return Err(anyhow::anyhow!(
                "lowering the priority: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(shim::Spare::start(skiff)?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the spare's starter panicked"))??;
    let config = fx.config();
    tokio::task::spawn_blocking(move || {
        shim::launch_with(Path::new("/bin/false"), &config, Some(spare))
    })
    .await??;
    let client = ShimClient::new(&fx.state_dir());
    client.start().await?;
    let exit = within("wait", client.wait()).await??;
    assert_eq!(exit.exit_code, 4);
    let log = std::fs::read_to_string(fx.log_path())?;
    let stat = log
        .split("from-spare ")
        .nth(1)
        .and_then(|rest| rest.split("\\n").next())
        .with_context(|| format!("no output from the container: {log}"))?;
    assert_eq!(nice_in_stat(stat), Some(0), "{stat}");

    // The new spare is the one reading a pipe this process just opened: other tests (and other
    // test binaries running at the same time) start spares with the same command line, and the
    // shim that ran the container has it too while it lingers.
    let pipes_before = pipes_of("self");
    let unused = tokio::task::spawn_blocking(move || shim::Spare::start(skiff)).await??;
    let new_pipes: Vec<String> = pipes_of("self")
        .into_iter()
        .filter(|p| !pipes_before.contains(p))
        .collect();
    let waiting: Vec<i32> = spare_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/fd/0"))
                .is_ok_and(|l| new_pipes.contains(&l.to_string_lossy().into_owned()))
        })
        .collect();
    ensure!(waiting.len() == 1, "one new spare waits: {waiting:?}");
    drop(unused);
    within("the unused spare to exit", async {
        while spare_pids().contains(&waiting[0]) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
}
