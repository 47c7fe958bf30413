//! The front end of `docker build`: the Dockerfile (parsed by `parse-dockerfile`, then
//! typed and checked here), variable substitution, `.dockerignore`, the build context
//! (received as a tar, unpacked by skiff-image's safe extractor) and the build plan —
//! which stages the target needs, which can run in parallel, and each step's cache key.
//!
//! It runs nothing: the executor (RUN steps as engine containers, layers from their upper
//! dirs, image configs and history) lives with the engine and walks a [`plan::BuildPlan`].
//! This crate depends on skiff-image only, so the engine can depend on it.
#![forbid(unsafe_code)]

pub mod context;
pub mod dockerfile;
mod error;
pub mod ignore;
pub mod plan;

pub use error::{BuildError, Result};
