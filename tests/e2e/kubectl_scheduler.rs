//! The scheduler of `skiff server` through kubectl: Node objects created by the test as an
//! agent would register them (no agents run), pods applied by kubectl get bound, a pod that
//! fits nowhere stays Pending with kube-scheduler's FailedScheduling text in `kubectl get
//! events` and `kubectl describe pod`, and is bound once the cluster changes.

mod kube_common;

use std::time::Duration;

use kube_common::{poll, Cluster, Datastore};

fn node(name: &str, cpu: &str, disk: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Node
metadata:
  name: {name}
  labels: {{kubernetes.io/hostname: {name}, disk: {disk}}}
status:
  capacity: {{cpu: "{cpu}", memory: 4Gi, pods: "110"}}
  allocatable: {{cpu: "{cpu}", memory: 4Gi, pods: "110"}}
  conditions:
  - {{type: Ready, status: "True", reason: KubeletReady, message: simulated,
     lastHeartbeatTime: "2026-01-01T00:00:00Z", lastTransitionTime: "2026-01-01T00:00:00Z"}}
"#
    )
}

fn web(name: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata:
  name: {name}
  labels: {{app: web}}
spec:
  nodeSelector: {{disk: ssd}}
  containers:
  - name: c
    image: busybox
    resources: {{requests: {{cpu: 600m}}}}
"#
    )
}

/// The node `pod` is bound to, once it is.
fn bound(c: &Cluster, pod: &str) -> String {
    poll(Duration::from_secs(20), || {
        let node = c.jsonpath("default", "pod", pod, "{.spec.nodeName}");
        (!node.is_empty()).then_some(node)
    })
    .unwrap_or_else(|| panic!("{pod} was not bound: {}", c.log()))
}

/// Whether one line of `text` holds all of `words`, whitespace-separated.
fn has_line(text: &str, words: &[&str]) -> bool {
    text.lines().any(|l| {
        let got: Vec<&str> = l.split_whitespace().collect();
        got == words
    })
}

#[test]
fn pods_get_bound_and_unschedulable_ones_say_why_in_events_and_describe() {
    let c = Cluster::start(Datastore::Sqlite);
    let nodes = [
        node("n1", "1", "ssd"),
        node("n2", "1", "ssd"),
        node("n3", "4", "hdd"),
    ]
    .join("---\n");
    let f = c.write_file("nodes.yaml", &nodes);
    c.kubectl_ok(&["create", "-f", f.to_str().unwrap()]);
    c.kubectl_says(&["get", "nodes"], "Ready");

    let f = c.write_file("web.yaml", &[web("web-a"), web("web-b")].join("---\n"));
    c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let mut placed = [bound(&c, "web-a"), bound(&c, "web-b")];
    placed.sort();
    assert_eq!(placed, ["n1", "n2"], "one 600m pod per 1-cpu ssd node");
    c.kubectl_says(&["get", "pods", "-o", "wide"], "n1");

    let f = c.write_file("web-c.yaml", &web("web-c"));
    c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    let want = "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
                2 Insufficient cpu.";
    let events = poll(Duration::from_secs(20), || {
        let out = c.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=web-c",
        ]);
        out.contains(want).then_some(out)
    })
    .unwrap_or_else(|| panic!("no FailedScheduling event for web-c: {}", c.log()));
    assert!(events.contains("FailedScheduling"), "{events}");
    assert!(events.contains("Warning"), "{events}");

    let describe = c.kubectl_ok(&["describe", "pod", "web-c"]);
    assert!(has_line(&describe, &["Status:", "Pending"]), "{describe}");
    assert!(
        has_line(&describe, &["PodScheduled", "False"]),
        "{describe}"
    );
    assert!(describe.contains("FailedScheduling"), "{describe}");
    assert!(describe.contains(want), "{describe}");
    assert!(describe.contains("default-scheduler"), "{describe}");

    // The cluster changes: the waiting pod is tried again and bound.
    c.kubectl_ok(&["label", "node", "n3", "disk=ssd", "--overwrite"]);
    assert_eq!(bound(&c, "web-c"), "n3");
    let describe = poll(Duration::from_secs(20), || {
        let d = c.kubectl_ok(&["describe", "pod", "web-c"]);
        d.contains("Successfully assigned default/web-c to n3")
            .then_some(d)
    })
    .unwrap_or_else(|| panic!("no Scheduled event for web-c"));
    assert!(has_line(&describe, &["PodScheduled", "True"]), "{describe}");

    // Binding a bound pod again is refused as kube-apiserver refuses it.
    let f = c.write_file(
        "binding.json",
        r#"{"apiVersion":"v1","kind":"Binding","metadata":{"name":"web-a"},"target":{"kind":"Node","name":"n3"}}"#,
    );
    let err = c.kubectl_stderr(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/web-a/binding",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert!(err.contains("is already assigned to node"), "{err}");
}
