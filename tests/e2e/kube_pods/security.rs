//! Pods' securityContext and resources as the containers see them: users and groups,
//! fsGroup-owned volumes, a read-only root, no_new_privs, capabilities, privileged
//! containers, runAsNonRoot refusing a root image; resources as pod cgroups by QoS class, and
//! a container over its memory limit reported OOMKilled.

use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;
use crate::{kubectl_logs, text};

const SECURED: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: secured}
spec:
  nodeName: NODE
  restartPolicy: Never
  securityContext:
    runAsUser: 1000
    runAsGroup: 3000
    fsGroup: 2000
    supplementalGroups: [4000]
  volumes:
  - {name: data, emptyDir: {}}
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c"]
    args:
    - |
      echo "id: $(id)"
      touch /rootfs-file 2>/dev/null && echo root=writable || echo root=readonly
      touch /data/f && echo "data-group=$(stat -c %g /data/f)"
      grep -E '^(NoNewPrivs|CapEff)' /proc/self/status
    volumeMounts: [{name: data, mountPath: /data}]
    securityContext:
      readOnlyRootFilesystem: true
      allowPrivilegeEscalation: false
      capabilities: {drop: [ALL]}
---
apiVersion: v1
kind: Pod
metadata: {name: privileged}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status; echo id=$(id -u)"]
    securityContext: {privileged: true}
---
apiVersion: v1
kind: Pod
metadata: {name: plain}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status"]
    securityContext:
      capabilities: {add: [NET_ADMIN]}
---
apiVersion: v1
kind: Pod
metadata: {name: nonroot}
spec:
  nodeName: NODE
  securityContext: {runAsNonRoot: true}
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
"#;

/// The value of `key:` in /proc/self/status lines of `logs`.
fn status_field(logs: &str, key: &str) -> String {
    logs.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| panic!("no {key} in {logs}"))
}

#[test]
fn security_context_sets_users_groups_read_only_root_and_privileges() {
    let node = Node::start();
    node.create(SECURED);
    for pod in ["secured", "privileged", "plain"] {
        node.wait_pod(pod, "{.status.phase}", "Succeeded", |p| p == "Succeeded");
    }
    let logs = kubectl_logs(&node, &["secured"]);
    let id = logs.lines().find(|l| l.starts_with("id: ")).unwrap_or("");
    assert!(id.contains("uid=1000 gid=3000"), "{logs}");
    for g in ["2000", "4000"] {
        assert!(id.contains(g), "group {g} missing: {logs}");
    }
    assert!(logs.contains("root=readonly"), "{logs}");
    assert!(
        logs.contains("data-group=2000"),
        "fsGroup owns the volume: {logs}"
    );
    assert_eq!(status_field(&logs, "NoNewPrivs:"), "1");
    assert_eq!(status_field(&logs, "CapEff:"), "0000000000000000");

    // Privileged: every capability the host grants, escalation allowed, root.
    let logs = kubectl_logs(&node, &["privileged"]);
    assert_eq!(status_field(&logs, "NoNewPrivs:"), "0", "{logs}");
    let caps = u64::from_str_radix(&status_field(&logs, "CapEff:"), 16).unwrap();
    assert!(caps.count_ones() > 30, "privileged caps {caps:x}");
    assert!(logs.contains("id=0"), "{logs}");

    // Nothing said: the engine's secure default (no_new_privs, ADR 0021) and its default
    // capability set plus what was added (NET_ADMIN is bit 12).
    let logs = kubectl_logs(&node, &["plain"]);
    assert_eq!(status_field(&logs, "NoNewPrivs:"), "1", "{logs}");
    let caps = u64::from_str_radix(&status_field(&logs, "CapEff:"), 16).unwrap();
    assert!(caps & (1 << 12) != 0, "NET_ADMIN missing: {caps:x}");
    assert!(
        caps & (1 << 21) == 0,
        "SYS_ADMIN is not a default: {caps:x}"
    );

    // runAsNonRoot with a root image: refused before anything is created.
    node.wait_pod(
        "nonroot",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "CreateContainerConfigError",
        |r| r == "CreateContainerConfigError",
    );
    let message = node.pod_field(
        "nonroot",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(
        message.contains("runAsNonRoot and image will run as root"),
        "{message}"
    );
    assert!(node.engine_containers("nonroot").is_empty());
    let get = node.kubectl_ok(&["get", "pod", "nonroot"]);
    assert!(get.contains("CreateContainerConfigError"), "{get}");
}

const RESOURCES: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: hog}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "head -c 200m /dev/zero | tail"]
    resources:
      limits: {memory: 50Mi}
---
apiVersion: v1
kind: Pod
metadata: {name: guaranteed}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
    resources:
      limits: {memory: 64Mi, cpu: 250m}
---
apiVersion: v1
kind: Pod
metadata: {name: burstable}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
    resources:
      requests: {cpu: 100m}
"#;

/// A v1 controller's file of pod `uid`'s cgroup in QoS directory `qos` ("" for Guaranteed).
fn pod_cgroup_file(node: &Node, controller: &str, qos: &str, uid: &str, file: &str) -> String {
    let mut dir = std::path::PathBuf::from("/sys/fs/cgroup")
        .join(controller)
        .join(&node.cgroup_parent)
        .join("kubepods");
    if !qos.is_empty() {
        dir = dir.join(qos);
    }
    let path = dir.join(format!("pod{uid}")).join(file);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn resources_become_pod_cgroups_by_qos_class_and_an_oom_kill_is_reported() {
    let node = Node::start();
    node.create(RESOURCES);
    // Over its 50Mi limit: killed by the kernel, reported as kubelet reports it.
    let reason = node.wait_pod(
        "hog",
        "{.status.containerStatuses[0].state.terminated.reason}",
        "OOMKilled",
        |r| !r.is_empty(),
    );
    assert_eq!(reason, "OOMKilled", "{}", node.explain("hog"));
    assert_eq!(node.pod_field("hog", "{.status.phase}"), "Failed");
    assert_eq!(
        node.pod_field(
            "hog",
            "{.status.containerStatuses[0].state.terminated.exitCode}"
        ),
        "137"
    );

    for pod in ["guaranteed", "burstable"] {
        node.wait_pod(pod, "{.status.phase}", "Running", |p| p == "Running");
    }
    assert_eq!(
        node.pod_field("guaranteed", "{.status.qosClass}"),
        "Guaranteed"
    );
    assert_eq!(
        node.pod_field("burstable", "{.status.qosClass}"),
        "Burstable"
    );
    let describe = node.kubectl_ok(&["describe", "pod", "guaranteed"]);
    assert!(describe.contains("QoS Class:"), "{describe}");
    assert!(describe.contains("Guaranteed"), "{describe}");

    // kubelet's layout: Guaranteed pods right under kubepods with the summed limits,
    // Burstable ones under kubepods/burstable with shares from their requests.
    let uid = node.pod_field("guaranteed", "{.metadata.uid}");
    assert_eq!(
        pod_cgroup_file(&node, "memory", "", &uid, "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        pod_cgroup_file(&node, "cpu", "", &uid, "cpu.cfs_quota_us"),
        "25000"
    );
    let uid = node.pod_field("burstable", "{.metadata.uid}");
    assert_eq!(
        pod_cgroup_file(&node, "cpu", "burstable", &uid, "cpu.shares"),
        "102"
    );
    // The container's own cgroup is inside its pod's.
    let nested = poll(Duration::from_secs(10), || {
        let dir = std::path::PathBuf::from("/sys/fs/cgroup/pids")
            .join(&node.cgroup_parent)
            .join("kubepods/burstable")
            .join(format!("pod{uid}"));
        let children = std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .any(|e| e.path().is_dir());
        children.then_some(())
    });
    assert!(nested.is_some(), "no container cgroup in the pod's");
    let out = node.kubectl(&["delete", "pod", "burstable", "--grace-period=1"]);
    assert!(out.status.success(), "{}", text(&out));
}
