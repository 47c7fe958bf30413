//! The agent's errors.

/// What can go wrong while the agent runs a node.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("kubernetes API request failed")]
    Api(#[from] kube::Error),
    #[error("engine")]
    Engine(#[from] skiff_engine::EngineError),
    #[error("pod network")]
    Net(#[from] skiff_net::NetError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{context}")]
    Sys {
        context: String,
        #[source]
        source: nix::Error,
    },
    #[error("kubelet API")]
    Kubelet(#[from] crate::kubelet::KubeletError),
    /// The node's own object is unusable (no pod CIDR, bad one).
    #[error("node {node}: {message}")]
    Node { node: String, message: String },
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;

/// Adds what was being done to an I/O or syscall error.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| AgentError::Io {
            context: what(),
            source,
        })
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| AgentError::Sys {
            context: what(),
            source,
        })
    }
}

/// An error with its causes, one after another (for logs and status messages).
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
