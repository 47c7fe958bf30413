//! A container's `securityContext`, merged with its pod's as kubelet merges them
//! (`determineEffectiveSecurityContext`: the container's `runAsUser`, `runAsGroup`,
//! `runAsNonRoot`, `seccompProfile`, `appArmorProfile` win over the pod's; `fsGroup`,
//! `supplementalGroups` and `sysctls` are the pod's), turned into the engine's create options:
//! `User`, `GroupAdd`, `Privileged`, `CapAdd`/`CapDrop`, `ReadonlyRootfs`, `SecurityOpt`
//! (`no-new-privileges`, `seccomp`, `apparmor`, `systempaths`) and `Sysctls`.
//!
//! Like kubelet, `runAsNonRoot` is checked against the user the container would run as (its
//! `runAsUser`, else its image's user): root, or a user name that cannot be verified, is a
//! `CreateContainerConfigError` and nothing is created. The runtime's own defaults (Docker's
//! seccomp profile, capability set and masked paths) stay unless the spec asks otherwise.

use k8s_openapi::api::core::v1::{Container, Pod, PodSecurityContext, SecurityContext};
use serde_json::{json, Value};

/// What the engine is asked for.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Security {
    /// Docker's `User` (`uid`, `uid:gid`); None keeps the image's.
    pub user: Option<String>,
    pub group_add: Vec<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub read_only_rootfs: bool,
    pub security_opt: Vec<String>,
    pub sysctls: Vec<(String, String)>,
}

impl Security {
    /// Adds these options to a Docker create body's `HostConfig` and top level.
    pub fn apply(&self, body: &mut Value) {
        if let Some(u) = &self.user {
            body["User"] = json!(u);
        }
        let hc = &mut body["HostConfig"];
        if !self.group_add.is_empty() {
            hc["GroupAdd"] = json!(self.group_add);
        }
        if self.privileged {
            hc["Privileged"] = json!(true);
        }
        if !self.cap_add.is_empty() {
            hc["CapAdd"] = json!(self.cap_add);
        }
        if !self.cap_drop.is_empty() {
            hc["CapDrop"] = json!(self.cap_drop);
        }
        if self.read_only_rootfs {
            hc["ReadonlyRootfs"] = json!(true);
        }
        if !self.security_opt.is_empty() {
            hc["SecurityOpt"] = json!(self.security_opt);
        }
        if !self.sysctls.is_empty() {
            let m: serde_json::Map<String, Value> = self
                .sysctls
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            hc["Sysctls"] = Value::Object(m);
        }
    }
}

/// The user part and the group part of an image's `User` (`name`, `uid`, `uid:gid`).
fn split_user(user: &str) -> (&str, Option<&str>) {
    match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    }
}

/// The merged security settings of container `c` of `pod`, whose image runs as
/// `image_user` (its config's `User`, "" for root). Err is the `CreateContainerConfigError`
/// message.
pub fn resolve(pod: &Pod, c: &Container, image_user: &str) -> Result<Security, String> {
    let psc: PodSecurityContext = pod
        .spec
        .as_ref()
        .and_then(|s| s.security_context.clone())
        .unwrap_or_default();
    let sc: SecurityContext = c.security_context.clone().unwrap_or_default();
    let run_as_user = sc.run_as_user.or(psc.run_as_user);
    let run_as_group = sc.run_as_group.or(psc.run_as_group);
    let run_as_non_root = sc.run_as_non_root.or(psc.run_as_non_root).unwrap_or(false);
    let (image_uid, _) = split_user(image_user);

    let user = match (run_as_user, run_as_group) {
        (Some(u), Some(g)) => Some(format!("{u}:{g}")),
        (Some(u), None) => Some(u.to_string()),
        (None, Some(g)) => {
            let u = if image_uid.is_empty() { "0" } else { image_uid };
            Some(format!("{u}:{g}"))
        }
        (None, None) => None,
    };

    if run_as_non_root {
        let pod_ref = crate::sync::pod_ref(pod);
        match run_as_user {
            Some(0) => {
                return Err(format!(
                    "container's runAsUser breaks non-root policy (pod: {pod_ref:?}, container: {})",
                    c.name
                ))
            }
            Some(_) => {}
            None => match image_uid {
                "" | "0" | "root" => {
                    return Err(format!(
                        "container has runAsNonRoot and image will run as root (pod: {pod_ref:?}, container: {})",
                        c.name
                    ))
                }
                u if u.parse::<u32>().is_err() => {
                    return Err(format!(
                        "container has runAsNonRoot and image has non-numeric user ({u}), cannot verify user is non-root (pod: {pod_ref:?}, container: {})",
                        c.name
                    ))
                }
                _ => {}
            },
        }
    }

    let mut out = Security {
        user,
        ..Default::default()
    };
    // kubelet's order: the fsGroup first, then the supplemental groups.
    out.group_add = psc
        .fs_group
        .into_iter()
        .chain(psc.supplemental_groups.iter().flatten().copied())
        .map(|g| g.to_string())
        .collect();
    out.group_add.dedup();

    out.privileged = sc.privileged.unwrap_or(false);
    if let Some(caps) = &sc.capabilities {
        out.cap_add = caps.add.clone().unwrap_or_default();
        out.cap_drop = caps.drop.clone().unwrap_or_default();
    }
    out.read_only_rootfs = sc.read_only_root_filesystem.unwrap_or(false);

    // kubelet leaves no_new_privs off unless escalation is refused; skiff keeps the engine's
    // secure default (on) unless it is allowed explicitly, because the embedded runtime
    // loads its default seccomp filter only under no_new_privs (ADR 0021). Privileged
    // containers run without either.
    if out.privileged || sc.allow_privilege_escalation == Some(true) {
        out.security_opt.push("no-new-privileges=false".into());
    } else {
        out.security_opt.push("no-new-privileges=true".into());
    }

    let seccomp = sc.seccomp_profile.as_ref().or(psc.seccomp_profile.as_ref());
    if let Some(p) = seccomp {
        match p.type_.as_str() {
            "Unconfined" => out.security_opt.push("seccomp=unconfined".into()),
            "RuntimeDefault" => {}
            "Localhost" => {
                return Err(format!(
                    "seccomp profile type Localhost ({}) is not supported on skiff nodes",
                    p.localhost_profile.as_deref().unwrap_or("")
                ))
            }
            other => return Err(format!("unknown seccomp profile type {other:?}")),
        }
    }
    let apparmor = sc
        .app_armor_profile
        .as_ref()
        .or(psc.app_armor_profile.as_ref());
    if let Some(p) = apparmor {
        match p.type_.as_str() {
            "Unconfined" => out.security_opt.push("apparmor=unconfined".into()),
            "RuntimeDefault" => {}
            "Localhost" => out.security_opt.push(format!(
                "apparmor={}",
                p.localhost_profile.as_deref().unwrap_or("")
            )),
            other => return Err(format!("unknown appArmor profile type {other:?}")),
        }
    }
    if sc.proc_mount.as_deref() == Some("Unmasked") {
        out.security_opt.push("systempaths=unconfined".into());
    }
    out.sysctls = psc
        .sysctls
        .iter()
        .flatten()
        .map(|s| (s.name.clone(), s.value.clone()))
        .collect();
    Ok(out)
}

/// The pod's `fsGroup`: the group that owns its volumes.
pub fn fs_group(pod: &Pod) -> Option<u32> {
    pod.spec
        .as_ref()
        .and_then(|s| s.security_context.as_ref())
        .and_then(|s| s.fs_group)
        .and_then(|g| u32::try_from(g).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: serde_json::Value) -> (Pod, Container) {
        let mut p: Pod = serde_json::from_value(json!({
            "metadata": {"name": "p", "namespace": "ns", "uid": "u1"},
            "spec": yaml,
        }))
        .unwrap();
        let c = p.spec.as_mut().unwrap().containers.remove(0);
        (p, c)
    }

    #[test]
    fn container_fields_win_over_the_pods() {
        let (p, c) = pod(json!({
            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000,
                                "supplementalGroups": [3000, 4000],
                                "sysctls": [{"name": "net.ipv4.ip_unprivileged_port_start", "value": "0"}]},
            "containers": [{"name": "c", "securityContext": {
                "runAsUser": 1500, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false,
                "capabilities": {"add": ["NET_ADMIN"], "drop": ["ALL"]},
                "seccompProfile": {"type": "Unconfined"}}}],
        }));
        let s = resolve(&p, &c, "").unwrap();
        assert_eq!(s.user.as_deref(), Some("1500:1000"));
        assert_eq!(s.group_add, ["2000", "3000", "4000"]);
        assert!(s.read_only_rootfs && !s.privileged);
        assert_eq!(s.cap_add, ["NET_ADMIN"]);
        assert_eq!(s.cap_drop, ["ALL"]);
        assert_eq!(
            s.security_opt,
            ["no-new-privileges=true", "seccomp=unconfined"]
        );
        assert_eq!(s.sysctls.len(), 1);
        let mut body = json!({"HostConfig": {}});
        s.apply(&mut body);
        assert_eq!(body["User"], "1500:1000");
        assert_eq!(body["HostConfig"]["ReadonlyRootfs"], true);
        assert_eq!(body["HostConfig"]["GroupAdd"][0], "2000");
    }

    #[test]
    fn escalation_is_refused_unless_allowed_and_privileged_gets_it() {
        let (p, c) = pod(json!({"containers": [{"name": "c"}]}));
        let s = resolve(&p, &c, "").unwrap();
        assert_eq!(s.user, None);
        assert_eq!(s.security_opt, ["no-new-privileges=true"]);
        let (p, c) = pod(json!({"containers": [{"name": "c", "securityContext": {
            "allowPrivilegeEscalation": true}}]}));
        let s = resolve(&p, &c, "").unwrap();
        assert_eq!(s.security_opt, ["no-new-privileges=false"]);
        let (p, c) = pod(json!({"containers": [{"name": "c", "securityContext": {
            "privileged": true, "allowPrivilegeEscalation": false}}]}));
        let s = resolve(&p, &c, "").unwrap();
        assert!(s.privileged);
        assert_eq!(s.security_opt, ["no-new-privileges=false"]);
    }

    #[test]
    fn run_as_non_root_refuses_root_and_unverifiable_users() {
        let non_root = |user: serde_json::Value| {
            pod(
                json!({"securityContext": {"runAsNonRoot": true, "runAsUser": user},
                       "containers": [{"name": "c"}]}),
            )
        };
        let (p, c) = non_root(json!(null));
        let e = resolve(&p, &c, "").unwrap_err();
        assert!(e.contains("image will run as root"), "{e}");
        assert!(resolve(&p, &c, "0:0").is_err());
        let e = resolve(&p, &c, "nobody").unwrap_err();
        assert!(e.contains("non-numeric user (nobody)"), "{e}");
        assert!(resolve(&p, &c, "65534:65534").is_ok());
        let (p, c) = non_root(json!(0));
        assert!(resolve(&p, &c, "1000").is_err());
        let (p, c) = non_root(json!(1000));
        assert_eq!(resolve(&p, &c, "").unwrap().user.as_deref(), Some("1000"));
    }

    #[test]
    fn run_as_group_alone_keeps_the_image_user() {
        let (p, c) = pod(json!({"securityContext": {"runAsGroup": 50},
                                "containers": [{"name": "c"}]}));
        assert_eq!(
            resolve(&p, &c, "daemon:1").unwrap().user.as_deref(),
            Some("daemon:50")
        );
        assert_eq!(resolve(&p, &c, "").unwrap().user.as_deref(), Some("0:50"));
        let (p, c) = pod(json!({"containers": [{"name": "c", "securityContext":
            {"seccompProfile": {"type": "Localhost", "localhostProfile": "x.json"}}}]}));
        assert!(resolve(&p, &c, "").is_err());
    }
}
