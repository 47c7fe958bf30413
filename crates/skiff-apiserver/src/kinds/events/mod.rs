//! The `events.k8s.io` group (the same Events as core/v1).

pub mod event;
