//! What the node reports about the machine: capacity and allocatable resources (as kubelet
//! computes them with its defaults), addresses and `nodeInfo`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::NodeSystemInfo;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// kubelet's `--max-pods` default.
pub const MAX_PODS: u32 = 110;
/// kubelet's default hard eviction threshold `memory.available<100Mi`, subtracted from
/// allocatable memory.
const EVICTION_MEMORY: u64 = 100 * 1024 * 1024;
/// kubelet's default hard eviction threshold `nodefs.available<10%`.
const EVICTION_NODEFS_PERCENT: u64 = 10;

/// The machine's resources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resources {
    pub cpus: u32,
    pub memory_bytes: u64,
    pub ephemeral_storage_bytes: u64,
    pub pods: u32,
}

impl Resources {
    /// Reads the host: online CPUs, `MemTotal`, and the size of the filesystem holding
    /// `storage_dir` (the engine's root, where pod containers write).
    pub fn of_host(storage_dir: &Path) -> Resources {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
        let memory_bytes = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|m| meminfo_total(&m))
            .unwrap_or(0);
        let ephemeral_storage_bytes = nix::sys::statvfs::statvfs(storage_dir)
            .map(|s| s.blocks() * s.fragment_size())
            .unwrap_or(0);
        Resources {
            cpus,
            memory_bytes,
            ephemeral_storage_bytes,
            pods: MAX_PODS,
        }
    }

    /// `status.capacity`.
    pub fn capacity(&self) -> BTreeMap<String, Quantity> {
        self.quantities(self.memory_bytes, self.ephemeral_storage_bytes)
    }

    /// `status.allocatable`: capacity minus kube-reserved and system-reserved (none by
    /// default) minus the hard eviction thresholds, as kubelet computes it.
    pub fn allocatable(&self) -> BTreeMap<String, Quantity> {
        let memory = self.memory_bytes.saturating_sub(EVICTION_MEMORY);
        let storage = self.ephemeral_storage_bytes
            - self.ephemeral_storage_bytes * EVICTION_NODEFS_PERCENT / 100;
        self.quantities(memory, storage)
    }

    fn quantities(&self, memory: u64, storage: u64) -> BTreeMap<String, Quantity> {
        let q = |s: String| Quantity(s);
        BTreeMap::from([
            ("cpu".to_string(), q(self.cpus.to_string())),
            ("memory".to_string(), q(format!("{}Ki", memory / 1024))),
            ("ephemeral-storage".to_string(), q(storage.to_string())),
            ("pods".to_string(), q(self.pods.to_string())),
            ("hugepages-1Gi".to_string(), q("0".into())),
            ("hugepages-2Mi".to_string(), q("0".into())),
        ])
    }
}

fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `status.nodeInfo`: `kubelet_version` is the API server's (kubelet reports its own, which
/// matches its control plane's in a k3s-like single binary).
pub fn node_info(kubelet_version: &str, runtime_version: &str) -> NodeSystemInfo {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    };
    let machine_id = read("/etc/machine-id");
    let system_uuid = Some(read("/sys/class/dmi/id/product_uuid"))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| machine_id.clone());
    let uname = nix::sys::utsname::uname().ok();
    NodeSystemInfo {
        architecture: go_arch().to_string(),
        boot_id: read("/proc/sys/kernel/random/boot_id"),
        container_runtime_version: format!("skiff://{runtime_version}"),
        kernel_version: uname
            .as_ref()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        kube_proxy_version: String::new(),
        kubelet_version: kubelet_version.to_string(),
        machine_id,
        operating_system: "linux".into(),
        os_image: os_image(&read("/etc/os-release")),
        system_uuid,
        swap: None,
    }
}

/// Go's name of this machine's architecture (what `kubernetes.io/arch` says).
pub fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `PRETTY_NAME` of os-release, as kubelet reports it.
fn os_image(os_release: &str) -> String {
    os_release
        .lines()
        .find_map(|l| l.strip_prefix("PRETTY_NAME="))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_else(|| "Linux".into())
}

/// The address other machines reach this one at: the source address of the default route
/// (loopback when there is none).
pub fn default_ip() -> IpAddr {
    // Connecting a UDP socket sends nothing; it only asks the kernel for the source address.
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocatable_is_capacity_minus_eviction_thresholds() {
        let r = Resources {
            cpus: 2,
            memory_bytes: 4 * 1024 * 1024 * 1024,
            ephemeral_storage_bytes: 1000,
            pods: 110,
        };
        assert_eq!(r.capacity()["memory"].0, "4194304Ki");
        assert_eq!(r.allocatable()["memory"].0, "4091904Ki");
        assert_eq!(r.allocatable()["ephemeral-storage"].0, "900");
        assert_eq!(r.allocatable()["cpu"].0, "2");
        assert_eq!(r.allocatable()["pods"].0, "110");
    }

    #[test]
    fn host_facts_are_read() {
        let r = Resources::of_host(Path::new("/"));
        assert!(r.cpus >= 1 && r.memory_bytes > 0 && r.ephemeral_storage_bytes > 0);
        assert_eq!(
            meminfo_total("MemTotal:  2048 kB\nMemFree: 1 kB\n"),
            Some(2 * 1024 * 1024)
        );
        assert_eq!(
            os_image("NAME=x\nPRETTY_NAME=\"Debian GNU/Linux 13 (trixie)\"\n"),
            "Debian GNU/Linux 13 (trixie)"
        );
        let info = node_info("v1.33.0", "0.1.0");
        assert_eq!(info.container_runtime_version, "skiff://0.1.0");
        assert!(!info.kernel_version.is_empty());
    }
}
