#![allow(dead_code)] // each test target uses a different part of the harness

//! Network slots: every test engine gets host objects of its own — interface prefix
//! `skiffeNN`, default bridge `skiffeNN0` on 10.(100+NN).0.1/24, address pool
//! 10.(100+NN).0.0/16, nftables table `skiff-e2e-NN` — so engines of tests running in parallel
//! (in one process or several) never share a bridge, a subnet or a rule.
//!
//! A slot is claimed by creating `/tmp/skiff-e2e-netslots/NN` exclusively (under a lock on
//! the directory), holding the claimer's PID. A claim whose process is gone (a test run killed) is taken over after
//! removing what that run left: the slot's links and its table. Dropping the slot removes
//! them too (after the engine is gone), then frees the claim.

use std::io::Write;
use std::path::PathBuf;
use std::process::Command;

const SLOTS: u32 = 100;
const DIR: &str = "/tmp/skiff-e2e-netslots";

/// One claimed slot.
pub struct NetSlot {
    pub n: u32,
    claim: PathBuf,
}

fn alive(pid: i32) -> bool {
    pid > 0 && nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

impl NetSlot {
    /// Claims a free slot (panics when all 100 are taken by live processes).
    pub fn claim() -> NetSlot {
        std::fs::create_dir_all(DIR).expect("create the slot directory");
        // Claims (and take-overs of stale ones) happen one at a time across processes.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(PathBuf::from(DIR).join(".lock"))
            .expect("open the slot lock");
        let _lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .map_err(|(_, e)| e)
            .expect("lock the slot directory");
        let me = std::process::id();
        // Start somewhere different per process, so parallel test binaries rarely contend.
        let start = me % SLOTS;
        for i in 0..SLOTS {
            let n = (start + i) % SLOTS;
            let claim = PathBuf::from(DIR).join(format!("{n:02}"));
            for _attempt in 0..2 {
                match std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&claim)
                {
                    Ok(mut f) => {
                        let _ = write!(f, "{me}");
                        let slot = NetSlot { n, claim };
                        // Whatever a killed run left in this slot goes first.
                        slot.remove_host_objects();
                        return slot;
                    }
                    Err(_) => {
                        let holder = std::fs::read_to_string(&claim)
                            .ok()
                            .and_then(|s| s.trim().parse::<i32>().ok());
                        match holder {
                            Some(pid) if alive(pid) => break,
                            // Stale: its run is gone.
                            _ => {
                                let _ = std::fs::remove_file(&claim);
                            }
                        }
                    }
                }
            }
        }
        panic!("all {SLOTS} e2e network slots are taken by running tests");
    }

    /// Interface name prefix of this slot's engine.
    pub fn prefix(&self) -> String {
        format!("skiffe{:02}", self.n)
    }

    /// The nftables table of this slot's engine.
    pub fn table(&self) -> String {
        format!("skiff-e2e-{:02}", self.n)
    }

    fn second_octet(&self) -> u32 {
        100 + self.n
    }

    /// The default bridge's address (`--bip`).
    pub fn bip(&self) -> String {
        format!("10.{}.0.1/24", self.second_octet())
    }

    /// The engine's address pool (`--default-address-pool`).
    pub fn pool(&self) -> String {
        format!("base=10.{}.0.0/16,size=24", self.second_octet())
    }

    /// A /24 of this slot that the pool never hands out first: for `--subnet` in tests.
    pub fn subnet(&self, k: u32) -> String {
        format!("10.{}.{}.0/24", self.second_octet(), 200 + k)
    }

    /// The daemon options that put an engine on this slot.
    pub fn daemon_args(&self) -> Vec<String> {
        vec![
            "--network-prefix".into(),
            self.prefix(),
            "--nftables-table".into(),
            self.table(),
            "--bip".into(),
            self.bip(),
            "--default-address-pool".into(),
            self.pool(),
        ]
    }

    /// The engine configuration for this slot (engine tests through the Rust API).
    pub fn network_config(
        &self,
        root: &std::path::Path,
        state: &std::path::Path,
    ) -> skiff_engine::NetworkConfig {
        let mut cfg = skiff_engine::NetworkConfig::new(root, state);
        cfg.net.prefix = self.prefix();
        cfg.net.table = self.table();
        cfg.net.pools = vec![skiff_engine::skiff_net::AddressPool {
            base: format!("10.{}.0.0/16", self.second_octet())
                .parse()
                .unwrap(),
            size: 24,
        }];
        cfg.default_bridge = Some(skiff_engine::DefaultBridge {
            interface: format!("{}0", self.prefix()),
            bip: Some(self.bip().parse().unwrap()),
        });
        cfg
    }

    /// This slot's links (bridges and veths) in the host namespace.
    pub fn links(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["-o", "link", "show"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let prefix = self.prefix();
        out.lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with(&prefix))
            .collect()
    }

    /// Whether this slot's nftables table exists.
    pub fn has_table(&self) -> bool {
        Command::new("nft")
            .args(["list", "table", "inet", &self.table()])
            .output()
            .is_ok_and(|o| o.status.success())
    }

    /// The slot's table as `nft` lists it (empty when there is none).
    pub fn ruleset(&self) -> String {
        Command::new("nft")
            .args(["list", "table", "inet", &self.table()])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Removes the slot's links and nftables table.
    pub fn remove_host_objects(&self) {
        for link in self.links() {
            let _ = Command::new("ip").args(["link", "del", &link]).output();
        }
        let t = self.table();
        let mut nft = Command::new("nft")
            .args(["-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run nft");
        let _ = nft
            .stdin
            .take()
            .expect("piped")
            .write_all(format!("add table inet {t}\ndelete table inet {t}\n").as_bytes());
        let _ = nft.wait();
    }
}

impl Drop for NetSlot {
    fn drop(&mut self) {
        self.remove_host_objects();
        let _ = std::fs::remove_file(&self.claim);
    }
}
