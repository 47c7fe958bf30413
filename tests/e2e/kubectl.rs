//! kubectl against `skiff server`: the same suite on SQLite and on etcd.

#[path = "kubectl/kinds.rs"]
mod kinds;
mod kube_common;
#[path = "kubectl/limits.rs"]
mod limits;
#[path = "kubectl/rbac.rs"]
mod rbac;
#[path = "kubectl/rollout.rs"]
mod rollout;
#[path = "kubectl/stateful.rs"]
mod stateful;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use kinds::{
    create_from_a_list_file, create_job_and_cronjob, get_storage_scheduling_policy_and_csr_tables,
    top_says_metrics_are_not_available_yet,
};
use kube_common::{any_file_contains, poll, Cluster, Datastore, Guard};
use rollout::deployment_rollouts_with_kubectl;
use stateful::statefulset_rollout_and_job_from_cronjob;

const APP: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: shop
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  labels: {app: web}
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: web
        image: busybox:1
        ports: [{containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: shop
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: shop
data: {mode: fast}
---
apiVersion: v1
kind: Secret
metadata:
  name: creds
  namespace: shop
stringData: {user: admin}
"#;

fn apply_app(c: &Cluster) {
    let f = c.write_file("app.yaml", APP);
    let out = c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    for line in [
        "namespace/shop created",
        "deployment.apps/web created",
        "service/web created",
        "configmap/settings created",
        "secret/creds created",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
}

/// The header line of a `kubectl get` table, split into column names.
fn header(out: &str) -> Vec<String> {
    let first = out.lines().next().unwrap_or_default();
    first
        .split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn get_namespaces(c: &mut Cluster) {
    let out = c.kubectl_ok(&["get", "ns"]);
    assert_eq!(header(&out), ["NAME", "STATUS", "AGE"]);
    for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        assert!(
            out.lines()
                .any(|l| l.starts_with(ns) && l.contains("Active")),
            "{ns} missing in {out}"
        );
    }
    let sa = c.kubectl_ok(&[
        "-n",
        "kube-system",
        "get",
        "serviceaccount",
        "default",
        "-o",
        "name",
    ]);
    assert_eq!(sa.trim(), "serviceaccount/default");
}

fn apply_and_reapply(c: &mut Cluster) {
    apply_app(c);
    let image = c.jsonpath(
        "shop",
        "deploy",
        "web",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "busybox:1");
    // A changed file is applied as a strategic merge patch.
    let f = c.write_file(
        "app.yaml",
        &APP.replace("busybox:1", "busybox:2")
            .replace("mode: fast", "mode: slow"),
    );
    let out = c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    assert!(out.contains("deployment.apps/web configured"), "{out}");
    assert!(out.contains("service/web unchanged"), "{out}");
    let image = c.jsonpath(
        "shop",
        "deploy",
        "web",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "busybox:2");
    let generation = c.jsonpath("shop", "deploy", "web", "{.metadata.generation}");
    assert_eq!(generation, "2");
    assert_eq!(c.jsonpath("shop", "cm", "settings", "{.data.mode}"), "slow");

    // Server-side apply of the same file.
    let f = c.write_file("app.yaml", &APP.replace("busybox:1", "busybox:3"));
    let out = c.kubectl_ok(&[
        "apply",
        "--server-side",
        "--force-conflicts",
        "-f",
        f.to_str().unwrap(),
    ]);
    assert!(
        out.contains("deployment.apps/web serverside-applied"),
        "{out}"
    );
    let image = c.jsonpath(
        "shop",
        "deploy",
        "web",
        "{.spec.template.spec.containers[0].image}",
    );
    assert_eq!(image, "busybox:3");
}

fn get_tables(c: &mut Cluster) {
    apply_app(c);
    let out = c.kubectl_ok(&["-n", "shop", "get", "deploy"]);
    assert_eq!(
        header(&out),
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    );
    assert!(out.lines().nth(1).unwrap().starts_with("web "), "{out}");
    assert!(out.contains("0/2"), "{out}");
    let wide = c.kubectl_ok(&["-n", "shop", "get", "deploy", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "READY",
            "UP-TO-DATE",
            "AVAILABLE",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    assert!(
        wide.contains("busybox:1") && wide.contains("app=web"),
        "{wide}"
    );
    let svc = c.kubectl_ok(&["-n", "shop", "get", "svc"]);
    assert_eq!(
        header(&svc),
        [
            "NAME",
            "TYPE",
            "CLUSTER-IP",
            "EXTERNAL-IP",
            "PORT(S)",
            "AGE"
        ]
    );
    assert!(svc.contains("80/TCP"), "{svc}");
    let secrets = c.kubectl_ok(&["-n", "shop", "get", "secrets"]);
    assert_eq!(header(&secrets), ["NAME", "TYPE", "DATA", "AGE"]);
    assert!(
        secrets
            .lines()
            .any(|l| l.starts_with("creds") && l.contains("Opaque") && l.contains(" 1 ")),
        "{secrets}"
    );
    let cms = c.kubectl_ok(&["-n", "shop", "get", "cm", "settings"]);
    assert_eq!(header(&cms), ["NAME", "DATA", "AGE"]);
    // `kubectl get cs` (deprecated, still served): every part of the control plane healthy.
    let cs = c.kubectl(&["get", "componentstatuses"]);
    let (out, err) = (
        String::from_utf8_lossy(&cs.stdout),
        String::from_utf8_lossy(&cs.stderr),
    );
    assert!(
        cs.status.success() && err.contains("Warning: v1 ComponentStatus is deprecated in v1.19+"),
        "{err}"
    );
    assert_eq!(header(&out), ["NAME", "STATUS", "MESSAGE", "ERROR"]);
    for name in ["scheduler", "controller-manager", "etcd-0"] {
        let row: Vec<&str> = out
            .lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .split_whitespace()
            .collect();
        assert_eq!(row, [name, "Healthy", "ok"], "{out}");
    }
    // The Deployment's pods, made by its ReplicaSet (Pending: nothing runs them here).
    let pods = poll(Duration::from_secs(30), || {
        let out = c.kubectl_ok(&["-n", "shop", "get", "pods"]);
        (out.lines().filter(|l| l.starts_with("web-")).count() == 2).then_some(out)
    })
    .expect("the Deployment's 2 pods are listed");
    assert_eq!(
        header(&pods),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    );
    let several = c.kubectl_ok(&["-n", "shop", "get", "pods,deploy,svc,secrets,nodes"]);
    assert!(
        several.contains("deployment.apps/web") && several.contains("service/web"),
        "{several}"
    );
    assert!(several.contains("secret/creds"), "{several}");
    let yaml = c.kubectl_ok(&["-n", "shop", "get", "deploy", "web", "-o", "yaml"]);
    assert!(
        yaml.contains("kind: Deployment")
            && yaml.contains("resourceVersion:")
            && yaml.contains("uid:"),
        "{yaml}"
    );
}

fn watch_receives_events(c: &mut Cluster) {
    c.kubectl_ok(&["create", "namespace", "watched"]);
    let child = c
        .kubectl_command(&[
            "-n",
            "watched",
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut guard = Guard(child);
    let stdout = guard.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    // The watch is established once the (empty) initial list printed nothing; keep creating
    // until the event shows up so the test does not depend on timing.
    let mut n = 0;
    let seen = poll(Duration::from_secs(20), || {
        n += 1;
        c.kubectl_ok(&[
            "-n",
            "watched",
            "create",
            "configmap",
            &format!("seen-{n}"),
            "--from-literal=a=b",
        ]);
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l.contains("ADDED") && l.contains("seen-"))
    });
    assert!(seen.is_some(), "no watch event received");
}

fn edit_commands(c: &mut Cluster) {
    apply_app(c);
    c.kubectl_ok(&["-n", "shop", "label", "deploy", "web", "tier=front"]);
    c.kubectl_ok(&["-n", "shop", "annotate", "deploy", "web", "owner=team-a"]);
    let by_label = |selector: &str| {
        c.kubectl_ok(&["-n", "shop", "get", "deploy", "-l", selector, "-o", "name"])
    };
    assert_eq!(by_label("tier=front").trim(), "deployment.apps/web");
    assert!(by_label("tier!=front").trim().is_empty());

    let edit = c
        .kubectl_command(&["-n", "shop", "edit", "deploy", "web"])
        .env("KUBE_EDITOR", "sed -i s/replicas:\\ 2/replicas:\\ 3/")
        .output()
        .unwrap();
    assert!(
        edit.status.success(),
        "{}",
        String::from_utf8_lossy(&edit.stderr)
    );
    assert_eq!(c.jsonpath("shop", "deploy", "web", "{.spec.replicas}"), "3");

    c.kubectl_says(
        &["-n", "shop", "scale", "deploy", "web", "--replicas=5"],
        "scaled",
    );
    assert_eq!(c.jsonpath("shop", "deploy", "web", "{.spec.replicas}"), "5");

    let described = c.kubectl_ok(&["-n", "shop", "describe", "deploy", "web"]);
    let words = described.split_whitespace().collect::<Vec<_>>().join(" ");
    for want in [
        "Name: web",
        "Namespace: shop",
        "tier=front",
        "owner: team-a",
        "5 desired",
        "StrategyType: RollingUpdate",
        "busybox:1",
    ] {
        assert!(words.contains(want), "missing {want:?} in {described}");
    }
}

fn secrets_are_encrypted_at_rest(c: &mut Cluster) {
    const VALUE: &str = "correct-horse-battery-staple";
    let literal = format!("--from-literal=password={VALUE}");
    c.kubectl_says(
        &["create", "secret", "generic", "db", &literal],
        "secret/db created",
    );
    let b64 = c.jsonpath("default", "secret", "db", "{.data.password}");
    assert_eq!(b64, "Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5LXN0YXBsZQ==");
    let dir = c.datastore_files();
    assert!(
        !any_file_contains(&dir, VALUE.as_bytes()),
        "plaintext secret in {}",
        dir.display()
    );
    assert!(
        !any_file_contains(&dir, b64.as_bytes()),
        "base64 secret in {}",
        dir.display()
    );
}

fn autoscale_and_delete(c: &mut Cluster) {
    apply_app(c);
    c.kubectl_says(
        &[
            "-n",
            "shop",
            "autoscale",
            "deploy",
            "web",
            "--min=1",
            "--max=4",
            "--cpu-percent=60",
        ],
        "horizontalpodautoscaler.autoscaling/web autoscaled",
    );
    let hpa = c.kubectl_ok(&["-n", "shop", "get", "hpa"]);
    assert_eq!(
        header(&hpa),
        [
            "NAME",
            "REFERENCE",
            "TARGETS",
            "MINPODS",
            "MAXPODS",
            "REPLICAS",
            "AGE"
        ]
    );
    assert!(
        hpa.contains("Deployment/web") && hpa.contains("60%"),
        "{hpa}"
    );
    let v2 = c.jsonpath(
        "shop",
        "hpa.v2.autoscaling",
        "web",
        "{.spec.metrics[0].resource.target.averageUtilization}",
    );
    assert_eq!(v2, "60");

    c.kubectl_says(
        &[
            "-n",
            "shop",
            "delete",
            "deploy",
            "web",
            "--cascade=background",
        ],
        "deployment.apps \"web\" deleted",
    );
    let gone = c.kubectl_stderr(&["-n", "shop", "get", "deploy", "web"]);
    assert!(gone.contains("NotFound"), "{gone}");
    // Foreground deletion waits for the garbage collector; kubectl waits for the object to go.
    c.kubectl_ok(&[
        "-n",
        "shop",
        "create",
        "deployment",
        "api",
        "--image=busybox",
    ]);
    c.kubectl_says(
        &[
            "-n",
            "shop",
            "delete",
            "deploy",
            "api",
            "--cascade=foreground",
            "--timeout=30s",
        ],
        "deployment.apps \"api\" deleted",
    );
    // Deleting the namespace empties it, then removes it.
    c.kubectl_says(
        &["delete", "namespace", "shop", "--timeout=30s"],
        "namespace \"shop\" deleted",
    );
    let gone = c.kubectl_stderr(&["get", "namespace", "shop"]);
    assert!(gone.contains("NotFound"), "{gone}");
    let left = c.kubectl_ok(&[
        "get",
        "configmaps,secrets,services",
        "-A",
        "-o",
        "name",
        "--field-selector=metadata.namespace=shop",
    ]);
    assert!(left.trim().is_empty(), "left behind: {left}");
}

fn explain(c: &mut Cluster) {
    let out = c.kubectl_ok(&["explain", "deployment.spec"]);
    assert!(
        out.contains("KIND:       Deployment") && out.contains("FIELD: spec <DeploymentSpec>"),
        "{out}"
    );
    assert!(
        out.contains("replicas") && out.contains("template"),
        "{out}"
    );
}

/// Who may call (401 without credentials) and what they may do (RBAC for a new user), on
/// one cluster.
fn authentication_and_rbac(c: &mut Cluster) {
    rejects_unauthenticated(c);
    rbac::people_get_rbac_through_certificates(c);
}

fn rejects_unauthenticated(c: &mut Cluster) {
    let url = format!("{}/api/v1/namespaces", c.url());
    let anon = std::process::Command::new("curl")
        .args(["-sk", "-w", "\n%{http_code}", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&anon.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "401", "{text}");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(
        (status["kind"].as_str(), status["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );

    let server = c.url();
    let bad = c.kubectl(&[
        "--kubeconfig=/dev/null",
        "--server",
        &server,
        "--insecure-skip-tls-verify",
        "--token",
        "wrong",
        "get",
        "ns",
    ]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("You must be logged in to the server"),
        "{bad:?}"
    );
    let token = std::fs::read_to_string(c.data_dir().join("token")).unwrap();
    let ok = c.kubectl(&[
        "--kubeconfig=/dev/null",
        "--server",
        &server,
        "--insecure-skip-tls-verify",
        "--token",
        token.trim(),
        "get",
        "ns",
        "default",
        "-o",
        "name",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "namespace/default",
        "{ok:?}"
    );
}

fn data_survives_restart(c: &mut Cluster) {
    c.kubectl_ok(&["create", "configmap", "keep", "--from-literal=k=v"]);
    c.kubectl_ok(&["create", "secret", "generic", "keep", "--from-literal=k=v"]);
    c.restart();
    assert_eq!(c.jsonpath("default", "configmap", "keep", "{.data.k}"), "v");
    assert_eq!(c.jsonpath("default", "secret", "keep", "{.data.k}"), "dg==");
}

on_both_datastores!(
    get_namespaces,
    deployment_rollouts_with_kubectl,
    apply_and_reapply,
    get_tables,
    watch_receives_events,
    edit_commands,
    secrets_are_encrypted_at_rest,
    autoscale_and_delete,
    explain,
    authentication_and_rbac,
    data_survives_restart,
    create_job_and_cronjob,
    get_storage_scheduling_policy_and_csr_tables,
    top_says_metrics_are_not_available_yet,
    create_from_a_list_file,
    statefulset_rollout_and_job_from_cronjob,
);

#[test]
fn second_server_on_same_sqlite_data_fails_clearly() {
    let c = Cluster::start(Datastore::Sqlite);
    let out = c.server_command(kube_common::free_port()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
}

/// Kubernetes' own token-file example leaves the uid column empty; kubectl authenticates with it.
#[test]
fn token_file_with_empty_uid_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.csv");
    std::fs::write(&tokens, "admin-token,admin,,\"system:masters\"\n").unwrap();
    let c = Cluster::start_with(
        Datastore::Sqlite,
        &["--token-file", tokens.to_str().unwrap()],
    );
    let server = c.url();
    let out = c.kubectl_ok(&[
        "--kubeconfig=/dev/null",
        "--server",
        &server,
        "--insecure-skip-tls-verify",
        "--token",
        "admin-token",
        "get",
        "ns",
        "default",
        "-o",
        "name",
    ]);
    assert_eq!(out.trim(), "namespace/default");
}

/// `kubectl delete namespace --all` leaves the namespaces a cluster cannot do without, and what
/// is in them, as Kubernetes' NamespaceLifecycle admission does.
#[test]
fn delete_all_namespaces_keeps_the_system_ones() {
    let c = Cluster::start(Datastore::Sqlite);
    c.kubectl_ok(&["create", "configmap", "precious", "--from-literal=k=v"]);
    c.kubectl_ok(&["create", "namespace", "scratch"]);
    let out = c.kubectl(&["delete", "namespace", "--all", "--timeout=60s"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for ns in ["default", "kube-system", "kube-public"] {
        let refused =
            format!("namespaces \"{ns}\" is forbidden: this namespace may not be deleted");
        assert!(stderr.contains(&refused), "missing {refused:?} in {stderr}");
    }
    assert!(stdout.contains("namespace \"scratch\" deleted"), "{stdout}");
    let scratch_gone = poll(Duration::from_secs(30), || {
        c.kubectl_stderr(&["get", "namespace", "scratch"])
            .contains("NotFound")
            .then_some(())
    });
    assert!(scratch_gone.is_some(), "namespace scratch was not removed");
    let left = c.kubectl_ok(&["get", "namespaces", "-o", "name"]);
    for ns in ["default", "kube-system", "kube-public"] {
        assert!(left.contains(&format!("namespace/{ns}\n")), "{left}");
    }
    assert_eq!(
        c.jsonpath("default", "configmap", "precious", "{.data.k}"),
        "v"
    );
    // kube-node-lease may go, as in Kubernetes, and the server creates it again.
    let back = poll(Duration::from_secs(60), || {
        let out = c.kubectl(&[
            "get",
            "namespace",
            "kube-node-lease",
            "-o",
            "jsonpath={.status.phase}",
        ]);
        (String::from_utf8_lossy(&out.stdout) == "Active").then_some(())
    });
    assert!(back.is_some(), "kube-node-lease was not created again");
}

/// A namespace being deleted takes no new objects; kubectl shows Kubernetes' refusal.
#[test]
fn terminating_namespace_refuses_creates() {
    let c = Cluster::start(Datastore::Sqlite);
    c.kubectl_ok(&["create", "namespace", "doomed"]);
    // A finalizer keeps the namespace in Terminating while this test looks at it.
    let held = c.write_file(
        "held.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: held, namespace: doomed, finalizers: [example.com/hold]}\n",
    );
    c.kubectl_ok(&["create", "-f", held.to_str().unwrap()]);
    c.kubectl_ok(&["delete", "namespace", "doomed", "--wait=false"]);
    let err = c.kubectl_stderr(&["-n", "doomed", "create", "configmap", "late"]);
    assert!(
        err.contains("configmaps \"late\" is forbidden: unable to create new content in namespace doomed because it is being terminated"),
        "{err}"
    );
    c.kubectl_ok(&[
        "-n",
        "doomed",
        "patch",
        "configmap",
        "held",
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ]);
    let gone = poll(Duration::from_secs(30), || {
        c.kubectl_stderr(&["get", "namespace", "doomed"])
            .contains("NotFound")
            .then_some(())
    });
    assert!(gone.is_some(), "the namespace was not removed once emptied");
}

/// `kubectl debug --copy-to --replace` deletes the original pod with a protobuf
/// `DeleteOptions` body (it got 400 "expected value at line 1 column 1").
#[test]
fn debug_copy_to_replace_deletes_with_protobuf_options() {
    let c = Cluster::start(Datastore::Sqlite);
    c.kubectl_ok(&[
        "run",
        "web",
        "--image=busybox",
        "--restart=Never",
        "--",
        "sleep",
        "1d",
    ]);
    let out = c.kubectl_ok(&[
        "debug",
        "web",
        "--copy-to=web-debug",
        "--replace",
        "--image=busybox",
        "--container=debugger",
        "--",
        "true",
    ]);
    assert!(!out.contains("error"), "{out}");
    let gone = poll(Duration::from_secs(30), || {
        c.kubectl_stderr(&["get", "pod", "web"])
            .contains("NotFound")
            .then_some(())
    });
    assert!(gone.is_some(), "the original pod was not deleted");
    let containers = c.jsonpath("default", "pod", "web-debug", "{.spec.containers[*].name}");
    assert_eq!(containers, "web debugger");
}

/// Moving from `kubectl apply` to `kubectl apply --server-side`: manager `kubectl` takes over
/// the fields client-side apply set, without `--force-conflicts` (it got a 409 conflict with
/// `kubectl-client-side-apply`).
#[test]
fn server_side_apply_takes_over_from_client_side_apply() {
    let c = Cluster::start(Datastore::Sqlite);
    let pod = |image: &str, tier: &str| {
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  labels: {{app: web, tier: {tier}}}\n\
             spec:\n  containers:\n  - name: web\n    image: {image}\n"
        )
    };
    let first = c.write_file("pod.yaml", &pod("busybox:1", "front"));
    c.kubectl_says(&["apply", "-f", first.to_str().unwrap()], "pod/web created");

    let changed = c.write_file("pod-changed.yaml", &pod("busybox:2", "back"));
    let diff = c.kubectl(&["diff", "--server-side", "-f", changed.to_str().unwrap()]);
    // kubectl diff exits 1 when it found differences, above 1 on errors.
    assert_eq!(
        diff.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&diff.stderr)
    );
    let shown = String::from_utf8_lossy(&diff.stdout);
    assert!(shown.contains("+  - image: busybox:2"), "{shown}");

    c.kubectl_says(
        &["apply", "--server-side", "-f", changed.to_str().unwrap()],
        "pod/web serverside-applied",
    );
    assert_eq!(
        c.jsonpath(
            "default",
            "pod",
            "web",
            "{.spec.containers[0].image} {.metadata.labels.tier}"
        ),
        "busybox:2 back"
    );
    let managers = c.jsonpath(
        "default",
        "pod",
        "web",
        "{.metadata.managedFields[*].manager}",
    );
    assert!(managers.contains("kubectl"), "{managers}");
    // Client-side apply still works afterwards: the annotation followed the server-side apply.
    let again = c.write_file("pod-again.yaml", &pod("busybox:3", "back"));
    c.kubectl_says(
        &["apply", "-f", again.to_str().unwrap()],
        "pod/web configured",
    );
    assert_eq!(
        c.jsonpath("default", "pod", "web", "{.spec.containers[0].image}"),
        "busybox:3"
    );
}
