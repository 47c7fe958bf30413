//! How many pods make their sandbox and start their containers at once. Every pod has its own
//! sync (a pod never waits for another's hook, pull or stop), but the CPU-bound part of a
//! start — namespaces, veth, rootfs, bundle, shim, runtime — goes through a small FIFO pool:
//! with a hundred pods created at once, all of them progressing together made every one of
//! them Running only at the end, while in turn the first ones are Running after their own
//! start. Waits that cost no CPU (image pulls, postStart hooks) give their place up.

use std::sync::Mutex;

use tokio::sync::{Semaphore, SemaphorePermit};

/// Pods starting at once: a few per CPU, so that the node's CPUs stay busy while a start
/// waits for its shim and runtime (other processes).
pub(crate) fn default_parallelism() -> usize {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    (3 * cpus).max(4)
}

/// The pool of start places (first come, first served: tokio's semaphore is fair).
pub(crate) struct Starts {
    places: Semaphore,
}

impl Starts {
    pub(crate) fn new(parallelism: usize) -> Starts {
        Starts {
            places: Semaphore::new(parallelism.max(1)),
        }
    }

    /// One sync's claim on a place: taken when its start work begins, given up when it waits.
    pub(crate) fn slot(&self) -> Slot<'_> {
        Slot {
            starts: self,
            held: Mutex::new(None),
        }
    }
}

pub(crate) struct Slot<'a> {
    starts: &'a Starts,
    held: Mutex<Option<SemaphorePermit<'a>>>,
}

impl Slot<'_> {
    /// Waits for a place unless this sync holds one already.
    pub(crate) async fn hold(&self) {
        if self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some()
        {
            return;
        }
        // The semaphore is never closed.
        if let Ok(p) = self.starts.places.acquire().await {
            *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
        }
    }

    /// Gives the place up (before a wait that costs no CPU); `hold` takes one again.
    pub(crate) fn release(&self) {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
    }
}

#[cfg(test)]
mod tests {
    use futures::FutureExt;

    use super::*;

    #[tokio::test]
    async fn places_are_given_in_turn_and_released_on_wait() {
        let starts = Starts::new(1);
        let (a, b) = (starts.slot(), starts.slot());
        a.hold().await;
        // Held already: no second place is taken.
        assert!(a.hold().now_or_never().is_some());
        assert!(
            b.hold().now_or_never().is_none(),
            "a second sync got the only place"
        );
        a.release();
        assert!(
            b.hold().now_or_never().is_some(),
            "a place given up is free"
        );
        drop(b);
        assert!(
            a.hold().now_or_never().is_some(),
            "a dropped slot frees its place"
        );
    }
}
