//! The crate's error type. Messages of user-facing kinds are Docker's own wording, so the API
//! edge can pass them through unchanged; [`NetError::kind`] tells the edge which status to use.

use std::path::PathBuf;

/// What kind of failure an error is, for mapping to a status code at the API edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Bad input (400).
    Invalid,
    /// Unknown network, sandbox or endpoint (404).
    NotFound,
    /// Clashes with existing state: a name taken, a port in use (409).
    Conflict,
    /// Refused because of what is in use: an overlapping subnet, a taken address, a network
    /// with endpoints (Docker answers 403).
    Forbidden,
    /// The host refused or failed an operation (500).
    System,
}

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("netlink: {context}")]
    Netlink {
        context: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("corrupt state file {}", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

impl NetError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            NetError::Invalid(_) => ErrorKind::Invalid,
            NetError::NotFound(_) => ErrorKind::NotFound,
            NetError::Conflict(_) => ErrorKind::Conflict,
            NetError::Forbidden(_) => ErrorKind::Forbidden,
            NetError::Io { .. }
            | NetError::Netlink { .. }
            | NetError::Nft(_)
            | NetError::State { .. } => ErrorKind::System,
        }
    }

    pub(crate) fn invalid(msg: impl Into<String>) -> NetError {
        NetError::Invalid(msg.into())
    }

    pub(crate) fn conflict(msg: impl Into<String>) -> NetError {
        NetError::Conflict(msg.into())
    }

    pub(crate) fn forbidden(msg: impl Into<String>) -> NetError {
        NetError::Forbidden(msg.into())
    }
}

pub type Result<T, E = NetError> = std::result::Result<T, E>;

/// Adds a context line to I/O and netlink failures.
pub(crate) trait Context<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| NetError::Io {
            context: context(),
            source,
        })
    }
}

impl<T> Context<T> for std::result::Result<T, nix::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| NetError::Io {
            context: context(),
            source: e.into(),
        })
    }
}

impl<T> Context<T> for std::result::Result<T, rtnetlink::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| NetError::Netlink {
            context: context(),
            source,
        })
    }
}
