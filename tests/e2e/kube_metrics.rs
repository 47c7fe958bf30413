//! Resource metrics and autoscaling on the local node of `skiff server`, with the real
//! kubectl: `kubectl top nodes/pods` print the usage the node reads from its cgroups, and a
//! Deployment autoscaled with `kubectl autoscale` grows under a busybox CPU loop and shrinks
//! once the loop stops.

#[path = "common/hostclean.rs"]
mod hostclean;
mod kube_common;
#[allow(dead_code)] // shared with the pod tests
#[path = "kube_pods/node.rs"]
mod node;

use std::time::Duration;

use kube_common::poll;
use node::Node;

/// The node samples every second and the HPA syncs every two, so the tests take seconds.
fn start() -> Node {
    Node::start_with(&[
        "--node-stats-period",
        "1s",
        "--horizontal-pod-autoscaler-sync-period",
        "2s",
    ])
}

/// A Deployment of busybox pods that spin on the CPU until `stop` exists in the host
/// directory `control` (a hostPath volume), then sleep. (The load is switched off from the
/// host: `kubectl exec` needs the kubelet API, which this node does not serve yet.)
fn spinning_deployment(name: &str, replicas: u32, control: &std::path::Path) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: spin
        image: {image}
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
        image = node::BUSYBOX,
        control = control.display()
    )
}

/// `kubectl top …` once it prints figures (it says "metrics not available yet" until the
/// node has two samples of each pod).
fn top(node: &Node, args: &[&str], accept: impl Fn(&str) -> bool) -> String {
    let mut all = vec!["top"];
    all.extend_from_slice(args);
    poll(Duration::from_secs(60), || {
        let out = node.kubectl(&all);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && accept(&text)).then_some(text)
    })
    .unwrap_or_else(|| {
        let out = node.kubectl(&all);
        panic!(
            "kubectl {all:?} never printed the expected figures: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Millicores of a `kubectl top` CPU cell (`123m` or `1`).
fn millicores(cell: &str) -> u64 {
    match cell.strip_suffix('m') {
        Some(m) => m.parse().unwrap(),
        None => cell.parse::<u64>().unwrap() * 1000,
    }
}

/// Mebibytes of a `kubectl top` memory cell (`12Mi`).
fn mebibytes(cell: &str) -> u64 {
    cell.strip_suffix("Mi").unwrap().parse().unwrap()
}

/// The host directory the pods' loops watch.
fn control_dir(node: &Node) -> std::path::PathBuf {
    let dir = node.cluster.dir.path().join("ctl");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn pod_names(node: &Node, app: &str) -> Vec<String> {
    node.kubectl_ok(&[
        "get",
        "pods",
        "-l",
        &format!("app={app}"),
        "--field-selector",
        "status.phase=Running",
        "-o",
        "jsonpath={.items[*].metadata.name}",
    ])
    .split_whitespace()
    .map(str::to_string)
    .collect()
}

#[test]
fn kubectl_top_prints_node_pod_and_container_usage() {
    let node = start();
    let control = control_dir(&node);
    node.create(&spinning_deployment("spin", 1, &control));
    let nodes = top(&node, &["nodes"], |t| t.contains(&node.name));
    let row: Vec<&str> = nodes
        .lines()
        .find(|l| l.starts_with(&node.name))
        .unwrap()
        .split_whitespace()
        .collect();
    // NAME CPU(cores) CPU(%) MEMORY(bytes) MEMORY(%)
    assert!(millicores(row[1]) > 0, "{nodes}");
    assert!(mebibytes(row[3]) > 50, "the host uses memory: {nodes}");
    assert!(row[2].ends_with('%') && row[4].ends_with('%'), "{nodes}");

    // The spinning pod uses up to its 300m limit: less on a machine whose two cores are busy with
    // other tests, but far more than an idle pod's few millicores.
    let pods = top(&node, &["pods"], |t| {
        t.lines().any(|l| l.starts_with("spin-"))
    });
    let row: Vec<&str> = pods
        .lines()
        .find(|l| l.starts_with("spin-"))
        .unwrap()
        .split_whitespace()
        .collect();
    let pod = row[0].to_string();
    assert!(
        (50..=400).contains(&millicores(row[1])),
        "a loop limited to 300m: {pods}"
    );
    assert!(mebibytes(row[2]) < 64, "busybox is small: {pods}");
    eprintln!("kubectl top nodes:\n{nodes}\nkubectl top pods:\n{pods}");

    let containers = top(&node, &["pods", "--containers"], |t| t.contains("spin"));
    assert!(
        containers
            .lines()
            .any(|l| l.starts_with(&pod) && l.split_whitespace().nth(1) == Some("spin")),
        "POD NAME CPU MEMORY: {containers}"
    );
    let all = top(&node, &["pods", "-A"], |t| t.contains(&pod));
    assert!(
        all.lines().next().unwrap().starts_with("NAMESPACE"),
        "{all}"
    );
    assert!(
        all.lines()
            .any(|l| l.starts_with("default") && l.contains(&pod)),
        "{all}"
    );
    // Pod metrics carry the pods' labels, so a selector picks them.
    let selected = top(&node, &["pods", "-l", "app=spin"], |t| t.contains(&pod));
    assert_eq!(selected.lines().count(), 2, "{selected}");
    let out = node.kubectl(&["top", "pods", "-l", "app=other"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains(&pod));
    // Another namespace has no pods with metrics.
    let out = node.kubectl(&["top", "pods", "-n", "kube-system"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("No resources found")
            || String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn kubectl_autoscale_scales_a_deployment_up_under_load_and_down_after() {
    let node = start();
    let control = control_dir(&node);
    node.create(&spinning_deployment("busy", 1, &control));
    node.kubectl_ok(&[
        "autoscale",
        "deployment",
        "busy",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    // Scale down soon after the load is gone (the default window is five minutes).
    node.kubectl_ok(&[
        "patch",
        "hpa.v2.autoscaling",
        "busy",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":5}}}}"#,
    ]);
    let replicas = |n: &str| {
        poll(Duration::from_secs(120), || {
            let r = node.kubectl_ok(&[
                "get",
                "deployment",
                "busy",
                "-o",
                "jsonpath={.spec.replicas}",
            ]);
            (r == n).then_some(())
        })
        .unwrap_or_else(|| {
            panic!(
                "the Deployment never got {n} replicas:\n{}\n{}",
                node.kubectl_ok(&["describe", "hpa", "busy"]),
                node::tail(&node.cluster.log(), 40)
            )
        })
    };
    replicas("3");
    // NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE, TARGETS like `cpu: 280%/50%`.
    // The reading just after a scale-up may average in pods that only started spinning (and,
    // on a busy two-core machine, pods that got little CPU in that window): wait for a reading
    // above the target while all three spin.
    let targets = |t: &str| -> Option<(u32, String)> {
        let row = t.lines().nth(1)?;
        let targets = row.split("cpu: ").nth(1)?.split_whitespace().next()?;
        let (current, target) = targets.split_once('/')?;
        Some((
            current.trim_end_matches('%').parse().ok()?,
            target.to_string(),
        ))
    };
    let mut last = String::new();
    let hpa = poll(Duration::from_secs(90), || {
        last = node.kubectl_ok(&["get", "hpa", "busy"]);
        let (current, _) = targets(&last)?;
        (current > 50).then(|| last.clone())
    })
    .unwrap_or_else(|| panic!("the HPA never showed usage above its target:\n{last}"));
    let row = hpa.lines().nth(1).unwrap();
    let (_, target) = targets(&hpa).unwrap();
    assert_eq!(target, "50%", "{hpa}");
    assert!(row.contains("Deployment/busy"), "{hpa}");
    eprintln!("kubectl get hpa under load:\n{hpa}");
    let describe = node.kubectl_ok(&["describe", "hpa", "busy"]);
    assert!(describe.contains("SuccessfulRescale"), "{describe}");
    assert!(describe.contains("above target"), "{describe}");

    // Stop the loops: every pod goes idle and the Deployment shrinks to one.
    let running = poll(Duration::from_secs(60), || {
        (pod_names(&node, "busy").len() == 3).then_some(())
    });
    assert!(running.is_some(), "three busy pods never ran");
    std::fs::write(control.join("stop"), "").unwrap();
    replicas("1");
    let describe = node.kubectl_ok(&["describe", "hpa", "busy"]);
    assert!(describe.contains("All metrics below target"), "{describe}");
    eprintln!("kubectl describe hpa after the load:\n{describe}");
}
