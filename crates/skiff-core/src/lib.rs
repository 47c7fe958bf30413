//! Shared vocabulary of every skiff crate: error kinds, ids, default paths, Docker's units,
//! the cluster settings nodes share with the server, the kubelet's stats summary,
//! (feature `serve`) the connection limits both HTTP APIs apply, (feature `cron`) the
//! CronJob schedule parser the API server and the CronJob controller share, and (feature
//! `certs`) when a certificate is due for renewal, for nodes and the API server alike.
//!
//! Owns nothing stateful and must not depend on any other skiff crate. Protocol-specific
//! error formats (Docker `{"message"}`, Kubernetes `Status`) are produced at the API edges
//! from [`ErrorKind`], never here.

#![forbid(unsafe_code)]

#[cfg(feature = "certs")]
pub mod certs;
pub mod cluster;
#[cfg(feature = "cron")]
pub mod cron;
pub mod ids;
pub mod jointoken;
pub mod paths;
#[cfg(feature = "serve")]
pub mod serve;
pub mod statsapi;
pub mod testing;
pub mod units;

/// What went wrong, independent of any wire protocol. Each crate's error enum maps onto one
/// of these through [`HasKind`]; each API edge turns them into its own status codes (Docker's
/// in skiff-docker-api, Kubernetes' in skiff-apiserver). Kinds cross process boundaries as
/// kinds (the shim protocol carries them), never as text to re-parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The named object does not exist.
    NotFound,
    /// The object exists already, or a precondition on its version failed.
    Conflict,
    /// The request is malformed or names an impossible setting.
    InvalidArgument,
    /// The request is well-formed but semantically invalid.
    Unprocessable,
    /// The caller is not authenticated.
    Unauthorized,
    /// The caller may not do this.
    Forbidden,
    /// A requested version is no longer available.
    Gone,
    /// The request body is too large.
    TooLarge,
    /// The object is in a state that does not allow the operation.
    WrongState,
    /// The operation is not supported by this implementation.
    NotImplemented,
    /// Anything else.
    Internal,
}

/// Implemented by every crate's error type so the edges can classify it.
pub trait HasKind {
    fn kind(&self) -> ErrorKind;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_cross_the_wire_by_name() {
        let line = serde_json::to_string(&ErrorKind::WrongState).unwrap();
        assert_eq!(line, r#""wrong_state""#);
        assert_eq!(
            serde_json::from_str::<ErrorKind>(r#""not_found""#).unwrap(),
            ErrorKind::NotFound
        );
    }
}
