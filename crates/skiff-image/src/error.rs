//! The crate's error type and its mapping onto [`skiff_core::ErrorKind`].

use skiff_core::{ErrorKind, HasKind};

pub type Result<T, E = ImageError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// No image matches the name or id (Docker's wording).
    #[error("No such image: {0}")]
    NotFound(String),
    /// A hex prefix matches several images.
    #[error("ambiguous image id prefix {0:?}: several images match")]
    Ambiguous(String),
    /// The operation conflicts with the image's state (in use, several names).
    #[error("conflict: {0}")]
    Conflict(String),
    /// A malformed reference, Dockerfile change or archive.
    #[error("{0}")]
    InvalidArgument(String),
    /// An archive entry (of a layer, or a `docker cp` archive) that would write outside its
    /// destination or is otherwise refused.
    #[error("{archive} entry {entry:?} {reason}")]
    Hostile {
        archive: &'static str,
        entry: String,
        reason: String,
    },
    /// A filesystem or syscall failure.
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// Resolving a path inside a root failed (see [`crate::confined`]).
    #[error("{context}")]
    Resolve {
        context: String,
        #[source]
        source: pathrs::error::Error,
    },
}

impl ImageError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        ImageError::InvalidArgument(msg.into())
    }

    pub(crate) fn hostile(
        archive: &'static str,
        entry: impl Into<String>,
        reason: impl Into<String>,
    ) -> Self {
        ImageError::Hostile {
            archive,
            entry: entry.into(),
            reason: reason.into(),
        }
    }
}

impl HasKind for ImageError {
    fn kind(&self) -> ErrorKind {
        match self {
            ImageError::NotFound(_) => ErrorKind::NotFound,
            ImageError::Conflict(_) => ErrorKind::Conflict,
            ImageError::Ambiguous(_)
            | ImageError::InvalidArgument(_)
            | ImageError::Hostile { .. } => ErrorKind::InvalidArgument,
            ImageError::Io { .. } | ImageError::Resolve { .. } => ErrorKind::Internal,
        }
    }
}

/// Attaches a context message to I/O results: `fs::read(p).ctx(|| format!("read {p:?}"))`.
pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| ImageError::Io {
            context: f(),
            source,
        })
    }
}

impl<T> IoContext<T> for nix::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|e| ImageError::Io {
            context: f(),
            source: e.into(),
        })
    }
}
