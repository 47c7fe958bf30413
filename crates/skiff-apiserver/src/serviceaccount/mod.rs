//! Service accounts as identities: the signing key and its JWTs ([`signer`]), the
//! TokenRequest subresource ([`tokenrequest`]), authentication of bound and legacy tokens
//! ([`authn`]), `SelfSubjectReview` ([`review`]) and the ServiceAccount admission of pods
//! ([`admission`]).
//!
//! It decides who a token is; what that identity may do is decided by RBAC bindings
//! ([`crate::rbac`]).

pub mod admission;
pub mod authn;
pub mod review;
pub mod signer;
pub mod tokenrequest;

pub use signer::{TokenSigner, DEFAULT_ISSUER};
