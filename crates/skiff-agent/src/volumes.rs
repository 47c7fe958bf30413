//! A pod's volumes on the node, set up before its containers start and bind-mounted into them
//! by their `volumeMounts` (with `subPath` and `readOnly`): `emptyDir` (a directory in the
//! pod's sandbox, a tmpfs of `sizeLimit` with `medium: Memory`), `configMap` and `secret`
//! (keys or `items` as files with their modes, written the way kubelet's atomic writer does —
//! a `..data` symlink switched in one rename — and rewritten in place when the object changes;
//! secrets on a tmpfs of their own, never on the node's disk), `downwardAPI` and `projected`
//! ([`crate::projected`]), `hostPath`, and `persistentVolumeClaim` bound to a hostPath or local
//! PersistentVolume. With the pod's
//! `fsGroup` the volumes (but hostPath) belong to that group. Other volume types are refused with a FailedMount reason.

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::{
    ConfigMap, Container, KeyToPath, PersistentVolume, PersistentVolumeClaim, Pod, Secret, Volume,
};
use kube::Api;
use nix::mount::{mount, MsFlags};
use serde_json::{json, Value};

use crate::sandbox::PodSandbox;

/// A volume ready on the node: where it is and whether containers get it read-only.
#[derive(Debug, Clone)]
pub struct Ready {
    pub path: PathBuf,
    pub read_only: bool,
}

/// Sets up every volume of `pod` under its sandbox; Err is kubelet's FailedMount message.
pub async fn prepare(
    client: &kube::Client,
    tokens: &crate::tokens::TokenManager,
    pod: &Pod,
    sandbox: &PodSandbox,
) -> Result<HashMap<String, Ready>, String> {
    let fs_group = crate::security::fs_group(pod);
    let mut out = HashMap::new();
    for v in pod.spec.iter().flat_map(|s| s.volumes.iter().flatten()) {
        let ready = one(client, tokens, pod, v, sandbox, fs_group)
            .await
            .map_err(|e| format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name))?;
        out.insert(v.name.clone(), ready);
    }
    Ok(out)
}

fn volume_dir(sandbox: &PodSandbox, kind: &str, name: &str) -> PathBuf {
    sandbox.dir.join("volumes").join(kind).join(name)
}

async fn one(
    client: &kube::Client,
    tokens: &crate::tokens::TokenManager,
    pod: &Pod,
    v: &Volume,
    sb: &PodSandbox,
    fs_group: Option<u32>,
) -> Result<Ready, String> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    if let Some(e) = &v.empty_dir {
        let dir = volume_dir(sb, "empty-dir", &v.name);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).map_err(|e| io("create the directory", e))?;
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777))
                .map_err(|e| io("set its mode", e))?;
            if e.medium.as_deref() == Some("Memory") {
                let mut opts = "mode=1777".to_string();
                if let Some(bytes) = e
                    .size_limit
                    .as_ref()
                    .and_then(|q| crate::quantity::bytes(&q.0))
                {
                    opts.push_str(&format!(",size={bytes}"));
                }
                mount(
                    Some("tmpfs"),
                    &dir,
                    Some("tmpfs"),
                    MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                    Some(opts.as_str()),
                )
                .map_err(|e| format!("mount a tmpfs: {e}"))?;
            }
            if let Some(gid) = fs_group {
                set_ownership(&dir, gid, false).map_err(|e| io("give it to the fsGroup", e))?;
            }
        }
        return Ok(Ready {
            path: dir,
            read_only: false,
        });
    }
    if let Some(c) = &v.config_map {
        let data = config_map_data(client, ns, &c.name, c.optional).await?;
        let files = project(
            data,
            c.items.as_deref(),
            c.default_mode,
            "ConfigMap",
            &c.name,
        )?;
        let dir = volume_dir(sb, "configmap", &v.name);
        atomic_write(&dir, &files, fs_group).map_err(|e| io("write the files", e))?;
        return Ok(Ready {
            path: dir,
            read_only: true,
        });
    }
    if let Some(s) = &v.secret {
        let name = s.secret_name.clone().unwrap_or_default();
        let data = secret_data(client, ns, &name, s.optional).await?;
        let files = project(data, s.items.as_deref(), s.default_mode, "Secret", &name)?;
        let dir = volume_dir(sb, "secret", &v.name);
        in_memory(&dir)?;
        atomic_write(&dir, &files, fs_group).map_err(|e| io("write the files", e))?;
        return Ok(Ready {
            path: dir,
            read_only: true,
        });
    }
    if let Some(d) = &v.downward_api {
        let files = crate::projected::downward_files(pod, d.items.as_deref(), d.default_mode)?;
        let dir = volume_dir(sb, "downward-api", &v.name);
        atomic_write(&dir, &files, fs_group).map_err(|e| io("write the files", e))?;
        return Ok(Ready {
            path: dir,
            read_only: true,
        });
    }
    if let Some(p) = &v.projected {
        let files = crate::projected::files(client, tokens, pod, p).await?;
        let dir = volume_dir(sb, "projected", &v.name);
        // It may hold secrets and tokens: memory only, as kubelet does.
        in_memory(&dir)?;
        atomic_write(&dir, &files, fs_group).map_err(|e| io("write the files", e))?;
        return Ok(Ready {
            path: dir,
            read_only: true,
        });
    }
    if let Some(claim) = &v.persistent_volume_claim {
        let path = claimed_path(client, ns, &claim.claim_name).await?;
        return Ok(Ready {
            path,
            read_only: claim.read_only.unwrap_or(false),
        });
    }
    if let Some(h) = &v.host_path {
        let path = PathBuf::from(&h.path);
        match h.type_.as_deref().unwrap_or("") {
            "DirectoryOrCreate" if !path.exists() => {
                std::fs::create_dir_all(&path).map_err(|e| io("create the host directory", e))?
            }
            "Directory" if !path.is_dir() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a directory",
                    h.path
                ))
            }
            "File" if !path.is_file() => {
                return Err(format!(
                    "hostPath type check failed: {} is not a file",
                    h.path
                ))
            }
            _ => {}
        }
        return Ok(Ready {
            path,
            read_only: false,
        });
    }
    Err("this volume type is not supported on skiff nodes yet (emptyDir, configMap, secret, downwardAPI, projected, persistentVolumeClaim and hostPath are)".into())
}

/// The files a ConfigMap or Secret volume holds: every key, or the `items` asked for (each
/// must exist), with their modes.
pub(crate) fn project(
    data: BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    default_mode: Option<i32>,
    kind: &str,
    name: &str,
) -> Result<Vec<(String, Vec<u8>, u32)>, String> {
    let mode = default_mode.unwrap_or(0o644) as u32;
    match items {
        None => Ok(data.into_iter().map(|(k, v)| (k, v, mode)).collect()),
        Some(items) => items
            .iter()
            .map(|i| {
                let v = data.get(&i.key).ok_or_else(|| match kind {
                    "Secret" => format!("references non-existent secret key: {}", i.key),
                    _ => format!("configmap references non-existent config key: {}", i.key),
                })?;
                if i.path.split('/').any(|p| p == "..") || i.path.starts_with('/') {
                    return Err(format!("{kind} {name}: invalid item path {:?}", i.path));
                }
                Ok((i.path.clone(), v.clone(), i.mode.map_or(mode, |m| m as u32)))
            })
            .collect(),
    }
}

/// Where a bound claim's volume is on this node: its PersistentVolume's `hostPath` or `local`
/// path. A claim not bound yet is an error (the pod waits, as kubelet's does).
async fn claimed_path(client: &kube::Client, ns: &str, claim: &str) -> Result<PathBuf, String> {
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
    let pvc = claims
        .get_opt(claim)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} not found"))?;
    let bound = pvc.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound");
    let volume = pvc
        .spec
        .as_ref()
        .and_then(|s| s.volume_name.clone())
        .filter(|v| bound && !v.is_empty())
        .ok_or_else(|| format!("persistentvolumeclaim {claim:?} is not bound"))?;
    let pvs: Api<PersistentVolume> = Api::all(client.clone());
    let pv = pvs
        .get_opt(&volume)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("persistentvolume {volume:?} not found"))?;
    let spec = pv.spec.unwrap_or_default();
    let path = spec
        .host_path
        .map(|h| h.path)
        .or(spec.local.map(|l| l.path))
        .ok_or_else(|| {
            format!("persistentvolume {volume:?} is neither hostPath nor local: skiff nodes mount only those")
        })?;
    let path = PathBuf::from(path);
    if !path.is_dir() {
        return Err(format!(
            "persistentvolume {volume:?}: {} is not a directory on this node",
            path.display()
        ));
    }
    Ok(path)
}

/// A ConfigMap's keys (`data` and `binaryData`); an absent optional one has none.
pub(crate) async fn config_map_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| e.to_string())? {
        Some(cm) => {
            let mut all: BTreeMap<String, Vec<u8>> = cm
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes()))
                .collect();
            all.extend(
                cm.binary_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0)),
            );
            Ok(all)
        }
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => Err(format!("configmap {name:?} not found")),
    }
}

/// A Secret's keys; an absent optional one has none.
pub(crate) async fn secret_data(
    client: &kube::Client,
    ns: &str,
    name: &str,
    optional: Option<bool>,
) -> Result<BTreeMap<String, Vec<u8>>, String> {
    let api: Api<Secret> = Api::namespaced(client.clone(), ns);
    match api.get_opt(name).await.map_err(|e| e.to_string())? {
        Some(secret) => {
            let mut all: BTreeMap<String, Vec<u8>> = secret
                .data
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            all.extend(
                secret
                    .string_data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.into_bytes())),
            );
            Ok(all)
        }
        None if optional == Some(true) => Ok(BTreeMap::new()),
        None => Err(format!("secret {name:?} not found")),
    }
}

/// Mounts a tmpfs of its own on `dir` unless one is there: kubelet keeps secrets in memory
/// only, never on the node's disk.
fn in_memory(dir: &Path) -> Result<(), String> {
    if is_mount_point(dir) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("create the directory: {e}"))?;
    mount(
        Some("tmpfs"),
        dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        Some("mode=0755"),
    )
    .map_err(|e| format!("mount a tmpfs: {e}"))
}

/// Whether `dir` is the root of a mount (its device differs from its parent's).
fn is_mount_point(dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let (Ok(d), Some(Ok(p))) = (
        std::fs::symlink_metadata(dir),
        dir.parent().map(std::fs::symlink_metadata),
    ) else {
        return false;
    };
    d.dev() != p.dev()
}

/// kubelet's volume ownership for an `fsGroup`: everything in `dir` gets group `gid`,
/// group read (and write unless `read_only`) permission, directories the set-group-ID bit so
/// new files inherit the group. Symlinks are not followed.
fn set_ownership(dir: &Path, gid: u32, read_only: bool) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(dir)?;
    if meta.file_type().is_symlink() {
        return Ok(());
    }
    std::os::unix::fs::lchown(dir, None, Some(gid))?;
    let mode = meta.permissions().mode() & 0o7777;
    let mut mask = if read_only { 0o440 } else { 0o660 };
    if meta.is_dir() || mode & 0o100 != 0 {
        mask |= 0o110;
    }
    if meta.is_dir() {
        mask |= 0o2000;
    }
    if mode | mask != mode {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | mask))?;
    }
    if meta.is_dir() {
        for e in std::fs::read_dir(dir)? {
            set_ownership(&e?.path(), gid, read_only)?;
        }
    }
    Ok(())
}

/// kubelet's atomic writer: the files go into a new hidden directory, `..data` is switched to
/// it with one rename, and each top-level name is a symlink through `..data`. Nothing is
/// written when the files are already there as asked. With an `fsGroup` the files belong to
/// that group and are readable by it.
fn atomic_write(
    dir: &Path,
    files: &[(String, Vec<u8>, u32)],
    fs_group: Option<u32>,
) -> std::io::Result<()> {
    let with_group = |mode: u32| {
        if fs_group.is_some() {
            mode | 0o440 | if mode & 0o100 != 0 { 0o010 } else { 0 }
        } else {
            mode
        }
    };
    let files: Vec<(String, Vec<u8>, u32)> = files
        .iter()
        .map(|(p, c, m)| (p.clone(), c.clone(), with_group(*m)))
        .collect();
    let files = files.as_slice();
    std::fs::create_dir_all(dir)?;
    let data_link = dir.join("..data");
    if let Ok(current) = std::fs::read_link(&data_link) {
        let current = dir.join(current);
        let same = files.iter().all(|(p, content, mode)| {
            let f = current.join(p);
            std::fs::read(&f).is_ok_and(|c| c == *content)
                && std::fs::metadata(&f).is_ok_and(|m| m.permissions().mode() & 0o7777 == *mode)
        }) && count_files(&current) == files.len();
        if same {
            return Ok(());
        }
    }
    let stamp = format!("..{}", chrono::Utc::now().format("%Y_%m_%d_%H_%M_%S.%f"));
    let fresh = dir.join(&stamp);
    std::fs::create_dir_all(&fresh)?;
    for (path, content, mode) in files {
        let f = fresh.join(path);
        if let Some(parent) = f.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&f, content)?;
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(*mode))?;
    }
    if let Some(gid) = fs_group {
        set_ownership(&fresh, gid, true)?;
    }
    let old = std::fs::read_link(&data_link).ok();
    let tmp = dir.join("..data_tmp");
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp)?;
    std::fs::rename(&tmp, &data_link)?;
    let tops: std::collections::BTreeSet<String> = files
        .iter()
        .filter_map(|(p, _, _)| p.split('/').next().map(str::to_string))
        .collect();
    for top in &tops {
        let link = dir.join(top);
        if std::fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(Path::new("..data").join(top), &link)?;
        }
    }
    // Names no longer projected, and the previous generation.
    for entry in std::fs::read_dir(dir)?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !tops.contains(&name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    if let Some(old) = old.filter(|o| o.as_os_str() != stamp.as_str()) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(())
}

fn count_files(dir: &Path) -> usize {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

/// The engine mounts (`HostConfig.Mounts`) of container `c`'s `volumeMounts`; Err names a
/// volume the pod does not have.
pub fn mounts(c: &Container, volumes: &HashMap<String, Ready>) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let v = volumes
            .get(&m.name)
            .ok_or_else(|| format!("volume {:?} is not a volume of the pod", m.name))?;
        let mut source = v.path.clone();
        if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
            if sub.starts_with('/') || sub.split('/').any(|p| p == "..") {
                return Err(format!(
                    "subPath {sub:?} must be a relative path without '..'"
                ));
            }
            source = source.join(sub);
            if !source.exists() {
                std::fs::create_dir_all(&source)
                    .map_err(|e| format!("create subPath {sub:?}: {e}"))?;
            }
        }
        out.push(json!({
            "Type": "bind",
            "Source": source.display().to_string(),
            "Target": m.mount_path,
            "ReadOnly": v.read_only || m.read_only.unwrap_or(false),
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writer_switches_generations_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("vol");
        atomic_write(
            &d,
            &[
                ("a".into(), b"1".to_vec(), 0o644),
                ("sub/b".into(), b"2".to_vec(), 0o600),
            ],
            None,
        )
        .unwrap();
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"1");
        assert_eq!(std::fs::read(d.join("sub/b")).unwrap(), b"2");
        assert_eq!(
            std::fs::metadata(d.join("sub/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            0o600
        );
        let first = std::fs::read_link(d.join("..data")).unwrap();
        // Unchanged: nothing rewritten.
        atomic_write(
            &d,
            &[
                ("a".into(), b"1".to_vec(), 0o644),
                ("sub/b".into(), b"2".to_vec(), 0o600),
            ],
            None,
        )
        .unwrap();
        assert_eq!(std::fs::read_link(d.join("..data")).unwrap(), first);
        // Changed: new content through the same names, dropped keys gone, old generation gone.
        atomic_write(&d, &[("a".into(), b"updated".to_vec(), 0o644)], None).unwrap();
        assert_eq!(std::fs::read(d.join("a")).unwrap(), b"updated");
        assert!(std::fs::symlink_metadata(d.join("sub")).is_err());
        assert!(!d.join(first).exists());
    }

    #[test]
    fn an_fs_group_owns_the_files_and_can_read_them() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("vol");
        let files = [("key".to_string(), b"v".to_vec(), 0o600)];
        atomic_write(&d, &files, Some(4321)).unwrap();
        let m = std::fs::metadata(d.join("key")).unwrap();
        assert_eq!(m.gid(), 4321);
        assert_eq!(m.permissions().mode() & 0o777, 0o640);
        let first = std::fs::read_link(d.join("..data")).unwrap();
        // The group's bits do not count as a change.
        atomic_write(&d, &files, Some(4321)).unwrap();
        assert_eq!(std::fs::read_link(d.join("..data")).unwrap(), first);

        let e = dir.path().join("empty");
        std::fs::create_dir_all(e.join("sub")).unwrap();
        std::fs::write(e.join("sub/f"), b"x").unwrap();
        set_ownership(&e, 4321, false).unwrap();
        let m = std::fs::metadata(e.join("sub")).unwrap();
        assert_eq!(m.gid(), 4321);
        assert_eq!(m.permissions().mode() & 0o2070, 0o2070);
        let f = std::fs::metadata(e.join("sub/f")).unwrap();
        assert_eq!(f.permissions().mode() & 0o060, 0o060);
    }

    #[test]
    fn items_pick_keys_and_refuse_escapes() {
        let data = BTreeMap::from([("k".to_string(), b"v".to_vec())]);
        let item = |key: &str, path: &str| KeyToPath {
            key: key.into(),
            path: path.into(),
            mode: None,
        };
        let files = project(
            data.clone(),
            Some(&[item("k", "dir/file")]),
            Some(0o400),
            "ConfigMap",
            "c",
        )
        .unwrap();
        assert_eq!(files, vec![("dir/file".to_string(), b"v".to_vec(), 0o400)]);
        assert!(project(
            data.clone(),
            Some(&[item("k", "../x")]),
            None,
            "ConfigMap",
            "c"
        )
        .is_err());
        assert!(project(data, Some(&[item("missing", "x")]), None, "ConfigMap", "c").is_err());
    }
}
