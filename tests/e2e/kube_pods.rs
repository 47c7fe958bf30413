//! Pods on the local node of `skiff server`, driven with the real kubectl: the node registers
//! and heartbeats, pods bound to it (`spec.nodeName`; no scheduler yet) run on its engine in a
//! sandbox with an address from its pod CIDR, report status as kubelet does, restart by their
//! policy, are deleted gracefully or by force, and survive a SIGKILL of the server. What pods
//! are configured with (environment, volumes, probes) is tested in `kube_pods/config.rs`;
//! securityContext and resources in `kube_pods/security.rs`, hooks in `kube_pods/lifecycle.rs`,
//! downwardAPI/projected volumes and hostPath restrictions in `kube_pods/volumes.rs`,
//! `imagePullSecrets` in `kube_pods/pull_secrets.rs`, `hostPort` in `kube_pods/ports.rs`,
//! service-account tokens in `kube_pods/serviceaccounts.rs`; `kubectl drain` with a
//! PodDisruptionBudget, and quotas, in `kube_pods/drain.rs`.

#[path = "kube_pods/config.rs"]
mod config;
#[path = "kube_pods/drain.rs"]
mod drain;
#[path = "common/hostclean.rs"]
mod hostclean;
mod kube_common;
#[path = "kube_pods/lifecycle.rs"]
mod lifecycle;
#[path = "kube_pods/node.rs"]
mod node;
#[path = "kube_pods/ports.rs"]
mod ports;
#[path = "kube_pods/pull_secrets.rs"]
mod pull_secrets;
#[path = "../../crates/skiff-image/tests/registry_support/mod.rs"]
mod registry_support;
#[path = "kube_pods/security.rs"]
mod security;
#[path = "kube_pods/serviceaccounts.rs"]
mod serviceaccounts;
#[path = "kube_pods/volumes.rs"]
mod volumes;

use std::time::Duration;

use kube_common::poll;
use node::Node;

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `kubectl logs ARGS…` (stdout and stderr).
fn kubectl_logs(node: &Node, args: &[&str]) -> String {
    let mut all = vec!["logs"];
    all.extend_from_slice(args);
    text(&node.kubectl(&all))
}

/// The current year, as log timestamps start.
fn chrono_year() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // Days since 1970 → year, good enough for a prefix check (365.2425 days a year).
    (1970 + (secs as f64 / 86400.0 / 365.2425) as u64).to_string()
}

#[test]
fn node_registers_with_capacity_pod_cidr_and_lease() {
    let node = Node::start();
    let n = &node.name;
    let get = |path: &str| node.kubectl_ok(&["get", "node", n, "-o", &format!("jsonpath={path}")]);
    assert_eq!(get("{.spec.podCIDR}"), node.cidr, "the node's pod CIDR");
    assert!(!get("{.status.capacity.cpu}").is_empty());
    assert!(get("{.status.allocatable.memory}").ends_with("Ki"));
    assert_eq!(get("{.status.capacity.pods}"), "110");
    assert_eq!(
        get("{.status.addresses[?(@.type==\"InternalIP\")].address}"),
        "127.0.0.1"
    );
    assert!(get("{.status.nodeInfo.containerRuntimeVersion}").starts_with("skiff://"));
    let wide = node.kubectl_ok(&["get", "nodes", "-o", "wide"]);
    assert!(
        wide.lines()
            .any(|l| l.starts_with(n.as_str()) && l.contains(" Ready ")),
        "{wide}"
    );
    let lease = |path: &str| {
        node.kubectl_ok(&[
            "-n",
            "kube-node-lease",
            "get",
            "lease",
            n,
            "-o",
            &format!("jsonpath={path}"),
        ])
    };
    assert_eq!(lease("{.spec.holderIdentity}"), *n);
    let first = lease("{.spec.renewTime}");
    // kubelet renews every 10 s.
    let renewed = poll(Duration::from_secs(30), || {
        let now = lease("{.spec.renewTime}");
        (now != first).then_some(now)
    });
    assert!(renewed.is_some(), "the lease was not renewed within 30 s");
}

#[test]
fn a_node_marked_unknown_reports_ready_again_within_a_lease_period() {
    let node = Node::start();
    let ready = || {
        node.kubectl_ok(&[
            "get",
            "node",
            &node.name,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ])
    };
    assert_eq!(ready(), "True");
    // What the node lifecycle controller writes when the Lease went silent.
    let patch = r#"{"status":{"conditions":[{"type":"Ready","status":"Unknown","reason":"NodeStatusUnknown","message":"Kubelet stopped posting node status."}]}}"#;
    node.kubectl_ok(&[
        "patch",
        "node",
        &node.name,
        "--subresource=status",
        "--type=merge",
        "-p",
        patch,
    ]);
    // The agent renews its Lease every 10 s and sees the status is not its own.
    let back = poll(Duration::from_secs(30), || {
        (ready() == "True").then_some(())
    });
    assert!(back.is_some(), "the node stayed {}", ready());
}

#[test]
fn a_clean_stop_marks_the_node_not_ready() {
    let mut node = Node::start();
    let pid = node.cluster.server_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = node.cluster.wait_server_exit(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "server exit: {status:?}"
    );
    // Read it back through a control plane without a node.
    node.cluster.local_node = false;
    node.cluster.start_server();
    let ready = node.kubectl_ok(&[
        "get",
        "node",
        &node.name,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
    ]);
    assert_eq!(ready, "False");
}

const WEB: &str = r#"apiVersion: v1
kind: Pod
metadata:
  name: web
  labels: {app: web}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c"]
    args:
    - |
      echo "host=$(hostname) greeting=$GREETING derived=$DERIVED pwd=$(pwd)"
      cat /etc/hosts /etc/resolv.conf
      ip -4 -o addr show eth0
      trap 'echo got TERM; exit 0' TERM
      while true; do sleep 1; done
    env:
    - {name: GREETING, value: hello}
    - {name: DERIVED, value: "$(GREETING)-world"}
    workingDir: /tmp
"#;

#[test]
fn a_pod_runs_in_its_sandbox_reports_status_and_stops_gracefully() {
    let node = Node::start();
    node.create(WEB);
    let out = node.kubectl(&["wait", "--for=condition=Ready", "pod/web", "--timeout=90s"]);
    assert!(
        out.status.success(),
        "kubectl wait: {}\n{}",
        text(&out),
        node.explain("web")
    );

    let ip = node.pod_field("web", "{.status.podIP}");
    let prefix = node.cidr.trim_end_matches("0/24");
    assert!(ip.starts_with(prefix), "pod IP {ip} not in {}", node.cidr);
    assert_eq!(node.pod_field("web", "{.status.hostIP}"), "127.0.0.1");
    assert_eq!(node.pod_field("web", "{.status.phase}"), "Running");
    assert_eq!(node.pod_field("web", "{.status.qosClass}"), "BestEffort");
    assert!(!node.pod_field("web", "{.status.startTime}").is_empty());
    let cid = node.pod_field("web", "{.status.containerStatuses[0].containerID}");
    assert!(cid.starts_with("skiff://"), "{cid}");
    assert_eq!(
        node.pod_field("web", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );

    let wide = node.kubectl_ok(&["get", "pods", "-o", "wide"]);
    let row = wide.lines().find(|l| l.starts_with("web ")).unwrap_or("");
    for want in ["1/1", "Running", ip.as_str(), node.name.as_str()] {
        assert!(row.contains(want), "get -o wide row lacks {want:?}: {wide}");
    }

    // What the container saw: hostname, env with $(VAR) expansion, workingDir, /etc files,
    // its address on eth0.
    let logs = poll(Duration::from_secs(30), || {
        let l = kubectl_logs(&node, &["web"]);
        l.contains("eth0").then_some(l)
    })
    .unwrap_or_else(|| panic!("no output: {}", kubectl_logs(&node, &["web"])));
    assert!(
        logs.contains("host=web greeting=hello derived=hello-world pwd=/tmp"),
        "{logs}"
    );
    assert!(logs.contains(&format!("{ip}\tweb")), "/etc/hosts: {logs}");
    assert!(
        logs.contains("nameserver 10.43.0.10"),
        "resolv.conf: {logs}"
    );
    assert!(
        logs.contains("search default.svc.cluster.local svc.cluster.local cluster.local"),
        "{logs}"
    );
    assert!(logs.contains(&format!("inet {ip}/24")), "{logs}");
    // kubectl logs options: --tail, --timestamps, -c, and a container the pod does not have.
    let last = kubectl_logs(&node, &["web", "--tail=1"]);
    assert_eq!(last.lines().count(), 1, "{last}");
    assert!(last.contains(&format!("inet {ip}/24")), "{last}");
    let stamped = kubectl_logs(&node, &["web", "-c", "main", "--timestamps", "--tail=1"]);
    assert!(
        stamped.starts_with(&chrono_year()) && stamped.contains("Z "),
        "{stamped}"
    );
    let bad = kubectl_logs(&node, &["web", "-c", "nope"]);
    assert!(
        bad.contains("container nope is not valid for pod web"),
        "{bad}"
    );
    // logs -f follows until the container ends.
    let mut follow = kube_common::Guard(
        node.cluster
            .kubectl_command(&["logs", "-f", "web"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut follow_out = follow.0.stdout.take().unwrap();
    let mut follow_err = follow.0.stderr.take().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let followed = {
        let seen = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut follow_out, &mut buf) {
                if n == 0 {
                    break;
                }
                seen.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            seen.lock().unwrap().clone()
        })
    };
    let follow_errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut follow_err, &mut s);
        s
    });

    // Kubernetes' labels on the engine's container (docker ps on the node).
    let ps = text(&node.docker(&[
        "ps",
        "--format",
        "{{.Names}} {{.Label \"io.kubernetes.pod.namespace\"}} {{.Label \"io.kubernetes.container.name\"}}",
    ]));
    assert!(
        ps.lines()
            .any(|l| l.starts_with("k8s_main_web_default_") && l.ends_with(" default main")),
        "{ps}"
    );

    let describe = node.kubectl_ok(&["describe", "pod", "web"]);
    for want in [
        "Pulled",
        "Created",
        "Started",
        "Ready             True",
        "kubelet",
    ] {
        assert!(
            describe.contains(want),
            "describe lacks {want:?}:\n{describe}"
        );
    }

    // `logs -f` is connected (it printed what was logged so far) before the pod goes: on a
    // busy machine kubectl may take seconds to start.
    let connected = poll(Duration::from_secs(60), || {
        seen.lock().unwrap().contains("eth0").then_some(())
    });
    assert!(connected.is_some(), "kubectl logs -f printed nothing");

    // Graceful delete: the container gets SIGTERM (its trap prints, as `logs -f` shows) and
    // exits on its own; then the pod is gone and nothing of it is left on the engine.
    node.kubectl_ok(&["delete", "pod", "web", "--timeout=60s"]);
    let out = node.kubectl(&["get", "pod", "web"]);
    assert!(text(&out).contains("NotFound"), "{}", text(&out));
    assert!(node.engine_containers("web").is_empty());
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=web",
    ]);
    assert!(events.contains("Killing"), "{events}");
    let ended = poll(Duration::from_secs(30), || {
        follow.0.try_wait().ok().flatten()
    });
    assert!(
        ended.is_some(),
        "kubectl logs -f did not end with the container"
    );
    let followed = followed.join().unwrap();
    assert!(
        followed.contains("got TERM"),
        "logs -f saw: {followed}\nand said: {}\nnode log:\n{}",
        follow_errors.join().unwrap(),
        node::tail(&node.cluster.log(), 40)
    );
}

const STUBBORN: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: stubborn}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 300
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]
"#;

#[test]
fn force_delete_removes_the_pod_at_once_and_the_node_stops_its_containers() {
    let node = Node::start();
    node.create(STUBBORN);
    node.wait_pod("stubborn", "{.status.phase}", "Running", |p| p == "Running");
    let out = node.kubectl(&["delete", "pod", "stubborn", "--force", "--grace-period=0"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = node.kubectl(&["get", "pod", "stubborn"]);
    assert!(text(&out).contains("NotFound"), "{}", text(&out));
    let gone = poll(Duration::from_secs(60), || {
        node.engine_containers("stubborn").is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the force-deleted pod's containers are still on the node"
    );
}

const CRASHING: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: crashing}
spec:
  nodeName: NODE
  restartPolicy: OnFailure
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "echo failing; exit 3"]
---
apiVersion: v1
kind: Pod
metadata: {name: done}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "echo finished"]
---
apiVersion: v1
kind: Pod
metadata: {name: nocommand}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["/no/such/binary"]
---
apiVersion: v1
kind: Pod
metadata: {name: noimage}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: 127.0.0.1:1/no/such-image:1
"#;

#[test]
fn restart_policies_back_off_and_bad_input_is_reported_in_status() {
    let node = Node::start();
    node.create(CRASHING);
    // OnFailure: restarted, then held back (CrashLoopBackOff) with the last exit recorded.
    node.wait_pod(
        "crashing",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "CrashLoopBackOff",
        |r| r == "CrashLoopBackOff",
    );
    assert_eq!(
        node.pod_field(
            "crashing",
            "{.status.containerStatuses[0].lastState.terminated.exitCode}"
        ),
        "3"
    );
    let restarts: u32 = node
        .pod_field("crashing", "{.status.containerStatuses[0].restartCount}")
        .parse()
        .unwrap();
    assert!(restarts >= 1, "restartCount {restarts}");
    let get = node.kubectl_ok(&["get", "pod", "crashing"]);
    assert!(get.contains("CrashLoopBackOff"), "{get}");
    assert!(kubectl_logs(&node, &["crashing", "--previous"]).contains("failing"));

    // Never + exit 0: Succeeded, with the exit in the status.
    node.wait_pod("done", "{.status.phase}", "Succeeded", |p| p == "Succeeded");
    assert_eq!(
        node.pod_field(
            "done",
            "{.status.containerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );

    // A command that does not exist: RunContainerError, then CrashLoopBackOff.
    let reason = node.wait_pod(
        "nocommand",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "RunContainerError or CrashLoopBackOff",
        |r| r == "RunContainerError" || r == "CrashLoopBackOff",
    );
    if reason == "RunContainerError" {
        node.wait_pod(
            "nocommand",
            "{.status.containerStatuses[0].state.waiting.reason}",
            "CrashLoopBackOff",
            |r| r == "CrashLoopBackOff",
        );
    }
    let describe = node.kubectl_ok(&["describe", "pod", "nocommand"]);
    assert!(describe.contains("/no/such/binary"), "{describe}");

    // An image that cannot be pulled: ErrImagePull, then ImagePullBackOff; nothing crashed.
    node.wait_pod(
        "noimage",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ErrImagePull or ImagePullBackOff",
        |r| r == "ErrImagePull" || r == "ImagePullBackOff",
    );
    node.wait_pod(
        "noimage",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ImagePullBackOff",
        |r| r == "ImagePullBackOff",
    );
    assert_eq!(node.pod_field("noimage", "{.status.phase}"), "Pending");
    let waiting = kubectl_logs(&node, &["noimage"]);
    assert!(
        waiting.contains("container \"main\" in pod \"noimage\" is waiting to start"),
        "{waiting}"
    );
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=noimage",
    ]);
    assert!(
        events.contains("Pulling") && events.contains("Failed"),
        "{events}"
    );
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=crashing",
    ]);
    assert!(events.contains("BackOff"), "{events}");
}

const KEEP: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: keep}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
---
apiVersion: v1
kind: Pod
metadata: {name: goner}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
"#;

#[test]
fn pods_survive_a_sigkill_of_the_server_and_are_adopted() {
    let mut node = Node::start();
    node.create(KEEP);
    for pod in ["keep", "goner"] {
        node.wait_pod(pod, "{.status.phase}", "Running", |p| p == "Running");
    }
    let keep_ids = node.running_containers("keep");
    assert_eq!(keep_ids.len(), 1, "{keep_ids:?}");
    let ip = node.pod_field("keep", "{.status.podIP}");

    node.cluster.kill_server();
    // While the node is down, `goner` is deleted for good (a control plane without a node).
    node.cluster.local_node = false;
    node.cluster.start_server();
    node.kubectl_ok(&["delete", "pod", "goner", "--force", "--grace-period=0"]);
    node.cluster.kill_server();
    node.cluster.local_node = true;
    node.cluster.start_server();
    node.wait_ready();

    // `keep` runs on in the very same container, not restarted nor duplicated; `goner`'s
    // containers are stopped and removed.
    let gone = poll(Duration::from_secs(60), || {
        node.engine_containers("goner").is_empty().then_some(())
    });
    assert!(
        gone.is_some(),
        "the deleted pod's container was not stopped"
    );
    assert_eq!(node.running_containers("keep"), keep_ids);
    assert_eq!(node.engine_containers("keep"), keep_ids);
    assert_eq!(node.pod_field("keep", "{.status.podIP}"), ip);
    assert_eq!(
        node.pod_field("keep", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
    let out = node.kubectl(&["wait", "--for=condition=Ready", "pod/keep", "--timeout=30s"]);
    assert!(out.status.success(), "{}", text(&out));
}
