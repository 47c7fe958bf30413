//! skiff's own docker-like CLI (`skiff run`, `skiff ps`, …) against `skiff daemon`.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{stderr, stdout, Daemon, BUSYBOX};

fn skiff(d: &Daemon, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args)
        .env("DOCKER_HOST", d.host())
        .stdin(std::process::Stdio::null());
    common::run_with_timeout(cmd, Duration::from_secs(120))
}

fn skiff_ok(d: &Daemon, args: &[&str]) -> String {
    let out = skiff(d, args);
    assert!(
        out.status.success(),
        "skiff {args:?}: {}\n{}",
        stderr(&out),
        stdout(&out)
    );
    stdout(&out)
}

#[test]
fn skiff_run_rm_prints_output_and_exit_code() {
    let d = Daemon::start();
    assert_eq!(
        skiff_ok(&d, &["run", "--rm", BUSYBOX, "echo", "hi"]),
        "hi\n"
    );
    let out = skiff(&d, &["run", "--rm", BUSYBOX, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    let out = skiff(&d, &["run", "--rm", "nosuchimage"]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("Unable to find image 'nosuchimage' locally"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn skiff_verbs_manage_containers_and_images() {
    let d = Daemon::start();
    let id = skiff_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "svc",
            "-e",
            "GREETING=hey",
            BUSYBOX,
            "sleep",
            "300",
        ],
    );
    assert_eq!(id.trim().len(), 64);
    let top = skiff_ok(&d, &["top", "svc"]);
    assert!(top.lines().any(|l| l.contains("sleep 300")), "{top}");
    let stats = skiff_ok(&d, &["stats", "--no-stream", "svc"]);
    assert!(
        stats.starts_with("CONTAINER ID") && stats.contains("svc"),
        "{stats}"
    );
    let ps = skiff_ok(&d, &["ps"]);
    assert!(ps.starts_with("CONTAINER ID   IMAGE"), "{ps}");
    assert!(
        ps.lines()
            .any(|l| l.contains(&id.trim()[..12]) && l.ends_with("svc")),
        "{ps}"
    );
    assert_eq!(
        skiff_ok(&d, &["exec", "svc", "sh", "-c", "echo $GREETING"]),
        "hey\n"
    );
    assert_eq!(
        skiff(&d, &["exec", "svc", "sh", "-c", "exit 6"])
            .status
            .code(),
        Some(6)
    );
    assert_eq!(
        skiff_ok(&d, &["update", "-m", "96m", "--restart", "always", "svc"]).trim(),
        "svc"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&skiff_ok(&d, &["inspect", "svc"])).expect("json");
    assert_eq!(inspect[0]["State"]["Running"], true);
    assert_eq!(inspect[0]["HostConfig"]["Memory"], 96 << 20);
    assert_eq!(inspect[0]["HostConfig"]["RestartPolicy"]["Name"], "always");
    skiff_ok(&d, &["stop", "-t", "1", "svc"]);
    assert!(skiff_ok(&d, &["ps", "-a", "-q"]).trim() == &id.trim()[..12]);
    skiff_ok(&d, &["rm", "svc"]);
    assert_eq!(skiff_ok(&d, &["ps", "-aq"]), "");
    let images = skiff_ok(&d, &["images"]);
    assert!(images.starts_with("REPOSITORY   TAG"), "{images}");
    assert!(
        images
            .lines()
            .any(|l| l.starts_with("busybox") && l.contains("latest")),
        "{images}"
    );
    skiff_ok(&d, &["tag", BUSYBOX, "copy:1"]);
    let history = skiff_ok(&d, &["image", "history", "copy:1"]);
    assert!(
        history.starts_with("IMAGE") && history.contains("skiff testutil"),
        "{history}"
    );
    assert!(skiff_ok(&d, &["images"])
        .lines()
        .any(|l| l.starts_with("copy")));
    let logs = skiff_ok(
        &d,
        &[
            "run",
            "--name",
            "talker",
            BUSYBOX,
            "sh",
            "-c",
            "echo one; echo two",
        ],
    );
    assert_eq!(logs, "one\ntwo\n");
    assert_eq!(skiff_ok(&d, &["logs", "--tail", "1", "talker"]), "two\n");
}

/// `skiff` with stdin from `input` (a file) instead of nothing.
fn skiff_with_stdin(d: &Daemon, args: &[&str], input: &std::path::Path) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(args)
        .env("DOCKER_HOST", d.host())
        .stdin(std::fs::File::open(input).expect("open stdin file"));
    common::run_with_timeout(cmd, Duration::from_secs(120))
}

fn skiff_fails(d: &Daemon, args: &[&str]) -> String {
    let out = skiff(d, args);
    assert!(!out.status.success(), "skiff {args:?} succeeded");
    stderr(&out)
}

#[test]
fn skiff_cp_copies_files_and_dirs_both_ways() {
    let d = Daemon::start();
    skiff_ok(&d, &["run", "-d", "--name", "box", BUSYBOX, "sleep", "300"]);
    let host = tempfile::Builder::new()
        .prefix("skiff-cp")
        .tempdir()
        .unwrap();
    let h = |p: &str| host.path().join(p).to_str().unwrap().to_owned();
    std::fs::write(h("hello.txt"), "hello\n").unwrap();
    std::fs::create_dir_all(h("tree/sub")).unwrap();
    std::fs::write(h("tree/a"), "a\n").unwrap();
    std::fs::write(h("tree/sub/b"), "b\n").unwrap();
    let cat = |path: &str| skiff_ok(&d, &["exec", "box", "cat", path]);

    // Host → container: into an existing directory, or under a new name.
    skiff_ok(&d, &["cp", &h("hello.txt"), "box:/tmp"]);
    assert_eq!(cat("/tmp/hello.txt"), "hello\n");
    skiff_ok(&d, &["cp", &h("hello.txt"), "box:/tmp/renamed.txt"]);
    assert_eq!(cat("/tmp/renamed.txt"), "hello\n");
    skiff_ok(&d, &["cp", &h("tree"), "box:/tmp/"]);
    assert_eq!(cat("/tmp/tree/sub/b"), "b\n");
    skiff_ok(&d, &["cp", &h("tree"), "box:/tmp/tree2"]);
    assert_eq!(cat("/tmp/tree2/a"), "a\n");
    let err = skiff_fails(&d, &["cp", &h("tree"), "box:/tmp/hello.txt"]);
    assert!(err.contains("cannot copy a directory to a file"), "{err}");

    // Container → host: the same rules the other way.
    std::fs::create_dir(h("out")).unwrap();
    skiff_ok(&d, &["cp", "box:/tmp/tree", &h("out")]);
    assert_eq!(std::fs::read_to_string(h("out/tree/sub/b")).unwrap(), "b\n");
    skiff_ok(&d, &["cp", "box:/tmp/tree", &h("out/copy")]);
    assert_eq!(std::fs::read_to_string(h("out/copy/a")).unwrap(), "a\n");
    skiff_ok(&d, &["cp", "box:/tmp/renamed.txt", &h("out/file")]);
    assert_eq!(std::fs::read_to_string(h("out/file")).unwrap(), "hello\n");
    skiff_ok(&d, &["cp", "box:/tmp/hello.txt", &h("out")]);
    assert_eq!(
        std::fs::read_to_string(h("out/hello.txt")).unwrap(),
        "hello\n"
    );
    std::fs::create_dir(h("flat")).unwrap();
    skiff_ok(&d, &["cp", "box:/tmp/tree/.", &h("flat")]);
    let dbg = skiff(&d, &["cp", "box:/tmp/tree/.", "-"]);
    for e in tar::Archive::new(&dbg.stdout[..]).entries().unwrap() {
        eprintln!("DBG {:?}", e.unwrap().path().unwrap());
    }
    eprintln!(
        "DBG {:?}",
        std::fs::read_dir(h("flat")).unwrap().collect::<Vec<_>>()
    );
    assert_eq!(std::fs::read_to_string(h("flat/sub/b")).unwrap(), "b\n");
    let err = skiff_fails(&d, &["cp", "box:/nope", &h("out")]);
    assert!(
        err.contains("Could not find the file /nope in container box"),
        "{err}"
    );
    let err = skiff_fails(&d, &["cp", "ghost:/tmp", &h("out")]);
    assert!(err.contains("No such container"), "{err}");
    let err = skiff_fails(&d, &["cp", "box:/tmp/tree", &h("out/file")]);
    assert!(err.contains("cannot copy a directory to a file"), "{err}");

    // `-`: a tar on stdout, and a tar from stdin.
    let out = skiff(&d, &["cp", "box:/tmp/tree", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = tar::Archive::new(&out.stdout[..])
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let names: Vec<&str> = names.iter().map(|n| n.trim_end_matches('/')).collect();
    assert_eq!(names, ["tree", "tree/a", "tree/sub", "tree/sub/b"]);
    std::fs::write(h("tree.tar"), &out.stdout).unwrap();
    skiff_ok(&d, &["exec", "box", "mkdir", "/tmp/fromtar"]);
    let out = skiff_with_stdin(
        &d,
        &["cp", "-", "box:/tmp/fromtar"],
        &host.path().join("tree.tar"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(cat("/tmp/fromtar/tree/sub/b"), "b\n");
    skiff_ok(&d, &["rm", "-f", "box"]);
}

const STATS_HEADER: [&str; 8] = [
    "CONTAINER ID",
    "NAME",
    "CPU %",
    "MEM USAGE / LIMIT",
    "MEM %",
    "NET I/O",
    "BLOCK I/O",
    "PIDS",
];

/// Cells of a docker table line (columns are separated by at least three spaces; cells such
/// as `1MiB / 2MiB` hold single spaces).
fn cells(line: &str) -> Vec<String> {
    line.split("   ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn skiff_stats_prints_docker_columns() {
    let d = Daemon::start();
    let id = skiff_ok(
        &d,
        &["run", "-d", "--name", "busy", BUSYBOX, "sleep", "300"],
    );
    let stats = skiff_ok(&d, &["stats", "--no-stream", "busy"]);
    let mut lines = stats.lines();
    assert_eq!(cells(lines.next().unwrap()), STATS_HEADER, "{stats}");
    let row = cells(lines.next().expect("a row"));
    assert_eq!(row.len(), STATS_HEADER.len(), "{stats}");
    assert_eq!(row[0], id.trim()[..12]);
    assert_eq!(row[1], "busy");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{stats}");
    assert!(row[3].contains(" / ") && row[5].contains(" / "), "{stats}");
    assert!(row[7].parse::<u64>().unwrap() >= 1, "{stats}");
    let err = skiff_fails(&d, &["stats", "--no-stream", "ghost"]);
    assert!(err.contains("Error response from daemon"), "{err}");

    // Streaming: the table is redrawn until Ctrl-C, then the command ends cleanly.
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["stats", "busy"])
        .env("DOCKER_HOST", d.host())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn skiff stats");
    let out = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let mut redraws = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while redraws < 2 {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stats did not redraw twice within 30s");
        };
        if line.contains("CONTAINER ID") {
            assert!(line.starts_with("\x1b[2J\x1b[H"), "{line:?}");
            redraws += 1;
        }
    }
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let status = common::eventually(Duration::from_secs(10), "stats to end on SIGINT", || {
        child.try_wait().ok().flatten()
    });
    assert!(status.success(), "{status:?}");
    skiff_ok(&d, &["rm", "-f", "busy"]);
}

/// Regression: the CLI's first resize could reach the daemon before the exec had started and
/// was lost (busybox's `stty size` then failed with a stale errno, "No child processes").
#[test]
fn skiff_exec_tty_sees_the_terminal_size() {
    let d = Daemon::start();
    skiff_ok(
        &d,
        &["run", "-d", "--name", "ttybox", BUSYBOX, "sleep", "300"],
    );
    // `script` gives skiff a terminal of 33x101; the exec's pty must be resized to it. The
    // loop polls because the resize request races with the command's start.
    let probe = "for i in $(seq 100); do s=$(stty size); [ \"$s\" = \"33 101\" ] && break; \
                 usleep 50000; done; echo \"size=$s\"; test -t 0 && echo tty";
    let inner = format!(
        "stty rows 33 cols 101; {} exec -t ttybox sh -c '{}'; echo \"rc=$?\"; stty -a",
        env!("CARGO_BIN_EXE_skiff"),
        probe.replace('\'', "'\\''")
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &inner, "/dev/null"])
        .env("DOCKER_HOST", d.host())
        .stdin(std::process::Stdio::null());
    let out = common::run_with_timeout(cmd, Duration::from_secs(120));
    let text = stdout(&out).replace('\r', "");
    assert!(text.contains("size=33 101"), "{text}");
    assert!(text.contains("\ntty\n"), "{text}");
    assert!(text.contains("rc=0"), "{text}");
    // Raw mode is undone when skiff ends: the terminal echoes and translates newlines again.
    let settings = text.rsplit("rc=0").next().unwrap();
    let flags: Vec<&str> = settings.split_whitespace().collect();
    assert!(
        flags.contains(&"icanon") && flags.contains(&"echo"),
        "{settings}"
    );
    skiff_ok(&d, &["rm", "-f", "ttybox"]);
}

#[test]
fn skiff_network_verbs_publish_and_port() {
    let d = Daemon::start();
    let sub = d.slot().subnet(1);
    let fixed = format!("{}.7", sub.trim_end_matches(".0/24"));
    let port = (20_000 + d.slot().n * 20 + 5).to_string();
    let id = skiff_ok(
        &d,
        &[
            "network", "create", "--subnet", &sub, "--label", "k=v", "sknet",
        ],
    );
    assert_eq!(id.trim().len(), 64, "{id}");
    let ls = skiff_ok(&d, &["network", "ls"]);
    assert!(ls.starts_with("NETWORK ID"), "{ls}");
    assert!(
        ls.lines()
            .any(|l| l.contains(" sknet ") && l.contains("bridge")),
        "{ls}"
    );
    let inspected: serde_json::Value =
        serde_json::from_str(&skiff_ok(&d, &["network", "inspect", "sknet"])).unwrap();
    assert_eq!(inspected[0]["IPAM"]["Config"][0]["Subnet"], sub.as_str());
    skiff_ok(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "web",
            "--network",
            "sknet",
            "--ip",
            &fixed,
            "--network-alias",
            "www",
            "-p",
            &format!("127.0.0.1:{port}:80"),
            BUSYBOX,
            "httpd",
            "-f",
            "-p",
            "80",
            "-h",
            "/etc",
        ],
    );
    assert_eq!(
        skiff_ok(&d, &["port", "web"]),
        format!("80/tcp -> 127.0.0.1:{port}\n")
    );
    let ps = skiff_ok(&d, &["ps"]);
    assert!(ps.contains(&format!("127.0.0.1:{port}->80/tcp")), "{ps}");
    assert_eq!(
        d.inspect("web", "{{.NetworkSettings.Networks.sknet.IPAddress}} {{.NetworkSettings.Networks.sknet.Aliases}}"),
        format!("{fixed} [www]")
    );
    skiff_ok(
        &d,
        &["run", "-d", "--name", "other", BUSYBOX, "sleep", "300"],
    );
    skiff_ok(
        &d,
        &["network", "connect", "--alias", "peer", "sknet", "other"],
    );
    let out = skiff_ok(&d, &["exec", "other", "nslookup", "www"]);
    assert!(out.contains(&format!("Address: {fixed}")), "{out}");
    skiff_ok(&d, &["network", "disconnect", "sknet", "other"]);
    let out = skiff(&d, &["network", "rm", "sknet"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("has active endpoints"),
        "{}",
        stderr(&out)
    );
    skiff_ok(&d, &["rm", "-f", "web", "other"]);
    assert_eq!(skiff_ok(&d, &["network", "rm", "sknet"]), "sknet\n");
}

/// `skiff build` sends the context (`.dockerignore` applied) to the same `POST /build`: tags,
/// build args, the cache on a second build, `-q`, and a failing step's message.
#[test]
fn skiff_build_builds_tags_and_caches() {
    let d = Daemon::start();
    let ctx = tempfile::Builder::new()
        .prefix("skiff-e2e-skiffbuild")
        .tempdir()
        .expect("ctx");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        "FROM busybox\nARG WHO\nCOPY . /ctx/\nRUN echo \"hi $WHO\" > /hi\nCMD [\"cat\", \"/hi\"]\n",
    )
    .expect("Dockerfile");
    std::fs::write(ctx.path().join(".dockerignore"), "secret\n").expect("ignore");
    std::fs::write(ctx.path().join("secret"), "no").expect("secret");
    let dir = ctx.path().to_str().expect("utf-8");
    let out = skiff_ok(
        &d,
        &[
            "build",
            "-t",
            "sk:1",
            "-t",
            "sk:2",
            "--build-arg",
            "WHO=skiff",
            dir,
        ],
    );
    assert!(out.contains("Step 4/5 : RUN echo"), "{out}");
    assert!(out.contains("Successfully tagged sk:2"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", "sk:2"]), "hi skiff");
    let listing = d.docker_ok(&["run", "--rm", "sk:1", "ls", "/ctx"]);
    assert!(!listing.contains("secret"), "{listing}");

    let again = skiff_ok(
        &d,
        &["build", "-t", "sk:1", "--build-arg", "WHO=skiff", dir],
    );
    assert_eq!(again.matches("Using cache").count(), 4, "{again}");
    let id = skiff_ok(&d, &["build", "-q", "--build-arg", "WHO=skiff", dir]);
    assert_eq!(id.trim(), d.inspect("sk:1", "{{.Id}}"));

    std::fs::write(ctx.path().join("Dockerfile"), "FROM busybox\nRUN exit 5\n").expect("edit");
    let out = skiff(&d, &["build", dir]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("returned a non-zero code: 5"),
        "{}",
        stderr(&out)
    );
}
