//! docker-py and the skiff CLI against `skiff daemon` and a real registry with htpasswd auth.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::common::{self, stderr, stdout, Daemon, BUSYBOX};
use crate::registry_support::real::{Auth, RealRegistry};
use crate::{basic, docker_config_json};

fn htpasswd_registry() -> RealRegistry {
    RealRegistry::start(Auth::Htpasswd(vec![("carol".into(), "pa55".into())]))
}

#[test]
fn docker_py_logs_in_pushes_and_pulls() {
    let registry = htpasswd_registry();
    let d = Daemon::start();
    let mut cmd = Command::new("python3");
    // Tests run in the package root, where `file!()` is relative to.
    cmd.arg(std::path::Path::new(file!()).with_file_name("docker_py_registry.py"))
        .args([registry.addr.as_str(), "carol", "pa55"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.docker_config())
        .stdin(Stdio::null());
    let out = common::run_with_timeout(cmd, Duration::from_secs(300));
    assert!(
        out.status.success(),
        "docker-py registry checks failed:\n{}\n{}\ndaemon log:\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
}

/// `skiff ARGS` against `d`, with `stdin` fed to it, clients' config in the daemon's
/// docker-config dir.
fn skiff(d: &Daemon, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.docker_config())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn skiff");
    let mut input = child.stdin.take().expect("stdin");
    input.write_all(stdin).expect("write stdin");
    drop(input);
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(out) => out.expect("wait for skiff"),
        Err(_) => {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid as i32),
                nix::sys::signal::Signal::SIGKILL,
            );
            panic!("skiff {args:?} did not finish within two minutes");
        }
    }
}

#[test]
fn skiff_cli_logs_in_pushes_pulls_and_logs_out() {
    let registry = htpasswd_registry();
    let d = Daemon::start();
    let name = format!("{}/cli/busybox:3", registry.addr);
    d.docker_ok(&["tag", BUSYBOX, &name]);

    let out = skiff(&d, &["push", &name], b"");
    assert_eq!(out.status.code(), Some(1), "push without login fails");
    assert!(
        stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );

    let out = skiff(
        &d,
        &["login", "-u", "carol", "--password-stdin", &registry.addr],
        b"wrong\n",
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "Error response from daemon: login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            registry.addr
        )),
        "{}",
        stderr(&out)
    );
    let out = skiff(
        &d,
        &["login", "-u", "carol", "--password-stdin", &registry.addr],
        b"pa55\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "Login Succeeded\n");
    // Stored like the docker CLI stores it, so both CLIs share it.
    assert_eq!(
        docker_config_json(&d)["auths"][&registry.addr]["auth"],
        basic("carol", "pa55")
    );

    // Not a terminal: plain lines, one per status change, no bars.
    let out = skiff(&d, &["push", &name], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "The push refers to repository [{}/cli/busybox]\n",
            registry.addr
        )),
        "{text}"
    );
    assert!(text.lines().any(|l| l.ends_with(": Pushed")), "{text}");
    assert!(!text.contains('\x1b') && !text.contains("[="), "{text:?}");
    let digest = text
        .lines()
        .find_map(|l| l.strip_prefix("3: digest: "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in {text}"))
        .to_owned();

    d.docker_ok(&["rmi", &name, BUSYBOX]);
    let out = skiff(&d, &["pull", &name], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "3: Pulling from cli/busybox", "{text}");
    assert!(
        lines.iter().any(|l| l.ends_with(": Pull complete")),
        "{text}"
    );
    assert!(!lines.iter().any(|l| l.contains("Downloading")), "{text}");
    assert!(
        lines.contains(&format!("Digest: {digest}").as_str()),
        "{text}"
    );
    assert_eq!(lines.last(), Some(&name.as_str()));
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{index .RepoDigests 0}}", &name]),
        format!("{}/cli/busybox@{digest}", registry.addr)
    );

    // `skiff run` of an image it does not have pulls it, progress on stderr.
    d.docker_ok(&["rmi", &name]);
    let out = skiff(&d, &["run", "--rm", &name, "echo", "ran"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "ran\n");
    assert!(stderr(&out).contains("Pull complete"), "{}", stderr(&out));

    let out = skiff(&d, &["logout", &registry.addr], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("Removing login credentials for {}\n", registry.addr)
    );
    assert!(docker_config_json(&d)["auths"][&registry.addr].is_null());
    d.docker_ok(&["rmi", &name]);
    let out = skiff(&d, &["pull", &name], b"");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn skiff_build_pulls_a_private_base_with_the_stored_credentials() {
    let registry = htpasswd_registry();
    let d = Daemon::start();
    let base = format!("{}/private/base:1", registry.addr);
    d.docker_ok(&["login", &registry.addr, "-u", "carol", "-p", "pa55"]);
    d.docker_ok(&["tag", BUSYBOX, &base]);
    d.docker_ok(&["push", &base]);
    d.docker_ok(&["rmi", &base]);
    let ctx = tempfile::tempdir().expect("context");
    std::fs::write(
        ctx.path().join("Dockerfile"),
        format!("FROM {base}\nRUN echo built > /built\n"),
    )
    .expect("Dockerfile");
    let dir = ctx.path().to_str().expect("utf-8");
    // skiff build sends the stored login (X-Registry-Config): the daemon pulls the base.
    let out = skiff(&d, &["build", "-t", "app", dir], b"");
    assert!(
        out.status.success(),
        "{}\n{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "app", "cat", "/built"]),
        "built"
    );
    // Logged out, the registry refuses and the build says why.
    d.docker_ok(&["rmi", "app", &base]);
    let out = skiff(&d, &["logout", &registry.addr], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = skiff(&d, &["build", "-t", "app", dir], b"");
    assert!(!out.status.success(), "{}", stdout(&out));
    let text = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
    assert!(
        text.contains("unauthorized") || text.contains("pull access denied"),
        "{text}"
    );
}
