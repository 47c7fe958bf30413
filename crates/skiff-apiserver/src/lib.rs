//! The Kubernetes-compatible API server: HTTPS, authentication, discovery, OpenAPI, and
//! generic REST over the resources it serves, stored as JSON in a [`skiff_store::Store`].
//!
//! It owns wire ⇄ object translation, validation, defaulting, patching and Table printing.
//! It must not run workloads or reconcile anything beyond what the API itself guarantees
//! (garbage collection through ownerReferences, namespace finalization): controllers and the
//! scheduler are clients of this API.

#![forbid(unsafe_code)]

pub mod admission;
pub mod auth;
mod cache;
pub mod clusterconfig;
mod components;
mod convert;
pub mod csrsigning;
pub mod defaults;
mod discovery;
pub mod encryption;
pub mod error;
mod handlers;
mod health;
mod http;
pub mod kinds;
pub mod kubelet_client;
pub mod kubelet_identity;
mod kubelet_metrics;
mod lookup;
pub mod metrics;
mod namespaces;
pub mod nodeauth;
pub mod nodeipam;
pub mod nodes;
pub mod object;
mod openapi;
pub mod patch;
pub mod pki;
pub mod protobuf;
pub mod rbac;
pub mod registry;
pub mod resources;
pub mod reviews;
pub mod router;
mod secrets;
pub mod selector;
pub mod server;
pub mod serviceaccount;
pub mod services;
pub mod ssa;
mod storage;
pub mod table;
pub mod validation;
mod watch;
mod yaml;

pub use error::{ApiError, Cause};
pub use router::{in_process_client, in_process_router, router, ApiState};
pub use server::{Config, Server, ServerError};
