//! `imagePullSecrets`: a pod pulls from a registry that wants a password with the
//! credentials of its `kubernetes.io/dockerconfigjson` Secret; without them the pull fails
//! and the pod says so (`ErrImagePull`/`ImagePullBackOff`).

use crate::node::{Node, BUSYBOX};
use crate::registry_support::real::{Auth, RealRegistry};
use crate::text;

const WITH: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: with-secret}
spec:
  nodeName: NODE
  restartPolicy: Never
  imagePullSecrets: [{name: regcred}]
  containers:
  - {name: main, image: IMAGE, command: ["echo", "pulled with a secret"]}
"#;

const WITHOUT: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: without-secret}
spec:
  nodeName: NODE
  restartPolicy: Never
  containers:
  - {name: main, image: IMAGE, command: ["echo", "pulled anonymously"]}
"#;

#[test]
fn image_pull_secrets_authenticate_pulls() {
    let registry = RealRegistry::start(Auth::Htpasswd(vec![("carol".into(), "pa55".into())]));
    let node = Node::start();
    let image = format!("{}/private/busybox:1", registry.addr);
    let ok = |args: &[&str]| {
        let out = node.docker(args);
        assert!(out.status.success(), "docker {args:?}: {}", text(&out));
    };
    ok(&["login", &registry.addr, "-u", "carol", "-p", "pa55"]);
    ok(&["tag", BUSYBOX, &image]);
    ok(&["push", &image]);
    ok(&["rmi", &image]);
    ok(&["logout", &registry.addr]);

    // Without credentials the registry refuses the pull; the pod says why.
    node.create(&WITHOUT.replace("IMAGE", &image));
    node.wait_pod(
        "without-secret",
        "{.status.containerStatuses[0].state.waiting.reason}",
        "ErrImagePull or ImagePullBackOff",
        |r| r == "ErrImagePull" || r == "ImagePullBackOff",
    );
    let message = node.pod_field(
        "without-secret",
        "{.status.containerStatuses[0].state.waiting.message}",
    );
    assert!(message.contains(&image), "{message}");

    node.kubectl_ok(&[
        "create",
        "secret",
        "docker-registry",
        "regcred",
        &format!("--docker-server={}", registry.addr),
        "--docker-username=carol",
        "--docker-password=pa55",
    ]);
    node.create(&WITH.replace("IMAGE", &image));
    node.wait_pod("with-secret", "{.status.phase}", "Succeeded", |p| {
        p == "Succeeded"
    });
    let logs = text(&node.kubectl(&["logs", "with-secret"]));
    assert!(logs.contains("pulled with a secret"), "{logs}");
}
