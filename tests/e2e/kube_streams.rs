//! Pod streams through the kubelet API, driven with the real kubectl and the Python client on
//! one node (`skiff server` with its local node): the API server proxies `pods/exec`,
//! `pods/attach`, `pods/log` and `nodes/proxy` to the node's kubelet over HTTPS; exec and
//! attach speak WebSocket `v5.channel.k8s.io` (kubectl) and `v4`/`v5` (Python), or SPDY/3.1 as
//! kubectl's fallback; port-forward speaks SPDY, tunnelled in WebSocket or plain. The kubelet
//! lets in only the API server's kubelet-client certificate.

#[path = "common/hostclean.rs"]
mod hostclean;
mod kube_common;
#[path = "kube_pods/node.rs"]
#[allow(dead_code)] // the pod tests' harness; this target uses part of it
mod node;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::Duration;

use kube_common::poll;
use node::Node;

const BOX: &str = "apiVersion: v1
kind: Pod
metadata: {name: box}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, 'echo started; exec sleep 3600']
";

const WEB: &str = "apiVersion: v1
kind: Pod
metadata: {name: web}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, 'mkdir -p /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www']
";

const TICK: &str = "apiVersion: v1
kind: Pod
metadata: {name: tick}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: [sh, -c, 'i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done']
";

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ready(node: &Node, pod: &str) {
    let out = node.kubectl(&[
        "wait",
        "--for=condition=Ready",
        &format!("pod/{pod}"),
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        node.explain(pod)
    );
}

/// Runs `cmd` with `input` on its stdin; its output.
fn with_stdin(mut cmd: Command, input: &[u8]) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

/// The first line of a long-running command's stdout that `want` accepts (the command is
/// killed afterwards).
fn first_line(mut cmd: Command, want: impl Fn(&str) -> bool) -> Option<String> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let found = poll(Duration::from_secs(30), || {
        rx.recv_timeout(Duration::from_millis(200))
            .ok()
            .filter(|l| want(l))
    });
    let _ = child.kill();
    let _ = child.wait();
    found
}

#[test]
fn kubectl_exec_runs_commands_with_exit_codes_stdin_and_a_tty() {
    let node = Node::start();
    node.create(BOX);
    ready(&node, "box");

    let out = node.kubectl(&["exec", "box", "--", "sh", "-c", "echo out; echo err >&2"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("err"));

    let out = node.kubectl(&["exec", "box", "--", "sh", "-c", "exit 3"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("command terminated with exit code 3"),
        "{}",
        text(&out)
    );

    // stdin piped through, and closed at its end (cat exits).
    let out = with_stdin(
        node.cluster
            .kubectl_command(&["exec", "-i", "box", "--", "sh", "-c", "cat; echo done"]),
        b"hello\nworld\n",
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nworld\ndone\n");

    // `-it` under a pseudo-terminal (`script`): the command gets a tty.
    let kubectl = node.cluster.kubectl_command(&[]);
    let kubeconfig = node.cluster.kubeconfig();
    let line = format!(
        "KUBECONFIG={} {} exec -it box -- sh -c 'tty; echo $((6*7))'",
        kubeconfig.display(),
        kubectl.get_program().to_string_lossy()
    );
    let out = with_stdin(
        {
            let mut c = Command::new("script");
            c.args(["-qec", &line, "/dev/null"]);
            c
        },
        b"",
    );
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(shown.contains("/dev/pts/"), "no tty: {shown}");
    assert!(shown.contains("42"), "{shown}");

    // Into a container the pod does not have: kube-apiserver's 400.
    let out = node.kubectl(&["exec", "box", "-c", "nope", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("container nope is not valid for pod box"),
        "{}",
        text(&out)
    );

    // The SPDY/3.1 fallback (kubectl POSTs with `Upgrade: SPDY/3.1`): output, exit code, stdin.
    let spdy = |args: &[&str], input: &[u8]| {
        let mut cmd = node.cluster.kubectl_command(args);
        cmd.env("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false");
        with_stdin(cmd, input)
    };
    let out = spdy(&["exec", "box", "--", "sh", "-c", "echo spdy; exit 5"], b"");
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "spdy\n");
    assert!(String::from_utf8_lossy(&out.stderr).contains("command terminated with exit code 5"));
    let out = spdy(&["exec", "-i", "box", "--", "cat"], b"through spdy\n");
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through spdy\n");

    // Logs come through the kubelet too.
    let logs = node.kubectl_ok(&["logs", "box"]);
    assert_eq!(logs.trim(), "started");
}

#[test]
fn kubectl_cp_both_ways_attach_and_logs_follow() {
    let node = Node::start();
    node.create(BOX);
    node.create(TICK);
    ready(&node, "box");
    ready(&node, "tick");

    let dir = node.cluster.dir.path();
    std::fs::write(dir.join("up.txt"), "up and back\n").unwrap();
    let out = node.kubectl(&["cp", "up.txt", "box:/tmp/up.txt"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        node.cluster.log()
    );
    assert_eq!(
        node.kubectl_ok(&["exec", "box", "--", "cat", "/tmp/up.txt"]),
        "up and back\n"
    );
    node.kubectl_ok(&["cp", "box:/tmp/up.txt", "back.txt"]);
    assert_eq!(
        std::fs::read_to_string(dir.join("back.txt")).unwrap(),
        "up and back\n"
    );

    let attached = first_line(node.cluster.kubectl_command(&["attach", "tick"]), |l| {
        l.starts_with("tick ")
    });
    assert!(attached.is_some(), "kubectl attach showed no output");

    let followed = first_line(
        node.cluster
            .kubectl_command(&["logs", "-f", "--tail=1", "tick"]),
        |l| l.starts_with("tick ") && l != "tick 1",
    );
    assert!(followed.is_some(), "kubectl logs -f showed no new line");

    // `kubectl run --rm -i` of a command that ends at once prints its output every time: an
    // attach that comes after the exit fails as Kubernetes' does, and kubectl reads the logs.
    for i in 0..5 {
        let name = format!("quick{i}");
        let out = node.kubectl(&[
            "run",
            &name,
            "--rm",
            "-i",
            "--restart=Never",
            &format!("--image={}", node::BUSYBOX),
            "--",
            "echo",
            &format!("said-{i}"),
        ]);
        assert!(
            out.status.success()
                && String::from_utf8_lossy(&out.stdout).contains(&format!("said-{i}")),
            "run {i}: {}",
            text(&out)
        );
    }
}

#[test]
fn python_client_stream_execs_and_reads_the_exit_code() {
    let node = Node::start();
    node.create(BOX);
    ready(&node, "box");
    let script = r#"
import sys
from kubernetes import client, config
from kubernetes.stream import stream
config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
out = stream(core.connect_get_namespaced_pod_exec, "box", "default",
             command=["sh", "-c", "echo py-$((2+3))"], stderr=True, stdin=False,
             stdout=True, tty=False)
print("out=" + out.strip())
resp = stream(core.connect_get_namespaced_pod_exec, "box", "default",
              command=["sh", "-c", "exit 4"], stderr=True, stdin=False, stdout=True,
              tty=False, _preload_content=False)
resp.run_forever(timeout=30)
print("rc=%s" % resp.returncode)
"#;
    let out = Command::new("python3")
        .env(
            "PATH",
            format!(
                "/root/.pyenv/shims:{}",
                std::env::var("PATH").unwrap_or_default()
            ),
        )
        .args(["-c", script, node.cluster.kubeconfig().to_str().unwrap()])
        .output()
        .expect("python3");
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("out=py-5"), "{shown}");
    assert!(shown.contains("rc=4"), "{shown}");
}

#[test]
fn the_kubelet_api_lets_in_only_the_api_server() {
    let node = Node::start();
    assert_eq!(
        node.kubectl_ok(&[
            "get",
            "--raw",
            &format!("/api/v1/nodes/{}/proxy/healthz", node.name)
        ]),
        "ok"
    );
    let port = node.kubectl_ok(&[
        "get",
        "node",
        &node.name,
        "-o",
        "jsonpath={.status.daemonEndpoints.kubeletEndpoint.Port}",
    ]);
    let tls = node.cluster.data_dir().join("tls");
    let url = format!("https://127.0.0.1:{port}/healthz");
    let curl = |cert: Option<&str>| {
        let mut cmd = Command::new("curl");
        cmd.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
            .arg(tls.join("ca.crt"));
        if let Some(name) = cert {
            cmd.arg("--cert")
                .arg(tls.join(format!("{name}.crt")))
                .arg("--key")
                .arg(tls.join(format!("{name}.key")));
        }
        let out = cmd.arg(&url).output().expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(curl(None), "401", "no client certificate");
    assert_eq!(
        curl(Some("admin")),
        "403",
        "the admin's certificate is not the API server's"
    );
    assert_eq!(curl(Some("kubelet-client")), "200");
}

/// A running `kubectl port-forward`, killed on drop.
struct PortForward(std::process::Child);

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` of `url` (at most 10 s); its body.
fn curl(url: &str) -> String {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "10", url])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `kubectl port-forward pod/web LOCAL:8080` with `env`; waits until it forwards, then
/// fetches the page through it twice (two connections).
fn port_forward_serves_the_pod(node: &Node, env: &[(&str, &str)]) {
    let port = kube_common::free_port();
    let mut cmd =
        node.cluster
            .kubectl_command(&["port-forward", "pod/web", &format!("{port}:8080")]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("kubectl port-forward");
    let mut pf = PortForward(child);
    let stdout = pf.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(
        first.starts_with("Forwarding from"),
        "port-forward said {first:?}"
    );
    let url = format!("http://127.0.0.1:{port}/index.html");
    assert_eq!(curl(&url), "hello-from-pod\n", "first connection ({env:?})");
    assert_eq!(
        curl(&url),
        "hello-from-pod\n",
        "second connection ({env:?})"
    );
}

#[test]
fn kubectl_port_forward_over_websocket_and_spdy() {
    let node = Node::start();
    node.create(WEB);
    ready(&node, "web");
    // kubectl's default: SPDY tunnelled in WebSocket (SPDY/3.1+portforward.k8s.io).
    port_forward_serves_the_pod(&node, &[]);
    // The fallback: plain SPDY/3.1 on the upgraded connection.
    port_forward_serves_the_pod(&node, &[("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false")]);

    // A port nothing listens on: the error reaches kubectl through the error stream.
    let port = kube_common::free_port();
    let mut cmd =
        node.cluster
            .kubectl_command(&["port-forward", "pod/web", &format!("{port}:9999")]);
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kubectl port-forward");
    let mut pf = PortForward(child);
    let stderr = pf.0.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            all.push_str(&line);
            all.push('\n');
            if line.contains("connect") {
                break;
            }
        }
        all
    });
    poll(Duration::from_secs(30), || {
        let out = Command::new("curl")
            .args([
                "-s",
                "--max-time",
                "5",
                &format!("http://127.0.0.1:{port}/"),
            ])
            .output()
            .ok()?;
        // curl connects (kubectl listens) and gets an empty reply once the pod side fails.
        (out.status.code() == Some(52)).then_some(())
    })
    .expect("kubectl never listened on the local port");
    drop(pf);
    let said = reader.join().unwrap();
    assert!(
        said.contains("failed to connect to localhost:9999 inside the pod"),
        "{said}"
    );
}

#[test]
fn streams_to_an_unreachable_node_fail_with_a_status_not_a_hang() {
    let node = Node::start();
    // A node whose kubelet never answers: one refusing connections, one that drops them.
    for (name, ip, port) in [("gone", "127.0.0.1", "1"), ("silent", "192.0.2.1", "10250")] {
        node.kubectl_ok(&[
            "create",
            "-f",
            node.cluster
                .write_file(
                    &format!("{name}.yaml"),
                    &format!("apiVersion: v1\nkind: Node\nmetadata: {{name: {name}}}\n"),
                )
                .to_str()
                .unwrap(),
        ]);
        node.kubectl_ok(&[
            "patch",
            "node",
            name,
            "--subresource=status",
            "--type=merge",
            "-p",
            &format!(
                r#"{{"status":{{"addresses":[{{"type":"InternalIP","address":"{ip}"}}],"daemonEndpoints":{{"kubeletEndpoint":{{"Port":{port}}}}}}}}}"#
            ),
        ]);
        node.create(
            &BOX.replace("name: box", &format!("name: on-{name}"))
                .replace("NODE", name),
        );
        let out = node.kubectl(&["exec", &format!("on-{name}"), "--", "true"]);
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("error dialing backend"), "{name}: {said}");
        let out = node.kubectl(&["logs", &format!("on-{name}")]);
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("error dialing backend"), "{name}: {said}");
    }
}
