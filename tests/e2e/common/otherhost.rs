//! Another "host" on the network: a network namespace the test creates (bind-mounted under
//! the daemon's temporary directory) joined to the host by a veth pair of the daemon's slot
//! (`skiffeNNh`, 10.(100+NN).250.1/24 on the host side, .2 inside, default route via .1).
//! What a user's second machine is: it reaches published ports through the host's address,
//! and sees connections from containers as coming from the host (masquerade). Removed on
//! drop, also when the test fails (the slot removes the link, the harness the mount).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::mpsc;
use std::time::Duration;

use super::netslot::NetSlot;

pub struct OtherHost {
    pub ns: PathBuf,
    /// The host's address on the link.
    pub host_addr: Ipv4Addr,
    /// The other host's own address.
    pub addr: Ipv4Addr,
    link: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl OtherHost {
    /// Creates the namespace at `dir/otherhost` and links it to the host.
    pub fn new(slot: &NetSlot, dir: &std::path::Path) -> OtherHost {
        let ns = dir.join("otherhost");
        std::fs::write(&ns, b"").expect("namespace file");
        let out = Command::new("unshare")
            .arg(format!("--net={}", ns.display()))
            .arg("true")
            .output()
            .expect("run unshare");
        assert!(out.status.success(), "unshare: {:?}", out);
        let octet = 100 + slot.n;
        let host_addr: Ipv4Addr = format!("10.{octet}.250.1").parse().unwrap();
        let addr: Ipv4Addr = format!("10.{octet}.250.2").parse().unwrap();
        let link = format!("{}h", slot.prefix());
        let peer = format!("{}p", slot.prefix());
        let h = OtherHost {
            ns,
            host_addr,
            addr,
            link: link.clone(),
        };
        ip(&["link", "add", &link, "type", "veth", "peer", "name", &peer]);
        ip(&["link", "set", &peer, "netns", h.ns.to_str().unwrap()]);
        ip(&["addr", "add", &format!("{host_addr}/24"), "dev", &link]);
        ip(&["link", "set", &link, "up"]);
        for args in [
            vec!["ip", "link", "set", "lo", "up"],
            vec!["ip", "addr", "add", &format!("{addr}/24"), "dev", &peer],
            vec!["ip", "link", "set", &peer, "up"],
            vec![
                "ip",
                "route",
                "add",
                "default",
                "via",
                &host_addr.to_string(),
            ],
        ] {
            let out = h.sh(&args);
            assert!(out.status.success(), "{args:?}: {out:?}");
        }
        h
    }

    /// Runs a command inside the other host.
    pub fn sh(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.ns.display())).args(args);
        super::run_with_timeout(cmd, Duration::from_secs(60))
    }

    /// `wget -qO- URL` from the other host (busybox's, with a 5-second limit): the body, or
    /// None when the connection fails.
    pub fn fetch(&self, url: &str) -> Option<String> {
        let out = self.sh(&["timeout", "5", "busybox", "wget", "-qO-", url]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// A TCP server on `port` inside the other host: answers each connection with `hello`
    /// and reports the peer's address.
    pub fn serve(&self, port: u16) -> mpsc::Receiver<Ipv4Addr> {
        let ns = std::fs::File::open(&self.ns).expect("open namespace");
        let (tx, rx) = mpsc::channel();
        let (ready_tx, ready) = mpsc::channel();
        std::thread::spawn(move || {
            nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                .expect("enter the other host");
            let listener = TcpListener::bind(("0.0.0.0", port)).expect("listen");
            ready_tx.send(()).unwrap();
            for conn in listener.incoming().flatten() {
                let mut conn = conn;
                if let Ok(std::net::SocketAddr::V4(peer)) = conn.peer_addr() {
                    let _ = tx.send(*peer.ip());
                }
                let _ = conn.write_all(b"hello\n");
                let mut sink = [0u8; 64];
                let _ = conn.set_read_timeout(Some(Duration::from_millis(200)));
                let _ = conn.read(&mut sink);
            }
        });
        ready
            .recv_timeout(Duration::from_secs(10))
            .expect("server up");
        rx
    }
}

impl Drop for OtherHost {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.link])
            .output();
        let _ = nix::mount::umount2(&self.ns, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_file(&self.ns);
    }
}
