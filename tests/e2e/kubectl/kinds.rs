//! kubectl against the kinds the workload, storage and scheduling issues build on: what
//! `kubectl create`, `kubectl get` (the columns Kubernetes prints), `kubectl certificate` and
//! `kubectl top` show.

use super::{header, Cluster};

const STORAGE: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: local-path
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: rancher.io/local-path
volumeBindingMode: WaitForFirstConsumer
---
apiVersion: v1
kind: PersistentVolume
metadata: {name: pv1}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteOnce]
  hostPath: {path: /tmp/skiff-pv1}
  storageClassName: local-path
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: data}
spec:
  accessModes: [ReadWriteOnce]
  resources: {requests: {storage: 1Gi}}
"#;

/// The data row of `name` in a `kubectl get` table, split into cells.
fn row(out: &str, name: &str) -> Vec<String> {
    let line = out
        .lines()
        .find(|l| l.split_whitespace().next() == Some(name))
        .unwrap_or_else(|| panic!("no row {name} in {out}"));
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

pub fn create_job_and_cronjob(c: &mut Cluster) {
    c.kubectl_says(
        &["create", "job", "pi", "--image=busybox", "--", "echo", "hi"],
        "job.batch/pi created",
    );
    let jobs = c.kubectl_ok(&["get", "jobs"]);
    assert_eq!(
        header(&jobs),
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    );
    assert_eq!(&row(&jobs, "pi")[..3], ["pi", "Running", "0/1"]);
    let wide = c.kubectl_ok(&["get", "job", "pi", "-o", "wide"]);
    assert_eq!(
        header(&wide),
        [
            "NAME",
            "STATUS",
            "COMPLETIONS",
            "DURATION",
            "AGE",
            "CONTAINERS",
            "IMAGES",
            "SELECTOR"
        ]
    );
    let uid = c.jsonpath("default", "job", "pi", "{.metadata.uid}");
    assert!(
        wide.contains(&format!("batch.kubernetes.io/controller-uid={uid}")),
        "{wide}"
    );
    let restart = c.jsonpath(
        "default",
        "job",
        "pi",
        "{.spec.template.spec.restartPolicy} {.spec.backoffLimit} {.spec.completions}",
    );
    assert_eq!(restart, "Never 6 1");

    c.kubectl_says(
        &[
            "create",
            "cronjob",
            "hello",
            "--image=busybox",
            // Once a year: the CronJob controller starts no job while the test looks.
            "--schedule=0 0 1 1 *",
        ],
        "cronjob.batch/hello created",
    );
    let cronjobs = c.kubectl_ok(&["get", "cj"]);
    assert_eq!(
        header(&cronjobs),
        [
            "NAME",
            "SCHEDULE",
            "TIMEZONE",
            "SUSPEND",
            "ACTIVE",
            "LAST SCHEDULE",
            "AGE"
        ]
    );
    assert_eq!(
        &row(&cronjobs, "hello")[..6],
        ["hello", "0 0 1 1 *", "<none>", "False", "0", "<none>"]
    );
    // A bad schedule is refused with Kubernetes' message.
    let bad = c.kubectl(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=* * *",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("spec.schedule: Invalid value: \"* * *\": expected exactly 5 fields, found 3"),
        "{err}"
    );
    // Five fields the cron parser refuses are refused too (they used to be stored and never
    // run); `@every` is accepted as Kubernetes accepts it.
    let err = c.kubectl_stderr(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(
        err.contains("spec.schedule: Invalid value: \"61 * * * *\""),
        "{err}"
    );
    c.kubectl_says(
        &[
            "create",
            "cronjob",
            "every",
            "--image=busybox",
            "--schedule=@every 2h",
        ],
        "cronjob.batch/every created",
    );
    indexed_job(c);
}

const INDEXED: &str = r#"apiVersion: batch/v1
kind: Job
metadata: {name: idx}
spec:
  completionMode: Indexed
  completions: 3
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: c, image: busybox, command: [sh, -c, "echo $JOB_COMPLETION_INDEX"]}]
"#;

/// An Indexed Job as `kubectl` shows it: one pod per index (the lowest first, `parallelism`
/// at a time), each with its index and hostname.
fn indexed_job(c: &mut Cluster) {
    let f = c.write_file("indexed.yaml", INDEXED);
    c.kubectl_says(
        &["apply", "-f", f.to_str().unwrap()],
        "job.batch/idx created",
    );
    let pods = |c: &Cluster| {
        c.kubectl_ok(&[
            "get", "pods", "-l", "batch.kubernetes.io/job-name=idx", "-o",
            "jsonpath={range .items[*]}{.metadata.labels.batch\\.kubernetes\\.io/job-completion-index}={.spec.hostname} {end}",
        ])
    };
    let seen = super::poll(std::time::Duration::from_secs(30), || {
        let out = pods(c);
        let mut v: Vec<String> = out.split_whitespace().map(String::from).collect();
        v.sort();
        (v.len() == 2).then_some(v)
    })
    .unwrap_or_else(|| panic!("two indexed pods never appeared: {}", pods(c)));
    assert_eq!(seen, ["0=idx-0", "1=idx-1"]);
    let mode = c.jsonpath(
        "default",
        "job",
        "idx",
        "{.spec.completionMode} {.status.completedIndexes}",
    );
    assert_eq!(mode.trim(), "Indexed");
}

pub fn get_storage_scheduling_policy_and_csr_tables(c: &mut Cluster) {
    let f = c.write_file("storage.yaml", STORAGE);
    c.kubectl_ok(&["apply", "-f", f.to_str().unwrap()]);
    c.kubectl_says(
        &[
            "create",
            "pdb",
            "web",
            "--selector=app=web",
            "--min-available=1",
        ],
        "poddisruptionbudget.policy/web created",
    );
    let key = c.dir.path().join("jane.key");
    let csr = c.dir.path().join("jane.csr");
    let openssl = std::process::Command::new("openssl")
        .args([
            "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=jane",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&csr)
        .output()
        .expect("run openssl");
    assert!(openssl.status.success(), "{openssl:?}");
    let pem = std::fs::read(&csr).unwrap();
    let request: String = {
        use std::io::Write;
        let mut child = std::process::Command::new("base64")
            .arg("-w0")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&pem).unwrap();
        String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
    };
    let f = c.write_file(
        "csr.yaml",
        &format!(
            "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata: {{name: jane}}\n\
             spec:\n  request: {request}\n  signerName: kubernetes.io/kube-apiserver-client\n  \
             expirationSeconds: 86400\n  usages: [client auth]\n"
        ),
    );
    c.kubectl_ok(&["create", "-f", f.to_str().unwrap()]);

    let tables: &[(&str, &[&str], &str, &[&str])] = &[
        (
            "pdb",
            &[
                "NAME",
                "MIN AVAILABLE",
                "MAX UNAVAILABLE",
                "ALLOWED DISRUPTIONS",
                "AGE",
            ],
            "web",
            &["web", "1", "N/A", "0"],
        ),
        (
            "pc",
            &["NAME", "VALUE", "GLOBAL-DEFAULT", "AGE", "PREEMPTIONPOLICY"],
            "system-node-critical",
            &["system-node-critical", "2000001000", "false"],
        ),
        (
            "sc",
            &[
                "NAME",
                "PROVISIONER",
                "RECLAIMPOLICY",
                "VOLUMEBINDINGMODE",
                "ALLOWVOLUMEEXPANSION",
                "AGE",
            ],
            "local-path",
            &[
                "local-path (default)",
                "rancher.io/local-path",
                "Delete",
                "WaitForFirstConsumer",
                "false",
            ],
        ),
        (
            "pv",
            &[
                "NAME",
                "CAPACITY",
                "ACCESS MODES",
                "RECLAIM POLICY",
                "STATUS",
                "CLAIM",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "REASON",
                "AGE",
            ],
            "pv1",
            &[
                "pv1",
                "1Gi",
                "RWO",
                "Retain",
                "Available",
                "local-path",
                "<unset>",
            ],
        ),
        (
            "pvc",
            &[
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE",
            ],
            "data",
            &["data", "Pending", "<unset>"],
        ),
        (
            "csr",
            &[
                "NAME",
                "AGE",
                "SIGNERNAME",
                "REQUESTOR",
                "REQUESTEDDURATION",
                "CONDITION",
            ],
            "jane",
            &[],
        ),
    ];
    // The volume turns Available once the binder has seen it; the claim of the
    // WaitForFirstConsumer class stays Pending (no pod uses it).
    for (resource, columns, name, cells) in tables {
        let mut out = String::new();
        let settled = crate::poll(std::time::Duration::from_secs(20), || {
            out = c.kubectl_ok(&["get", resource]);
            let r = row(&out, name);
            (header(&out) == *columns && r.len() >= cells.len() && &r[..cells.len()] == *cells)
                .then_some(())
        });
        assert!(settled.is_some(), "{resource}: {out}");
    }
    let csr_row = row(&c.kubectl_ok(&["get", "csr"]), "jane");
    assert_eq!(
        &csr_row[2..],
        [
            "kubernetes.io/kube-apiserver-client",
            "admin",
            "24h",
            "Pending"
        ]
    );
    c.kubectl_says(
        &["certificate", "approve", "jane"],
        "certificatesigningrequest.certificates.k8s.io/jane approved",
    );
    // The cluster's signer issues the approved certificate, as kube-controller-manager does.
    let issued = crate::kube_common::poll(std::time::Duration::from_secs(30), || {
        let csr_row = row(&c.kubectl_ok(&["get", "csr", "jane"]), "jane");
        (csr_row.last().map(String::as_str) == Some("Approved,Issued")).then_some(())
    });
    assert!(issued.is_some(), "jane's certificate was never issued");
    let cert = c.jsonpath("default", "csr", "jane", "{.status.certificate}");
    assert!(!cert.is_empty());
    // Several kinds in one call, as users list them.
    let all = c.kubectl_ok(&["get", "pdb,pc,sc,pv,pvc,csr", "-o", "name"]);
    for want in [
        "poddisruptionbudget.policy/web",
        "priorityclass.scheduling.k8s.io/system-cluster-critical",
        "storageclass.storage.k8s.io/local-path",
        "persistentvolume/pv1",
        "persistentvolumeclaim/data",
        "certificatesigningrequest.certificates.k8s.io/jane",
    ] {
        assert!(all.contains(want), "missing {want} in {all}");
    }
    let gone = c.kubectl(&["delete", "pc", "system-node-critical"]);
    assert!(
        String::from_utf8_lossy(&gone.stderr)
            .contains("this is a system priority class and cannot be deleted"),
        "{gone:?}"
    );
}

pub fn top_says_metrics_are_not_available_yet(c: &mut Cluster) {
    let out = c.kubectl(&["top", "node"]);
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: metrics not available yet"
    );
}

/// `kind: List` files are validated against `/openapi/v2` (kubectl asks for it as
/// protobuf): a good one is created, an unknown field is refused before anything is sent.
pub fn create_from_a_list_file(c: &mut Cluster) {
    let list = r#"apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: ConfigMap
  metadata: {name: a}
  data: {k: v}
- apiVersion: batch/v1
  kind: Job
  metadata: {name: once}
  spec:
    template:
      spec:
        restartPolicy: Never
        containers: [{name: c, image: busybox}]
"#;
    let f = c.write_file("list.yaml", list);
    let out = c.kubectl_ok(&["create", "-f", f.to_str().unwrap()]);
    assert!(
        out.contains("configmap/a created") && out.contains("job.batch/once created"),
        "{out}"
    );
    let f = c.write_file(
        "bad-list.yaml",
        &list
            .replace("data: {k: v}", "datta: {k: v}")
            .replace("name: a", "name: b"),
    );
    let bad = c.kubectl(&["create", "-f", f.to_str().unwrap()]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains(r#"unknown field "datta" in io.k8s.api.core.v1.ConfigMap"#),
        "{err}"
    );
    let gone = c.kubectl(&["get", "configmap", "b"]);
    assert!(!gone.status.success(), "nothing was created");
}
