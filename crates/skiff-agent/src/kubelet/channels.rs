//! exec and attach over WebSocket with Kubernetes' channel protocols `v5.channel.k8s.io` and
//! `v4.channel.k8s.io`: binary messages whose first byte names the channel — 0 stdin,
//! 1 stdout, 2 stderr, 3 the status (a `Status` as JSON, with the exit code as kubectl reads
//! it), 4 terminal resizes (`{"Width":…,"Height":…}`), and in v5 255 to close a channel
//! (`[255, 0]`: stdin is done). The command runs through the engine's exec; attach joins the
//! container's own stdio. A SPDY/3.1 upgrade goes to [`super::remotecommand`].

use std::convert::Infallible;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use skiff_engine::models::{ExecConfig, ExecStartConfig};
use skiff_engine::{AttachOptions, Attached};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::{flag, query_pairs, text, Body, Kubelet};

/// The channel protocols served, preferred first.
const PROTOCOLS: &[&str] = &["v5.channel.k8s.io", "v4.channel.k8s.io"];

const STDIN: u8 = 0;
pub(super) const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const STATUS: u8 = 3;
const RESIZE: u8 = 4;
const CLOSE: u8 = 255;

/// The protocol a request offers that we speak (`Sec-WebSocket-Protocol` is a list).
fn choose_protocol(req: &Request<Incoming>) -> Option<&'static str> {
    let offered: Vec<String> = req
        .headers()
        .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|p| p.trim().to_string()))
        .collect();
    PROTOCOLS
        .iter()
        .find(|p| offered.iter().any(|o| o == *p))
        .copied()
}

fn is_websocket(req: &Request<Incoming>) -> bool {
    req.headers()
        .get(http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// What the client asked for.
pub(super) struct Streams {
    pub(super) stdin: bool,
    pub(super) stdout: bool,
    pub(super) stderr: bool,
    pub(super) tty: bool,
    pub(super) command: Vec<String>,
}

/// `/exec|attach/NS/POD/CONTAINER`: checks the request, answers the upgrade and runs the
/// session on the upgraded connection.
pub(super) async fn serve(
    kubelet: &Kubelet,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
    exec: bool,
) -> Response<Body> {
    let pairs = query_pairs(&req);
    let streams = Streams {
        stdin: flag(&pairs, &["stdin", "input"]),
        stdout: flag(&pairs, &["stdout", "output"]),
        stderr: flag(&pairs, &["stderr", "error"]),
        tty: flag(&pairs, &["tty"]),
        command: pairs
            .iter()
            .filter(|(k, _)| k == "command")
            .map(|(_, v)| v.clone())
            .collect(),
    };
    if !streams.stdin && !streams.stdout && !streams.stderr {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least 1 of stdin, stdout, stderr",
        );
    }
    if exec && streams.command.is_empty() {
        return text(
            StatusCode::BAD_REQUEST,
            "you must specify at least one command",
        );
    }
    if !is_websocket(&req) {
        let spdy = req
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("SPDY/3.1"));
        if !spdy {
            return text(
                StatusCode::BAD_REQUEST,
                "unable to upgrade: exec and attach need an upgrade to WebSocket \
                 (v5.channel.k8s.io, v4.channel.k8s.io) or SPDY/3.1",
            );
        }
        let id = match kubelet.container_id(ns, pod, container).await {
            Ok(id) => id,
            Err(r) => return r,
        };
        return super::remotecommand::upgrade(&mut req, kubelet.engine.clone(), id, streams, exec);
    }
    let Some(protocol) = choose_protocol(&req) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("unable to upgrade: no supported WebSocket subprotocol offered (supported: {PROTOCOLS:?})"),
        );
    };
    let Some(key) = req.headers().get(http::header::SEC_WEBSOCKET_KEY).cloned() else {
        return text(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let id = match kubelet.container_id(ns, pod, container).await {
        Ok(id) => id,
        Err(r) => return r,
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let engine = kubelet.engine.clone();
    tokio::spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "kubelet API: upgrade failed");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        session(ws, engine, id, streams, exec, protocol == PROTOCOLS[0]).await;
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(http::header::CONNECTION, "Upgrade")
        .header(http::header::UPGRADE, "websocket")
        .header(http::header::SEC_WEBSOCKET_ACCEPT, accept)
        .header(http::header::SEC_WEBSOCKET_PROTOCOL, protocol)
        .body(
            Empty::<Bytes>::new()
                .map_err(|e: Infallible| match e {})
                .boxed_unsync(),
        )
        .expect("a valid response")
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

/// How the session ended, for the status channel.
pub(super) enum Outcome {
    Exited(i64),
    Failed(String),
}

/// Runs one exec or attach session on `ws` until the process's output ends, then sends its
/// status and closes.
async fn session(
    ws: Ws,
    engine: std::sync::Arc<skiff_engine::Engine>,
    id: String,
    streams: Streams,
    exec: bool,
    v5: bool,
) {
    let (mut sink, mut source) = ws.split();
    let (attached, exec_id) = match start(&engine, &id, &streams, exec).await {
        Ok(s) => s,
        Err(message) => {
            let _ = send_status(&mut sink, Outcome::Failed(message)).await;
            close(&mut sink).await;
            let _ = tokio::time::timeout(CLOSE_LINGER, async {
                while let Some(Ok(msg)) = source.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
            return;
        }
    };
    let wired = chrono::Utc::now();
    let Attached { tty, io } = attached;
    let (mut out, mut stdin) = tokio::io::split(io);

    // Client → process: stdin, resizes, the v5 close of stdin.
    let resize_engine = engine.clone();
    let (resize_id, resize_exec) = (id.clone(), exec_id.clone());
    let input = async move {
        let mut stdin_open = true;
        while let Some(Ok(msg)) = source.next().await {
            let data = match msg {
                Message::Binary(d) => d,
                Message::Close(_) => break,
                _ => continue,
            };
            let Some((&channel, payload)) = data.split_first() else {
                continue;
            };
            match channel {
                STDIN if stdin_open && stdin.write_all(payload).await.is_err() => {
                    stdin_open = false;
                }
                RESIZE => {
                    if let Ok(size) = serde_json::from_slice::<serde_json::Value>(payload) {
                        let w = size["Width"].as_u64().unwrap_or(0) as u16;
                        let h = size["Height"].as_u64().unwrap_or(0) as u16;
                        let r = match &resize_exec {
                            Some(e) => resize_engine.exec_resize(e, h, w).await,
                            None => resize_engine.container_resize(&resize_id, h, w).await,
                        };
                        if let Err(e) = r {
                            tracing::debug!(error = %e, "resize failed");
                        }
                    }
                }
                CLOSE if v5 && payload.first() == Some(&STDIN) && stdin_open => {
                    let _ = stdin.shutdown().await;
                    stdin_open = false;
                }
                _ => {}
            }
        }
        if stdin_open {
            let _ = stdin.shutdown().await;
        }
    };
    let mut input = tokio::spawn(input);

    // Process → client.
    let mut buf = vec![0u8; 32 * 1024];
    let mut pending: Vec<u8> = Vec::new();
    let mut forwarded = 0;
    'read: loop {
        let n = match out.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let frames = if tty {
            vec![(STDOUT, buf[..n].to_vec())]
        } else {
            pending.extend_from_slice(&buf[..n]);
            demux(&mut pending)
        };
        for (channel, data) in frames {
            let wanted = match channel {
                STDOUT => streams.stdout,
                _ => streams.stderr,
            };
            if !wanted || data.is_empty() {
                continue;
            }
            forwarded += data.len();
            let mut msg = Vec::with_capacity(data.len() + 1);
            msg.push(channel);
            msg.extend_from_slice(&data);
            if sink.send(Message::Binary(msg.into())).await.is_err() {
                break 'read;
            }
        }
    }
    let outcome = outcome(&engine, &id, exec_id.as_deref(), wired, forwarded).await;
    let _ = send_status(&mut sink, outcome).await;
    close(&mut sink).await;
    // Wait for the client's close (the input side ends on it) before the connection is dropped:
    // closing a socket the client is still writing to (its close reply, a resize) makes the
    // kernel reset it, and the client loses the status it has not read yet ("close 1006").
    if tokio::time::timeout(CLOSE_LINGER, &mut input)
        .await
        .is_err()
    {
        input.abort();
    }
}

/// How long an attach that ended waits for its container's exit to be recorded.
const EXIT_RECORDED: std::time::Duration = std::time::Duration::from_secs(2);

/// How a session that has passed on `forwarded` bytes of output ends: an exec with its exit
/// code; an attach with success, unless its container's process had exited before the
/// attach was `wired`. Then nothing it wrote came through, and the session fails as an
/// attach to an exited container does in Kubernetes, so `kubectl run -i` falls back to the
/// container's logs (a command that ended at once printed nothing when kubectl attached
/// right after it).
pub(super) async fn outcome(
    engine: &skiff_engine::Engine,
    id: &str,
    exec_id: Option<&str>,
    wired: chrono::DateTime<chrono::Utc>,
    forwarded: usize,
) -> Outcome {
    if let Some(e) = exec_id {
        return match engine.exec_inspect(e).await {
            Ok(i) => Outcome::Exited(i.exit_code.unwrap_or(0)),
            Err(e) => Outcome::Failed(crate::error::chain(&e)),
        };
    }
    if forwarded > 0 {
        return Outcome::Exited(0);
    }
    let finished = async {
        engine
            .container_wait(id, skiff_engine::WaitCondition::NotRunning)
            .await
            .ok()?
            .await;
        let state = engine.container_inspect(id, false).await.ok()?.state?;
        chrono::DateTime::parse_from_rfc3339(&state.finished_at?).ok()
    };
    match tokio::time::timeout(EXIT_RECORDED, finished).await {
        Ok(Some(at)) if at < wired => {
            Outcome::Failed("container is in CONTAINER_EXITED state".into())
        }
        _ => Outcome::Exited(0),
    }
}

/// How long a finished session waits for the client's close frame.
const CLOSE_LINGER: std::time::Duration = std::time::Duration::from_secs(5);

/// Starts the exec (returning its id too) or attaches to the container.
pub(super) async fn start(
    engine: &skiff_engine::Engine,
    id: &str,
    streams: &Streams,
    exec: bool,
) -> Result<(Attached, Option<String>), String> {
    if !exec {
        let opts = AttachOptions {
            stdin: streams.stdin,
            stdout: streams.stdout,
            stderr: streams.stderr,
            logs: false,
            stream: true,
            detach_keys: None,
        };
        return engine
            .container_attach(id, opts)
            .await
            .map(|a| (a, None))
            .map_err(|e| crate::error::chain(&e));
    }
    let config = ExecConfig {
        attach_stdin: Some(streams.stdin),
        attach_stdout: Some(streams.stdout),
        attach_stderr: Some(streams.stderr),
        tty: Some(streams.tty),
        cmd: Some(streams.command.clone()),
        ..Default::default()
    };
    let exec_id = engine
        .exec_create(id, config)
        .await
        .map_err(|e| crate::error::chain(&e))?;
    let start = ExecStartConfig {
        detach: Some(false),
        tty: Some(streams.tty),
        console_size: None,
    };
    match engine.exec_start(&exec_id, &start).await {
        Ok(Some(a)) => Ok((a, Some(exec_id))),
        Ok(None) => Err("the exec started detached".into()),
        Err(e) => Err(crate::error::chain(&e)),
    }
}

/// Complete frames of Docker's multiplexed stream taken off the front of `pending`, as
/// (channel, payload); an incomplete frame stays.
pub(super) fn demux(pending: &mut Vec<u8>) -> Vec<(u8, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while pending.len() - at >= 8 {
        let header = &pending[at..at + 8];
        let len = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
        if pending.len() - at - 8 < len {
            break;
        }
        let channel = if header[0] == 2 { STDERR } else { STDOUT };
        out.push((channel, pending[at + 8..at + 8 + len].to_vec()));
        at += 8 + len;
    }
    pending.drain(..at);
    out
}

/// The status message kubectl reads: Success, or the exit code as `NonZeroExitCode`.
pub(super) fn status_json(outcome: &Outcome) -> serde_json::Value {
    match outcome {
        Outcome::Exited(0) => serde_json::json!({"metadata": {}, "status": "Success"}),
        Outcome::Exited(code) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": format!("command terminated with non-zero exit code: exit status {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        Outcome::Failed(message) => serde_json::json!({
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": "InternalError",
            "code": 500,
        }),
    }
}

/// A normal close (1000): clients read the end of every channel as EOF, not as an error.
async fn close(sink: &mut futures::stream::SplitSink<Ws, Message>) {
    let frame = CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    };
    let _ = sink.send(Message::Close(Some(frame))).await;
    let _ = sink.close().await;
}

async fn send_status(
    sink: &mut futures::stream::SplitSink<Ws, Message>,
    outcome: Outcome,
) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut msg = vec![STATUS];
    msg.extend_from_slice(status_json(&outcome).to_string().as_bytes());
    sink.send(Message::Binary(msg.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_frames_become_channels_and_partial_frames_wait() {
        let mut pending = vec![
            1, 0, 0, 0, 0, 0, 0, 2, b'h', b'i', 2, 0, 0, 0, 0, 0, 0, 3, b'e',
        ];
        let frames = demux(&mut pending);
        assert_eq!(frames, vec![(STDOUT, b"hi".to_vec())]);
        assert_eq!(pending.len(), 9, "the stderr frame is not complete yet");
        pending.extend_from_slice(b"rr");
        assert_eq!(demux(&mut pending), vec![(STDERR, b"err".to_vec())]);
        assert!(pending.is_empty());
    }

    #[test]
    fn exit_codes_are_reported_as_kubectl_reads_them() {
        let s = status_json(&Outcome::Exited(3));
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        assert_eq!(status_json(&Outcome::Exited(0))["status"], "Success");
    }
}
