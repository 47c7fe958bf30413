//! Issue 13 on three nodes, with kubectl, on one cluster: a Deployment spreads over the
//! nodes, rolls to a new image without dropping below `replicas - maxUnavailable` ready
//! pods, rolls back; a killed container is restarted and a deleted pod replaced; `kubectl
//! top` shows every node, and a HorizontalPodAutoscaler scales pods running on the joined
//! agents (whose usage the server reads from their kubelet APIs) up under CPU load and down
//! after it.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::multinode::{self, Engine, MultiNode};
use crate::{poll, text};

/// `skiff server` flags these checks need: usage sampled and scraped every second, the HPA
/// synced every two.
pub const SERVER_FLAGS: &[&str] = &[
    "--node-stats-period",
    "1s",
    "--horizontal-pod-autoscaler-sync-period",
    "2s",
];
/// `skiff agent` flags: usage sampled every second.
pub const AGENT_FLAGS: &[&str] = &["--node-stats-period", "1s"];

/// The second image the rolling update moves to (a tag of the test image on every node).
const NEXT: &str = "busybox:2";

/// (name, node, ready, restarts, image, deleting) of the pods labelled `app=<app>`.
type PodRow = (String, String, bool, u32, String, bool);

fn pods(c: &MultiNode, app: &str) -> Vec<PodRow> {
    let out = c.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}|{.spec.nodeName}|{.status.conditions[?(@.type==\"Ready\")].status}|{.status.containerStatuses[0].restartCount}|{.spec.containers[0].image}|{.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split('|').collect();
            (f.len() == 6).then(|| {
                (
                    f[0].to_string(),
                    f[1].to_string(),
                    f[2] == "True",
                    f[3].parse().unwrap_or(0),
                    f[4].to_string(),
                    !f[5].is_empty(),
                )
            })
        })
        .collect()
}

/// Pods of `app` that are not being deleted.
fn live(c: &MultiNode, app: &str) -> Vec<PodRow> {
    pods(c, app).into_iter().filter(|p| !p.5).collect()
}

/// Waits until `app` has exactly `n` live pods, all Ready, all on `image`.
fn wait_settled(c: &MultiNode, app: &str, n: usize, image: &str) -> Vec<PodRow> {
    poll(Duration::from_secs(120), || {
        let p = pods(c, app);
        (p.len() == n && p.iter().all(|r| r.2 && r.4 == image && !r.5)).then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "{app} never settled on {n} ready pods of {image}: {:?}\n{}",
            pods(c, app),
            c.logs()
        )
    })
}

fn web_deployment() -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 5
  # A new pod counts as available 2 s after it is ready: the update takes long enough
  # to be sampled many times.
  minReadySeconds: 2
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxUnavailable: 1, maxSurge: 1}}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: main
        image: {image}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "touch /tmp/ready && exec sleep 100000"]
        readinessProbe:
          exec: {{command: ["cat", "/tmp/ready"]}}
          periodSeconds: 1
"#,
        image = multinode::BUSYBOX
    )
}

/// Deploy → spread → set image (sampled) → undo → container kill → pod delete.
pub fn deployment_spreads_rolls_back_and_heals(c: &MultiNode) {
    for engine in
        std::iter::once(&c.local as &dyn Engine).chain(c.agents.iter().map(|a| a as &dyn Engine))
    {
        let out = engine.docker(&["tag", multinode::BUSYBOX, NEXT]);
        assert!(out.status.success(), "{}", text(&out));
    }
    c.create(&web_deployment());
    let first = wait_settled(c, "web", 5, multinode::BUSYBOX);
    let nodes: BTreeSet<&str> = first.iter().map(|p| p.1.as_str()).collect();
    assert!(
        nodes.len() >= 2,
        "the scheduler did not spread the replicas: {first:?}"
    );
    eprintln!("5 replicas on {} nodes: {nodes:?}", nodes.len());

    // A rolling update, sampled while it rolls: never fewer than 5 - maxUnavailable ready.
    let done = std::sync::atomic::AtomicBool::new(false);
    let samples = std::thread::scope(|s| {
        let sampler = s.spawn(|| {
            let mut seen = Vec::new();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let ready = live(c, "web").iter().filter(|p| p.2).count();
                seen.push(ready);
                std::thread::sleep(Duration::from_millis(100));
            }
            seen
        });
        c.kubectl_ok(&["set", "image", "deployment/web", &format!("main={NEXT}")]);
        let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        assert!(out.status.success(), "{}\n{}", text(&out), c.logs());
        sampler.join().unwrap()
    });
    wait_settled(c, "web", 5, NEXT);
    let least = samples.iter().copied().min().unwrap();
    assert!(
        least >= 4,
        "ready pods dropped to {least} during the rolling update: {samples:?}"
    );
    eprintln!(
        "rolling update: {} samples, ready pods between {least} and {}",
        samples.len(),
        samples.iter().max().unwrap()
    );
    let history = c.kubectl_ok(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");

    c.kubectl_ok(&["rollout", "undo", "deployment/web"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=120s"]);
    assert!(out.status.success(), "{}\n{}", text(&out), c.logs());
    let back = wait_settled(c, "web", 5, multinode::BUSYBOX);
    assert_eq!(
        c.field(
            "deployment",
            "web",
            "{.spec.template.spec.containers[0].image}"
        ),
        multinode::BUSYBOX
    );

    // Kill the container of a pod on a joined agent through that node's Docker API: the
    // agent restarts it (restartPolicy Always).
    let (victim, node) = back
        .iter()
        .find(|p| c.agents.iter().any(|a| a.name == p.1))
        .or(back.first())
        .map(|p| (p.0.clone(), p.1.clone()))
        .unwrap();
    let engine: &dyn Engine = c
        .agents
        .iter()
        .find(|a| a.name == node)
        .map(|a| a as &dyn Engine)
        .unwrap_or(&c.local);
    let id = engine
        .pod_containers(&victim)
        .pop()
        .expect("its container runs");
    let out = engine.docker(&["kill", &id]);
    assert!(out.status.success(), "{}", text(&out));
    let restarted = poll(Duration::from_secs(60), || {
        let p = pods(c, "web");
        let row = p.iter().find(|r| r.0 == victim)?;
        (row.3 == 1 && row.2).then_some(())
    });
    assert!(
        restarted.is_some(),
        "{victim} on {node} was not restarted: {:?}\n{}",
        pods(c, "web"),
        c.logs()
    );

    // Delete a pod: the ReplicaSet replaces it.
    let gone = back.iter().find(|p| p.0 != victim).unwrap().0.clone();
    c.kubectl_ok(&["delete", "pod", &gone, "--wait=false"]);
    let replaced = poll(Duration::from_secs(60), || {
        let p = live(c, "web");
        (p.len() == 5 && p.iter().all(|r| r.2 && r.0 != gone)).then_some(())
    });
    assert!(
        replaced.is_some(),
        "{gone} was not replaced: {:?}\n{}",
        pods(c, "web"),
        c.logs()
    );
    c.kubectl_ok(&["delete", "deployment", "web", "--wait=false"]);
}

/// A Deployment of pods (only on the joined agents) spinning on the CPU until `stop` exists
/// in the host directory `control`.
fn spinning_deployment(control: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: busy
spec:
  replicas: 1
  selector:
    matchLabels: {{app: busy}}
  template:
    metadata:
      labels: {{app: busy}}
    spec:
      terminationGracePeriodSeconds: 1
      affinity:
        nodeAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
            nodeSelectorTerms:
            - matchExpressions:
              - {{key: node-role.kubernetes.io/control-plane, operator: DoesNotExist}}
      containers:
      - name: spin
        image: {image}
        imagePullPolicy: IfNotPresent
        command: ["sh", "-c", "while [ ! -e /ctl/stop ]; do :; done; exec sleep 100000"]
        resources:
          requests: {{cpu: 100m}}
          limits: {{cpu: 300m}}
        volumeMounts:
        - {{name: ctl, mountPath: /ctl}}
      volumes:
      - name: ctl
        hostPath: {{path: {control}, type: Directory}}
"#,
        image = multinode::BUSYBOX,
        control = control.display()
    )
}

/// `kubectl top nodes` lists every node; an HPA scales agent pods up under load and down
/// after it.
pub fn top_and_autoscaling_across_nodes(c: &MultiNode) {
    let names: Vec<String> = std::iter::once(c.local.name.clone())
        .chain(c.agents.iter().map(|a| a.name.clone()))
        .collect();
    let top = poll(Duration::from_secs(60), || {
        let out = c.kubectl(&["top", "nodes"]);
        let t = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && names.iter().all(|n| t.contains(n.as_str()))).then_some(t)
    })
    .unwrap_or_else(|| {
        panic!(
            "kubectl top nodes never listed {names:?}: {}\n{}",
            text(&c.kubectl(&["top", "nodes"])),
            c.logs()
        )
    });
    eprintln!("kubectl top nodes:\n{top}");

    let control = c.dir.path().join("ctl");
    std::fs::create_dir_all(&control).unwrap();
    c.create(&spinning_deployment(&control));
    c.kubectl_ok(&[
        "autoscale",
        "deployment",
        "busy",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    c.kubectl_ok(&[
        "patch",
        "hpa.v2.autoscaling",
        "busy",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":5}}}}"#,
    ]);
    let replicas = |n: &str| {
        poll(Duration::from_secs(120), || {
            (c.field("deployment", "busy", "{.spec.replicas}") == n).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "busy never got {n} replicas:\n{}\n{}",
                c.kubectl_ok(&["describe", "hpa", "busy"]),
                c.logs()
            )
        })
    };
    replicas("3");
    // The usage the HPA acted on came from the agents' kubelet APIs.
    let on_agents = pods(c, "busy");
    assert!(
        on_agents
            .iter()
            .all(|p| c.agents.iter().any(|a| a.name == p.1) || p.1.is_empty()),
        "{on_agents:?}"
    );
    let top = c.kubectl_ok(&["top", "pods", "-l", "app=busy"]);
    eprintln!("kubectl top pods under load:\n{top}");
    let describe = c.kubectl_ok(&["describe", "hpa", "busy"]);
    assert!(describe.contains("above target"), "{describe}");

    let running = poll(Duration::from_secs(90), || {
        (live(c, "busy").iter().filter(|p| p.2).count() == 3).then_some(())
    });
    assert!(
        running.is_some(),
        "three busy pods never ran: {:?}",
        pods(c, "busy")
    );
    std::fs::write(control.join("stop"), "").unwrap();
    replicas("1");
    let describe = c.kubectl_ok(&["describe", "hpa", "busy"]);
    assert!(describe.contains("All metrics below target"), "{describe}");
    c.kubectl_ok(&["delete", "hpa", "busy"]);
    c.kubectl_ok(&["delete", "deployment", "busy", "--wait=false"]);
}
