#![allow(dead_code)] // each test target uses a different part of the harness

//! A cluster of several nodes on one machine, deployed as users deploy them across machines:
//! `skiff server` (with its local node) on the host, listening on the address of a test
//! bridge, and `skiff agent`s, each in a network namespace of its own joined to that bridge
//! by a veth, joining with the server's node token.
//!
//! Everything is named after a random two-letter tag: the test bridge `skiffm<tag>`, its
//! veths `skiffm<tag>h<i>`, namespaces `skiffm<tag><i>`, the local node's pod links
//! `skiffq<tag>*` and table `skiff-q<tag>`, cgroup parents `skiff-e2e-m<tag>-*`; the node
//! network is `172.29.<n>.0/24` (host `.1`, agent i `.2+i`) and the cluster CIDR a `/22` of
//! `10.250-254.x.0` (a `/24` per node). Dropping the cluster kills every process by PID,
//! detaches mounts, removes cgroups, links, tables and namespaces — also when a test panics.
//!
//! ```ignore
//! let c = MultiNode::start(2);
//! c.kubectl_ok(&["get", "nodes"]);
//! c.agents[0].docker(&["ps"]);
//! ```

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use super::hostclean;

/// The test image (not `latest`, which defaults to `imagePullPolicy: Always`).
pub const BUSYBOX: &str = "busybox:1";

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0]).args(&cmd[1..]).output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// One node's engine: its Docker socket, for `skiff load`, `docker ps`, `docker exec`.
pub trait Engine {
    fn socket(&self) -> PathBuf;

    /// `docker ARGS…` against this node's engine.
    fn docker(&self, args: &[&str]) -> Output {
        Command::new("/usr/local/bin/docker")
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .env("DOCKER_CONFIG", "/nonexistent-skiff-docker-config")
            .env_remove("DOCKER_CONTEXT")
            .args(args)
            .output()
            .expect("run docker")
    }

    /// Ids of the running containers of pod `pod` on this node.
    fn pod_containers(&self, pod: &str) -> Vec<String> {
        let out = self.docker(&[
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

    /// Loads the busybox test image with `skiff load`.
    fn load_busybox(&self, scratch: &Path) {
        let archive = scratch.join(format!("busybox-{}.tar", rand::random::<u32>()));
        std::fs::write(
            &archive,
            skiff_image::testutil::busybox_docker_archive(BUSYBOX),
        )
        .unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .env("DOCKER_HOST", format!("unix://{}", self.socket().display()))
            .args(["load", "-i", archive.to_str().unwrap()])
            .output()
            .expect("run skiff load");
        let _ = std::fs::remove_file(&archive);
        assert!(
            out.status.success(),
            "skiff load failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The server's local node.
pub struct LocalNode {
    pub name: String,
    pub run: PathBuf,
}

impl Engine for LocalNode {
    fn socket(&self) -> PathBuf {
        self.run.join("skiff.sock")
    }
}

/// A `skiff agent` in its own network namespace.
pub struct AgentNode {
    pub name: String,
    /// The namespace (`/run/netns/<netns>`).
    pub netns: String,
    /// Its address on the test bridge (the Node's InternalIP).
    pub ip: String,
    /// `--data-dir` (credentials under `pki/`).
    pub data: PathBuf,
    /// `--run-dir` (the Docker socket is `skiff.sock` there).
    pub run: PathBuf,
    pub cgroup_parent: String,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl Engine for AgentNode {
    fn socket(&self) -> PathBuf {
        self.run.join("skiff.sock")
    }
}

impl AgentNode {
    /// `skiff agent` with the cluster's arguments plus `extra`, inside the namespace, not
    /// waited for.
    /// A flag in `extra` replaces the cluster's (`--token` replaces `--token-file`).
    pub fn command(&self, extra: &[&str]) -> Command {
        let overridden = |flag: &str| {
            extra.contains(&flag) || (flag == "--token-file" && extra.contains(&"--token"))
        };
        let mut base = Vec::new();
        for pair in self.args.chunks(2) {
            if !overridden(&pair[0]) {
                base.extend_from_slice(pair);
            }
        }
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net=/run/netns/{}", self.netns))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_skiff"))
            .arg("agent")
            .args(base)
            .args(extra);
        cmd
    }

    /// Starts the agent (nsenter execs it: the child's PID is the agent's).
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = self
            .command(&[])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start skiff agent");
        self.child = Some(child);
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` to the agent and waits (at most 60 s) for it to exit.
    pub fn stop_with(&mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("the agent runs");
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), signal);
        let status = poll(Duration::from_secs(60), || child.try_wait().ok().flatten());
        match status {
            Some(s) => s,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("the agent did not exit after {signal}:\n{}", self.log());
            }
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent's client credentials: `(ca.crt, client.crt, client.key)`.
    pub fn client_credentials(&self) -> (PathBuf, PathBuf, PathBuf) {
        let pki = self.data.join("pki");
        (
            pki.join("ca.crt"),
            pki.join("client.crt"),
            pki.join("client.key"),
        )
    }
}

/// A server with its local node and agents in network namespaces.
pub struct MultiNode {
    pub tag: String,
    pub dir: tempfile::TempDir,
    /// The test bridge on the host.
    pub bridge: String,
    /// The host's address on it (the server listens there).
    pub host_ip: String,
    pub port: u16,
    /// The server's local node's kubelet API port: not 10250, which a kubelet (or a skiff
    /// started with its defaults) on the host may hold on every address.
    kubelet_port: u16,
    pub cluster_cidr: String,
    pub local: LocalNode,
    pub agents: Vec<AgentNode>,
    server: Option<Child>,
    /// More `skiff server` flags.
    server_flags: Vec<String>,
    cgroup_prefix: String,
}

impl MultiNode {
    /// Starts the server with its local node and `agents` agents, waits for every Node to be
    /// Ready and every agent to hold its serving certificate, and loads busybox into every
    /// node's engine.
    pub fn start(agents: usize) -> MultiNode {
        Self::start_with(agents, &[])
    }

    /// [`MultiNode::start`] with more `skiff server` flags.
    pub fn start_with(agents: usize, server_flags: &[&str]) -> MultiNode {
        Self::start_full(agents, server_flags, &[])
    }

    /// [`MultiNode::start`] with more `skiff server` flags and more flags for every agent.
    pub fn start_full(agents: usize, server_flags: &[&str], agent_flags: &[&str]) -> MultiNode {
        // Clusters of one test process get distinct tags, subnets and cluster CIDRs.
        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let k = std::process::id() + STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let tag: String = [
            ALPHABET[k as usize % ALPHABET.len()] as char,
            ALPHABET[rand::random::<u32>() as usize % ALPHABET.len()] as char,
        ]
        .iter()
        .collect();
        let net = 1 + k % 250;
        let dir = tempfile::Builder::new()
            .prefix("skiff-multinode")
            .tempdir()
            .unwrap();
        let mut c = MultiNode {
            bridge: format!("skiffm{tag}"),
            host_ip: format!("172.29.{net}.1"),
            port: 20000 + rand::random::<u16>() % 20000,
            kubelet_port: 40000 + rand::random::<u16>() % 20000,
            cluster_cidr: format!("10.{}.{}.0/22", 250 + (k / 64) % 5, (k % 64) * 4),
            local: LocalNode {
                name: format!("server-{tag}"),
                run: dir.path().join("server-run"),
            },
            agents: Vec::new(),
            server: None,
            server_flags: server_flags.iter().map(|f| f.to_string()).collect(),
            cgroup_prefix: format!("skiff-e2e-m{tag}"),
            tag,
            dir,
        };
        // From here on, a panic drops `c`, which removes whatever was made so far.
        run(&["ip", "link", "add", &c.bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", c.host_ip),
            "dev",
            &c.bridge,
        ]);
        run(&["ip", "link", "set", &c.bridge, "up"]);
        for i in 0..agents {
            let name = format!("agent{i}-{}", c.tag);
            let netns = format!("skiffm{}{i}", c.tag);
            let ip = format!("172.29.{net}.{}", 2 + i);
            let host_end = format!("skiffm{}h{i}", c.tag);
            run(&["ip", "netns", "add", &netns]);
            run(&[
                "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns",
                &netns,
            ]);
            run(&["ip", "link", "set", &host_end, "master", &c.bridge, "up"]);
            let inside = |args: &[&str]| {
                let mut all = vec!["ip", "netns", "exec", netns.as_str()];
                all.extend_from_slice(args);
                run(&all);
            };
            inside(&["ip", "link", "set", "lo", "up"]);
            inside(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
            inside(&["ip", "link", "set", "eth0", "up"]);
            inside(&["ip", "route", "add", "default", "via", &c.host_ip]);
            let data = c.dir.path().join(format!("agent{i}-data"));
            let run_dir = c.dir.path().join(format!("agent{i}-run"));
            let cgroup_parent = format!("{}-{i}", c.cgroup_prefix);
            let args: Vec<String> = vec![
                "--server".into(),
                format!("https://{}:{}", c.host_ip, c.port),
                "--token-file".into(),
                c.dir.path().join("server/node-token").display().to_string(),
                "--data-dir".into(),
                data.display().to_string(),
                "--run-dir".into(),
                run_dir.display().to_string(),
                "--node-name".into(),
                name.clone(),
                "--node-ip".into(),
                ip.clone(),
                "--cgroup-parent".into(),
                cgroup_parent.clone(),
                "--pod-bridge".into(),
                format!("skiffa{}{i}", c.tag),
                "--pod-nftables-table".into(),
                format!("skiff-a{}{i}", c.tag),
                "--pod-interface-prefix".into(),
                format!("skiffb{}", c.tag),
                "--engine-bridge".into(),
                "none".into(),
                "--engine-network-prefix".into(),
                format!("skiffc{}", c.tag),
                "--engine-nftables-table".into(),
                format!("skiff-c{}{i}", c.tag),
            ];
            let args: Vec<String> = args
                .into_iter()
                .chain(agent_flags.iter().map(|f| f.to_string()))
                .collect();
            c.agents.push(AgentNode {
                name,
                netns,
                ip,
                data,
                run: run_dir,
                cgroup_parent,
                args,
                log: c.dir.path().join(format!("agent{i}.log")),
                child: None,
            });
        }
        c.start_server();
        for a in &mut c.agents {
            a.start();
        }
        let names: Vec<String> = std::iter::once(c.local.name.clone())
            .chain(c.agents.iter().map(|a| a.name.clone()))
            .collect();
        for n in &names {
            c.wait_ready(n, true);
        }
        // Fully joined: an agent asks for its serving certificate once its Node is registered.
        for a in &c.agents {
            let serving = a.data.join("pki/serving.crt");
            let got = poll(Duration::from_secs(30), || serving.exists().then_some(()));
            assert!(
                got.is_some(),
                "{} got no serving certificate\n{}",
                a.name,
                c.logs()
            );
        }
        let scratch = c.dir.path().to_path_buf();
        c.local.load_busybox(&scratch);
        for a in &c.agents {
            a.load_busybox(&scratch);
        }
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.data_dir().join("kubeconfig.yaml")
    }

    /// The server's node join token.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("node-token"))
            .unwrap()
            .trim()
            .to_string()
    }

    pub fn url(&self) -> String {
        format!("https://{}:{}", self.host_ip, self.port)
    }

    fn start_server(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .unwrap();
        let t = &self.tag;
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .arg("server")
            .args(["--data-dir", self.data_dir().to_str().unwrap()])
            .args(["--bind", &self.host_ip, "--port", &self.port.to_string()])
            .args(["--cluster-cidr", &self.cluster_cidr])
            .args(["--run-dir", self.local.run.to_str().unwrap()])
            .args(["--node-name", &self.local.name, "--node-ip", &self.host_ip])
            // The cluster's own bridge address: clusters of one test process do not share it.
            .args(["--kubelet-address", &self.host_ip])
            .args(["--kubelet-port", &self.kubelet_port.to_string()])
            .args(["--cgroup-parent", &format!("{}-s", self.cgroup_prefix)])
            .args(["--pod-bridge", &format!("skiffq{t}0")])
            .args(["--pod-nftables-table", &format!("skiff-q{t}")])
            .args(["--pod-interface-prefix", &format!("skiffq{t}")])
            .args(["--engine-bridge", "none"])
            .args(["--engine-network-prefix", &format!("skiffr{t}")])
            .args(["--engine-nftables-table", &format!("skiff-r{t}")])
            .args(&self.server_flags)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start skiff server");
        self.server = Some(child);
        let ready = poll(Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.server.as_mut().map(Child::try_wait) {
                panic!("skiff server exited with {status}: {}", self.log());
            }
            let out = self.kubectl(&["get", "--raw", "/readyz"]);
            (out.status.success() && String::from_utf8_lossy(&out.stdout) == "ok").then_some(())
        });
        assert!(
            ready.is_some(),
            "skiff server did not start: {}",
            self.log()
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The ends of the server's and agents' logs, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = format!("--- server ---\n{}\n", tail(&self.log(), 40));
        for a in &self.agents {
            out.push_str(&format!("--- {} ---\n{}\n", a.name, tail(&a.log(), 40)));
        }
        out
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        Command::new("kubectl")
            .args(args)
            .env("KUBECONFIG", self.kubeconfig())
            .current_dir(self.dir.path())
            .output()
            .expect("run kubectl")
    }

    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// kubectl acting with agent `i`'s own client certificate.
    pub fn kubectl_as_agent(&self, i: usize, args: &[&str]) -> Output {
        let (ca, crt, key) = self.agents[i].client_credentials();
        Command::new("kubectl")
            .env("KUBECONFIG", "/dev/null")
            .arg(format!("--server={}", self.url()))
            .arg(format!("--certificate-authority={}", ca.display()))
            .arg(format!("--client-certificate={}", crt.display()))
            .arg(format!("--client-key={}", key.display()))
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("run kubectl")
    }

    /// `jsonpath` of `kind/name` (cluster-scoped or in `default`).
    pub fn field(&self, kind: &str, name: &str, jsonpath: &str) -> String {
        let out = self.kubectl(&["get", kind, name, "-o", &format!("jsonpath={jsonpath}")]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits until Node `name`'s Ready condition is `ready`.
    pub fn wait_ready(&self, name: &str, ready: bool) {
        let want = if ready { "True" } else { "False" };
        let got = poll(Duration::from_secs(90), || {
            (self.field(
                "node",
                name,
                "{.status.conditions[?(@.type==\"Ready\")].status}",
            ) == want)
                .then_some(())
        });
        assert!(
            got.is_some(),
            "node {name} never became Ready={want}\n{}",
            self.logs()
        );
    }

    /// Creates the objects in `yaml` with kubectl.
    pub fn create(&self, yaml: &str) {
        let path = self
            .dir
            .path()
            .join(format!("obj-{}.yaml", rand::random::<u32>()));
        std::fs::write(&path, yaml).unwrap();
        self.kubectl_ok(&["create", "-f", path.to_str().unwrap()]);
    }

    /// Creates pod `name` pinned to node `node` running `sh -c script`.
    pub fn pod_on(&self, name: &str, node: &str, script: &str) {
        let script = script.replace('\'', "''");
        self.create(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\nspec:\n  nodeName: {node}\n  \
             terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: {BUSYBOX}\n    \
             imagePullPolicy: IfNotPresent\n    command: [\"sh\", \"-c\", '{script}']\n"
        ));
    }

    /// Waits until pod `name` runs with an IP; returns the IP.
    pub fn wait_running(&self, name: &str) -> String {
        poll(Duration::from_secs(90), || {
            let phase = self.field("pod", name, "{.status.phase}");
            let ip = self.field("pod", name, "{.status.podIP}");
            (phase == "Running" && !ip.is_empty()).then_some(ip)
        })
        .unwrap_or_else(|| {
            let d = self.kubectl(&["describe", "pod", name]);
            panic!(
                "pod {name} never ran:\n{}\n{}",
                String::from_utf8_lossy(&d.stdout),
                self.logs()
            )
        })
    }

    fn cleanup(&mut self) {
        for a in &mut self.agents {
            if let Some(mut c) = a.child.take() {
                let _ = c.kill();
                let _ = c.wait();
            }
        }
        if let Some(mut s) = self.server.take() {
            let _ = s.kill();
            let _ = s.wait();
        }
        let dir = self.dir.path().to_path_buf();
        hostclean::kill_processes_mentioning(&dir);
        hostclean::remove_cgroups(&format!("{}-s", self.cgroup_prefix));
        for a in &self.agents {
            hostclean::remove_cgroups(&a.cgroup_parent);
        }
        hostclean::unmount_under(&dir);
        for a in &self.agents {
            let _ = Command::new("ip").args(["netns", "del", &a.netns]).output();
        }
        let t = &self.tag;
        hostclean::remove_links(&[
            &format!("skiffm{t}"),
            &format!("skiffq{t}"),
            &format!("skiffr{t}"),
        ]);
        hostclean::remove_table(&format!("skiff-q{t}"));
        hostclean::remove_table(&format!("skiff-r{t}"));
        // Routes the local node set through the test bridge went with it.
    }
}

impl Drop for MultiNode {
    fn drop(&mut self) {
        self.cleanup();
    }
}
