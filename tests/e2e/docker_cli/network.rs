//! Networking through the docker CLI: loopback in every mode, the default bridge, user-defined
//! networks with DNS by name, isolation, internal networks, published ports (from another
//! host, from the host's 127.0.0.1, hairpin), connect/disconnect on running containers, and
//! what a daemon restart or a crash leaves behind. Each daemon has its own bridge, subnets and
//! nftables table (its network slot); host ports are per slot too.

use std::net::TcpListener;
use std::time::Duration;

use crate::common::otherhost::OtherHost;
use crate::common::{eventually, reference, stderr, Daemon, BUSYBOX};

pub(crate) const LONG: Duration = Duration::from_secs(30);

/// A host port of this daemon's slot (`k` < 20), so tests in parallel never share one.
pub(crate) fn port(d: &Daemon, k: u16) -> u16 {
    if reference() {
        return 29_000 + k;
    }
    20_000 + d.slot().n as u16 * 20 + k
}

/// A /24 for `--subnet`, unused by any other daemon.
pub(crate) fn subnet(d: &Daemon, k: u32) -> String {
    if reference() {
        return format!("10.250.{}.0/24", 200 + k);
    }
    d.slot().subnet(k)
}

/// The address `k` of a test subnet (`subnet(d, j)` with its host part).
pub(crate) fn addr_in(subnet: &str, host: u8) -> String {
    let base = subnet.trim_end_matches(".0/24");
    format!("{base}.{host}")
}

/// A detached busybox httpd serving `/etc` (its `hostname` file answers who it is).
pub(crate) fn httpd(d: &Daemon, name: &str, extra: &[&str]) -> String {
    let mut args = vec!["run", "-d", "--name", name];
    args.extend_from_slice(extra);
    args.extend_from_slice(&[BUSYBOX, "httpd", "-f", "-p", "80", "-h", "/etc"]);
    d.docker_ok(&args)
}

/// The container's address on `network`.
pub(crate) fn ip_on(d: &Daemon, name: &str, network: &str) -> String {
    d.inspect(
        name,
        &format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}"),
    )
}

/// `wget -qO- URL` inside container `name` (5 s limit): the body, or None if it failed.
pub(crate) fn fetch_in(d: &Daemon, name: &str, url: &str) -> Option<String> {
    let out = d.docker(&["exec", name, "timeout", "5", "wget", "-qO-", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `wget -qO- URL` from the host (the test's own process).
pub(crate) fn fetch_from_host(url: &str) -> Option<String> {
    let out = crate::common::run_with_timeout(
        {
            let mut c = std::process::Command::new("timeout");
            c.args(["5", "busybox", "wget", "-qO-", url]);
            c
        },
        LONG,
    );
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Short id of a container (what its default hostname and `/etc/hostname` say).
pub(crate) fn short(d: &Daemon, name: &str) -> String {
    d.inspect(name, "{{.Id}}")[..12].to_string()
}

#[test]
fn loopback_is_up_in_every_mode_and_serves_the_container_itself() {
    let d = Daemon::start();
    for mode in ["bridge", "none"] {
        let out = d.docker_ok(&["run", "--rm", "--network", mode, BUSYBOX, "ip", "addr"]);
        let lo = out
            .lines()
            .find(|l| l.contains(": lo:"))
            .unwrap_or_else(|| panic!("no lo in {out}"));
        assert!(lo.contains("UP"), "{mode}: {lo}");
    }
    // A server on 127.0.0.1 inside the container, reached from an exec in the same one.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "self",
        BUSYBOX,
        "httpd",
        "-f",
        "-p",
        "127.0.0.1:8080",
        "-h",
        "/etc",
    ]);
    let id = short(&d, "self");
    let body = eventually(LONG, "httpd on the container's loopback", || {
        fetch_in(&d, "self", "http://127.0.0.1:8080/hostname")
    });
    assert_eq!(body.trim(), id);
}

#[test]
fn default_bridge_gives_address_route_etc_files_and_masquerade() {
    let d = Daemon::start();
    let other = (!reference()).then(|| OtherHost::new(d.slot(), d.dir()));
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "b1",
        "--hostname",
        "box",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "corp.test",
        "--add-host",
        "db:10.1.2.3",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let ip = d.inspect("b1", "{{.NetworkSettings.IPAddress}}");
    let gw = d.inspect("b1", "{{.NetworkSettings.Gateway}}");
    let mac = d.inspect("b1", "{{.NetworkSettings.MacAddress}}");
    assert_eq!(ip, ip_on(&d, "b1", "bridge"));
    assert_eq!(mac.len(), 17, "{mac}");
    if !reference() {
        assert!(
            ip.starts_with(&format!("10.{}.0.", 100 + d.slot().n)),
            "{ip}"
        );
        assert_eq!(gw, format!("10.{}.0.1", 100 + d.slot().n));
    }
    let route = d.docker_ok(&["exec", "b1", "ip", "route"]);
    assert!(route.contains(&format!("default via {gw}")), "{route}");
    let hosts = d.docker_ok(&["exec", "b1", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.1.2.3\tdb"), "{hosts}");
    assert!(hosts.contains(&format!("{ip}\tbox")), "{hosts}");
    assert_eq!(d.docker_ok(&["exec", "b1", "cat", "/etc/hostname"]), "box");
    let resolv = d.docker_ok(&["exec", "b1", "cat", "/etc/resolv.conf"]);
    assert!(resolv.contains("nameserver 192.0.2.53"), "{resolv}");
    assert!(resolv.contains("search corp.test"), "{resolv}");
    // The generated files stay out of the container's changes.
    assert_eq!(d.docker_ok(&["diff", "b1"]), "");
    if let Some(other) = other {
        // Outbound traffic leaves with the host's address.
        let peers = other.serve(7000);
        let got = d.docker_ok(&[
            "exec",
            "b1",
            "timeout",
            "5",
            "nc",
            &other.addr.to_string(),
            "7000",
        ]);
        assert_eq!(got, "hello");
        let peer = peers.recv_timeout(LONG).expect("a connection");
        assert_eq!(peer, other.host_addr, "masqueraded to the host's address");
    }
}

#[test]
fn user_networks_resolve_names_aliases_and_short_ids() {
    let d = Daemon::start();
    d.docker_ok(&["network", "create", "app"]);
    httpd(&d, "web", &["--network", "app", "--network-alias", "www"]);
    let web_ip = ip_on(&d, "web", "app");
    let id = short(&d, "web");
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "client",
        "--network",
        "app",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    assert_eq!(
        d.docker_ok(&["exec", "client", "cat", "/etc/resolv.conf"])
            .lines()
            .next(),
        Some("nameserver 127.0.0.11")
    );
    for name in ["web", "www", id.as_str()] {
        let out = d.docker_ok(&["exec", "client", "nslookup", name]);
        assert!(out.contains(&format!("Address: {web_ip}")), "{name}: {out}");
    }
    // The name resolves to an address that answers: the client reaches web by it.
    let body = eventually(LONG, "web from client", || {
        fetch_in(&d, "client", &format!("http://{web_ip}/hostname"))
    });
    assert_eq!(body.trim(), id);
    // `docker stats` counts the container's own interface's traffic.
    let netio = d.docker_ok(&["stats", "--no-stream", "--format", "{{.NetIO}}", "client"]);
    assert_ne!(netio, "0B / 0B");
    // Containers of the default bridge get no embedded DNS.
    let out = d.docker(&["run", "--rm", BUSYBOX, "nslookup", "web", "127.0.0.11"]);
    assert!(
        !out.status.success(),
        "default bridge resolved a container name"
    );
    // A removed container's name is gone.
    d.docker_ok(&["rm", "-f", "web"]);
    let out = d.docker(&["exec", "client", "nslookup", "web"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&web_ip),
        "stale DNS entry"
    );
}

#[test]
fn containers_on_different_networks_cannot_reach_each_other() {
    let d = Daemon::start();
    d.docker_ok(&["network", "create", "red"]);
    d.docker_ok(&["network", "create", "blue"]);
    httpd(&d, "redweb", &["--network", "red"]);
    let target = format!("http://{}/hostname", ip_on(&d, "redweb", "red"));
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "redc",
        "--network",
        "red",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "bluec",
        "--network",
        "blue",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    d.docker_ok(&["run", "-d", "--name", "bridgec", BUSYBOX, "sleep", "300"]);
    eventually(LONG, "redweb from its own network", || {
        fetch_in(&d, "redc", &target)
    });
    assert_eq!(fetch_in(&d, "bluec", &target), None, "blue reached red");
    assert_eq!(fetch_in(&d, "bridgec", &target), None, "bridge reached red");
    // Connected to both, a container reaches it.
    d.docker_ok(&["network", "connect", "red", "bluec"]);
    assert!(fetch_in(&d, "bluec", &target).is_some());
}

#[test]
fn internal_networks_have_no_way_out() {
    let d = Daemon::start();
    let other = (!reference()).then(|| OtherHost::new(d.slot(), d.dir()));
    d.docker_ok(&["network", "create", "--internal", "vault"]);
    d.docker_ok(&["network", "create", "open"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "in",
        "--network",
        "vault",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "out",
        "--network",
        "open",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let routes = d.docker_ok(&["exec", "in", "ip", "route"]);
    assert!(!routes.contains("default"), "{routes}");
    assert_eq!(d.inspect("vault", "{{.Internal}}"), "true");
    if let Some(other) = other {
        let _server = other.serve(7001);
        let target = format!("{}", other.addr);
        let nc = |name: &str| {
            d.docker(&["exec", name, "timeout", "5", "nc", &target, "7001"])
                .status
                .success()
        };
        assert!(nc("out"), "a normal network reaches the other host");
        assert!(!nc("in"), "an internal network reached the other host");
        // Not even by adding a route of its own (it is not privileged, but the host drops
        // whatever leaves the bridge anyway).
        let gw = d.inspect("vault", "{{(index .IPAM.Config 0).Gateway}}");
        // (`; echo` keeps sh as the container's init: signals from `timeout` cannot end a
        // PID 1 without handlers.)
        let out = d.docker(&[
            "run",
            "--rm",
            "--network",
            "vault",
            "--cap-add",
            "NET_ADMIN",
            BUSYBOX,
            "sh",
            "-c",
            &format!("ip route add default via {gw} && timeout 5 nc {target} 7001; echo rc=$?"),
        ]);
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            !said.contains("hello") && !said.contains("rc=0"),
            "internal traffic left through the gateway: {said}"
        );
    }
}

#[test]
fn connect_and_disconnect_running_containers_with_ip_and_alias() {
    let d = Daemon::start();
    let sub = subnet(&d, 1);
    let fixed = addr_in(&sub, 9);
    d.docker_ok(&["network", "create", "--subnet", &sub, "back"]);
    d.docker_ok(&["run", "-d", "--name", "api", BUSYBOX, "sleep", "300"]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "asker",
        "--network",
        "back",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    d.docker_ok(&[
        "network", "connect", "--ip", &fixed, "--alias", "db", "back", "api",
    ]);
    assert_eq!(ip_on(&d, "api", "back"), fixed);
    let addrs = d.docker_ok(&["exec", "api", "ip", "-o", "-4", "addr"]);
    assert!(addrs.contains(&format!("inet {fixed}/24")), "{addrs}");
    let out = d.docker_ok(&["exec", "asker", "nslookup", "db"]);
    assert!(out.contains(&format!("Address: {fixed}")), "{out}");
    let hosts = d.docker_ok(&["exec", "api", "cat", "/etc/hosts"]);
    assert!(hosts.contains(&fixed), "{hosts}");
    let members = d.docker_ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "back",
    ]);
    assert!(members.contains("api"), "{members}");
    // Docker's errors for a second connect and a disconnect of what is not connected.
    let again = d.docker(&["network", "connect", "back", "api"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists in network back"),
        "{}",
        stderr(&again)
    );
    d.docker_ok(&["network", "disconnect", "back", "api"]);
    let addrs = d.docker_ok(&["exec", "api", "ip", "-o", "-4", "addr"]);
    assert!(!addrs.contains(&fixed), "{addrs}");
    let out = d.docker(&["exec", "asker", "nslookup", "db"]);
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains(&fixed),
        "alias left in DNS"
    );
    let out = d.docker(&["network", "disconnect", "back", "api"]);
    assert!(
        stderr(&out).contains("is not connected to network back"),
        "{}",
        stderr(&out)
    );
    // A stopped container: the settings are kept for its next start.
    d.docker_ok(&["stop", "-t", "0", "api"]);
    d.docker_ok(&["network", "connect", "--ip", &fixed, "back", "api"]);
    d.docker_ok(&["start", "api"]);
    assert_eq!(ip_on(&d, "api", "back"), fixed);
}

#[test]
fn network_ls_filters_inspect_rm_and_prune() {
    let d = Daemon::start();
    d.docker_ok(&[
        "network",
        "create",
        "--label",
        "team=a",
        "-o",
        "com.docker.network.driver.mtu=1400",
        "alpha",
    ]);
    d.docker_ok(&["network", "create", "--label", "team=b", "beta"]);
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    for n in ["alpha", "beta", "bridge", "host", "none"] {
        assert!(names.lines().any(|l| l == n), "{n} in {names}");
    }
    let a = d.docker_ok(&["network", "ls", "-q", "--filter", "label=team=a"]);
    assert_eq!(a, d.inspect("alpha", "{{.Id}}")[..12].to_string());
    let custom = d.docker_ok(&[
        "network",
        "ls",
        "--filter",
        "type=custom",
        "--format",
        "{{.Name}}",
    ]);
    assert_eq!(custom.lines().collect::<Vec<_>>(), vec!["alpha", "beta"]);
    assert_eq!(
        d.inspect("alpha", "{{.Driver}} {{.Scope}} {{index .Labels \"team\"}}"),
        "bridge local a"
    );
    assert_eq!(
        d.inspect(
            "alpha",
            "{{index .Options \"com.docker.network.driver.mtu\"}}"
        ),
        "1400"
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "user",
        "--network",
        "beta",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let pruned = d.docker_ok(&["network", "prune", "-f"]);
    assert!(
        pruned.contains("alpha") && !pruned.contains("beta"),
        "{pruned}"
    );
    d.docker_ok(&["rm", "-f", "user"]);
    d.docker_ok(&["network", "rm", "beta"]);
    let names = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(
        !names.contains("alpha") && !names.contains("beta"),
        "{names}"
    );
    if !reference() {
        eventually(LONG, "only the default bridge left", || {
            (d.slot().links() == vec![format!("{}0", d.slot().prefix())]).then_some(())
        });
    }
}

#[test]
fn rm_and_network_rm_leave_no_veth_rule_address_or_name() {
    if reference() {
        eprintln!("skipped: looks at skiff's own host objects");
        return;
    }
    let d = Daemon::start();
    let p = port(&d, 2);
    d.docker_ok(&["network", "create", "tmp"]);
    httpd(&d, "gone", &["--network", "tmp", "-p", &format!("{p}:80")]);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "stays",
        "--network",
        "tmp",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let gone_ip = ip_on(&d, "gone", "tmp");
    assert!(d.slot().ruleset().contains(&format!(". {p} :")));
    d.docker_ok(&["rm", "-f", "gone"]);
    // The port is free again at once; the name is gone; the rule goes (skiff drops it in the
    // background: nft's exit waits out the kernel's RCU grace period) and so does the veth.
    TcpListener::bind(("0.0.0.0", p)).expect("the published port is free after rm");
    eventually(LONG, "the removed container's port rule to go", || {
        (!d.slot().ruleset().contains(&format!(". {p} :"))).then_some(())
    });
    let out = d.docker(&["exec", "stays", "nslookup", "gone"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&gone_ip));
    eventually(LONG, "the veth of the removed container to go", || {
        (d.slot().links().len() == 3).then_some(()) // default bridge, tmp's bridge, stays' veth
    });
    // Its address is handed out again.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "again",
        "--network",
        "tmp",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    assert_eq!(ip_on(&d, "again", "tmp"), gone_ip);
    d.docker_ok(&["rm", "-f", "stays", "again"]);
    d.docker_ok(&["network", "rm", "tmp"]);
    eventually(LONG, "only the default bridge", || {
        (d.slot().links() == vec![format!("{}0", d.slot().prefix())]).then_some(())
    });
    // What is left in the table is the default bridge's: its three chains, no port.
    let rules = d.slot().ruleset();
    assert_eq!(rules.matches("jump n-").count(), 3, "{rules}");
    assert_eq!(rules.matches("jump p-").count(), 0, "{rules}");
}

#[test]
fn no_two_containers_ever_get_the_same_address() {
    let d = Daemon::start();
    d.docker_ok(&["network", "create", "crowd"]);
    let names: Vec<String> = (0..8).map(|i| format!("c{i}")).collect();
    std::thread::scope(|s| {
        for n in &names {
            let d = &d;
            s.spawn(move || {
                d.docker_ok(&[
                    "run",
                    "-d",
                    "--name",
                    n,
                    "--network",
                    "crowd",
                    BUSYBOX,
                    "sleep",
                    "300",
                ]);
            });
        }
    });
    let mut ips: Vec<String> = names.iter().map(|n| ip_on(&d, n, "crowd")).collect();
    ips.sort();
    let before = ips.len();
    ips.dedup();
    assert_eq!(ips.len(), before, "duplicate addresses: {ips:?}");
}

#[test]
fn ipam_and_running_networks_survive_kill_9_and_restart_cleans_the_dead() {
    if reference() {
        eprintln!("skipped: the reference daemon is not ours to kill");
        return;
    }
    let mut d = Daemon::start();
    let p = port(&d, 3);
    let p2 = port(&d, 4);
    d.docker_ok(&["network", "create", "keep"]);
    httpd(&d, "srv", &["--network", "keep", "-p", &format!("{p}:80")]);
    httpd(
        &d,
        "doomed",
        &["--network", "keep", "-p", &format!("{p2}:80")],
    );
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "cli",
        "--network",
        "keep",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let srv_ip = ip_on(&d, "srv", "keep");
    let doomed_ip = ip_on(&d, "doomed", "keep");
    let id = short(&d, "srv");
    let doomed_pid = d.inspect("doomed", "{{.State.Pid}}");
    d.kill_daemon();
    // A container that dies while the daemon is down.
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(doomed_pid.parse().unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    );
    d.restart_daemon();
    // The running ones kept address, published port and DNS name.
    assert_eq!(ip_on(&d, "srv", "keep"), srv_ip);
    let body = eventually(LONG, "the published port after the restart", || {
        fetch_from_host(&format!("http://127.0.0.1:{p}/hostname"))
    });
    assert_eq!(body.trim(), id);
    let out = d.docker_ok(&["exec", "cli", "nslookup", "srv"]);
    assert!(out.contains(&format!("Address: {srv_ip}")), "{out}");
    // The dead one's port, rule and name are gone.
    eventually(LONG, "the dead container's port to be free", || {
        TcpListener::bind(("0.0.0.0", p2)).ok()
    });
    eventually(LONG, "the dead container's port rule to go", || {
        (!d.slot().ruleset().contains(&format!(". {p2} :"))).then_some(())
    });
    let out = d.docker(&["exec", "cli", "nslookup", "doomed"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&doomed_ip));
    // New containers never get an address still in use.
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "fresh",
        "--network",
        "keep",
        BUSYBOX,
        "sleep",
        "300",
    ]);
    let fresh = ip_on(&d, "fresh", "keep");
    for taken in [&srv_ip, &ip_on(&d, "cli", "keep")] {
        assert_ne!(&fresh, taken);
    }
    // A graceful restart too.
    d.terminate_daemon();
    d.restart_daemon();
    assert_eq!(ip_on(&d, "srv", "keep"), srv_ip);
    assert!(fetch_from_host(&format!("http://127.0.0.1:{p}/hostname")).is_some());
}

#[test]
fn bad_network_input_gets_dockers_errors_and_creates_nothing() {
    let d = Daemon::start();
    let sub = subnet(&d, 2);
    d.docker_ok(&["network", "create", "--subnet", &sub, "first"]);
    let before = d.docker_ok(&["network", "ls", "-q"]);
    // `want` is dockerd 28's wording; Debian's reference dockerd (20.10) may word it as `old`.
    let fails_as = |args: &[&str], want: &str, old: &str| {
        let out = d.docker(args);
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = stderr(&out);
        assert!(
            err.contains(want) || (reference() && err.contains(old)),
            "{args:?}: {err}"
        );
    };
    let fails = |args: &[&str], want: &str| fails_as(args, want, want);
    fails(
        &["network", "create", "--subnet", &sub, "second"],
        "Pool overlaps with other one on this address space",
    );
    fails(
        &["network", "create", "first"],
        "network with name first already exists",
    );
    fails(
        &["network", "create", "--subnet", "10.0.0.0/33", "bad"],
        "invalid CIDR",
    );
    fails(&["network", "rm", "nosuch"], "network nosuch not found");
    fails(
        &["network", "create", "bridge"],
        "operation is not permitted on predefined bridge network",
    );
    fails(
        &["network", "rm", "host"],
        "host is a pre-defined network and cannot be removed",
    );
    fails_as(
        &[
            "run",
            "--rm",
            "--network",
            "first",
            "--ip",
            "192.0.2.77",
            BUSYBOX,
            "true",
        ],
        "no configured subnet or ip-range contain the IP address 192.0.2.77",
        "Invalid address 192.0.2.77: It does not belong to any of this network's subnets",
    );
    fails(
        &["run", "--rm", "--ip", "172.17.0.77", BUSYBOX, "true"],
        "user specified IP address is supported on user defined networks only",
    );
    fails(
        &["run", "--rm", "--network", "nosuch", BUSYBOX, "true"],
        "network nosuch not found",
    );
    fails(
        &["run", "--rm", "-p", "80:abc", BUSYBOX, "true"],
        "invalid containerPort: abc",
    );
    let taken = addr_in(&sub, 5);
    d.docker_ok(&[
        "run",
        "-d",
        "--name",
        "holder",
        "--network",
        "first",
        "--ip",
        &taken,
        BUSYBOX,
        "sleep",
        "300",
    ]);
    fails(
        &[
            "run",
            "--rm",
            "--network",
            "first",
            "--ip",
            &taken,
            BUSYBOX,
            "true",
        ],
        "Address already in use",
    );
    fails(&["network", "rm", "first"], "has active endpoints");
    assert_eq!(
        d.docker_ok(&["network", "ls", "-q"]),
        before,
        "no network created"
    );
    // The server-side checks behind what the CLI checks itself.
    let api = |method: &str, path: &str, body: &str| {
        let r = d
            .http(method, path, Some(("application/json", body.as_bytes())))
            .unwrap();
        (r.status, r.message())
    };
    assert_eq!(
        api("POST", "/v1.50/networks/create", &format!(r#"{{"Name":"gw","IPAM":{{"Config":[{{"Subnet":"{}","Gateway":"10.254.0.1"}}]}}}}"#, subnet(&d, 3))),
        (400, format!("invalid network config:\ninvalid gateway 10.254.0.1: parent subnet {} doesn't contain this address", subnet(&d, 3)))
    );
    let (status, msg) = api(
        "POST",
        "/v1.50/networks/create",
        &format!(r#"{{"Name":"ov","IPAM":{{"Config":[{{"Subnet":"{sub}"}}]}}}}"#),
    );
    assert_eq!(
        (status, msg.as_str()),
        (
            403,
            "invalid pool request: Pool overlaps with other one on this address space"
        )
    );
    let (status, msg) = api(
        "POST",
        "/v1.50/containers/create",
        &format!(
            r#"{{"Image":"{BUSYBOX}","HostConfig":{{"PortBindings":{{"abc/tcp":[{{"HostPort":"80"}}]}}}}}}"#
        ),
    );
    assert_eq!(
        (status, msg.as_str()),
        (400, "invalid port specification: \"abc\"")
    );
    let (status, msg) = api(
        "POST",
        "/v1.50/containers/create",
        &format!(
            r#"{{"Image":"{BUSYBOX}","HostConfig":{{"PortBindings":{{"80/tcp":[{{"HostPort":"99999"}}]}}}}}}"#
        ),
    );
    assert_eq!(
        (status, msg.as_str()),
        (400, "invalid port specification: \"99999\"")
    );
    let (status, _) = api("DELETE", "/v1.50/networks/first", "");
    assert_eq!(status, 403);
    let (status, _) = api("GET", "/v1.50/networks/nosuch", "");
    assert_eq!(status, 404);
    assert_eq!(
        d.docker_ok(&["network", "ls", "-q"]),
        before,
        "no network created"
    );
}
