//! The registry client's error type.

use skiff_core::{ErrorKind, HasKind};

use crate::ImageError;

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A malformed reference, platform, `X-Registry-Auth` header or registry address.
    #[error("{0}")]
    Invalid(String),
    /// The registry refused the credentials (or wants some).
    #[error("{0}")]
    Unauthorized(String),
    /// The repository, tag or digest does not exist, or no manifest fits the platform.
    #[error("{0}")]
    NotFound(String),
    /// The registry sent something that must not be used: a blob whose digest or size
    /// differs from its descriptor, an oversized manifest, an unsupported media type.
    #[error("{0}")]
    BadContent(String),
    /// A request to the registry failed (connection, protocol, server error).
    #[error("{context}")]
    Transport {
        context: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    /// The login probe failed to reach the registry.
    #[error("{context}")]
    Http {
        context: String,
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered a status the operation does not expect (`docker search` of a
    /// registry without the search API: `Unexpected status code 404`, as dockerd says).
    #[error("{0}")]
    Unexpected(String),
    /// Reading or writing the local store (including layers the unpacker refuses).
    #[error(transparent)]
    Store(#[from] ImageError),
}

/// What an `oci-client` error means to the user.
enum Class {
    Unauthorized(String),
    NotFound(String),
    BadContent(String),
    Other,
}

fn classify(source: &oci_client::errors::OciDistributionError) -> Class {
    use oci_client::errors::{OciDistributionError as E, OciErrorCode};
    match source {
        E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => {
            Class::Unauthorized("unauthorized: authentication required".into())
        }
        E::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| matches!(e.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
        {
            Class::Unauthorized(registry_messages(envelope))
        }
        E::RegistryError { envelope, .. }
            if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) =>
        {
            Class::NotFound(registry_messages(envelope))
        }
        E::ServerError { code: 404, .. } | E::ImageManifestNotFoundError(_) => {
            Class::NotFound("not found".into())
        }
        E::RequestError(e) if matches!(e.status().map(|s| s.as_u16()), Some(401 | 403)) => {
            Class::Unauthorized("unauthorized: authentication required".into())
        }
        E::DigestError(e) => Class::BadContent(e.to_string()),
        _ => Class::Other,
    }
}

impl RegistryError {
    /// Wraps an `oci-client` error, classifying authentication and not-found answers.
    pub(crate) fn transport(
        context: impl Into<String>,
        source: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        let context = context.into();
        match classify(&source) {
            Class::Unauthorized(m) => RegistryError::Unauthorized(format!("{context}: {m}")),
            Class::NotFound(m) => RegistryError::NotFound(format!("{context}: {m}")),
            Class::BadContent(m) => RegistryError::BadContent(format!("{context}: {m}")),
            Class::Other => RegistryError::Transport { context, source },
        }
    }

    /// A failed manifest fetch of `reference` (in `repository`), worded as dockerd words it:
    /// `manifest for R not found: …`, `pull access denied for REPO, …`.
    pub(crate) fn manifest(
        reference: &str,
        repository: &str,
        source: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        match classify(&source) {
            Class::Unauthorized(m) => RegistryError::Unauthorized(format!(
                "pull access denied for {repository}, repository does not exist or may require 'docker login': {m}"
            )),
            Class::NotFound(m) => {
                RegistryError::NotFound(format!("manifest for {reference} not found: {m}"))
            }
            Class::BadContent(m) => {
                RegistryError::BadContent(format!("manifest for {reference}: {m}"))
            }
            Class::Other => RegistryError::Transport {
                context: format!("cannot fetch the manifest of {reference}"),
                source,
            },
        }
    }
}

impl RegistryError {
    /// A failed tag listing of `repository` (`docker pull --all-tags`).
    pub(crate) fn tags(
        repository: &str,
        source: oci_client::errors::OciDistributionError,
    ) -> RegistryError {
        match classify(&source) {
            Class::Other => RegistryError::Transport {
                context: format!("cannot list the tags of {repository}"),
                source,
            },
            _ => RegistryError::manifest(repository, repository, source),
        }
    }
}

fn registry_messages(envelope: &oci_client::errors::OciEnvelope) -> String {
    envelope
        .errors
        .iter()
        .map(|e| {
            // Docker prints codes as words: MANIFEST_UNKNOWN → "manifest unknown".
            let code = serde_json::to_value(&e.code)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.to_lowercase().replace('_', " ")))
                .unwrap_or_default();
            format!("{code}: {}", e.message)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl HasKind for RegistryError {
    fn kind(&self) -> ErrorKind {
        match self {
            RegistryError::Invalid(_) => ErrorKind::InvalidArgument,
            RegistryError::Unauthorized(_) => ErrorKind::Unauthorized,
            RegistryError::NotFound(_) => ErrorKind::NotFound,
            RegistryError::BadContent(_)
            | RegistryError::Transport { .. }
            | RegistryError::Http { .. }
            | RegistryError::Unexpected(_) => ErrorKind::Internal,
            RegistryError::Store(e) => e.kind(),
        }
    }
}
