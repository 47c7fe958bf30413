//! The embedded engine: one SQLite file holding an append-only log of writes, in the manner
//! of k3s's [kine](https://github.com/k3s-io/kine).
//!
//! # Schema
//! ```text
//! log(id INTEGER PRIMARY KEY AUTOINCREMENT,  -- the global revision of this write
//!     name BLOB,                              -- the key (BLOB: compared bytewise, like etcd)
//!     created INTEGER, deleted INTEGER,       -- this write started / ended an incarnation
//!     create_revision INTEGER,                -- revision that created this incarnation
//!     prev_revision INTEGER,                  -- id of this key's previous row (0 if none)
//!     value BLOB,                             -- the new value (for a deletion: the deleted one)
//!     old_value BLOB)                         -- for an update: the value it replaced
//! UNIQUE (name, prev_revision), INDEX (name, id)
//! meta(name TEXT PRIMARY KEY, value INTEGER) -- 'compact_revision'
//! ```
//! Why a log like kine's rather than a `key → value` table: the Kubernetes API needs
//! etcd's MVCC semantics. Every write appends one row whose id *is* the revision, so
//! - the current value of a key is its newest row, and a list "as of revision R" takes, per key,
//!   the newest row with `id <= R` and drops deletions — old values and deleted keys stay
//!   visible to reads at past revisions until compaction;
//! - a watch from revision R replays `id > R` in id order, which is exactly the event history,
//!   with `prev_kv` reconstructed from the row itself (`old_value`, `prev_revision`);
//! - `UNIQUE (name, prev_revision)` makes two writes that raced from the same predecessor
//!   impossible to commit, a last line of defence behind the single writer.
//!
//! `AUTOINCREMENT` keeps the high-water mark in `sqlite_sequence`, so revisions never go back
//! even when compaction deletes the newest rows (tombstones). Compaction records the
//! compaction point in `meta` first (reads older than it fail with `Compacted` from then on)
//! and then deletes, in batches, the rows no read at or after that point can see.
//!
//! # Concurrency and durability
//! One writer thread owning the write connection (kine's single-writer model, see `writer`:
//! concurrent writes are committed in groups sharing one fsync) and a small pool of reader
//! connections used from tokio's blocking pool; WAL mode lets readers run while the writer
//! commits, and nothing runs SQLite on the runtime's workers. WAL checkpoints run on a thread
//! of their own (see `checkpoint`) so that no commit waits for one. `synchronous=FULL` makes
//! every acknowledged write durable across `kill -9` and power loss. The writer publishes each
//! committed write as an event on a broadcast channel, in revision order.
//!
//! A `<path>.lock` file held with `flock` for the store's lifetime stops a second process (or
//! a second open in this one) from using the same database: it gets `StoreError::Locked`.
//!
//! This module must not know about Kubernetes objects; keys are strings, values opaque bytes.

mod checkpoint;
mod log;
#[cfg(test)]
mod tests;
mod watch;
mod writer;

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::{broadcast, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use self::checkpoint::Checkpointer;
use self::log::{sqlite_err, Row};
use self::writer::{Writer, WriterState};
use crate::{Event, KeyValue, ListResult, Result, Store, StoreError, WatchStream};

/// Live events buffered per watcher before it counts as fallen behind (it then catches up
/// from the log, see `watch`).
const WATCH_BUFFER: usize = 1024;
/// Reads running at once, and so reader connections open and blocking threads busy with
/// SQLite. More gain nothing on a few cores: each read is CPU-bound once its pages are cached,
/// and every extra thread that builds a large list leaves its own malloc arena holding that
/// list's memory after it is freed (50 concurrent lists of 10,000 2 KiB values kept the
/// process at 750 MiB RSS).
const MAX_READERS: usize = 4;
/// WAL pages (of 4 KiB) after which the writer checkpoints in the commit itself, SQLite's
/// default being 1000. The checkpoint thread (see `checkpoint`) keeps the database caught up,
/// but only a checkpoint between two commits lets the WAL start over, so under sustained
/// writes this caps the WAL at about 64 MiB at the price of one slow commit per cap.
const WRITER_CHECKPOINT_PAGES: i64 = 16_384;
/// Log rows examined per compaction transaction, so writes interleave with a long compaction.
const COMPACT_BATCH: i64 = 10_000;
/// Page cache of the writer's connection, in KiB (SQLite's default is 2,000 KiB for every
/// connection, held until the connection closes). A write touches a few pages of the log's
/// table and of its two indexes; a page it misses is read back from the kernel's page cache
/// (the database was just written), a `pread` of a few microseconds. A group whose dirty
/// pages exceed it spills them to the WAL before its commit (SQLite's `cache_spill`).
const WRITER_CACHE_KIB: i64 = 1024;
/// Page cache of each pooled reader connection, in KiB. Most reads of the API server are
/// served by its watch cache; the store serves consistent reads the cache cannot, the cache's
/// first fill and watch replays, which scan more pages than any cache here would keep.
const READER_CACHE_KIB: i64 = 512;
/// Page cache of the checkpoint thread's connection, in KiB: a checkpoint copies WAL frames
/// through a buffer of its own, not through the page cache.
const CHECKPOINT_CACHE_KIB: i64 = 64;

/// The SQLite engine. Cheap to clone; the database closes when the last clone is dropped.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    writer: Writer,
    readers: Mutex<Vec<Connection>>,
    /// Bounds the reads in flight to [`MAX_READERS`].
    read_slots: Arc<Semaphore>,
    events: broadcast::Sender<Arc<Event>>,
    current: Arc<AtomicI64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and takes its lock. Blocks on file
    /// I/O: call it from `spawn_blocking` (as [`crate::open`] does) inside a runtime.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
                op: "create",
                path: parent.to_path_buf(),
                source,
            })?;
        }
        let lock = lock_file(&path)?;
        let mut conn = connect(&path, WRITER_CACHE_KIB)?;
        // Checkpoints run on their own thread (see `checkpoint`), not inside most commits.
        conn.pragma_update(None, "wal_autocheckpoint", WRITER_CHECKPOINT_PAGES)
            .map_err(sqlite_err("set the checkpoint interval"))?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite_err("begin a transaction"))?;
        log::migrate(&tx)?;
        let revision = log::current_revision(&tx)?;
        tx.commit().map_err(sqlite_err("commit"))?;
        tracing::debug!(path = %path.display(), revision, "opened sqlite store");
        let (events, _) = broadcast::channel(WATCH_BUFFER);
        let current = Arc::new(AtomicI64::new(revision));
        // The writer thread holds the lock until its last write is done.
        let writer = Writer::start(WriterState {
            conn,
            revision,
            current: current.clone(),
            events: events.clone(),
            checkpointer: Checkpointer::start(connect(&path, CHECKPOINT_CACHE_KIB)?)?,
            _lock: lock,
        })?;
        Ok(SqliteStore {
            inner: Arc::new(Inner {
                path,
                writer,
                readers: Mutex::new(Vec::new()),
                read_slots: Arc::new(Semaphore::new(MAX_READERS)),
                events,
                current,
            }),
        })
    }

    /// Where the database lives.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Runs `f` on a blocking thread with the store.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Inner) -> Result<T> + Send + 'static,
    {
        run_blocking(self.inner.clone(), f).await
    }
}

/// Runs `f` on a blocking thread once a read slot is free.
///
/// A slot is only ever held by a running read. Tokio's semaphore hands a freed permit to the
/// first waiting `acquire` at once, whether or not its future is being polled, so waiting in
/// the caller's future let a caller that was parked while it waited (a request future of an
/// in-process controller, a watch stream whose consumer is blocked on a slow client) sit on a
/// granted slot: with [`MAX_READERS`] of them every get, list and watch of the server hung
/// while no read ran, and `/readyz` (which reads nothing) still said ok. The wait therefore
/// runs in a task of its own, which the runtime always drives; dropping the caller gives up
/// the wait (not a read already started).
async fn run_blocking<T, F>(inner: Arc<Inner>, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Inner) -> Result<T> + Send + 'static,
{
    match inner.read_slots.clone().try_acquire_owned() {
        Ok(slot) => spawn_read(inner, slot, f).await,
        Err(TryAcquireError::Closed) => Err(closing()),
        Err(TryAcquireError::NoPermits) => {
            let waiter = tokio::spawn(async move {
                let slot = inner
                    .read_slots
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| closing())?;
                spawn_read(inner, slot, f).await
            });
            let _abort = AbortOnDrop(waiter.abort_handle());
            waiter.await.map_err(|source| StoreError::Task {
                op: "sqlite read",
                source,
            })?
        }
    }
}

/// Runs `f` on a blocking thread holding `slot`. The slot moves into the thread's closure: a
/// caller that gives up does not free it before the read ends.
async fn spawn_read<T, F>(inner: Arc<Inner>, slot: OwnedSemaphorePermit, f: F) -> Result<T>
where
    T: Send + 'static,
    F: FnOnce(&Inner) -> Result<T> + Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        f(&inner)
    })
    .await
    .map_err(|source| StoreError::Task {
        op: "sqlite read",
        source,
    })?
}

fn closing() -> StoreError {
    StoreError::Unavailable("the sqlite store is closing".to_owned())
}

/// Aborts a task when its awaiting caller is dropped.
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn lock_file(path: &Path) -> Result<File> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = PathBuf::from(lock_path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|source| StoreError::Io {
            op: "open",
            path: lock_path.clone(),
            source,
        })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked(path.display().to_string())),
        Err(TryLockError::Error(source)) => Err(StoreError::Io {
            op: "lock",
            path: lock_path,
            source,
        }),
    }
}

/// Opens a connection in WAL mode with `synchronous=FULL` and a page cache of at most
/// `cache_kib` KiB.
fn connect(path: &Path, cache_kib: i64) -> Result<Connection> {
    let conn = Connection::open(path).map_err(sqlite_err("open the database"))?;
    // Negative: a size in KiB rather than in pages.
    conn.pragma_update(None, "cache_size", -cache_kib)
        .map_err(sqlite_err("set the page cache size"))?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(sqlite_err("set the busy timeout"))?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(sqlite_err("switch to WAL mode"))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Unavailable(format!(
            "sqlite refused WAL mode (journal_mode is {mode})"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite_err("set synchronous=FULL"))?;
    Ok(conn)
}

impl Inner {
    /// Runs `f` in a read transaction on a pooled reader connection (one consistent snapshot).
    fn read<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let pooled = self
            .readers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, READER_CACHE_KIB)?,
        };
        let out = {
            let tx = conn
                .transaction()
                .map_err(sqlite_err("begin a read transaction"))?;
            f(&tx)
        };
        let mut idle = self.readers.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
        out
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let key = key.to_owned();
        self.blocking(move |s| s.read(|tx| log::get(tx, &key)))
            .await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult> {
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        self.blocking(move |s| {
            s.read(|tx| {
                let revision = match revision.filter(|r| *r > 0) {
                    Some(r) => {
                        log::check_revision(tx, r)?;
                        r
                    }
                    None => log::current_revision(tx)?,
                };
                let (items, more) =
                    log::list(tx, &prefix, start_after.as_deref(), limit, revision)?;
                Ok(ListResult {
                    items,
                    revision,
                    more,
                })
            })
        })
        .await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let key = key.to_owned();
        self.inner
            .writer
            .write(move |tx, next| {
                let prev = log::latest(tx, &key)?;
                if prev.as_ref().is_some_and(|r| !r.deleted) {
                    return Err(StoreError::AlreadyExists(key));
                }
                let row = Row {
                    id: next,
                    name: key,
                    created: true,
                    deleted: false,
                    create_revision: next,
                    prev_revision: prev.map_or(0, |r| r.id),
                    value,
                    old_value: None,
                };
                log::append(tx, &row)?;
                Ok((next, Some(row)))
            })
            .await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_revision: i64) -> Result<i64> {
        let key = key.to_owned();
        self.inner
            .writer
            .write(move |tx, next| {
                let prev = live_with_revision(tx, &key, Some(expected_revision))?;
                let row = Row {
                    id: next,
                    name: key,
                    created: false,
                    deleted: false,
                    create_revision: prev.create_revision,
                    prev_revision: prev.id,
                    value,
                    old_value: Some(prev.value),
                };
                log::append(tx, &row)?;
                Ok((next, Some(row)))
            })
            .await
    }

    async fn delete(&self, key: &str, expected_revision: Option<i64>) -> Result<(KeyValue, i64)> {
        let key = key.to_owned();
        self.inner
            .writer
            .write(move |tx, next| {
                let prev = live_with_revision(tx, &key, expected_revision)?;
                let deleted = prev.kv();
                let row = Row {
                    id: next,
                    name: key,
                    created: false,
                    deleted: true,
                    create_revision: prev.create_revision,
                    prev_revision: prev.id,
                    value: prev.value,
                    old_value: None,
                };
                log::append(tx, &row)?;
                Ok(((deleted, next), Some(row)))
            })
            .await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        watch::watch(self.inner.clone(), prefix.to_owned(), after_revision.max(0)).await
    }

    async fn current_revision(&self) -> Result<i64> {
        Ok(self.inner.current.load(Ordering::SeqCst))
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let writer = &self.inner.writer;
        let start = writer
            .write(move |conn, next| {
                let current = next - 1;
                if revision > current {
                    return Err(StoreError::FutureRevision {
                        requested: revision,
                        current,
                    });
                }
                let compacted = log::compact_revision(conn)?;
                if revision > compacted {
                    log::set_compact_revision(conn, revision)?;
                }
                Ok((compacted, None))
            })
            .await?;
        if revision <= start {
            return Ok(());
        }
        // Reads older than `revision` fail from now on; delete what only they could see, in
        // batches so that writes interleave.
        let mut removed = 0;
        let mut from = 0;
        while from < revision {
            let to = (from + COMPACT_BATCH).min(revision);
            removed += writer
                .write(move |conn, _| Ok((log::purge(conn, revision, from, to)?, None)))
                .await?;
            from = to;
        }
        tracing::debug!(revision, removed, "compacted sqlite store");
        Ok(())
    }
}

/// The newest row of `key`, which must be live and, if `expected` is given, have that
/// mod revision.
fn live_with_revision(tx: &Connection, key: &str, expected: Option<i64>) -> Result<Row> {
    match log::latest(tx, key)? {
        None => Err(StoreError::NotFound(key.to_owned())),
        Some(row) if row.deleted => Err(StoreError::NotFound(key.to_owned())),
        Some(row) if expected.is_some_and(|e| e != row.id) => Err(StoreError::Conflict {
            key: key.to_owned(),
            current: Some(Box::new(row.kv())),
        }),
        Some(row) => Ok(row),
    }
}
