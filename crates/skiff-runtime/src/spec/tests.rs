use std::path::PathBuf;

use oci_spec::runtime::{
    Capability, LinuxNamespaceType, LinuxSeccompAction, PosixRlimitType, Spec,
};

use super::*;

fn rootfs() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/passwd"),
        "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("etc/group"),
        "root:x:0:\nweb:x:33:\nlogs:x:4:web\n",
    )
    .unwrap();
    dir
}

fn base(rootfs: &std::path::Path) -> ContainerSpec {
    ContainerSpec {
        id: "0123456789abcdef".into(),
        rootfs: rootfs.to_path_buf(),
        args: vec!["sh".into(), "-c".into(), "true".into()],
        env: vec!["FOO=bar".into()],
        ..Default::default()
    }
}

/// The options of the mount at `dest` (which must exist).
fn mount_options(spec: &Spec, dest: &str) -> Vec<String> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.destination() == &PathBuf::from(dest))
        .unwrap_or_else(|| panic!("no mount at {dest}"))
        .options()
        .clone()
        .unwrap_or_default()
}

fn caps_of(spec: &Spec) -> Vec<Capability> {
    let mut v: Vec<_> = spec
        .process()
        .as_ref()
        .unwrap()
        .capabilities()
        .as_ref()
        .unwrap()
        .effective()
        .clone()
        .unwrap()
        .into_iter()
        .collect();
    v.sort_by_key(|c| c.to_string());
    v
}

fn mount_dests(spec: &Spec) -> Vec<String> {
    spec.mounts()
        .as_ref()
        .unwrap()
        .iter()
        .map(|m| m.destination().display().to_string())
        .collect()
}

#[test]
fn defaults_are_dockers_secure_defaults() {
    let r = rootfs();
    let spec = generate(&base(r.path())).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.no_new_privileges(), Some(true));
    assert_eq!(p.cwd(), &PathBuf::from("/"));
    assert_eq!((p.user().uid(), p.user().gid()), (0, 0));
    let caps = p.capabilities().as_ref().unwrap();
    assert_eq!(caps.effective(), caps.bounding());
    assert_eq!(caps.effective(), caps.permitted());
    assert!(caps.ambient().is_none());
    assert_eq!(caps_of(&spec).len(), 14);
    assert!(!caps_of(&spec).contains(&Capability::SysAdmin));

    let linux = spec.linux().as_ref().unwrap();
    assert_eq!(
        linux.cgroups_path(),
        &Some(PathBuf::from("/skiff/0123456789abcdef"))
    );
    assert!(linux
        .masked_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/kcore".to_string()));
    assert!(linux
        .readonly_paths()
        .as_ref()
        .unwrap()
        .contains(&"/proc/sys".to_string()));
    assert_eq!(
        linux.seccomp().as_ref().unwrap().default_action(),
        LinuxSeccompAction::ScmpActAllow
    );
    let ns: Vec<_> = linux
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .map(|n| n.typ())
        .collect();
    for t in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
    ] {
        assert!(ns.contains(&t), "{t:?} missing");
    }
    assert_eq!(spec.hostname().as_deref(), Some("0123456789ab"));

    let dests = mount_dests(&spec);
    for d in [
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/dev/mqueue",
        "/sys",
        "/sys/fs/cgroup",
    ] {
        assert!(dests.contains(&d.to_string()), "{d} missing");
    }
    assert!(mount_options(&spec, "/dev/shm").contains(&"size=67108864".to_string()));
    assert!(mount_options(&spec, "/sys").contains(&"ro".to_string()));
    let devs: Vec<_> = linux
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .map(|d| d.path().display().to_string())
        .collect();
    assert_eq!(
        devs,
        [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty"
        ]
    );

    let env = p.env().as_ref().unwrap();
    assert!(env.contains(&"FOO=bar".to_string()));
    assert!(env.iter().any(|e| e.starts_with("PATH=/usr/local/sbin")));
    assert!(env.contains(&"HOME=/root".to_string()));
    assert!(env.contains(&"HOSTNAME=0123456789ab".to_string()));
}

#[test]
fn a_bare_variable_name_sets_nothing_and_unsets_the_default() {
    let r = rootfs();
    let mut c = base(r.path());
    c.env = vec!["Foo".into(), "A=1".into(), "HOSTNAME".into()];
    let spec = generate(&c).unwrap();
    let env = spec.process().as_ref().unwrap().env().clone().unwrap();
    assert!(env.contains(&"A=1".to_string()), "{env:?}");
    assert!(env.iter().all(|e| e.contains('=')), "{env:?}");
    assert!(!env.iter().any(|e| e.starts_with("HOSTNAME")), "{env:?}");
    assert!(env.iter().any(|e| e.starts_with("PATH=")), "{env:?}");
    let exec = ExecSpec {
        args: vec!["env".into()],
        env: vec!["A".into(), "B".into()],
        ..Default::default()
    };
    let env = exec_process(&spec, &exec).unwrap().env().clone().unwrap();
    assert!(
        !env.iter().any(|e| e == "B" || e.starts_with("A")),
        "{env:?}"
    );
}

#[test]
fn group_add_reaches_the_process_and_execs_as_other_users() {
    let r = rootfs();
    let mut c = base(r.path());
    c.group_add = vec!["web".into(), "1234".into()];
    let spec = generate(&c).unwrap();
    let gids = spec
        .process()
        .as_ref()
        .unwrap()
        .user()
        .additional_gids()
        .clone();
    assert_eq!(gids, Some(vec![0, 33, 1234]), "the primary group first");
    let exec = ExecSpec {
        args: vec!["id".into()],
        user: "web".into(),
        group_add: c.group_add.clone(),
        ..Default::default()
    };
    let p = exec_process(&spec, &exec).unwrap();
    assert_eq!(p.user().additional_gids(), &Some(vec![33, 4, 1234]));
    c.group_add = vec!["nosuchgroup".into()];
    assert!(generate(&c)
        .unwrap_err()
        .to_string()
        .contains("Unable to find group nosuchgroup"));
}

#[test]
fn the_cgroup_namespace_is_private_unless_the_hosts_is_asked_for() {
    let r = rootfs();
    let has_cgroupns = |c: &ContainerSpec| {
        let spec = generate(c).unwrap();
        let linux = spec.linux().as_ref().unwrap();
        linux
            .namespaces()
            .as_ref()
            .unwrap()
            .iter()
            .any(|n| n.typ() == LinuxNamespaceType::Cgroup)
    };
    let mut c = base(r.path());
    assert!(has_cgroupns(&c));
    c.host_cgroupns = true;
    assert!(!has_cgroupns(&c));
}

#[test]
fn nofile_never_exceeds_the_hard_limit() {
    let r = rootfs();
    let spec = generate(&base(r.path())).unwrap();
    let rl = spec.process().as_ref().unwrap().rlimits().as_ref().unwrap();
    let nofile = rl
        .iter()
        .find(|l| l.typ() == PosixRlimitType::RlimitNofile)
        .unwrap();
    let (_, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert!(nofile.hard() <= hard && nofile.hard() <= 1_048_576);
    assert_eq!(nofile.soft(), nofile.hard());
}

#[test]
fn ulimits_replace_the_default_of_their_kind() {
    let r = rootfs();
    let mut c = base(r.path());
    c.ulimits = vec![
        crate::spec::Ulimit {
            name: "nofile".into(),
            soft: 100,
            hard: 200,
        },
        crate::spec::Ulimit {
            name: "nproc".into(),
            soft: 50,
            hard: 50,
        },
    ];
    let spec = generate(&c).unwrap();
    let rl = spec.process().as_ref().unwrap().rlimits().as_ref().unwrap();
    let of = |t: PosixRlimitType| {
        let found: Vec<_> = rl.iter().filter(|l| l.typ() == t).collect();
        assert_eq!(found.len(), 1, "{t:?} once: {rl:?}");
        (found[0].soft(), found[0].hard())
    };
    assert_eq!(of(PosixRlimitType::RlimitNofile), (100, 200));
    assert_eq!(of(PosixRlimitType::RlimitNproc), (50, 50));
    c.ulimits[1].name = "bogus".into();
    assert!(generate(&c).is_err());
}

#[test]
fn mapped_devices_get_a_node_and_a_cgroup_rule() {
    let r = rootfs();
    let mut c = base(r.path());
    c.devices = vec![crate::spec::DeviceMapping {
        host: "/dev/null".into(),
        container: "/dev/mynull".into(),
        permissions: "rw".into(),
    }];
    let spec = generate(&c).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    let node = linux
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .find(|d| d.path() == std::path::Path::new("/dev/mynull"))
        .expect("the mapped node");
    assert_eq!((node.major(), node.minor()), (1, 3));
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .clone()
        .unwrap();
    let last = rules.last().unwrap();
    assert_eq!(
        (
            last.allow(),
            last.major(),
            last.minor(),
            last.access().as_deref()
        ),
        (true, Some(1), Some(3), Some("rw"))
    );
    c.devices[0].host = "/dev/skiff-no-such-device".into();
    let err = generate(&c).unwrap_err().to_string();
    assert!(
        err.contains("adding custom device \"/dev/skiff-no-such-device\": no such file"),
        "{err}"
    );
}

#[test]
fn cfs_cpuset_and_reservation_reach_the_resources() {
    let r = rootfs();
    let mut c = base(r.path());
    c.cpu_period = Some(50_000);
    c.cpu_quota = Some(25_000);
    c.cpuset_cpus = Some("0".into());
    c.memory_reservation = Some(10 << 20);
    let spec = generate(&c).unwrap();
    let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    let cpu = res.cpu().clone().unwrap();
    assert_eq!((cpu.period(), cpu.quota()), (Some(50_000), Some(25_000)));
    assert_eq!(cpu.cpus().as_deref(), Some("0"));
    assert_eq!(res.memory().unwrap().reservation(), Some(10 << 20));
}

#[test]
fn shm_size_sizes_the_containers_dev_shm() {
    let r = rootfs();
    let mut c = base(r.path());
    let shm_options = |c: &ContainerSpec| {
        let spec = generate(c).unwrap();
        let shm = spec
            .mounts()
            .as_ref()
            .unwrap()
            .iter()
            .find(|m| m.destination() == std::path::Path::new("/dev/shm"))
            .cloned()
            .unwrap();
        shm.options().clone().unwrap()
    };
    assert!(shm_options(&c).contains(&"size=67108864".to_string()));
    c.shm_size = Some(1 << 20);
    assert!(shm_options(&c).contains(&"size=1048576".to_string()));
}

#[test]
fn privileged_gets_everything_and_no_confinement() {
    let r = rootfs();
    let mut c = base(r.path());
    c.privileged = true;
    let spec = generate(&c).unwrap();
    let linux = spec.linux().as_ref().unwrap();
    assert!(linux.seccomp().is_none());
    assert!(linux.masked_paths().is_none() && linux.readonly_paths().is_none());
    assert!(caps_of(&spec).contains(&Capability::SysAdmin));
    let rules = linux
        .resources()
        .as_ref()
        .unwrap()
        .devices()
        .as_ref()
        .unwrap();
    assert!(rules.len() == 1 && rules[0].allow());
    assert!(linux
        .devices()
        .as_ref()
        .unwrap()
        .iter()
        .any(|d| d.path() == &PathBuf::from("/dev/null")));
    assert!(!mount_options(&spec, "/sys").contains(&"ro".to_string()));
}

#[test]
fn security_opts_switch_off_defaults() {
    let r = rootfs();
    let mut c = base(r.path());
    c.security_opt = vec![
        "no-new-privileges=false".into(),
        "seccomp=unconfined".into(),
        "apparmor=unconfined".into(),
    ];
    let spec = generate(&c).unwrap();
    assert_eq!(
        spec.process().as_ref().unwrap().no_new_privileges(),
        Some(false)
    );
    assert!(spec.linux().as_ref().unwrap().seccomp().is_none());

    c.security_opt = vec!["seccomp={\"defaultAction\":\"SCMP_ACT_LOG\"}".into()];
    let spec = generate(&c).unwrap();
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .seccomp()
            .as_ref()
            .unwrap()
            .default_action(),
        LinuxSeccompAction::ScmpActLog
    );

    c.security_opt = vec!["bogus=1".into()];
    assert!(generate(&c).is_err());
}

#[test]
fn cap_add_sys_admin_lifts_namespace_syscalls_from_the_filter() {
    let r = rootfs();
    let mut c = base(r.path());
    c.cap_add = vec!["SYS_ADMIN".into()];
    let spec = generate(&c).unwrap();
    let rules = spec
        .linux()
        .as_ref()
        .unwrap()
        .seccomp()
        .as_ref()
        .unwrap()
        .syscalls()
        .clone()
        .unwrap();
    assert!(rules
        .iter()
        .all(|r| !r.names().contains(&"unshare".to_string())));
    assert!(caps_of(&spec).contains(&Capability::SysAdmin));
}

#[test]
fn user_resolution_and_unknown_user() {
    let r = rootfs();
    let mut c = base(r.path());
    c.user = "web".into();
    let spec = generate(&c).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!((p.user().uid(), p.user().gid()), (33, 33));
    assert_eq!(p.user().additional_gids(), &Some(vec![33, 4]));
    assert!(p
        .env()
        .as_ref()
        .unwrap()
        .contains(&"HOME=/var/www".to_string()));
    c.user = "ghost".into();
    let err = generate(&c).unwrap_err();
    assert!(
        err.to_string().contains("unable to find user ghost"),
        "{err}"
    );
    assert_eq!(
        skiff_core::HasKind::kind(&err),
        skiff_core::ErrorKind::InvalidArgument
    );
}

#[test]
fn resources_follow_docker() {
    let r = rootfs();
    let mut c = base(r.path());
    c.memory_limit = Some(64 << 20);
    c.nano_cpus = Some(1_500_000_000);
    c.cpu_shares = Some(512);
    c.pids_limit = Some(20);
    c.blkio_weight = Some(300);
    let spec = generate(&c).unwrap();
    let res = spec.linux().as_ref().unwrap().resources().clone().unwrap();
    assert_eq!(res.block_io().as_ref().unwrap().weight(), Some(300));
    let mem = res.memory().unwrap();
    assert_eq!((mem.limit(), mem.swap()), (Some(64 << 20), Some(128 << 20)));
    let cpu = res.cpu().clone().unwrap();
    assert_eq!(
        (cpu.quota(), cpu.period(), cpu.shares()),
        (Some(150_000), Some(100_000), Some(512))
    );
    assert_eq!(res.pids().as_ref().unwrap().limit(), 20);

    c.memory_swap = Some(-1);
    let spec = generate(&c).unwrap();
    assert_eq!(
        spec.linux()
            .as_ref()
            .unwrap()
            .resources()
            .as_ref()
            .unwrap()
            .memory()
            .as_ref()
            .unwrap()
            .swap(),
        Some(-1)
    );

    c.memory_limit = None;
    c.memory_swap = Some(1 << 30);
    assert!(generate(&c).is_err());
}

#[test]
fn masked_paths_left_host_interrupts_readable() {
    let spec = generate(&base(rootfs().path())).unwrap();
    let masked = spec
        .linux()
        .as_ref()
        .unwrap()
        .masked_paths()
        .clone()
        .unwrap();
    for p in super::MASKED_PATHS {
        assert!(masked.contains(&p.to_string()), "{p} not masked");
    }
    assert!(masked.contains(&"/proc/interrupts".to_string()));
}

#[test]
fn read_only_bind_left_submounts_writable() {
    let r = rootfs();
    let mut c = base(r.path());
    c.mounts = vec![MountSpec::Bind {
        source: "/srv/data".into(),
        destination: "/data".into(),
        read_only: true,
    }];
    let spec = generate(&c).unwrap();
    let opts = mount_options(&spec, "/data");
    assert!(
        opts.contains(&"ro".to_string()) && opts.contains(&"rro".to_string()),
        "a read-only bind must be read-only recursively: {opts:?}"
    );
}

#[test]
fn init_mounts_and_rootfs_options() {
    let r = rootfs();
    let mut c = base(r.path());
    c.init_path = Some("/usr/bin/tini".into());
    c.read_only_rootfs = true;
    c.mounts = vec![
        MountSpec::Bind {
            source: "/srv/data".into(),
            destination: "/data/sub".into(),
            read_only: true,
        },
        MountSpec::Bind {
            source: "/srv".into(),
            destination: "/data".into(),
            read_only: false,
        },
        MountSpec::Tmpfs {
            destination: "/dev/shm".into(),
            options: vec!["size=1m".into(), "exec".into()],
        },
    ];
    c.etc_files = vec![("/run/x/hosts".into(), "/etc/hosts".into())];
    let spec = generate(&c).unwrap();
    assert_eq!(
        &spec.process().as_ref().unwrap().args().as_ref().unwrap()[..3],
        &[INIT_PATH_IN_CONTAINER, "--", "sh"]
    );
    assert_eq!(spec.root().as_ref().unwrap().readonly(), Some(true));
    let dests = mount_dests(&spec);
    let pos = |d: &str| dests.iter().position(|x| x == d).unwrap();
    assert!(pos("/data") < pos("/data/sub"), "parents first: {dests:?}");
    assert_eq!(
        dests.iter().filter(|d| *d == "/dev/shm").count(),
        1,
        "user tmpfs replaces the default"
    );
    let shm_opts = mount_options(&spec, "/dev/shm");
    assert!(shm_opts.contains(&"size=1m".to_string()) && !shm_opts.contains(&"noexec".to_string()));
    assert!(mount_options(&spec, "/etc/hosts").contains(&"ro".to_string()));
    assert!(mount_options(&spec, INIT_PATH_IN_CONTAINER).contains(&"ro".to_string()));
}

#[test]
fn namespaces_follow_network_and_host_modes() {
    let r = rootfs();
    let mut c = base(r.path());
    c.network = NetworkMode::Path("/run/netns/skiff-x".into());
    c.host_pid = true;
    c.host_uts = true;
    let spec = generate(&c).unwrap();
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    assert!(ns
        .iter()
        .all(|n| n.typ() != LinuxNamespaceType::Pid && n.typ() != LinuxNamespaceType::Uts));
    let net = ns
        .iter()
        .find(|n| n.typ() == LinuxNamespaceType::Network)
        .unwrap();
    assert_eq!(net.path(), &Some(PathBuf::from("/run/netns/skiff-x")));
    assert!(spec.hostname().is_none());
    c.network = NetworkMode::Host;
    let spec = generate(&c).unwrap();
    assert!(spec
        .linux()
        .as_ref()
        .unwrap()
        .namespaces()
        .as_ref()
        .unwrap()
        .iter()
        .all(|n| n.typ() != LinuxNamespaceType::Network));
}

#[test]
fn pod_members_join_ipc_and_uts_namespaces_and_own_etc_files() {
    let r = rootfs();
    let mut c = base(r.path());
    c.ipc_path = Some("/run/skiff/pods/p/ipc".into());
    c.uts_path = Some("/run/skiff/pods/p/uts".into());
    c.etc_files = vec![("/engine/hosts".into(), "/etc/hosts".into())];
    c.mounts = vec![MountSpec::Bind {
        source: "/pod/etc-hosts".into(),
        destination: "/etc/hosts".into(),
        read_only: false,
    }];
    let spec = generate(&c).unwrap();
    let ns = spec.linux().as_ref().unwrap().namespaces().clone().unwrap();
    let path_of = |t: LinuxNamespaceType| ns.iter().find(|n| n.typ() == t).unwrap().path().clone();
    assert_eq!(
        path_of(LinuxNamespaceType::Ipc),
        Some(PathBuf::from("/run/skiff/pods/p/ipc"))
    );
    assert_eq!(
        path_of(LinuxNamespaceType::Uts),
        Some(PathBuf::from("/run/skiff/pods/p/uts"))
    );
    let hosts: Vec<_> = spec
        .mounts()
        .as_ref()
        .unwrap()
        .iter()
        .filter(|m| m.destination() == std::path::Path::new("/etc/hosts"))
        .collect();
    assert_eq!(hosts.len(), 1, "one mount at /etc/hosts: {hosts:?}");
    assert_eq!(hosts[0].source(), &Some(PathBuf::from("/pod/etc-hosts")));
}

#[test]
fn sysctls_must_be_namespaced() {
    let r = rootfs();
    let mut c = base(r.path());
    c.sysctls = vec![
        ("net/ipv4/ip_forward".into(), "1".into()),
        ("kernel.shmmax".into(), "1000".into()),
    ];
    let spec = generate(&c).unwrap();
    let s = spec.linux().as_ref().unwrap().sysctl().clone().unwrap();
    assert_eq!(s.get("net.ipv4.ip_forward").map(String::as_str), Some("1"));
    c.sysctls = vec![("vm.swappiness".into(), "1".into())];
    assert!(generate(&c).is_err());
    c.sysctls = vec![("net.ipv4.ip_forward".into(), "1".into())];
    c.network = NetworkMode::Host;
    assert!(generate(&c).is_err());
}

#[test]
fn write_bundle_roundtrips() {
    let r = rootfs();
    let spec = generate(&base(r.path())).unwrap();
    let bundle = tempfile::tempdir().unwrap();
    write_bundle(&spec, &bundle.path().join("b")).unwrap();
    let loaded = Spec::load(bundle.path().join("b/config.json")).unwrap();
    assert_eq!(loaded, spec);
}

#[test]
fn exec_process_inherits_and_overrides() {
    let r = rootfs();
    let spec = generate(&base(r.path())).unwrap();
    let exec = ExecSpec {
        args: vec!["id".into()],
        env: vec!["FOO=baz".into()],
        cwd: "/tmp".into(),
        user: "web".into(),
        tty: true,
        privileged: false,
        group_add: Vec::new(),
    };
    let p = exec_process(&spec, &exec).unwrap();
    assert_eq!(p.args().as_ref().unwrap(), &["id"]);
    let env = p.env().as_ref().unwrap();
    assert!(env.contains(&"FOO=baz".to_string()) && !env.contains(&"FOO=bar".to_string()));
    assert_eq!(p.user().uid(), 33);
    assert_eq!(p.cwd(), &PathBuf::from("/tmp"));
    assert_eq!(
        p.capabilities(),
        spec.process().as_ref().unwrap().capabilities()
    );
    assert!(exec_process(
        &spec,
        &ExecSpec {
            user: "ghost".into(),
            ..exec
        }
    )
    .is_err());
}

#[test]
fn rejects_empty_command_and_relative_rootfs() {
    let r = rootfs();
    let mut c = base(r.path());
    c.args.clear();
    assert!(generate(&c).is_err());
    let mut c = base(r.path());
    c.rootfs = "relative/rootfs".into();
    assert!(generate(&c).is_err());
}
