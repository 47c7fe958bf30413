//! `docker network create|ls|inspect|rm|prune|connect|disconnect`: Docker's validation and
//! messages in front of skiff-net.

use std::collections::{BTreeMap, HashMap};

use bollard_stubs::models::{
    EndpointSettings, EventMessageTypeEnum, NetworkConnectRequest, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest, NetworkInspect, NetworkPruneResponse,
};
use skiff_net::{AttachRequest, Network, NetworkSpec};

use super::{
    attach, is_predefined, not_found, view, META_ATTACHABLE, META_IPAM_OPTIONS, META_USER_SUBNET,
};
use crate::containers::config::{self, Network as Mode};
use crate::containers::Container;
use crate::error::{EngineError, Result};
use crate::filters::Filters;
use crate::store::ContainerRecord;
use crate::Engine;

use super::validate::{join, pool, validate_endpoint};

impl Engine {
    /// Every network Docker shows: the predefined ones, then the others by creation.
    async fn all_networks(&self) -> Vec<NetworkInspect> {
        let net = &self.networking.net;
        let nets = net.networks().await;
        let since = nets.iter().map(|n| n.created).min().unwrap_or(0);
        let mut out: Vec<NetworkInspect> = nets.iter().map(view::bridge_network).collect();
        for name in ["host", "none"] {
            out.push(view::predefined(name, &self.networking.predefined, since));
        }
        out
    }

    /// Finds a network as Docker does: full id, exact name, then a unique id prefix.
    async fn find_network(&self, term: &str) -> Result<NetworkInspect> {
        let all = self.all_networks().await;
        if let Some(n) = all.iter().find(|n| n.id.as_deref() == Some(term)) {
            return Ok(n.clone());
        }
        if let Some(n) = all.iter().find(|n| n.name.as_deref() == Some(term)) {
            return Ok(n.clone());
        }
        let by_prefix: Vec<&NetworkInspect> = all
            .iter()
            .filter(|n| !term.is_empty() && n.id.as_deref().is_some_and(|i| i.starts_with(term)))
            .collect();
        match by_prefix.as_slice() {
            [one] => Ok((*one).clone()),
            [] => Err(not_found(term)),
            many => Err(EngineError::invalid(format!(
                "network {term} is ambiguous ({} matches found based on ID prefix)",
                many.len()
            ))),
        }
    }

    /// Fills `Containers`: the running containers with an endpoint on the network.
    fn with_containers(&self, mut n: NetworkInspect) -> NetworkInspect {
        let id = n.id.clone().unwrap_or_default();
        let name = n.name.clone().unwrap_or_default();
        let mut containers = HashMap::new();
        match name.as_str() {
            "host" | "none" => {
                for c in self.all_containers() {
                    let rec = c.rec();
                    let mode = rec.host_config.network_mode.as_deref().unwrap_or("");
                    if mode == name && rec.state.status.is_alive() {
                        containers.insert(
                            rec.id.clone(),
                            bollard_stubs::models::EndpointResource {
                                name: Some(rec.short_name().to_string()),
                                endpoint_id: Some(super::endpoint_id(&rec.id, &id)),
                                mac_address: Some(String::new()),
                                ipv4_address: Some(String::new()),
                                ipv6_address: Some(String::new()),
                            },
                        );
                    }
                }
            }
            _ => {
                for ep in self.networking.net.network_endpoints(&id) {
                    if let Ok(c) = self.find(&ep.sandbox) {
                        containers.insert(c.id.clone(), view::endpoint_resource(&c.rec(), &ep));
                    }
                }
            }
        }
        n.containers = Some(containers);
        n
    }

    pub(crate) async fn do_network_list(&self, filters: &Filters) -> Result<Vec<NetworkInspect>> {
        filters.validate(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        let dangling = match filters.get("dangling") {
            [] => None,
            [v] => match v.as_str() {
                "1" | "true" => Some(true),
                "0" | "false" => Some(false),
                _ => {
                    return Err(EngineError::invalid(
                        "invalid value for filter 'dangling', must be \"true\" (or \"1\"), or \"false\" (or \"0\")",
                    ))
                }
            },
            _ => {
                return Err(EngineError::invalid(
                    "got more than one value for filter key \"dangling\"",
                ))
            }
        };
        for t in filters.get("type") {
            if t != "custom" && t != "builtin" {
                return Err(EngineError::invalid(format!(
                    "invalid filter: 'type'='{t}'"
                )));
            }
        }
        let mut out = Vec::new();
        for n in self.all_networks().await {
            let name = n.name.clone().unwrap_or_default();
            let id = n.id.clone().unwrap_or_default();
            let labels = n.labels.clone().unwrap_or_default();
            let builtin = is_predefined(&name);
            let keep = filters.any("driver", |d| n.driver.as_deref() == Some(d))
                && filters.any("name", |f| name.contains(f))
                && filters.any("id", |f| id.contains(f))
                && filters.labels_match("label", &labels)
                && filters.any("scope", |s| s == "local")
                && filters.any("type", |t| (t == "builtin") == builtin);
            if !keep {
                continue;
            }
            if let Some(d) = dangling {
                let used = builtin
                    || !self
                        .with_containers(n.clone())
                        .containers
                        .unwrap_or_default()
                        .is_empty();
                if d == used {
                    continue;
                }
            }
            out.push(n);
        }
        Ok(out)
    }

    pub(crate) async fn do_network_inspect(&self, term: &str) -> Result<NetworkInspect> {
        let n = self.find_network(term).await?;
        Ok(self.with_containers(n))
    }

    pub(crate) async fn do_network_create(
        &self,
        req: NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse> {
        let name = req.name.clone();
        if name.is_empty() {
            return Err(EngineError::invalid("network name must not be empty"));
        }
        if is_predefined(&name) {
            return Err(EngineError::Forbidden(format!(
                "operation is not permitted on predefined {name} network "
            )));
        }
        if self.networking.net.network(&name).await.is_ok() {
            return Err(EngineError::Conflict(format!(
                "network with name {name} already exists"
            )));
        }
        match req.driver.as_deref().unwrap_or("bridge") {
            "" | "bridge" => {}
            d => {
                return Err(EngineError::NotFound(format!(
                    "could not find plugin {d} in v1 plugin registry: plugin not found"
                )))
            }
        }
        if req.enable_ipv6 == Some(true) {
            return Err(EngineError::NotImplemented("IPv6 networks"));
        }
        if req.enable_ipv4 == Some(false) {
            return Err(EngineError::NotImplemented("networks without IPv4"));
        }
        if req.config_only == Some(true) || req.config_from.is_some() || req.ingress == Some(true) {
            return Err(EngineError::NotImplemented(
                "config-only, config-from and ingress networks",
            ));
        }
        let pool = pool(&req)?;
        let options: BTreeMap<String, String> = req
            .options
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut meta = BTreeMap::new();
        meta.insert(
            META_ATTACHABLE.to_string(),
            req.attachable.unwrap_or(false).to_string(),
        );
        let user_subnet = pool
            .as_ref()
            .is_some_and(|p| p.subnet.as_deref().is_some_and(|s| !s.is_empty()));
        meta.insert(META_USER_SUBNET.to_string(), user_subnet.to_string());
        if let Some(o) = req.ipam.as_ref().and_then(|i| i.options.as_ref()) {
            if !o.is_empty() {
                meta.insert(
                    META_IPAM_OPTIONS.to_string(),
                    serde_json::to_string(o).expect("a map serialises"),
                );
            }
        }
        if pool.as_ref().is_some_and(|p| {
            p.subnet.as_deref().unwrap_or("").is_empty()
                && !p.gateway.as_deref().unwrap_or("").is_empty()
        }) {
            return Err(EngineError::invalid(
                "invalid network config:\ninvalid gateway: a subnet is needed with a gateway",
            ));
        }
        let spec = NetworkSpec {
            name: name.clone(),
            id: None,
            bridge: None,
            subnet: pool.as_ref().and_then(|p| p.subnet.clone()),
            gateway: pool.as_ref().and_then(|p| p.gateway.clone()),
            ip_range: pool.as_ref().and_then(|p| p.ip_range.clone()),
            internal: req.internal.unwrap_or(false),
            dns: true,
            labels: req.labels.clone().unwrap_or_default().into_iter().collect(),
            options,
            meta,
            ..Default::default()
        };
        let n = self.networking.net.create_network(spec).await?;
        self.emit_network("create", &n.id, &n.name, HashMap::new());
        tracing::info!(network = %n.name, subnet = %n.subnet, "network created");
        Ok(NetworkCreateResponse {
            id: n.id,
            warning: String::new(),
        })
    }

    pub(crate) async fn do_network_remove(&self, term: &str) -> Result<()> {
        let n = self.find_network(term).await?;
        let name = n.name.clone().unwrap_or_default();
        if is_predefined(&name) {
            return Err(EngineError::Forbidden(format!(
                "{name} is a pre-defined network and cannot be removed"
            )));
        }
        let id = n.id.clone().unwrap_or_default();
        self.discard_prepared_on(&id).await;
        self.networking.net.remove_network(&id).await?;
        self.emit_network("destroy", &id, &name, HashMap::new());
        tracing::info!(network = %name, "network removed");
        Ok(())
    }

    pub(crate) async fn do_network_prune(&self, filters: &Filters) -> Result<NetworkPruneResponse> {
        filters.validate(&["until", "label", "label!"])?;
        let until = match filters.get("until").first() {
            Some(u) => Some(crate::containers::query::parse_until(u)?),
            None => None,
        };
        let mut deleted = Vec::new();
        for n in self.networking.net.networks().await {
            let created = chrono::DateTime::<chrono::Utc>::from_timestamp_nanos(n.created as i64);
            if !is_predefined(&n.name) {
                // Created containers do not hold a network (their prepared starts do).
                self.discard_prepared_on(&n.id).await;
            }
            if is_predefined(&n.name)
                || !self.networking.net.network_endpoints(&n.id).is_empty()
                || until.is_some_and(|u| created >= u)
            {
                continue;
            }
            let labels: HashMap<String, String> = n.labels.clone().into_iter().collect();
            let excluded = filters.get("label!").iter().any(|l| {
                Filters::from_pairs([("label", l.as_str())]).labels_match("label", &labels)
            });
            if excluded || !filters.labels_match("label", &labels) {
                continue;
            }
            match self.networking.net.remove_network(&n.id).await {
                Ok(()) => {
                    self.emit_network("destroy", &n.id, &n.name, HashMap::new());
                    deleted.push(n.name.clone());
                }
                Err(e) => {
                    tracing::warn!(network = %n.name, error = %e, "prune: network not removed")
                }
            }
        }
        Ok(NetworkPruneResponse {
            networks_deleted: Some(deleted),
        })
    }

    /// Checks a container's endpoint settings on the network it would be connected to.
    async fn check_endpoint(&self, name: &str, eps: &EndpointSettings) -> Result<Option<Network>> {
        let network = self.networking.net.network(name).await.ok();
        let shown = network.as_ref().map_or(name, |n| n.name.as_str());
        validate_endpoint(shown, network.as_ref(), eps).map_err(EngineError::invalid)?;
        Ok(network)
    }

    /// The networks a new container asks for (`NetworkMode` and `NetworkingConfig`), checked
    /// with Docker's messages; unknown networks are kept by name (the start fails on them,
    /// as Docker's does).
    pub(crate) async fn create_networks(
        &self,
        mode: &Mode,
        endpoints: Option<&HashMap<String, EndpointSettings>>,
    ) -> Result<BTreeMap<String, EndpointSettings>> {
        let mut out = BTreeMap::new();
        let Mode::Named(primary) = mode else {
            return Ok(out);
        };
        let mut asked: Vec<(String, EndpointSettings)> = endpoints
            .cloned()
            .unwrap_or_default()
            .into_iter()
            // The CLI names the default network `default`.
            .map(|(k, v)| (if k == "default" { "bridge".into() } else { k }, v))
            .collect();
        asked.sort_by(|a, b| a.0.cmp(&b.0));
        if !asked.iter().any(|(k, _)| k == primary) {
            asked.push((primary.clone(), EndpointSettings::default()));
        }
        let mut errs = Vec::new();
        for (key, eps) in asked {
            let network = self.networking.net.network(&key).await.ok();
            let shown = network.as_ref().map_or(key.clone(), |n| n.name.clone());
            if let Err(e) = validate_endpoint(&shown, network.as_ref(), &eps) {
                errs.push(format!("invalid config for network {key}: {e}"));
                continue;
            }
            let mut eps = asked_only(eps);
            eps.network_id = network.as_ref().map(|n| n.id.clone());
            out.insert(shown, eps);
        }
        if !errs.is_empty() {
            return Err(EngineError::invalid(join(&errs)));
        }
        Ok(out)
    }

    pub(crate) async fn do_network_connect(
        &self,
        term: &str,
        req: NetworkConnectRequest,
    ) -> Result<()> {
        let c = self.find(&req.container)?;
        let found = self.find_network(term).await?;
        let name = found.name.clone().unwrap_or_default();
        let eps = req.endpoint_config.clone().unwrap_or_default();
        let _op = c.op.lock().await;
        // A prepared sandbox has the networks the container had.
        self.discard_prepared(&c).await;
        let rec = c.rec();
        if rec.state.status == crate::store::Status::Removing {
            return Err(EngineError::invalid(format!(
                "Container {} is marked for removal and cannot be connected or disconnected to the network",
                c.id
            )));
        }
        match config::network(rec.host_config.network_mode.as_deref())? {
            Mode::Host | Mode::Container(_) | Mode::Path(_) => {
                return Err(EngineError::invalid(
                    "container sharing network namespace with another container or host cannot be connected to any other network",
                ))
            }
            Mode::None => {
                return Err(EngineError::invalid(
                    "container cannot be connected to multiple networks with one of the networks in private (none) mode",
                ))
            }
            Mode::Named(_) => {}
        }
        if name == "host" {
            return Err(EngineError::invalid(
                "cannot connect container to host network - container must be created in host network mode",
            ));
        }
        if name == "none" {
            return Err(EngineError::invalid(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode",
            ));
        }
        let network = self
            .check_endpoint(&name, &eps)
            .await?
            .ok_or_else(|| not_found(term))?;
        if rec.networks.contains_key(&network.name) {
            return Err(EngineError::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                rec.short_name(),
                network.name
            )));
        }
        let mut asked = asked_only(eps);
        asked.network_id = Some(network.id.clone());
        if rec.state.status.is_alive() {
            self.networking
                .net
                .attach(AttachRequest {
                    sandbox: c.id.clone(),
                    network: network.id.clone(),
                    ip: attach::static_ip(&asked),
                    dns_names: if network.dns {
                        attach::dns_names(&rec, asked.aliases.as_deref().unwrap_or_default())
                    } else {
                        Vec::new()
                    },
                    ports: Vec::new(),
                })
                .await?;
        }
        let saved = c.update(|r| {
            r.networks.insert(network.name.clone(), asked.clone());
            r.networks_cleared = false;
        });
        if let Err(e) = saved {
            if rec.state.status.is_alive() {
                let _ = self.networking.net.detach(&c.id, &network.id).await;
            }
            return Err(e);
        }
        if rec.state.status.is_alive() {
            self.refresh_etc(&c).await?;
        }
        self.emit_network(
            "connect",
            &network.id,
            &network.name,
            HashMap::from([("container".to_string(), c.id.clone())]),
        );
        Ok(())
    }

    pub(crate) async fn do_network_disconnect(
        &self,
        term: &str,
        req: NetworkDisconnectRequest,
    ) -> Result<()> {
        let c = self.find(&req.container)?;
        let found = self.find_network(term).await;
        let force = req.force.unwrap_or(false);
        let _op = c.op.lock().await;
        // A prepared sandbox has the networks the container had.
        self.discard_prepared(&c).await;
        let rec = c.rec();
        let (name, id) = match &found {
            Ok(n) => (
                n.name.clone().unwrap_or_default(),
                n.id.clone().unwrap_or_default(),
            ),
            Err(_) if force => (term.to_string(), String::new()),
            Err(_) => return Err(not_found(term)),
        };
        if name == "host" && rec.host_config.network_mode.as_deref() == Some("host") {
            return Err(EngineError::invalid(
                "cannot disconnect container from host network - container was created in host network mode",
            ));
        }
        let Some(key) = rec
            .networks
            .keys()
            .find(|k| **k == name || rec.networks[*k].network_id.as_deref() == Some(id.as_str()))
            .cloned()
        else {
            return Err(EngineError::Conflict(format!(
                "container {} is not connected to network {name}",
                c.id
            )));
        };
        if rec.state.status.is_alive() && !id.is_empty() {
            match self.networking.net.detach(&c.id, &id).await {
                Ok(()) => {}
                Err(e) if e.kind() == skiff_net::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        c.update(|r| {
            r.networks.remove(&key);
            r.networks_cleared = r.networks.is_empty();
        })?;
        if rec.state.status.is_alive() {
            self.refresh_etc(&c).await?;
        }
        self.emit_network(
            "disconnect",
            &id,
            &name,
            HashMap::from([("container".to_string(), c.id.clone())]),
        );
        Ok(())
    }

    fn emit_network(&self, action: &str, id: &str, name: &str, extra: HashMap<String, String>) {
        let mut attrs = HashMap::from([
            ("name".to_string(), name.to_string()),
            ("type".to_string(), "bridge".to_string()),
        ]);
        attrs.extend(extra);
        self.events
            .emit(EventMessageTypeEnum::NETWORK, action, id, attrs);
    }

    /// The settings of every network the container is connected to, for inspect and `ps`.
    pub(crate) async fn container_net(
        &self,
        c: &Container,
        rec: &ContainerRecord,
    ) -> view::ContainerNet {
        let net = &self.networking.net;
        let mut networks = Vec::new();
        for (name, asked) in attach::ordered(rec) {
            let key = asked
                .network_id
                .clone()
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| name.clone());
            let network = match net.network(&key).await {
                Ok(n) => Some(n),
                Err(_) => net.network(&name).await.ok(),
            };
            networks.push((name, asked, network));
        }
        let live = if rec.state.status.is_alive() {
            net.endpoints(&c.id)
        } else {
            Vec::new()
        };
        let sandbox_key = net
            .sandbox(&c.id)
            .map(|s| s.path.to_string_lossy().into_owned());
        let ids = &self.networking.predefined;
        let mode = match rec.host_config.network_mode.as_deref() {
            Some("host") => Some(("host", ids.host.as_str())),
            Some("none") => Some(("none", ids.none.as_str())),
            _ => None,
        };
        view::container_net(rec, &networks, &live, sandbox_key, mode)
    }
}

/// The part of endpoint settings a container asks for (operational fields dropped).
fn asked_only(eps: EndpointSettings) -> EndpointSettings {
    EndpointSettings {
        ipam_config: eps.ipam_config,
        links: eps.links,
        mac_address: None,
        aliases: eps.aliases.filter(|a| !a.is_empty()),
        driver_opts: eps.driver_opts,
        gw_priority: eps.gw_priority,
        network_id: None,
        ..Default::default()
    }
}
