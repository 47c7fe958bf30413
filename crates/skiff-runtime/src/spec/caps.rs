//! Capability sets: Docker's default set, `--cap-add` / `--cap-drop` (including `ALL`) and
//! `--privileged`, limited to what this host's own bounding set can grant.
//!
//! Owns only the arithmetic on capability names; it never touches a process's capabilities.

use std::collections::BTreeSet;

use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

use super::SpecError;

/// Every capability the OCI spec knows, with its kernel number (`linux/capability.h`).
const KNOWN: &[(&str, u32)] = &[
    ("CHOWN", 0),
    ("DAC_OVERRIDE", 1),
    ("DAC_READ_SEARCH", 2),
    ("FOWNER", 3),
    ("FSETID", 4),
    ("KILL", 5),
    ("SETGID", 6),
    ("SETUID", 7),
    ("SETPCAP", 8),
    ("LINUX_IMMUTABLE", 9),
    ("NET_BIND_SERVICE", 10),
    ("NET_BROADCAST", 11),
    ("NET_ADMIN", 12),
    ("NET_RAW", 13),
    ("IPC_LOCK", 14),
    ("IPC_OWNER", 15),
    ("SYS_MODULE", 16),
    ("SYS_RAWIO", 17),
    ("SYS_CHROOT", 18),
    ("SYS_PTRACE", 19),
    ("SYS_PACCT", 20),
    ("SYS_ADMIN", 21),
    ("SYS_BOOT", 22),
    ("SYS_NICE", 23),
    ("SYS_RESOURCE", 24),
    ("SYS_TIME", 25),
    ("SYS_TTY_CONFIG", 26),
    ("MKNOD", 27),
    ("LEASE", 28),
    ("AUDIT_WRITE", 29),
    ("AUDIT_CONTROL", 30),
    ("SETFCAP", 31),
    ("MAC_OVERRIDE", 32),
    ("MAC_ADMIN", 33),
    ("SYSLOG", 34),
    ("WAKE_ALARM", 35),
    ("BLOCK_SUSPEND", 36),
    ("AUDIT_READ", 37),
    ("PERFMON", 38),
    ("BPF", 39),
    ("CHECKPOINT_RESTORE", 40),
];

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "FSETID",
    "FOWNER",
    "MKNOD",
    "NET_RAW",
    "SETGID",
    "SETUID",
    "SETFCAP",
    "SETPCAP",
    "NET_BIND_SERVICE",
    "SYS_CHROOT",
    "KILL",
    "AUDIT_WRITE",
];

/// `cap_sys_admin`, `CAP_SYS_ADMIN` and `Sys_Admin` all become `SYS_ADMIN`; `ALL` stays `ALL`.
fn normalize(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("CAP_").unwrap_or(&upper).to_string();
    if bare == "ALL" || KNOWN.iter().any(|(n, _)| *n == bare) {
        Ok(bare)
    } else {
        Err(SpecError::Invalid(format!("unknown capability: {name:?}")))
    }
}

/// The kernel number of a capability name (without `CAP_`).
pub fn number(name: &str) -> Option<u32> {
    KNOWN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

/// The capability names a container gets, Docker's way: `ALL` in `cap_add` starts from every
/// capability, `ALL` in `cap_drop` from none; otherwise from the default set. Drops win over
/// adds except that an explicit add survives `--cap-drop ALL`.
pub fn resolve(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<BTreeSet<String>, SpecError> {
    let all: BTreeSet<String> = KNOWN.iter().map(|(n, _)| n.to_string()).collect();
    if privileged {
        return Ok(all);
    }
    let add = add
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let drop = drop
        .iter()
        .map(|c| normalize(c))
        .collect::<Result<BTreeSet<_>, _>>()?;
    let mut caps: BTreeSet<String> = if add.contains("ALL") {
        all.clone()
    } else {
        DOCKER_DEFAULT.iter().map(|c| c.to_string()).collect()
    };
    if drop.contains("ALL") {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(c));
    }
    for cap in add.iter().filter(|c| *c != "ALL") {
        if drop.contains("ALL") || !drop.contains(cap) {
            caps.insert(cap.clone());
        }
    }
    Ok(caps)
}

/// Drops capabilities this process's own bounding set lacks (here CAP_SYS_RESOURCE): no
/// runtime could grant them, and asking would fail the container's start.
pub fn limit_to_host(caps: BTreeSet<String>) -> BTreeSet<String> {
    let Some(bounding) = host_bounding_set() else {
        return caps;
    };
    caps.into_iter()
        .filter(|c| {
            let ok = number(c).is_some_and(|b| bounding & (1u64 << b) != 0);
            if !ok {
                tracing::warn!(capability = %c, "capability not in the host's bounding set, dropped");
            }
            ok
        })
        .collect()
}

fn host_bounding_set() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let hex = status.lines().find_map(|l| l.strip_prefix("CapBnd:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The OCI capability sets for `names`: bounding, effective and permitted, as Docker does.
/// Inheritable and ambient stay empty, so a non-root user keeps none after `execve` (Docker
/// stopped filling the inheritable set in 20.10 for that reason).
pub fn to_oci(names: &BTreeSet<String>) -> Result<LinuxCapabilities, SpecError> {
    let set: Capabilities = names
        .iter()
        .map(|n| {
            n.parse::<Capability>()
                .map_err(|_| SpecError::Invalid(format!("unknown capability: {n}")))
        })
        .collect::<Result<_, _>>()?;
    let mut caps = LinuxCapabilitiesBuilder::default()
        .bounding(set.clone())
        .effective(set.clone())
        .permitted(set)
        .build()?;
    caps.set_inheritable(None).set_ambient(None);
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn default_set_is_dockers() {
        let caps = resolve(false, &[], &[]).unwrap();
        assert_eq!(caps.len(), 14);
        assert!(caps.contains("NET_RAW") && !caps.contains("SYS_ADMIN"));
    }

    #[test]
    fn add_and_drop_accept_any_spelling() {
        let caps = resolve(false, &s(&["cap_sys_admin"]), &s(&["CAP_NET_RAW", "mknod"])).unwrap();
        assert!(caps.contains("SYS_ADMIN"));
        assert!(!caps.contains("NET_RAW") && !caps.contains("MKNOD"));
    }

    #[test]
    fn drop_all_keeps_only_explicit_adds() {
        let caps = resolve(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(
            caps.into_iter().collect::<Vec<_>>(),
            s(&["NET_BIND_SERVICE"])
        );
    }

    #[test]
    fn add_all_minus_drops() {
        let caps = resolve(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert_eq!(caps.len(), KNOWN.len() - 1);
        assert!(!caps.contains("SYS_ADMIN"));
    }

    #[test]
    fn rejects_unknown_capability() {
        let err = resolve(false, &s(&["FLY"]), &[]).unwrap_err();
        assert!(err.to_string().contains("FLY"), "{err}");
    }

    #[test]
    fn every_known_name_parses_as_oci_capability() {
        let all: BTreeSet<String> = KNOWN.iter().map(|(n, _)| n.to_string()).collect();
        let oci = to_oci(&all).unwrap();
        assert_eq!(oci.bounding().as_ref().unwrap().len(), KNOWN.len());
        assert!(oci.ambient().is_none() && oci.inheritable().is_none());
    }
}
