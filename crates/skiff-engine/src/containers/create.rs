//! `docker create`: validate everything first, then write the record and the container's
//! directories, so a refused request leaves nothing behind.

use std::collections::HashMap;
use std::sync::Arc;

use bollard_stubs::models::{
    ContainerCreateBody, ContainerCreateResponse, HostConfig, HostConfigLogConfig,
};

use skiff_runtime::backend;

use super::config;
use super::mounts::{self, Source};
use super::Container;
use crate::error::{EngineError, IoContext, Result};
use crate::restart::Policy;
use crate::store::{ContainerRecord, MountRecord, State};
use crate::Engine;

impl Engine {
    /// `docker create`; the start that usually follows is prepared in the background (see
    /// `prepare`).
    #[tracing::instrument(skip_all, fields(name = name.unwrap_or("")))]
    pub(crate) async fn do_create(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<ContainerCreateResponse> {
        let (response, c) = self.create_container(name, body).await?;
        // A start usually follows at once (docker run): prepare it while the client sends
        // its next requests.
        self.spawn_prepare(&c);
        Ok(response)
    }

    /// Creates the container, without preparing a start (the builder's step containers:
    /// most are never started, and it starts the others itself at once).
    pub(crate) async fn create_container(
        &self,
        name: Option<&str>,
        body: ContainerCreateBody,
    ) -> Result<(ContainerCreateResponse, Arc<Container>)> {
        // A start usually follows (docker run): begin the kernel's wait for it now.
        self.prime_cgroup_migration();
        let name = name
            .filter(|n| !n.is_empty())
            .map(crate::names::normalize)
            .transpose()?;
        let mut hc = body.host_config.clone().unwrap_or_default();
        Policy::from_wire(hc.restart_policy.as_ref(), hc.auto_remove.unwrap_or(false))?;
        config::validate_resources(&hc)?;
        if let Some(signal) = body.stop_signal.as_deref().filter(|s| !s.is_empty()) {
            config::parse_signal(signal)?;
        }
        let mut warnings =
            config::docker_defaults(&mut hc, skiff_runtime::cgroups::unified_only())?;
        config::logging(&hc)?;
        let network = config::network(hc.network_mode.as_deref())?;
        config::validate_namespace_modes(&hc)?;
        if let config::Network::Container(other) = &network {
            self.find(other)?;
            // The container takes the name, resolver and hosts of the one whose network
            // it joins, and publishes nothing of its own (Docker's checks, in its order).
            let given = |v: &Option<Vec<String>>| v.as_ref().is_some_and(|v| !v.is_empty());
            if body.hostname.as_deref().is_some_and(|h| !h.is_empty()) {
                return Err(EngineError::invalid(
                    "conflicting options: hostname and the network mode",
                ));
            }
            if given(&hc.dns) {
                return Err(EngineError::invalid(
                    "conflicting options: dns and the network mode",
                ));
            }
            if given(&hc.extra_hosts) {
                return Err(EngineError::invalid(
                    "conflicting options: custom host-to-IP mapping and the network mode",
                ));
            }
            if hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
                || hc.publish_all_ports.unwrap_or(false)
            {
                return Err(EngineError::invalid(
                    "conflicting options: port publishing and the container type network mode",
                ));
            }
        }
        crate::networks::ports::validate(&hc)?;
        let host_gateway = self.networking.host_gateway().await;
        crate::networks::etc::validate_extra_hosts(&hc, host_gateway)?;
        let networks = self
            .create_networks(
                &network,
                body.networking_config
                    .as_ref()
                    .and_then(|n| n.endpoints_config.as_ref()),
            )
            .await?;
        let mut embedded_dns = false;
        for name in networks.keys() {
            embedded_dns |= self.networking.net.network(name).await.is_ok_and(|n| n.dns);
        }
        let resolv_mode = match &network {
            config::Network::Host => skiff_net::ResolvMode::Host,
            _ if embedded_dns => skiff_net::ResolvMode::Embedded,
            _ => skiff_net::ResolvMode::External,
        };
        let runtime = match hc.runtime.as_deref().filter(|r| !r.is_empty()) {
            None => self.cfg.default_runtime.clone(),
            Some(r) if backend::NAMES.contains(&r) => r.to_string(),
            Some(r) => {
                return Err(EngineError::invalid(format!(
                    "Unknown runtime specified {r}"
                )))
            }
        };
        if hc.init.unwrap_or(false) {
            crate::containers::lifecycle::init_binary()?;
        }
        for opt in hc.security_opt.iter().flatten() {
            let key = opt.split(['=', ':']).next().unwrap_or_default();
            if !matches!(
                key,
                "no-new-privileges" | "seccomp" | "apparmor" | "label" | "systempaths"
            ) {
                return Err(EngineError::invalid(format!(
                    "invalid --security-opt: {opt:?}"
                )));
            }
        }

        let image_ref = body
            .image
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                EngineError::invalid("config cannot be empty in order to create a container")
            })?;
        let image = match self.images.get(&image_ref) {
            Ok(image) => image,
            Err(skiff_image::ImageError::NotFound(_)) => {
                return Err(EngineError::NoSuchImage(display_reference(&image_ref)));
            }
            Err(e) => return Err(e.into()),
        };
        let id = skiff_core::ids::random_id();
        let mut merged = config::merge(&body, image.config.config().as_ref(), &id)?;
        crate::networks::ports::validate_publish_all(&merged.config, &hc)?;
        merged.config.healthcheck =
            super::health::merge(body.healthcheck.as_ref(), image.docker.healthcheck.as_ref());
        if network == config::Network::Host && body.hostname.as_deref().unwrap_or("").is_empty() {
            // Like Docker: a container on the host's network shows the host's name.
            let host = nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default();
            merged.config.hostname = Some(host);
        }
        let inherited = self.volumes_from(&hc)?;
        let volumes = merged.config.volumes.as_deref().unwrap_or_default();
        let requests = mounts::mounts(&hc, volumes, inherited)?;
        // Normalise what inspect shows, like dockerd does.
        if matches!(
            hc.network_mode.as_deref(),
            None | Some("") | Some("default")
        ) {
            hc.network_mode = Some("bridge".into());
        }
        hc.runtime = Some(runtime.clone());
        if hc
            .log_config
            .as_ref()
            .and_then(|l| l.typ.as_deref())
            .unwrap_or("")
            .is_empty()
        {
            let config = hc
                .log_config
                .as_ref()
                .and_then(|l| l.config.clone())
                .unwrap_or_default();
            hc.log_config = Some(HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(config),
            });
        }

        // Reserve the name (or pick a free random one) before touching the disk.
        let name = {
            let mut reg = self.registry();
            match name {
                Some(n) => {
                    reg.reserve(&n, &id)?;
                    n
                }
                None => {
                    let mut retry = 0;
                    loop {
                        let n = format!("/{}", crate::names::random_name(retry));
                        if !reg.name_taken(&n) {
                            reg.reserve(&n, &id)?;
                            break n;
                        }
                        retry += 1;
                    }
                }
            }
        };
        let rec = ContainerRecord {
            id: id.clone(),
            name: name.clone(),
            created: now_rfc3339(),
            image_name: image_ref.clone(),
            image_id: image.id.clone(),
            path: merged.path,
            args: merged.args,
            config: merged.config,
            host_config: hc.clone(),
            state: State::default(),
            runtime,
            mounts: Vec::new(),
            restart_count: 0,
            manually_stopped: false,
            cgroups_path: config::cgroups_path(&hc, &self.cfg.cgroup_parent, &id)?,
            networks,
            networks_cleared: false,
        };
        let c = Arc::new(Container::new(rec, &self.cfg.root, &self.cfg.state));
        let host_resolv = self.networking.host_resolv_conf();
        let etc = EtcPlan {
            mode: resolv_mode,
            host_gateway,
            host_resolv: &host_resolv,
        };
        match self.materialise(&c, &requests, &etc) {
            Ok(()) => {}
            Err(e) => {
                self.registry().release(&name);
                let _ = std::fs::remove_dir_all(&c.dir);
                return Err(e);
            }
        }
        self.registry().insert(c.clone());
        self.emit_container("create", &c, HashMap::new());
        tracing::info!(id = %id, name = %name, "container created");
        let publishes = hc.port_bindings.as_ref().is_some_and(|p| !p.is_empty())
            || hc.publish_all_ports.unwrap_or(false);
        if publishes && network == config::Network::Host {
            warnings.push("Published ports are discarded when using host network mode".into());
        }
        Ok((ContainerCreateResponse { id, warnings }, c))
    }

    /// The mounts `--volumes-from` takes from other containers, as moby does: their volumes
    /// and binds at the same paths, read-only or writable as the mode says, else as the other
    /// container has them.
    fn volumes_from(&self, hc: &HostConfig) -> Result<Vec<mounts::MountRequest>> {
        let mut out = Vec::new();
        for spec in hc.volumes_from.iter().flatten() {
            let (name, read_only) = mounts::volumes_from_mode(spec)?;
            // Not a 404: the docker CLI takes a 404 from create for a missing image and pulls.
            let other = self
                .find(name)
                .map_err(|_| EngineError::invalid(format!("No such container: {name}")))?;
            for m in other.rec().mounts {
                let source = match m.kind.as_str() {
                    "volume" => Source::Volume(Some(m.name.clone())),
                    "bind" => Source::Host(m.source.clone()),
                    _ => continue,
                };
                out.push(mounts::MountRequest {
                    source,
                    destination: m.destination,
                    read_only: read_only.unwrap_or(m.read_only),
                    options: m
                        .options
                        .into_iter()
                        .filter(|o| !matches!(o.as_str(), "ro" | "rw"))
                        .collect(),
                    new_volume: Default::default(),
                });
            }
        }
        Ok(out)
    }

    /// Creates the container's directory, volumes, /etc files and record.
    fn materialise(
        &self,
        c: &Container,
        requests: &[mounts::MountRequest],
        etc: &EtcPlan<'_>,
    ) -> Result<()> {
        std::fs::create_dir_all(&c.dir).ctx(|| format!("create {}", c.dir.display()))?;
        let mut created = Vec::new();
        let mut mounts = Vec::new();
        let result = (|| {
            for r in requests {
                let m = match &r.source {
                    Source::Host(p) => {
                        if !p.exists() {
                            // `-v /host:/ctr` creates a missing host directory, like Docker.
                            std::fs::create_dir_all(p).ctx(|| format!("create {}", p.display()))?;
                        }
                        MountRecord {
                            kind: "bind".into(),
                            name: String::new(),
                            source: p.clone(),
                            destination: r.destination.clone(),
                            read_only: r.read_only,
                            options: r.options.clone(),
                            anonymous: false,
                        }
                    }
                    Source::Volume(name) => {
                        let anonymous = name.is_none();
                        let name = name.clone().unwrap_or_else(skiff_core::ids::random_id);
                        let v = r.new_volume.clone();
                        if self.volumes.ensure(&name, anonymous, v.labels, v.options)? {
                            created.push(name.clone());
                        }
                        MountRecord {
                            kind: "volume".into(),
                            source: self.volumes.data_path(&name),
                            name,
                            destination: r.destination.clone(),
                            read_only: r.read_only,
                            options: r.options.clone(),
                            anonymous,
                        }
                    }
                    Source::Tmpfs(opts) => MountRecord {
                        kind: "tmpfs".into(),
                        name: String::new(),
                        source: Default::default(),
                        destination: r.destination.clone(),
                        read_only: r.read_only,
                        options: opts.clone(),
                        anonymous: false,
                    },
                };
                mounts.push(m);
            }
            let rec = c.rec();
            let input = crate::networks::etc::EtcInput {
                hostname: rec.config.hostname.as_deref().unwrap_or(""),
                domainname: rec.config.domainname.as_deref().unwrap_or(""),
                hc: &rec.host_config,
                mode: etc.mode,
                addresses: Vec::new(),
                host_gateway: etc.host_gateway,
                host_resolv: etc.host_resolv,
                daemon_dns: &self.networking.cfg.dns,
            };
            crate::networks::etc::write(&c.dir, &input)?;
            c.update(|rec| rec.mounts = mounts.clone())
        })();
        if result.is_err() {
            for name in &created {
                let _ = self.volumes.remove(name);
            }
        }
        result
    }
}

/// What the /etc files of a new container are made from (before it has an address).
struct EtcPlan<'a> {
    mode: skiff_net::ResolvMode,
    host_gateway: Option<std::net::IpAddr>,
    host_resolv: &'a str,
}

/// How Docker names a missing image: with `:latest` when no tag was given.
fn display_reference(r: &str) -> String {
    match skiff_image::Reference::parse(r) {
        Ok(parsed) => parsed.to_string(),
        Err(_) => r.to_string(),
    }
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_images_are_named_with_their_tag() {
        assert_eq!(display_reference("busybox"), "busybox:latest");
        assert_eq!(
            display_reference("localhost:5000/x:1"),
            "localhost:5000/x:1"
        );
    }
}
