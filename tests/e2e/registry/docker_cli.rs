//! The docker CLI (28) against `skiff daemon` and real registries: pull and push with their
//! progress, `docker run` of an image not pulled yet, login/logout with good and bad
//! credentials (htpasswd and token auth), pull errors, a Docker Hub mirror.

use crate::common::{stderr, stdout, Daemon, BUSYBOX};
use crate::registry_support::real::{Auth, RealRegistry};
use crate::registry_support::token::{self, TokenServer};
use crate::{basic, docker_config_json, push_busybox, servers};

#[test]
fn docker_push_then_pull_shows_progress_and_records_digests() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let name = format!("{}/e2e/busybox:1", registry.addr);
    let digest = push_busybox(&d, &name);

    // Pushing again uploads nothing.
    let out = d.docker(&["push", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(": Layer already exists"),
        "{}",
        stdout(&out)
    );

    d.docker_ok(&["rmi", &name, BUSYBOX]);
    let out = d.docker(&["pull", &name]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "1: Pulling from e2e/busybox", "{text}");
    for want in [
        ": Pulling fs layer",
        ": Download complete",
        ": Pull complete",
    ] {
        assert!(
            lines.iter().any(|l| l.ends_with(want)),
            "no {want} in {text}"
        );
    }
    assert!(
        lines.contains(&format!("Digest: {digest}").as_str()),
        "{text}"
    );
    assert!(
        lines.contains(&format!("Status: Downloaded newer image for {name}").as_str()),
        "{text}"
    );
    assert_eq!(
        lines.last(),
        Some(&name.as_str()),
        "the CLI ends with the name"
    );

    let repo = format!("{}/e2e/busybox", registry.addr);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{json .RepoDigests}}", &name]),
        format!("[\"{repo}@{digest}\"]")
    );
    let listing = d.docker_ok(&[
        "images",
        "--digests",
        "--format",
        "{{.Repository}} {{.Tag}} {{.Digest}}",
    ]);
    assert!(
        listing.lines().any(|l| l == format!("{repo} 1 {digest}")),
        "{listing}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "echo", "pulled and running"]),
        "pulled and running"
    );

    let out = d.docker(&["pull", &name]);
    assert!(
        stdout(&out).contains(&format!("Status: Image is up to date for {name}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn docker_run_pulls_an_image_it_does_not_have() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let name = format!("{}/e2e/runme:latest", registry.addr);
    push_busybox(&d, &name);
    d.docker_ok(&["rmi", &name, BUSYBOX]);
    assert_eq!(d.docker_ok(&["images", "-q"]), "", "no image left");

    let out = d.docker(&["run", "--rm", &name, "echo", "from the registry"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), d.daemon_log());
    assert_eq!(stdout(&out), "from the registry\n");
    let err = stderr(&out);
    assert!(
        err.contains(&format!("Unable to find image '{name}' locally")),
        "{err}"
    );
    assert!(err.contains("Pull complete"), "{err}");
}

#[test]
fn docker_pull_errors_are_printed_and_fail() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let missing = format!("{}/e2e/missing:1", registry.addr);
    let out = d.docker(&["pull", &missing]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "Error response from daemon: manifest for {missing} not found: manifest unknown"
        )),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["run", "--rm", &missing]);
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("manifest unknown"),
        "{}",
        stderr(&out)
    );
    // A registry that does not answer.
    let out = d.docker(&["pull", "127.0.0.1:1/e2e/app:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));
}

#[test]
fn docker_login_logout_against_an_htpasswd_registry() {
    let registry = RealRegistry::start(Auth::Htpasswd(vec![("alice".into(), "s3cret".into())]));
    let d = Daemon::start();
    let name = format!("{}/private/busybox:1", registry.addr);
    d.docker_ok(&["tag", BUSYBOX, &name]);

    let out = d.docker(&["push", &name]);
    assert_eq!(out.status.code(), Some(1), "push without login fails");
    assert!(
        stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );

    let out = d.docker(&["login", &registry.addr, "-u", "alice", "-p", "wrong"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "Error response from daemon: login attempt to http://{}/v2/ failed with status: 401 Unauthorized",
            registry.addr
        )),
        "{}",
        stderr(&out)
    );
    assert!(
        docker_config_json(&d)["auths"][&registry.addr].is_null(),
        "bad credentials are not stored"
    );

    let mut login = d.docker_cmd(&["login", &registry.addr, "-u", "alice", "--password-stdin"]);
    login.stdin(std::process::Stdio::piped());
    let mut child = login
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker login");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("Login Succeeded"), "{}", stdout(&out));
    assert_eq!(
        docker_config_json(&d)["auths"][&registry.addr]["auth"],
        basic("alice", "s3cret")
    );

    let digest = push_busybox(&d, &name);
    d.docker_ok(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("Digest: {digest}")));

    let out = d.docker(&["logout", &registry.addr]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        docker_config_json(&d)["auths"][&registry.addr].is_null(),
        "logout forgets the credentials"
    );
    d.docker_ok(&["rmi", &name]);
    let out = d.docker(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("authentication required"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn docker_login_push_and_pull_with_token_auth() {
    let rt = servers();
    let tokens = rt.block_on(TokenServer::start(&[("bob", "hunter2")]));
    let registry = RealRegistry::start(Auth::Token {
        realm: tokens.realm.clone(),
        service: token::SERVICE.into(),
        issuer: token::ISSUER.into(),
        cert_pem: tokens.cert_pem.clone(),
    });
    let d = Daemon::start();
    let out = d.docker(&["login", &registry.addr, "-u", "bob", "-p", "nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(&format!(
            "Error response from daemon: Get \"http://{}/v2/\": unauthorized: incorrect username or password",
            registry.addr
        )),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["login", &registry.addr, "-u", "bob", "-p", "hunter2"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let name = format!("{}/team/busybox:2", registry.addr);
    let digest = push_busybox(&d, &name);
    d.docker_ok(&["rmi", &name, BUSYBOX]);
    let out = d.docker(&["pull", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("Digest: {digest}")));
    assert_eq!(
        d.docker_ok(&["run", "--rm", &name, "echo", "token"]),
        "token"
    );
}

#[test]
fn docker_hub_names_are_pulled_from_a_configured_mirror() {
    let mirror = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::with_args(&[
        "--registry-mirror",
        &format!("http://{}", mirror.addr),
        "--insecure-registry",
        "registry.example:5000",
    ]);
    let info = d.docker_ok(&["info"]);
    assert!(
        info.contains(&format!("Registry Mirrors:\n  http://{}/", mirror.addr)),
        "{info}"
    );
    assert!(info.contains("  registry.example:5000\n"), "{info}");
    // The mirror holds `library/busybox:mirrored`, as a pull-through cache of Hub would.
    let in_mirror = format!("{}/library/busybox:mirrored", mirror.addr);
    push_busybox(&d, &in_mirror);
    d.docker_ok(&["rmi", &in_mirror, BUSYBOX]);

    let out = d.docker(&["pull", "busybox:mirrored"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), d.daemon_log());
    let text = stdout(&out);
    assert!(
        text.contains("mirrored: Pulling from library/busybox"),
        "{text}"
    );
    assert!(
        text.contains("Status: Downloaded newer image for busybox:mirrored"),
        "{text}"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "busybox:mirrored", "echo", "via mirror"]),
        "via mirror"
    );
}

/// A bridge without ports holding one non-loopback address of this host, removed on drop (also when the test
/// fails).
struct DummyAddress {
    link: String,
    ip: String,
}

impl DummyAddress {
    fn add() -> DummyAddress {
        let n = std::process::id() % 250 + 1;
        let d = DummyAddress {
            link: format!("skiffreg{n}"),
            ip: format!("10.213.{n}.1"),
        };
        for args in [
            vec!["link", "add", d.link.as_str(), "type", "bridge"],
            vec![
                "addr",
                "add",
                &format!("{}/32", d.ip),
                "dev",
                d.link.as_str(),
            ],
            vec!["link", "set", d.link.as_str(), "up"],
        ] {
            let out = std::process::Command::new("ip")
                .args(&args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?}: {}", stderr(&out));
        }
        d
    }
}

impl Drop for DummyAddress {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
    }
}

#[test]
fn plain_http_to_other_registries_only_with_insecure_registry() {
    let dummy = DummyAddress::add();
    let registry = RealRegistry::start_on(&dummy.ip, Auth::Anonymous);
    let name = format!("{}/e2e/busybox:1", registry.addr);

    // Not configured: the daemon speaks TLS to it, and the plain HTTP registry cannot answer.
    let strict = Daemon::start();
    strict.docker_ok(&["tag", BUSYBOX, &name]);
    let out = strict.docker(&["push", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let out = strict.docker(&["pull", &name]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains(&format!("https://{}/v2/", registry.addr)),
        "{}",
        stderr(&out)
    );
    drop(strict);

    let d = Daemon::with_args(&["--insecure-registry", &format!("{}/24", dummy.ip)]);
    let digest = push_busybox(&d, &name);
    d.docker_ok(&["rmi", &name, BUSYBOX]);
    let out = d.docker(&["pull", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("Digest: {digest}")));
}

#[test]
fn docker_image_config_fields_survive_push_and_pull() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let name = format!("{}/e2e/configured:1", registry.addr);
    let dir = tempfile::tempdir().expect("context dir");
    std::fs::write(
        dir.path().join("Dockerfile"),
        "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\nHEALTHCHECK --interval=2s CMD true\nONBUILD RUN true\n",
    )
    .expect("Dockerfile");
    d.docker_ok(&[
        "build",
        "-q",
        "-t",
        &name,
        dir.path().to_str().expect("utf-8"),
    ]);
    let fields = "{{json .Config.Healthcheck}} {{json .Config.Shell}} {{json .Config.OnBuild}}";
    let built = d.docker_ok(&["image", "inspect", "-f", fields, &name]);
    assert_eq!(
        built,
        r#"{"Test":["CMD-SHELL","true"],"Interval":2000000000} ["/bin/sh","-ec"] ["RUN true"]"#
    );
    d.docker_ok(&["push", &name]);
    d.docker_ok(&["rmi", &name]);
    d.docker_ok(&["pull", &name]);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", fields, &name]),
        built
    );
}

#[test]
fn docker_pull_all_tags_pulls_every_tag_of_the_repository() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let repo = format!("{}/e2e/many", registry.addr);
    for tag in ["1", "2", "latest"] {
        push_busybox(&d, &format!("{repo}:{tag}"));
    }
    d.docker_ok(&[
        "rmi",
        &format!("{repo}:1"),
        &format!("{repo}:2"),
        &format!("{repo}:latest"),
    ]);
    let out = d.docker(&["pull", "--all-tags", &repo]);
    assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
    for tag in ["1", "2", "latest"] {
        assert!(
            stdout(&out).contains(&format!("{tag}: Pulling from e2e/many")),
            "{}",
            stdout(&out)
        );
    }
    // Every tag is one image (busybox's), which also shows its busybox name.
    let listed = d.docker_ok(&["images", "--format", "{{.Repository}} {{.Tag}}", &repo]);
    let mut tags: Vec<&str> = listed
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("{repo} ")))
        .collect();
    tags.sort_unstable();
    assert_eq!(tags, ["1", "2", "latest"]);
    // A repository the registry does not have: Docker's error, nothing pulled.
    let out = d.docker(&["pull", "--all-tags", &format!("{}/e2e/none", registry.addr)]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("e2e/none"), "{}", stderr(&out));
}
