//! Service-account tokens end to end on one node: a pod gets the `kube-api-access-*`
//! volume (a token bound to it, the cluster CA, its namespace) and the `kubernetes` Service's
//! ClusterIP in `KUBERNETES_SERVICE_HOST`/`PORT`; a real kubectl inside a pod (the static
//! binary on a hostPath, in-cluster config from the environment and the mounted files, no
//! kubeconfig) reads `/api` and is `system:serviceaccount:default:default`, gets Kubernetes'
//! 403 listing pods until its account's Role is bound (RBAC, `kubectl create role/rolebinding`),
//! then lists them; the test also
//! reads the mounted token and CA with `kubectl exec` and calls the API with them through a
//! kubectl that knows nothing else (`auth whoami`): the pod is its account until it is
//! deleted, then 401. Also `kubectl create token` (audience, bound object), pods that opt out of the
//! mount, legacy token Secrets filled by the token controller, `kube-root-ca.crt` in a
//! new namespace, and a rotation of the signing key (the old key's tokens verify while it is
//! given with `--service-account-key-file`). One cluster for all of it.

use std::process::{Command, Output};
use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;
use crate::text;

const MOUNT: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

const PODS: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: sa-pod}
spec:
  nodeName: NODE
  containers:
  - {name: main, image: busybox:1, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: no-token}
spec:
  nodeName: NODE
  automountServiceAccountToken: false
  containers:
  - {name: main, image: busybox:1, command: ["sleep", "3600"]}
---
apiVersion: v1
kind: Pod
metadata: {name: in-pod-client}
spec:
  nodeName: NODE
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "3600"]
    volumeMounts: [{name: kubectl, mountPath: /kubectl, readOnly: true}]
  volumes:
  - {name: kubectl, hostPath: {path: KUBECTL, type: File}}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: reader}
---
apiVersion: v1
kind: Pod
metadata: {name: reader-client}
spec:
  nodeName: NODE
  serviceAccountName: reader
  containers:
  - name: main
    image: busybox:1
    command: ["sleep", "3600"]
    volumeMounts: [{name: kubectl, mountPath: /kubectl, readOnly: true}]
  volumes:
  - {name: kubectl, hostPath: {path: KUBECTL, type: File}}
---
apiVersion: v1
kind: Secret
metadata:
  name: legacy-token
  annotations: {kubernetes.io/service-account.name: default}
type: kubernetes.io/service-account-token
"#;

/// kubectl with nothing but the server's URL, `ca` and `token` (no kubeconfig).
fn as_token(node: &Node, ca: &std::path::Path, token: &str, args: &[&str]) -> Output {
    let empty = node.cluster.write_file("empty-kubeconfig", "");
    Command::new("kubectl")
        .env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(&empty)
        .arg("--server")
        .arg(node.cluster.url())
        .arg("--certificate-authority")
        .arg(ca)
        .arg("--token")
        .arg(token)
        .args(args)
        .output()
        .expect("run kubectl")
}

fn whoami(node: &Node, ca: &std::path::Path, token: &str) -> Output {
    as_token(
        node,
        ca,
        token,
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    )
}

/// The static kubectl of the Kubernetes version skiff serves (the `kubectl` on the PATH is a
/// dispatcher that runs one of these).
pub const KUBECTL_BINARY: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

/// Runs the kubectl mounted at `/kubectl` inside `pod` with in-cluster configuration only.
pub fn in_pod_kubectl(node: &Node, pod: &str, args: &[&str]) -> Output {
    let mut all = vec!["exec", pod, "--", "/kubectl"];
    all.extend_from_slice(args);
    node.kubectl(&all)
}

fn exec(node: &Node, pod: &str, cmd: &[&str]) -> Output {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    node.kubectl(&args)
}

#[test]
fn satoken_pods_talk_to_the_api_as_their_service_account() {
    let node = Node::start();
    node.create(&PODS.replace("KUBECTL", KUBECTL_BINARY));
    for pod in ["sa-pod", "no-token", "in-pod-client", "reader-client"] {
        node.wait_pod(pod, "{.status.phase}", "Running", |p| p == "Running");
    }

    // The admission's volume, mounted read-only, with the token, the CA and the namespace.
    let volume = node.pod_field("sa-pod", "{.spec.volumes[0].name}");
    assert!(volume.starts_with("kube-api-access-"), "{volume}");
    let token = node.kubectl_ok(&["exec", "sa-pod", "--", "cat", &format!("{MOUNT}/token")]);
    let ca = node.kubectl_ok(&["exec", "sa-pod", "--", "cat", &format!("{MOUNT}/ca.crt")]);
    assert!(ca.starts_with("-----BEGIN CERTIFICATE-----"), "{ca}");
    let ns = node.kubectl_ok(&["exec", "sa-pod", "--", "cat", &format!("{MOUNT}/namespace")]);
    assert_eq!(ns, "default");
    let mounts = node.kubectl_ok(&["exec", "sa-pod", "--", "grep", MOUNT, "/proc/mounts"]);
    assert!(
        mounts.contains(" ro,") || mounts.contains(" ro "),
        "{mounts}"
    );
    let ca_path = node.cluster.write_file("pod-ca.crt", &ca);

    // The kubernetes Service's address in the environment.
    let env = node.kubectl_ok(&[
        "exec",
        "sa-pod",
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
    ]);
    let service = node.kubectl_ok(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP}:{.spec.ports[0].port}",
    ]);
    assert_eq!(env.trim(), service, "KUBERNETES_SERVICE_HOST:PORT");

    // A real client inside a pod: in-cluster config, through the Service address, verifying
    // the server's certificate against the mounted CA.
    let api = in_pod_kubectl(&node, "in-pod-client", &["get", "--raw", "/api"]);
    assert!(
        api.status.success() && text(&api).contains("\"kind\":\"APIVersions\""),
        "{}",
        text(&api)
    );
    let me = in_pod_kubectl(
        &node,
        "in-pod-client",
        &[
            "auth",
            "whoami",
            "-o",
            "jsonpath={.status.userInfo.username}",
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&me.stdout),
        "system:serviceaccount:default:default",
        "{}",
        text(&me)
    );

    // The mounted token and CA are enough to talk to the API as the pod's account.
    let me = whoami(&node, &ca_path, &token);
    assert_eq!(text(&me), "system:serviceaccount:default:default");
    // RBAC: an account with no binding may not read; one whose Role is bound lists pods.
    let list = as_token(
        &node,
        &ca_path,
        &token,
        &["get", "configmap", "kube-root-ca.crt", "-o", "name"],
    );
    assert!(
        text(&list).contains(
            "configmaps \"kube-root-ca.crt\" is forbidden: User \"system:serviceaccount:default:default\" \
             cannot get resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        text(&list)
    );
    let denied = in_pod_kubectl(&node, "in-pod-client", &["get", "pods", "-o", "name"]);
    assert!(
        text(&denied).contains(
            "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list \
             resource \"pods\" in API group \"\" in the namespace \"default\""
        ),
        "{}",
        text(&denied)
    );
    node.kubectl_ok(&[
        "create",
        "role",
        "pod-reader",
        "--verb=get,list",
        "--resource=pods",
    ]);
    node.kubectl_ok(&[
        "create",
        "rolebinding",
        "reader-reads-pods",
        "--role=pod-reader",
        "--serviceaccount=default:reader",
    ]);
    let listed = in_pod_kubectl(&node, "reader-client", &["get", "pods", "-o", "name"]);
    assert!(
        listed.status.success() && text(&listed).contains("pod/reader-client"),
        "{}",
        text(&listed)
    );
    let others = in_pod_kubectl(&node, "reader-client", &["get", "secrets"]);
    assert!(
        text(&others).contains("secrets is forbidden"),
        "the Role names pods only: {}",
        text(&others)
    );

    // A pod that opts out has no such volume or files.
    assert_eq!(node.pod_field("no-token", "{.spec.volumes}"), "");
    assert!(!exec(&node, "no-token", &["ls", MOUNT]).status.success());

    // kubectl create token: plain, bound to the pod, and for another audience.
    let plain = node.kubectl_ok(&["create", "token", "default", "--duration", "10m"]);
    assert_eq!(
        text(&whoami(&node, &ca_path, plain.trim())),
        "system:serviceaccount:default:default"
    );
    let bound = node.kubectl_ok(&[
        "create",
        "token",
        "default",
        "--bound-object-kind",
        "Pod",
        "--bound-object-name",
        "sa-pod",
    ]);
    assert!(whoami(&node, &ca_path, bound.trim()).status.success());
    let vault = node.kubectl_ok(&["create", "token", "default", "--audience", "vault"]);
    let refused = whoami(&node, &ca_path, vault.trim());
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("Unauthorized"),
        "{}",
        text(&refused)
    );
    let short = node.kubectl(&["create", "token", "default", "--duration", "1m"]);
    assert!(!short.status.success());
    assert!(
        text(&short).contains("may not specify a duration less than 10 minutes"),
        "{}",
        text(&short)
    );

    // The legacy token Secret is filled by the token controller and authenticates.
    let legacy = poll(Duration::from_secs(30), || {
        let t = node
            .cluster
            .jsonpath("default", "secret", "legacy-token", "{.data.token}");
        (!t.is_empty()).then_some(t)
    })
    .expect("the token controller fills legacy-token");
    let legacy = String::from_utf8(base64_decode(&legacy)).unwrap();
    assert_eq!(
        text(&whoami(&node, &ca_path, &legacy)),
        "system:serviceaccount:default:default"
    );

    // Every namespace gets the CA.
    node.kubectl_ok(&["create", "namespace", "sa-other"]);
    let published = poll(Duration::from_secs(30), || {
        let cm = node.cluster.jsonpath(
            "sa-other",
            "configmap",
            "kube-root-ca.crt",
            "{.data.ca\\.crt}",
        );
        (!cm.is_empty()).then_some(cm)
    });
    assert_eq!(published.as_deref(), Some(ca.as_str()));

    // The pod's token dies with the pod (and so does the token bound to it).
    node.kubectl_ok(&["delete", "pod", "sa-pod", "--grace-period=0", "--force"]);
    let gone = poll(Duration::from_secs(30), || {
        let out = whoami(&node, &ca_path, &token);
        (!out.status.success()).then_some(text(&out))
    })
    .expect("the deleted pod's token is refused");
    assert!(gone.contains("Unauthorized"), "{gone}");
    assert!(!whoami(&node, &ca_path, bound.trim()).status.success());
    assert!(
        whoami(&node, &ca_path, plain.trim()).status.success(),
        "an unbound token still holds"
    );

    // Signing-key rotation: a new key made with openssl signs; the old one, given as a public
    // key with --service-account-key-file, still verifies the tokens it signed.
    let tls = node.cluster.data_dir().join("tls");
    let new_key = tls.join("service-account-2.key");
    let old_pub = tls.join("service-account-1.pub");
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        new_key.to_str().unwrap(),
    ]);
    openssl(&[
        "pkey",
        "-in",
        tls.join("service-account.key").to_str().unwrap(),
        "-pubout",
        "-out",
        old_pub.to_str().unwrap(),
    ]);
    let rotate = |node: &mut Node, keep_old: bool| {
        node.cluster
            .server_args
            .retain(|a| !a.contains("service-account"));
        node.cluster.server_args.extend([
            "--service-account-signing-key-file".to_string(),
            new_key.display().to_string(),
        ]);
        if keep_old {
            node.cluster.server_args.extend([
                "--service-account-key-file".to_string(),
                old_pub.display().to_string(),
            ]);
        }
        node.cluster.restart();
    };
    let mut node = node;
    rotate(&mut node, true);
    assert_eq!(
        text(&whoami(&node, &ca_path, plain.trim())),
        "system:serviceaccount:default:default",
        "a token of the old key after the rotation"
    );
    let fresh = node.kubectl_ok(&["create", "token", "default", "--duration", "10m"]);
    assert_ne!(
        kid(fresh.trim()),
        kid(plain.trim()),
        "signed with the new key"
    );
    assert_eq!(
        text(&whoami(&node, &ca_path, fresh.trim())),
        "system:serviceaccount:default:default"
    );
    // Old key dropped: its tokens are refused, the new key's hold.
    rotate(&mut node, false);
    let refused = whoami(&node, &ca_path, plain.trim());
    assert!(
        text(&refused).contains("Unauthorized"),
        "{}",
        text(&refused)
    );
    assert!(whoami(&node, &ca_path, fresh.trim()).status.success());
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", text(&out));
}

/// The `kid` in a JWT's header.
fn kid(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&header).unwrap();
    v["kid"].as_str().unwrap_or_default().to_string()
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap()
}
