//! Shared vocabulary of every skiff crate: error kinds, ids, default paths, Docker's units.
//!
//! Owns nothing stateful and must not depend on any other skiff crate. Protocol-specific
//! error formats (Docker `{"message"}`, Kubernetes `Status`) are produced at the API edges
//! from [`ErrorKind`], never here.

pub mod ids;
pub mod paths;
pub mod units;

/// What went wrong, independent of any wire protocol. Each crate's error enum maps onto one
/// of these through [`HasKind`]; the API edges turn them into HTTP codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The named object does not exist (HTTP 404).
    NotFound,
    /// The object exists already, or a precondition on its version failed (HTTP 409).
    Conflict,
    /// The request is malformed or names an impossible setting (HTTP 400).
    InvalidArgument,
    /// The request is well-formed but semantically invalid (HTTP 422 in Kubernetes).
    Unprocessable,
    /// The caller is not authenticated (HTTP 401).
    Unauthorized,
    /// The caller may not do this (HTTP 403).
    Forbidden,
    /// A requested version is no longer available (HTTP 410).
    Gone,
    /// The request body is too large (HTTP 413).
    TooLarge,
    /// The object is in a state that does not allow the operation (HTTP 409 in Docker).
    WrongState,
    /// The operation is not supported by this implementation (HTTP 501).
    NotImplemented,
    /// Anything else (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// The HTTP status code an API edge should answer with.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorKind::NotFound => 404,
            ErrorKind::Conflict | ErrorKind::WrongState => 409,
            ErrorKind::InvalidArgument => 400,
            ErrorKind::Unprocessable => 422,
            ErrorKind::Unauthorized => 401,
            ErrorKind::Forbidden => 403,
            ErrorKind::Gone => 410,
            ErrorKind::TooLarge => 413,
            ErrorKind::NotImplemented => 501,
            ErrorKind::Internal => 500,
        }
    }
}

/// Implemented by every crate's error type so the edges can classify it.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}
