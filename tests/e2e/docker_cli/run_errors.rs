//! What `docker run` and `docker exec` report when the command cannot start, and other refusals
//! worded and ordered as dockerd does them.

use std::os::unix::fs::PermissionsExt;

use crate::common::{stderr, stdout, Daemon, BUSYBOX};

#[test]
fn missing_command_exits_127_with_one_clear_error_on_every_runtime() {
    let d = Daemon::start();
    for runtime in ["embedded", "runc"] {
        let out = d.docker(&["run", "--rm", "--runtime", runtime, BUSYBOX, "/nonexistent"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(127), "{runtime}: {err}");
        assert!(err.contains("/nonexistent"), "{runtime}: {err}");
        assert!(
            !err.contains("failed: runc create failed"),
            "{runtime}: {err}"
        );
    }
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "failed --rm containers are gone"
    );
}

/// A script whose interpreter does not exist: the runtime has set the container up when
/// `execve` fails, so the failure is the process's own, reported as runc does.
fn bad_script() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("bad.sh");
    std::fs::write(&script, "#!/bin/nonexistent\necho never\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = script.to_string_lossy().into_owned();
    (dir, path)
}

#[test]
fn a_command_that_fails_to_execute_leaves_runcs_one_line() {
    let d = Daemon::start();
    let (_dir, script) = bad_script();
    for runtime in ["embedded", "runc"] {
        let name = format!("badexec-{runtime}");
        d.docker_ok(&[
            "create",
            "--name",
            &name,
            "--runtime",
            runtime,
            BUSYBOX,
            "/bad.sh",
        ]);
        d.docker_ok(&["cp", &script, &format!("{name}:/bad.sh")]);
        let out = d.docker(&["start", "-a", &name]);
        let line = "exec /bad.sh: no such file or directory\n";
        assert_eq!(stderr(&out), line, "{runtime}");
        assert_eq!(stdout(&out), "", "{runtime}");
        // runc 1.2 (Docker 28's) and the embedded runtime exit 255; Debian's runc 1.1 exits 1.
        let code = out.status.code();
        assert!(
            code == Some(255) || (runtime == "runc" && code == Some(1)),
            "{runtime}: {code:?}"
        );
        let logs = d.docker(&["logs", &name]);
        assert_eq!(stderr(&logs), line, "{runtime}: docker logs");
        assert_eq!(stdout(&logs), "", "{runtime}: docker logs");
    }
}

#[test]
fn exec_of_a_command_that_cannot_run_reports_it_like_docker() {
    let d = Daemon::start();
    let (_dir, script) = bad_script();
    for runtime in ["embedded", "runc"] {
        let name = format!("execerr-{runtime}");
        d.docker_ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--runtime",
            runtime,
            BUSYBOX,
            "sleep",
            "1000",
        ]);
        // The error is one line on stdout, and the CLI exits with the exec's exit code:
        // 127 for a command that does not exist, 126 for one that is not executable.
        for (tty, cmd, code, says) in [
            (
                false,
                "missing",
                127,
                "exec: \"missing\": executable file not found in $PATH",
            ),
            (
                true,
                "missing",
                127,
                "exec: \"missing\": executable file not found in $PATH",
            ),
            (
                false,
                "/etc/passwd",
                126,
                "exec: \"/etc/passwd\": permission denied",
            ),
        ] {
            let mut args = vec!["exec"];
            if tty {
                args.push("-t");
            }
            args.extend([name.as_str(), cmd]);
            let out = d.docker(&args);
            let (o, e) = (stdout(&out), stderr(&out));
            assert_eq!(out.status.code(), Some(code), "{runtime} {args:?}: {o} {e}");
            assert!(
                o.starts_with("OCI runtime exec failed: "),
                "{runtime} {args:?}: {o}"
            );
            assert!(
                o.contains(says) && o.ends_with("\r\n"),
                "{runtime} {args:?}: {o:?}"
            );
            assert_eq!(e, "", "{runtime} {args:?}");
        }
        // Detached, the daemon's answer is the error.
        let out = d.docker(&["exec", "-d", &name, "missing"]);
        assert_eq!(out.status.code(), Some(1), "{runtime}");
        let e = stderr(&out);
        assert!(
            e.starts_with("Error response from daemon: OCI runtime exec failed: ")
                && e.contains("executable file not found in $PATH"),
            "{runtime}: {e}"
        );
        // A process that starts but cannot execve: runc's line on its stderr.
        d.docker_ok(&["cp", &script, &format!("{name}:/bad.sh")]);
        let out = d.docker(&["exec", &name, "/bad.sh"]);
        assert_ne!(out.status.code(), Some(0), "{runtime}");
        assert_eq!(
            stderr(&out),
            "exec /bad.sh: no such file or directory\n",
            "{runtime}"
        );
        // The container runs on.
        assert_eq!(
            d.docker_ok(&["exec", &name, "echo", "ok"]),
            "ok",
            "{runtime}"
        );
        d.docker_ok(&["rm", "-f", &name]);
    }
}

#[test]
fn refusals_word_and_order_their_checks_as_dockerd_does() {
    let d = Daemon::start();
    let err = |args: &[&str]| {
        let out = d.docker(args);
        assert!(!out.status.success(), "{args:?} was accepted");
        stderr(&out).trim().to_string()
    };
    assert_eq!(
        err(&["create", "--restart", "bogus", BUSYBOX, "true"]),
        "Error response from daemon: invalid restart policy: unknown policy 'bogus'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"
    );
    // A bad signal is refused before the container is looked up.
    assert_eq!(
        err(&["kill", "-s", "NOSIG", "nosuch"]),
        "Error response from daemon: Invalid signal: NOSIG"
    );
    // A missing image is named with its tag.
    assert_eq!(
        err(&["image", "inspect", "nosuch"]),
        "Error response from daemon: No such image: nosuch:latest"
    );
    // A paused container is named as given.
    d.docker_ok(&["run", "-d", "--name", "napper", BUSYBOX, "sleep", "300"]);
    d.docker_ok(&["pause", "napper"]);
    assert_eq!(
        err(&["exec", "napper", "true"]),
        "Error response from daemon: Container napper is paused, unpause the container before exec"
    );
    d.docker_ok(&["rm", "-f", "napper"]);
}
