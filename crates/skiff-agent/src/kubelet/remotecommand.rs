//! exec and attach over SPDY/3.1 (`v4.channel.k8s.io`), what kubectl falls back to when the
//! WebSocket upgrade is refused (or `KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`): the client opens
//! one SPDY stream per channel (`streamType` error, stdin, stdout, stderr, resize); the command
//! starts once every stream the request asked for is open; its output goes to the stdout and
//! stderr streams, and the status (a `Status` as JSON) to the error stream at its end.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use skiff_engine::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::channels::{demux, start, status_json, Outcome, Streams, STDOUT};
use super::spdy::{self, Frame};
use super::{text, Body};

const PROTOCOL: &str = "v4.channel.k8s.io";

/// Answers the SPDY upgrade (when `v4.channel.k8s.io` is offered) and runs the session.
pub(super) fn upgrade(
    req: &mut http::Request<hyper::body::Incoming>,
    engine: Arc<Engine>,
    id: String,
    streams: Streams,
    exec: bool,
) -> Response<Body> {
    let offered = req
        .headers()
        .get_all("X-Stream-Protocol-Version")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(str::trim))
        .any(|p| p == PROTOCOL);
    if !offered {
        return text(
            StatusCode::FORBIDDEN,
            format!("unable to upgrade: the client does not offer {PROTOCOL}"),
        );
    }
    let on_upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let io = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "remotecommand: upgrade failed");
                return;
            }
        };
        let (reader, mut writer) = tokio::io::split(io);
        let (out, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        tokio::spawn(async move {
            while let Some(bytes) = out_rx.recv().await {
                if writer.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            let _ = writer.shutdown().await;
        });
        session(reader, out, engine, id, streams, exec).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "SPDY/3.1")
        .header("X-Stream-Protocol-Version", PROTOCOL)
        .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync())
        .expect("a valid response")
}

/// The SPDY streams of one session, by type.
#[derive(Default, Clone)]
struct Ids(HashMap<String, u32>);

async fn session(
    reader: impl tokio::io::AsyncRead + Unpin,
    out: mpsc::UnboundedSender<Vec<u8>>,
    engine: Arc<Engine>,
    id: String,
    streams: Streams,
    exec: bool,
) {
    let mut wanted = vec!["error"];
    if streams.stdin {
        wanted.push("stdin");
    }
    if streams.stdout {
        wanted.push("stdout");
    }
    if streams.stderr && !streams.tty {
        wanted.push("stderr");
    }
    if streams.tty {
        wanted.push("resize");
    }
    let mut headers = spdy::Headers::default();
    let mut ids = Ids::default();
    let (stdin_tx, stdin_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (resize_tx, resize_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let mut stdin_tx = Some(stdin_tx);
    let mut pending = Some((stdin_rx, resize_rx, streams));
    let mut frames = spdy::FrameReader::new(reader);
    loop {
        let Some(frame) = frames.next("remotecommand").await else {
            return;
        };
        match frame {
            Frame::Control {
                kind: spdy::SYN_STREAM,
                data,
                ..
            } => {
                let (Some(stream), Some(block)) = (spdy::first_word(&data), data.get(10..)) else {
                    return;
                };
                let Ok(pairs) = headers.decode(block) else {
                    return;
                };
                let Ok(reply_block) = headers.encode(&[]) else {
                    return;
                };
                let mut reply = stream.to_be_bytes().to_vec();
                reply.extend_from_slice(&reply_block);
                let _ = out.send(spdy::control(spdy::SYN_REPLY, 0, &reply));
                if let Some((_, kind)) = pairs.iter().find(|(k, _)| k == "streamtype") {
                    ids.0.insert(kind.clone(), stream);
                }
                if wanted.iter().all(|w| ids.0.contains_key(*w)) {
                    if let Some((stdin_rx, resize_rx, streams)) = pending.take() {
                        tokio::spawn(run(
                            engine.clone(),
                            id.clone(),
                            streams,
                            exec,
                            ids.clone(),
                            stdin_rx,
                            resize_rx,
                            out.clone(),
                        ));
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
                kind: spdy::GOAWAY, ..
            } => return,
            Frame::Control { .. } => {}
            Frame::Data {
                stream,
                flags,
                data,
            } => {
                let is = |kind: &str| ids.0.get(kind) == Some(&stream);
                if is("stdin") {
                    if let Some(tx) = &stdin_tx {
                        if !data.is_empty() {
                            let _ = tx.send(data);
                        }
                    }
                    if flags & spdy::FLAG_FIN != 0 {
                        stdin_tx = None;
                    }
                } else if is("resize") && !data.is_empty() {
                    let _ = resize_tx.send(data);
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run(
    engine: Arc<Engine>,
    id: String,
    streams: Streams,
    exec: bool,
    ids: Ids,
    mut stdin_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut resize_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    out: mpsc::UnboundedSender<Vec<u8>>,
) {
    let stream_of = |kind: &str| ids.0.get(kind).copied();
    let finish = |outcome: Outcome| {
        for kind in ["stdout", "stderr", "stdin", "resize"] {
            if let Some(s) = stream_of(kind) {
                let _ = out.send(spdy::data(s, spdy::FLAG_FIN, &[]));
            }
        }
        if let Some(e) = stream_of("error") {
            let status = status_json(&outcome).to_string();
            let _ = out.send(spdy::data(e, 0, status.as_bytes()));
            let _ = out.send(spdy::data(e, spdy::FLAG_FIN, &[]));
        }
    };
    let (attached, exec_id) = match start(&engine, &id, &streams, exec).await {
        Ok(s) => s,
        Err(message) => return finish(Outcome::Failed(message)),
    };
    let wired = chrono::Utc::now();
    let tty = attached.tty;
    let (mut output, mut stdin) = tokio::io::split(attached.io);
    let stdin_task = tokio::spawn(async move {
        while let Some(bytes) = stdin_rx.recv().await {
            if stdin.write_all(&bytes).await.is_err() {
                break;
            }
        }
        let _ = stdin.shutdown().await;
    });
    let (resize_engine, resize_id, resize_exec) = (engine.clone(), id.clone(), exec_id.clone());
    let resize_task = tokio::spawn(async move {
        let mut pending: Vec<u8> = Vec::new();
        while let Some(bytes) = resize_rx.recv().await {
            pending.extend_from_slice(&bytes);
            let sizes = sizes(&mut pending);
            for (w, h) in sizes {
                let _ = match &resize_exec {
                    Some(e) => resize_engine.exec_resize(e, h, w).await,
                    None => resize_engine.container_resize(&resize_id, h, w).await,
                };
            }
        }
    });
    let mut buf = vec![0u8; 32 * 1024];
    let mut frames_pending: Vec<u8> = Vec::new();
    let mut forwarded = 0;
    loop {
        let n = match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let frames = if tty {
            vec![(STDOUT, buf[..n].to_vec())]
        } else {
            frames_pending.extend_from_slice(&buf[..n]);
            demux(&mut frames_pending)
        };
        for (channel, data) in frames {
            let kind = if channel == STDOUT {
                "stdout"
            } else {
                "stderr"
            };
            if let Some(s) = stream_of(kind) {
                forwarded += data.len();
                let _ = out.send(spdy::data(s, 0, &data));
            }
        }
    }
    let outcome =
        super::channels::outcome(&engine, &id, exec_id.as_deref(), wired, forwarded).await;
    finish(outcome);
    stdin_task.abort();
    resize_task.abort();
}

/// The complete `{"Width":…,"Height":…}` objects at the front of `pending` (taken off it).
fn sizes(pending: &mut Vec<u8>) -> Vec<(u16, u16)> {
    let mut values = serde_json::Deserializer::from_slice(pending).into_iter::<serde_json::Value>();
    let mut out = Vec::new();
    for size in values.by_ref().flatten() {
        out.push((
            size["Width"].as_u64().unwrap_or(0) as u16,
            size["Height"].as_u64().unwrap_or(0) as u16,
        ));
    }
    let used = values.byte_offset();
    pending.drain(..used);
    out
}
