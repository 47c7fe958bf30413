//! A single-node cluster for the pod tests: `skiff server` with its local node on a temporary
//! data and run directory, its own pod bridge, nftables table, interface prefix, cgroup
//! parent and a pod CIDR no other test uses, busybox loaded into the node's engine with
//! `skiff load`. Dropping it kills the server, the shims and containers by PID, detaches the
//! mounts under its directory and removes its cgroups, links and nftables table — also when
//! the test failed.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use crate::hostclean::{
    kill_processes_mentioning, remove_cgroups, remove_links, remove_table, unmount_under,
};
use crate::kube_common::{poll, Cluster};

/// The test image (not `latest`: that tag defaults to `imagePullPolicy: Always`, and no
/// registry is reachable here).
pub const BUSYBOX: &str = "busybox:1";

/// A `skiff server` with its local node.
pub struct Node {
    pub cluster: Cluster,
    /// The node's `--run-dir` (engine state, sandboxes, the Docker socket).
    pub run: tempfile::TempDir,
    /// Prefix of every link the node makes (`skiffkXY`).
    pub prefix: String,
    pub table: String,
    pub cgroup_parent: String,
    pub name: String,
    /// The cluster CIDR (a /24: this node's pod CIDR).
    pub cidr: String,
}

impl Node {
    /// Starts the server and its node, and loads busybox into the node's engine.
    pub fn start() -> Node {
        Node::start_with(&[])
    }

    /// [`Node::start`] with more `skiff server` flags.
    pub fn start_with(extra: &[&str]) -> Node {
        let tag: String = {
            const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuwxyz0123456789";
            (0..2)
                .map(|_| ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char)
                .collect()
        };
        let prefix = format!("skiffk{tag}");
        let table = format!("skiff-k{tag}");
        let cgroup_parent = format!("skiff-e2e-k{tag}");
        let name = format!("node-{tag}");
        let cidr = format!(
            "10.{}.{}.0/24",
            200 + rand::random::<u32>() % 50,
            rand::random::<u8>()
        );
        let run = tempfile::Builder::new()
            .prefix("skiff-node-run")
            .tempdir()
            .unwrap();
        let args: Vec<String> = vec![
            "--run-dir".into(),
            run.path().display().to_string(),
            "--node-name".into(),
            name.clone(),
            "--node-ip".into(),
            "127.0.0.1".into(),
            "--cgroup-parent".into(),
            cgroup_parent.clone(),
            "--pod-bridge".into(),
            format!("{prefix}0"),
            "--pod-nftables-table".into(),
            table.clone(),
            "--pod-interface-prefix".into(),
            prefix.clone(),
            "--cluster-cidr".into(),
            cidr.clone(),
            // The node's Docker API gets no default bridge here, and names of its own.
            "--engine-bridge".into(),
            "none".into(),
            "--engine-network-prefix".into(),
            format!("skiffe{tag}"),
            "--engine-nftables-table".into(),
            format!("skiff-e{tag}"),
            // The kubelet API on a port of its own, on loopback only.
            "--kubelet-address".into(),
            "127.0.0.1".into(),
            "--kubelet-port".into(),
            crate::kube_common::free_port().to_string(),
        ];
        let args: Vec<String> = args
            .into_iter()
            .chain(extra.iter().map(|a| a.to_string()))
            .collect();
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = Node {
            cluster: Cluster::start_with_node(&arg_refs),
            run,
            prefix,
            table,
            cgroup_parent,
            name,
            cidr,
        };
        node.wait_ready();
        node.load_busybox();
        node
    }

    /// Waits until the node is registered and Ready.
    pub fn wait_ready(&self) {
        let ready = poll(Duration::from_secs(60), || {
            let out = self.kubectl(&[
                "get",
                "node",
                &self.name,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ]);
            (String::from_utf8_lossy(&out.stdout) == "True").then_some(())
        });
        assert!(
            ready.is_some(),
            "node {} did not become Ready:\n{}",
            self.name,
            self.cluster.log()
        );
    }

    pub fn run_dir(&self) -> PathBuf {
        self.run.path().to_path_buf()
    }

    /// The node engine's Docker API socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir().join("skiff.sock")
    }

    /// `skiff <args>` (the engine client) against the node's engine.
    pub fn skiff(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_skiff"))
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(args)
            .output()
            .expect("run skiff")
    }

    /// The `docker` CLI against the node's engine.
    pub fn docker(&self, args: &[&str]) -> Output {
        Command::new("/usr/local/bin/docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env(
                "DOCKER_CONFIG",
                self.cluster.dir.path().join("docker-config"),
            )
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .output()
            .expect("run docker")
    }

    fn load_busybox(&self) {
        let archive = self.cluster.dir.path().join("busybox.tar");
        std::fs::write(
            &archive,
            skiff_image::testutil::busybox_docker_archive(BUSYBOX),
        )
        .unwrap();
        let out = self.skiff(&["load", "-i", archive.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "skiff load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.cluster.kubectl(args)
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        self.cluster.kubectl_ok(args)
    }

    /// Creates the objects in `yaml` (pods get `spec.nodeName` = this node when they name
    /// `NODE`).
    pub fn create(&self, yaml: &str) {
        let yaml = yaml.replace("NODE", &self.name);
        let path = self
            .cluster
            .write_file(&format!("obj-{}.yaml", rand::random::<u32>()), &yaml);
        self.kubectl_ok(&["create", "-f", path.to_str().unwrap()]);
    }

    /// One field of pod `name` in `default`.
    pub fn pod_field(&self, name: &str, path: &str) -> String {
        let out = self.kubectl(&["get", "pod", name, "-o", &format!("jsonpath={path}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until `f` accepts pod `name`'s field at `path`; returns it.
    pub fn wait_pod(&self, name: &str, path: &str, what: &str, f: impl Fn(&str) -> bool) -> String {
        poll(Duration::from_secs(90), || {
            let v = self.pod_field(name, path);
            f(&v).then_some(v)
        })
        .unwrap_or_else(|| {
            let describe = self.kubectl(&["describe", "pod", name]);
            panic!(
                "pod {name}: {what} never happened ({path} = {:?})\n{}\n--- server log ---\n{}",
                self.pod_field(name, path),
                String::from_utf8_lossy(&describe.stdout),
                tail(&self.cluster.log(), 60)
            )
        })
    }

    /// `kubectl describe pod` and the end of the server's log, for failure messages.
    pub fn explain(&self, pod: &str) -> String {
        let describe = self.kubectl(&["describe", "pod", pod]);
        format!(
            "{}\n--- server log ---\n{}",
            String::from_utf8_lossy(&describe.stdout),
            tail(&self.cluster.log(), 60)
        )
    }

    /// Ids of the engine's containers of pod `name` (by the label the agent sets), all states.
    pub fn engine_containers(&self, pod: &str) -> Vec<String> {
        let out = self.skiff(&[
            "ps",
            "-a",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=io.kubernetes.pod.name={pod}"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Ids of the engine's running containers of pod `name`.
    pub fn running_containers(&self, pod: &str) -> Vec<String> {
        let out = self.skiff(&[
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            &format!("label=io.kubernetes.pod.name={pod}"),
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect()
    }

    fn cleanup(&mut self) {
        self.cluster.kill_server();
        let dirs = [self.cluster.dir.path().to_path_buf(), self.run_dir()];
        for dir in &dirs {
            kill_processes_mentioning(dir);
        }
        remove_cgroups(&self.cgroup_parent);
        for dir in &dirs {
            unmount_under(dir);
        }
        remove_links(&[&self.prefix]);
        remove_table(&self.table);
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.cleanup();
    }
}

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
