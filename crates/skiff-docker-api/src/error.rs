//! The one error type of the HTTP edge: a kind (mapped to a status code here and nowhere else)
//! and the message Docker clients print, rendered as Docker's `{"message": "..."}` body.

use std::error::Error as StdError;

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use skiff_core::{ErrorKind, HasKind};

/// An error answered to a Docker client.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// A malformed request (400).
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidArgument, message)
    }

    /// Any error that knows its kind; its message is the whole chain of causes joined by `: `,
    /// as Docker prints them.
    pub fn from_kinded<E: HasKind + StdError>(err: &E) -> Self {
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Self {
            kind: err.kind(),
            message,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status code Docker answers for this kind of error (moby's errdefs → HTTP).
    pub fn status(&self) -> StatusCode {
        match self.kind {
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict | ErrorKind::WrongState => StatusCode::CONFLICT,
            // Docker has no 422: semantic errors are bad parameters.
            ErrorKind::InvalidArgument | ErrorKind::Unprocessable => StatusCode::BAD_REQUEST,
            ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            ErrorKind::Gone => StatusCode::GONE,
            ErrorKind::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<skiff_engine::EngineError> for ApiError {
    fn from(err: skiff_engine::EngineError) -> Self {
        Self::from_kinded(&err)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), message = %self.message, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), message = %self.message, "request refused");
        }
        (
            status,
            axum::Json(serde_json::json!({ "message": self.message })),
        )
            .into_response()
    }
}

/// What every handler returns.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("inner cause")]
    struct Inner;

    #[derive(Debug, thiserror::Error)]
    #[error("outer failure")]
    struct Outer(#[source] Inner);

    impl HasKind for Outer {
        fn kind(&self) -> ErrorKind {
            ErrorKind::Conflict
        }
    }

    #[test]
    fn message_joins_the_cause_chain() {
        let e = ApiError::from_kinded(&Outer(Inner));
        assert_eq!(e.to_string(), "outer failure: inner cause");
        assert_eq!(e.status(), StatusCode::CONFLICT);
    }

    #[test]
    fn unprocessable_is_a_bad_request_in_docker() {
        let e = ApiError::new(ErrorKind::Unprocessable, "x");
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
    }
}
