//! `kubectl drain`, `cordon` and `uncordon` on the local node, and the eviction API's 429
//! through kubectl: a Deployment guarded by a PodDisruptionBudget is drained only as far as
//! the budget allows (kubectl retries the refused evictions), DaemonSet pods are left with
//! kubectl's warning, and the node ends unschedulable until uncordoned. Also ResourceQuota
//! with `kubectl create quota` / `describe quota` and a refused create, on the same cluster.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::kube_common::poll;
use crate::node::{Node, BUSYBOX};

const WORKLOADS: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      terminationGracePeriodSeconds: 2
      volumes: [{name: scratch, emptyDir: {}}]
      containers:
      - name: c
        image: IMAGE
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        volumeMounts: [{name: scratch, mountPath: /scratch}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: c
        image: IMAGE
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
"#;

/// Names of the pods labelled `app=<app>` that are not being deleted, with their phase.
fn pods(node: &Node, app: &str) -> Vec<(String, String)> {
    let out = node.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (name, phase) = (w.next()?, w.next()?);
            w.next()
                .is_none()
                .then(|| (name.to_string(), phase.to_string()))
        })
        .collect()
}

fn wait(what: &str, node: &Node, f: impl Fn() -> bool) {
    if poll(Duration::from_secs(120), || f().then_some(())).is_none() {
        panic!(
            "{what} never happened\n--- pods ---\n{}\n--- server log ---\n{}",
            node.kubectl_ok(&["get", "pods", "-o", "wide"]),
            node.cluster.log()
        );
    }
}

fn pdb_allowed(node: &Node) -> String {
    node.kubectl_ok(&[
        "get",
        "pdb",
        "web",
        "-o",
        "jsonpath={.status.disruptionsAllowed}",
    ])
}

#[test]
fn drain_respects_the_disruption_budget_and_skips_daemonsets() {
    let node = Node::start();
    node.create(&WORKLOADS.replace("IMAGE", BUSYBOX));
    let running = |app: &str, n: usize| {
        let p = pods(&node, app);
        p.len() == n && p.iter().all(|(_, phase)| phase == "Running")
    };
    wait("two web pods and the agent pod running", &node, || {
        running("web", 2) && running("agent", 1)
    });
    wait("the budget counted both pods healthy", &node, || {
        node.kubectl_ok(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.currentHealthy}",
        ]) == "2"
    });
    assert_eq!(pdb_allowed(&node), "0");

    // The eviction API itself, through kubectl: 429 with Kubernetes' message.
    let victim = pods(&node, "web")[0].0.clone();
    let eviction = node.cluster.write_file(
        "eviction.json",
        &format!(
            r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{victim}","namespace":"default"}}}}"#
        ),
    );
    let out = node.kubectl(&[
        "create",
        "--raw",
        &format!("/api/v1/namespaces/default/pods/{victim}/eviction"),
        "-f",
        eviction.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{stderr}"
    );

    // Drain: cordons, skips the DaemonSet pod, and retries while the budget forbids.
    let log_path = node.cluster.dir.path().join("drain.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut drain: Command = node.cluster.kubectl_command(&[
        "drain",
        &node.name,
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=180s",
    ]);
    let mut drain = drain
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let drain_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    wait("drain retried a refused eviction", &node, || {
        drain_log().contains("(will retry after 5s): Cannot evict pod as it would violate the pod's disruption budget.")
    });
    let log_now = drain_log();
    assert!(
        log_now.contains("Warning: ignoring DaemonSet-managed Pods: default/agent-"),
        "{log_now}"
    );
    assert!(
        node.kubectl_ok(&["get", "node", &node.name])
            .contains("SchedulingDisabled"),
        "drain cordons first"
    );
    assert!(
        running("web", 2),
        "nothing evicted while the budget forbids"
    );

    // One disruption allowed: exactly one pod goes; its replacement cannot be scheduled on
    // the cordoned node, so the budget forbids the second.
    node.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]);
    wait("one web pod evicted", &node, || {
        drain_log().matches("evicted").count() == 1
    });
    let web = pods(&node, "web");
    assert_eq!(
        web.iter().filter(|(_, phase)| phase == "Running").count(),
        1,
        "{web:?}"
    );
    assert!(
        drain.try_wait().unwrap().is_none(),
        "drain still waits: {}",
        drain_log()
    );

    // No budget left to keep: drain finishes.
    node.kubectl_ok(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":0}}"#,
    ]);
    let status = poll(Duration::from_secs(120), || drain.try_wait().unwrap())
        .unwrap_or_else(|| panic!("drain did not finish: {}", drain_log()));
    let out = drain_log();
    assert!(status.success(), "{out}");
    assert!(
        out.contains(&format!("node/{} drained", node.name)),
        "{out}"
    );
    assert_eq!(out.matches("evicted").count(), 2, "{out}");
    assert!(running("agent", 1), "the DaemonSet pod stays");
    assert_eq!(
        node.kubectl_ok(&[
            "get",
            "node",
            &node.name,
            "-o",
            "jsonpath={.spec.unschedulable}"
        ]),
        "true"
    );

    // Uncordon: the replacements waiting for a node run again.
    let out = node.kubectl_ok(&["uncordon", &node.name]);
    assert!(
        out.contains(&format!("node/{} uncordoned", node.name)),
        "{out}"
    );
    wait("the web pods run again", &node, || running("web", 2));

    // ResourceQuota on the same cluster: kubectl create quota, describe, a refused create.
    // The namespace's `kube-root-ca.crt` (published by the controllers) counts against the quota,
    // as on Kubernetes: one ConfigMap of the user's own fits under two.
    wait("kube-root-ca.crt is published", &node, || {
        node.kubectl(&["get", "configmap", "kube-root-ca.crt"])
            .status
            .success()
    });
    node.kubectl_ok(&[
        "create",
        "quota",
        "small",
        "--hard=pods=4,count/configmaps=2",
    ]);
    wait("the quota controller counted the pods", &node, || {
        node.kubectl_ok(&[
            "get",
            "quota",
            "small",
            "-o",
            "jsonpath={.status.used.pods}",
        ]) == "3"
    });
    let describe = node.kubectl_ok(&["describe", "quota", "small"]);
    assert!(
        describe
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["pods", "3", "4"]),
        "{describe}"
    );
    node.kubectl_ok(&["create", "configmap", "one"]);
    let out = node.kubectl(&["create", "configmap", "two"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("configmaps \"two\" is forbidden: exceeded quota: small, requested: count/configmaps=1, used: count/configmaps=2, limited: count/configmaps=2"),
        "{stderr}"
    );
    let out = node.kubectl(&["create", "quota", "bad", "--hard=pods=-1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("must be greater than or equal to 0"),
        "{stderr}"
    );
    // Scoped quotas: `--scopes` is stored as given; a conflicting pair is refused.
    node.kubectl_ok(&[
        "create",
        "quota",
        "best-effort",
        "--hard=pods=10",
        "--scopes=BestEffort,NotTerminating",
    ]);
    let scopes = node.kubectl_ok(&[
        "get",
        "quota",
        "best-effort",
        "-o",
        "jsonpath={.spec.scopes}",
    ]);
    assert_eq!(scopes, r#"["BestEffort","NotTerminating"]"#);
    let out = node.kubectl(&[
        "create",
        "quota",
        "both",
        "--hard=pods=1",
        "--scopes=BestEffort,NotBestEffort",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("conflicting scopes"), "{stderr}");
}
