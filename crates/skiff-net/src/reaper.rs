//! Deleting a veth makes the kernel wait for RCU grace periods in the context of the thread
//! that sent the request (~25 ms on a loaded 2-CPU machine): on the daemon's netlink socket
//! that would stall a tokio worker and every netlink request queued behind it. Deletions go to
//! one thread of their own, with its own socket in the host namespace, and report back.

use std::sync::mpsc;

use tokio::sync::oneshot;

use crate::error::{NetError, Result};
use crate::ipam::Ipam;
use crate::link::Netlink;
use crate::netns::NetnsRef;

struct Job {
    link: String,
    /// Address to free once the interface is gone: (network, ip, owner).
    release: Option<(String, std::net::Ipv4Addr, String)>,
    done: Option<oneshot::Sender<Result<()>>>,
}

pub(crate) struct Reaper {
    tx: std::sync::Mutex<mpsc::Sender<Job>>,
}

impl Reaper {
    pub(crate) fn start(host: NetnsRef, ipam: Ipam) -> Reaper {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("skiff-net-reaper".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .build()
                    .expect("reaper runtime");
                let nl = rt.block_on(async { Netlink::open(&host) });
                while let Ok(job) = rx.recv() {
                    let result = match &nl {
                        Ok(nl) => rt.block_on(nl.delete_link(&job.link)),
                        Err(e) => Err(NetError::Nft(format!("reaper has no netlink: {e}"))),
                    };
                    let result = result.and_then(|()| match &job.release {
                        Some((net, ip, owner)) => ipam.release(net, *ip, owner),
                        None => Ok(()),
                    });
                    if let Err(e) = &result {
                        tracing::warn!(link = %job.link, error = %e, "deleting interface");
                    }
                    if let Some(done) = job.done {
                        let _ = done.send(result);
                    }
                }
            })
            .expect("start reaper thread");
        Reaper {
            tx: std::sync::Mutex::new(tx),
        }
    }

    /// Deletes `link`, then frees `release`; the receiver tells when it is done.
    pub(crate) fn delete(
        &self,
        link: &str,
        release: Option<(String, std::net::Ipv4Addr, String)>,
    ) -> oneshot::Receiver<Result<()>> {
        let (done, rx) = oneshot::channel();
        let job = Job {
            link: link.to_string(),
            release,
            done: Some(done),
        };
        if let Err(mpsc::SendError(job)) = self.tx.lock().expect("reaper lock").send(job) {
            if let Some(done) = job.done {
                let _ = done.send(Err(NetError::Nft("reaper thread is gone".into())));
            }
        }
        rx
    }
}
