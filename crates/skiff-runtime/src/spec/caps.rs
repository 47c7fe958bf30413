//! Capability sets: Docker's default set, `--cap-add` / `--cap-drop` (including `ALL`) and
//! `--privileged`, limited to what this host's own bounding set can grant.
//!
//! Owns only the arithmetic on capability names; it never touches a process's capabilities.

use libcontainer::capabilities::CapabilityExt;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities, LinuxCapabilitiesBuilder};

use super::SpecError;

/// Docker's default capability set (moby `oci/caps/defaults.go`).
pub const DOCKER_DEFAULT: &[Capability] = &[
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fsetid,
    Capability::Fowner,
    Capability::Mknod,
    Capability::NetRaw,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setfcap,
    Capability::Setpcap,
    Capability::NetBindService,
    Capability::SysChroot,
    Capability::Kill,
    Capability::AuditWrite,
];

/// One `--cap-add`/`--cap-drop` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Name {
    All,
    One(Capability),
}

/// Parses a capability name as Docker does (`NormalizeLegacyCapabilities`): case-insensitive,
/// with or without one `CAP_` prefix, or `ALL`. The error names it as Docker does, prefixed.
fn parse(name: &str) -> Result<Name, SpecError> {
    let upper = name.to_ascii_uppercase();
    if upper == "ALL" {
        return Ok(Name::All);
    }
    let prefixed = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    prefixed["CAP_".len()..]
        .parse::<Capability>()
        .map(Name::One)
        .map_err(|_| SpecError::Invalid(format!("unknown capability: {prefixed:?}")))
}

/// Every capability there is.
fn all() -> Capabilities {
    caps::all().into_iter().map(Capability::from_cap).collect()
}

/// The capabilities a container gets, Docker's way: `ALL` in `cap_add` starts from every
/// capability, `ALL` in `cap_drop` from none; otherwise from the default set. Drops win over
/// adds except that an explicit add survives `--cap-drop ALL`.
pub fn resolve(
    privileged: bool,
    add: &[String],
    drop: &[String],
) -> Result<Capabilities, SpecError> {
    if privileged {
        return Ok(all());
    }
    let parse_all = |names: &[String]| {
        names
            .iter()
            .map(|n| parse(n))
            .collect::<Result<std::collections::HashSet<Name>, _>>()
    };
    let (add, drop) = (parse_all(add)?, parse_all(drop)?);
    let mut caps: Capabilities = if add.contains(&Name::All) {
        all()
    } else {
        DOCKER_DEFAULT.iter().copied().collect()
    };
    let drop_all = drop.contains(&Name::All);
    if drop_all {
        caps.clear();
    } else {
        caps.retain(|c| !drop.contains(&Name::One(*c)));
    }
    for name in &add {
        if let Name::One(cap) = name {
            if drop_all || !drop.contains(name) {
                caps.insert(*cap);
            }
        }
    }
    Ok(caps)
}

/// Drops capabilities this process's own bounding set lacks (here CAP_SYS_RESOURCE): no
/// runtime could grant them, and asking would fail the container's start.
pub fn limit_to_host(caps: Capabilities) -> Capabilities {
    let bounding = match caps::read(None, caps::CapSet::Bounding) {
        Ok(bounding) => bounding,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the host's bounding set");
            return caps;
        }
    };
    caps.into_iter()
        .filter(|c| {
            let ok = bounding.contains(&c.to_cap());
            if !ok {
                tracing::warn!(capability = %c, "capability not in the host's bounding set, dropped");
            }
            ok
        })
        .collect()
}

/// The OCI capability sets for `set`: bounding, effective and permitted, as Docker does.
/// Inheritable and ambient stay empty, so a non-root user keeps none after `execve` (Docker
/// stopped filling the inheritable set in 20.10 for that reason).
pub fn to_oci(set: Capabilities) -> Result<LinuxCapabilities, SpecError> {
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
        assert!(caps.contains(&Capability::NetRaw) && !caps.contains(&Capability::SysAdmin));
    }

    #[test]
    fn names_are_parsed_like_docker() {
        for spelling in ["NET_ADMIN", "CAP_NET_ADMIN", "net_admin", "Cap_Net_Admin"] {
            assert_eq!(
                parse(spelling).unwrap(),
                Name::One(Capability::NetAdmin),
                "{spelling}"
            );
        }
        assert_eq!(parse("all").unwrap(), Name::All);
        assert_eq!(parse("SYSLOG").unwrap(), Name::One(Capability::Syslog));
        // Docker adds one prefix and looks the result up: a doubled prefix is unknown.
        assert_eq!(
            parse("CAP_CAP_CHOWN").unwrap_err().to_string(),
            r#"unknown capability: "CAP_CAP_CHOWN""#
        );
    }

    #[test]
    fn add_and_drop_accept_any_spelling() {
        let caps = resolve(false, &s(&["cap_sys_admin"]), &s(&["CAP_NET_RAW", "mknod"])).unwrap();
        assert!(caps.contains(&Capability::SysAdmin));
        assert!(!caps.contains(&Capability::NetRaw) && !caps.contains(&Capability::Mknod));
    }

    #[test]
    fn drop_all_keeps_only_explicit_adds() {
        let caps = resolve(false, &s(&["NET_BIND_SERVICE"]), &s(&["ALL"])).unwrap();
        assert_eq!(caps, [Capability::NetBindService].into_iter().collect());
    }

    #[test]
    fn add_all_minus_drops() {
        let caps = resolve(false, &s(&["ALL"]), &s(&["SYS_ADMIN"])).unwrap();
        assert_eq!(caps.len(), all().len() - 1);
        assert!(!caps.contains(&Capability::SysAdmin));
        assert!(
            all().len() >= 41,
            "every capability up to CHECKPOINT_RESTORE"
        );
    }

    #[test]
    fn rejects_unknown_capability_in_dockers_words() {
        let err = resolve(false, &s(&["fly"]), &[]).unwrap_err();
        assert_eq!(err.to_string(), r#"unknown capability: "CAP_FLY""#);
    }

    #[test]
    fn oci_sets_are_bounding_effective_permitted_only() {
        let oci = to_oci(all()).unwrap();
        assert_eq!(oci.bounding().as_ref().unwrap().len(), all().len());
        assert!(oci.ambient().is_none() && oci.inheritable().is_none());
    }
}
