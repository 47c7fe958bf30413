//! Docker's image config fields that OCI's config lacks — `HEALTHCHECK`, `SHELL`, `ONBUILD` —
//! built with the real CLI, shown by `docker image inspect`, acted on by `docker run` (the
//! image's health check, `--no-healthcheck`, `--health-cmd`), by later builds (the `SHELL`
//! of a base, its `ONBUILD` triggers run once and not passed on), and kept by save/load and
//! commit.

use std::time::Duration;

use super::common::{eventually, stderr, stdout, Daemon};

const BASE: &str = r#"FROM busybox
SHELL ["/bin/sh", "-ec"]
RUN echo "$-" > /base-flags
HEALTHCHECK --interval=1s --timeout=5s --retries=2 CMD test -f /healthy
ONBUILD RUN echo triggered >> /onbuild
CMD ["sleep", "300"]
"#;

fn build(d: &Daemon, tag: &str, dockerfile: &str) -> String {
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-imgcfg")
        .tempdir()
        .expect("context dir");
    std::fs::write(dir.path().join("Dockerfile"), dockerfile).expect("Dockerfile");
    let ctx = dir.path().to_str().expect("utf-8 path");
    let out = d.docker(&["build", "-t", tag, ctx]);
    assert!(
        out.status.success(),
        "build {tag}:\n{}\n{}\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    stdout(&out)
}

const FIELDS: &str = "{{json .Config.Healthcheck}} {{json .Config.Shell}} {{json .Config.OnBuild}}";
const BASE_FIELDS: &str = r#"{"Test":["CMD-SHELL","test -f /healthy"],"Interval":1000000000,"Timeout":5000000000,"Retries":2} ["/bin/sh","-ec"] ["RUN echo triggered >> /onbuild"]"#;

fn status(d: &Daemon, name: &str) -> String {
    d.docker_ok(&[
        "ps",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Status}}",
    ])
}

#[test]
fn healthcheck_shell_and_onbuild_are_kept_and_used() {
    let d = Daemon::start();
    build(&d, "base", BASE);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", FIELDS, "base"]),
        BASE_FIELDS
    );
    // SHELL ["/bin/sh", "-ec"] ran the later RUN with -e.
    let flags = d.docker_ok(&["run", "--rm", "base", "cat", "/base-flags"]);
    assert!(flags.contains('e'), "RUN ran without -e: {flags:?}");

    // docker run gets the image's health check: unhealthy until /healthy exists.
    d.docker_ok(&["run", "-d", "--name", "hc", "base"]);
    eventually(Duration::from_secs(30), "unhealthy", || {
        status(&d, "hc").contains("(unhealthy)").then_some(())
    });
    d.docker_ok(&["exec", "hc", "touch", "/healthy"]);
    eventually(Duration::from_secs(30), "healthy", || {
        status(&d, "hc").contains("(healthy)").then_some(())
    });
    assert_eq!(
        d.inspect("hc", "{{json .Config.Healthcheck.Test}}"),
        r#"["CMD-SHELL","test -f /healthy"]"#
    );
    // --health-cmd replaces the test and keeps the image's timings; --no-healthcheck: none.
    d.docker_ok(&["run", "-d", "--name", "own", "--health-cmd", "true", "base"]);
    eventually(Duration::from_secs(30), "healthy with --health-cmd", || {
        status(&d, "own").contains("(healthy)").then_some(())
    });
    assert_eq!(d.inspect("own", "{{.Config.Healthcheck.Interval}}"), "1s");
    d.docker_ok(&["run", "-d", "--name", "none", "--no-healthcheck", "base"]);
    assert_eq!(d.inspect("none", "{{json .State.Health}}"), "null");
    assert!(
        !status(&d, "none").contains("health"),
        "{}",
        status(&d, "none")
    );

    // A commit keeps the container's health check.
    d.docker_ok(&["commit", "hc", "committed"]);
    assert_eq!(
        d.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.Healthcheck.Test}}",
            "committed"
        ]),
        r#"["CMD-SHELL","test -f /healthy"]"#
    );

    // FROM base runs the trigger once, starts with base's SHELL, and passes no trigger on.
    let out = build(&d, "child", "FROM base\nRUN echo \"$-\" > /child-flags\n");
    assert!(out.contains("Step 2/"), "{out}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "child", "cat", "/onbuild"]),
        "triggered"
    );
    let flags = d.docker_ok(&["run", "--rm", "child", "cat", "/child-flags"]);
    assert!(
        flags.contains('e'),
        "the base's SHELL was not used: {flags:?}"
    );
    assert_eq!(
        d.docker_ok(&[
            "image",
            "inspect",
            "-f",
            "{{json .Config.OnBuild}}",
            "child"
        ]),
        "null"
    );
    build(
        &d,
        "grandchild",
        "FROM child\nRUN wc -l < /onbuild > /count\n",
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "grandchild", "cat", "/count"]),
        "1"
    );
    // A stage's ONBUILD runs in a later stage built FROM it, once.
    build(
        &d,
        "staged",
        "FROM base AS first\nONBUILD RUN echo from-stage >> /staged\n\
         FROM first\nRUN wc -l < /staged > /count\n",
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "staged", "cat", "/count"]),
        "1"
    );

    // docker save / rmi / load keeps the fields.
    let dir = tempfile::tempdir().expect("tempdir");
    let tar = dir.path().join("base.tar");
    let tar = tar.to_str().expect("utf-8 path");
    d.docker_ok(&["save", "-o", tar, "base"]);
    d.docker_ok(&["rm", "-f", "hc", "own", "none"]);
    d.docker_ok(&["rmi", "committed", "staged", "grandchild", "child", "base"]);
    d.docker_ok(&["load", "-i", tar]);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", FIELDS, "base"]),
        BASE_FIELDS
    );
}
