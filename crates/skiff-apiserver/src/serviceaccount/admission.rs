//! The ServiceAccount admission plugin on pod create (upstream's
//! `plugin/pkg/admission/serviceaccount`): the pod's `serviceAccountName` (default
//! `default`) must name an existing ServiceAccount, and unless the pod or the account says
//! `automountServiceAccountToken: false` the pod gets the `kube-api-access-<5>` projected
//! volume (a bound token, the cluster CA from the `kube-root-ca.crt` ConfigMap, the
//! namespace) mounted read-only at [`MOUNT_PATH`] in every container and init container
//! that has nothing mounted there yet.

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::router::ApiState;

/// Where the token, `ca.crt` and `namespace` appear in containers.
pub const MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// The ConfigMap the root-CA publisher keeps in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The lifetime kube-apiserver gives the token of the projected volume (3607 s: it marks
/// tokens kubelet asked for through the admission's volume).
pub const TOKEN_EXPIRATION: i64 = 3607;
/// The annotation of static (mirror) pods, which the plugin leaves alone.
const MIRROR: &str = "kubernetes.io/config.mirror";

/// Admits the pod `obj` about to be created.
pub async fn admit_pod(state: &ApiState, obj: &mut Value) -> Result<(), ApiError> {
    if obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(MIRROR))
        .is_some()
    {
        return Ok(());
    }
    let ns = crate::object::namespace(obj).to_string();
    let spec = crate::defaults::ensure(obj, "spec");
    let name = spec
        .get("serviceAccountName")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .unwrap_or("default")
        .to_string();
    spec["serviceAccountName"] = json!(name);
    spec["serviceAccount"] = json!(name);
    let sa = crate::lookup::get(
        state,
        crate::lookup::core("serviceaccounts"),
        Some(&ns),
        &name,
    )
    .await?
    .ok_or_else(|| {
        ApiError::forbidden(
            "",
            "pods",
            crate::object::name(obj),
            &format!(
                "error looking up service account {ns}/{name}: serviceaccount \"{name}\" not found"
            ),
        )
    })?;
    let automount = obj
        .pointer("/spec/automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.get("automountServiceAccountToken")
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(obj);
    }
    Ok(())
}

/// Adds the projected volume and its mounts (idempotent: a container with something at
/// [`MOUNT_PATH`] keeps it; nothing is added when every container has one).
fn mount_token(obj: &mut Value) {
    let spec = crate::defaults::ensure(obj, "spec");
    let lists = ["initContainers", "containers"];
    let needs =
        |c: &Value| {
            !c["volumeMounts"].as_array().into_iter().flatten().any(|m| {
                m["mountPath"].as_str().map(|p| p.trim_end_matches('/')) == Some(MOUNT_PATH)
            })
        };
    if !lists
        .iter()
        .any(|l| spec[*l].as_array().into_iter().flatten().any(needs))
    {
        return;
    }
    let taken: Vec<String> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v["name"].as_str().map(str::to_string))
        .collect();
    let volume = loop {
        let candidate = crate::object::generate_name("kube-api-access-");
        if !taken.contains(&candidate) {
            break candidate;
        }
    };
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.push(json!({"name": volume, "projected": {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIG_MAP, "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace",
            "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}}));
    spec["volumes"] = Value::Array(volumes);
    for list in lists {
        for c in spec[list].as_array_mut().into_iter().flatten() {
            if !needs(c) {
                continue;
            }
            let mut mounts = c["volumeMounts"].as_array().cloned().unwrap_or_default();
            mounts.push(json!({"name": volume, "readOnly": true, "mountPath": MOUNT_PATH}));
            c["volumeMounts"] = Value::Array(mounts);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satoken_volume_mounted_in_every_container_once() {
        let mut pod = json!({"spec": {
            "initContainers": [{"name": "i"}],
            "containers": [{"name": "a"}, {"name": "b", "volumeMounts": [
                {"name": "own", "mountPath": format!("{MOUNT_PATH}/")}]}],
            "volumes": [{"name": "own", "emptyDir": {}}]}});
        mount_token(&mut pod);
        let volumes = pod["spec"]["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 2);
        let name = volumes[1]["name"].as_str().unwrap();
        assert!(
            name.starts_with("kube-api-access-") && name.len() == 21,
            "{name}"
        );
        let sources = volumes[1]["projected"]["sources"].as_array().unwrap();
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        for c in ["initContainers", "containers"] {
            let m = &pod["spec"][c][0]["volumeMounts"][0];
            assert_eq!(
                (m["name"].as_str(), m["readOnly"].as_bool()),
                (Some(name), Some(true))
            );
        }
        assert_eq!(
            pod["spec"]["containers"][1]["volumeMounts"]
                .as_array()
                .unwrap()
                .len(),
            1,
            "a container with its own mount there keeps it"
        );
        let before = pod.clone();
        mount_token(&mut pod);
        assert_eq!(
            pod, before,
            "every container has it now: nothing more is added"
        );
    }
}
