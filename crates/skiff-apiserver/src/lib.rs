//! The Kubernetes-compatible API server: HTTPS, authentication, discovery, OpenAPI, and
//! generic REST over the resources it serves, stored as JSON in a [`skiff_store::Store`].
//!
//! It owns wire ⇄ object translation, validation, defaulting, patching and Table printing.
//! It must not run workloads or reconcile anything beyond what the API itself guarantees
//! (garbage collection through ownerReferences, namespace finalization): controllers and the
//! scheduler are clients of this API.

pub mod error;
pub mod resources;

pub use error::{ApiError, Cause};
