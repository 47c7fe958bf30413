//! `docker cp` into and out of a running container that plants symlinks to `/`, to
//! `../../..` and to a host directory (the CVE-2018-15664 setting): the host's files are never
//! written or read, and files land where Docker puts them — the symlink followed inside the
//! container.

use crate::common::{stderr, Daemon, BUSYBOX};

#[test]
fn cp_through_container_symlinks_never_touches_the_host() {
    let d = Daemon::start();
    let host = tempfile::Builder::new()
        .prefix("skiff-e2e-victim")
        .tempdir_in("/tmp")
        .expect("host dir");
    let host_dir = host.path().to_str().expect("utf-8 path").to_owned();
    let victim = host.path().join("victim.txt");
    std::fs::write(&victim, "original").expect("victim");
    std::fs::write(host.path().join("secret.txt"), "host secret").expect("secret");
    let script = format!(
        "mkdir -p {host_dir} /tmp && ln -s / /escape && ln -s ../../.. /tmp/up && \
         ln -s {host_dir} /hostlink && touch /ready && exec sleep 300"
    );
    d.docker_ok(&["run", "-d", "--name", "trap", BUSYBOX, "sh", "-c", &script]);
    crate::common::eventually(std::time::Duration::from_secs(30), "the symlinks", || {
        let ready = d.docker(&["exec", "trap", "sh", "-c", "test -e /ready"]);
        if !ready.status.success() && d.inspect("trap", "{{.State.Running}}") != "true" {
            panic!("the container ended: {}", d.docker_ok(&["logs", "trap"]));
        }
        ready.status.success().then_some(())
    });
    let local = tempfile::Builder::new()
        .prefix("skiff-e2e-cp-src")
        .tempdir()
        .expect("local dir");

    for dest in [
        format!("trap:/escape{host_dir}/victim.txt"),
        format!("trap:/tmp/up{host_dir}/victim.txt"),
        "trap:/hostlink/victim.txt".to_string(),
    ] {
        let written = format!("through {dest}\n");
        let src = local.path().join("victim.txt");
        std::fs::write(&src, &written).expect("source");
        d.docker_ok(&["cp", src.to_str().expect("utf-8"), &dest]);
        assert_eq!(
            std::fs::read_to_string(&victim).expect("victim"),
            "original",
            "{dest} wrote to the host"
        );
        let inside = d.docker_ok(&["exec", "trap", "cat", &format!("{host_dir}/victim.txt")]);
        assert_eq!(inside, written.trim_end(), "{dest}");
    }

    // Out of the container: the symlink itself, never the host file it names.
    let out = local.path().join("out");
    std::fs::create_dir(&out).expect("out dir");
    let failed = d.docker(&[
        "cp",
        "trap:/hostlink/secret.txt",
        out.to_str().expect("utf-8"),
    ]);
    assert!(!failed.status.success());
    assert!(
        stderr(&failed).contains("Could not find the file /hostlink/secret.txt"),
        "{}",
        stderr(&failed)
    );
    d.docker_ok(&["cp", "trap:/hostlink", out.to_str().expect("utf-8")]);
    let copied = out.join("hostlink");
    assert!(
        std::fs::symlink_metadata(&copied)
            .expect("copied link")
            .file_type()
            .is_symlink(),
        "the link was followed"
    );
    // Through the link to `/`: the container's root, where the host's secret is not.
    let through_root = format!("trap:/escape{host_dir}/secret.txt");
    let failed = d.docker(&["cp", &through_root, out.to_str().expect("utf-8")]);
    assert!(!failed.status.success(), "the host's secret was copied");
    d.docker_ok(&[
        "cp",
        &format!("trap:/escape{host_dir}/victim.txt"),
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("victim.txt")).expect("copied file"),
        "through trap:/hostlink/victim.txt\n"
    );
}
