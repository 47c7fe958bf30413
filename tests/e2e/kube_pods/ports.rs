//! `hostPort`: a container port published on the node, reachable at the node's address for
//! as long as the pod lives; and the Service in front of the pod, as `kubectl describe` shows it.

use std::io::{Read, Write};
use std::time::Duration;

use crate::kube_common::poll;
use crate::node::Node;

const WEB: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: hostport, labels: {app: hostport}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: busybox:1
    command: ["sh", "-c", "mkdir -p /www && echo served-by-pod > /www/index.html && httpd -f -p 8080 -h /www"]
    ports:
    - {containerPort: 8080, hostPort: HOSTPORT}
"#;

/// `GET /` on 127.0.0.1:`port`, the whole answer.
fn get(port: u16) -> Option<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    Some(out)
}

#[test]
fn host_port_publishes_a_pod_port_on_the_node() {
    let node = Node::start();
    let port = 20000 + rand::random::<u16>() % 10000;
    node.create(&WEB.replace("HOSTPORT", &port.to_string()));
    node.wait_pod("hostport", "{.status.phase}", "Running", |p| p == "Running");
    let answer = poll(Duration::from_secs(30), || {
        get(port).filter(|a| a.contains("served-by-pod"))
    });
    assert!(
        answer.is_some(),
        "nothing on 127.0.0.1:{port}: {:?}",
        get(port)
    );
    // A Service with one unnamed port: `kubectl describe` lists the pod behind it (kubectl
    // crashed on an EndpointSlice port without a name).
    node.kubectl_ok(&[
        "expose",
        "pod",
        "hostport",
        "--port",
        "80",
        "--target-port",
        "8080",
    ]);
    let ip = node.kubectl_ok(&["get", "pod", "hostport", "-o", "jsonpath={.status.podIP}"]);
    let described = poll(Duration::from_secs(30), || {
        let out = node.kubectl(&["describe", "service", "hostport"]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success() && text.contains(&format!("{}:8080", ip.trim()))).then_some(text)
    });
    assert!(
        described.is_some(),
        "{:?}",
        node.kubectl(&["describe", "service", "hostport"])
    );
    node.kubectl_ok(&["delete", "pod", "hostport", "--timeout=60s"]);
    let gone = poll(Duration::from_secs(30), || {
        get(port)
            .is_none_or(|a| !a.contains("served-by-pod"))
            .then_some(())
    });
    assert!(gone.is_some(), "the host port outlived its pod");
}
