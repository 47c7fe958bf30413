//! Pod sandboxes: what a pod's containers share. A network namespace on the node's pod
//! network (skiff-net, one address from the node's pod CIDR) or the host's, an IPC and a UTS
//! namespace (hostname = the pod's), a `/dev/shm`, and the pod's `/etc/hosts` and
//! `resolv.conf` as kubelet writes them; its containers' `hostPort`s published on the node.
//! No process holds them: the namespaces are bind-mounted files in the pod's directory, which
//! every container joins through its OCI spec.
//!
//! A sandbox is recorded in `<pods dir>/<uid>/sandbox.json` once complete, so an agent that
//! restarts finds it again; a half-made one is removed and made again.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Pod;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use serde::{Deserialize, Serialize};
use skiff_net::{AttachRequest, Net, NetworkSpec, PortMapping, Protocol};

use crate::error::{Context, Result};

/// The node's pod network in skiff-net.
pub const POD_NETWORK: &str = "pods";

/// How the node's pod network is set up.
#[derive(Debug, Clone)]
pub struct PodNetworkConfig {
    /// Host bridge of the pod network.
    pub bridge: String,
    /// The cluster CIDR: pods reach it without masquerade.
    pub cluster_cidr: Ipv4Net,
    /// Cluster DNS (k3s: 10.43.0.10).
    pub cluster_dns: Ipv4Addr,
    pub cluster_domain: String,
    /// The host's resolver configuration (pods with `dnsPolicy: Default`, host-network pods).
    pub host_resolv_conf: PathBuf,
}

/// A pod's sandbox, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodSandbox {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub dir: PathBuf,
    /// The pod's address; None on the host's network.
    pub ip: Option<Ipv4Addr>,
    /// The network namespace; None on the host's network.
    pub netns: Option<PathBuf>,
    pub host_network: bool,
}

impl PodSandbox {
    pub fn ipc(&self) -> PathBuf {
        self.dir.join("ns-ipc")
    }
    /// None on the host's network (such pods have the host's name).
    pub fn uts(&self) -> Option<PathBuf> {
        (!self.host_network).then(|| self.dir.join("ns-uts"))
    }
    pub fn shm(&self) -> PathBuf {
        self.dir.join("shm")
    }
    pub fn hosts(&self) -> PathBuf {
        self.dir.join("etc-hosts")
    }
    pub fn resolv_conf(&self) -> PathBuf {
        self.dir.join("resolv.conf")
    }
    /// Where a container attempt's termination message is written.
    pub fn termination_log(&self, container: &str, attempt: u32) -> PathBuf {
        self.dir
            .join("containers")
            .join(container)
            .join(format!("{attempt}-termination-log"))
    }
}

/// The node's sandboxes.
pub struct Sandboxes {
    pub net: Net,
    pub dir: PathBuf,
    pub config: PodNetworkConfig,
}

const RECORD: &str = "sandbox.json";

impl Sandboxes {
    /// Creates (or keeps) the pod network on `pod_cidr` and routes to other nodes' pods.
    pub async fn setup_network(&self, pod_cidr: Ipv4Net) -> Result<()> {
        let spec = NetworkSpec {
            name: POD_NETWORK.into(),
            bridge: Some(self.config.bridge.clone()),
            subnet: Some(pod_cidr.to_string()),
            no_masquerade_to: vec![self.config.cluster_cidr],
            accept_routed: true,
            ..Default::default()
        };
        match self.net.network(POD_NETWORK).await {
            Ok(n) if n.subnet == pod_cidr && n.bridge == self.config.bridge => Ok(()),
            Ok(_) => {
                // The node's CIDR changed (a new registration): pods of the old one are gone.
                self.net.remove_network(POD_NETWORK).await?;
                self.net.create_network(spec).await?;
                Ok(())
            }
            Err(_) => {
                self.net.create_network(spec).await?;
                Ok(())
            }
        }
    }

    fn pod_dir(&self, uid: &str) -> PathBuf {
        self.dir.join(uid)
    }

    /// The recorded sandbox of pod `uid`, if complete.
    pub fn get(&self, uid: &str) -> Option<PodSandbox> {
        let bytes = std::fs::read(self.pod_dir(uid).join(RECORD)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Pod uids with a directory here (complete or not).
    pub fn uids(&self) -> Vec<String> {
        std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .collect()
    }

    /// The pod's sandbox: the recorded one, or a new one.
    pub async fn ensure(&self, pod: &Pod) -> Result<PodSandbox> {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(sb) = self.get(&uid) {
            return Ok(sb);
        }
        // Whatever a crash left half-made goes first.
        self.remove(&uid).await?;
        let made = self.create(pod, &uid).await;
        if made.is_err() {
            let _ = self.remove(&uid).await;
        }
        made
    }

    async fn create(&self, pod: &Pod, uid: &str) -> Result<PodSandbox> {
        let spec = pod.spec.clone().unwrap_or_default();
        let host_network = spec.host_network.unwrap_or(false);
        let dir = self.pod_dir(uid);
        std::fs::create_dir_all(&dir).ctx(|| format!("create {}", dir.display()))?;
        let mut sb = PodSandbox {
            uid: uid.to_string(),
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            dir: dir.clone(),
            ip: None,
            netns: None,
            host_network,
        };
        let hostname = pod_hostname(pod);
        let (ipc, uts) = (sb.ipc(), sb.uts());
        tokio::task::spawn_blocking(move || namespaces(&ipc, uts.as_deref(), &hostname))
            .await
            .map_err(std::io::Error::other)
            .ctx(|| "create the pod's namespaces".into())??;
        let shm = sb.shm();
        std::fs::create_dir_all(&shm).ctx(|| format!("create {}", shm.display()))?;
        mount(
            Some("shm"),
            &shm,
            Some("tmpfs"),
            MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            Some("mode=1777,size=65536k"),
        )
        .ctx(|| format!("mount the pod's /dev/shm on {}", shm.display()))?;
        if !host_network {
            let net_sb = self.net.create_sandbox(uid, Default::default()).await?;
            let ep = self
                .net
                .attach(AttachRequest {
                    sandbox: uid.to_string(),
                    network: POD_NETWORK.into(),
                    ports: host_ports(pod),
                    ..Default::default()
                })
                .await?;
            sb.ip = Some(ep.address.addr());
            sb.netns = Some(net_sb.path);
        }
        let write = |path: PathBuf, text: String| {
            std::fs::write(&path, text).ctx(|| format!("write {}", path.display()))
        };
        let host_hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        write(sb.hosts(), crate::etc::hosts(pod, sb.ip, &host_hosts))?;
        let host_resolv =
            std::fs::read_to_string(&self.config.host_resolv_conf).unwrap_or_default();
        write(
            sb.resolv_conf(),
            crate::etc::resolv_conf(pod, &self.config, &host_resolv),
        )?;
        let record = serde_json::to_vec_pretty(&sb).expect("sandbox serialises");
        let tmp = dir.join(".sandbox.json.tmp");
        write(tmp.clone(), String::from_utf8_lossy(&record).into_owned())?;
        std::fs::rename(&tmp, dir.join(RECORD)).ctx(|| "record the sandbox".into())?;
        tracing::info!(pod = %sb.name, namespace = %sb.namespace, ip = ?sb.ip, "pod sandbox created");
        Ok(sb)
    }

    /// Removes pod `uid`'s sandbox: its network (address freed), namespaces, `/dev/shm` and
    /// directory. Missing parts are fine.
    pub async fn remove(&self, uid: &str) -> Result<()> {
        self.net.remove_sandbox(uid).await?;
        let dir = self.pod_dir(uid);
        // Memory-backed emptyDir and secret volumes are tmpfs mounts in the pod's directory.
        let kinds = std::fs::read_dir(dir.join("volumes"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|k| k.path());
        let volumes: Vec<PathBuf> = kinds
            .flat_map(|k| std::fs::read_dir(k).into_iter().flatten().flatten())
            .map(|v| v.path())
            .collect();
        for v in volumes {
            match umount2(&v, MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(e).ctx(|| format!("unmount {}", v.display())),
            }
        }
        for m in ["ns-ipc", "ns-uts", "shm"] {
            match umount2(&dir.join(m), MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
                Err(e) => return Err(e).ctx(|| format!("unmount {}", dir.join(m).display())),
            }
        }
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).ctx(|| format!("remove {}", dir.display())),
        }
    }
}

/// The `hostPort`s of the pod's containers as skiff-net port mappings (kubelet's hostport
/// manager; the CNI `portmap` plugin): published on the node's addresses (or `hostIP`) to the
/// pod's address. SCTP ports are not supported and left out.
fn host_ports(pod: &Pod) -> Vec<PortMapping> {
    let spec = pod.spec.as_ref();
    spec.into_iter()
        .flat_map(|s| {
            s.containers
                .iter()
                .chain(s.init_containers.iter().flatten())
        })
        .flat_map(|c| c.ports.iter().flatten())
        .filter_map(|p| {
            let host_port = u16::try_from(p.host_port?).ok().filter(|h| *h > 0)?;
            let protocol = match p.protocol.as_deref().unwrap_or("TCP") {
                "TCP" => Protocol::Tcp,
                "UDP" => Protocol::Udp,
                _ => return None,
            };
            Some(PortMapping {
                host_ip: p.host_ip.as_deref().and_then(|ip| ip.parse().ok()),
                host_port,
                host_port_end: host_port,
                container_port: u16::try_from(p.container_port).ok()?,
                protocol,
            })
        })
        .collect()
}

/// The pod's hostname: `spec.hostname`, else its name (truncated to 63 characters).
pub fn pod_hostname(pod: &Pod) -> String {
    let spec = pod.spec.as_ref();
    let name = spec
        .and_then(|s| s.hostname.clone())
        .filter(|h| !h.is_empty())
        .or_else(|| pod.metadata.name.clone())
        .unwrap_or_default();
    name.chars()
        .take(63)
        .collect::<String>()
        .trim_end_matches(['-', '.'])
        .to_string()
}

/// New IPC and (unless `uts` is None) UTS namespaces bind-mounted at `ipc` and `uts`, the UTS
/// one named `hostname`. Made on a thread of their own, which ends with them (unshare only
/// changes the calling thread's namespaces).
fn namespaces(ipc: &Path, uts: Option<&Path>, hostname: &str) -> Result<()> {
    for p in [Some(ipc), uts].into_iter().flatten() {
        std::fs::File::create(p).ctx(|| format!("create {}", p.display()))?;
    }
    std::thread::scope(|s| {
        s.spawn(|| -> Result<()> {
            let mut flags = CloneFlags::CLONE_NEWIPC;
            if uts.is_some() {
                flags |= CloneFlags::CLONE_NEWUTS;
            }
            unshare(flags).ctx(|| "unshare the pod's IPC and UTS namespaces".into())?;
            mount(
                Some("/proc/thread-self/ns/ipc"),
                ipc,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .ctx(|| format!("bind-mount the IPC namespace on {}", ipc.display()))?;
            if let Some(uts) = uts {
                nix::unistd::sethostname(hostname).ctx(|| format!("set hostname {hostname}"))?;
                mount(
                    Some("/proc/thread-self/ns/uts"),
                    uts,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .ctx(|| format!("bind-mount the UTS namespace on {}", uts.display()))?;
            }
            Ok(())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}
