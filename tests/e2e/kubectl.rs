//! kubectl against `skiff server`: the same suite on SQLite and on etcd.

#[path = "kubectl/kinds.rs"]
mod kinds;
mod kube_common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Duration;

use kinds::{
    create_from_a_list_file, create_job_and_cronjob, get_storage_scheduling_policy_and_csr_tables,
    top_says_metrics_are_not_available_yet,
};
use kube_common::{any_file_contains, poll, Cluster, Datastore, Guard};

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
    let pods = c.kubectl_stderr(&["-n", "shop", "get", "pods"]);
    assert!(
        pods.contains("No resources found in shop namespace."),
        "{pods}"
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
    apply_and_reapply,
    get_tables,
    watch_receives_events,
    edit_commands,
    secrets_are_encrypted_at_rest,
    autoscale_and_delete,
    explain,
    rejects_unauthenticated,
    data_survives_restart,
    create_job_and_cronjob,
    get_storage_scheduling_policy_and_csr_tables,
    top_says_metrics_are_not_available_yet,
    create_from_a_list_file,
);

#[test]
fn second_server_on_same_sqlite_data_fails_clearly() {
    let c = Cluster::start(Datastore::Sqlite);
    let out = c.server_command(kube_common::free_port()).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("locked"), "{err}");
}
