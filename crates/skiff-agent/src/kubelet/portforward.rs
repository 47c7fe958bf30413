//! `/portForward/NS/POD`: Kubernetes' port-forward protocol (`portforward.k8s.io`) over
//! SPDY/3.1, either on the upgraded connection itself (`Upgrade: SPDY/3.1`) or tunnelled in
//! WebSocket binary messages (`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+). The client opens
//! an error stream and a data stream per connection (headers `streamtype`, `port`,
//! `requestid`); each data stream is joined to a TCP connection to `127.0.0.1:PORT` made inside
//! the pod's network namespace. A failed connect is written to the error stream.

use std::collections::HashMap;
use std::path::PathBuf;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;

use super::spdy::{self, Frame};
use super::{text, Body, Kubelet};

const WS_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const PROTOCOL: &str = "portforward.k8s.io";

pub(super) async fn serve(
    kubelet: &Kubelet,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let netns = match pod_netns(kubelet, ns, pod).await {
        Ok(n) => n,
        Err(r) => return r,
    };
    let header = |name: http::header::HeaderName| {
        req.headers()
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
            .collect::<Vec<_>>()
    };
    let upgrade = header(http::header::UPGRADE);
    let websocket = upgrade.iter().any(|u| u.eq_ignore_ascii_case("websocket"));
    let spdy = upgrade.iter().any(|u| u.eq_ignore_ascii_case("SPDY/3.1"));
    let response = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade");
    let response = if websocket {
        if !header(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .any(|p| p == WS_PROTOCOL)
        {
            return text(
                StatusCode::BAD_REQUEST,
                format!("unable to upgrade: port forwarding over WebSocket needs the {WS_PROTOCOL} subprotocol"),
            );
        }
        let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY) else {
            return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
        };
        let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
        response
            .header(http::header::UPGRADE, "websocket")
            .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
            .header(http::header::SEC_WEBSOCKET_PROTOCOL, WS_PROTOCOL)
    } else if spdy {
        response
            .header(http::header::UPGRADE, "SPDY/3.1")
            .header("X-Stream-Protocol-Version", PROTOCOL)
    } else {
        return text(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: port forwarding needs an upgrade to SPDY/3.1 or WebSocket",
        );
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: upgrade failed");
                return;
            }
        };
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        if websocket {
            let ws =
                tokio_tungstenite::WebSocketStream::from_raw_socket(io, Role::Server, None).await;
            let (mut sink, source) = ws.split();
            tokio::spawn(async move {
                while let Some(bytes) = out_rx.recv().await {
                    if sink.send(Message::Binary(bytes.into())).await.is_err() {
                        return;
                    }
                }
                let _ = sink.close().await;
            });
            let reader = tokio_util::io::StreamReader::new(
                source
                    .take_while(|m| std::future::ready(!matches!(m, Ok(Message::Close(_)))))
                    .filter_map(|m| {
                        std::future::ready(match m {
                            Ok(Message::Binary(b)) => Some(Ok(Bytes::from(b.to_vec()))),
                            Ok(_) => None,
                            Err(e) => Some(Err(std::io::Error::other(e))),
                        })
                    }),
            );
            session(reader, out_tx, netns).await;
        } else {
            let (reader, mut writer) = tokio::io::split(io);
            tokio::spawn(async move {
                while let Some(bytes) = out_rx.recv().await {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                let _ = writer.shutdown().await;
            });
            session(reader, out_tx, netns).await;
        }
    });
    response
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
        .expect("a valid response")
}

/// The pod's network namespace (None: the host's network), if the pod runs here.
async fn pod_netns(
    kubelet: &Kubelet,
    ns: &str,
    pod: &str,
) -> Result<Option<PathBuf>, Response<Body>> {
    let list = kubelet
        .engine
        .container_list(&skiff_engine::ListOptions {
            all: false,
            filters: skiff_engine::Filters::from_pairs([
                (
                    "label",
                    format!("{}={ns}", crate::labels::POD_NAMESPACE).as_str(),
                ),
                (
                    "label",
                    format!("{}={pod}", crate::labels::POD_NAME).as_str(),
                ),
            ]),
            ..Default::default()
        })
        .await
        .unwrap_or_default();
    let uid = list
        .iter()
        .find_map(|c| c.labels.as_ref()?.get(crate::labels::POD_UID).cloned())
        .ok_or_else(|| {
            text(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} has no running container on this node"),
            )
        })?;
    let record = kubelet.sandboxes_dir.join(&uid).join("sandbox.json");
    let sandbox: crate::sandbox::PodSandbox = std::fs::read(&record)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(|| {
            text(
                StatusCode::NOT_FOUND,
                format!("pod {ns}/{pod} has no sandbox on this node"),
            )
        })?;
    Ok(sandbox.netns)
}

/// A TCP connection to `127.0.0.1:port` inside `netns`, made on a thread of its own (the
/// namespace switch ends with it); the socket stays in the pod's namespace.
async fn connect(netns: Option<PathBuf>, port: u16) -> std::io::Result<tokio::net::TcpStream> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let result = (|| -> std::io::Result<std::net::TcpStream> {
            if let Some(path) = netns {
                let file = std::fs::File::open(&path)?;
                nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                    .map_err(std::io::Error::from)?;
            }
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let s = std::net::TcpStream::connect_timeout(&addr, std::time::Duration::from_secs(5))?;
            s.set_nonblocking(true)?;
            Ok(s)
        })();
        let _ = tx.send(result);
    });
    let std = rx
        .await
        .map_err(|_| std::io::Error::other("connect thread ended"))??;
    tokio::net::TcpStream::from_std(std)
}

/// Serves one port-forward connection: frames in from `reader`, frames out through `out`.
async fn session(
    reader: impl AsyncRead + Unpin,
    out: mpsc::UnboundedSender<Vec<u8>>,
    netns: Option<PathBuf>,
) {
    let mut headers = spdy::Headers::default();
    let mut frames = spdy::FrameReader::new(reader);
    // requestid → error stream; data stream → its connection's input.
    let mut errors: HashMap<String, u32> = HashMap::new();
    let mut inputs: HashMap<u32, mpsc::UnboundedSender<Vec<u8>>> = HashMap::new();
    loop {
        let Some(frame) = frames.next("port-forward").await else {
            return;
        };
        match frame {
            Frame::Control {
                kind: spdy::SYN_STREAM,
                data,
                ..
            } => {
                let (Some(id), Some(block)) = (spdy::first_word(&data), data.get(10..)) else {
                    return;
                };
                let pairs = match headers.decode(block) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::debug!(error = %e, "port-forward: bad header block");
                        return;
                    }
                };
                let get = |k: &str| {
                    pairs
                        .iter()
                        .find(|(n, _)| n == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let Ok(reply_block) = headers.encode(&[]) else {
                    return;
                };
                let mut reply = id.to_be_bytes().to_vec();
                reply.extend_from_slice(&reply_block);
                let _ = out.send(spdy::control(spdy::SYN_REPLY, 0, &reply));
                match get("streamtype").as_str() {
                    "error" => {
                        errors.insert(get("requestid"), id);
                    }
                    "data" => {
                        let error_stream = errors.remove(&get("requestid"));
                        let (tx, rx) = mpsc::unbounded_channel();
                        inputs.insert(id, tx);
                        let port = get("port");
                        tokio::spawn(forward(
                            id,
                            error_stream,
                            port,
                            netns.clone(),
                            rx,
                            out.clone(),
                        ));
                    }
                    _ => {
                        let _ = out.send(spdy::data(id, spdy::FLAG_FIN, &[]));
                    }
                }
            }
            Frame::Control {
                kind: spdy::PING,
                data,
                ..
            } => {
                let _ = out.send(spdy::control(spdy::PING, 0, &data));
            }
            Frame::Control {
                kind: spdy::RST_STREAM,
                data,
                ..
            } => {
                if let Some(id) = spdy::first_word(&data) {
                    inputs.remove(&id);
                }
            }
            Frame::Control {
                kind: spdy::GOAWAY, ..
            } => return,
            Frame::Control { .. } => {}
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                if let Some(tx) = inputs.get(&stream) {
                    if !data.is_empty() {
                        let _ = tx.send(data);
                    }
                }
                if flags & spdy::FLAG_FIN != 0 {
                    inputs.remove(&stream);
                }
            }
        }
    }
}

/// Joins data stream `id` to a connection to `port` in the pod.
async fn forward(
    id: u32,
    error_stream: Option<u32>,
    port: String,
    netns: Option<PathBuf>,
    mut input: mpsc::UnboundedReceiver<Vec<u8>>,
    out: mpsc::UnboundedSender<Vec<u8>>,
) {
    let finish = |message: Option<String>| {
        if let Some(e) = error_stream {
            if let Some(m) = message {
                let _ = out.send(spdy::data(e, 0, m.as_bytes()));
            }
            let _ = out.send(spdy::data(e, spdy::FLAG_FIN, &[]));
        }
        let _ = out.send(spdy::data(id, spdy::FLAG_FIN, &[]));
    };
    let Ok(port_number) = port.parse::<u16>() else {
        finish(Some(format!("invalid port {port:?}")));
        return;
    };
    let stream = match connect(netns, port_number).await {
        Ok(s) => s,
        Err(e) => {
            finish(Some(format!(
                "error forwarding port {port_number} to pod: failed to connect to localhost:{port_number} inside the pod: {e}"
            )));
            return;
        }
    };
    let (mut rd, mut wr) = stream.into_split();
    let to_pod = async move {
        while let Some(bytes) = input.recv().await {
            if wr.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    };
    let out_data = out.clone();
    let from_pod = async move {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if out_data.send(spdy::data(id, 0, &buf[..n])).is_err() {
                        break;
                    }
                }
            }
        }
    };
    let to_pod = tokio::spawn(to_pod);
    from_pod.await;
    finish(None);
    to_pod.abort();
}
