//! Deployments driven by kubectl the way users drive them: create, scale, set image, rollout
//! status / history / undo / pause / resume / restart. No node runs the pods here: the test
//! marks them Ready through the pods' status subresource, as a kubelet would.

use std::process::Stdio;
use std::time::Duration;

use crate::kube_common::{poll, Cluster, Guard};

/// The pods of the `web` Deployment (not terminating): (name, image, ready).
fn pods(c: &Cluster) -> Vec<(String, String, bool)> {
    let out = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.containers[0].image} \
         {.metadata.deletionTimestamp}{.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // A terminating pod has a third field starting with its deletion time.
            match f.as_slice() {
                [name, image] => Some((name.to_string(), image.to_string(), false)),
                [name, image, "True"] => Some((name.to_string(), image.to_string(), true)),
                _ => None,
            }
        })
        .collect()
}

/// Marks every pod of `web` that is not Ready yet Running and Ready, as its kubelet would.
fn mark_ready(c: &Cluster) {
    let when = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    for (name, _, ready) in pods(c) {
        if ready {
            continue;
        }
        let patch = format!(
            r#"{{"status":{{"phase":"Running","conditions":[{{"type":"Ready","status":"True","lastTransitionTime":"{when}"}}]}}}}"#
        );
        // The pod may have been deleted meanwhile by a rollout step: that is fine.
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

/// Runs `kubectl rollout status deploy/web` while marking new pods Ready, and returns what
/// it printed once it says the rollout finished.
fn rollout_status(c: &Cluster) -> String {
    let mut child = Guard(
        c.kubectl_command(&["rollout", "status", "deploy/web", "--timeout=90s"])
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
    assert!(
        out.contains("deployment \"web\" successfully rolled out"),
        "{out}"
    );
    out
}

/// Waits until `web` has `n` pods, all with `image`.
fn until_pods(c: &Cluster, n: usize, image: &str) {
    let got = poll(Duration::from_secs(60), || {
        let p = pods(c);
        (p.len() == n && p.iter().all(|(_, i, _)| i == image)).then_some(())
    });
    assert!(
        got.is_some(),
        "want {n} pods of {image}, have {:?}",
        pods(c)
    );
}

/// The revisions `kubectl rollout history` lists.
fn history(c: &Cluster) -> Vec<String> {
    let out = c.kubectl_ok(&["rollout", "history", "deploy/web"]);
    out.lines()
        .skip_while(|l| !l.starts_with("REVISION"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

pub fn deployment_rollouts_with_kubectl(c: &mut Cluster) {
    c.kubectl_says(
        &[
            "create",
            "deployment",
            "web",
            "--image=busybox:1",
            "--replicas=2",
        ],
        "deployment.apps/web created",
    );
    rollout_status(c);
    until_pods(c, 2, "busybox:1");
    let table = c.kubectl_ok(&["get", "deploy", "web"]);
    assert!(table.contains("2/2"), "{table}");

    c.kubectl_says(&["scale", "deploy", "web", "--replicas=3"], "scaled");
    rollout_status(c);
    until_pods(c, 3, "busybox:1");

    c.kubectl_says(
        &["set", "image", "deploy/web", "busybox=busybox:2"],
        "image updated",
    );
    rollout_status(c);
    until_pods(c, 3, "busybox:2");
    let rs = c.kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(
        rs.lines().count(),
        2,
        "a new ReplicaSet for the new image: {rs}"
    );
    assert_eq!(history(c), ["1", "2"]);
    let rev2 = c.kubectl_ok(&["rollout", "history", "deploy/web", "--revision=2"]);
    assert!(rev2.contains("busybox:2"), "{rev2}");

    c.kubectl_says(&["rollout", "undo", "deploy/web"], "rolled back");
    rollout_status(c);
    until_pods(c, 3, "busybox:1");
    assert_eq!(history(c), ["2", "3"], "revision 1 came back as 3");
    assert_eq!(
        c.jsonpath(
            "default",
            "deploy",
            "web",
            "{.metadata.annotations.deployment\\.kubernetes\\.io/revision}"
        ),
        "3"
    );

    c.kubectl_says(&["rollout", "pause", "deploy/web"], "paused");
    c.kubectl_ok(&["set", "image", "deploy/web", "busybox=busybox:3"]);
    let progressing = poll(Duration::from_secs(30), || {
        let reason = c.jsonpath(
            "default",
            "deploy",
            "web",
            "{.status.conditions[?(@.type==\"Progressing\")].reason}",
        );
        (reason == "DeploymentPaused").then_some(())
    });
    assert!(progressing.is_some(), "Progressing says DeploymentPaused");
    let rs = c.kubectl_ok(&["get", "rs", "-l", "app=web", "-o", "name"]);
    assert_eq!(rs.lines().count(), 2, "no rollout while paused: {rs}");
    c.kubectl_says(&["rollout", "resume", "deploy/web"], "resumed");
    rollout_status(c);
    until_pods(c, 3, "busybox:3");

    let before: Vec<String> = pods(c).into_iter().map(|(n, _, _)| n).collect();
    c.kubectl_says(&["rollout", "restart", "deploy/web"], "restarted");
    rollout_status(c);
    let after = poll(Duration::from_secs(60), || {
        let now: Vec<String> = pods(c).into_iter().map(|(n, _, _)| n).collect();
        (now.len() == 3 && now.iter().all(|n| !before.contains(n))).then_some(now)
    });
    assert!(after.is_some(), "restart replaced every pod: {:?}", pods(c));
    assert_eq!(history(c), ["2", "3", "4", "5"]);

    // Deleting the Deployment takes its ReplicaSets and pods with it.
    c.kubectl_ok(&["delete", "deploy", "web"]);
    let gone = poll(Duration::from_secs(60), || {
        let rs = c.kubectl_ok(&["get", "rs,pods", "-l", "app=web", "-o", "name"]);
        rs.trim().is_empty().then_some(())
    });
    assert!(gone.is_some(), "ReplicaSets and pods are collected");
}

/// The holder of the controllers' Lease, as `kubectl` on `kubeconfig` sees it.
fn lease_holder(c: &Cluster, kubeconfig: &std::path::Path) -> String {
    let out = c
        .kubectl_command(&[
            "-n",
            "kube-system",
            "get",
            "lease",
            "kube-controller-manager",
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Two `skiff server`s on one etcd: one controller set acts; when its server dies the other
/// server's set takes the Lease over (after it expires) and keeps reconciling.
#[test]
fn two_servers_on_one_etcd_run_one_controller_set() {
    let mut a = Cluster::start(crate::kube_common::Datastore::Etcd);
    let first = poll(Duration::from_secs(30), || {
        Some(lease_holder(&a, &a.kubeconfig())).filter(|h| !h.is_empty())
    })
    .expect("server A's controllers take the Lease");
    // Server B: its own data directory and port, the same etcd.
    let b_dir = a.dir.path().join("server-b");
    let b_port = crate::kube_common::free_port();
    let b_log = std::fs::File::create(a.dir.path().join("server-b.log")).unwrap();
    let _b = Guard(
        a.server_command_in(&b_dir, b_port)
            .stdout(Stdio::null())
            .stderr(b_log)
            .spawn()
            .unwrap(),
    );
    let b_kubeconfig = b_dir.join("kubeconfig.yaml");
    let b_ready = poll(Duration::from_secs(30), || {
        let out = a
            .kubectl_command(&["get", "--raw", "/readyz"])
            .env("KUBECONFIG", &b_kubeconfig)
            .output()
            .ok()?;
        out.status.success().then_some(())
    });
    assert!(b_ready.is_some(), "server B serves");

    a.kubectl_ok(&[
        "create",
        "deployment",
        "web",
        "--image=busybox:1",
        "--replicas=3",
    ]);
    until_pods(&a, 3, "busybox:1");
    assert_eq!(
        lease_holder(&a, &b_kubeconfig),
        first,
        "B waits while A leads"
    );

    // A dies without giving the Lease back: B's set takes over once it expires.
    a.kill_server();
    let b = |args: &[&str]| {
        let out = a
            .kubectl_command(args)
            .env("KUBECONFIG", &b_kubeconfig)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let taken = poll(Duration::from_secs(60), || {
        let h = lease_holder(&a, &b_kubeconfig);
        (!h.is_empty() && h != first).then_some(h)
    });
    assert!(
        taken.is_some(),
        "server B's controllers take the Lease over"
    );
    b(&["scale", "deploy", "web", "--replicas=5"]);
    let five = poll(Duration::from_secs(60), || {
        let names = b(&["get", "pods", "-l", "app=web", "-o", "name"]);
        (names.lines().count() == 5).then_some(())
    });
    assert!(five.is_some(), "B's controllers scaled the Deployment");
}

/// A Job run to completion as kubectl users watch it: its pod is made, the test writes the
/// pod's exit as a kubelet would, and `kubectl wait --for=condition=complete` returns.
#[test]
fn job_completes_with_kubectl() {
    let c = Cluster::start(crate::kube_common::Datastore::Sqlite);
    c.kubectl_says(
        &["create", "job", "pi", "--image=busybox", "--", "echo", "hi"],
        "job.batch/pi created",
    );
    let pod = poll(Duration::from_secs(30), || {
        let out = c.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "job-name=pi",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ]);
        Some(out.trim().to_string()).filter(|n| !n.is_empty() && !n.contains(' '))
    })
    .expect("the Job's pod is created");
    let now = k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let status = format!(
        r#"{{"status":{{"phase":"Succeeded","containerStatuses":[{{"name":"pi","image":"busybox","imageID":"","ready":false,"restartCount":0,"state":{{"terminated":{{"exitCode":0,"startedAt":"{now}","finishedAt":"{now}"}}}}}}]}}}}"#
    );
    c.kubectl_ok(&[
        "patch",
        "pod",
        &pod,
        "--subresource=status",
        "--type=merge",
        "-p",
        &status,
    ]);
    c.kubectl_says(
        &[
            "wait",
            "--for=condition=complete",
            "job/pi",
            "--timeout=60s",
        ],
        "job.batch/pi condition met",
    );
    let jobs = c.kubectl_ok(&["get", "job", "pi"]);
    let row: Vec<&str> = jobs.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["pi", "Complete", "1/1"], "{jobs}");
}
