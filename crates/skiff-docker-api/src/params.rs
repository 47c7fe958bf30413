//! Request decoding with Docker's conventions: query booleans (`1`, `true`, `True`), numbers,
//! and JSON bodies with a size limit, each failing with a message a Docker client prints.

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Request};
use http::request::Parts;
use http_body_util::BodyExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use skiff_core::ErrorKind;

/// Largest JSON request body accepted (container configs, exec configs, …).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// The query string as Docker reads it: the last value of a key wins, except for the list
/// parameters read with [`Params::all`].
#[derive(Debug, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// The parameters of a request URI; an undecodable query string counts as empty.
    pub fn from_uri(uri: &http::Uri) -> Self {
        let pairs = axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
            .map(|q| q.0)
            .unwrap_or_default();
        Self(pairs)
    }

    #[cfg(test)]
    fn parse(query: &str) -> Self {
        Self::from_uri(&format!("/x?{query}").parse().expect("test uri"))
    }

    fn last(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// A non-empty value.
    pub fn str(&self, key: &str) -> Option<&str> {
        self.last(key).filter(|s| !s.is_empty())
    }

    /// Every non-empty value of a repeated key (`names=a&names=b`).
    pub fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// A boolean flag; absent or empty is `false`, Docker's spellings of true are accepted.
    pub fn bool(&self, key: &str) -> Result<bool, ApiError> {
        match self.last(key) {
            None | Some("") => Ok(false),
            Some("1" | "true" | "True" | "TRUE") => Ok(true),
            Some("0" | "false" | "False" | "FALSE") => Ok(false),
            Some(other) => Err(ApiError::bad_request(format!(
                "invalid value for {key}: {other:?}"
            ))),
        }
    }

    /// A boolean flag that defaults to `true` when absent.
    pub fn bool_or_true(&self, key: &str) -> Result<bool, ApiError> {
        if self.str(key).is_none() {
            return Ok(true);
        }
        self.bool(key)
    }

    /// A number, when present.
    pub fn num<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>, ApiError> {
        match self.str(key) {
            None => Ok(None),
            Some(s) => s
                .parse()
                .map(Some)
                .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {s:?}"))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        Ok(Self::from_uri(&parts.uri))
    }
}

/// A JSON body of at most [`MAX_JSON_BODY`] bytes. An empty body decodes as `null`, so an
/// `Option<T>` target accepts it.
pub struct DockerJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for DockerJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let bytes = read_limited(req.into_body(), MAX_JSON_BODY).await?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"null"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes)
            .map(DockerJson)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    }
}

/// Reads a whole body, refusing more than `limit` bytes with 413.
pub async fn read_limited(body: Body, limit: usize) -> Result<bytes::Bytes, ApiError> {
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            ErrorKind::TooLarge,
            format!("request body too large: the limit is {limit} bytes"),
        )),
        Err(e) => Err(ApiError::bad_request(format!("reading request body: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_accept_docker_spellings() {
        let p = Params::parse("a=1&b=true&c=0&d=&e=yes");
        assert!(p.bool("a").unwrap());
        assert!(p.bool("b").unwrap());
        assert!(!p.bool("c").unwrap());
        assert!(!p.bool("d").unwrap());
        assert!(!p.bool("missing").unwrap());
        assert!(p.bool("e").is_err());
        assert!(p.bool_or_true("missing").unwrap());
    }

    #[test]
    fn numbers_are_checked() {
        let p = Params::parse("t=10&tail=all");
        assert_eq!(p.num::<i64>("t").unwrap(), Some(10));
        assert!(p.num::<i64>("tail").is_err());
        assert_eq!(p.num::<i64>("x").unwrap(), None);
        let p = Params::parse("names=a&names=b%2Fc&names=");
        assert_eq!(p.all("names"), vec!["a", "b/c"]);
    }

    #[tokio::test]
    async fn oversized_json_is_413() {
        let body = Body::from(vec![b' '; MAX_JSON_BODY + 1]);
        let err = read_limited(body, MAX_JSON_BODY).await.unwrap_err();
        assert_eq!(err.status(), http::StatusCode::PAYLOAD_TOO_LARGE);
    }
}
