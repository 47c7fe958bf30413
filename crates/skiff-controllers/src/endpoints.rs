//! The Endpoints and EndpointSlice controllers (kube-controller-manager's `endpoint` and
//! `endpointslice` controllers): for every Service with a selector, the pods it selects that
//! have an address, as v1 Endpoints (ready and not-ready addresses) and discovery/v1
//! EndpointSlices (ready / serving / terminating conditions), with the Service's ports resolved
//! against each pod's named container ports. Pods whose ports resolve differently land in
//! different subsets and slices. Services without a selector are left to their users.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::{Api, Resource, ResourceExt};
use serde_json::{json, Value};

use crate::cachedpod::CachedPod;
use crate::context::Context;
use crate::error::Result;
use crate::expectations;
use crate::informer::Change;
use crate::pods::controller_ref;
use crate::runner::{self, Triggers};

pub const SERVICE_NAME: &str = "kubernetes.io/service-name";
pub const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
pub const CONTROLLER_NAME: &str = "endpointslice-controller.k8s.io";

/// The controller, running until dropped.
pub fn controller(ctx: Arc<Context>) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.services.store();
    let own = runner::own(ctx.informers.services.changes(), store.clone());
    let pods = pod_triggers(&ctx, store.clone());
    let services = store.clone();
    let endpoints = runner::map_changes(ctx.informers.endpoints.changes(), move |c| match c {
        Change::Applied { new, .. } => {
            vec![ObjectRef::new(&new.name_any()).within(&new.namespace().unwrap_or_default())]
        }
        Change::Deleted(old) => {
            vec![ObjectRef::new(&old.name_any()).within(&old.namespace().unwrap_or_default())]
        }
        Change::Relisted => runner::all(&services),
    });
    let services = store.clone();
    let slices = runner::map_changes(ctx.informers.endpoint_slices.changes(), move |c| {
        let svc = |s: &EndpointSlice| {
            let labels = s.labels();
            (labels.get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME))
                .then(|| labels.get(SERVICE_NAME))
                .flatten()
                .map(|n| ObjectRef::new(n).within(&s.namespace().unwrap_or_default()))
        };
        match c {
            Change::Applied { new, .. } => svc(&new).into_iter().collect(),
            Change::Deleted(old) => svc(&old).into_iter().collect(),
            Change::Relisted => runner::all(&services),
        }
    });
    runner::run(
        "Endpoints",
        ctx,
        store,
        vec![own, pods, endpoints, slices],
        |svc, ctx| Box::pin(reconcile(svc, ctx)),
    )
}

fn selector_of(svc: &Service) -> Option<Selector> {
    let map = svc
        .spec
        .as_ref()?
        .selector
        .clone()
        .filter(|m| !m.is_empty())?;
    Some(map.into_iter().collect())
}

/// A pod change wakes every Service whose selector matched it before or matches it now.
fn pod_triggers(ctx: &Context, services: Store<Service>) -> Triggers<Service> {
    runner::map_changes(ctx.informers.pods.changes(), move |c| {
        let pods: Vec<Arc<CachedPod>> = match c {
            Change::Applied { old, new } => old.into_iter().chain([new]).collect(),
            Change::Deleted(old) => vec![old],
            Change::Relisted => return runner::all(&services),
        };
        let mut out = BTreeSet::new();
        for svc in services.state() {
            let Some(sel) = selector_of(&svc) else {
                continue;
            };
            if pods
                .iter()
                .any(|p| p.namespace() == svc.namespace() && sel.matches(p.labels()))
            {
                out.insert((svc.name_any(), svc.namespace().unwrap_or_default()));
            }
        }
        out.into_iter()
            .map(|(n, ns)| ObjectRef::new(&n).within(&ns))
            .collect()
    })
}

/// One Service port resolved for one pod.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Port {
    name: Option<String>,
    port: i32,
    protocol: String,
}

/// The Service's ports as `pod` serves them; None when a named target port is missing.
fn resolve_ports(svc: &Service, pod: &CachedPod) -> Option<Vec<Port>> {
    let ports = svc.spec.as_ref()?.ports.clone().unwrap_or_default();
    ports
        .iter()
        .map(|p| {
            let port = match &p.target_port {
                None => p.port,
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(i)) => *i,
                Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name)) => {
                    pod.spec
                        .as_ref()?
                        .containers
                        .iter()
                        .flat_map(|c| c.ports.iter().flatten())
                        .find(|cp| cp.name.as_deref() == Some(name.as_str()))?
                        .container_port
                }
            };
            Some(Port {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
        })
        .collect()
}

/// One selected pod with an address.
struct Member<'a> {
    pod: &'a CachedPod,
    ip: String,
    ready: bool,
    terminating: bool,
}

fn target_ref(p: &CachedPod) -> Value {
    json!({"kind": "Pod", "name": p.name_any(), "namespace": p.namespace(), "uid": p.metadata.uid})
}

fn node_name(p: &CachedPod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone()
}

/// The ports as Endpoints (`slice` false: an unnamed port has no `name`) or an EndpointSlice
/// lists them (`name: ""` for an unnamed port, as upstream's controller writes it; `kubectl
/// describe service` reads that name without checking, and crashed on a slice without it).
fn ports_json(ports: &[Port], slice: bool) -> Vec<Value> {
    ports
        .iter()
        .map(|p| {
            let mut v = json!({"port": p.port, "protocol": p.protocol});
            match &p.name {
                Some(n) => v["name"] = json!(n),
                None if slice => v["name"] = json!(""),
                None => {}
            }
            v
        })
        .collect()
}

/// One sync of one Service.
pub async fn reconcile(svc: Arc<Service>, ctx: Arc<Context>) -> Result<Action> {
    let Some(selector) = selector_of(&svc) else {
        return Ok(Action::await_change());
    };
    if svc.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let publish_not_ready = svc
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    // The namespace's pods from the index, not every cached pod (a sync per Service).
    let ns_pods = ctx.informers.pods_in(&ns);
    let mut groups: BTreeMap<Vec<Port>, Vec<Member<'_>>> = BTreeMap::new();
    for pod in &ns_pods {
        if !selector.matches(pod.labels()) || !crate::pods::is_active_or_terminating(pod) {
            continue;
        }
        let Some(ip) = pod
            .status
            .as_ref()
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty())
        else {
            continue;
        };
        let Some(ports) = resolve_ports(&svc, pod) else {
            continue;
        };
        let terminating = pod.metadata.deletion_timestamp.is_some();
        groups.entry(ports).or_default().push(Member {
            pod,
            ip,
            ready: crate::pods::is_ready(pod) || publish_not_ready,
            terminating,
        });
    }
    for members in groups.values_mut() {
        members.sort_by(|a, b| a.ip.cmp(&b.ip));
    }
    let mut labels = svc.labels().clone();
    let owner = controller_ref("v1", "Service", svc.meta());

    // v1 Endpoints: terminating pods are left out (unless not-ready addresses are published).
    let subsets: Vec<Value> = groups
        .iter()
        .filter_map(|(ports, members)| {
            let addr = |m: &Member<'_>| {
                let mut a = json!({"ip": m.ip, "targetRef": target_ref(m.pod)});
                if let Some(n) = node_name(m.pod) {
                    a["nodeName"] = json!(n);
                }
                a
            };
            let live = members
                .iter()
                .filter(|m| !m.terminating || publish_not_ready);
            let (ready, not_ready): (Vec<_>, Vec<_>) = live.partition(|m| m.ready);
            if ready.is_empty() && not_ready.is_empty() {
                return None;
            }
            let mut s = json!({"ports": ports_json(ports, false)});
            if !ready.is_empty() {
                s["addresses"] = ready.into_iter().map(addr).collect();
            }
            if !not_ready.is_empty() {
                s["notReadyAddresses"] = not_ready.into_iter().map(addr).collect();
            }
            Some(s)
        })
        .collect();
    let endpoints_api: Api<Endpoints> = Api::namespaced(ctx.client.clone(), &ns);
    let existing = ctx
        .informers
        .endpoints
        .store()
        .get(&ObjectRef::new(&name).within(&ns));
    let want_subsets = Value::Array(subsets);
    match existing {
        None => {
            let ep = json!({"metadata": {"name": name, "namespace": ns, "labels": labels,
                "ownerReferences": [owner]}, "subsets": want_subsets});
            match endpoints_api
                .create(&PostParams::default(), &serde_json::from_value(ep)?)
                .await
            {
                Ok(_) => {}
                // Created meanwhile: the cache will show it and trigger another sync.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(ep) => {
            let have = serde_json::to_value(&ep.subsets)?;
            let have = if have.is_null() { json!([]) } else { have };
            if have != want_subsets || ep.labels() != &labels {
                let patch = json!({"metadata": {"labels": labels, "resourceVersion": ep.metadata.resource_version},
                    "subsets": want_subsets});
                endpoints_api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
            }
        }
    }

    // discovery/v1 EndpointSlices: one per port set, terminating pods flagged.
    labels.insert(SERVICE_NAME.into(), name.clone());
    labels.insert(MANAGED_BY.into(), CONTROLLER_NAME.into());
    let slice_api: Api<EndpointSlice> = Api::namespaced(ctx.client.clone(), &ns);
    let mut existing: Vec<Arc<EndpointSlice>> = ctx
        .informers
        .endpoint_slices
        .store()
        .state()
        .into_iter()
        .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
        .filter(|s| s.labels().get(SERVICE_NAME) == Some(&name))
        .filter(|s| s.labels().get(MANAGED_BY).map(String::as_str) == Some(CONTROLLER_NAME))
        .collect();
    // Slices have generated names: acting on a cache that does not show this controller's
    // last creates or deletes yet would make a second slice for the same ports (upstream's
    // EndpointSliceTracker guards the same). Wait for the cache; its event requeues us.
    let exp_key = expectations::key("EndpointSlice", &ns, &name);
    let seen = |n: &str| {
        existing
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(n))
    };
    let alive = |u: &str| {
        existing
            .iter()
            .any(|s| s.metadata.uid.as_deref() == Some(u))
    };
    if !ctx.expectations.satisfied(&exp_key, seen, alive) {
        return Ok(Action::requeue(Duration::from_millis(500)));
    }
    let mut desired: Vec<(Value, Value)> = groups
        .iter()
        .map(|(ports, members)| {
            let endpoints: Vec<Value> = members
                .iter()
                .map(|m| {
                    let mut e = json!({"addresses": [m.ip],
                        "conditions": {"ready": m.ready && !m.terminating,
                            "serving": m.ready, "terminating": m.terminating},
                        "targetRef": target_ref(m.pod)});
                    if let Some(n) = node_name(m.pod) {
                        e["nodeName"] = json!(n);
                    }
                    e
                })
                .collect();
            (
                Value::Array(ports_json(ports, true)),
                Value::Array(endpoints),
            )
        })
        .collect();
    // A Service with a selector has a slice even when it selects nothing.
    if desired.is_empty() {
        let ports: Vec<Port> = svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.clone())
            .unwrap_or_default()
            .iter()
            .map(|p| Port {
                name: p.name.clone().filter(|n| !n.is_empty()),
                port: p.port,
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".into()),
            })
            .collect();
        desired.push((Value::Array(ports_json(&ports, true)), json!([])));
    }
    for (ports, endpoints) in desired {
        let same_ports = existing.iter().position(|s| {
            serde_json::to_value(&s.ports)
                .ok()
                .map(|p| if p.is_null() { json!([]) } else { p })
                == Some(ports.clone())
        });
        let slot = same_ports.or(if existing.is_empty() { None } else { Some(0) });
        match slot.map(|i| existing.remove(i)) {
            Some(s) => {
                let have_eps = serde_json::to_value(&s.endpoints)?;
                let have_ports = serde_json::to_value(&s.ports)?;
                let have_ports = if have_ports.is_null() {
                    json!([])
                } else {
                    have_ports
                };
                if have_eps != endpoints || have_ports != ports || s.labels() != &labels {
                    let patch = json!({"metadata": {"labels": labels, "resourceVersion": s.metadata.resource_version},
                        "endpoints": endpoints, "ports": ports});
                    slice_api
                        .patch(
                            &s.name_any(),
                            &PatchParams::default(),
                            &Patch::Merge(&patch),
                        )
                        .await?;
                }
            }
            None => {
                let slice = json!({
                    "metadata": {"generateName": format!("{name}-"), "namespace": ns,
                        "labels": labels, "ownerReferences": [owner]},
                    "addressType": "IPv4", "endpoints": endpoints, "ports": ports,
                });
                let made = slice_api
                    .create(&PostParams::default(), &serde_json::from_value(slice)?)
                    .await?;
                ctx.expectations.expect_creation(&exp_key, &made.name_any());
            }
        }
    }
    for extra in existing {
        match slice_api
            .delete(&extra.name_any(), &DeleteParams::default())
            .await
        {
            Ok(_) => {
                if let Some(uid) = &extra.metadata.uid {
                    ctx.expectations.expect_deletion(&exp_key, uid);
                }
            }
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Action::await_change())
}
