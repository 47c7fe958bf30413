//! Local volumes with driver options, as `docker volume create -o`, compose's `driver_opts`
//! and `--mount …,volume-opt=` make them: a tmpfs or a bound host directory mounted on the
//! volume's data while containers use it, moby's refusals of bad options, and a removal that
//! never empties the host directory a volume was bound to; `--tmpfs` options as dockerd
//! merges and refuses them.

use crate::common::{stderr, stdout, Daemon, BUSYBOX};

/// `docker volume create` of a local volume bound to `device` with mount options `o`.
fn bind_volume(d: &Daemon, name: &str, device: &str, o: &str) {
    let (device, o) = (format!("device={device}"), format!("o={o}"));
    d.docker_ok(&[
        "volume",
        "create",
        "--driver",
        "local",
        "-o",
        "type=none",
        "-o",
        &o,
        "-o",
        &device,
        name,
    ]);
}

#[test]
fn a_tmpfs_volume_is_a_tmpfs_while_used_and_empty_again_after() {
    let d = Daemon::start();
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=2m",
        "scratch",
    ]);
    let opts = d.docker_ok(&["volume", "inspect", "-f", "{{json .Options}}", "scratch"]);
    assert_eq!(
        opts.trim(),
        r#"{"device":"tmpfs","o":"size=2m","type":"tmpfs"}"#
    );
    // A tmpfs of the size asked for (2 MiB), as the container's /proc/mounts shows it.
    let line = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "scratch:/d",
        BUSYBOX,
        "grep",
        " /d ",
        "/proc/mounts",
    ]);
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields.get(2), Some(&"tmpfs"), "{line}");
    assert!(
        fields
            .get(3)
            .is_some_and(|o| o.split(',').any(|o| o == "size=2048k")),
        "{line}"
    );
    // Two containers share the one tmpfs while both run.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "writer",
        "-v",
        "scratch:/d",
        BUSYBOX,
        "sh",
        "-c",
        "echo kept > /d/f; exec sleep 300",
    ]);
    let read = crate::common::eventually(std::time::Duration::from_secs(20), "the file", || {
        let out = d.docker(&["run", "--rm", "-v", "scratch:/d", BUSYBOX, "cat", "/d/f"]);
        out.status.success().then(|| stdout(&out))
    });
    assert_eq!(read, "kept\n");
    // Once the last user stops, the tmpfs is gone with what it held (as with dockerd).
    d.docker_ok(&["rm", "-f", "writer"]);
    let out = d.docker(&["run", "--rm", "-v", "scratch:/d", BUSYBOX, "cat", "/d/f"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    d.docker_ok(&["volume", "rm", "scratch"]);
}

#[test]
fn a_volume_bound_to_a_host_directory_shares_it_and_removal_keeps_it() {
    let d = Daemon::start();
    let host = d.dir().join("host-data");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("from-host"), "hello\n").unwrap();
    bind_volume(&d, "shared", &host.display().to_string(), "bind");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-v",
        "shared:/d",
        BUSYBOX,
        "sh",
        "-c",
        "cat /d/from-host; echo back > /d/from-container",
    ]);
    assert_eq!(out, "hello");
    assert_eq!(
        std::fs::read_to_string(host.join("from-container")).unwrap(),
        "back\n"
    );
    // A read-only bind is read-only in the container.
    bind_volume(&d, "shared-ro", &host.display().to_string(), "bind,ro");
    let out = d.docker(&[
        "run",
        "--rm",
        "-v",
        "shared-ro:/d",
        BUSYBOX,
        "touch",
        "/d/nope",
    ]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Read-only file system"),
        "{}",
        stderr(&out)
    );
    // `--mount` with volume options creates such a volume too.
    let mount = format!(
        "type=volume,source=mounted,target=/d,volume-driver=local,volume-opt=type=none,volume-opt=o=bind,volume-opt=device={}",
        host.display()
    );
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--mount",
        &mount,
        BUSYBOX,
        "cat",
        "/d/from-host",
    ]);
    assert_eq!(out, "hello");
    // Removing the volumes unmounts them: the host directory keeps its files.
    d.docker_ok(&["volume", "rm", "shared", "shared-ro", "mounted"]);
    assert_eq!(
        std::fs::read_to_string(host.join("from-host")).unwrap(),
        "hello\n"
    );
    assert!(host.join("from-container").exists());
}

#[test]
fn bad_driver_options_are_refused_with_dockerds_words_and_nothing_is_created() {
    let d = Daemon::start();
    for (args, want) in [
        (&["-o", "foo=bar"][..], r#"invalid option: "foo""#),
        (
            &["-o", "type=tmpfs"][..],
            r#"missing required option: "device""#,
        ),
        (
            &["-o", "device=tmpfs"][..],
            r#"missing required option: "type""#,
        ),
        (&["-o", "o=size=1m"][..], r#"missing required option: "#),
        (&["--driver", "nosuch"][..], r#"plugin "nosuch" not found"#),
    ] {
        let mut all = vec!["volume", "create"];
        all.extend_from_slice(args);
        all.push("refused");
        let out = d.docker(&all);
        assert!(!out.status.success(), "{args:?}: {}", stdout(&out));
        assert!(stderr(&out).contains(want), "{args:?}: {}", stderr(&out));
    }
    let out = d.docker(&[
        "run",
        "--rm",
        "--mount",
        "type=volume,source=refused,target=/d,volume-opt=bogus=1",
        BUSYBOX,
        "true",
    ]);
    assert!(
        stderr(&out).contains(r#"invalid option: "bogus""#),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "");

    // A device that does not exist fails the start with the mount's own error.
    bind_volume(&d, "dangling", "/nonexistent-skiff", "bind");
    let out = d.docker(&["run", "--rm", "-v", "dangling:/d", BUSYBOX, "true"]);
    // The docker CLI's own code for an error naming a missing file.
    assert_eq!(out.status.code(), Some(127), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("error while mounting volume")
            && err.contains("failed to mount local volume: mount /nonexistent-skiff:")
            && err.contains("no such file or directory"),
        "{err}"
    );
    d.docker_ok(&["volume", "rm", "dangling"]);
}

#[test]
fn tmpfs_flags_apply_and_an_unknown_option_fails_the_start_with_dockerds_words() {
    let d = Daemon::start();
    // Docker's defaults (noexec,nosuid,nodev) unless overridden; the last size wins.
    let line = d.docker_ok(&[
        "run",
        "--rm",
        "--tmpfs",
        "/t:exec,size=1m,size=3m",
        BUSYBOX,
        "grep",
        " /t ",
        "/proc/mounts",
    ]);
    let options: Vec<&str> = line
        .split_whitespace()
        .nth(3)
        .unwrap_or_default()
        .split(',')
        .collect();
    for want in ["nosuid", "nodev", "size=3072k"] {
        assert!(options.contains(&want), "{want} in {line}");
    }
    assert!(!options.contains(&"noexec"), "{line}");
    // dockerd takes the option at create and refuses it at the start.
    let id = d.docker_ok(&["create", "--tmpfs", "/t:badopt", BUSYBOX, "true"]);
    let out = d.docker(&["start", &id]);
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).trim(),
        "Error response from daemon: invalid tmpfs option \"badopt\"\nError: failed to start containers: "
            .to_string()
            + &id
    );
}

#[test]
fn docker_cp_into_a_stopped_container_writes_through_its_bound_volume() {
    let d = Daemon::start();
    let host = d.dir().join("cp-host");
    std::fs::create_dir_all(&host).unwrap();
    bind_volume(&d, "cpvol", &host.display().to_string(), "bind");
    // Run once and stopped (a container never started has no /d yet in dockerd).
    d.docker_ok(&["run", "--name", "idle", "-v", "cpvol:/d", BUSYBOX, "true"]);
    let file = d.dir().join("note.txt");
    std::fs::write(&file, "copied\n").unwrap();
    d.docker_ok(&["cp", file.to_str().unwrap(), "idle:/d/"]);
    // As with dockerd, the copy went to the volume's filesystem: the bound host directory.
    assert_eq!(
        std::fs::read_to_string(host.join("note.txt")).unwrap(),
        "copied\n"
    );
    let out = d.docker(&["cp", "idle:/d/note.txt", "-"]);
    assert!(out.status.success(), "{}", stderr(&out));
    d.docker_ok(&["rm", "idle"]);
    d.docker_ok(&["volume", "rm", "cpvol"]);
    assert!(host.join("note.txt").exists());
}

#[test]
fn a_daemon_restart_keeps_a_running_containers_tmpfs_volume_and_drops_it_after() {
    if crate::common::reference() {
        eprintln!("skipped: the reference daemon is not ours to restart");
        return;
    }
    let mut d = Daemon::start();
    d.docker_ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "keep",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "-v",
        "keep:/d",
        BUSYBOX,
        "sh",
        "-c",
        "echo still > /d/f; exec sleep 300",
    ]);
    crate::common::eventually(std::time::Duration::from_secs(20), "the file", || {
        d.docker(&["exec", "holder", "cat", "/d/f"])
            .status
            .success()
            .then_some(())
    });
    d.kill_daemon();
    d.restart_daemon();
    // Another container starting and stopping meanwhile leaves the holder's tmpfs mounted.
    let out = d.docker_ok(&["run", "--rm", "-v", "keep:/d", BUSYBOX, "cat", "/d/f"]);
    assert_eq!(out, "still");
    let out = d.docker_ok(&["run", "--rm", "-v", "keep:/d", BUSYBOX, "cat", "/d/f"]);
    assert_eq!(out, "still");
    // The last holder gone, the tmpfs goes with what it held.
    d.docker_ok(&["rm", "-f", "holder"]);
    let out = d.docker(&["run", "--rm", "-v", "keep:/d", BUSYBOX, "cat", "/d/f"]);
    assert!(!out.status.success(), "{}", stdout(&out));
}
