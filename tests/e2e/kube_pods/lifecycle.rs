//! Lifecycle hooks: postStart (exec, httpGet) runs once the container started, preStop runs
//! before the SIGTERM of a graceful delete; a failing postStart hook is an event and kills
//! the container.

use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;
use crate::text;

const HOOKED: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: hooked}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 20
  volumes:
  - {name: out, hostPath: {path: OUT, type: Directory}}
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c"]
    args:
    - |
      trap 'if [ -f /out/prestop ]; then echo after-prestop > /out/term; else echo no-prestop > /out/term; fi; exit 0' TERM
      mkdir -p /www && echo ok > /www/hook
      httpd -p 8080 -h /www
      while true; do sleep 1; done
    volumeMounts: [{name: out, mountPath: /out}]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo exec-hook > /out/poststart"]}
      preStop:
        exec: {command: ["sh", "-c", "sleep 1; echo done > /out/prestop"]}
  - name: web
    image: busybox:1
    command: ["sleep", "100000"]
    lifecycle:
      postStart:
        httpGet: {path: /hook, port: 8080}
---
apiVersion: v1
kind: Pod
metadata: {name: badhook}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
    lifecycle:
      postStart:
        exec: {command: ["sh", "-c", "echo hook failing; exit 7"]}
"#;

#[test]
fn lifecycle_hooks_run_after_start_and_before_sigterm() {
    let node = Node::start();
    let out = tempfile::tempdir().unwrap();
    let yaml = HOOKED.replace("OUT", &out.path().display().to_string());
    node.create(&yaml);
    node.wait_pod("hooked", "{.status.phase}", "Running", |p| p == "Running");
    let post = std::fs::read_to_string(out.path().join("poststart")).unwrap_or_default();
    assert_eq!(post.trim(), "exec-hook", "postStart ran before Running");
    let ready = node.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/hooked",
        "--timeout=60s",
    ]);
    assert!(ready.status.success(), "{}", node.explain("hooked"));
    assert_eq!(
        node.pod_field("hooked", "{.status.containerStatuses[1].restartCount}"),
        "0",
        "the httpGet postStart hook failed: {}",
        node.explain("hooked")
    );

    // Graceful delete: preStop first, then SIGTERM (the trap sees the hook's file).
    let deleted = node.kubectl(&["delete", "pod", "hooked", "--timeout=60s"]);
    assert!(deleted.status.success(), "{}", text(&deleted));
    let term = poll(Duration::from_secs(10), || {
        std::fs::read_to_string(out.path().join("term")).ok()
    });
    assert_eq!(term.as_deref().map(str::trim), Some("after-prestop"));

    // A failing postStart hook: an event, and the container is killed (Never: Failed).
    node.wait_pod("badhook", "{.status.phase}", "Failed", |p| p == "Failed");
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=badhook",
    ]);
    assert!(events.contains("FailedPostStartHook"), "{events}");
    assert!(events.contains("exited with 7"), "{events}");
}
