//! Published ports through the docker CLI: reachable from another host, from the host's
//! 127.0.0.1 and from another container (hairpin); a taken host port is Docker's error and
//! leaves nothing behind. Helpers and slots as in the network module.

use std::net::TcpListener;

use crate::common::otherhost::OtherHost;
use crate::common::{eventually, reference, stderr, Daemon, BUSYBOX};
use crate::network::*;

#[test]
fn published_ports_reach_from_another_host_the_hosts_localhost_and_hairpin() {
    let d = Daemon::start();
    let (p, range0) = (port(&d, 0), port(&d, 10));
    httpd(&d, "pub", &["-p", &format!("{p}:80")]);
    let id = short(&d, "pub");
    // (dockerd also publishes on IPv6: its output has a `[::]` line more; skiff is IPv4 only.)
    let same = |got: String, want: String| {
        if reference() {
            assert!(got.starts_with(&want), "{got} / {want}");
        } else {
            assert_eq!(got, want);
        }
    };
    same(
        d.docker_ok(&["port", "pub"]),
        format!("80/tcp -> 0.0.0.0:{p}"),
    );
    // (dockerd's list goes on with the `::` binding; skiff's ends after the IPv4 one.)
    let v4 = format!("{{\"80/tcp\":[{{\"HostIp\":\"0.0.0.0\",\"HostPort\":\"{p}\"}}");
    same(
        d.inspect("pub", "{{json .NetworkSettings.Ports}}"),
        if reference() { v4 } else { format!("{v4}]}}") },
    );
    let ps = d.docker_ok(&["ps", "--format", "{{.Ports}}", "--filter", "name=pub"]);
    same(ps, format!("0.0.0.0:{p}->80/tcp"));
    // From the host's own 127.0.0.1.
    let body = eventually(LONG, "the published port from 127.0.0.1", || {
        fetch_from_host(&format!("http://127.0.0.1:{p}/hostname"))
    });
    assert_eq!(body.trim(), id);
    // From another host, through the host's address.
    if !reference() {
        let other = OtherHost::new(d.slot(), d.dir());
        let body = other
            .fetch(&format!("http://{}:{p}/hostname", other.host_addr))
            .expect("the published port from another host");
        assert_eq!(body.trim(), id);
    }
    // Hairpin: another container, and the container itself, through the host's address.
    let gw = d.inspect("pub", "{{.NetworkSettings.Gateway}}");
    d.docker_ok(&["run", "-d", "--name", "peer", BUSYBOX, "sleep", "300"]);
    for from in ["peer", "pub"] {
        let body = fetch_in(&d, from, &format!("http://{gw}:{p}/hostname"))
            .unwrap_or_else(|| panic!("hairpin from {from}"));
        assert_eq!(body.trim(), id);
    }
    // -P takes an ephemeral host port for every exposed port; a range takes the first free.
    d.docker_ok(&[
        "run", "-d", "--name", "all", "--expose", "80", "-P", BUSYBOX, "httpd", "-f", "-p", "80",
        "-h", "/etc",
    ]);
    let eph: u16 = d
        .docker_ok(&["port", "all", "80"])
        .lines()
        .next()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .expect("an ephemeral port");
    assert!(eph > 1024);
    let all_id = short(&d, "all");
    let body = eventually(LONG, "the -P port", || {
        fetch_from_host(&format!("http://127.0.0.1:{eph}/hostname"))
    });
    assert_eq!(body.trim(), all_id);
    let _taken = TcpListener::bind(("0.0.0.0", range0)).expect("hold the range's first port");
    httpd(
        &d,
        "ranged",
        &["-p", &format!("127.0.0.1:{range0}-{}:80", range0 + 2)],
    );
    same(
        d.docker_ok(&["port", "ranged", "80/tcp"]),
        format!("127.0.0.1:{}", range0 + 1),
    );
}

#[test]
fn a_taken_host_port_is_a_clear_error_and_leaves_nothing() {
    let d = Daemon::start();
    let p = port(&d, 1);
    let _taken = TcpListener::bind(("0.0.0.0", p)).expect("take the port");
    let links_before = (!reference()).then(|| d.slot().links());
    let out = d.docker(&[
        "run",
        "-d",
        "--name",
        "clash",
        "-p",
        &format!("{p}:80"),
        BUSYBOX,
        "sleep",
        "300",
    ]);
    assert_eq!(out.status.code(), Some(125));
    // dockerd words the cause by who holds the port; the start of the message is the same.
    let err = stderr(&out);
    assert!(
        err.contains("driver failed programming external connectivity on endpoint clash")
            && err.contains(&format!("0.0.0.0:{p}")),
        "{err}"
    );
    if !reference() {
        let taken = format!("Bind for 0.0.0.0:{p} failed: port is already allocated");
        assert!(err.contains(&taken), "{err}");
    }
    assert_eq!(d.inspect("clash", "{{.State.Status}}"), "created");
    if let Some(before) = links_before {
        eventually(LONG, "no veth left by the failed start", || {
            (d.slot().links() == before).then_some(())
        });
        assert!(
            !d.slot().ruleset().contains(&format!(". {p} :")),
            "{}",
            d.slot().ruleset()
        );
    }
    // The address it had claimed is free: the next container gets the first one.
    d.docker_ok(&["rm", "clash"]);
    d.docker_ok(&["run", "-d", "--name", "next", BUSYBOX, "sleep", "300"]);
    if !reference() {
        assert_eq!(
            d.inspect("next", "{{.NetworkSettings.IPAddress}}"),
            format!("10.{}.0.2", 100 + d.slot().n)
        );
    }
}
