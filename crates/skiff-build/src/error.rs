//! The build front end's error type.

use skiff_core::{ErrorKind, HasKind};

pub type Result<T, E = BuildError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile does not parse or an instruction is invalid: Docker's
    /// `dockerfile parse error on line N: …`.
    #[error("dockerfile parse error on line {line}: {message}")]
    Dockerfile { line: usize, message: String },
    /// A `.dockerignore` line Docker would refuse.
    #[error(".dockerignore line {line}: {message}")]
    Ignore { line: usize, message: String },
    /// The build context is refused (size, escaping links, paths outside it).
    #[error("{0}")]
    Context(String),
    /// An option that names something that does not exist (`--target`, `COPY --from`).
    #[error("{0}")]
    Invalid(String),
    /// Unpacking the context or reading it failed.
    #[error(transparent)]
    Image(#[from] skiff_image::ImageError),
    #[error("{context}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl BuildError {
    pub(crate) fn at(line: usize, message: impl Into<String>) -> BuildError {
        BuildError::Dockerfile {
            line,
            message: message.into(),
        }
    }
}

impl HasKind for BuildError {
    fn kind(&self) -> ErrorKind {
        match self {
            BuildError::Dockerfile { .. }
            | BuildError::Ignore { .. }
            | BuildError::Context(_)
            | BuildError::Invalid(_) => ErrorKind::InvalidArgument,
            BuildError::Image(e) => e.kind(),
            BuildError::Io { .. } => ErrorKind::Internal,
        }
    }
}

pub(crate) trait IoContext<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn ctx<F: FnOnce() -> String>(self, f: F) -> Result<T> {
        self.map_err(|source| BuildError::Io {
            context: f(),
            source,
        })
    }
}
