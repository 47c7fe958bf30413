//! WAL checkpoints off the write path.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, so every
//! few hundred commits one writer group paid for copying the WAL into the database and its
//! fsyncs: with 50 concurrent creates that was the p99 (30–45 ms against a 4 ms median). The
//! writer therefore nudges this thread, which runs the same PASSIVE checkpoint on a connection
//! of its own while writes go on; the writer's own automatic checkpoint is kept only as a cap
//! on the WAL's size (a WAL can start over only after a checkpoint between two commits).
//! Durability does not change: a commit is on disk once its WAL frames are synced, and a
//! checkpoint is crash-safe whichever connection runs it.
//!
//! This module must not write to the log.

use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::Connection;

use super::log::sqlite_err;
use crate::{Result, StoreError};

/// Row bytes committed between two nudges (SQLite's own threshold is 1000 pages, ~4 MiB).
const NUDGE_BYTES: usize = 4 * 1024 * 1024;
/// Commits between two nudges, for small rows (each commit writes a few pages).
const NUDGE_COMMITS: usize = 200;

/// The checkpoint thread; dropping it waits for a running checkpoint and ends the thread.
pub(super) struct Checkpointer {
    nudge: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    bytes: usize,
    commits: usize,
}

impl Checkpointer {
    /// Starts the thread with its own connection to the database.
    pub fn start(conn: Connection) -> Result<Checkpointer> {
        let (nudge, nudges) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("skiff-sqlite-checkpoint".to_owned())
            .spawn(move || {
                while nudges.recv().is_ok() {
                    if let Err(e) = conn
                        .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                        .map_err(sqlite_err("checkpoint the WAL"))
                    {
                        tracing::warn!(error = %e, "sqlite checkpoint failed");
                    }
                }
            })
            .map_err(|source| StoreError::Thread {
                what: "the sqlite checkpointer",
                source,
            })?;
        Ok(Checkpointer {
            nudge: Some(nudge),
            thread: Some(thread),
            bytes: 0,
            commits: 0,
        })
    }

    /// Counts a commit of `bytes` of row data and nudges the thread once enough is committed.
    /// Never blocks: a nudge while a checkpoint runs is folded into the next one.
    pub fn committed(&mut self, bytes: usize) {
        self.bytes += bytes;
        self.commits += 1;
        if self.bytes < NUDGE_BYTES && self.commits < NUDGE_COMMITS {
            return;
        }
        let Some(nudge) = &self.nudge else { return };
        match nudge.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {
                self.bytes = 0;
                self.commits = 0;
            }
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("the sqlite checkpointer has stopped");
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        drop(self.nudge.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the sqlite checkpoint thread panicked");
            }
        }
    }
}
