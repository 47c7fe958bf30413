//! A container's environment as kubelet makes it: `envFrom` sources first (ConfigMaps and
//! Secrets, each key with the source's prefix), then `env` in order — literal values with
//! `$(VAR)` expanded against what came before, `valueFrom` ConfigMap and Secret keys and the
//! downward API (`fieldRef`, `resourceFieldRef`) taken as they are. A missing source or key
//! that is not `optional` is an error whose message becomes the container's
//! `CreateContainerConfigError`. Before all of them come the `KUBERNETES_SERVICE_HOST`/`PORT`
//! family kubelet gives every container, naming the `default/kubernetes` Service's ClusterIP
//! and port (the node translates them to the API server for its pods, [`crate::apiservice`]);
//! `hostNetwork` pods, whose connections the node does not translate, get the API server's
//! own address from the Service's Endpoints.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ConfigMap, Container, Endpoints, Pod, Secret, Service};
use kube::Api;

use crate::spec::expand;

/// The ConfigMaps and Secrets a container's environment names, as read from the API (None
/// when absent).
#[derive(Debug, Default)]
pub struct EnvSources {
    config_maps: HashMap<String, Option<BTreeMap<String, String>>>,
    secrets: HashMap<String, Option<BTreeMap<String, String>>>,
    /// Where pods reach the API: the `default/kubernetes` Service's ClusterIP and port, or
    /// for `hostNetwork` pods its first endpoint.
    api_server: Option<(String, i32)>,
}

impl EnvSources {
    /// Reads every ConfigMap and Secret `c`'s `env` and `envFrom` name, in the pod's namespace,
    /// and where the API is for a pod on the pod network or (`host_network`) the host's.
    pub async fn fetch(
        client: &kube::Client,
        namespace: &str,
        c: &Container,
        host_network: bool,
    ) -> kube::Result<Self> {
        let mut out = EnvSources::default();
        let mut maps: Vec<String> = Vec::new();
        let mut secrets: Vec<String> = Vec::new();
        for f in c.env_from.iter().flatten() {
            maps.extend(f.config_map_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(f.secret_ref.as_ref().map(|r| r.name.clone()));
        }
        for e in c.env.iter().flatten() {
            let Some(from) = &e.value_from else { continue };
            maps.extend(from.config_map_key_ref.as_ref().map(|r| r.name.clone()));
            secrets.extend(from.secret_key_ref.as_ref().map(|r| r.name.clone()));
        }
        for names in [&mut maps, &mut secrets] {
            names.sort();
            names.dedup();
        }
        out.api_server = if host_network {
            let endpoints: Api<Endpoints> =
                Api::namespaced(client.clone(), crate::apiservice::NAMESPACE);
            endpoints
                .get_opt(crate::apiservice::NAME)
                .await?
                .and_then(|e| e.subsets?.into_iter().next())
                .and_then(|s| {
                    let ip = s.addresses?.into_iter().next()?.ip;
                    let port = s.ports?.into_iter().next()?.port;
                    Some((ip, port))
                })
        } else {
            let services: Api<Service> =
                Api::namespaced(client.clone(), crate::apiservice::NAMESPACE);
            services
                .get_opt(crate::apiservice::NAME)
                .await?
                .and_then(|svc| svc.spec)
                .and_then(|spec| {
                    let ip = spec
                        .cluster_ip
                        .filter(|ip| !ip.is_empty() && ip != "None")?;
                    let port = spec.ports?.into_iter().next()?.port;
                    Some((ip, port))
                })
        };
        let cm_api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        for name in maps {
            let data = cm_api
                .get_opt(&name)
                .await?
                .map(|cm| cm.data.unwrap_or_default());
            out.config_maps.insert(name, data);
        }
        let secret_api: Api<Secret> = Api::namespaced(client.clone(), namespace);
        for name in secrets {
            let data = secret_api.get_opt(&name).await?.map(|s| {
                let mut all: BTreeMap<String, String> = s
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, String::from_utf8_lossy(&v.0).into_owned()))
                    .collect();
                all.extend(s.string_data.unwrap_or_default());
                all
            });
            out.secrets.insert(name, data);
        }
        Ok(out)
    }
}

/// kubelet's variables of the `kubernetes` Service, naming `ip:port`.
fn api_server_env(ip: &str, port: i32) -> Vec<(String, String)> {
    let url = format!("tcp://{ip}:{port}");
    let p = format!("KUBERNETES_PORT_{port}_TCP");
    [
        ("KUBERNETES_SERVICE_HOST".to_string(), ip.to_string()),
        ("KUBERNETES_SERVICE_PORT".into(), port.to_string()),
        ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port.to_string()),
        ("KUBERNETES_PORT".into(), url.clone()),
        (p.clone(), url),
        (format!("{p}_PROTO"), "tcp".into()),
        (format!("{p}_PORT"), port.to_string()),
        (format!("{p}_ADDR"), ip.to_string()),
    ]
    .into_iter()
    .collect()
}

/// What the downward API reads besides the pod object.
pub struct Downward<'a> {
    pub pod_ip: Option<&'a str>,
    pub host_ip: &'a str,
}

/// The container's environment, in order; Err is the reason it cannot be made.
pub fn environment(
    pod: &Pod,
    c: &Container,
    src: &EnvSources,
    downward: &Downward<'_>,
) -> Result<Vec<(String, String)>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out: Vec<(String, String)> = src
        .api_server
        .as_ref()
        .map(|(ip, port)| api_server_env(ip, *port))
        .unwrap_or_default();
    let set = |out: &mut Vec<(String, String)>, k: String, v: String| {
        out.retain(|(name, _)| *name != k);
        out.push((k, v));
    };
    for f in c.env_from.iter().flatten() {
        let prefix = f.prefix.clone().unwrap_or_default();
        let (data, kind, name, optional) = if let Some(r) = &f.config_map_ref {
            (
                src.config_maps.get(&r.name),
                "configmap",
                &r.name,
                r.optional,
            )
        } else if let Some(r) = &f.secret_ref {
            (src.secrets.get(&r.name), "secret", &r.name, r.optional)
        } else {
            continue;
        };
        match data.and_then(Option::as_ref) {
            Some(data) => {
                for (k, v) in data {
                    set(&mut out, format!("{prefix}{k}"), v.clone());
                }
            }
            None if optional == Some(true) => {}
            None => return Err(format!("{kind} {name:?} not found")),
        }
    }
    for e in c.env.iter().flatten() {
        let value = match &e.value_from {
            None => {
                let known: HashMap<String, String> = out.iter().cloned().collect();
                expand(e.value.as_deref().unwrap_or(""), &known)
            }
            Some(from) => {
                if let Some(r) = &from.config_map_key_ref {
                    match key(src.config_maps.get(&r.name), &r.key) {
                        Ok(v) => v,
                        Err(_) if r.optional == Some(true) => continue,
                        Err(Missing::Object) => {
                            return Err(format!("configmap {:?} not found", r.name))
                        }
                        Err(Missing::Key) => {
                            return Err(format!(
                                "couldn't find key {} in ConfigMap {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else if let Some(r) = &from.secret_key_ref {
                    match key(src.secrets.get(&r.name), &r.key) {
                        Ok(v) => v,
                        Err(_) if r.optional == Some(true) => continue,
                        Err(Missing::Object) => {
                            return Err(format!("secret {:?} not found", r.name))
                        }
                        Err(Missing::Key) => {
                            return Err(format!(
                                "couldn't find key {} in Secret {ns}/{}",
                                r.key, r.name
                            ))
                        }
                    }
                } else if let Some(f) = &from.field_ref {
                    field(pod, &f.field_path, downward)
                        .ok_or_else(|| format!("unsupported fieldPath: {}", f.field_path))?
                } else if let Some(r) = &from.resource_field_ref {
                    resource_field(pod, c, r)?
                } else {
                    String::new()
                }
            }
        };
        set(&mut out, e.name.clone(), value);
    }
    Ok(out)
}

enum Missing {
    Object,
    Key,
}

fn key(data: Option<&Option<BTreeMap<String, String>>>, k: &str) -> Result<String, Missing> {
    let data = data.and_then(Option::as_ref).ok_or(Missing::Object)?;
    data.get(k).cloned().ok_or(Missing::Key)
}

/// The downward API's `fieldRef` paths kubelet supports for env.
pub(crate) fn field(pod: &Pod, path: &str, d: &Downward<'_>) -> Option<String> {
    let m = &pod.metadata;
    let spec = pod.spec.as_ref();
    let indexed = |prefix: &str, map: Option<&BTreeMap<String, String>>| {
        let k = path.strip_prefix(prefix)?.strip_suffix("']")?;
        Some(map.and_then(|m| m.get(k)).cloned().unwrap_or_default())
    };
    Some(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => spec.and_then(|s| s.node_name.clone()).unwrap_or_default(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.hostIP" | "status.hostIPs" => d.host_ip.to_string(),
        "status.podIP" | "status.podIPs" => d.pod_ip.unwrap_or_default().to_string(),
        _ => {
            return indexed("metadata.labels['", m.labels.as_ref())
                .or_else(|| indexed("metadata.annotations['", m.annotations.as_ref()))
        }
    })
}

/// `resourceFieldRef`: a container's request or limit in units of its divisor (rounded up,
/// as kubelet does); a missing limit reads as the node's allocatable, here left empty.
pub(crate) fn resource_field(
    pod: &Pod,
    c: &Container,
    r: &k8s_openapi::api::core::v1::ResourceFieldSelector,
) -> Result<String, String> {
    let target = match r.container_name.as_deref().filter(|n| !n.is_empty()) {
        Some(name) => pod
            .spec
            .as_ref()
            .and_then(|s| s.containers.iter().find(|x| x.name == name))
            .ok_or_else(|| format!("container {name:?} not found in the pod"))?,
        None => c,
    };
    let (list, res) = r
        .resource
        .split_once('.')
        .ok_or_else(|| format!("unsupported resource {:?}", r.resource))?;
    let resources = target.resources.as_ref();
    let q = match list {
        "limits" => resources.and_then(|x| x.limits.as_ref()),
        "requests" => resources.and_then(|x| x.requests.as_ref()),
        _ => return Err(format!("unsupported resource {:?}", r.resource)),
    }
    .and_then(|m| m.get(res));
    let Some(q) = q else {
        return Ok(String::new());
    };
    let divisor = r.divisor.as_ref().map(|d| d.0.as_str()).unwrap_or("1");
    let value = match res {
        "cpu" => {
            let (v, d) = (
                crate::quantity::millicpu(&q.0),
                crate::quantity::millicpu(divisor),
            );
            v.zip(d)
                .filter(|(_, d)| *d > 0)
                .map(|(v, d)| (v + d - 1) / d)
        }
        _ => {
            let (v, d) = (
                crate::quantity::bytes(&q.0),
                crate::quantity::bytes(divisor),
            );
            v.zip(d)
                .filter(|(_, d)| *d > 0)
                .map(|(v, d)| (v + d - 1) / d)
        }
    };
    value
        .map(|v| v.to_string())
        .ok_or_else(|| format!("invalid quantity in resourceFieldRef {:?}", r.resource))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod() -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u", "labels": {"app": "web"}},
            "spec": {"nodeName": "n1", "containers": [{"name": "c",
                "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}}}]},
        }))
        .unwrap()
    }

    fn container(v: serde_json::Value) -> Container {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn env_from_then_env_with_sources_and_downward_api() {
        let mut src = EnvSources::default();
        src.config_maps.insert(
            "cfg".into(),
            Some(BTreeMap::from([
                ("MODE".into(), "fast".into()),
                ("A".into(), "1".into()),
            ])),
        );
        src.secrets.insert(
            "sec".into(),
            Some(BTreeMap::from([("pw".into(), "hunter2".into())])),
        );
        let c = container(json!({"name": "c",
        "resources": {"limits": {"memory": "64Mi", "cpu": "500m"}},
        "envFrom": [{"configMapRef": {"name": "cfg"}, "prefix": "CFG_"}],
        "env": [
            {"name": "PW", "valueFrom": {"secretKeyRef": {"name": "sec", "key": "pw"}}},
            {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "MEM", "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}}},
            {"name": "CPU", "valueFrom": {"resourceFieldRef": {"resource": "limits.cpu"}}},
            {"name": "X", "value": "$(CFG_MODE)-$(ME)"},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "nope", "key": "k", "optional": true}}},
        ]}));
        let d = Downward {
            pod_ip: Some("10.42.0.5"),
            host_ip: "192.0.2.1",
        };
        let env = environment(&pod(), &c, &src, &d).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_MODE"), Some("fast"));
        assert_eq!(get("CFG_A"), Some("1"));
        assert_eq!(get("PW"), Some("hunter2"));
        assert_eq!(get("ME"), Some("p"));
        assert_eq!(get("APP"), Some("web"));
        assert_eq!(get("IP"), Some("10.42.0.5"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(get("CPU"), Some("1"));
        assert_eq!(get("X"), Some("fast-p"));
        assert_eq!(get("OPT"), None);
    }

    #[test]
    fn missing_sources_are_errors_in_kubelets_words() {
        let src = EnvSources::default();
        let d = Downward {
            pod_ip: None,
            host_ip: "192.0.2.1",
        };
        let c = container(json!({"name": "c",
            "env": [{"name": "K", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "k"}}}]}));
        assert_eq!(
            environment(&pod(), &c, &src, &d).unwrap_err(),
            "configmap \"cfg\" not found"
        );
        let mut src = EnvSources::default();
        src.secrets.insert("s".into(), Some(BTreeMap::new()));
        let c = container(json!({"name": "c",
            "env": [{"name": "K", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]}));
        assert_eq!(
            environment(&pod(), &c, &src, &d).unwrap_err(),
            "couldn't find key k in Secret ns/s"
        );
    }
}
