//! skiff's default seccomp profile and custom profiles from `--security-opt seccomp=…`.
//!
//! # Design of the default profile
//! Docker's profile is an allow list of ~350 syscalls. Ours is the opposite, a **deny list on
//! top of `SCMP_ACT_ALLOW`**, which is shorter to audit and never breaks a program that uses a
//! new harmless syscall. The price is that a new *dangerous* syscall is allowed until it is
//! added here, so the list errs on the side of denying whole kernel subsystems:
//!
//! * **Never in a container** (EPERM whatever the capabilities): the kernel keyring
//!   (`add_key`, `keyctl`, `request_key`: not namespaced, so keys leak between containers),
//!   `lookup_dcookie`, io_uring (a large, frequently exploited attack surface that bypasses
//!   syscall filtering; Docker blocks it too), what acts on the whole host even when a
//!   capability allows it (`kexec_*`, `swapon`/`swapoff`, `move_pages`, `migrate_pages`,
//!   `pivot_root`: Docker's allow list has none of them), obsolete syscalls (`_sysctl`,
//!   `uselib`, `ustat`, `sysfs`, `nfsservctl`, …), 32-bit `vm86` and `socket(AF_VSOCK)`.
//! * **Only with the capability that makes them meaningful**: each group below is denied unless
//!   the container holds that capability (`--cap-add` or `--privileged`). Without the
//!   capability the kernel would refuse most of them anyway; the filter removes the kernel
//!   code paths from reach (defence in depth) and, crucially, blocks the namespace syscalls
//!   (`unshare`, `setns`, `clone`/`clone3` with `CLONE_NEW*`), which unprivileged processes
//!   *can* use to create user namespaces and reach otherwise root-only kernel code.
//!   `clone3` answers ENOSYS rather than EPERM because its flags live in memory a filter cannot
//!   inspect; glibc then falls back to `clone`, whose flags the filter checks.
//! * Filters are installed for the native architecture and its 32-bit compat ABIs
//!   (x86 and x32 on x86_64, arm on aarch64): a deny list that covered only the native ABI
//!   could be bypassed with `int 0x80`. Syscalls that do not exist on the build architecture
//!   are left out; runtimes also skip names their libseccomp cannot resolve.

use oci_spec::runtime::{
    Arch, Capabilities, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use super::SpecError;

const EPERM: u32 = libc::EPERM as u32;
const ENOSYS: u32 = libc::ENOSYS as u32;

/// One group of the deny list: `names` are denied unless the container holds one of `unless`.
struct Deny {
    names: &'static [&'static str],
    unless: &'static [Capability],
}

/// Syscalls that exist only on x86 (32 or 64 bit).
#[cfg(any(target_arch = "x86_64", target_arch = "x86"))]
const X86_ONLY: &[Deny] = &[
    Deny {
        names: &["iopl", "ioperm"],
        unless: &[Capability::SysRawio],
    },
    Deny {
        names: &["vm86", "vm86old"],
        unless: &[],
    },
];
#[cfg(not(any(target_arch = "x86_64", target_arch = "x86")))]
const X86_ONLY: &[Deny] = &[];

const DENY: &[Deny] = &[
    Deny {
        names: &[
            "add_key",
            "keyctl",
            "request_key",
            "lookup_dcookie",
            "io_uring_setup",
            "io_uring_enter",
            "io_uring_register",
            "_sysctl",
            "uselib",
            "ustat",
            "sysfs",
            "nfsservctl",
            "create_module",
            "get_kernel_syms",
            "query_module",
            // Host-wide even with the capability (no user namespace): loading a new kernel,
            // switching the host's swap off, moving pages across NUMA nodes. Docker's
            // profile allows none of them whatever the capabilities.
            "kexec_load",
            "kexec_file_load",
            "swapon",
            "swapoff",
            "pivot_root",
            "move_pages",
            "migrate_pages",
        ],
        unless: &[],
    },
    Deny {
        names: &[
            "mount",
            "umount",
            "umount2",
            "unshare",
            "setns",
            "sethostname",
            "setdomainname",
            "quotactl",
            "quotactl_fd",
            "fanotify_init",
            "open_tree",
            "move_mount",
            "fsopen",
            "fsconfig",
            "fsmount",
            "fspick",
            "mount_setattr",
        ],
        unless: &[Capability::SysAdmin],
    },
    Deny {
        names: &["bpf"],
        unless: &[Capability::SysAdmin, Capability::Bpf],
    },
    Deny {
        names: &["perf_event_open"],
        unless: &[Capability::SysAdmin, Capability::Perfmon],
    },
    Deny {
        names: &["reboot"],
        unless: &[Capability::SysBoot],
    },
    Deny {
        names: &["init_module", "finit_module", "delete_module"],
        unless: &[Capability::SysModule],
    },
    Deny {
        names: &["clock_settime", "clock_settime64", "settimeofday", "stime"],
        unless: &[Capability::SysTime],
    },
    Deny {
        names: &["acct"],
        unless: &[Capability::SysPacct],
    },
    Deny {
        names: &["syslog"],
        unless: &[Capability::Syslog],
    },
    Deny {
        names: &[
            "kcmp",
            "pidfd_getfd",
            "process_madvise",
            "process_vm_readv",
            "process_vm_writev",
            "userfaultfd",
        ],
        unless: &[Capability::SysPtrace],
    },
    Deny {
        names: &[
            "get_mempolicy",
            "mbind",
            "set_mempolicy",
            "set_mempolicy_home_node",
        ],
        unless: &[Capability::SysNice],
    },
    Deny {
        names: &["chroot"],
        unless: &[Capability::SysChroot],
    },
    Deny {
        names: &["open_by_handle_at"],
        unless: &[Capability::DacReadSearch],
    },
    Deny {
        names: &["vhangup"],
        unless: &[Capability::SysTtyConfig],
    },
];

/// `AF_VSOCK`: vsock is not network-namespaced, so a socket of it reaches services of the
/// host and hypervisor past the container's network namespace (Docker denies it too).
const AF_VSOCK: u64 = libc::AF_VSOCK as u64;

/// `CLONE_NEW*` flags that `clone` may not carry without CAP_SYS_ADMIN.
const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
    0x80, // CLONE_NEWTIME
];

fn architectures() -> Vec<Arch> {
    if cfg!(target_arch = "x86_64") {
        vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32]
    } else if cfg!(target_arch = "aarch64") {
        vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm]
    } else {
        vec![Arch::ScmpArchNative]
    }
}

fn rule(
    names: Vec<String>,
    errno: u32,
    args: Option<Vec<LinuxSeccompArg>>,
) -> Result<LinuxSyscall, SpecError> {
    let mut b = LinuxSyscallBuilder::default()
        .names(names)
        .action(LinuxSeccompAction::ScmpActErrno)
        .errno_ret(errno);
    if let Some(args) = args {
        b = b.args(args);
    }
    Ok(b.build()?)
}

/// The default profile for a container holding `caps`.
pub fn default_profile(caps: &Capabilities) -> Result<LinuxSeccomp, SpecError> {
    let holds = |any: &[Capability]| any.iter().any(|c| caps.contains(c));
    let mut denied: Vec<String> = DENY
        .iter()
        .chain(X86_ONLY)
        .filter(|d| d.unless.is_empty() || !holds(d.unless))
        .flat_map(|d| d.names.iter().map(|n| n.to_string()))
        .collect();
    denied.sort();
    let mut syscalls = vec![rule(denied, EPERM, None)?];
    let vsock = oci_spec::runtime::LinuxSeccompArgBuilder::default()
        .index(0usize)
        .value(AF_VSOCK)
        .op(LinuxSeccompOperator::ScmpCmpEq)
        .build()?;
    syscalls.push(rule(vec!["socket".into()], EPERM, Some(vec![vsock]))?);
    if !holds(&[Capability::SysAdmin]) {
        syscalls.push(rule(vec!["clone3".into()], ENOSYS, None)?);
        // s390 passes clone's flags in the second argument.
        let flags_index: usize = if cfg!(target_arch = "s390x") { 1 } else { 0 };
        for &flag in CLONE_NS_FLAGS {
            let arg = oci_spec::runtime::LinuxSeccompArgBuilder::default()
                .index(flags_index)
                .value(flag)
                .value_two(flag)
                .op(LinuxSeccompOperator::ScmpCmpMaskedEq)
                .build()?;
            syscalls.push(rule(vec!["clone".into()], EPERM, Some(vec![arg]))?);
        }
    }
    Ok(LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .architectures(architectures())
        .syscalls(syscalls)
        .build()?)
}

/// A custom profile given as `seccomp=<json>` (what the docker CLI sends: it reads the file
/// itself) or `seccomp=<path>`. The OCI `linux.seccomp` format is accepted; Docker's
/// extensions that change a rule's meaning (`includes`, `excludes`, `archMap`) are refused
/// rather than silently ignored.
pub fn custom_profile(value: &str) -> Result<LinuxSeccomp, SpecError> {
    let text = if value.trim_start().starts_with('{') {
        value.to_string()
    } else {
        std::fs::read_to_string(value).map_err(|source| SpecError::Io {
            path: value.into(),
            source,
        })?
    };
    let raw: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| SpecError::Invalid(format!("invalid seccomp profile: {e}")))?;
    let uses_docker_filters = raw.get("archMap").is_some()
        || raw
            .get("syscalls")
            .and_then(|s| s.as_array())
            .is_some_and(|rules| {
                rules.iter().any(|r| {
                    r.get("includes")
                        .is_some_and(|v| v != &serde_json::json!({}))
                        || r.get("excludes")
                            .is_some_and(|v| v != &serde_json::json!({}))
                })
            });
    if uses_docker_filters {
        return Err(SpecError::Invalid(
            "seccomp profile uses docker-only fields (archMap, includes, excludes); give an OCI linux.seccomp profile"
                .into(),
        ));
    }
    serde_json::from_value(raw)
        .map_err(|e| SpecError::Invalid(format!("invalid seccomp profile: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    fn names_denied(p: &LinuxSeccomp) -> BTreeSet<String> {
        p.syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.args().is_none() && r.errno_ret() == Some(EPERM))
            .flat_map(|r| r.names().clone())
            .collect()
    }

    #[test]
    fn default_profile_denies_dangerous_syscalls_and_allows_the_rest() {
        let p = default_profile(&Capabilities::new()).unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActAllow);
        let denied = names_denied(&p);
        for s in [
            "kexec_load",
            "init_module",
            "keyctl",
            "bpf",
            "unshare",
            "setns",
            "mount",
            "open_by_handle_at",
        ] {
            assert!(denied.contains(s), "{s} should be denied");
        }
        assert!(!denied.contains("read") && !denied.contains("clone"));
        let clone_rules = p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .filter(|r| r.names() == &["clone"])
            .count();
        assert_eq!(clone_rules, CLONE_NS_FLAGS.len());
    }

    #[test]
    fn capabilities_lift_their_groups() {
        let caps: Capabilities = [Capability::SysAdmin, Capability::SysPtrace].into();
        let p = default_profile(&caps).unwrap();
        let denied = names_denied(&p);
        assert!(
            !denied.contains("unshare") && !denied.contains("mount") && !denied.contains("bpf")
        );
        assert!(!denied.contains("process_vm_readv"));
        assert!(denied.contains("keyctl") && denied.contains("reboot"));
        assert!(p
            .syscalls()
            .as_ref()
            .unwrap()
            .iter()
            .all(|r| r.names() != &["clone3"]));
    }

    #[test]
    fn cap_add_sys_boot_or_sys_admin_allowed_host_wide_syscalls() {
        let caps: Capabilities = [
            Capability::SysBoot,
            Capability::SysAdmin,
            Capability::SysNice,
        ]
        .into();
        let denied = names_denied(&default_profile(&caps).unwrap());
        for s in [
            "kexec_load",
            "kexec_file_load",
            "swapoff",
            "swapon",
            "pivot_root",
        ] {
            assert!(denied.contains(s), "{s} allowed by a capability");
        }
        assert!(!denied.contains("reboot") && !denied.contains("mbind"));
        let denied = names_denied(&default_profile(&Capabilities::new()).unwrap());
        for s in [
            "mbind",
            "set_mempolicy",
            "pidfd_getfd",
            "chroot",
            "sethostname",
        ] {
            assert!(denied.contains(s), "{s} allowed without its capability");
        }
    }

    #[test]
    fn vsock_sockets_were_allowed() {
        let p = default_profile(&Capabilities::new()).unwrap();
        let vsock = p.syscalls().as_ref().unwrap().iter().find(|r| {
            r.names() == &["socket"]
                && r.errno_ret() == Some(EPERM)
                && r.args().as_ref().is_some_and(|a| {
                    a.len() == 1
                        && a[0].index() == 0
                        && a[0].value() == libc::AF_VSOCK as u64
                        && a[0].op() == LinuxSeccompOperator::ScmpCmpEq
                })
        });
        assert!(vsock.is_some(), "socket(AF_VSOCK) is not denied");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn covers_compat_abis() {
        let p = default_profile(&Capabilities::new()).unwrap();
        assert!(p
            .architectures()
            .as_ref()
            .unwrap()
            .contains(&Arch::ScmpArchX86));
    }

    #[test]
    fn custom_profile_from_json_text() {
        let p = custom_profile(r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["read"],"action":"SCMP_ACT_ALLOW"}]}"#)
            .unwrap();
        assert_eq!(p.default_action(), LinuxSeccompAction::ScmpActErrno);
    }

    #[test]
    fn custom_profile_rejects_garbage_and_docker_only_filters() {
        assert!(custom_profile("{not json").is_err());
        let docker = r#"{"defaultAction":"SCMP_ACT_ERRNO","syscalls":[{"names":["clone"],"action":"SCMP_ACT_ALLOW","includes":{"caps":["CAP_SYS_ADMIN"]}}]}"#;
        assert!(custom_profile(docker)
            .unwrap_err()
            .to_string()
            .contains("docker-only"));
        assert!(custom_profile("/nonexistent/skiff-profile.json").is_err());
    }
}
