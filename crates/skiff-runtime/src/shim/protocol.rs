//! The wire protocol on `shim.sock`, shared by the shim and [`super::ShimClient`].
//!
//! A client connects, writes one JSON [`Request`] terminated by `\n` and reads one JSON
//! [`Reply`] line. `wait` and `exec_wait` answer only when the process ends. After a successful
//! `attach` or `exec` reply the connection turns raw: the shim writes the process's output
//! (Docker's 8-byte multiplexed frames without a tty, raw bytes with one) and reads its stdin;
//! the client shutting down its write half ends stdin. Nothing here does I/O.

use serde::{Deserialize, Serialize};
use skiff_core::ErrorKind;

use super::ExecRequest;
use crate::backend::CommandError;

/// Longest request line the shim accepts (an exec request carries a whole OCI process).
pub(crate) const MAX_REQUEST: usize = 1 << 20;

/// Docker's stream numbers in a multiplexed frame header.
pub(crate) const STDOUT: u8 = 1;
pub(crate) const STDERR: u8 = 2;

/// One request line.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub(crate) enum Request {
    State,
    Start,
    Kill {
        signal: i32,
        all: bool,
    },
    Pause,
    Resume,
    Wait,
    /// With `start`, the shim also starts the created container once the stream is
    /// attached (one round trip for `docker run`'s attach-then-start) and answers its pid.
    Attach {
        stdin: bool,
        stdout: bool,
        stderr: bool,
        #[serde(default)]
        start: bool,
    },
    Resize {
        height: u16,
        width: u16,
    },
    Exec(Box<ExecRequest>),
    ExecWait {
        exec_id: String,
    },
    ExecPid {
        exec_id: String,
    },
    ExecResize {
        exec_id: String,
        height: u16,
        width: u16,
    },
}

/// An error as it crosses the shim socket and the launch pipe: its kind and, when the
/// container's command was the reason, that reason survive the trip (containerd's shims send
/// errdefs kinds over ttrpc the same way), so the engine never re-reads the message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(from = "WireError")]
#[error("{message}")]
pub struct RemoteError {
    pub kind: ErrorKind,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandError>,
}

impl RemoteError {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> RemoteError {
        RemoteError {
            kind,
            message: message.into(),
            command: None,
        }
    }
}

/// What a shim may send as an error: a kinded one, or the bare text shims of skiff 0.1 sent
/// (still running after an upgrade; their kind is unknown).
#[derive(Deserialize)]
#[serde(untagged)]
enum WireError {
    Kinded {
        kind: ErrorKind,
        message: String,
        #[serde(default)]
        command: Option<CommandError>,
    },
    Text(String),
}

impl From<WireError> for RemoteError {
    fn from(wire: WireError) -> RemoteError {
        match wire {
            WireError::Kinded {
                kind,
                message,
                command,
            } => RemoteError {
                kind,
                message,
                command,
            },
            WireError::Text(message) => RemoteError::new(ErrorKind::Internal, message),
        }
    }
}

/// One reply line: `{"ok": value}` or `{"error": {"kind": …, "message": …}}`. The launch
/// report written to the launcher's pipe has the same shape (`ok` = the container's init pid).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Reply {
    Ok(serde_json::Value),
    Error(RemoteError),
}

impl Reply {
    /// The reply as a JSON line.
    pub(crate) fn to_line(&self) -> Vec<u8> {
        let mut line = serde_json::to_vec(self).unwrap_or_else(|_| {
            br#"{"error":{"kind":"internal","message":"unserializable reply"}}"#.to_vec()
        });
        line.push(b'\n');
        line
    }

    pub(crate) fn ok(value: impl Serialize) -> Reply {
        match serde_json::to_value(value) {
            Ok(value) => Reply::Ok(value),
            Err(e) => Reply::Error(RemoteError::new(
                ErrorKind::Internal,
                format!("unserializable reply: {e}"),
            )),
        }
    }
}

/// The 8-byte header Docker puts before each chunk of a multiplexed stream.
pub(crate) fn frame_header(stream: u8, len: usize) -> [u8; 8] {
    let len = u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes();
    [stream, 0, 0, 0, len[0], len[1], len[2], len[3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        let line = serde_json::to_string(&Request::Kill {
            signal: 9,
            all: true,
        })
        .unwrap();
        assert_eq!(line, r#"{"op":"kill","signal":9,"all":true}"#);
        let parsed: Request = serde_json::from_str(r#"{"op":"exec_pid","exec_id":"e1"}"#).unwrap();
        assert!(matches!(parsed, Request::ExecPid { exec_id } if exec_id == "e1"));
    }

    #[test]
    fn exec_request_round_trips_with_its_process() {
        let mut process = oci_spec::runtime::Process::default();
        process.set_args(Some(vec!["ls".into(), "-l".into()]));
        let request = Request::Exec(Box::new(ExecRequest {
            exec_id: "x".into(),
            process,
            tty: false,
            attach_stdin: false,
            attach_stdout: true,
            attach_stderr: true,
        }));
        let line = serde_json::to_string(&request).unwrap();
        let Request::Exec(back) = serde_json::from_str(&line).unwrap() else {
            panic!("not an exec: {line}")
        };
        assert_eq!(back.exec_id, "x");
        assert_eq!(
            back.process.args().as_deref(),
            Some(&["ls".to_string(), "-l".to_string()][..])
        );
    }

    #[test]
    fn garbage_is_not_a_request() {
        assert!(serde_json::from_str::<Request>(r#"{"op":"format_disk"}"#).is_err());
        assert!(serde_json::from_str::<Request>("\u{0}\u{1}").is_err());
    }

    #[test]
    fn errors_keep_their_kind_across_the_socket() {
        let sent = Reply::Error(RemoteError {
            kind: ErrorKind::InvalidArgument,
            message: "exec: \"nope\": executable file not found in $PATH".into(),
            command: Some(CommandError::NotFound),
        });
        let line = sent.to_line();
        assert_eq!(
            std::str::from_utf8(&line).unwrap(),
            "{\"error\":{\"kind\":\"invalid_argument\",\"message\":\"exec: \\\"nope\\\": executable file not found in $PATH\",\"command\":\"not_found\"}}\n"
        );
        let Reply::Error(back) = serde_json::from_slice(&line).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(
            (back.kind, back.command),
            (ErrorKind::InvalidArgument, Some(CommandError::NotFound))
        );
        let Reply::Error(plain) =
            serde_json::from_str(r#"{"error":{"kind":"wrong_state","message":"m"}}"#).unwrap()
        else {
            panic!("not an error")
        };
        assert_eq!((plain.kind, plain.command), (ErrorKind::WrongState, None));
    }

    #[test]
    fn text_errors_of_older_shims_are_internal() {
        let Reply::Error(old) = serde_json::from_str(r#"{"error":"disk on fire"}"#).unwrap() else {
            panic!("not an error")
        };
        assert_eq!(old, RemoteError::new(ErrorKind::Internal, "disk on fire"));
    }

    #[test]
    fn frame_header_is_stream_then_big_endian_length() {
        assert_eq!(frame_header(STDERR, 0x0102_0304), [2, 0, 0, 0, 1, 2, 3, 4]);
    }
}
