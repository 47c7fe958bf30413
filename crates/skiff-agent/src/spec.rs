//! A pod container as an engine container: Docker's create body from the pod spec, with
//! Kubernetes' semantics for `command`/`args` (and `$(VAR)` expansion), the environment,
//! `workingDir`,
//! `resources.limits` and the sandbox's namespaces and files.

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Container, Pod};
use serde_json::{json, Value};
use skiff_engine::models::ContainerCreateBody;

use crate::labels;
use crate::quantity;
use crate::sandbox::PodSandbox;

/// Which list of the pod spec a container comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Init,
    App,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::Init => "init",
            Kind::App => "app",
        }
    }
}

/// Expands `$(VAR)` references from `env` as Kubernetes does: `$$` is a literal `$`, an
/// undefined or malformed reference stays as written.
pub fn expand(input: &str, env: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('(') {
            match body.find(')') {
                Some(end) => {
                    let name = &body[..end];
                    match env.get(name) {
                        Some(v) => out.push_str(v),
                        None => {
                            out.push_str("$(");
                            out.push_str(name);
                            out.push(')');
                        }
                    }
                    rest = &body[end + 1..];
                }
                None => {
                    out.push_str("$(");
                    rest = body;
                }
            }
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Everything that decides one engine container of a pod.
pub struct Plan<'a> {
    pub pod: &'a Pod,
    pub container: &'a Container,
    pub kind: Kind,
    pub attempt: u32,
    pub sandbox: &'a PodSandbox,
    /// The pod's cgroup (`<parent>/kubepods[/<qos>]/pod<uid>`).
    pub cgroup_parent: &'a str,
    /// The container's environment ([`crate::env::environment`]).
    pub env: &'a [(String, String)],
    /// Its volume mounts as engine mounts ([`crate::volumes::mounts`]).
    pub mounts: &'a [Value],
    /// Its merged security context ([`crate::security::resolve`]).
    pub security: &'a crate::security::Security,
}

impl Plan<'_> {
    /// Docker's create body.
    pub fn body(&self) -> ContainerCreateBody {
        let c = self.container;
        let pod = self.pod;
        let spec = pod.spec.clone().unwrap_or_default();
        let env = self.env;
        let vars: HashMap<String, String> = env.iter().cloned().collect();
        let expand_all = |v: &Option<Vec<String>>| -> Option<Vec<String>> {
            v.as_ref()
                .map(|items| items.iter().map(|s| expand(s, &vars)).collect())
        };
        let command = expand_all(&c.command);
        let args = expand_all(&c.args);
        let meta = &pod.metadata;
        let uid = meta.uid.clone().unwrap_or_default();
        let grace = spec.termination_grace_period_seconds.unwrap_or(30);
        let message_path = c
            .termination_message_path
            .clone()
            .unwrap_or_else(|| "/dev/termination-log".into());
        let mut labels = serde_json::Map::new();
        for (k, v) in [
            (labels::POD_NAME, meta.name.clone().unwrap_or_default()),
            (
                labels::POD_NAMESPACE,
                meta.namespace.clone().unwrap_or_default(),
            ),
            (labels::POD_UID, uid.clone()),
            (labels::CONTAINER_NAME, c.name.clone()),
            (labels::RESTART_COUNT, self.attempt.to_string()),
            (labels::GRACE_PERIOD, grace.to_string()),
            (labels::TERMINATION_MESSAGE_PATH, message_path.clone()),
            (labels::DOCKER_TYPE, "container".into()),
            (labels::CONTAINER_KIND, self.kind.label().into()),
        ] {
            labels.insert(k.into(), json!(v));
        }
        let sb = self.sandbox;
        let mut binds = vec![
            format!("{}:/etc/hosts", sb.hosts().display()),
            format!("{}:/etc/resolv.conf", sb.resolv_conf().display()),
            format!("{}:/dev/shm", sb.shm().display()),
        ];
        if message_path.starts_with('/') && !message_path.contains(':') {
            binds.push(format!(
                "{}:{message_path}",
                sb.termination_log(&c.name, self.attempt).display()
            ));
        }
        let ns = |p: Option<std::path::PathBuf>| p.map(|p| format!("ns:{}", p.display()));
        let network = ns(sb.netns.clone()).unwrap_or_else(|| "host".into());
        let uts = ns(sb.uts()).unwrap_or_else(|| "host".into());
        let limits = c
            .resources
            .as_ref()
            .and_then(|r| r.limits.clone())
            .unwrap_or_default();
        let requests = c
            .resources
            .as_ref()
            .and_then(|r| r.requests.clone())
            .unwrap_or_default();
        let memory = limits.get("memory").and_then(|q| quantity::bytes(&q.0));
        let nano_cpus = limits
            .get("cpu")
            .and_then(|q| quantity::millicpu(&q.0))
            .map(|m| m * 1_000_000);
        // kubelet's cpu.shares from the request (the limit stands in for a missing request).
        let shares = requests
            .get("cpu")
            .or(limits.get("cpu"))
            .and_then(|q| quantity::millicpu(&q.0))
            .map(|m| (m * 1024 / 1000).max(2));
        let mut host_config = json!({
            "NetworkMode": network,
            "IpcMode": ns(Some(sb.ipc())),
            "UtsMode": uts,
            "CgroupParent": self.cgroup_parent,
            "Binds": binds,
            "Mounts": self.mounts,
            "RestartPolicy": {"Name": "no"},
            "LogConfig": {"Type": "json-file", "Config": {}},
        });
        if let Some(m) = memory {
            host_config["Memory"] = json!(m);
            // No swap beyond the limit, as kubelet sets it.
            host_config["MemorySwap"] = json!(m);
        }
        if let Some(n) = nano_cpus {
            host_config["NanoCpus"] = json!(n);
        }
        if let Some(s) = shares {
            host_config["CpuShares"] = json!(s);
        }
        let mut body = json!({
            "Image": c.image.clone().unwrap_or_default(),
            "Env": env.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
            "Labels": Value::Object(labels),
            "Tty": c.tty.unwrap_or(false),
            "OpenStdin": c.stdin.unwrap_or(false),
            "StdinOnce": c.stdin_once.unwrap_or(false),
            "AttachStdin": false,
            "HostConfig": host_config,
        });
        if !sb.host_network {
            body["Hostname"] = json!(crate::sandbox::pod_hostname(pod));
        }
        if let Some(cmd) = command {
            // Like kubelet: `command` replaces the entrypoint and drops the image's CMD unless
            // `args` are given.
            body["Entrypoint"] = json!(cmd);
            body["Cmd"] = json!(args.clone().unwrap_or_default());
        } else if let Some(args) = args {
            body["Cmd"] = json!(args);
        }
        if let Some(wd) = c.working_dir.as_deref().filter(|w| !w.is_empty()) {
            body["WorkingDir"] = json!(wd);
        }
        self.security.apply(&mut body);
        serde_json::from_value(body).expect("a valid create body")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_like_kubernetes() {
        let env: HashMap<String, String> = [
            ("A".to_string(), "x".to_string()),
            ("B".to_string(), "y y".to_string()),
        ]
        .into();
        assert_eq!(expand("$(A)-$(B)", &env), "x-y y");
        assert_eq!(expand("$$(A)", &env), "$(A)");
        assert_eq!(expand("$(MISSING) $A", &env), "$(MISSING) $A");
        assert_eq!(expand("$(A", &env), "$(A");
        assert_eq!(expand("a$$b", &env), "a$b");
    }
}
