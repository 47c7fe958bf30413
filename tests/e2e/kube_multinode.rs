//! Three nodes on one machine: `skiff server` with its local node plus two `skiff agent`s,
//! each in a network namespace of its own (harness: `common/multinode.rs`). Agents join with
//! the server's node token and their own certificates, become Ready with distinct pod CIDRs,
//! and pods on different nodes reach each other by pod IP through host-gw routes. A node's
//! certificate only lets it change what is its own. An agent stopped with SIGTERM marks its
//! Node NotReady; one killed with SIGKILL and started again adopts its running pods. The pods
//! of an agent killed for good are replaced on the other nodes (node lifecycle, eviction).
//! Agents learn the cluster CIDR from the server; one told another is refused. Before that
//! kill, the same cluster runs issue 13's workload checks (`kube_multinode/workloads.rs`).

#[path = "common/hostclean.rs"]
mod hostclean;
#[path = "common/multinode.rs"]
mod multinode;
#[path = "kube_multinode/workloads.rs"]
mod workloads;

use std::time::Duration;

use multinode::{Engine, MultiNode};

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn poll<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if std::time::Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A pod serving `hello from <name>` over HTTP on :8080.
fn web(c: &MultiNode, name: &str, node: &str) -> String {
    c.pod_on(
        name,
        node,
        &format!("mkdir -p /www && echo hello from {name} > /www/index.html && exec httpd -f -p 8080 -h /www"),
    );
    c.wait_running(name)
}

/// Polls `wget` from pod `from` (on `engine`) to `ip:8080` until it answers `hello from <to>`.
fn reaches(c: &MultiNode, engine: &dyn Engine, from: &str, to: &str, ip: &str) {
    let id = engine
        .pod_containers(from)
        .pop()
        .expect("the pod's container runs");
    let want = format!("hello from {to}");
    let got = poll(Duration::from_secs(30), || {
        let out = engine.docker(&[
            "exec",
            &id,
            "timeout",
            "3",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{ip}:8080/"),
        ]);
        text(&out).contains(&want).then_some(())
    });
    assert!(
        got.is_some(),
        "{from} cannot reach {to} at {ip}\n{}",
        c.logs()
    );
}

#[test]
fn three_nodes_join_with_the_token_and_pods_reach_each_other_across_nodes() {
    let c = MultiNode::start(2);
    // Every node Ready, with its own pod CIDR, its InternalIP on the test bridge.
    let mut cidrs = Vec::new();
    for (name, ip) in std::iter::once((&c.local.name, &c.host_ip))
        .chain(c.agents.iter().map(|a| (&a.name, &a.ip)))
    {
        let cidr = c.field("node", name, "{.spec.podCIDR}");
        assert!(!cidr.is_empty(), "{name} has no pod CIDR");
        cidrs.push(cidr);
        assert_eq!(
            c.field(
                "node",
                name,
                "{.status.addresses[?(@.type==\"InternalIP\")].address}"
            ),
            *ip
        );
    }
    cidrs.sort();
    cidrs.dedup();
    assert_eq!(cidrs.len(), 3, "pod CIDRs are distinct: {cidrs:?}");

    // The agents got their certificates through CSRs the server approved and signed (the
    // serving one once their Node was registered).
    for a in &c.agents {
        let serving = a.data.join("pki/serving.crt");
        let got = poll(Duration::from_secs(30), || serving.exists().then_some(()));
        assert!(
            got.is_some(),
            "{} has no serving certificate\n{}",
            a.name,
            c.logs()
        );
    }
    let csrs = c.kubectl_ok(&["get", "csr"]);
    for a in &c.agents {
        for signer in ["kube-apiserver-client-kubelet", "kubelet-serving"] {
            assert!(
                csrs.lines().any(|l| l.contains(&a.name)
                    && l.contains(signer)
                    && l.contains("Approved,Issued")),
                "no issued {signer} request for {}:\n{csrs}",
                a.name
            );
        }
        let pki = a.data.join("pki");
        for f in [
            "ca.crt",
            "client.crt",
            "client.key",
            "serving.crt",
            "serving.key",
        ] {
            assert!(pki.join(f).exists(), "{} has no {f}", a.name);
        }
        // Both certificates name the node, chain to the cluster CA, and the serving one
        // covers the node's name and address (what the kubelet API will serve with).
        let openssl = |args: &[&str]| {
            text(
                &std::process::Command::new("openssl")
                    .args(args)
                    .output()
                    .unwrap(),
            )
        };
        let ca = pki.join("ca.crt");
        assert_eq!(
            std::fs::read(&ca).unwrap(),
            std::fs::read(c.data_dir().join("tls/ca.crt")).unwrap(),
            "the agent pinned the server's CA"
        );
        for cert in ["client.crt", "serving.crt"] {
            let cert = pki.join(cert);
            let subject = openssl(&["x509", "-in", cert.to_str().unwrap(), "-noout", "-subject"]);
            assert!(
                subject.contains(&format!("CN = system:node:{}", a.name))
                    && subject.contains("O = system:nodes"),
                "{subject}"
            );
            let verify = openssl(&[
                "verify",
                "-CAfile",
                ca.to_str().unwrap(),
                cert.to_str().unwrap(),
            ]);
            assert!(verify.contains(": OK"), "{verify}");
        }
        let sans = openssl(&[
            "x509",
            "-in",
            pki.join("serving.crt").to_str().unwrap(),
            "-noout",
            "-ext",
            "subjectAltName,extendedKeyUsage",
        ]);
        assert!(
            sans.contains(&format!("DNS:{}", a.name))
                && sans.contains(&format!("IP Address:{}", a.ip))
                && sans.contains("TLS Web Server Authentication"),
            "{sans}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(pki.join("client.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the node's key is private");
    }

    // One pod per node; each reaches the other two by pod IP.
    let (a0, a1) = (&c.agents[0], &c.agents[1]);
    let ips = [
        web(&c, "web-server", &c.local.name),
        web(&c, "web-a0", &a0.name),
        web(&c, "web-a1", &a1.name),
    ];
    let names = ["web-server", "web-a0", "web-a1"];
    let engines: [&dyn Engine; 3] = [&c.local, a0, a1];
    for i in 0..3 {
        for j in 0..3 {
            if i != j {
                reaches(&c, engines[i], names[i], names[j], &ips[j]);
            }
        }
    }

    // A real in-cluster client in a pod on an agent: kubectl (the static binary on a
    // hostPath) with nothing but the environment and the mounted token and CA reaches the
    // API through the kubernetes Service's ClusterIP, which the agent translates to the
    // server in another network namespace.
    c.create(&format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: in-pod-client}}\nspec:\n  nodeName: {}\n  \
         terminationGracePeriodSeconds: 1\n  containers:\n  - name: main\n    image: busybox:1\n    \
         command: [sleep, '3600']\n    volumeMounts: [{{name: kubectl, mountPath: /kubectl}}]\n  \
         volumes:\n  - {{name: kubectl, hostPath: {{path: {}, type: File}}}}\n",
        a0.name, KUBECTL_BINARY
    ));
    c.wait_running("in-pod-client");
    let host = c.kubectl_ok(&[
        "exec",
        "in-pod-client",
        "--",
        "sh",
        "-c",
        "echo $KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT",
    ]);
    assert_eq!(host.trim(), "10.43.0.1:443");
    let me = c.kubectl(&[
        "exec",
        "in-pod-client",
        "--",
        "/kubectl",
        "auth",
        "whoami",
        "-o",
        "jsonpath={.status.userInfo.username}",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&me.stdout),
        "system:serviceaccount:default:default",
        "{}\n{}",
        text(&me),
        c.logs()
    );
}

/// The static kubectl of the Kubernetes version skiff serves (the `kubectl` on the PATH is a
/// dispatcher that runs one of these).
const KUBECTL_BINARY: &str = "/usr/lib/google-cloud-sdk/bin/kubectl.1.33";

#[test]
fn a_node_certificate_acts_only_on_its_own_objects() {
    let c = MultiNode::start(2);
    let (me, other) = (&c.agents[0].name, &c.agents[1].name);
    let out = c.kubectl_as_agent(0, &["label", "node", me, "skiff.test/own=yes"]);
    assert!(out.status.success(), "{}", text(&out));
    let out = c.kubectl_as_agent(0, &["label", "node", other, "skiff.test/own=no"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!(
            "User \"system:node:{me}\" cannot patch resource \"nodes\""
        )),
        "{}",
        text(&out)
    );
    assert_eq!(
        c.field("node", other, "{.metadata.labels.skiff\\.test/own}"),
        ""
    );
    // Another node's Lease and a pod bound elsewhere are not its to change.
    let out = c.kubectl_as_agent(
        0,
        &[
            "-n",
            "kube-node-lease",
            "annotate",
            "lease",
            other,
            "skiff.test/x=y",
        ],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("Forbidden") || text(&out).contains("forbidden"),
        "{}",
        text(&out)
    );
    c.create(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: elsewhere\nspec:\n  nodeName: nowhere\n  \
         containers:\n  - name: c\n    image: busybox:1\n",
    );
    let out = c.kubectl_as_agent(0, &["label", "pod", "elsewhere", "skiff.test/x=y"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("can only modify pods bound to it"),
        "{}",
        text(&out)
    );
    // Reading the cluster is allowed; a Secret only when a pod bound to the node uses it.
    let out = c.kubectl_as_agent(0, &["get", "nodes"]);
    assert!(out.status.success(), "{}", text(&out));
    c.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "unused",
        "--from-literal=k=v",
    ]);
    let out = c.kubectl_as_agent(0, &["get", "secret", "unused"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no relationship found"),
        "{}",
        text(&out)
    );
    // The join token is good for certificate requests and nothing else.
    let token = c.token();
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", "/dev/null")
        .arg(format!("--server={}", c.url()))
        .arg("--insecure-skip-tls-verify")
        .arg(format!("--token={token}"))
        .args(["get", "pods"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("system:bootstrap:node"),
        "{}",
        text(&out)
    );
}

#[test]
fn agent_sigkill_then_restart_adopts_its_pods_and_sigterm_marks_the_node_not_ready() {
    let mut c = MultiNode::start(1);
    let name = c.agents[0].name.clone();
    let ip = web(&c, "survivor", &name);
    web(&c, "client", &c.local.name);
    let before = c.agents[0].pod_containers("survivor");
    assert_eq!(before.len(), 1);
    let csrs_before = c.kubectl_ok(&["get", "csr", "-o", "name"]);

    let status = c.agents[0].stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    // With its agent (and engine) gone, the pod still runs and answers across nodes.
    reaches(&c, &c.local, "client", "survivor", &ip);
    c.agents[0].start();
    c.wait_ready(&name, true);
    // Adopted: the same container, nothing restarted, and no new certificate request.
    let settled = poll(Duration::from_secs(30), || {
        (c.field("pod", "survivor", "{.status.containerStatuses[0].ready}") == "true").then_some(())
    });
    assert!(settled.is_some(), "{}", c.logs());
    // The restarted engine serves its Docker API again and lists the very same container.
    let after = poll(Duration::from_secs(30), || {
        let ids = c.agents[0].pod_containers("survivor");
        (!ids.is_empty()).then_some(ids)
    });
    assert_eq!(after, Some(before), "{}", c.logs());
    assert_eq!(
        c.field(
            "pod",
            "survivor",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    assert_eq!(c.kubectl_ok(&["get", "csr", "-o", "name"]), csrs_before);

    let status = c.agents[0].stop_with(nix::sys::signal::Signal::SIGTERM);
    assert!(status.success(), "{}", c.agents[0].log());
    c.wait_ready(&name, false);
}

#[test]
fn agent_with_a_bad_token_or_the_wrong_ca_is_refused() {
    let c = MultiNode::start(1);
    let token = c.token();
    let fresh = c.dir.path().join("intruder");
    let fresh = fresh.to_str().unwrap();
    let (hash, secret) = token.split_once("::").unwrap();
    // The right CA, a wrong secret: the server refuses.
    let bad_secret = format!("{hash}::node:{}", "0".repeat(64));
    let out = c.agents[0]
        .command(&[
            "--token",
            &bad_secret,
            "--node-name",
            "intruder",
            "--data-dir",
            fresh,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("the server refused the join token"),
        "{}",
        text(&out)
    );
    // A token for another CA: refused before the secret is sent.
    let wrong_ca = format!("K10{}::{secret}", "ab".repeat(32));
    let out = c.agents[0]
        .command(&[
            "--token",
            &wrong_ca,
            "--node-name",
            "intruder",
            "--data-dir",
            fresh,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not match the join token"),
        "{}",
        text(&out)
    );
    let out = c.agents[0]
        .command(&[
            "--token",
            "not-a-token",
            "--node-name",
            "intruder",
            "--data-dir",
            fresh,
        ])
        .output()
        .unwrap();
    assert!(text(&out).contains("invalid join token"), "{}", text(&out));
    assert!(!c.kubectl_ok(&["get", "csr"]).contains("intruder"));
    assert!(!c.kubectl_ok(&["get", "nodes"]).contains("intruder"));

    // The agents were not told the cluster CIDR: they read the server's.
    let published = c.kubectl_ok(&[
        "get",
        "configmap",
        "-n",
        "kube-system",
        "skiff-cluster",
        "-o",
        "jsonpath={.data.clusterCIDR}",
    ]);
    assert_eq!(published, c.cluster_cidr);
    // An agent told another cluster CIDR stops with the reason, before registering a Node.
    let out = c.agents[0]
        .command(&[
            "--cluster-cidr",
            "10.99.0.0/16",
            "--node-name",
            "mismatch",
            "--data-dir",
            c.dir.path().join("mismatch").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains("does not match the server's cluster CIDR"),
        "{}",
        text(&out)
    );
    assert!(!c.kubectl_ok(&["get", "nodes"]).contains("mismatch"));
}

#[test]
fn a_killed_agents_pods_are_replaced_on_the_other_nodes_and_remote_pods_stream() {
    // A short grace and toleration, as a user who wants fast fail-over configures them.
    let mut server_flags = vec![
        "--node-monitor-grace-period",
        "10s",
        "--default-unreachable-toleration-seconds",
        "5",
    ];
    server_flags.extend_from_slice(workloads::SERVER_FLAGS);
    let mut c = MultiNode::start_full(2, &server_flags, workloads::AGENT_FLAGS);
    // Issue 13's checks share this cluster (before one of its agents is killed).
    workloads::deployment_spreads_rolls_back_and_heals(&c);
    workloads::top_and_autoscaling_across_nodes(&c);
    let dead = c.agents[0].name.clone();
    // exec and logs of a pod on a joined agent go through that agent's kubelet API, served
    // with the certificate it got through its CSR.
    web(&c, "remote", &dead);
    let out = c.kubectl_ok(&["exec", "remote", "--", "cat", "/www/index.html"]);
    assert_eq!(out.trim(), "hello from remote");
    let out = c.kubectl(&["exec", "remote", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out));
    assert!(
        text(&out).contains("command terminated with exit code 7"),
        "{}",
        text(&out)
    );

    c.create(&format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: keep\nspec:\n  replicas: 6\n  \
         selector:\n    matchLabels: {{app: keep}}\n  template:\n    metadata:\n      labels: {{app: keep}}\n    \
         spec:\n      terminationGracePeriodSeconds: 1\n      containers:\n      - name: main\n        \
         image: {}\n        imagePullPolicy: IfNotPresent\n        command: [sleep, '3600']\n",
        multinode::BUSYBOX
    ));
    // (name, node, phase, deleting) of the Deployment's pods.
    let pods = |c: &MultiNode| -> Vec<(String, String, String, bool)> {
        let out = c.kubectl_ok(&[
            "get",
            "pods",
            "-l",
            "app=keep",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ]);
        out.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                (f.len() >= 3).then(|| {
                    (
                        f[0].to_string(),
                        f[1].to_string(),
                        f[2].to_string(),
                        f.len() > 3,
                    )
                })
            })
            .collect()
    };
    let running = poll(Duration::from_secs(90), || {
        let p = pods(&c);
        (p.len() == 6 && p.iter().all(|(_, _, phase, _)| phase == "Running")).then_some(p)
    })
    .unwrap_or_else(|| {
        panic!(
            "the Deployment never ran 6 pods: {:?}\n{}",
            pods(&c),
            c.logs()
        )
    });
    let on_dead = running.iter().filter(|(_, n, _, _)| *n == dead).count();
    assert!(
        on_dead > 0,
        "the scheduler put nothing on {dead}: {running:?}"
    );

    let killed = std::time::Instant::now();
    let status = c.agents[0].stop_with(nix::sys::signal::Signal::SIGKILL);
    assert!(!status.success());
    // The node turns Unknown after the grace period, its pods are evicted after their
    // toleration, and the ReplicaSet's replacements run on the two live nodes.
    let replaced = poll(Duration::from_secs(120), || {
        let p = pods(&c);
        let live: Vec<_> = p
            .iter()
            .filter(|(_, n, _, deleting)| !deleting && *n != dead)
            .collect();
        (live.len() == 6 && live.iter().all(|(_, _, phase, _)| phase == "Running")).then_some(())
    });
    let elapsed = killed.elapsed();
    assert!(
        replaced.is_some(),
        "the pods of the killed node were not replaced: {:?}\n{}",
        pods(&c),
        c.logs()
    );
    eprintln!(
        "{on_dead} pod(s) of the SIGKILLed agent replaced and Running elsewhere {:.1} s after the kill \
         (grace 10 s, toleration 5 s)",
        elapsed.as_secs_f64()
    );
    assert_eq!(
        c.field(
            "node",
            &dead,
            "{.status.conditions[?(@.type==\"Ready\")].status}"
        ),
        "Unknown"
    );
    let taints = c.field("node", &dead, "{.spec.taints[*].key}");
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    // exec into a pod of the dead node is a clear error, not a hang.
    let out = c.kubectl(&["exec", "remote", "--", "true"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("error dialing backend"),
        "{}",
        text(&out)
    );
}

#[test]
fn an_agent_renews_its_certificates_and_keeps_working_after_the_first_ones_expire() {
    // Node certificates live 20 s: the agent renews each at 70-90 % of that, and so does the
    // server for its kubelet-client certificate and its local node's serving certificate.
    let c = MultiNode::start_with(1, &["--cluster-signing-duration", "20s"]);
    let a = &c.agents[0];
    let (_, client_crt, _) = a.client_credentials();
    let serving_crt = a.data.join("pki/serving.crt");
    let first = c.dir.path().join("first-client.crt");
    std::fs::copy(&client_crt, &first).unwrap();
    let expired = |path: &std::path::Path| {
        // `openssl x509 -checkend 0` fails for a certificate that has expired.
        !std::process::Command::new("openssl")
            .args(["x509", "-noout", "-checkend", "0", "-in"])
            .arg(path)
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(!expired(&first));
    // The server's own: its kubelet-client certificate (on disk) and the local node's
    // serving certificate (what its kubelet API presents to a client with that identity).
    let kubelet_client = c.data_dir().join("tls/kubelet-client.crt");
    let kubelet_key = c.data_dir().join("tls/kubelet-client.key");
    let local_port = c.field(
        "node",
        &c.local.name,
        "{.status.daemonEndpoints.kubeletEndpoint.Port}",
    );
    let local_serving = || {
        let script = format!(
            "openssl s_client -connect {}:{local_port} -cert {} -key {} </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint",
            c.host_ip,
            kubelet_client.display(),
            kubelet_key.display()
        );
        let out = std::process::Command::new("sh")
            .args(["-c", &script])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    // Each certificate renewed twice: by then the first ones have expired.
    let mut clients = std::collections::BTreeSet::new();
    let mut servings = std::collections::BTreeSet::new();
    let mut server_clients = std::collections::BTreeSet::new();
    let mut local_servings = std::collections::BTreeSet::new();
    let renewed = poll(Duration::from_secs(90), || {
        clients.insert(std::fs::read(&client_crt).unwrap_or_default());
        servings.insert(std::fs::read(&serving_crt).unwrap_or_default());
        server_clients.insert(std::fs::read(&kubelet_client).unwrap_or_default());
        let fingerprint = local_serving();
        if !fingerprint.is_empty() {
            local_servings.insert(fingerprint);
        }
        (clients.len() >= 3
            && servings.len() >= 3
            && server_clients.len() >= 3
            && local_servings.len() >= 3
            && expired(&first))
        .then_some(())
    });
    assert!(
        renewed.is_some(),
        "{} client, {} serving, {} kubelet-client and {} local serving certificates seen\n{}",
        clients.len(),
        servings.len(),
        server_clients.len(),
        local_servings.len(),
        c.logs()
    );
    assert!(a.log().contains("certificate renewed"), "{}", a.log());
    assert!(
        c.log().contains("kubelet-client certificate renewed")
            && c.log().contains("local node's serving certificate renewed"),
        "{}",
        c.log()
    );
    // The API server reaches the local node's kubelet with both renewed (exec, logs).
    web(&c, "local-after-renewal", &c.local.name);
    let out = c.kubectl_ok(&[
        "exec",
        "local-after-renewal",
        "--",
        "cat",
        "/www/index.html",
    ]);
    assert_eq!(out.trim(), "hello from local-after-renewal");
    let out = c.kubectl(&["logs", "local-after-renewal"]);
    assert!(out.status.success(), "{}", text(&out));
    // The node still works with its renewed certificates: it stays Ready, runs a new pod
    // and reports it (client certificate), and the API server execs into the pod and reads
    // its logs through the node's kubelet API (serving certificate).
    c.wait_ready(&a.name, true);
    web(&c, "after-renewal", &a.name);
    let out = c.kubectl_ok(&["exec", "after-renewal", "--", "cat", "/www/index.html"]);
    assert_eq!(out.trim(), "hello from after-renewal");
    let out = c.kubectl(&["logs", "after-renewal"]);
    assert!(out.status.success(), "{}", text(&out));
    // kubectl as the node, with the certificate on disk now.
    let out = c.kubectl_as_agent(0, &["get", "node", &a.name, "-o", "name"]);
    assert!(out.status.success(), "{}", text(&out));
}
