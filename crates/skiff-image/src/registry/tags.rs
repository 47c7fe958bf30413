//! A repository's tags (`GET /v2/<name>/tags/list`, paginated), for `docker pull --all-tags`.

use super::config::Resolved;
use super::error::{RegistryError, Result};
use super::{oci_client_for, oci_ref, Credentials};
use crate::ImageRef;

/// Tags asked for per page (registries may send fewer and a `Link` to the next page; the
/// `last` parameter walks the pages).
const PAGE: usize = 1000;
/// More tags than anyone pulls at once: a registry that never stops paging is cut here.
const MAX_TAGS: usize = 100_000;

pub(crate) async fn list(
    resolved: &Resolved,
    repository: &ImageRef,
    credentials: &Credentials,
) -> Result<Vec<String>> {
    let endpoints = resolved.endpoints(repository.domain());
    let mut failure = None;
    for endpoint in &endpoints {
        match list_from(endpoint, repository, credentials).await {
            Ok(tags) => return Ok(tags),
            Err(error) if endpoint.mirror => {
                tracing::warn!(mirror = %endpoint.host, %error, "mirror failed; trying the next");
                failure = Some(error);
            }
            Err(error) => return Err(error),
        }
    }
    Err(failure.unwrap_or_else(|| RegistryError::Invalid(format!("no endpoint for {repository}"))))
}

async fn list_from(
    endpoint: &super::config::Endpoint,
    repository: &ImageRef,
    credentials: &Credentials,
) -> Result<Vec<String>> {
    let auth = credentials.to_auth()?;
    let client = oci_client_for(endpoint, 1)?;
    let oref = oci_ref(repository, endpoint);
    let shown = repository.familiar_repository();
    let mut tags: Vec<String> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut last: Option<String> = None;
    loop {
        let page = client
            .list_tags(&oref, &auth, Some(PAGE), last.as_deref())
            .await
            .map_err(|e| RegistryError::tags(&shown, e))?;
        let full = page.tags.len() >= PAGE;
        last = page.tags.last().cloned();
        let before = tags.len();
        tags.extend(page.tags.into_iter().filter(|t| seen.insert(t.clone())));
        if !full || tags.len() == before || tags.len() >= MAX_TAGS {
            break;
        }
    }
    tags.sort();
    Ok(tags)
}
