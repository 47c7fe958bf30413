//! API version negotiation: the optional `/v1.NN` path prefix is checked against the supported
//! range and stripped before routing, and every response carries the headers clients negotiate
//! from (`Api-Version`, `Ostype`, `Docker-Experimental`, `Server`).

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Uri};

use crate::error::ApiError;

/// The newest API version served; what `/_ping` advertises.
pub const API_VERSION: &str = "1.50";
/// The oldest API version accepted in a path prefix.
pub const MIN_API_VERSION: &str = "1.41";

/// A parsed `major.minor` API version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Version(u32, u32);

impl Version {
    fn parse(s: &str) -> Option<Self> {
        let (major, minor) = s.split_once('.')?;
        Some(Self(major.parse().ok()?, minor.parse().ok()?))
    }
}

/// Splits `/v1.50/containers/json` into `("1.50", "/containers/json")`; paths without a
/// version prefix give `None`.
fn split_version(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("/v")?;
    let end = rest.find('/').unwrap_or(rest.len());
    let version = &rest[..end];
    if version.is_empty() || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    Some((version, &rest[end..]))
}

/// Checks a requested version against the supported range, with Docker's messages.
fn check_version(requested: &str) -> Result<(), ApiError> {
    let min = Version::parse(MIN_API_VERSION).expect("constant");
    let max = Version::parse(API_VERSION).expect("constant");
    let Some(v) = Version::parse(requested) else {
        return Err(ApiError::bad_request(format!(
            "invalid API version {requested:?}"
        )));
    };
    if v < min {
        return Err(ApiError::bad_request(format!(
            "client version {requested} is too old. Minimum supported API version is {MIN_API_VERSION}, \
             please upgrade your client to a newer version"
        )));
    }
    if v > max {
        return Err(ApiError::bad_request(format!(
            "client version {requested} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    Ok(())
}

/// Middleware run before routing: strips and checks the version prefix, adds the version
/// headers to the response.
pub async fn negotiate(mut req: Request, next: Next) -> Response {
    let rewritten =
        split_version(req.uri().path()).map(|(v, rest)| (v.to_owned(), rest.to_owned()));
    let mut response = match rewritten {
        Some((version, rest)) => match check_version(&version) {
            Err(e) => e.into_response(),
            Ok(()) => {
                let path_and_query = match req.uri().query() {
                    Some(q) => format!("{}?{q}", if rest.is_empty() { "/" } else { &rest }),
                    None => {
                        if rest.is_empty() {
                            "/".to_owned()
                        } else {
                            rest
                        }
                    }
                };
                match Uri::builder().path_and_query(path_and_query).build() {
                    Ok(uri) => {
                        *req.uri_mut() = uri;
                        next.run(req).await
                    }
                    Err(e) => {
                        ApiError::bad_request(format!("invalid request path: {e}")).into_response()
                    }
                }
            }
        },
        None => next.run(req).await,
    };
    let headers = response.headers_mut();
    headers.insert("api-version", HeaderValue::from_static(API_VERSION));
    headers.insert("ostype", HeaderValue::from_static("linux"));
    headers.insert("docker-experimental", HeaderValue::from_static("false"));
    headers.insert(
        http::header::SERVER,
        HeaderValue::from_static(concat!("skiff/", env!("CARGO_PKG_VERSION"), " (linux)")),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_version_prefix() {
        assert_eq!(
            split_version("/v1.50/containers/json"),
            Some(("1.50", "/containers/json"))
        );
        assert_eq!(split_version("/v1.41/_ping"), Some(("1.41", "/_ping")));
        assert_eq!(split_version("/containers/json"), None);
        assert_eq!(split_version("/version"), None);
    }

    #[test]
    fn rejects_versions_outside_range() {
        assert!(check_version("1.50").is_ok());
        assert!(check_version("1.41").is_ok());
        let old = check_version("1.12").unwrap_err().to_string();
        assert!(old.contains("too old"), "{old}");
        let new = check_version("1.99").unwrap_err().to_string();
        assert!(new.contains("too new"), "{new}");
        assert!(check_version("1.2.3").is_err());
    }
}
