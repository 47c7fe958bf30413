//! Pods configured through their spec: environment from ConfigMaps, Secrets and the downward
//! API, init containers, volumes shared between containers, probes.

use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;
use crate::{kubectl_logs, text};

const CONFIGURED: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: settings}
data: {MODE: fast, LEVEL: "3"}
---
apiVersion: v1
kind: Secret
metadata: {name: creds}
stringData: {password: hunter2}
---
apiVersion: v1
kind: Pod
metadata:
  name: configured
  labels: {tier: backend}
spec:
  nodeName: NODE
  restartPolicy: Never
  initContainers:
  - name: setup
    image: busybox:1
    command: ["sh", "-c", "echo init ran"]
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "env | sort"]
    envFrom:
    - configMapRef: {name: settings}
      prefix: CFG_
    env:
    - name: PASSWORD
      valueFrom: {secretKeyRef: {name: creds, key: password}}
    - name: POD_NAME
      valueFrom: {fieldRef: {fieldPath: metadata.name}}
    - name: TIER
      valueFrom: {fieldRef: {fieldPath: "metadata.labels['tier']"}}
    - name: POD_IP
      valueFrom: {fieldRef: {fieldPath: status.podIP}}
    - name: COMBINED
      value: "$(CFG_MODE)/$(POD_NAME)"
---
apiVersion: v1
kind: Pod
metadata: {name: waits-for-config}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "echo got $LATE; sleep 100000"]
    env:
    - name: LATE
      valueFrom: {configMapKeyRef: {name: late, key: value}}
"#;

#[test]
fn env_from_config_maps_secrets_and_the_downward_api_after_init_containers() {
    let node = Node::start();
    node.create(CONFIGURED);
    node.wait_pod("configured", "{.status.phase}", "Succeeded", |p| {
        p == "Succeeded"
    });
    assert_eq!(
        node.pod_field(
            "configured",
            "{.status.initContainerStatuses[0].state.terminated.reason}"
        ),
        "Completed"
    );
    assert!(kubectl_logs(&node, &["configured", "-c", "setup"]).contains("init ran"));
    let env = kubectl_logs(&node, &["configured", "-c", "main"]);
    let ip = node.pod_field("configured", "{.status.podIP}");
    for want in [
        "CFG_MODE=fast".to_string(),
        "CFG_LEVEL=3".into(),
        "PASSWORD=hunter2".into(),
        "POD_NAME=configured".into(),
        "TIER=backend".into(),
        format!("POD_IP={ip}"),
        "COMBINED=fast/configured".into(),
    ] {
        assert!(
            env.lines().any(|l| l == want),
            "missing {want:?} in:\n{env}"
        );
    }
    // The init container finished before the app container started.
    let init_done = node.pod_field(
        "configured",
        "{.status.initContainerStatuses[0].state.terminated.finishedAt}",
    );
    let main_started = node.pod_field(
        "configured",
        "{.status.containerStatuses[0].state.terminated.startedAt}",
    );
    assert!(init_done <= main_started, "{init_done} > {main_started}");

    // A missing ConfigMap holds the container back with the reason; once it exists, the pod
    // starts (level-triggered).
    node.wait_pod(
        "waits-for-config",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "CreateContainerConfigError",
        |r| r == "CreateContainerConfigError",
    );
    let message = node.pod_field(
        "waits-for-config",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert_eq!(message, "configmap \"late\" not found");
    node.kubectl_ok(&[
        "create",
        "configmap",
        "late",
        "--from-literal=value=arrived",
    ]);
    node.wait_pod("waits-for-config", "{.status.phase}", "Running", |p| {
        p == "Running"
    });
    let out = poll(Duration::from_secs(30), || {
        let l = kubectl_logs(&node, &["waits-for-config"]);
        l.contains("got arrived").then_some(l)
    });
    assert!(
        out.is_some(),
        "{}",
        kubectl_logs(&node, &["waits-for-config"])
    );
}

const VOLUMES: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: site}
data: {greeting: hello-v1, other: x}
---
apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {value: s3cret}
---
apiVersion: v1
kind: Pod
metadata: {name: shared}
spec:
  nodeName: NODE
  volumes:
  - {name: scratch, emptyDir: {}}
  - {name: mem, emptyDir: {medium: Memory, sizeLimit: 1Mi}}
  - name: config
    configMap: {name: site}
  - name: secret
    secret:
      secretName: token
      items: [{key: value, path: nested/token, mode: 0400}]
  containers:
  - name: server
    image: busybox:1
    command: ["sh", "-c", "echo from-server > /data/msg; httpd -f -p 8080 -h /data"]
    volumeMounts: [{name: scratch, mountPath: /data}]
  - name: client
    image: busybox:1
    command:
    - sh
    - -c
    - |
      until wget -q -O /tmp/got http://127.0.0.1:8080/msg; do sleep 0.2; done
      echo "fetched $(cat /tmp/got)"
      echo "secret $(cat /secret/nested/token) mode $(stat -c %a /secret/nested/token)"
      touch /config/nope 2>/dev/null || echo "config read-only"
      dd if=/dev/zero of=/mem/big bs=1024 count=2048 2>/dev/null || echo "memory volume full"
      mount | grep -q ' /mem type tmpfs' && echo "mem is tmpfs"
      while true; do echo "greeting $(cat /config/greeting)"; sleep 1; done
    volumeMounts:
    - {name: scratch, mountPath: /shared, readOnly: true}
    - {name: mem, mountPath: /mem}
    - {name: config, mountPath: /config}
    - {name: secret, mountPath: /secret}
---
apiVersion: v1
kind: Pod
metadata: {name: missing-volume}
spec:
  nodeName: NODE
  volumes: [{name: config, configMap: {name: absent}}]
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "100000"]
    volumeMounts: [{name: config, mountPath: /config}]
"#;

#[test]
fn containers_of_a_pod_share_volumes_and_localhost_and_config_updates_in_place() {
    let node = Node::start();
    node.create(VOLUMES);
    let out = node.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/shared",
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        node.explain("shared")
    );
    let logs = poll(Duration::from_secs(30), || {
        let l = kubectl_logs(&node, &["shared", "-c", "client"]);
        l.contains("greeting").then_some(l)
    })
    .unwrap_or_else(|| panic!("{}", node.explain("shared")));
    for want in [
        "fetched from-server",
        "secret s3cret mode 400",
        "config read-only",
        "memory volume full",
        "mem is tmpfs",
        "greeting hello-v1",
    ] {
        assert!(logs.contains(want), "missing {want:?} in:\n{logs}");
    }
    // A ConfigMap change reaches the running container's files.
    node.kubectl_ok(&[
        "patch",
        "configmap",
        "site",
        "-p",
        r#"{"data":{"greeting":"hello-v2"}}"#,
    ]);
    let updated = poll(Duration::from_secs(90), || {
        kubectl_logs(&node, &["shared", "-c", "client", "--tail=1"])
            .contains("greeting hello-v2")
            .then_some(())
    });
    assert!(
        updated.is_some(),
        "the configMap volume was not updated in place"
    );

    // A volume whose ConfigMap does not exist keeps the pod in ContainerCreating, with the
    // reason in its events.
    node.wait_pod(
        "missing-volume",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ContainerCreating",
        |r| r == "ContainerCreating",
    );
    let events = poll(Duration::from_secs(30), || {
        let e = node.kubectl_ok(&[
            "get",
            "events",
            "--field-selector",
            "involvedObject.name=missing-volume",
        ]);
        e.contains("FailedMount").then_some(e)
    });
    let events = events.unwrap_or_default();
    assert!(
        events.contains("configmap \"absent\" not found"),
        "{events}"
    );
}

const PROBED: &str = r#"apiVersion: v1
kind: ConfigMap
metadata: {name: switches}
data: {}
---
apiVersion: v1
kind: Pod
metadata: {name: probed}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: switches, configMap: {name: switches}}
  - {name: www, emptyDir: {}}
  containers:
  - name: web
    image: busybox:1
    command:
    - sh
    - -c
    - |
      echo ok > /www/healthz
      httpd -p 8080 -h /www
      while true; do [ -f /switches/die ] && rm -f /www/healthz; sleep 0.2; done
    ports: [{name: http, containerPort: 8080}]
    volumeMounts:
    - {name: switches, mountPath: /switches}
    - {name: www, mountPath: /www}
    readinessProbe:
      tcpSocket: {port: http}
      periodSeconds: 1
    livenessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
      failureThreshold: 1
  - name: gate
    image: busybox:1
    command: ["sleep", "100000"]
    volumeMounts: [{name: switches, mountPath: /switches}]
    readinessProbe:
      exec: {command: ["cat", "/switches/ready"]}
      periodSeconds: 1
"#;

#[test]
fn probes_drive_readiness_and_restarts() {
    let node = Node::start();
    node.create(PROBED);
    // Running, but not Ready until the exec probe finds its file.
    node.wait_pod(
        "probed",
        "{.status.containerStatuses[?(@.name==\"web\")].ready}",
        "web ready (tcpSocket)",
        |r| r == "true",
    );
    assert_eq!(node.pod_field("probed", "{.status.phase}"), "Running");
    assert_eq!(
        node.pod_field(
            "probed",
            "{.status.containerStatuses[?(@.name==\"gate\")].ready}"
        ),
        "false"
    );
    assert_eq!(
        node.pod_field(
            "probed",
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "False"
    );
    let get = node.kubectl_ok(&["get", "pod", "probed"]);
    assert!(get.contains("1/2"), "{get}");
    node.kubectl_ok(&[
        "patch",
        "configmap",
        "switches",
        "-p",
        r#"{"data":{"ready":"yes"}}"#,
    ]);
    let out = node.kubectl(&[
        "wait",
        "--for=condition=Ready",
        "pod/probed",
        "--timeout=90s",
    ]);
    assert!(
        out.status.success(),
        "{}\n{}",
        text(&out),
        node.explain("probed")
    );

    // A failing liveness probe restarts the container.
    node.kubectl_ok(&[
        "patch",
        "configmap",
        "switches",
        "-p",
        r#"{"data":{"ready":"yes","die":"now"}}"#,
    ]);
    node.wait_pod(
        "probed",
        "{.status.containerStatuses[?(@.name==\"web\")].restartCount}",
        "a liveness restart",
        |r| r.parse::<u32>().is_ok_and(|n| n >= 1),
    );
    let events = node.kubectl_ok(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.name=probed",
    ]);
    assert!(events.contains("Unhealthy"), "{events}");
    assert!(events.contains("failed liveness probe"), "{events}");
}
