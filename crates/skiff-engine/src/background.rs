//! Work no client waits for — removing what a removed container left on the host, starting
//! the next spare shim — runs on one thread of the lowest CPU priority (nice 19). On a busy
//! host it then takes a core only when nothing a client waits for needs it: with two cores,
//! the previous container's cleanup otherwise competes with the next `docker run`.

use std::sync::mpsc;

type Job = Box<dyn FnOnce() + Send>;

/// The low-priority worker. Jobs run one after the other, in the order given.
pub(crate) struct Background {
    jobs: mpsc::Sender<Job>,
    /// Whether a process this thread starts may raise its priority back to normal (the
    /// daemon has `CAP_SYS_NICE`, or an `RLIMIT_NICE` that allows it).
    children_can_renice: bool,
}

/// The nice value of the worker thread.
const NICE: libc::c_int = 19;

impl Background {
    /// Starts the worker thread. It ends when the `Background` is dropped and its queue is
    /// empty.
    pub(crate) fn start() -> std::io::Result<Background> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("skiff-background".into())
            .spawn(move || {
                let _ = ready_tx.send(lower_priority());
                for job in queue {
                    job();
                }
            })?;
        let children_can_renice = ready_rx.recv().unwrap_or(false);
        Ok(Background {
            jobs,
            children_can_renice,
        })
    }

    /// Runs `job` on the worker thread.
    pub(crate) fn run(&self, job: impl FnOnce() + Send + 'static) {
        if let Err(mpsc::SendError(job)) = self.jobs.send(Box::new(job)) {
            // The thread is gone (it cannot end while we hold the sender, unless a job
            // panicked): do the work here rather than not at all.
            job();
        }
    }

    /// Whether processes started from jobs may return to normal priority themselves (a spare
    /// shim does, before it creates a container).
    pub(crate) fn children_can_renice(&self) -> bool {
        self.children_can_renice
    }
}

/// Lowers the calling thread to [`NICE`]; returns whether it could also raise it again (then
/// the processes it starts can too), checked by raising it to 0 and lowering it once more.
fn lower_priority() -> bool {
    let set = |nice: libc::c_int| {
        // SAFETY: setpriority on this thread's own id (Linux: a thread's nice value is its own).
        unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, nice) == 0 }
    };
    if !set(NICE) {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the background thread's priority");
        return false;
    }
    let can_raise = set(0);
    if can_raise && !set(NICE) {
        tracing::warn!(error = %std::io::Error::last_os_error(), "cannot lower the background thread's priority");
    }
    can_raise
}

/// A thread's nice value.
#[cfg(test)]
fn nice_of(tid: libc::pid_t) -> libc::c_int {
    // SAFETY: plain system call; -1 is a valid nice value, so errno tells failures apart.
    unsafe { libc::getpriority(libc::PRIO_PROCESS, tid as libc::id_t) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_in_order_at_the_lowest_priority() {
        // SAFETY: gettid has no preconditions.
        let caller_nice = nice_of(unsafe { libc::gettid() });
        let background = Background::start().unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..3 {
            let tx = tx.clone();
            background.run(move || {
                // SAFETY: gettid has no preconditions.
                let tid = unsafe { libc::gettid() };
                tx.send((i, nice_of(tid))).unwrap();
            });
        }
        let got: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        assert_eq!(got, vec![(0, NICE), (1, NICE), (2, NICE)]);
        // The caller keeps its own priority.
        // SAFETY: gettid has no preconditions.
        assert_eq!(nice_of(unsafe { libc::gettid() }), caller_nice);
    }
}
