//! Authorization of the two restricted identities skiff issues itself: bootstrap callers
//! (a node presenting the join token, group `system:bootstrappers`) may only create and read
//! CertificateSigningRequests; nodes (`system:node:<name>` in `system:nodes`) get what
//! Kubernetes' Node authorizer and NodeRestriction admission give them — they read the
//! cluster, but write only their own Node and Lease, the pods bound to them and events, and
//! read a Secret only when a pod bound to them uses it, and ask for a service-account token
//! only bound to a pod of theirs that runs as that account. What this refuses them, and
//! every request of every other user, is decided by RBAC ([`crate::rbac`]): the chain is
//! kube-apiserver's `--authorization-mode=Node,RBAC`.
//!
//! It decides; it never changes a request.

use serde_json::Value;

use crate::auth::{Attributes, UserInfo};
use crate::error::ApiError;
use crate::router::ApiState;

/// Group of callers authenticated by the node join token.
pub const BOOTSTRAPPERS: &str = "system:bootstrappers";
/// Group of node client certificates.
pub const NODES: &str = "system:nodes";
/// Prefix of a node's user name.
pub const NODE_PREFIX: &str = "system:node:";

/// The node a user is, when it is one.
pub fn node_name(user: &UserInfo) -> Option<&str> {
    user.name
        .strip_prefix(NODE_PREFIX)
        .filter(|n| !n.is_empty() && user.groups.iter().any(|g| g == NODES))
}

fn is_bootstrapper(user: &UserInfo) -> bool {
    user.groups.iter().any(|g| g == BOOTSTRAPPERS)
}

/// Whether this authorizer speaks first for `user` (a node or a join-token caller).
pub fn is_restricted(user: &UserInfo) -> bool {
    node_name(user).is_some() || is_bootstrapper(user)
}

/// 403 worded as Kubernetes' authorizers word it.
pub(crate) fn denied(user: &UserInfo, a: &Attributes<'_>, why: &str) -> ApiError {
    let resource = match a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.to_string(),
    };
    let qualified = if a.group.is_empty() {
        a.resource.to_string()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let scope = match a.namespace {
        Some(ns) => format!("in the namespace \"{ns}\""),
        None => "at the cluster scope".into(),
    };
    let subject = match a.name {
        Some(n) => format!("{qualified} \"{n}\" is forbidden"),
        None => format!("{qualified} is forbidden"),
    };
    let mut message = format!(
        "{subject}: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\" {scope}",
        user.name, a.verb, a.group
    );
    if !why.is_empty() {
        message.push_str(": ");
        message.push_str(why);
    }
    ApiError::new(403, "Forbidden", message).about(a.group, a.resource, a.name.unwrap_or(""))
}

const READ: &[&str] = &["get", "list", "watch"];

/// Whether `user` may make the request `a` (with body `body` for creates, whose name the
/// path does not carry).
pub async fn authorize(
    state: &ApiState,
    user: &UserInfo,
    a: &Attributes<'_>,
    body: &[u8],
) -> Result<(), ApiError> {
    let refused = if let Some(node) = node_name(user) {
        match authorize_node(state, user, node, a, body).await {
            Err(e) if e.code == 403 => e,
            other => return other,
        }
    } else if is_bootstrapper(user) {
        let csr = a.group == "certificates.k8s.io"
            && a.resource == "certificatesigningrequests"
            && a.subresource.is_none();
        if csr && (a.verb == "create" || READ.contains(&a.verb)) {
            return Ok(());
        }
        denied(user, a, "")
    } else {
        return crate::rbac::authorize(state, user, a, || denied(user, a, "")).await;
    };
    // What the Node authorizer refuses, a binding may still grant (`Node,RBAC`).
    crate::rbac::authorize(state, user, a, || refused).await
}

async fn authorize_node(
    state: &ApiState,
    user: &UserInfo,
    node: &str,
    a: &Attributes<'_>,
    body: &[u8],
) -> Result<(), ApiError> {
    let read = READ.contains(&a.verb);
    // The object named by the path, or by the body of a create.
    let body_name = || -> Option<String> {
        serde_json::from_slice::<Value>(body)
            .ok()?
            .pointer("/metadata/name")?
            .as_str()
            .map(str::to_string)
    };
    let target = || a.name.map(str::to_string).or_else(body_name);
    let own = || target().as_deref() == Some(node);
    match (a.group, a.resource) {
        ("", "secrets") => {
            if a.verb != "get" {
                return Err(denied(
                    user,
                    a,
                    "no relationship found between node and this object",
                ));
            }
            let (ns, name) = (a.namespace.unwrap_or(""), a.name.unwrap_or(""));
            if secret_used_on(state, node, ns, name).await? {
                Ok(())
            } else {
                Err(denied(
                    user,
                    a,
                    &format!("no relationship found between node '{node}' and this object"),
                ))
            }
        }
        _ if read => Ok(()),
        ("", "nodes") if own() => Ok(()),
        ("", "nodes") => Err(denied(
            user,
            a,
            &format!(
                "node '{node}' cannot modify node {:?}",
                target().unwrap_or_default()
            ),
        )),
        ("coordination.k8s.io", "leases") if a.namespace == Some("kube-node-lease") && own() => {
            Ok(())
        }
        ("", "pods") if matches!(a.verb, "update" | "patch" | "delete") => {
            let (ns, name) = (a.namespace.unwrap_or(""), a.name.unwrap_or(""));
            let pod =
                crate::lookup::get(state, crate::lookup::core("pods"), Some(ns), name).await?;
            match pod {
                // A pod already gone: the write fails as NotFound in the handler.
                None => Ok(()),
                Some(p) if p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node) => {
                    Ok(())
                }
                Some(_) => Err(denied(
                    user,
                    a,
                    &format!("node '{node}' can only modify pods bound to it"),
                )),
            }
        }
        ("" | "events.k8s.io", "events") => Ok(()),
        ("certificates.k8s.io", "certificatesigningrequests")
            if a.verb == "create" && a.subresource.is_none() =>
        {
            Ok(())
        }
        ("", "serviceaccounts") if a.verb == "create" && a.subresource == Some("token") => {
            token_for_own_pod(state, node, a, body)
                .await?
                .map_or(Ok(()), |why| Err(denied(user, a, &why)))
        }
        _ => Err(denied(user, a, "")),
    }
}

/// Why a node may not have the token it asks for (None: it may): as Kubernetes' Node
/// authorizer and NodeRestriction, only tokens bound to a pod on this node that runs as
/// this service account.
async fn token_for_own_pod(
    state: &ApiState,
    node: &str,
    a: &Attributes<'_>,
    body: &[u8],
) -> Result<Option<String>, ApiError> {
    let req: Value = serde_json::from_slice(body).unwrap_or_default();
    let bound = req.pointer("/spec/boundObjectRef").unwrap_or(&Value::Null);
    let (kind, pod_name) = (
        bound.get("kind").and_then(Value::as_str),
        bound
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default(),
    );
    if kind != Some("Pod") || pod_name.is_empty() {
        return Ok(Some(format!(
            "node '{node}' may only request tokens bound to a pod"
        )));
    }
    let pod = crate::lookup::get(state, crate::lookup::core("pods"), a.namespace, pod_name).await?;
    let Some(pod) = pod else {
        return Ok(Some(format!(
            "no relationship found between node '{node}' and pod {pod_name:?}"
        )));
    };
    if pod.pointer("/spec/nodeName").and_then(Value::as_str) != Some(node) {
        return Ok(Some(format!(
            "node '{node}' requested a token bound to pod {pod_name:?}, which is not bound to it"
        )));
    }
    let uid = bound.get("uid").and_then(Value::as_str).unwrap_or_default();
    if !uid.is_empty() && Some(uid) != pod.pointer("/metadata/uid").and_then(Value::as_str) {
        return Ok(Some(format!(
            "the uid of pod {pod_name:?} does not match the token request's"
        )));
    }
    let sa = pod
        .pointer("/spec/serviceAccountName")
        .and_then(Value::as_str)
        .unwrap_or("default");
    if Some(sa) != a.name {
        return Ok(Some(format!(
            "pod {pod_name:?} does not run as service account {:?}",
            a.name.unwrap_or_default()
        )));
    }
    Ok(None)
}

/// Whether a pod bound to `node` in `ns` uses Secret `name` (volumes, projected sources,
/// env, envFrom, image pull secrets).
async fn secret_used_on(
    state: &ApiState,
    node: &str,
    ns: &str,
    name: &str,
) -> Result<bool, ApiError> {
    let pods = crate::lookup::list(state, crate::lookup::core("pods"), ns).await?;
    Ok(pods
        .iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .any(|p| pod_secrets(p).iter().any(|s| s == name)))
}

/// The Secrets a pod references.
fn pod_secrets(pod: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |v: Option<&Value>| {
        if let Some(s) = v.and_then(Value::as_str) {
            out.push(s.to_string());
        }
    };
    let spec = &pod["spec"];
    for s in spec["imagePullSecrets"].as_array().into_iter().flatten() {
        push(s.get("name"));
    }
    for v in spec["volumes"].as_array().into_iter().flatten() {
        push(v.pointer("/secret/secretName"));
        for src in v
            .pointer("/projected/sources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            push(src.pointer("/secret/name"));
        }
    }
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        for c in spec[list].as_array().into_iter().flatten() {
            for e in c["env"].as_array().into_iter().flatten() {
                push(e.pointer("/valueFrom/secretKeyRef/name"));
            }
            for e in c["envFrom"].as_array().into_iter().flatten() {
                push(e.pointer("/secretRef/name"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_node_is_its_name_in_the_nodes_group() {
        let user = |name: &str, group: &str| UserInfo {
            name: name.into(),
            uid: String::new(),
            groups: vec![group.into()],
        };
        assert_eq!(node_name(&user("system:node:a", NODES)), Some("a"));
        assert_eq!(node_name(&user("system:node:a", "dev")), None);
        assert_eq!(node_name(&user("system:node:", NODES)), None);
        assert_eq!(node_name(&user("alice", NODES)), None);
    }

    #[test]
    fn finds_every_kind_of_secret_reference() {
        let pod = json!({"spec": {
            "imagePullSecrets": [{"name": "pull"}],
            "volumes": [{"name": "v", "secret": {"secretName": "vol"}},
                        {"name": "p", "projected": {"sources": [{"secret": {"name": "proj"}}]}}],
            "containers": [{"name": "c",
                "env": [{"name": "E", "valueFrom": {"secretKeyRef": {"name": "env", "key": "k"}}}],
                "envFrom": [{"secretRef": {"name": "from"}}]}]}});
        let mut got = pod_secrets(&pod);
        got.sort();
        assert_eq!(got, ["env", "from", "proj", "pull", "vol"]);
    }
}
