//! The front end of `docker build`: the Dockerfile (parsed by `parse-dockerfile`, then
//! typed and checked here), variable substitution, `.dockerignore`, the build context
//! (received as a tar, unpacked by skiff-image's safe extractor) and the build plan —
//! which stages the target needs, which can run in parallel, and each step's cache key.
//!
//! It runs nothing itself: [`exec::execute`] is the build loop (order, parallel stages,
//! cache decisions) over a [`exec::Backend`] that the engine implements (RUN steps as
//! engine containers, layers from their upper dirs, image configs and history).
//! This crate depends on skiff-image only, so the engine can depend on it.
#![forbid(unsafe_code)]

pub mod context;
pub mod dockerfile;
mod error;
pub mod exec;
pub mod history;
pub mod ignore;
pub mod plan;

pub use error::{BuildError, Result};
