//! Images cross between skiff and Docker's own dockerd through a real registry: an image
//! built by skiff (RUN layers with deletions, so OCI whiteouts, COPY, config steps) is pushed,
//! pulled by dockerd and run there; an image built by dockerd's classic builder goes the
//! other way. Both sides must see the same files, config and history.

use crate::common::dockerd::Dockerd;
use crate::common::{stderr, stdout, Daemon};
use crate::registry_support::real::{Auth, RealRegistry};

/// Deletes a file and replaces a directory in later layers: only whiteouts (a plain one and
/// the directory's) keep `b` and `dir/old` out of the final view.
const DOCKERFILE: &str = r#"FROM busybox
RUN mkdir -p /data/dir && echo one > /data/a && echo gone > /data/b && echo x > /data/dir/old
RUN rm /data/b && rm -r /data/dir && mkdir /data/dir && echo new > /data/dir/new && echo two > /data/c
COPY f /data/f
ENV GREETING=hi
WORKDIR /data
CMD ["sh", "-c", "find . | sort; cat a c f dir/new; echo $GREETING"]
"#;

const EXPECTED: &str = ".\n./a\n./c\n./dir\n./dir/new\n./f\none\ntwo\ncopied\nnew\nhi";

fn context() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-interop")
        .tempdir()
        .expect("context dir");
    std::fs::write(dir.path().join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    std::fs::write(dir.path().join("f"), "copied\n").expect("f");
    dir
}

fn ctx_path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8 path")
}

/// `docker history` of `image` as `created_by|size` lines, the content hash of COPY steps
/// (computed differently by each builder) left out.
fn history(docker: impl Fn(&[&str]) -> String, image: &str) -> Vec<String> {
    docker(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        image,
    ])
    .lines()
    .map(|l| match (l.find(" file:"), l.find(" in ")) {
        (Some(a), Some(b)) if a < b => format!("{} file:… {}", &l[..a], &l[b + 1..]),
        _ => l.to_string(),
    })
    .collect()
}

#[test]
fn image_built_by_skiff_runs_in_dockerd() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let d = Daemon::start();
    let ctx = context();
    let name = format!("{}/interop/from-skiff:1", registry.addr);
    d.docker_ok(&["build", "-q", "-t", &name, ctx_path(&ctx)]);
    let layers = d.docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &name]);
    let out = d.docker(&["push", &name]);
    assert!(
        out.status.success(),
        "push: {}\n{}",
        stdout(&out),
        stderr(&out)
    );

    let k = Dockerd::start();
    k.docker_ok(&["pull", &name]);
    assert_eq!(k.docker_ok(&["run", "--rm", &name]), EXPECTED);
    assert_eq!(
        k.docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &name]),
        layers
    );
    assert_eq!(
        k.docker_ok(&["image", "inspect", "-f", "{{.Config.WorkingDir}}", &name]),
        "/data"
    );
    // The same Dockerfile built by dockerd has the same history, step for step.
    k.docker_ok(&["build", "-q", "-t", "reference", ctx_path(&ctx)]);
    assert_eq!(
        history(|a| k.docker_ok(a), &name),
        history(|a| k.docker_ok(a), "reference")
    );
    let config = "{{json .Config.Env}} {{json .Config.Cmd}} {{json .Config.Entrypoint}} {{.Config.WorkingDir}}";
    assert_eq!(
        k.docker_ok(&["image", "inspect", "-f", config, &name]),
        k.docker_ok(&["image", "inspect", "-f", config, "reference"])
    );
}

#[test]
fn image_built_by_dockerd_runs_in_skiff() {
    let registry = RealRegistry::start(Auth::Anonymous);
    let k = Dockerd::start();
    let ctx = context();
    let name = format!("{}/interop/from-dockerd:1", registry.addr);
    k.docker_ok(&["build", "-q", "-t", &name, ctx_path(&ctx)]);
    let layers = k.docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &name]);
    k.docker_ok(&["push", &name]);

    let d = Daemon::start();
    let out = d.docker(&["pull", &name]);
    assert!(
        out.status.success(),
        "pull: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert_eq!(d.docker_ok(&["run", "--rm", &name]), EXPECTED);
    assert_eq!(
        d.docker_ok(&["image", "inspect", "-f", "{{len .RootFS.Layers}}", &name]),
        layers
    );
    assert_eq!(
        history(|a| d.docker_ok(a), &name),
        history(|a| k.docker_ok(a), &name)
    );

    // skiff builds on top of dockerd's image and caches against it.
    let child = tempfile::Builder::new()
        .prefix("skiff-e2e-interop")
        .tempdir()
        .expect("context dir");
    std::fs::write(
        child.path().join("Dockerfile"),
        format!("FROM {name}\nRUN echo more > /data/more\nCMD [\"cat\", \"more\", \"c\"]\n"),
    )
    .expect("Dockerfile");
    d.docker_ok(&["build", "-t", "on-top", ctx_path(&child)]);
    assert_eq!(d.docker_ok(&["run", "--rm", "on-top"]), "more\ntwo");
}
