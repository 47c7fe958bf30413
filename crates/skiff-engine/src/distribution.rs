//! Registry verbs of the engine: `docker pull`, `push` and `login`, delegated to the registry
//! client of [`skiff_image::registry`] with the daemon's registry configuration.
//!
//! [`Engine::image_pull`] is also the entry point of a node agent running in the same
//! process: it takes a parsed reference and per-call credentials (an image pull secret) and
//! reports progress through a sink, so nothing here assumes an HTTP caller.

use skiff_image::registry::{
    Credentials, LoginOutcome, ProgressSink, PullOptions, Pulled, PushOptions, Pushed,
};
use skiff_image::{ImageRef, Reference};

use std::collections::HashMap;

use bollard_stubs::models::{IndexInfo, RegistryServiceConfig};

use crate::error::Result;
use crate::Engine;

impl Engine {
    /// `POST /images/create?fromImage=`: pulls `reference` (by tag or digest) into the image
    /// store, reporting Docker's progress messages to `progress`. Layers the store has are not
    /// downloaded again; a failed pull leaves nothing behind.
    #[tracing::instrument(level = "debug", skip_all, fields(image = %reference))]
    pub async fn image_pull(
        &self,
        reference: &ImageRef,
        opts: &PullOptions,
        progress: ProgressSink<'_>,
    ) -> Result<Pulled> {
        let pulled = self
            .images
            .pull(&self.registries, reference, opts, progress)
            .await?;
        let name = reference.to_string();
        self.emit_image("pull", &name, Some(&name));
        Ok(pulled)
    }

    /// `docker pull --all-tags`: pulls every tag the registry lists for `repository`, one
    /// after the other (as dockerd does), with the progress of each.
    #[tracing::instrument(level = "debug", skip_all, fields(repository = %repository))]
    pub async fn image_pull_all_tags(
        &self,
        repository: &ImageRef,
        opts: &PullOptions,
        progress: ProgressSink<'_>,
    ) -> Result<Vec<Pulled>> {
        let tags = self
            .images
            .list_tags(&self.registries, repository, &opts.credentials)
            .await?;
        if tags.is_empty() {
            return Err(crate::error::EngineError::NotFound(format!(
                "repository {} has no tags",
                repository.familiar_repository()
            )));
        }
        let mut pulled = Vec::new();
        for tag in tags {
            let reference =
                ImageRef::with_tag_param(&repository.familiar_repository(), Some(&tag))?;
            pulled.push(self.image_pull(&reference, opts, progress).await?);
        }
        Ok(pulled)
    }

    /// `POST /images/{name}/push?tag=`: pushes `repository:tag`, or every local tag of the
    /// repository when `tag` is `None` (as dockerd does). `repository` may carry the tag
    /// itself (`localhost:5000/app:1`).
    #[tracing::instrument(level = "debug", skip_all, fields(image = %repository))]
    pub async fn image_push(
        &self,
        repository: &str,
        tag: Option<&str>,
        opts: &PushOptions,
        progress: ProgressSink<'_>,
    ) -> Result<Vec<Pushed>> {
        let tag = tag.filter(|t| !t.is_empty());
        let last = repository.rsplit('/').next().unwrap_or(repository);
        let targets = if tag.is_some() || last.contains(':') || last.contains('@') {
            vec![ImageRef::with_tag_param(repository, tag)?]
        } else {
            let wanted = ImageRef::parse(repository)?;
            let mut tags: Vec<ImageRef> = self
                .images
                .list_unsized()
                .iter()
                .flat_map(|image| image.repo_tags.iter())
                .filter_map(|t| Reference::parse(t).ok())
                .filter(|t| t.domain() == wanted.domain() && t.path() == wanted.path())
                .map(|t| ImageRef::from(&t))
                .collect();
            tags.sort_by_key(|t| t.to_string());
            tags.dedup();
            if tags.is_empty() {
                // The registry client words the error as dockerd does.
                vec![wanted]
            } else {
                tags
            }
        };
        let mut pushed = Vec::new();
        for target in &targets {
            pushed.push(
                self.images
                    .push(&self.registries, target, opts, progress)
                    .await?,
            );
            let name = target.to_string();
            self.emit_image("push", &name, Some(&name));
        }
        Ok(pushed)
    }

    /// `GET /images/search?term=`: `limit` results (25 by default, as dockerd) from the
    /// registry the term names.
    pub async fn image_search(
        &self,
        term: &str,
        limit: Option<usize>,
        credentials: &Credentials,
    ) -> Result<Vec<skiff_image::registry::SearchResult>> {
        let limit = limit.unwrap_or(25);
        if !(1..=100).contains(&limit) {
            return Err(crate::error::EngineError::invalid(format!(
                "limit {limit} is outside the range of [1, 100]"
            )));
        }
        Ok(self.registries.search(term, limit, credentials).await?)
    }

    /// `POST /auth`: checks `credentials` against the registry of their `serveraddress`.
    /// Bad credentials are an `Unauthorized` error worded as dockerd words it.
    #[tracing::instrument(level = "debug", skip_all, fields(registry = %credentials.serveraddress))]
    pub async fn registry_login(&self, credentials: &Credentials) -> Result<LoginOutcome> {
        Ok(self.registries.login(credentials).await?)
    }

    /// The daemon's registry configuration.
    pub fn registry_config(&self) -> &skiff_image::registry::RegistryConfig {
        self.registries.config()
    }

    /// `RegistryConfig` of `GET /info`, shaped as dockerd's: loopback and the configured
    /// CIDRs as insecure networks, one index entry per registry with settings, the mirrors.
    pub(crate) fn registry_service_config(&self) -> RegistryServiceConfig {
        let config = self.registries.config();
        let (cidrs, hosts): (Vec<&String>, Vec<&String>) = config
            .insecure_registries
            .iter()
            .partition(|r| r.contains('/') && !r.contains("://"));
        let mirrors: Vec<String> = config
            .mirrors
            .iter()
            .map(|m| format!("{}/", m.trim_end_matches('/')))
            .collect();
        let mut index_configs = HashMap::new();
        index_configs.insert(
            "docker.io".to_string(),
            IndexInfo {
                name: Some("docker.io".into()),
                mirrors: Some(mirrors.clone()),
                secure: Some(true),
                official: Some(true),
            },
        );
        for host in hosts {
            let name = host
                .trim_start_matches("http://")
                .trim_start_matches("https://")
                .trim_end_matches('/')
                .to_string();
            index_configs.insert(
                name.clone(),
                IndexInfo {
                    name: Some(name),
                    mirrors: Some(Vec::new()),
                    secure: Some(false),
                    official: Some(false),
                },
            );
        }
        let mut insecure = vec!["::1/128".to_string(), "127.0.0.0/8".to_string()];
        insecure.extend(cidrs.into_iter().cloned());
        RegistryServiceConfig {
            insecure_registry_cidrs: Some(insecure),
            index_configs: Some(index_configs),
            mirrors: Some(mirrors),
        }
    }
}
