//! `docker search`: the v1 search API (`GET /v1/search?q=…&n=…`) of the registry a term
//! names (`localhost:5000/app` searches `localhost:5000` for `app`; Docker Hub's index
//! otherwise), as dockerd queries it. Registries without that API (the distribution
//! registry has none) answer a status dockerd reports as `Unexpected status code N`.

use serde::{Deserialize, Serialize};

use super::config::{Endpoint, Resolved, DOCKER_HUB};
use super::error::{RegistryError, Result};
use super::Credentials;

/// One search result, as the v1 API and the Engine API both spell it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchResult {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub star_count: i64,
    #[serde(default)]
    pub is_official: bool,
    #[serde(default)]
    pub is_automated: bool,
}

#[derive(Deserialize)]
struct Results {
    #[serde(default)]
    results: Vec<SearchResult>,
}

/// Splits a term into its registry and the query, as moby's `splitReposSearchTerm`: the
/// first component is a registry when it has a `.` or `:` or is `localhost`.
fn split_term(term: &str) -> (&str, &str) {
    match term.split_once('/') {
        Some((host, rest)) if host.contains(['.', ':']) || host == "localhost" => (host, rest),
        _ => (DOCKER_HUB, term),
    }
}

pub(crate) async fn search(
    resolved: &Resolved,
    term: &str,
    limit: usize,
    credentials: &Credentials,
) -> Result<Vec<SearchResult>> {
    let (host, query) = split_term(term);
    if query.is_empty() {
        return Err(RegistryError::Invalid("search term cannot be empty".into()));
    }
    let endpoint = if host == DOCKER_HUB {
        Endpoint {
            host: "index.docker.io".into(),
            plain_http: false,
            mirror: false,
        }
    } else {
        resolved.endpoint(host)
    };
    let url = format!("{}/v1/search", endpoint.base_url());
    let mut request = super::http_client()?
        .get(&url)
        .query(&[("q", query), ("n", &limit.to_string())]);
    if let Some((user, password)) = credentials.user_password()? {
        request = request.basic_auth(user, Some(password));
    }
    let response = request.send().await.map_err(|source| RegistryError::Http {
        context: format!("cannot reach {url}"),
        source,
    })?;
    if !response.status().is_success() {
        return Err(RegistryError::Unexpected(format!(
            "Unexpected status code {}",
            response.status().as_u16()
        )));
    }
    let results: Results = response.json().await.map_err(|e| {
        RegistryError::BadContent(format!("invalid search results from {url}: {e}"))
    })?;
    Ok(results.results.into_iter().take(limit).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_name_their_registry_like_dockers() {
        assert_eq!(split_term("busybox"), (DOCKER_HUB, "busybox"));
        assert_eq!(
            split_term("library/busybox"),
            (DOCKER_HUB, "library/busybox")
        );
        assert_eq!(split_term("localhost:5000/app"), ("localhost:5000", "app"));
        assert_eq!(split_term("localhost/app"), ("localhost", "app"));
        assert_eq!(split_term("r.example/a/b"), ("r.example", "a/b"));
    }
}
