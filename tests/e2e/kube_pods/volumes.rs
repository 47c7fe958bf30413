//! Volumes beyond the basics: `downwardAPI` and `projected` volumes (updated in place when the
//! pod's labels or the Secret change), secrets kept off the node's disk, and hostPath volumes
//! refused at admission when the admin restricts them.

use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;
use crate::{kubectl_logs, text};

const PROJECTED: &str = r#"apiVersion: v1
kind: Secret
metadata: {name: token}
stringData: {value: first}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app}
data: {mode: fast}
---
apiVersion: v1
kind: Pod
metadata:
  name: projected
  labels: {tier: web}
spec:
  nodeName: NODE
  volumes:
  - name: info
    downwardAPI:
      items:
      - {path: labels, fieldRef: {fieldPath: metadata.labels}}
      - {path: name, fieldRef: {fieldPath: metadata.name}}
      - {path: mem, resourceFieldRef: {containerName: main, resource: limits.memory, divisor: 1Mi}}
  - name: all
    projected:
      sources:
      - secret: {name: token, items: [{key: value, path: secret/value}]}
      - configMap: {name: app}
      - downwardAPI: {items: [{path: ns, fieldRef: {fieldPath: metadata.namespace}}]}
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c"]
    args:
    - |
      cat /info/name; echo; cat /info/mem; echo; cat /all/mode /all/ns; echo
      grep -E ' /all | /info ' /proc/mounts | cut -d' ' -f2,3
      while true; do echo "labels=$(cat /info/labels | tr '\n' ,) secret=$(cat /all/secret/value)"; sleep 1; done
    resources: {limits: {memory: 32Mi}}
    volumeMounts:
    - {name: info, mountPath: /info}
    - {name: all, mountPath: /all}
"#;

#[test]
fn downward_api_and_projected_volumes_follow_the_pod_and_the_secret() {
    let node = Node::start();
    node.create(PROJECTED);
    node.wait_pod("projected", "{.status.phase}", "Running", |p| {
        p == "Running"
    });
    let first = poll(Duration::from_secs(30), || {
        let l = kubectl_logs(&node, &["projected"]);
        l.contains("secret=first").then_some(l)
    })
    .unwrap_or_else(|| panic!("{}", node.explain("projected")));
    for want in ["projected\n32\n", "fastdefault", "labels=tier=\"web\""] {
        assert!(first.contains(want), "{want:?} missing: {first}");
    }
    // The projected volume holds a secret: it lives on a tmpfs, not the node's disk.
    assert!(first.contains("/all tmpfs"), "{first}");

    // A new label and a new secret value reach the running container, no restart.
    node.kubectl_ok(&["label", "pod", "projected", "release=2"]);
    node.kubectl_ok(&[
        "patch",
        "secret",
        "token",
        "-p",
        r#"{"stringData":{"value":"second"}}"#,
    ]);
    let updated = poll(Duration::from_secs(90), || {
        let l = kubectl_logs(&node, &["projected", "--tail=1"]);
        (l.contains("release=\"2\"") && l.contains("secret=second")).then_some(l)
    });
    assert!(
        updated.is_some(),
        "not updated in place: {}",
        kubectl_logs(&node, &["projected", "--tail=3"])
    );
    assert_eq!(
        node.pod_field("projected", "{.status.containerStatuses[0].restartCount}"),
        "0"
    );
}

const HOST_PATHS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  nodeName: NODE
  restartPolicy: Never
  volumes:
  - {name: host, hostPath: {path: PATH}}
  containers:
  - name: main
    image: busybox:1
    command: ["ls", "/host"]
    volumeMounts: [{name: host, mountPath: /host}]
"#;

#[test]
fn host_paths_outside_what_the_admin_allows_are_rejected() {
    let allowed = tempfile::tempdir().unwrap();
    std::fs::write(allowed.path().join("visible"), b"x").unwrap();
    let prefix = allowed.path().display().to_string();
    let node = Node::start_with(&["--allowed-host-path", &prefix]);
    let pod = |name: &str, path: &str| {
        HOST_PATHS
            .replace("NAME", name)
            .replace("PATH", path)
            .replace("NODE", &node.name)
    };
    let file = node
        .cluster
        .write_file("inside.yaml", &pod("inside", &prefix));
    node.kubectl_ok(&["create", "-f", file.to_str().unwrap()]);
    node.wait_pod("inside", "{.status.phase}", "Succeeded", |p| {
        p == "Succeeded"
    });
    assert!(kubectl_logs(&node, &["inside"]).contains("visible"));

    for (name, path) in [
        ("etc", "/etc".to_string()),
        ("escape", format!("{prefix}/../../etc")),
        ("sibling", format!("{prefix}x")),
    ] {
        let file = node
            .cluster
            .write_file(&format!("{name}.yaml"), &pod(name, &path));
        let out = node.kubectl(&["create", "-f", file.to_str().unwrap()]);
        let said = text(&out);
        assert!(!out.status.success(), "{path} was admitted: {said}");
        assert!(
            said.contains("Forbidden") || said.contains("forbidden"),
            "{said}"
        );
        assert!(said.contains("is not allowed on this cluster"), "{said}");
        let get = node.kubectl(&["get", "pod", name]);
        assert!(
            text(&get).contains("NotFound"),
            "stored anyway: {}",
            text(&get)
        );
    }
}

const CLAIMED: &str = r#"apiVersion: v1
kind: PersistentVolume
metadata: {name: small-PREFIX}
spec:
  capacity: {storage: 100Mi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual-PREFIX
  hostPath: {path: SMALL}
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: big-PREFIX}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  storageClassName: manual-PREFIX
  hostPath: {path: BIG}
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  storageClassName: manual-PREFIX
  resources: {requests: {storage: 500Mi}}
---
apiVersion: v1
kind: Pod
metadata: {name: claimer}
spec:
  nodeName: NODE
  restartPolicy: Never
  volumes:
  - {name: data, persistentVolumeClaim: {claimName: data}}
  containers:
  - name: main
    image: busybox:1
    command: ["sh", "-c", "echo kept > /data/file"]
    volumeMounts: [{name: data, mountPath: /data}]
"#;

#[test]
fn a_claim_binds_to_a_fitting_host_path_volume_and_the_pod_writes_to_it() {
    let node = Node::start();
    let small = tempfile::tempdir().unwrap();
    let big = tempfile::tempdir().unwrap();
    let tag = node.prefix.clone();
    node.create(
        &CLAIMED
            .replace("PREFIX", &tag)
            .replace("SMALL", &small.path().display().to_string())
            .replace("BIG", &big.path().display().to_string()),
    );
    node.wait_pod("claimer", "{.status.phase}", "Succeeded", |p| {
        p == "Succeeded"
    });
    let kept = std::fs::read_to_string(big.path().join("file")).unwrap_or_default();
    assert_eq!(kept.trim(), "kept", "written to the bound volume");
    assert!(!small.path().join("file").exists());
    let pvc =
        |path: &str| node.kubectl_ok(&["get", "pvc", "data", "-o", &format!("jsonpath={path}")]);
    assert_eq!(pvc("{.status.phase}"), "Bound");
    assert_eq!(pvc("{.spec.volumeName}"), format!("big-{tag}"));
    assert_eq!(pvc("{.status.capacity.storage}"), "1Gi");
    let pv = |name: &str, path: &str| {
        node.kubectl_ok(&["get", "pv", name, "-o", &format!("jsonpath={path}")])
    };
    assert_eq!(pv(&format!("big-{tag}"), "{.status.phase}"), "Bound");
    assert_eq!(pv(&format!("big-{tag}"), "{.spec.claimRef.name}"), "data");
    assert_eq!(pv(&format!("small-{tag}"), "{.status.phase}"), "Available");
    for name in [format!("small-{tag}"), format!("big-{tag}")] {
        node.kubectl(&["delete", "pv", &name, "--wait=false"]);
    }
}
