//! Docker's own `dockerd` (Debian's docker.io) as a peer for interoperability tests: a
//! private instance with its own data root, exec root, pidfile and socket under a temporary
//! directory, no bridge and no iptables rules, its containers under a `skiff-`-prefixed
//! cgroup parent. Dropping it stops it by PID and removes what it left (processes started
//! with paths under its directory, mounts, cgroups).

use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::hostclean::{kill_processes_mentioning, remove_cgroups, unmount_under};
use super::{eventually, run_with_timeout, sigterm, stderr, stdout, tail, BUSYBOX, DOCKER};

pub const DOCKERD: &str = "/usr/sbin/dockerd";

pub struct Dockerd {
    dir: tempfile::TempDir,
    child: Option<Child>,
    cgroup_parent: String,
}

impl Dockerd {
    /// A fresh dockerd with busybox loaded.
    pub fn start() -> Dockerd {
        assert!(
            Path::new(DOCKERD).exists(),
            "{DOCKERD} is missing: run scripts/install-deps.sh (Debian package docker.io)"
        );
        // Short: containerd's sockets live under the exec root.
        let dir = tempfile::Builder::new()
            .prefix("skiff-dkd-")
            .tempdir_in("/tmp")
            .expect("temp dir");
        let cgroup_parent = format!(
            "skiff-e2e-{}",
            dir.path()
                .file_name()
                .expect("temp dir name")
                .to_string_lossy()
        );
        std::fs::create_dir(dir.path().join("docker-config")).expect("docker config dir");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).expect("dockerd log");
        let p = |name: &str| dir.path().join(name).to_string_lossy().into_owned();
        let child = Command::new(DOCKERD)
            .args(["-H", &format!("unix://{}", p("d.sock"))])
            .args(["--data-root", &p("root")])
            .args(["--exec-root", &p("x")])
            .args(["--pidfile", &p("d.pid")])
            .args(["--bridge", "none", "--iptables=false", "--ip6tables=false"])
            .args(["--cgroup-parent", &cgroup_parent])
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log fd"))
            .stderr(log)
            .spawn()
            .expect("start dockerd");
        let mut d = Dockerd {
            dir,
            child: Some(child),
            cgroup_parent,
        };
        eventually(Duration::from_secs(60), "dockerd to answer", || {
            if let Some(Ok(Some(status))) = d.child.as_mut().map(|c| c.try_wait()) {
                panic!("dockerd exited early ({status}):\n{}", d.log());
            }
            d.docker(&["version"]).status.success().then_some(())
        });
        let archive = d.dir.path().join("busybox.tar");
        std::fs::write(
            &archive,
            skiff_image::testutil::busybox_docker_archive(BUSYBOX),
        )
        .expect("write busybox tar");
        d.docker_ok(&["load", "-q", "-i", archive.to_str().expect("utf-8 path")]);
        d
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default()
    }

    /// A `docker` command against this dockerd (classic builder, own client config).
    pub fn docker_cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(DOCKER);
        cmd.args(args)
            .env(
                "DOCKER_HOST",
                format!("unix://{}", self.dir.path().join("d.sock").display()),
            )
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .env("DOCKER_BUILDKIT", "0")
            .env_remove("DOCKER_CONTEXT")
            .stdin(Stdio::null());
        cmd
    }

    pub fn docker(&self, args: &[&str]) -> Output {
        run_with_timeout(self.docker_cmd(args), Duration::from_secs(120))
    }

    /// Runs `docker args…` against this dockerd, asserts success, returns trimmed stdout.
    pub fn docker_ok(&self, args: &[&str]) -> String {
        let out = self.docker(args);
        assert!(
            out.status.success(),
            "docker {args:?} (dockerd) failed ({}):\nstdout: {}\nstderr: {}\ndockerd log tail:\n{}",
            out.status,
            stdout(&out),
            stderr(&out),
            tail(&self.log(), 40)
        );
        stdout(&out).trim().to_owned()
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let ids = stdout(&self.docker(&["ps", "-aq"]));
            for id in ids.split_whitespace() {
                let _ = self.docker(&["rm", "-f", id]);
            }
            sigterm(child.id() as i32);
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        let dir = self.dir.path().to_path_buf();
        kill_processes_mentioning(&dir);
        unmount_under(&dir);
        remove_cgroups(&self.cgroup_parent);
    }
}
