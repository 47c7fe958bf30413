//! The option and result types of the engine's API (logs, attach, wait, list, commit,
//! events, `docker cp` stat), apart from the engine itself.

use bytes::Bytes;
use futures::stream::BoxStream;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::error::{EngineError, Result};
use crate::filters::Filters;
use crate::models::ContainerConfig;

/// A bidirectional byte stream (attach, exec): reads are the output, writes go to stdin,
/// shutting down the write half closes stdin.
pub trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}

/// An attached stdio stream. Without a tty the output is Docker's multiplexed framing (8-byte
/// header `[stream, 0, 0, 0, len u32 BE]` + payload); with a tty it is raw bytes.
pub struct Attached {
    pub tty: bool,
    pub io: Box<dyn Duplex>,
}

/// `docker wait --condition`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WaitCondition {
    /// Return at once if the container is not running, else at its exit (default).
    #[default]
    NotRunning,
    /// Return at the container's next exit.
    NextExit,
    /// Return when the container has been removed.
    Removed,
}

impl std::str::FromStr for WaitCondition {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            other => Err(EngineError::InvalidArgument(format!(
                "invalid condition: \"{other}\""
            ))),
        }
    }
}

/// `GET /containers/json` options.
#[derive(Debug, Clone, Default)]
pub struct ListOptions {
    pub all: bool,
    /// Only the `limit` most recently created (implies all when > 0).
    pub limit: Option<i64>,
    pub size: bool,
    pub filters: Filters,
}

/// `GET /containers/{id}/logs` options.
#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    /// Unix seconds (fractional allowed); 0 = from the start.
    pub since: Option<f64>,
    /// Unix seconds; 0 = no end.
    pub until: Option<f64>,
    pub timestamps: bool,
    /// `"all"` or a line count, as the query gives it.
    pub tail: Option<String>,
    /// `--details`: each line is prefixed with the attributes its log entry carries (none
    /// for now) and a space, as Docker does.
    pub details: bool,
}

/// Which stream a log chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStream {
    Stdout,
    Stderr,
}

/// One log line (or raw chunk with a tty), already timestamp-prefixed when asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    pub stream: LogStream,
    pub data: Bytes,
}

/// The output of `logs`: frame it by `tty` like attach does.
pub struct Logs {
    pub tty: bool,
    pub stream: BoxStream<'static, LogChunk>,
}

/// `POST /containers/{id}/attach` options.
#[derive(Debug, Clone, Default)]
pub struct AttachOptions {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Replay the log before streaming.
    pub logs: bool,
    pub stream: bool,
    /// `detachKeys`: the sequence that ends the session of a tty attach with stdin (Docker's
    /// format, e.g. `ctrl-p,ctrl-q`, the default).
    pub detach_keys: Option<String>,
}

/// `POST /commit` options.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    /// Name the image `repo:tag` (tag defaults to `latest`).
    pub repo: Option<String>,
    pub tag: Option<String>,
    /// The history entry's comment.
    pub comment: Option<String>,
    pub author: Option<String>,
    /// Dockerfile lines applied to the image's config (`CMD ["sh"]`, `ENV A=1`, …).
    pub changes: Vec<String>,
    /// Pause a running container while its filesystem is read (Docker's default).
    pub pause: bool,
    /// The image's config instead of the container's (what it leaves empty still comes from
    /// the container's).
    pub config: Option<ContainerConfig>,
}

/// `GET /events` options.
#[derive(Debug, Clone, Default)]
pub struct EventsOptions {
    /// Unix seconds: replay remembered events from then.
    pub since: Option<i64>,
    /// Unix seconds: end the stream then (a past value ends it after the replay).
    pub until: Option<i64>,
    pub filters: Filters,
}

/// What `HEAD/GET /containers/{id}/archive` reports about a path (the
/// `X-Docker-Container-Path-Stat` header, base64 of this as JSON).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go `os.FileMode` bits (e.g. directories have bit 31 set).
    pub mode: u32,
    /// RFC 3339.
    pub mtime: String,
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}
