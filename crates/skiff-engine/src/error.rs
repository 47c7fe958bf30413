//! The engine's error type. Messages are worded exactly as dockerd words them, because the
//! Docker CLI and docker-py show them to users verbatim.

use skiff_core::{ErrorKind, HasKind};

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("No such container: {0}")]
    NoSuchContainer(String),
    #[error("No such image: {0}")]
    NoSuchImage(String),
    #[error("No such exec instance: {0}")]
    NoSuchExec(String),
    #[error("get {0}: no such volume")]
    NoSuchVolume(String),
    #[error("network {0} not found")]
    NoSuchNetwork(String),
    #[error(
        "Conflict. The container name \"{name}\" is already in use by container \"{id}\". You have to remove (or rename) that container to be able to reuse that name."
    )]
    NameConflict { name: String, id: String },
    /// Bad input, worded like Docker.
    #[error("{0}")]
    InvalidArgument(String),
    #[error("Container {0} is not running")]
    NotRunning(String),
    #[error("Container {0} is paused, unpause the container before stopping or killing")]
    Paused(String),
    #[error(
        "You cannot remove a running container {0}. Stop the container before attempting removal or force remove"
    )]
    RemoveRunning(String),
    /// The object's state forbids the operation (message worded like Docker).
    #[error("{0}")]
    Conflict(String),
    /// A path inside a container that does not exist (`docker cp`).
    #[error("Could not find the file {path} in container {container}")]
    NoSuchPath { container: String, path: String },
    #[error("{0} is not implemented by skiff yet")]
    NotImplemented(&'static str),
    /// The runtime refused to create or start the container (Docker's 400 for a command that
    /// cannot run, the shim's kind otherwise).
    #[error("failed to create task for container")]
    StartFailed(#[source] skiff_runtime::shim::ShimError),
    /// The runtime refused to start an exec'd process (Docker's words and statuses, as
    /// [`EngineError::StartFailed`]).
    #[error("OCI runtime exec failed")]
    ExecFailed(#[source] skiff_runtime::shim::ShimError),
    #[error(transparent)]
    Image(#[from] skiff_image::ImageError),
    /// A build's Dockerfile, context or options are refused.
    #[error(transparent)]
    Build(#[from] skiff_build::BuildError),
    /// A pull, push or login (the registry client words its errors as dockerd does).
    #[error(transparent)]
    Registry(#[from] skiff_image::registry::RegistryError),
    #[error(transparent)]
    Spec(#[from] skiff_runtime::spec::SpecError),
    /// Host networking (messages of user-facing kinds are Docker's own).
    #[error(transparent)]
    Net(#[from] skiff_net::NetError),
    /// Something else that does not exist (a driver, a plugin), worded like Docker.
    #[error("{0}")]
    NotFound(String),
    /// Refused because of what is in use (Docker's 403 for networks).
    #[error("{0}")]
    Forbidden(String),
    /// The host refused something the engine did on the user's behalf (Docker's 500, its
    /// words: a volume that cannot be mounted).
    #[error("{0}")]
    System(String),
    /// A container's network could not be set up at its start.
    #[error("failed to set up container networking: {0}")]
    NetworkSetup(Box<EngineError>),
    #[error("{context}")]
    Shim {
        context: String,
        #[source]
        source: skiff_runtime::shim::ShimError,
    },
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl EngineError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        EngineError::InvalidArgument(msg.into())
    }
}

impl HasKind for EngineError {
    fn kind(&self) -> ErrorKind {
        match self {
            EngineError::NoSuchContainer(_)
            | EngineError::NoSuchImage(_)
            | EngineError::NoSuchExec(_)
            | EngineError::NoSuchVolume(_)
            | EngineError::NoSuchNetwork(_)
            | EngineError::NotFound(_)
            | EngineError::NoSuchPath { .. } => ErrorKind::NotFound,
            EngineError::NameConflict { .. }
            | EngineError::Conflict(_)
            | EngineError::RemoveRunning(_) => ErrorKind::Conflict,
            EngineError::InvalidArgument(_) => ErrorKind::InvalidArgument,
            EngineError::NotRunning(_) | EngineError::Paused(_) => ErrorKind::WrongState,
            EngineError::NotImplemented(_) => ErrorKind::NotImplemented,
            EngineError::Image(e) => e.kind(),
            EngineError::Build(e) => e.kind(),
            EngineError::Registry(e) => e.kind(),
            EngineError::Spec(e) => e.kind(),
            EngineError::Net(e) => match e.kind() {
                skiff_net::ErrorKind::Invalid => ErrorKind::InvalidArgument,
                skiff_net::ErrorKind::NotFound => ErrorKind::NotFound,
                skiff_net::ErrorKind::Conflict => ErrorKind::Conflict,
                skiff_net::ErrorKind::Forbidden => ErrorKind::Forbidden,
                skiff_net::ErrorKind::System => ErrorKind::Internal,
            },
            EngineError::Forbidden(_) => ErrorKind::Forbidden,
            EngineError::NetworkSetup(e) => e.kind(),
            EngineError::StartFailed(e) | EngineError::ExecFailed(e) => match e {
                // A shim that vanished during a start is the engine's trouble, not a state
                // the user asked about.
                skiff_runtime::shim::ShimError::NotRunning(_) => ErrorKind::Internal,
                other => other.kind(),
            },
            EngineError::Shim { source, .. } => source.kind(),
            EngineError::Io { .. } | EngineError::System(_) => ErrorKind::Internal,
        }
    }
}

impl EngineError {
    /// The exit code Docker records for a container or exec whose start failed: 127 for a
    /// command that does not exist, 126 for one that cannot be executed, 128 otherwise.
    pub(crate) fn start_exit_code(&self) -> Option<i64> {
        let (EngineError::StartFailed(e) | EngineError::ExecFailed(e)) = self else {
            return None;
        };
        let command = match e {
            skiff_runtime::shim::ShimError::Remote(remote) => remote.command,
            _ => None,
        };
        Some(command.map_or(128, |c| i64::from(c.exit_code())))
    }
}

/// The error and its causes on one line, as Docker shows errors (`State.Error`, messages).
pub(crate) fn message_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Attaches a context message to I/O results.
pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| EngineError::Io {
            context: f(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| EngineError::Io {
            context: f(),
            source: e.into(),
        })
    }
}

impl<T> IoContext<T> for std::result::Result<T, skiff_runtime::shim::ShimError> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| EngineError::Shim {
            context: f(),
            source,
        })
    }
}
