//! The files of `downwardAPI` and `projected` volumes, as kubelet writes them: downward API
//! items (`fieldRef` to the pod's name, namespace, uid, labels and annotations — whole maps
//! as sorted `key="value"` lines — and `resourceFieldRef` of a named container), and the
//! `configMap`, `secret` and `downwardAPI` sources of a projected volume merged into one
//! tree. They are rewritten in place (the atomic writer of [`crate::volumes`]) when the pod's
//! labels or the objects change. `serviceAccountToken` sources hold a token bound to the pod
//! from the TokenRequest API ([`crate::tokens`]), written with the volume's mode and
//! replaced in place when it is renewed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{DownwardAPIVolumeFile, Pod, ProjectedVolumeSource};

use crate::env::Downward;
use crate::volumes::{config_map_data, project, secret_data};

/// A file to write: its path in the volume, content and mode.
pub type File = (String, Vec<u8>, u32);

/// kubelet's text for a whole label or annotation map: `key="value"` lines, sorted by key.
fn map_text(map: Option<&BTreeMap<String, String>>) -> String {
    map.into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", serde_json::Value::String(v.clone())))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() || path.starts_with('/') || path.split('/').any(|p| p == "..") {
        return Err(format!(
            "invalid path {path:?}: must be relative and may not contain '..'"
        ));
    }
    Ok(())
}

/// The files of a downward API volume (or projection).
pub fn downward_files(
    pod: &Pod,
    items: Option<&[DownwardAPIVolumeFile]>,
    default_mode: Option<i32>,
) -> Result<Vec<File>, String> {
    let default_mode = default_mode.unwrap_or(0o644) as u32;
    let none = Downward {
        pod_ip: None,
        host_ip: "",
    };
    let mut out = Vec::new();
    for item in items.into_iter().flatten() {
        check_path(&item.path)?;
        let value = if let Some(f) = &item.field_ref {
            match f.field_path.as_str() {
                "metadata.labels" => map_text(pod.metadata.labels.as_ref()),
                "metadata.annotations" => map_text(pod.metadata.annotations.as_ref()),
                path if path.starts_with("metadata.") => crate::env::field(pod, path, &none)
                    .ok_or_else(|| {
                        format!("unsupported fieldPath {path:?} in a downwardAPI volume")
                    })?,
                other => {
                    return Err(format!(
                        "unsupported fieldPath {other:?} in a downwardAPI volume"
                    ))
                }
            }
        } else if let Some(r) = &item.resource_field_ref {
            let name = r.container_name.as_deref().unwrap_or_default();
            let c = pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.iter().find(|c| c.name == name))
                .ok_or_else(|| {
                    format!(
                        "resourceFieldRef of {:?}: container {name:?} not found",
                        item.path
                    )
                })?;
            crate::env::resource_field(pod, c, r)?
        } else {
            return Err(format!(
                "item {:?} has neither fieldRef nor resourceFieldRef",
                item.path
            ));
        };
        let mode = item.mode.map_or(default_mode, |m| m as u32);
        out.push((item.path.clone(), value.into_bytes(), mode));
    }
    Ok(out)
}

/// The files of a projected volume: every source's, in order (a later path replaces an
/// earlier one).
pub async fn files(
    client: &kube::Client,
    tokens: &crate::tokens::TokenManager,
    pod: &Pod,
    p: &ProjectedVolumeSource,
) -> Result<Vec<File>, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut all: BTreeMap<String, (Vec<u8>, u32)> = BTreeMap::new();
    for source in p.sources.iter().flatten() {
        let files = if let Some(c) = &source.config_map {
            let data = config_map_data(client, ns, &c.name, c.optional).await?;
            project(
                data,
                c.items.as_deref(),
                p.default_mode,
                "ConfigMap",
                &c.name,
            )?
        } else if let Some(s) = &source.secret {
            let data = secret_data(client, ns, &s.name, s.optional).await?;
            project(data, s.items.as_deref(), p.default_mode, "Secret", &s.name)?
        } else if let Some(d) = &source.downward_api {
            downward_files(pod, d.items.as_deref(), p.default_mode)?
        } else if let Some(t) = &source.service_account_token {
            check_path(&t.path)?;
            let seconds = t.expiration_seconds.unwrap_or(3600);
            let token = tokens.token(pod, t.audience.as_deref(), seconds).await?;
            let mode = p.default_mode.unwrap_or(0o644) as u32;
            vec![(t.path.clone(), token.into_bytes(), mode)]
        } else {
            return Err("unsupported projected volume source (configMap, secret, downwardAPI and serviceAccountToken are supported)".into());
        };
        for (path, content, mode) in files {
            all.insert(path, (content, mode));
        }
    }
    Ok(all.into_iter().map(|(p, (c, m))| (p, c, m)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn downward_items_as_kubelet_writes_them() {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1",
                         "labels": {"b": "2", "a": "one \"quoted\""}},
            "spec": {"containers": [{"name": "c",
                "resources": {"limits": {"memory": "64Mi"}}}]},
        }))
        .unwrap();
        let items: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "labels", "fieldRef": {"fieldPath": "metadata.labels"}},
            {"path": "dir/name", "fieldRef": {"fieldPath": "metadata.name"}, "mode": 0o600},
            {"path": "b", "fieldRef": {"fieldPath": "metadata.labels['b']"}},
            {"path": "mem", "resourceFieldRef": {"containerName": "c",
                "resource": "limits.memory", "divisor": "1Mi"}},
        ]))
        .unwrap();
        let files = downward_files(&pod, Some(&items), None).unwrap();
        let text = |i: usize| String::from_utf8(files[i].1.clone()).unwrap();
        assert_eq!(text(0), "a=\"one \\\"quoted\\\"\"\nb=\"2\"");
        assert_eq!((text(1), files[1].2), ("p".to_string(), 0o600));
        assert_eq!(text(2), "2");
        assert_eq!(text(3), "64");
        let bad: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "../x", "fieldRef": {"fieldPath": "metadata.name"}}]))
        .unwrap();
        assert!(downward_files(&pod, Some(&bad), None).is_err());
        let ip: Vec<DownwardAPIVolumeFile> = serde_json::from_value(json!([
            {"path": "ip", "fieldRef": {"fieldPath": "status.podIP"}}]))
        .unwrap();
        assert!(downward_files(&pod, Some(&ip), None).is_err());
    }
}
