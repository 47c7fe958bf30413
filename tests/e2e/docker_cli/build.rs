//! `docker build` with the real CLI: it sees `Builder-Version: 1` on `/_ping` and uses the
//! classic `POST /build` (no buildx). Steps, tags, labels, build args, heredocs, the cache
//! (hits, a changed file busting only its step and those after), multi-stage builds with
//! `--from` and `--target`, history, running the result, and bad input.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use super::common::{reference, stderr, stdout, Daemon};

/// A context directory with `files` (`path`, content).
fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("skiff-e2e-build")
        .tempdir()
        .expect("context dir");
    for (path, content) in files {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(p, content).expect("write");
    }
    dir
}

fn build_cmd(d: &Daemon, args: &[&str]) -> Command {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let mut cmd = d.docker_cmd(&all);
    if reference() {
        cmd.env("DOCKER_BUILDKIT", "0");
    }
    cmd
}

fn build(d: &Daemon, args: &[&str]) -> Output {
    super::common::run_with_timeout(build_cmd(d, args), Duration::from_secs(180))
}

fn build_ok(d: &Daemon, args: &[&str]) -> String {
    let out = build(d, args);
    assert!(
        out.status.success(),
        "docker build {args:?} failed:\n{}\n{}\ndaemon log:\n{}",
        stdout(&out),
        stderr(&out),
        d.daemon_log()
    );
    stdout(&out)
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().expect("utf-8 path")
}

const APP: &str = r#"FROM busybox
ARG GREETING=hello
ENV APP=/app
WORKDIR $APP
COPY a.txt .
COPY dir/ sub/
RUN echo "$GREETING" > greeting && cat a.txt >> greeting
RUN <<EOF
echo heredoc > /app/heredoc
EOF
LABEL from=dockerfile
EXPOSE 8080
CMD ["cat", "greeting"]
"#;

#[test]
fn build_runs_steps_tags_caches_and_records_history() {
    let d = Daemon::start();
    let ctx = context(&[("Dockerfile", APP), ("a.txt", "A\n"), ("dir/b.txt", "B\n")]);
    let args = [
        "-t",
        "app:1",
        "-t",
        "app:2",
        "--label",
        "via=cli",
        "--build-arg",
        "GREETING=hi",
        path(&ctx),
    ];
    let out = build_ok(&d, &args);
    assert!(out.contains("Step 1/12 : FROM busybox"), "{out}");
    assert!(out.contains("Step 7/12 : RUN echo \"$GREETING\""), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("Successfully tagged app:1\n"), "{out}");
    assert!(out.contains("Successfully tagged app:2\n"), "{out}");
    assert!(!out.contains("Using cache"), "{out}");
    let built = out
        .lines()
        .find_map(|l| l.strip_prefix("Successfully built "))
        .expect("Successfully built line")
        .to_string();

    assert_eq!(d.docker_ok(&["run", "--rm", "app:1"]), "hi\nA");
    assert_eq!(
        d.docker_ok(&[
            "run",
            "--rm",
            "app:2",
            "cat",
            "/app/heredoc",
            "/app/sub/b.txt"
        ]),
        "heredoc\nB"
    );
    assert_eq!(d.inspect("app:1", "{{.Config.WorkingDir}}"), "/app");
    assert_eq!(
        d.inspect(
            "app:1",
            "{{index .Config.Labels \"from\"}} {{index .Config.Labels \"via\"}}"
        ),
        "dockerfile cli"
    );
    assert_eq!(
        d.inspect("app:1", "{{json .Config.ExposedPorts}}"),
        r#"{"8080/tcp":{}}"#
    );
    assert!(d
        .inspect("app:1", "{{json .Config.Env}}")
        .contains("APP=/app"));
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "no build container is left"
    );
    let images = d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]);
    assert!(
        !images.contains("<none>"),
        "intermediate images are hidden:\n{images}"
    );

    // History: one entry per step plus the base's; config steps add no layer.
    let history = d.docker_ok(&[
        "history",
        "--no-trunc",
        "--format",
        "{{.CreatedBy}}|{{.Size}}",
        "app:1",
    ]);
    let entries = d.docker_ok(&["history", "-q", "app:1"]);
    assert_eq!(entries.lines().count(), 12, "{entries}");
    let lines: Vec<&str> = history.lines().collect();
    assert!(
        lines.iter().any(|l| l.ends_with("WORKDIR /app|0B")),
        "{history}"
    );
    assert!(
        lines.iter().any(|l| l.ends_with("ENV APP=/app|0B")),
        "{history}"
    );
    let run = lines
        .iter()
        .find(|l| l.contains("/bin/sh -c echo \"$GREETING\""))
        .expect("RUN in history");
    assert!(run.starts_with("|1 GREETING=hi "), "{run}");
    assert!(
        !run.ends_with("|0B"),
        "a RUN that wrote a file has a layer: {run}"
    );

    // Everything cached: the same image.
    let again = build_ok(&d, &args);
    assert_eq!(again.matches(" ---> Using cache").count(), 11, "{again}");
    assert!(
        again.contains(&format!("Successfully built {built}")),
        "{again}"
    );

    // A changed file busts its COPY and what follows, nothing before.
    std::fs::write(ctx.path().join("dir/b.txt"), "B2\n").expect("edit");
    let changed = build_ok(&d, &args);
    assert_eq!(changed.matches(" ---> Using cache").count(), 4, "{changed}");
    let after_copy = changed.split("Step 6/12").nth(1).expect("step 6");
    assert!(!after_copy.contains("Using cache"), "{changed}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "app:1", "cat", "/app/sub/b.txt"]),
        "B2"
    );

    let fresh = build_ok(&d, &["--no-cache", "-t", "app:3", path(&ctx)]);
    assert!(!fresh.contains("Using cache"), "{fresh}");
}

const STAGES: &str = r#"FROM busybox AS base
RUN echo base > /base
FROM base AS one
RUN echo one > /one
FROM base AS two
RUN echo two > /two
FROM busybox AS unused
RUN echo never-built; exit 1
FROM scratch
COPY --from=one /one /
COPY --from=two /two /base /
COPY --from=base /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/one", "/two", "/base"]
"#;

#[test]
fn multi_stage_build_copies_from_stages_and_skips_unneeded_ones() {
    let d = Daemon::start();
    let ctx = context(&[("Dockerfile", STAGES)]);
    let out = build_ok(&d, &["-t", "stages", path(&ctx)]);
    assert!(
        !out.contains("never-built"),
        "the unused stage is skipped:\n{out}"
    );
    assert!(out.contains("Step 11/11 : CMD"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", "stages"]), "one\ntwo\nbase");
    assert_eq!(d.inspect("stages", "{{len .RootFS.Layers}}"), "3");

    let out = build_ok(&d, &["--target", "two", "-t", "two", path(&ctx)]);
    assert_eq!(out.matches("Step ").count(), 4, "{out}");
    assert!(!out.contains("echo one"), "{out}");
    assert_eq!(d.docker_ok(&["run", "--rm", "two", "cat", "/two"]), "two");

    let out = build(&d, &["--target", "nope", path(&ctx)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("target stage \"nope\" could not be found"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn failing_run_reports_command_line_and_code_and_leaves_nothing_behind() {
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo before\nRUN echo failing; exit 3\nRUN echo after\n",
    )]);
    let out = build(&d, &["-t", "failing", path(&ctx)]);
    assert!(!out.status.success());
    let (so, se) = (stdout(&out), stderr(&out));
    assert!(so.contains("Step 3/4 : RUN echo failing; exit 3"), "{so}");
    assert!(so.contains("failing\n"), "the RUN output is streamed: {so}");
    assert!(!so.contains("Step 4/4"), "{so}");
    assert!(
        se.contains("The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3"),
        "{se}"
    );
    assert!(se.contains("line 3"), "{se}");
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "no build container is left"
    );
    assert!(!d.docker(&["image", "inspect", "failing"]).status.success());
}

#[test]
fn bad_input_is_refused_with_clear_errors() {
    let d = Daemon::start();
    let err = |files: &[(&str, &str)]| {
        let ctx = context(files);
        let out = build(&d, &[path(&ctx)]);
        assert!(!out.status.success(), "{}", stdout(&out));
        stderr(&out)
    };
    let e = err(&[("Dockerfile", "FROM busybox\nRUN true\nFOO bar\n")]);
    assert!(e.contains("dockerfile parse error on line 3"), "{e}");
    let e = err(&[("Dockerfile", "FROM busybox\nCOPY ../../etc/passwd /x\n")]);
    assert!(e.contains("outside the build context"), "{e}");
    let e = err(&[("Dockerfile", "FROM busybox\nCOPY missing.txt /x\n")]);
    assert!(e.contains("missing.txt"), "{e}");
    let e = err(&[("Dockerfile", "FROM busybox\nADD http://example.com/x /x\n")]);
    assert!(e.contains("no network access"), "{e}");
    let e = err(&[("Dockerfile", "FROM not-loaded:1\n")]);
    assert!(e.contains("not-loaded:1"), "{e}");

    // A symlink in the context that leaves it.
    let ctx = context(&[("Dockerfile", "FROM busybox\nCOPY pw /x\n")]);
    std::os::unix::fs::symlink("/etc/passwd", ctx.path().join("pw")).expect("symlink");
    let out = build(&d, &[path(&ctx)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("outside the context"),
        "{}",
        stderr(&out)
    );
    assert_eq!(d.docker_ok(&["ps", "-aq"]), "");
}

#[test]
fn context_over_the_daemon_limit_is_refused() {
    if reference() {
        eprintln!("skipped: dockerd has no build context limit to set");
        return;
    }
    let d = Daemon::with_args(&["--max-build-context", "65536"]);
    let big = "x".repeat(200_000);
    let ctx = context(&[("Dockerfile", "FROM busybox\n"), ("big", &big)]);
    let out = build(&d, &[path(&ctx)]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("build context is larger than the 65536 byte limit"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dockerfile_from_path_or_stdin_dockerignore_add_chown_onbuild_and_quiet() {
    let d = Daemon::start();
    let mut archive = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_cksum();
    archive
        .append_data(&mut h, "in/x.txt", &b"tar"[..])
        .expect("tar");
    let archive = archive.into_inner().expect("tar");
    let ctx = context(&[
        (".dockerignore", "secret.txt\n"),
        ("secret.txt", "secret"),
        ("ok.txt", "ok"),
        (
            "build/Build.df",
            "FROM busybox\nCOPY . /ctx/\nADD a.tar /opt/\nCOPY --chown=nobody --chmod=600 ok.txt /o\n\
             ONBUILD RUN echo triggered > /t\n",
        ),
    ]);
    std::fs::write(ctx.path().join("a.tar"), archive).expect("tar");
    // -f names a file anywhere in the context (the CLI sends its context-relative path).
    let df = ctx.path().join("build/Build.df");
    build_ok(
        &d,
        &["-f", df.to_str().expect("utf-8"), "-t", "base", path(&ctx)],
    );
    let listing = d.docker_ok(&["run", "--rm", "base", "ls", "/ctx"]);
    assert!(listing.contains("ok.txt"), "{listing}");
    assert!(!listing.contains("secret.txt"), "{listing}");
    assert_eq!(
        d.docker_ok(&["run", "--rm", "base", "cat", "/opt/in/x.txt"]),
        "tar"
    );
    assert_eq!(
        d.docker_ok(&["run", "--rm", "base", "busybox", "stat", "-c", "%u:%g %a", "/o"]),
        "65534:65534 600"
    );
    assert!(
        !d.docker(&["run", "--rm", "base", "cat", "/t"])
            .status
            .success(),
        "ONBUILD does not run in the image that declares it"
    );

    // -f - reads the Dockerfile from stdin; the ONBUILD trigger runs in the child.
    let mut cmd = build_cmd(&d, &["-q", "-t", "child", "-f", "-", path(&ctx)]);
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("docker build");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"FROM base\nCMD [\"cat\", \"/t\"]\n")
        .expect("write Dockerfile");
    let out = child.wait_with_output().expect("docker build");
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out);
    assert!(
        id.trim().starts_with("sha256:") && id.trim().lines().count() == 1,
        "-q prints only the id: {id}"
    );
    assert_eq!(d.docker_ok(&["run", "--rm", "child"]), "triggered");
}

/// A RUN that deletes a file of the base makes an OCI whiteout in its layer (what `docker
/// save` gives and a registry would get), and the image runs without the file.
#[test]
fn run_deletions_become_oci_whiteouts() {
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN rm /etc/group && mkdir /made\n",
    )]);
    build_ok(&d, &["-t", "deleted", path(&ctx)]);
    assert!(!d
        .docker(&["run", "--rm", "deleted", "cat", "/etc/group"])
        .status
        .success());
    let saved = d
        .docker_cmd(&["save", "deleted"])
        .output()
        .expect("docker save");
    assert!(saved.status.success(), "{}", stderr(&saved));
    let mut files = std::collections::HashMap::new();
    let mut archive = tar::Archive::new(saved.stdout.as_slice());
    for entry in archive.entries().expect("save tar") {
        let mut entry = entry.expect("entry");
        let name = entry.path().expect("path").to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut bytes).expect("read");
        files.insert(name, bytes);
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let top = manifest[0]["Layers"]
        .as_array()
        .and_then(|l| l.last())
        .and_then(|l| l.as_str())
        .expect("layers")
        .to_string();
    let names: Vec<String> = tar::Archive::new(files[&top].as_slice())
        .entries()
        .expect("layer tar")
        .map(|e| {
            e.expect("layer entry")
                .path()
                .expect("path")
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    assert!(
        names
            .iter()
            .any(|n| n.trim_end_matches('/') == "etc/.wh.group"),
        "{names:?}"
    );
    assert!(
        names.iter().any(|n| n.trim_end_matches('/') == "made"),
        "{names:?}"
    );
}

/// Accepts `n` connections (each sends its name and a newline) until `deadline`, then
/// writes every name it got to every connection and closes them: a stage that connects
/// learns whether the others were running at the same time. Returns the names.
fn barrier(listener: std::net::TcpListener, n: usize, deadline: Duration) -> Vec<String> {
    use std::io::{BufRead, BufReader};
    listener
        .set_nonblocking(true)
        .expect("nonblocking listener");
    let end = std::time::Instant::now() + deadline;
    let mut met = Vec::new();
    while met.len() < n && std::time::Instant::now() < end {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).expect("blocking conn");
                conn.set_read_timeout(Some(Duration::from_secs(10)))
                    .expect("read timeout");
                let mut name = String::new();
                let _ = BufReader::new(&conn).read_line(&mut name);
                met.push((name.trim().to_string(), conn));
            }
            // Polling the listener with a deadline (nothing else to wait on).
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
    let names: Vec<String> = met.iter().map(|(n, _)| n.clone()).collect();
    for (_, mut conn) in met {
        let _ = writeln!(conn, "{}", names.join(" "));
    }
    names
}

/// Two stages that each wait for the other at a barrier: the build only finishes when they
/// run at the same time (built one after the other, the first would wait alone until the
/// barrier gives up and its `grep` fails). The stage the target does not need never runs.
#[test]
fn independent_stages_run_at_the_same_time() {
    let d = Daemon::start();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("addr").port();
    let barrier = std::thread::spawn(move || barrier(listener, 2, Duration::from_secs(90)));
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox AS left\nARG PORT\n\
         RUN echo left | nc 127.0.0.1 $PORT > /met && grep -q right /met\n\
         FROM busybox AS unused\nRUN echo never-built; exit 1\n\
         FROM busybox AS right\nARG PORT\n\
         RUN echo right | nc 127.0.0.1 $PORT > /met && grep -q left /met\n\
         FROM busybox\nCOPY --from=left /met /left\nCOPY --from=right /met /right\n",
    )]);
    let port_arg = format!("PORT={port}");
    let out = build(
        &d,
        &[
            "--network",
            "host",
            "--no-cache",
            "--build-arg",
            &port_arg,
            "-t",
            "met",
            path(&ctx),
        ],
    );
    let names = barrier.join().expect("barrier thread");
    assert!(
        out.status.success(),
        "the stages did not meet (they met: {names:?}):\n{}\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(!stdout(&out).contains("never-built"), "{}", stdout(&out));
    let mut names = names;
    names.sort();
    assert_eq!(names, ["left", "right"]);
    let seen = d.docker_ok(&["run", "--rm", "met", "cat", "/left", "/right"]);
    assert_eq!(seen.lines().count(), 2, "{seen}");
    assert!(
        seen.lines()
            .all(|l| l.contains("left") && l.contains("right")),
        "{seen}"
    );
}

#[test]
fn rejects_copy_through_stage_symlinks_out_of_the_rootfs() {
    let d = Daemon::start();
    // Where the links would lead if COPY followed them on the host.
    let host = tempfile::Builder::new()
        .prefix("skiff-e2e-copy-escape")
        .tempdir_in("/tmp")
        .expect("host dir");
    let name = host
        .path()
        .file_name()
        .and_then(|n| n.to_str())
        .expect("name")
        .to_owned();
    let dockerfile = format!(
        "FROM busybox\nRUN ln -s / /escape && ln -s ../../../../../.. /up && mkdir -p /tmp\n\
         COPY f /escape/tmp/{name}/a\nCOPY f /up/tmp/{name}/b\nCOPY dir/ /up/tmp/{name}/d/\n"
    );
    let ctx = context(&[
        ("Dockerfile", &dockerfile),
        ("f", "inside\n"),
        ("dir/g", "g\n"),
    ]);
    build_ok(&d, &["-t", "escape", path(&ctx)]);
    assert_eq!(
        std::fs::read_dir(host.path()).expect("host dir").count(),
        0,
        "COPY wrote outside the build container's rootfs"
    );
    let listed = d.docker_ok(&[
        "run",
        "--rm",
        "escape",
        "sh",
        "-c",
        &format!("cat /tmp/{name}/a /tmp/{name}/b /tmp/{name}/d/g"),
    ]);
    assert_eq!(listed, "inside\ninside\ng");
}

#[test]
fn rmi_of_a_built_image_removes_its_untagged_parents_unless_no_prune() {
    let d = Daemon::start();
    let ctx = context(&[(
        "Dockerfile",
        "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\nCMD [\"cat\", \"/two\"]\n",
    )]);
    let all = || {
        let mut ids: Vec<String> = d
            .docker_ok(&["images", "-a", "-q", "--no-trunc"])
            .lines()
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids
    };
    let base = all();
    build_ok(&d, &["-t", "kept:1", path(&ctx)]);
    let built = all();
    assert!(
        built.len() > base.len() + 1,
        "intermediate images: {built:?}"
    );
    // --no-prune leaves the parents (nameless, shown with -a).
    let out = d.docker_ok(&["rmi", "--no-prune", "kept:1"]);
    assert_eq!(
        out.lines().filter(|l| l.starts_with("Deleted:")).count(),
        1,
        "{out}"
    );
    assert_eq!(all().len(), built.len() - 1);

    // Built again (from the cache) and removed: every step's image goes with it, the base stays.
    build_ok(&d, &["-t", "gone:1", path(&ctx)]);
    let out = d.docker_ok(&["rmi", "gone:1"]);
    assert!(
        out.lines().filter(|l| l.starts_with("Deleted:")).count() >= 2,
        "{out}"
    );
    assert_eq!(all(), base);
}
