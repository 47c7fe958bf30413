//! StatefulSets and CronJobs driven by kubectl: `rollout status statefulset` through a
//! create and an image update, and `create job --from=cronjob/…`. No node runs the pods
//! here: the test marks them Running and Ready through the status subresource, as a
//! kubelet would.

use std::process::Stdio;
use std::time::Duration;

use crate::kube_common::{poll, Cluster, Guard};

const DB: &str = r#"apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 2
  serviceName: db
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
      - name: db
        image: busybox:1
"#;

/// The live pods of `db`: (name, image, ready).
fn pods(c: &Cluster) -> Vec<(String, String, bool)> {
    let out = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=db",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} \
         {.metadata.deletionTimestamp}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(
            |l| match l.split_whitespace().collect::<Vec<_>>().as_slice() {
                [name, image] => Some((name.to_string(), image.to_string(), false)),
                [name, image, "True"] => Some((name.to_string(), image.to_string(), true)),
                _ => None,
            },
        )
        .collect()
}

fn mark_ready(c: &Cluster) {
    let when = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (name, _, ready) in pods(c) {
        if !ready {
            let patch = format!(
                r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{when}"}}]}}}}"#
            );
            // A rolling update may have deleted it meanwhile.
            let _ = c.kubectl(&[
                "patch",
                "pod",
                &name,
                "--subresource=status",
                "--type=merge",
                "-p",
                &patch,
            ]);
        }
    }
}

/// `kubectl rollout status statefulset/db` while the pods are marked Ready as they come.
fn rollout_status(c: &Cluster) -> String {
    let mut child = Guard(
        c.kubectl_command(&["rollout", "status", "statefulset/db", "--timeout=90s"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let status = poll(Duration::from_secs(90), || {
        mark_ready(c);
        child.0.try_wait().unwrap()
    })
    .expect("kubectl rollout status finishes");
    let mut out = String::new();
    std::io::Read::read_to_string(child.0.stdout.as_mut().unwrap(), &mut out).unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        status.success(),
        "rollout status failed: {out}{err}\n{}",
        c.log()
    );
    // The API defaults `partition: 0`, so kubectl judges it as a partitioned roll-out (as it
    // does against Kubernetes).
    assert!(
        out.contains("partitioned roll out complete: 2 new pods have been updated"),
        "{out}"
    );
    out
}

pub fn statefulset_rollout_and_job_from_cronjob(c: &mut Cluster) {
    let f = c.write_file("db.yaml", DB);
    c.kubectl_says(
        &["apply", "-f", f.to_str().unwrap()],
        "statefulset.apps/db created",
    );
    rollout_status(c);
    let mut names: Vec<String> = pods(c).into_iter().map(|p| p.0).collect();
    names.sort();
    assert_eq!(names, ["db-0", "db-1"]);
    let table = c.kubectl_ok(&["get", "sts", "db"]);
    assert!(table.contains("2/2"), "{table}");

    c.kubectl_says(&["set", "image", "sts/db", "db=busybox:2"], "image updated");
    rollout_status(c);
    let p = pods(c);
    assert!(
        p.len() == 2 && p.iter().all(|(_, image, _)| image == "busybox:2"),
        "{p:?}"
    );
    let revisions = c.jsonpath(
        "default",
        "sts",
        "db",
        "{.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas}",
    );
    let r: Vec<&str> = revisions.split(' ').collect();
    assert_eq!(r[0], r[1], "{revisions}");
    assert_eq!(r[2], "2", "{revisions}");

    c.kubectl_says(
        &[
            "create",
            "cronjob",
            "nightly",
            "--image=busybox",
            "--schedule=0 3 * * *",
        ],
        "cronjob.batch/nightly created",
    );
    c.kubectl_says(
        &["create", "job", "now", "--from=cronjob/nightly"],
        "job.batch/now created",
    );
    let owner = c.jsonpath(
        "default",
        "job",
        "now",
        "{.metadata.ownerReferences[0].kind}/{.metadata.ownerReferences[0].name}",
    );
    assert_eq!(owner, "CronJob/nightly");
    // The CronJob controller counts it as the CronJob's active job.
    let active = poll(Duration::from_secs(30), || {
        let a = c.jsonpath("default", "cronjob", "nightly", "{.status.active[*].name}");
        (a == "now").then_some(a)
    });
    assert!(
        active.is_some(),
        "{}",
        c.kubectl_ok(&["get", "cronjob", "nightly", "-o", "yaml"])
    );
}
