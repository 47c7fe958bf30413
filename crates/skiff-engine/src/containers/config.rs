//! Pure translation of a create request: merging the image config into the container's
//! (Entrypoint, Cmd, Env, WorkingDir, …) the way Docker does, and parsing and validating the
//! HostConfig settings (limits, network, logging, signals; mounts are in `mounts.rs`).

use std::collections::HashMap;

use bollard_stubs::models::{
    ContainerConfig, ContainerCreateBody, HostConfig, HostConfigCgroupnsModeEnum,
};

use crate::error::{EngineError, Result};

/// Docker's lowest allowed memory limit.
const MIN_MEMORY: i64 = 6 * 1024 * 1024;
pub(crate) const DEFAULT_STOP_TIMEOUT: i64 = 10;

/// The container's own config after merging in the image's, with its argv.
#[derive(Debug)]
pub(crate) struct Merged {
    pub config: ContainerConfig,
    pub path: String,
    pub args: Vec<String>,
}

/// The container's `Env` the way dockerd merges it (moby's `merge`): the request's entries
/// as given, bare `KEY`s included (they unset `KEY` in the process, see
/// `skiff_runtime::spec::ContainerSpec::env`), then the image's for every name the request
/// does not mention.
pub(crate) fn merge_env(image: &[String], request: &[String]) -> Vec<String> {
    let key = |e: &str| e.split_once('=').map_or(e, |(k, _)| k).to_string();
    let named: std::collections::HashSet<String> = request.iter().map(|e| key(e)).collect();
    request
        .iter()
        .chain(image.iter().filter(|e| !named.contains(&key(e))))
        .cloned()
        .collect()
}

/// Merges the image's config into the request the way dockerd does.
pub(crate) fn merge(
    body: &ContainerCreateBody,
    image: Option<&oci_spec::image::Config>,
    id: &str,
) -> Result<Merged> {
    let img_vec =
        |f: fn(&oci_spec::image::Config) -> &Option<Vec<String>>| image.and_then(|c| f(c).clone());
    let user_cmd = body.cmd.clone().filter(|c| !c.is_empty());
    let (entrypoint, cmd) = match &body.entrypoint {
        Some(ep) if !ep.is_empty() => {
            let ep = if ep.len() == 1 && ep[0].is_empty() {
                Vec::new()
            } else {
                ep.clone()
            };
            (ep, user_cmd)
        }
        Some(_) => (Vec::new(), user_cmd.or_else(|| img_vec(|c| c.cmd()))),
        None => (
            img_vec(|c| c.entrypoint()).unwrap_or_default(),
            user_cmd.or_else(|| img_vec(|c| c.cmd())),
        ),
    };
    let argv: Vec<String> = entrypoint
        .iter()
        .chain(cmd.iter().flatten())
        .cloned()
        .collect();
    let Some((path, args)) = argv.split_first() else {
        return Err(EngineError::invalid("No command specified"));
    };

    let env = merge_env(
        &img_vec(|c| c.env()).unwrap_or_default(),
        body.env.as_deref().unwrap_or_default(),
    );
    let working_dir = match body.working_dir.as_deref().filter(|w| !w.is_empty()) {
        Some(w) => Some(w.to_string()),
        None => image
            .and_then(|c| c.working_dir().clone())
            .filter(|w| !w.is_empty()),
    };
    if let Some(w) = &working_dir {
        if !w.starts_with('/') {
            return Err(EngineError::invalid(format!(
                "the working directory '{w}' is invalid, it needs to be an absolute path"
            )));
        }
    }
    let mut labels: HashMap<String, String> =
        image.and_then(|c| c.labels().clone()).unwrap_or_default();
    labels.extend(body.labels.clone().unwrap_or_default());
    let union = |a: Option<Vec<String>>, b: &Option<Vec<String>>| {
        let mut out = a.unwrap_or_default();
        for x in b.iter().flatten() {
            if !out.contains(x) {
                out.push(x.clone());
            }
        }
        (!out.is_empty()).then_some(out)
    };
    let user = body
        .user
        .clone()
        .filter(|u| !u.is_empty())
        .or_else(|| image.and_then(|c| c.user().clone()));
    let config = ContainerConfig {
        hostname: Some(
            body.hostname
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| id[..12].to_string()),
        ),
        domainname: Some(body.domainname.clone().unwrap_or_default()),
        user: Some(user.unwrap_or_default()),
        attach_stdin: Some(body.attach_stdin.unwrap_or(false)),
        attach_stdout: Some(body.attach_stdout.unwrap_or(false)),
        attach_stderr: Some(body.attach_stderr.unwrap_or(false)),
        exposed_ports: union(img_vec(|c| c.exposed_ports()), &body.exposed_ports),
        tty: Some(body.tty.unwrap_or(false)),
        open_stdin: Some(body.open_stdin.unwrap_or(false)),
        stdin_once: Some(body.stdin_once.unwrap_or(false)),
        env: Some(env),
        cmd,
        healthcheck: body.healthcheck.clone(),
        args_escaped: body.args_escaped,
        image: body.image.clone(),
        volumes: union(img_vec(|c| c.volumes()), &body.volumes),
        working_dir: Some(working_dir.unwrap_or_default()),
        entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
        network_disabled: body.network_disabled,
        on_build: None,
        labels: Some(labels),
        stop_signal: body
            .stop_signal
            .clone()
            .or_else(|| image.and_then(|c| c.stop_signal().clone())),
        stop_timeout: body.stop_timeout,
        shell: body.shell.clone(),
    };
    Ok(Merged {
        config,
        path: path.clone(),
        args: args.to_vec(),
    })
}

/// Checks the resource settings with Docker's messages.
pub(crate) fn validate_resources(hc: &HostConfig) -> Result<()> {
    let memory = hc.memory.unwrap_or(0);
    let swap = hc.memory_swap.unwrap_or(0);
    if memory < 0 || (memory > 0 && memory < MIN_MEMORY) {
        return Err(EngineError::invalid("Minimum memory limit allowed is 6MB"));
    }
    if memory > 0 && swap > 0 && swap < memory {
        return Err(EngineError::invalid(
            "Minimum memoryswap limit should be larger than memory limit, see usage",
        ));
    }
    if memory == 0 && swap > 0 {
        return Err(EngineError::invalid(
            "You should always set the Memory limit when using Memoryswap limit, see usage",
        ));
    }
    let nano = hc.nano_cpus.unwrap_or(0);
    if nano != 0 && hc.cpu_quota.unwrap_or(0) > 0 {
        return Err(EngineError::invalid(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    let ncpu = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if nano < 0 || nano > ncpu * 1_000_000_000 {
        return Err(EngineError::invalid(format!(
            "Range of CPUs is from 0.01 to {ncpu}.00, as there are only {ncpu} CPUs available"
        )));
    }
    if hc.cpu_shares.unwrap_or(0) < 0 {
        return Err(EngineError::invalid(
            "invalid CPU shares: must not be negative",
        ));
    }
    // moby's verifyPlatformContainerResources.
    let period = hc.cpu_period.unwrap_or(0);
    if period != 0 && !(1000..=1_000_000).contains(&period) {
        return Err(EngineError::invalid(
            "CPU cfs period can not be less than 1ms (i.e. 1000) or larger than 1 second (i.e. 1000000)",
        ));
    }
    let quota = hc.cpu_quota.unwrap_or(0);
    if quota > 0 && quota < 1000 {
        return Err(EngineError::invalid(
            "CPU cfs quota can not be less than 1ms (i.e. 1000)",
        ));
    }
    if hc.shm_size.unwrap_or(0) < 0 {
        return Err(EngineError::invalid("SHM size can not be less than 0"));
    }
    for u in ulimits(hc) {
        u.to_oci()?;
    }
    Ok(())
}

/// `HostConfig.Devices` (`--device`) as the runtime spec takes them.
pub(crate) fn devices(hc: &HostConfig) -> Vec<skiff_runtime::spec::DeviceMapping> {
    hc.devices
        .iter()
        .flatten()
        .map(|d| skiff_runtime::spec::DeviceMapping {
            host: d.path_on_host.clone().unwrap_or_default().into(),
            container: d.path_in_container.clone().unwrap_or_default(),
            permissions: d.cgroup_permissions.clone().unwrap_or_default(),
        })
        .collect()
}

/// `HostConfig.Ulimits` as the runtime spec takes them: -1 is unlimited (`memlock=-1:-1`),
/// as Docker passes it on (RLIM_INFINITY); a missing limit is 0.
pub(crate) fn ulimits(hc: &HostConfig) -> Vec<skiff_runtime::spec::Ulimit> {
    let limit = |v: Option<i64>| match v {
        Some(v) if v < 0 => u64::MAX,
        Some(v) => v as u64,
        None => 0,
    };
    hc.ulimits
        .iter()
        .flatten()
        .map(|u| skiff_runtime::spec::Ulimit {
            name: u.name.clone().unwrap_or_default(),
            soft: limit(u.soft),
            hard: limit(u.hard),
        })
        .collect()
}

/// Docker's defaults for what the request leaves open, applied at create so that inspect
/// shows what the container runs with (moby's `adaptContainerSettings` and
/// `verifyPlatformContainerResources`): the cgroup namespace mode — `private` on cgroup v2
/// hosts, `host` on v1 and hybrid ones (and for privileged containers there) — and a memory
/// swappiness of -1 meaning unset. Returns warnings for the client.
pub(crate) fn docker_defaults(hc: &mut HostConfig, unified: bool) -> Result<Vec<String>> {
    let weighted = hc.blkio_weight.is_some_and(|w| w > 0);
    let mut warnings = blkio_weight(
        hc,
        weighted && skiff_runtime::cgroups::blkio_weight_supported(),
    )?;
    if matches!(
        hc.cgroupns_mode,
        None | Some(HostConfigCgroupnsModeEnum::EMPTY)
    ) {
        let private = unified;
        hc.cgroupns_mode = Some(if private {
            HostConfigCgroupnsModeEnum::PRIVATE
        } else {
            HostConfigCgroupnsModeEnum::HOST
        });
    }
    if hc.memory_swappiness == Some(-1) {
        hc.memory_swappiness = None;
    }
    if let Some(swappiness) = hc.memory_swappiness {
        if !(0..=100).contains(&swappiness) {
            return Err(EngineError::invalid(format!(
                "Invalid value: {swappiness}, valid memory swappiness range is 0-100"
            )));
        }
        if unified {
            warnings.push(
                "Your kernel does not support memory swappiness capabilities or the cgroup is not mounted. Memory swappiness discarded."
                    .to_string(),
            );
            hc.memory_swappiness = None;
        }
    }
    Ok(warnings)
}

/// `--blkio-weight` as dockerd takes it: discarded with a warning where the host has no
/// proportional block-I/O weight (then any value goes), else 10–1000.
pub(crate) fn blkio_weight(hc: &mut HostConfig, supported: bool) -> Result<Vec<String>> {
    let mut warnings = Vec::new();
    if hc.blkio_weight.is_some_and(|w| w > 0) && !supported {
        warnings.push(
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. Weight discarded."
                .to_string(),
        );
        hc.blkio_weight = None;
    }
    if hc
        .blkio_weight
        .is_some_and(|w| w > 0 && !(10..=1000).contains(&w))
    {
        return Err(EngineError::invalid(
            "Range of blkio weight is from 10 to 1000",
        ));
    }
    Ok(warnings)
}

/// Whether the container shares the host's cgroup namespace. Records written before the mode
/// was set at create ran with a private one.
pub(crate) fn host_cgroupns(hc: &HostConfig) -> bool {
    hc.cgroupns_mode == Some(HostConfigCgroupnsModeEnum::HOST)
}

/// The container's `linux.cgroupsPath`: `/<parent>/<id>`, the parent being the container's
/// `--cgroup-parent` or else the daemon's.
pub(crate) fn cgroups_path(hc: &HostConfig, daemon_parent: &str, id: &str) -> Result<String> {
    let parent = match hc.cgroup_parent.as_deref().map(|p| p.trim_matches('/')) {
        Some(p) if !p.is_empty() => p,
        _ => daemon_parent.trim_matches('/'),
    };
    if parent
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Err(EngineError::invalid(format!(
            "invalid cgroup parent {parent:?}: a path of names without \".\" or \"..\""
        )));
    }
    Ok(format!("/{parent}/{id}"))
}

/// The container's network, from `HostConfig.NetworkMode`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Network {
    /// A namespace of its own with loopback only (`none`).
    None,
    /// A namespace of its own on networks: `bridge` (also `default` and empty) or a
    /// user-defined network named here.
    Named(String),
    Host,
    /// `container:<name|id>`.
    Container(String),
    /// `ns:<path>`: join the network namespace bind-mounted at `path` (podman's syntax; a
    /// pod's sandbox, set up by its owner, who also gives the container its /etc files).
    Path(std::path::PathBuf),
}

pub(crate) fn network(mode: Option<&str>) -> Result<Network> {
    match mode.unwrap_or("") {
        "" | "default" | "bridge" => Ok(Network::Named("bridge".into())),
        "none" => Ok(Network::None),
        "host" => Ok(Network::Host),
        m => {
            if let Some(path) = namespace_path(m)? {
                return Ok(Network::Path(path));
            }
            match m.strip_prefix("container:") {
                Some(c) if !c.is_empty() => Ok(Network::Container(c.to_string())),
                Some(_) => Err(EngineError::invalid(format!(
                    "invalid network mode: {m}: a container name or id is needed"
                ))),
                None => Ok(Network::Named(m.to_string())),
            }
        }
    }
}

/// `ns:<absolute path>` (podman's syntax for `--network`, `--ipc` and `--uts`): the namespace
/// file to join. None for every other mode.
pub(crate) fn namespace_path(mode: &str) -> Result<Option<std::path::PathBuf>> {
    let Some(path) = mode.strip_prefix("ns:") else {
        return Ok(None);
    };
    let path = std::path::Path::new(path);
    if !path.is_absolute() {
        return Err(EngineError::invalid(format!(
            "invalid namespace mode {mode:?}: ns: takes an absolute path"
        )));
    }
    Ok(Some(path.to_path_buf()))
}

/// Validates `IpcMode` and `UtsMode` values skiff does more with than Docker's `host`.
pub(crate) fn validate_namespace_modes(hc: &HostConfig) -> Result<()> {
    for mode in [&hc.ipc_mode, &hc.uts_mode].into_iter().flatten() {
        namespace_path(mode)?;
    }
    Ok(())
}

/// Parses a signal given as `SIGTERM`, `TERM`, `term` or `15`.
pub(crate) fn parse_signal(s: &str) -> Result<i32> {
    let bad = || EngineError::invalid(format!("Invalid signal: {s}"));
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| bad())
}

/// Logging settings from `HostConfig.LogConfig`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Logging {
    pub enabled: bool,
    pub max_size: Option<u64>,
    pub max_files: u32,
}

pub(crate) fn logging(hc: &HostConfig) -> Result<Logging> {
    let (typ, opts) = match &hc.log_config {
        Some(l) => (
            l.typ.clone().unwrap_or_default(),
            l.config.clone().unwrap_or_default(),
        ),
        None => (String::new(), HashMap::new()),
    };
    let enabled = match typ.as_str() {
        "" | "json-file" | "local" => true,
        "none" => false,
        other => {
            // moby's ValidateLogOpts at create: an unknown driver is looked up as a plugin.
            return Err(EngineError::invalid(format!(
                "error looking up logging plugin {other}: plugin \"{other}\" not found"
            )));
        }
    };
    let mut out = Logging {
        enabled,
        max_size: None,
        max_files: 1,
    };
    for (k, v) in &opts {
        match k.as_str() {
            "max-size" => {
                // Docker's json-file driver reads it with `FromHumanSize`: decimal units.
                let size = skiff_core::units::from_human_size(v)
                    .map_err(|e| EngineError::invalid(e.to_string()))?;
                out.max_size = u64::try_from(size).ok().filter(|s| *s > 0);
            }
            "max-file" => {
                let n: u32 = v.parse().map_err(|_| {
                    EngineError::invalid(format!("invalid value for max-file: {v}"))
                })?;
                if n < 1 {
                    return Err(EngineError::invalid("max-file cannot be less than 1"));
                }
                out.max_files = n;
            }
            "mode" | "max-buffer-size" | "compress" | "labels" | "env" | "tag" | "labels-regex"
            | "env-regex" => {}
            other => {
                return Err(EngineError::invalid(format!(
                    "unknown log opt '{other}' for json-file log driver"
                )))
            }
        }
    }
    // Like Docker's json-file driver: without max-size the log never rotates, so max-file
    // is accepted and has no effect.
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn cgroups_path_is_under_the_container_or_daemon_parent() {
        let mut hc = HostConfig::default();
        assert_eq!(cgroups_path(&hc, "skiff", "abc").unwrap(), "/skiff/abc");
        hc.cgroup_parent = Some("/batch/jobs/".into());
        assert_eq!(
            cgroups_path(&hc, "skiff", "abc").unwrap(),
            "/batch/jobs/abc"
        );
        for bad in ["../..", "a/../b", "a//b", "./a"] {
            hc.cgroup_parent = Some(bad.into());
            assert!(cgroups_path(&hc, "skiff", "abc").is_err(), "{bad}");
        }
    }

    fn image(ep: Option<&[&str]>, cmd: Option<&[&str]>, env: &[&str]) -> oci_spec::image::Config {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let mut c = oci_spec::image::Config::default();
        c.set_entrypoint(ep.map(v))
            .set_cmd(cmd.map(v))
            .set_env(Some(v(env)))
            .set_working_dir(Some("/srv".into()));
        c
    }

    fn body(ep: Option<&[&str]>, cmd: Option<&[&str]>) -> ContainerCreateBody {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ContainerCreateBody {
            entrypoint: ep.map(v),
            cmd: cmd.map(v),
            ..Default::default()
        }
    }

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn entrypoint_and_cmd_merge_like_docker() {
        let img = image(Some(&["/init"]), Some(&["serve"]), &[]);
        let m = merge(&body(None, None), Some(&img), ID).unwrap();
        assert_eq!(
            (m.path.as_str(), m.args.clone()),
            ("/init", vec!["serve".to_string()])
        );
        let m = merge(&body(None, Some(&["run"])), Some(&img), ID).unwrap();
        assert_eq!(m.args, vec!["run"]);
        // A new entrypoint drops the image's Cmd.
        let m = merge(&body(Some(&["sh"]), None), Some(&img), ID).unwrap();
        assert_eq!((m.path.as_str(), m.args.len()), ("sh", 0));
        // --entrypoint "" clears it; then the command must come from somewhere.
        let m = merge(&body(Some(&[""]), Some(&["echo", "hi"])), Some(&img), ID).unwrap();
        assert_eq!(m.path, "echo");
        let err = merge(&body(Some(&[""]), None), Some(&img), ID).unwrap_err();
        assert_eq!(err.to_string(), "No command specified");
        assert_eq!(m.config.working_dir.as_deref(), Some("/srv"));
        assert_eq!(m.config.hostname.as_deref(), Some("0123456789ab"));
    }

    #[test]
    fn env_keeps_the_requests_entries_first_bare_names_included() {
        let image = vec![
            "PATH=/bin".to_string(),
            "A=1".to_string(),
            "B=2".to_string(),
        ];
        let got = merge_env(
            &image,
            &[
                "A=9".to_string(),
                "B".to_string(),
                "C=3".to_string(),
                "Foo".to_string(),
            ],
        );
        assert_eq!(got, vec!["A=9", "B", "C=3", "Foo", "PATH=/bin"]);
        assert_eq!(merge_env(&image, &[]), image);
    }

    #[test]
    fn relative_workdir_is_refused() {
        let mut b = body(None, Some(&["true"]));
        b.working_dir = Some("rel".into());
        assert!(merge(&b, None, ID)
            .unwrap_err()
            .to_string()
            .contains("needs to be an absolute path"));
    }

    #[test]
    fn resources_are_checked_with_dockers_words() {
        let hc = |m: i64, s: i64| HostConfig {
            memory: Some(m),
            memory_swap: Some(s),
            ..Default::default()
        };
        assert_eq!(
            validate_resources(&hc(1 << 20, 0)).unwrap_err().to_string(),
            "Minimum memory limit allowed is 6MB"
        );
        assert!(validate_resources(&hc(-5, 0)).is_err());
        assert!(validate_resources(&hc(64 << 20, 32 << 20)).is_err());
        assert!(validate_resources(&hc(0, 32 << 20)).is_err());
        assert!(validate_resources(&hc(64 << 20, -1)).is_ok());
        let cpus = HostConfig {
            nano_cpus: Some(1_000_000_000_000),
            ..Default::default()
        };
        assert!(validate_resources(&cpus)
            .unwrap_err()
            .to_string()
            .starts_with("Range of CPUs is from 0.01"));
    }

    #[test]
    fn signals_sizes_and_networks() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("10").unwrap(), 10);
        assert!(parse_signal("SIGNOPE").is_err());
        assert_eq!(
            network(Some("bridge")).unwrap(),
            Network::Named("bridge".into())
        );
        assert_eq!(network(None).unwrap(), Network::Named("bridge".into()));
        assert_eq!(network(Some("none")).unwrap(), Network::None);
        assert_eq!(network(Some("host")).unwrap(), Network::Host);
        assert_eq!(
            network(Some("container:web")).unwrap(),
            Network::Container("web".into())
        );
        assert_eq!(
            network(Some("mynet")).unwrap(),
            Network::Named("mynet".into())
        );
        assert!(network(Some("container:")).is_err());
        assert_eq!(
            network(Some("ns:/run/netns/p")).unwrap(),
            Network::Path("/run/netns/p".into())
        );
        assert!(network(Some("ns:relative")).is_err());
    }

    #[test]
    fn cgroupns_and_swappiness_get_dockers_defaults() {
        for (unified, want) in [
            (true, HostConfigCgroupnsModeEnum::PRIVATE),
            (false, HostConfigCgroupnsModeEnum::HOST),
        ] {
            let mut hc = HostConfig {
                cgroupns_mode: Some(HostConfigCgroupnsModeEnum::EMPTY),
                memory_swappiness: Some(-1),
                ..Default::default()
            };
            assert!(docker_defaults(&mut hc, unified).unwrap().is_empty());
            assert_eq!(hc.cgroupns_mode, Some(want));
            assert_eq!(hc.memory_swappiness, None);
        }
        let mut hc = HostConfig {
            cgroupns_mode: Some(HostConfigCgroupnsModeEnum::PRIVATE),
            memory_swappiness: Some(10),
            ..Default::default()
        };
        assert!(docker_defaults(&mut hc, false).unwrap().is_empty());
        assert_eq!(
            (hc.cgroupns_mode, hc.memory_swappiness),
            (Some(HostConfigCgroupnsModeEnum::PRIVATE), Some(10))
        );
        assert!(!host_cgroupns(&hc));
        hc.memory_swappiness = Some(101);
        assert_eq!(
            docker_defaults(&mut hc, false).unwrap_err().to_string(),
            "Invalid value: 101, valid memory swappiness range is 0-100"
        );
        hc.memory_swappiness = Some(10);
        assert_eq!(docker_defaults(&mut hc, true).unwrap().len(), 1);
        assert_eq!(hc.memory_swappiness, None);
    }

    #[test]
    fn log_options() {
        let hc = |opts: &[(&str, &str)]| HostConfig {
            log_config: Some(bollard_stubs::models::HostConfigLogConfig {
                typ: Some("json-file".into()),
                config: Some(
                    opts.iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
            }),
            ..Default::default()
        };
        let l = logging(&hc(&[("max-size", "1k"), ("max-file", "3")])).unwrap();
        // Decimal, as Docker's json-file driver reads it.
        assert_eq!((l.max_size, l.max_files, l.enabled), (Some(1000), 3, true));
        // Docker accepts max-file without max-size (and never rotates).
        let l = logging(&hc(&[("max-file", "3")])).unwrap();
        assert_eq!((l.max_size, l.max_files), (None, 3));
        assert!(logging(&hc(&[("bogus", "1")])).is_err());
    }
}
