//! Containers created and not (yet) started. The engine prepares a start when it answers
//! `create` (see the engine's `containers::prepare`); none of that may show: a created
//! container has no address, answers to its current name once started, leaves nothing
//! behind when removed before its start, does not keep its network from being removed nor an
//! address from a container asking for it, and survives a daemon restart as an ordinary
//! created container.

use std::time::Duration;

use crate::common::{eventually, reference, stderr, Daemon, BUSYBOX};

const LONG: Duration = Duration::from_secs(30);

/// Pids of processes whose command line mentions `needle`.
fn processes_mentioning(needle: &str) -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.parse::<u32>().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            (pid != me && String::from_utf8_lossy(&cmdline).contains(needle)).then_some(pid)
        })
        .collect()
}

fn mounts_mentioning(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_string)
        .collect()
}

/// The content of the address claim file named `ip` anywhere under `dir`.
fn claim_owner(dir: &std::path::Path, ip: &str) -> Option<String> {
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let path = e.path();
        let ty = e.file_type().ok()?;
        if ty.is_dir() {
            if let Some(owner) = claim_owner(&path, ip) {
                return Some(owner);
            }
        } else if ty.is_file() && e.file_name() == ip {
            return std::fs::read_to_string(&path).ok();
        }
    }
    None
}

#[test]
fn created_containers_show_no_trace_of_a_prepared_start() {
    let mut d = Daemon::start();
    d.docker_ok(&["network", "create", "prepnet"]);

    // Created: no address, no ports, no sandbox; `ps -a` lists it as Created.
    let id = d.docker_ok(&[
        "create",
        "--name",
        "first",
        "--network",
        "prepnet",
        "-p",
        "8080",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    assert_eq!(id.trim().len(), 64, "{id}");
    assert_eq!(d.inspect("first", "{{.State.Status}}"), "created");
    assert_eq!(
        d.inspect(
            "first",
            "{{range .NetworkSettings.Networks}}[{{.IPAddress}}]{{end}}"
        ),
        "[]"
    );
    assert_eq!(d.inspect("first", "{{json .NetworkSettings.Ports}}"), "{}");
    assert_eq!(d.inspect("first", "{{.NetworkSettings.SandboxKey}}"), "");
    let ps = d.docker_ok(&[
        "ps",
        "-a",
        "--filter",
        "name=first",
        "--format",
        "{{.Status}}",
    ]);
    assert_eq!(ps.trim(), "Created");

    // Renamed before its start: it answers to the new name only.
    d.docker_ok(&["rename", "first", "renamed"]);
    d.docker_ok(&["start", "renamed"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "asker",
        "--network",
        "prepnet",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let ip = d.inspect(
        "renamed",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
    );
    assert!(!ip.is_empty(), "a started container has an address");
    let out = d.docker_ok(&["exec", "asker", "nslookup", "renamed"]);
    assert!(out.contains(&format!("Address: {ip}")), "{out}");
    let out = d.docker(&["exec", "asker", "nslookup", "first"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&ip),
        "the old name still resolves"
    );
    d.docker_ok(&["rm", "-f", "renamed", "asker"]);

    // Removed before its start: no process, mount or address of it stays behind.
    let gone = d.docker_ok(&["create", "--network", "prepnet", BUSYBOX, "sleep", "300"]);
    let gone = gone.trim().to_string();
    d.docker_ok(&["rm", &gone]);
    if !reference() {
        eventually(LONG, "the removed container's processes to end", || {
            processes_mentioning(&gone[..16]).is_empty().then_some(())
        });
        eventually(LONG, "the removed container's mounts to go", || {
            mounts_mentioning(&gone[..16]).is_empty().then_some(())
        });
    }
    assert!(!d.docker_ok(&["ps", "-aq", "--no-trunc"]).contains(&gone));

    // A created container does not hold its network: the network goes, and the start then
    // fails with the missing network.
    d.docker_ok(&[
        "create",
        "--name",
        "orphan",
        "--network",
        "prepnet",
        BUSYBOX,
        "true",
    ]);
    d.docker_ok(&["network", "rm", "prepnet"]);
    let out = d.docker(&["start", "orphan"]);
    assert!(!out.status.success(), "started without its network");
    let err = stderr(&out);
    assert!(
        err.contains("prepnet") && err.contains("not found"),
        "{err}"
    );
    d.docker_ok(&["rm", "orphan"]);

    // An address is a started container's: one asked for with `--ip` is given even while a
    // created container's prepared start holds it (Docker assigns addresses at start).
    d.docker_ok(&["network", "create", "--subnet", "10.199.9.0/24", "ipnet"]);
    let holder = d.docker_ok(&[
        "create",
        "--name",
        "holder",
        "--network",
        "ipnet",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let holder = holder.trim().to_string();
    if !reference() {
        // The preparation claims the first free address: a file named after it, holding
        // its owner, in the daemon's address store.
        let dir = d.dir().to_path_buf();
        eventually(
            LONG,
            "the created container's prepared start to hold 10.199.9.2",
            || {
                claim_owner(&dir, "10.199.9.2")
                    .is_some_and(|owner| owner.contains(&holder[..16]))
                    .then_some(())
            },
        );
    }
    let out = d.docker_ok(&[
        "run",
        "--rm",
        "--network",
        "ipnet",
        "--ip",
        "10.199.9.2",
        BUSYBOX,
        "ip",
        "-4",
        "addr",
        "show",
        "eth0",
    ]);
    assert!(out.contains("10.199.9.2/24"), "{out}");
    d.docker_ok(&["start", "holder"]);
    assert_eq!(d.inspect("holder", "{{.State.Status}}"), "running");
    d.docker_ok(&["rm", "-f", "holder"]);
    d.docker_ok(&["network", "rm", "ipnet"]);

    // Created before a daemon restart: still created after it, and it starts.
    let later = d.docker_ok(&["create", "--name", "later", BUSYBOX, "echo", "hello"]);
    let later = later.trim().to_string();
    d.terminate_daemon();
    if !reference() {
        assert!(
            processes_mentioning(&later[..16]).is_empty(),
            "a created container's process outlived the daemon"
        );
    }
    d.restart_daemon();
    assert_eq!(d.inspect("later", "{{.State.Status}}"), "created");
    let out = d.docker_ok(&["start", "-a", "later"]);
    assert_eq!(out.trim(), "hello");
    assert_eq!(d.inspect("later", "{{.State.ExitCode}}"), "0");
}
