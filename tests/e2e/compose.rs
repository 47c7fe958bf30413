//! Debian's `docker-compose` (1.29, a docker-py client) against `skiff daemon`: a project of
//! two services on the project's default network, where one reaches the other by its service
//! name; `ps`, `logs`, `exec`, and `down` removing containers and network; named volumes with
//! `driver_opts` (a bound host directory, a tmpfs) that `down -v` removes without touching the
//! host directory.
//!
//! busybox's `wget` cannot resolve names in these images (static glibc without NSS), so the
//! client resolves the service name with busybox's own `nslookup` (through the embedded DNS
//! server at 127.0.0.11) and connects to the address it gets.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, run_with_timeout, stderr, stdout, Daemon};

const COMPOSE: &str = "/usr/bin/docker-compose";

const PROJECT: &str = r#"version: "2.4"
services:
  web:
    image: busybox:latest
    command: httpd -f -p 80 -h /etc
  client:
    image: busybox:latest
    command: sh -c "echo client is up; sleep 300"
    depends_on:
      - web
"#;

/// Prints the address `web` resolves to, then what `web` serves at `/hostname`.
const REACH_WEB: &str = "ip=$(nslookup web | { while read k v; do [ \"$k\" = Address: ] && a=$v; done; echo $a; }); echo $ip; timeout 5 wget -qO- http://$ip/hostname";

fn compose(d: &Daemon, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    let mut cmd = Command::new(COMPOSE);
    cmd.args(["--no-ansi", "-p", "skiffdemo", "-f"])
        .arg(dir.join("docker-compose.yml"))
        .args(args)
        .env("DOCKER_HOST", d.host())
        .env_remove("DOCKER_CONTEXT")
        .stdin(std::process::Stdio::null());
    run_with_timeout(cmd, Duration::from_secs(180))
}

fn ok(out: std::process::Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "docker-compose {what} failed:\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

#[test]
fn compose_services_reach_each_other_by_name_and_down_removes_the_network() {
    assert!(
        std::path::Path::new(COMPOSE).exists(),
        "install Debian's docker-compose (scripts/install-deps.sh)"
    );
    let d = Daemon::start();
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-compose")
        .tempdir()
        .expect("tmp");
    std::fs::write(dir.path().join("docker-compose.yml"), PROJECT).expect("compose file");

    ok(compose(&d, dir.path(), &["up", "-d"]), "up");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(nets.lines().any(|n| n == "skiffdemo_default"), "{nets}");
    let ps = ok(compose(&d, dir.path(), &["ps"]), "ps");
    for svc in ["skiffdemo_web_1", "skiffdemo_client_1"] {
        let line = ps
            .lines()
            .find(|l| l.starts_with(svc))
            .unwrap_or_else(|| panic!("{svc} in\n{ps}"));
        assert!(line.contains("Up"), "{line}");
    }
    let web_ip = d.inspect(
        "skiffdemo_web_1",
        "{{(index .NetworkSettings.Networks \"skiffdemo_default\").IPAddress}}",
    );
    let web_host = d.inspect("skiffdemo_web_1", "{{.Config.Hostname}}");
    let got = eventually(
        Duration::from_secs(30),
        "client to reach web by name",
        || {
            let out = compose(
                &d,
                dir.path(),
                &["exec", "-T", "client", "sh", "-c", REACH_WEB],
            );
            out.status.success().then(|| stdout(&out))
        },
    );
    let mut lines = got.lines();
    assert_eq!(lines.next(), Some(web_ip.as_str()), "{got}");
    assert_eq!(lines.next(), Some(web_host.as_str()), "{got}");
    let logs = ok(compose(&d, dir.path(), &["logs", "client"]), "logs");
    assert!(logs.contains("client is up"), "{logs}");

    ok(compose(&d, dir.path(), &["down"]), "down");
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "", "containers removed");
    let nets = d.docker_ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("skiffdemo_default"), "{nets}");
}

#[test]
fn compose_driver_opts_bind_a_host_directory_and_down_v_keeps_its_files() {
    let d = Daemon::start();
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-compose")
        .tempdir()
        .expect("tmp");
    let shared = dir.path().join("shared");
    std::fs::create_dir_all(&shared).expect("host dir");
    std::fs::write(shared.join("seed"), "from the host\n").expect("seed");
    let project = format!(
        r#"version: "2.4"
services:
  app:
    image: busybox:latest
    command: sh -c "cat /data/seed > /data/seen; grep ' /scratch ' /proc/mounts > /data/scratch; sleep 300"
    volumes:
      - data:/data
      - scratch:/scratch
volumes:
  data:
    driver: local
    driver_opts:
      type: none
      o: bind
      device: {}
  scratch:
    driver_opts:
      type: tmpfs
      device: tmpfs
      o: size=1m
"#,
        shared.display()
    );
    std::fs::write(dir.path().join("docker-compose.yml"), project).expect("compose file");
    ok(compose(&d, dir.path(), &["up", "-d"]), "up");
    let scratch = eventually(Duration::from_secs(30), "the service's writes", || {
        let seen = std::fs::read_to_string(shared.join("seen")).ok()?;
        let scratch = std::fs::read_to_string(shared.join("scratch")).ok()?;
        (seen == "from the host\n" && !scratch.is_empty()).then_some(scratch)
    });
    assert!(
        scratch.contains(" tmpfs ") && scratch.contains("size=1024k"),
        "{scratch}"
    );
    let opts = d.docker_ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Options.o}}",
        "skiffdemo_data",
    ]);
    assert_eq!(opts, "bind");

    ok(compose(&d, dir.path(), &["down", "-v"]), "down -v");
    assert_eq!(d.docker_ok(&["volume", "ls", "-q"]), "", "volumes removed");
    // The bound directory is the user's: removing the volume left every file in it.
    let mut files: Vec<String> = std::fs::read_dir(&shared)
        .expect("host dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["scratch", "seed", "seen"]);
}
