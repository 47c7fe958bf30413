//! What the docker CLI shows against skiff where it once differed from dockerd (found by
//! running the same command lines against both): `run` flags that were ignored (`--ulimit`,
//! `--shm-size`), a working directory the image lacks, the primary group among the
//! supplementary ones, `/.dockerenv`, a bad stop signal refused at create, `docker ps` filters (health, name
//! as a regular expression) and its quoted COMMAND column, `docker logs --details` and a tail
//! that is no number, `docker export`.

use std::time::Duration;

use crate::common::{eventually, stderr, stdout, Daemon, BUSYBOX};

#[test]
fn run_applies_ulimits_shm_size_and_makes_the_working_dir() {
    let d = Daemon::start();
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        BUSYBOX,
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]);
    assert_eq!(out, "100\n200", "--ulimit reaches the process");
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--shm-size",
        "1m",
        BUSYBOX,
        "grep",
        " /dev/shm ",
        "/proc/mounts",
    ]);
    assert!(
        out.contains("size=1024k"),
        "--shm-size sizes /dev/shm: {out}"
    );
    // Docker creates a working directory the image does not have (and refuses a file).
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "-w",
        "/made/here",
        BUSYBOX,
        "sh",
        "-c",
        "pwd",
    ]);
    assert_eq!(out, "/made/here");
    let out = d.docker(&["run", "--rm", "-w", "/etc/passwd", BUSYBOX, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("/etc/passwd is not a directory"),
        "{}",
        stderr(&out)
    );
    // The primary group is one of the process's groups, as under Docker (`id -G`).
    let out = d.docker_ok(&["run", "--rm", "-u", "1234:5678", BUSYBOX, "id", "-G"]);
    assert_eq!(out, "5678");
    let out = d.docker_ok(&["run", "--rm", "-u", "nobody", BUSYBOX, "id", "-G"]);
    assert_eq!(out, "65534");
    // Programs look for /.dockerenv to know they run in a container.
    let out = d.docker_ok(&["run", "--rm", BUSYBOX, "ls", "/.dockerenv"]);
    assert_eq!(out, "/.dockerenv");
    d.docker_ok(&["run", "--name", "quiet", BUSYBOX, "true"]);
    assert_eq!(
        d.docker_ok(&["diff", "quiet"]),
        "",
        "not a change of the container"
    );
}

#[test]
fn a_bad_stop_signal_is_refused_at_create() {
    let d = Daemon::start();
    let out = d.docker(&["run", "--rm", "--stop-signal", "NOSUCH", BUSYBOX, "true"]);
    assert_eq!(out.status.code(), Some(125), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Invalid signal: NOSUCH"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "nothing was created");
    d.docker_ok(&["create", "--stop-signal", "SIGUSR1", BUSYBOX, "true"]);
}

#[test]
fn ps_filters_health_and_names_and_quotes_the_command() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        BUSYBOX,
        "sh",
        "-c",
        "sleep 300",
    ]);
    d.docker_ok(&["run", "-d", "--name", "web2", BUSYBOX, "sleep", "300"]);
    eventually(Duration::from_secs(30), "web to be healthy", || {
        (d.inspect("web", "{{.State.Health.Status}}") == "healthy").then_some(())
    });
    let names = |filter: &str| {
        let out = d.docker_ok(&["ps", "--filter", filter, "--format", "{{.Names}}"]);
        let mut names: Vec<String> = out.lines().map(str::to_owned).collect();
        names.sort();
        names.join(" ")
    };
    assert_eq!(names("health=healthy"), "web");
    assert_eq!(names("health=unhealthy"), "");
    assert_eq!(names("health=none"), "web2");
    assert_eq!(names("name=web"), "web web2");
    assert_eq!(
        names("name=^web$"),
        "web",
        "a name filter is a regular expression"
    );
    assert_eq!(names("name=^/web2$"), "web2");
    let out = d.docker(&["ps", "--filter", "health=bogus"]);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid filter 'health=bogus'"),
        "{}",
        stderr(&out)
    );
    // Arguments with spaces are quoted in COMMAND, as dockerd shows them.
    let out = d.docker_ok(&[
        "ps",
        "--no-trunc",
        "--filter",
        "name=^web$",
        "--format",
        "{{.Command}}",
    ]);
    assert_eq!(out, "\"sh -c 'sleep 300'\"");
}

#[test]
fn logs_details_and_a_tail_that_is_no_number() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "--name",
        "talk",
        BUSYBOX,
        "sh",
        "-c",
        "echo one; echo two",
    ]);
    assert_eq!(
        stdout(&d.docker(&["logs", "--details", "talk"])),
        " one\n two\n"
    );
    // dockerd shows everything for a tail it cannot parse.
    let out = d.docker(&["logs", "--tail", "bogus", "talk"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "one\ntwo\n");
}

#[test]
fn export_writes_the_container_filesystem_as_a_tar() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "--name",
        "exp",
        BUSYBOX,
        "sh",
        "-c",
        "mkdir /data && echo hello > /data/f",
    ]);
    let out = d.docker(&["export", "exp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names = Vec::new();
    let mut content = String::new();
    for entry in tar::Archive::new(&out.stdout[..]).entries().expect("a tar") {
        let mut entry = entry.expect("a tar entry");
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        // As dockerd writes it: no entry for the root itself, no `./` prefix, directories
        // ending with `/`.
        assert!(
            !raw.is_empty() && raw != "." && !raw.starts_with("./"),
            "entry {raw:?}"
        );
        assert_eq!(
            entry.header().entry_type().is_dir(),
            raw.ends_with('/'),
            "entry {raw:?}"
        );
        let name = raw.trim_end_matches('/').to_owned();
        if name == "data/f" {
            std::io::Read::read_to_string(&mut entry, &mut content).expect("read data/f");
        }
        names.push(name);
    }
    assert_eq!(content, "hello\n");
    for want in ["bin/busybox", "etc/passwd", "data"] {
        assert!(names.iter().any(|n| n == want), "{want} in {names:?}");
    }
    let file = d.dir().join("exp.tar");
    let file = file.to_str().expect("utf-8 path");
    d.docker_ok(&["export", "-o", file, "exp"]);
    assert_eq!(
        std::fs::read(file).expect("exported file").len(),
        out.stdout.len()
    );
    let out = d.docker(&["export", "nosuch"]);
    assert!(
        stderr(&out).contains("No such container: nosuch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn inspect_shows_unset_list_fields_as_null() {
    let d = Daemon::start();
    d.docker_ok(&["create", "--name", "plain", BUSYBOX, "true"]);
    let reply = d
        .http("GET", "/containers/plain/json", None)
        .expect("inspect");
    let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("inspect JSON");
    // docker-py users index these (`attrs["Config"]["Entrypoint"]`): present, null when unset.
    for (object, key) in [
        (&v, "ExecIDs"),
        (&v["Config"], "Entrypoint"),
        (&v["Config"], "Volumes"),
        (&v["HostConfig"], "CapAdd"),
        (&v["HostConfig"], "VolumesFrom"),
        (&v["HostConfig"], "SecurityOpt"),
    ] {
        let map = object.as_object().expect("an object");
        assert_eq!(map.get(key), Some(&serde_json::Value::Null), "{key}");
    }
}

#[test]
fn without_a_default_bridge_containers_run_with_their_network_disabled() {
    if crate::common::reference() {
        eprintln!("skipped: the reference daemon's flags are its own");
        return;
    }
    // dockerd `--bridge none`: no `bridge` network, and a container on it (the default)
    // runs with loopback only instead of failing.
    let d = Daemon::with_args(&["--bridge", "none"]);
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.lines().any(|n| n == "bridge"), "{nets}");
    let links = d.docker_ok(&["run", "--rm", BUSYBOX, "ip", "-o", "link"]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{links}");
    let out = d.docker(&["run", "--name", "code", BUSYBOX, "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
}

#[test]
fn a_container_disconnected_from_its_only_network_stays_without_one() {
    let d = Daemon::start();
    d.docker_ok(&["network", "create", "solo"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "alone",
        "--network",
        "solo",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    d.docker_ok(&["network", "disconnect", "solo", "alone"]);
    let networks = || d.inspect("alone", "{{json .NetworkSettings.Networks}}");
    assert_eq!(networks(), "{}");
    // As with dockerd, a restart does not bring the network back: loopback only.
    d.docker_ok(&["restart", "-t", "0", "alone"]);
    assert_eq!(networks(), "{}");
    let links = d.docker_ok(&["exec", "alone", "ip", "-o", "link"]);
    let names: Vec<&str> = links.lines().filter_map(|l| l.split(": ").nth(1)).collect();
    assert_eq!(names, ["lo"], "{links}");
    d.docker_ok(&["rm", "-f", "alone"]);
}

#[test]
fn mounts_are_listed_as_dockerd_lists_them() {
    let d = Daemon::start();
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "mounted",
        "-v",
        "mv:/data",
        "-v",
        "/tmp:/hosttmp:ro",
        "--tmpfs",
        "/t",
        "--mount",
        "type=volume,src=mv2,dst=/nc,volume-nocopy",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    // `--tmpfs` mounts are not mount points; a named volume's mode is moby's default `z`,
    // also for `--mount …,volume-nocopy`.
    let listed = d.inspect(
        "mounted",
        "{{range .Mounts}}{{.Type}}|{{.Name}}|{{.Destination}}|{{.Mode}}|{{.RW}};{{end}}",
    );
    let mut mounts: Vec<&str> = listed.split(';').filter(|m| !m.is_empty()).collect();
    mounts.sort();
    assert_eq!(
        mounts,
        [
            "bind||/hosttmp|ro|false",
            "volume|mv2|/nc|z|true",
            "volume|mv|/data|z|true"
        ],
        "{listed}"
    );
    // dockerd lists them in no set order (a Go map).
    let ps = d.docker_ok(&["ps", "--format", "{{.Mounts}}"]);
    let mut names: Vec<&str> = ps.split(',').collect();
    names.sort();
    assert_eq!(names, ["/tmp", "mv", "mv2"], "{ps}");
    d.docker_ok(&["rm", "-f", "mounted"]);
}

#[test]
fn inspect_shows_the_defaults_a_container_runs_with() {
    let d = Daemon::start();
    d.docker_ok(&["create", "--name", "plain", BUSYBOX, "true"]);
    d.docker_ok(&["create", "--name", "priv", "--privileged", BUSYBOX, "true"]);
    let hc = "{{.HostConfig.ShmSize}} {{.HostConfig.IpcMode}}";
    assert_eq!(d.inspect("plain", hc), "67108864 private");
    // No pids limit: no number (dockerd leaves the field out, skiff writes null).
    let pids = d.inspect("plain", "{{.HostConfig.PidsLimit}}");
    assert!(matches!(pids.as_str(), "<nil>" | "<no value>"), "{pids}");
    let masked = d.inspect("plain", "{{json .HostConfig.MaskedPaths}}");
    assert!(masked.contains("\"/proc/kcore\""), "{masked}");
    assert_eq!(
        d.inspect("plain", "{{json .HostConfig.ReadonlyPaths}}"),
        r#"["/proc/bus","/proc/fs","/proc/irq","/proc/sys","/proc/sysrq-trigger"]"#
    );
    // A privileged container has nothing masked.
    assert_eq!(
        d.inspect("priv", "{{json .HostConfig.MaskedPaths}}"),
        "null"
    );
}
