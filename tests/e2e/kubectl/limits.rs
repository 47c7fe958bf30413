//! The API server's limits as kubectl and raw clients meet them: a YAML bomb refused while
//! parsing, Services' addresses from the configured ranges, and connections that send nothing
//! closed while watches stay open.

use super::*;

/// The issue's repro (CVE-2019-11254 class): an apply PATCH whose YAML body opens 100,000
/// flow sequences. It cost 37 s of CPU; it is refused with a 400 Status while parsing.
#[test]
fn deeply_nested_yaml_apply_is_refused() {
    let c = Cluster::start(Datastore::Sqlite);
    c.kubectl_ok(&["create", "configmap", "a"]);
    let body = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: a}}\ndata: {}\n",
        "[".repeat(100_000)
    );
    let file = c.write_file("y", &body);
    let token = std::fs::read_to_string(c.data_dir().join("token")).unwrap();
    let url = format!(
        "{}/api/v1/namespaces/default/configmaps/a?fieldManager=x",
        c.url()
    );
    let out = std::process::Command::new("curl")
        .args([
            "-sk",
            "--max-time",
            "60",
            "-X",
            "PATCH",
            "-w",
            "\n%{http_code}",
        ])
        .args(["-H", "Content-Type: application/apply-patch+yaml"])
        .args(["-H", &format!("Authorization: Bearer {}", token.trim())])
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(&url)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{text}");
    let status: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "BadRequest");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .starts_with("error decoding YAML"),
        "{status}"
    );
    // The server is still answering and the object is unchanged.
    assert_eq!(c.jsonpath("default", "configmap", "a", "{.data}"), "");
}

/// Services get ClusterIPs and NodePorts from the server's ranges (`--service-cidr`,
/// `--service-node-port-range`), duplicates are refused, and `default/kubernetes` points at
/// the API server; allocations survive a restart.
#[test]
fn services_get_addresses_from_the_configured_ranges() {
    let mut c = Cluster::start_with(
        Datastore::Sqlite,
        &[
            "--service-cidr",
            "10.96.0.0/16",
            "--service-node-port-range",
            "31000-31999",
        ],
    );
    assert_eq!(
        c.jsonpath(
            "default",
            "svc",
            "kubernetes",
            "{.spec.clusterIP} {.spec.ports[0].port} {.spec.ports[0].targetPort}"
        ),
        format!("10.96.0.1 443 {}", c.port)
    );
    assert_eq!(
        c.jsonpath(
            "default",
            "endpoints",
            "kubernetes",
            "{.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}"
        ),
        format!("127.0.0.1:{}", c.port)
    );
    // v1 Endpoints are deprecated since Kubernetes 1.33: kubectl passes the server's warning on.
    let deprecated =
        "Warning: v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice";
    let endpoints = c.kubectl(&["get", "endpoints", "kubernetes"]);
    let err = String::from_utf8_lossy(&endpoints.stderr);
    assert!(
        endpoints.status.success() && err.contains(deprecated),
        "{err}"
    );
    let slices = c.kubectl(&["get", "endpointslices"]);
    let err = String::from_utf8_lossy(&slices.stderr);
    assert!(slices.status.success() && !err.contains("Warning"), "{err}");
    c.kubectl_ok(&["create", "service", "clusterip", "web", "--tcp=80:8080"]);
    let ip = c.jsonpath("default", "svc", "web", "{.spec.clusterIP}");
    assert!(ip.starts_with("10.96.") && ip != "10.96.0.1", "{ip}");
    assert_eq!(
        c.jsonpath("default", "svc", "web", "{.status}"),
        r#"{"loadBalancer":{}}"#
    );
    let table = c.kubectl_ok(&["get", "svc", "web"]);
    assert!(table.contains(&ip), "{table}");

    c.kubectl_ok(&[
        "create",
        "service",
        "nodeport",
        "np",
        "--tcp=80",
        "--node-port=31080",
    ]);
    let err = c.kubectl_stderr(&[
        "create",
        "service",
        "nodeport",
        "np2",
        "--tcp=80",
        "--node-port=31080",
    ]);
    assert!(
        err.contains(
            "spec.ports[0].nodePort: Invalid value: 31080: provided port is already allocated"
        ),
        "{err}"
    );
    let fixed = c.write_file(
        "fixed.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: fixed}\nspec:\n  clusterIP: 10.96.0.53\n  ports: [{port: 53}]\n",
    );
    c.kubectl_ok(&["apply", "-f", fixed.to_str().unwrap()]);
    let dup = c.write_file(
        "dup.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: dup}\nspec:\n  clusterIP: 10.96.0.53\n  ports: [{port: 53}]\n",
    );
    let err = c.kubectl_stderr(&["create", "-f", dup.to_str().unwrap()]);
    assert!(
        err.contains("spec.clusterIPs: Invalid value: []string{\"10.96.0.53\"}: failed to allocate IP 10.96.0.53: provided IP is already allocated"),
        "{err}"
    );

    // After a restart the allocations are still there; a deleted Service's are free.
    c.restart();
    let err = c.kubectl_stderr(&["create", "-f", dup.to_str().unwrap()]);
    assert!(err.contains("provided IP is already allocated"), "{err}");
    c.kubectl_ok(&["delete", "svc", "fixed"]);
    c.kubectl_says(
        &["create", "-f", dup.to_str().unwrap()],
        "service/dup created",
    );
    assert_eq!(c.jsonpath("default", "svc", "web", "{.spec.clusterIP}"), ip);
}

/// Waits (up to a generous bound) for the server to close `s`; false if it never does.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    use std::io::Read;
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Connections that never send a TLS ClientHello, or stop half-way through a request header,
/// are closed after the deadline (1 s here, kube-apiserver's 32 s by default); a watch opened
/// before keeps delivering after it.
#[test]
fn silent_connections_are_closed_but_watches_stay() {
    let c = Cluster::start_with(Datastore::Sqlite, &["--request-header-deadline", "1"]);
    let child = c
        .kubectl_command(&[
            "get",
            "configmaps",
            "-w",
            "--output-watch-events",
            "-o",
            "name",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut watch = Guard(child);
    let stdout = watch.0.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut n = 0;
    let established = poll(Duration::from_secs(20), || {
        n += 1;
        c.kubectl_ok(&["create", "configmap", &format!("before-{n}")]);
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l.contains("before-"))
    });
    assert!(established.is_some(), "the watch did not start");

    let addr = format!("127.0.0.1:{}", c.port);
    let mut silent: Vec<std::net::TcpStream> = (0..50)
        .map(|_| std::net::TcpStream::connect(&addr).unwrap())
        .collect();
    // Half a request header over a finished TLS handshake.
    let half = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import socket, ssl, sys\n\
             ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE\n\
             s = ctx.wrap_socket(socket.create_connection(('127.0.0.1', int(sys.argv[1]))))\n\
             s.sendall(b'GET /api HTTP/1.1\\r\\nHost: x')\n\
             s.settimeout(30)\n\
             print('closed' if s.recv(1) == b'' else 'answered')\n",
        )
        .arg(c.port.to_string())
        .output()
        .unwrap();
    for s in silent.iter_mut() {
        assert!(
            closed_by_server(s),
            "a connection without a ClientHello stayed open"
        );
    }
    assert_eq!(
        String::from_utf8_lossy(&half.stdout).trim(),
        "closed",
        "{}",
        String::from_utf8_lossy(&half.stderr)
    );

    // The deadline passed for the watch's connection too: it still delivers.
    c.kubectl_ok(&["create", "configmap", "after-deadline"]);
    let seen = poll(Duration::from_secs(20), || {
        rx.recv_timeout(Duration::from_millis(500))
            .ok()
            .filter(|l| l.contains("after-deadline"))
    });
    assert!(seen.is_some(), "the watch stopped delivering");
}
