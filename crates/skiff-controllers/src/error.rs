//! What a reconcile can fail with. Kinds stay kinds: an API refusal keeps its `Status`.

/// Errors of a reconcile or of the controller set.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The API server refused or failed a request.
    #[error("API request failed")]
    Api(#[from] kube::Error),
    /// An object the controller reads is malformed (e.g. a selector that does not parse).
    #[error("invalid {kind} {name}: {reason}")]
    Invalid {
        kind: &'static str,
        name: String,
        reason: String,
    },
    /// An object could not be turned into (or out of) JSON.
    #[error("cannot encode an object")]
    Encode(#[from] serde_json::Error),
}

impl Error {
    /// The API's HTTP status, when the API answered with one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::Api(kube::Error::Api(s)) => Some(s.code),
            _ => None,
        }
    }

    /// The API said 409: someone else changed the object first.
    pub fn is_conflict(&self) -> bool {
        self.status() == Some(409)
    }

    /// The API said 404.
    pub fn is_not_found(&self) -> bool {
        self.status() == Some(404)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The error and its causes, one line.
pub fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}
