//! Registry client: `docker pull`, `push` and `login` against Docker/OCI distribution
//! registries, through `oci-client` (the protocol is not hand-written here).
//!
//! Pulled images land in the same content store the engine runs from; pushes read from it.
//! Credentials are passed per request (the engine decodes Docker's `X-Registry-Auth` with
//! [`Credentials::from_header`]); progress is reported as Docker's JSON progress messages
//! ([`Progress`]). Plain HTTP is used only for insecure registries ([`RegistryConfig`]).
//!
//! What a hostile registry can send is verified before use: manifests against the digest
//! asked for and a size limit, every blob against its descriptor's digest and size, every
//! layer against its diff id while the safe unpacker (which refuses path escapes) unpacks
//! it into staging. A failed pull leaves nothing in the store.

mod auth;
mod config;
mod error;
mod media;
mod platform;
mod progress;
mod pull;
mod push;
mod search;
mod tags;

use std::time::Duration;

pub use auth::{registry_host, Credentials, LoginOutcome};
pub use config::RegistryConfig;
pub use error::RegistryError;
pub use platform::Platform;
pub use progress::{Progress, ProgressDetail, ProgressSink};
pub use pull::{PullOptions, Pulled};
pub use push::{PushOptions, Pushed};
pub use search::SearchResult;

use config::{Endpoint, Resolved};
use error::Result;

use crate::{ImageRef, ImageStore};

const USER_AGENT: &str = concat!("skiff/", env!("CARGO_PKG_VERSION"));

/// The daemon's view of registries: its configuration, shared by every pull, push and login.
#[derive(Debug, Clone)]
pub struct Registries {
    resolved: Resolved,
}

impl Registries {
    /// Checks `config` (insecure registry entries, mirror URLs).
    pub fn new(config: RegistryConfig) -> Result<Registries> {
        Ok(Registries {
            resolved: Resolved::new(config)?,
        })
    }

    pub fn config(&self) -> &RegistryConfig {
        &self.resolved.config
    }

    /// Whether `host[:port]` is reached over plain HTTP.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.resolved.is_insecure(host)
    }

    /// `docker search TERM`: the v1 search API of the registry the term names.
    pub async fn search(
        &self,
        term: &str,
        limit: usize,
        credentials: &Credentials,
    ) -> Result<Vec<SearchResult>> {
        search::search(&self.resolved, term, limit, credentials).await
    }

    /// `docker login`: checks `creds` against the registry of `creds.serveraddress`.
    /// Bad credentials are [`RegistryError::Unauthorized`], worded as dockerd words them
    /// (`login attempt to http://HOST/v2/ failed with status: 401 Unauthorized`).
    pub async fn login(&self, creds: &Credentials) -> Result<LoginOutcome> {
        auth::login(&self.resolved, creds).await
    }
}

impl ImageStore {
    /// `docker pull`: fetches `reference` (by tag or digest; for an index the entry for
    /// `opts.platform`, else the host's) into the store and tags it (pulls by digest only
    /// record the repository digest).
    pub async fn pull(
        &self,
        registries: &Registries,
        reference: &ImageRef,
        opts: &PullOptions,
        progress: ProgressSink<'_>,
    ) -> Result<Pulled> {
        pull::pull(&self.inner, &registries.resolved, reference, opts, progress).await
    }

    /// The tags of `repository` in its registry (`docker pull --all-tags`), sorted.
    pub async fn list_tags(
        &self,
        registries: &Registries,
        repository: &ImageRef,
        credentials: &Credentials,
    ) -> Result<Vec<String>> {
        tags::list(&registries.resolved, repository, credentials).await
    }

    /// `docker push`: pushes the stored image tagged `reference` to its registry.
    pub async fn push(
        &self,
        registries: &Registries,
        reference: &ImageRef,
        opts: &PushOptions,
        progress: ProgressSink<'_>,
    ) -> Result<Pushed> {
        push::push(&self.inner, &registries.resolved, reference, opts, progress).await
    }
}

/// rustls needs a process-wide crypto provider; skiff uses ring everywhere.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// An `oci-client` client for one endpoint and one operation (credentials are per
/// request, and the client caches them per registry).
fn oci_client_for(endpoint: &Endpoint, concurrency: usize) -> Result<oci_client::Client> {
    install_crypto();
    let config = oci_client::client::ClientConfig {
        protocol: if endpoint.plain_http {
            oci_client::client::ClientProtocol::Http
        } else {
            oci_client::client::ClientProtocol::Https
        },
        use_monolithic_push: true,
        platform_resolver: None,
        max_concurrent_download: concurrency.max(1),
        max_concurrent_upload: concurrency.max(1),
        connect_timeout: Some(Duration::from_secs(30)),
        read_timeout: Some(Duration::from_secs(300)),
        user_agent: USER_AGENT,
        ..Default::default()
    };
    oci_client::Client::try_from(config)
        .map_err(|e| RegistryError::transport("cannot create the registry client", e))
}

/// A plain HTTP client (for the login probe).
fn http_client() -> Result<reqwest::Client> {
    install_crypto();
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .connect_timeout(Duration::from_secs(30))
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|source| RegistryError::Http {
            context: "cannot create an HTTP client".into(),
            source,
        })
}

/// The `oci-client` reference for `r` at `endpoint` (a mirror replaces the registry host).
fn oci_ref(r: &ImageRef, endpoint: &Endpoint) -> oci_client::Reference {
    let (domain, path) = (r.domain().to_string(), r.path().to_string());
    let mut o = match r.digest() {
        Some(d) => oci_client::Reference::with_digest(domain, path, d.to_string()),
        None => oci_client::Reference::with_tag(domain, path, r.tag_or_digest().to_string()),
    };
    if endpoint.host != r.domain() {
        o.set_mirror_registry(endpoint.host.clone());
    }
    o
}
