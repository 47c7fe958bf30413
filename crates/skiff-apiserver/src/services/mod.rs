//! ClusterIP and NodePort allocation for Services, and the `default/kubernetes` Service.
//!
//! Each allocated address or port is a key in the datastore (`/registry/skiff.io/serviceips/
//! <ip>`, `/registry/skiff.io/servicenodeports/<port>`) naming the Service that holds it (its
//! uid among them), so uniqueness is the store's create-if-absent, also across servers sharing
//! one etcd, and a restart loses nothing. A create reserves first and stores the Service
//! second; a crash in between, or a Service removed without this module (the namespace
//! cleaner deletes through the store), leaves a key whose owner does not hold it: [`repair`]
//! frees those after a grace period, as kube-apiserver's repair controllers do. See
//! docs/adr/0009.
//!
//! Entry points: the Service kind's admission hooks (`kinds/core/service.rs`) call
//! [`allocate`] on create, [`update`] on update, and [`release`] with the keys a write let go
//! ([`create_aborted`], [`updated`], [`update_aborted`], [`held`]); the server's loop calls
//! [`repair`] and [`kubernetes::ensure`]. Freeing only ever removes a key whose holder is the
//! Service's own uid, so a write never frees what another Service holds.

pub mod kubernetes;
mod ranges;

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use skiff_store::{Store, StoreError};

use crate::error::{ApiError, Cause};
use crate::object;
use crate::router::ApiState;
pub use ranges::{RangeError, ServiceNetwork};

const IPS: &str = "/registry/skiff.io/serviceips/";
const PORTS: &str = "/registry/skiff.io/servicenodeports/";
/// How old an allocation whose Service does not hold it must be before [`repair`] frees it:
/// longer than any create takes between reserving and storing.
const GRACE: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// The holder recorded in an allocation key.
#[derive(Debug, Serialize, Deserialize)]
struct Holder {
    namespace: String,
    name: String,
    uid: String,
    /// When it was reserved (RFC 3339).
    time: String,
}

/// Keys one allocation call reserved so far: freed again when the call fails half-way.
#[derive(Debug, Default)]
struct Reserved(Vec<String>);

/// The allocation keys of `svc`: its ClusterIP and NodePorts.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Keys(Vec<String>);

impl Keys {
    /// The keys of `self` that `other` does not have.
    pub fn without(self, other: &Keys) -> Keys {
        Keys(
            self.0
                .into_iter()
                .filter(|k| !other.0.contains(k))
                .collect(),
        )
    }
}

/// The allocation keys `svc` names for its type: its ClusterIP unless it is an ExternalName
/// Service, its NodePorts if it is a NodePort or LoadBalancer one (whether or not it holds
/// them: see [`release`]).
pub fn held(svc: &Value) -> Keys {
    let spec = &svc["spec"];
    let mut keys: Vec<String> = cluster_ip(svc)
        .filter(|_| wants_cluster_ip(spec))
        .map(ip_key)
        .into_iter()
        .collect();
    if wants_node_ports(spec) {
        for p in node_ports(svc) {
            let key = u16::try_from(p).ok().map(port_key);
            if let Some(k) = key.filter(|k| !keys.contains(k)) {
                keys.push(k);
            }
        }
    }
    Keys(keys)
}

/// A create that passed [`allocate`] but was not stored (invalid, conflict, dry run): the
/// keys it may have reserved. A dry run reserved none, and [`release`] frees only keys
/// held by this create's uid, which no other object has.
pub fn create_aborted(obj: &Value) -> Keys {
    held(obj)
}

/// An update stored as `obj` over `old`: what `old` held and `obj` does not.
pub fn updated(obj: &Value, old: &Value) -> Keys {
    held(old).without(&held(obj))
}

/// An update that passed [`update`] but was not stored: what it reserved, i.e. what `new`
/// names and `old` does not ([`update`] reserves exactly those NodePorts; an address `new`
/// names that `old` does not was never reserved, and is only freed if this Service holds it).
pub fn update_aborted(new: &Value, old: &Value) -> Keys {
    held(new).without(&held(old))
}

/// Frees those of `keys` that the Service `svc` (by uid) holds; a key another Service holds,
/// or none, is left alone.
pub async fn release(state: &ApiState, svc: &Value, keys: Keys) {
    let uid = object::meta_str(svc, "uid");
    if uid.is_empty() {
        return;
    }
    let store = state.storage.store.as_ref();
    for k in keys.0 {
        let current = match store.get(&k).await {
            Ok(Some(kv)) => kv,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(key = %k, error = %e, "cannot read a service allocation; repair will free it");
                continue;
            }
        };
        let holder = serde_json::from_slice::<Holder>(&current.value);
        if !holder.is_ok_and(|h| h.uid == uid) {
            continue;
        }
        if let Err(e) = store.delete(&k, Some(current.mod_revision)).await {
            if !matches!(e, StoreError::NotFound(_) | StoreError::Conflict { .. }) {
                tracing::warn!(key = %k, error = %e, "cannot free a service allocation; repair will");
            }
        }
    }
}

/// Frees what one call reserved (it failed half-way).
async fn free(store: &dyn Store, keys: &[String]) {
    for k in keys {
        if let Err(e) = store.delete(k, None).await {
            if !matches!(e, StoreError::NotFound(_)) {
                tracing::warn!(key = %k, error = %e, "cannot free a service allocation; repair will");
            }
        }
    }
}

fn ip_key(ip: Ipv4Addr) -> String {
    format!("{IPS}{ip}")
}

fn port_key(port: u16) -> String {
    format!("{PORTS}{port}")
}

fn invalid(obj: &Value, field: &str, message: String) -> ApiError {
    ApiError::invalid(
        "",
        "Service",
        object::name(obj),
        vec![Cause {
            reason: "FieldValueInvalid".into(),
            message,
            field: field.into(),
        }],
    )
}

/// What a Service's spec asks for.
fn wants_cluster_ip(spec: &Value) -> bool {
    spec["type"] != "ExternalName"
}

fn wants_node_ports(spec: &Value) -> bool {
    matches!(spec["type"].as_str(), Some("NodePort" | "LoadBalancer"))
}

/// Keys already taken under `prefix` (one list: the choice among free members is local).
async fn taken(store: &dyn Store, prefix: &str) -> Result<HashSet<String>, ApiError> {
    let listed = store.list(prefix, None, 0, None).await?;
    Ok(listed.items.into_iter().map(|kv| kv.key).collect())
}

struct Reserver<'a> {
    store: &'a dyn Store,
    holder: Vec<u8>,
    dry_run: bool,
    reserved: Reserved,
}

impl Reserver<'_> {
    /// Reserves `key`; false when someone holds it.
    async fn take(&mut self, key: String) -> Result<bool, ApiError> {
        if self.dry_run {
            return Ok(self.store.get(&key).await?.is_none());
        }
        match self.store.create(&key, self.holder.clone()).await {
            Ok(_) => {
                self.reserved.0.push(key);
                Ok(true)
            }
            Err(StoreError::AlreadyExists(_)) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Reserves the first free candidate (concurrent creates may take some first).
    async fn first_free<T: Copy>(
        &mut self,
        candidates: impl Iterator<Item = T>,
        key: impl Fn(T) -> String,
        taken: &HashSet<String>,
    ) -> Result<Option<T>, ApiError> {
        for c in candidates {
            if !taken.contains(&key(c)) && self.take(key(c)).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// On create: gives a Service its ClusterIP (requested or free) and NodePorts, reserving
/// them for its uid; fills `spec.clusterIP(s)` and `status`. A dry run checks without
/// reserving. On error nothing stays reserved; once the create is given up, free
/// [`create_aborted`].
pub async fn allocate(state: &ApiState, obj: &mut Value, dry_run: bool) -> Result<(), ApiError> {
    obj["status"] = json!({"loadBalancer": {}});
    let mut r = reserver(state, obj, dry_run);
    let result = async {
        allocate_cluster_ip(state, obj, &mut r).await?;
        allocate_node_ports(state, obj, None, &mut r).await
    }
    .await;
    if result.is_err() {
        free(r.store, &r.reserved.0).await;
    }
    result
}

fn reserver<'a>(state: &'a ApiState, obj: &Value, dry_run: bool) -> Reserver<'a> {
    let holder = Holder {
        namespace: object::namespace(obj).into(),
        name: object::name(obj).into(),
        uid: object::meta_str(obj, "uid").into(),
        time: object::now(),
    };
    Reserver {
        store: state.storage.store.as_ref(),
        holder: serde_json::to_vec(&holder).unwrap_or_default(),
        dry_run,
        reserved: Reserved::default(),
    }
}

async fn allocate_cluster_ip(
    state: &ApiState,
    obj: &mut Value,
    r: &mut Reserver<'_>,
) -> Result<(), ApiError> {
    let net = &state.services;
    let spec = &obj["spec"];
    if !wants_cluster_ip(spec) {
        return Ok(());
    }
    let requested = spec["clusterIPs"][0]
        .as_str()
        .or(spec["clusterIP"].as_str())
        .unwrap_or("")
        .to_string();
    let ip = match requested.as_str() {
        "None" => {
            obj["spec"]["clusterIP"] = json!("None");
            obj["spec"]["clusterIPs"] = json!(["None"]);
            return Ok(());
        }
        "" => {
            let taken = taken(r.store, IPS).await?;
            let start = rand::random::<u32>();
            r.first_free(net.dynamic_ips(start), ip_key, &taken)
                .await?
                .ok_or_else(|| {
                    ApiError::internal("failed to allocate a serviceIP: range is full")
                })?
        }
        text => {
            let shown = format!("[]string{{{text:?}}}");
            let fail = |why: String| {
                invalid(
                    obj,
                    "spec.clusterIPs",
                    format!("Invalid value: {shown}: failed to allocate IP {text}: {why}"),
                )
            };
            let ip: Ipv4Addr = text.parse().map_err(|_| {
                invalid(
                    obj,
                    "spec.clusterIPs[0]",
                    format!("Invalid value: {text:?}: must be a valid IP address"),
                )
            })?;
            if !net.ip_in_range(ip) {
                return Err(fail(format!(
                    "provided IP ({ip}) is not in the valid range. The range of valid IPs is {}",
                    net.cidr
                )));
            }
            if !r.take(ip_key(ip)).await? {
                return Err(fail("provided IP is already allocated".into()));
            }
            ip
        }
    };
    obj["spec"]["clusterIP"] = json!(ip.to_string());
    obj["spec"]["clusterIPs"] = json!([ip.to_string()]);
    Ok(())
}

/// Gives every port of a NodePort/LoadBalancer Service a NodePort: the one it asks for, the
/// one `old` had for the same port, or a free one.
async fn allocate_node_ports(
    state: &ApiState,
    obj: &mut Value,
    old: Option<&Value>,
    r: &mut Reserver<'_>,
) -> Result<(), ApiError> {
    let net = &state.services;
    if !wants_node_ports(&obj["spec"]) {
        return Ok(());
    }
    let held: HashSet<i64> = old
        .map(node_ports)
        .unwrap_or_default()
        .into_iter()
        .collect();
    let mut mine: HashSet<i64> = HashSet::new();
    let count = obj["spec"]["ports"].as_array().map_or(0, Vec::len);
    let mut taken_now: Option<HashSet<String>> = None;
    for i in 0..count {
        let port = obj["spec"]["ports"][i].clone();
        let requested = port["nodePort"]
            .as_i64()
            .filter(|p| *p != 0)
            .or_else(|| old.and_then(|o| old_node_port(o, &port)));
        let field = format!("spec.ports[{i}].nodePort");
        let chosen = match requested {
            Some(p) => {
                let in_range = u16::try_from(p).is_ok_and(|p| net.node_ports.contains(&p));
                if !in_range {
                    return Err(invalid(obj, &field, format!(
                        "Invalid value: {p}: provided port is not in the valid range. The range of valid ports is {}",
                        net.ports_text()
                    )));
                }
                if !held.contains(&p) && !mine.contains(&p) && !r.take(port_key(p as u16)).await? {
                    return Err(invalid(
                        obj,
                        &field,
                        format!("Invalid value: {p}: provided port is already allocated"),
                    ));
                }
                p
            }
            None => {
                if taken_now.is_none() {
                    taken_now = Some(taken(r.store, PORTS).await?);
                }
                let taken = taken_now.as_ref().expect("listed above");
                let start = rand::random::<u32>();
                i64::from(
                    r.first_free(net.dynamic_ports(start), port_key, taken)
                        .await?
                        .ok_or_else(|| {
                            ApiError::internal("failed to allocate a nodePort: range is full")
                        })?,
                )
            }
        };
        mine.insert(chosen);
        obj["spec"]["ports"][i]["nodePort"] = json!(chosen);
    }
    Ok(())
}

fn node_ports(svc: &Value) -> Vec<i64> {
    svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_i64())
        .collect()
}

/// The NodePort `old` gave the port with the same number and protocol.
fn old_node_port(old: &Value, port: &Value) -> Option<i64> {
    let protocol = |p: &Value| p["protocol"].as_str().unwrap_or("TCP").to_string();
    old["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"] == port["port"] && protocol(p) == protocol(port))?["nodePort"]
        .as_i64()
}

/// On update: keeps what the Service holds when the client leaves it out (as Kubernetes'
/// `patchAllocatedValues` does) and reserves NodePorts newly asked for. On error nothing it
/// reserved stays reserved; once the update is stored, free [`updated`] (what the Service
/// no longer uses), once it is given up, [`update_aborted`].
pub async fn update(
    state: &ApiState,
    old: &Value,
    new: &mut Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if wants_cluster_ip(&new["spec"]) && wants_cluster_ip(&old["spec"]) {
        for f in ["clusterIP", "clusterIPs"] {
            if new["spec"][f].is_null() || new["spec"][f] == "" {
                new["spec"][f] = old["spec"][f].clone();
            }
        }
    }
    let mut r = reserver(state, old, dry_run);
    let result = allocate_node_ports(state, new, Some(old), &mut r).await;
    if result.is_err() {
        free(r.store, &r.reserved.0).await;
    }
    result
}

fn cluster_ip(svc: &Value) -> Option<Ipv4Addr> {
    svc["spec"]["clusterIP"].as_str()?.parse().ok()
}

/// Frees allocations no Service holds any more (a crash between reserving and storing, a
/// Service removed through the store) once they are older than [`GRACE`].
pub async fn repair(state: &ApiState) -> Result<usize, ApiError> {
    let info = crate::registry::Kind::info(&crate::kinds::core::service::Services);
    let store = state.storage.store.as_ref();
    let mut freed = 0;
    let mut services: Option<std::collections::HashMap<(String, String), Value>> = None;
    for prefix in [IPS, PORTS] {
        for kv in store.list(prefix, None, 0, None).await?.items {
            let Ok(holder) = serde_json::from_slice::<Holder>(&kv.value) else {
                continue;
            };
            let young = chrono::DateTime::parse_from_rfc3339(&holder.time)
                .is_ok_and(|t| chrono::Utc::now() - t.with_timezone(&chrono::Utc) < GRACE);
            if young {
                continue;
            }
            let member = &kv.key[prefix.len()..];
            if services.is_none() {
                // One list of every Service, only when some allocation is old enough to check.
                let page = state.storage.list(info, None, None, 0, None).await?;
                let by_name = page.items.into_iter().map(|s| {
                    let key = (
                        object::namespace(&s).to_string(),
                        object::name(&s).to_string(),
                    );
                    (key, s)
                });
                services = Some(by_name.collect());
            }
            let svc = services
                .as_ref()
                .and_then(|m| m.get(&(holder.namespace.clone(), holder.name.clone())));
            let holds = svc.is_some_and(|s| {
                object::meta_str(s, "uid") == holder.uid
                    && match prefix {
                        IPS => s["spec"]["clusterIP"] == member,
                        _ => node_ports(s).iter().any(|p| p.to_string() == member),
                    }
            });
            if !holds && store.delete(&kv.key, Some(kv.mod_revision)).await.is_ok() {
                tracing::info!(key = %kv.key, "freed a service allocation nobody holds");
                freed += 1;
            }
        }
    }
    Ok(freed)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn held_keys_follow_the_type() {
        let svc = |spec: Value| json!({"spec": spec});
        let ports = json!([{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30001}]);
        assert_eq!(
            held(&svc(
                json!({"type": "NodePort", "clusterIP": "10.43.0.5", "ports": ports})
            )),
            Keys(vec![ip_key([10, 43, 0, 5].into()), port_key(30001)])
        );
        assert_eq!(
            held(&svc(json!({"clusterIP": "10.43.0.5", "ports": ports}))),
            Keys(vec![ip_key([10, 43, 0, 5].into())]),
            "a ClusterIP Service holds no NodePorts"
        );
        assert_eq!(
            held(&svc(
                json!({"type": "ExternalName", "clusterIP": "10.43.0.5"})
            )),
            Keys::default()
        );
        assert_eq!(held(&svc(json!({"clusterIP": "None"}))), Keys::default());
    }

    #[tokio::test]
    async fn release_frees_only_keys_the_service_holds() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
        let encryptor = Arc::new(crate::encryption::Encryptor::load_or_create(dir.path()).unwrap());
        let state = ApiState::new(store.clone(), Default::default(), encryptor);
        let holder = |uid: &str| {
            serde_json::to_vec(&Holder {
                namespace: "default".into(),
                name: "a".into(),
                uid: uid.into(),
                time: object::now(),
            })
            .unwrap()
        };
        let ip = ip_key([10, 43, 0, 5].into());
        store.create(&ip, holder("mine")).await.unwrap();
        store
            .create(&port_key(30001), holder("theirs"))
            .await
            .unwrap();
        let svc = json!({"metadata": {"name": "a", "namespace": "default", "uid": "mine"},
            "spec": {"type": "NodePort", "clusterIP": "10.43.0.5",
                "ports": [{"port": 80, "nodePort": 30001}, {"port": 81, "nodePort": 30002}]}});
        release(&state, &svc, held(&svc)).await;
        assert!(store.get(&ip).await.unwrap().is_none());
        assert!(
            store.get(&port_key(30001)).await.unwrap().is_some(),
            "another Service's key stays"
        );
    }
}
