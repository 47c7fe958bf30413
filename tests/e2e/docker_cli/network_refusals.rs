//! What skiff's networking does not do is refused up front, in Docker's error format, with
//! nothing created: IPv6 networks (`--ipv6`, an IPv6 `--subnet`), drivers other than bridge
//! (`overlay`, `macvlan`, `ipvlan`), and SCTP ports (`-p 80/sctp`).

use crate::common::{stderr, Daemon, BUSYBOX};

fn refused(d: &Daemon, args: &[&str], want: &str) {
    let out = d.docker(args);
    assert!(!out.status.success(), "docker {args:?} succeeded");
    let err = stderr(&out);
    assert!(
        err.contains("Error response from daemon: ") && err.contains(want),
        "docker {args:?}: {err}"
    );
}

#[test]
fn unsupported_networks_and_sctp_ports_are_refused_and_nothing_is_created() {
    let d = Daemon::start();
    let before = d.docker_ok(&["network", "ls", "-q"]);
    refused(
        &d,
        &["network", "create", "--ipv6", "skiffv6"],
        "IPv6 networks",
    );
    refused(
        &d,
        &["network", "create", "--subnet", "fd00:5::/64", "skiffv6"],
        "IPv6 networks",
    );
    for driver in ["overlay", "macvlan", "ipvlan"] {
        refused(
            &d,
            &["network", "create", "-d", driver, &format!("skiff{driver}")],
            &format!("plugin {driver}"),
        );
    }
    assert_eq!(
        d.docker_ok(&["network", "ls", "-q"]),
        before,
        "no network was created"
    );

    refused(
        &d,
        &[
            "run",
            "-d",
            "--name",
            "sctp",
            "-p",
            "8080:80/sctp",
            BUSYBOX,
            "sleep",
            "60",
        ],
        "sctp",
    );
    refused(
        &d,
        &[
            "create", "--name", "sctp2", "--expose", "80/sctp", "-P", BUSYBOX,
        ],
        "sctp",
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "no container was created");
}
