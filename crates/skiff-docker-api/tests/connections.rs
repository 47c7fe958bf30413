//! Connection deadlines of the Docker socket (short ones here): connections that send
//! nothing, or half a request header, are closed; a streaming reply (`GET /events`) stays
//! open past the deadline and keeps delivering.

use std::path::Path;
use std::time::Duration;

use skiff_docker_api::Limits;
use skiff_engine::{Engine, EngineConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Waits (up to a generous bound) for the server to close `s`; false if it never does.
async fn closed_by_server(s: &mut UnixStream) -> bool {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

async fn connect(socket: &Path) -> UnixStream {
    for _ in 0..200 {
        if let Ok(s) = UnixStream::connect(socket).await {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the socket never accepted");
}

#[tokio::test]
async fn idle_and_half_requests_are_closed_but_streams_stay() {
    let dir = tempfile::Builder::new()
        .prefix("skiff-api-conn")
        .tempdir()
        .unwrap();
    let engine = Engine::open(EngineConfig {
        root: dir.path().join("root"),
        state: dir.path().join("state"),
        default_runtime: "runc".into(),
        exe: std::path::PathBuf::from("/bin/false"),
        cgroup_parent: "skiff-api-conn-test".into(),
        registry: Default::default(),
    })
    .await
    .unwrap();
    let socket = dir.path().join("docker.sock");
    let limits = Limits {
        handshake: Duration::from_secs(1),
        header: Duration::from_secs(1),
        max_connections: 64,
    };
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let served = socket.clone();
    let server = tokio::spawn(async move {
        let stop = async move {
            let _ = stop_rx.await;
        };
        skiff_docker_api::serve_with(engine, &served, limits, stop).await
    });

    let mut events = connect(&socket).await;
    events
        .write_all(b"GET /v1.45/events HTTP/1.1\r\nHost: docker\r\n\r\n")
        .await
        .unwrap();
    let mut head = vec![0u8; 1024];
    let n = events.read(&mut head).await.unwrap();
    assert!(
        String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&head[..n])
    );

    let mut idle: Vec<UnixStream> = Vec::new();
    for _ in 0..20 {
        idle.push(connect(&socket).await);
    }
    let mut half = connect(&socket).await;
    half.write_all(b"GET /_ping HTTP/1.1\r\nHost: doc")
        .await
        .unwrap();
    for s in idle.iter_mut() {
        assert!(closed_by_server(s).await, "an idle connection stayed open");
    }
    assert!(
        closed_by_server(&mut half).await,
        "a half request stayed open"
    );

    // The deadline has passed for the event stream too; it still delivers.
    let mut create = connect(&socket).await;
    let body = br#"{"Name":"after-deadline"}"#;
    create
        .write_all(
            format!(
                "POST /v1.45/volumes/create HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    create.write_all(body).await.unwrap();
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !String::from_utf8_lossy(&seen).contains("after-deadline") {
        let mut buf = [0u8; 4096];
        let n = tokio::time::timeout_at(deadline, events.read(&mut buf))
            .await
            .expect("the event arrives")
            .unwrap();
        assert!(n > 0, "the event stream was closed");
        seen.extend_from_slice(&buf[..n]);
    }
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
}
