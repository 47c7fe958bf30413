//! Helpers the tests of every skiff crate share. Std only; nothing in the product calls them.

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// A TCP port free on 127.0.0.1 now, for a server a test starts next (etcd, a registry, the
/// API server). Picked from 20000–32767, below Linux's ephemeral range (32768–60999): a port
/// the kernel hands to an outgoing connection of a parallel test can never be one this
/// returned, which `127.0.0.1:0` (an ephemeral port, released again) could not promise.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    const LOW: u32 = 20000;
    const SPAN: u32 = 12768;
    // Parallel test processes start from different places and walk with a stride prime to
    // the span, so they rarely try the same ports.
    let seed = std::process::id().wrapping_mul(7919)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = (LOW + seed.wrapping_add(n.wrapping_mul(4099)) % SPAN) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn free_ports_are_below_the_ephemeral_range_and_bindable() {
        for _ in 0..20 {
            let p = super::free_port();
            assert!((20000..32768).contains(&p), "{p}");
            std::net::TcpListener::bind(("127.0.0.1", p)).unwrap();
        }
    }
}
