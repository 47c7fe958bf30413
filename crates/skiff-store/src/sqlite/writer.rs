//! The single writer: one thread owning the write connection, committing writes in groups.
//!
//! Writers queue jobs; the thread takes every job waiting (up to [`MAX_GROUP`]), runs each in
//! its own savepoint of one transaction, in arrival order, and commits once. With
//! `synchronous=FULL` a commit costs an fsync, so concurrent writers share it instead of
//! queueing for one each. Each job sees the effects of the jobs before it, exactly as if they
//! had committed one by one; nobody hears back before the group is durable, and events are
//! published in revision order only after the commit.
//!
//! The thread also holds the database's lock file, so the lock is released only after the
//! last write has finished; dropping the handle waits for that.

use std::fs::File;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use rusqlite::{Connection, Transaction, TransactionBehavior};
use tokio::sync::{broadcast, oneshot};

use super::checkpoint::Checkpointer;
use super::log::{sqlite_err, Row};
use crate::{Event, Result, StoreError};

/// The most jobs committed together.
const MAX_GROUP: usize = 256;

/// What a job leaves to do once its group's commit is decided.
type Finish = Box<dyn FnOnce(Result<()>) + Send>;

/// A queued write.
trait Job: Send {
    /// Runs the write in a savepoint of `tx` with `next` as the revision to assign; returns
    /// the row it appended, if any, and what to do once the commit is decided.
    fn run(self: Box<Self>, tx: &mut Transaction<'_>, next: i64) -> (Option<Row>, Finish);
    /// The group could not even start.
    fn fail(self: Box<Self>, error: StoreError);
}

struct WriteJob<F, T> {
    write: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: FnOnce(&Connection, i64) -> Result<(T, Option<Row>)> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, tx: &mut Transaction<'_>, next: i64) -> (Option<Row>, Finish) {
        let WriteJob { write, reply } = *self;
        let outcome = tx
            .savepoint()
            .map_err(sqlite_err("begin a savepoint"))
            .and_then(|sp| match write(&sp, next) {
                Ok(out) => sp
                    .commit()
                    .map_err(sqlite_err("release a savepoint"))
                    .map(|()| out),
                // Dropping the savepoint rolls back whatever the failed write did.
                Err(e) => Err(e),
            });
        match outcome {
            Ok((out, row)) => (
                row,
                Box::new(move |committed| {
                    let _ = reply.send(committed.map(|()| out));
                }),
            ),
            Err(e) => (
                None,
                Box::new(move |_| {
                    let _ = reply.send(Err(e));
                }),
            ),
        }
    }

    fn fail(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

/// The handle the store keeps; dropping it stops the thread after the queued jobs.
pub(super) struct Writer {
    jobs: Option<mpsc::Sender<Box<dyn Job>>>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer thread owns.
pub(super) struct WriterState {
    pub conn: Connection,
    pub revision: i64,
    pub current: Arc<AtomicI64>,
    pub events: broadcast::Sender<Arc<Event>>,
    /// Told about every commit; dropped (so stopped) before the lock is released.
    pub checkpointer: Checkpointer,
    /// The flock on `<path>.lock`, held until the thread ends.
    pub _lock: File,
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the sqlite writer has stopped".to_owned())
}

impl Writer {
    pub fn start(state: WriterState) -> Result<Writer> {
        let (jobs, queue) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("skiff-sqlite-writer".to_owned())
            .spawn(move || run(state, queue))
            .map_err(|source| StoreError::Thread {
                what: "the sqlite writer",
                source,
            })?;
        Ok(Writer {
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }

    /// Runs `write` in the writer thread with the next revision; a returned row is committed,
    /// then published as an event, then the result is handed back.
    pub async fn write<T, F>(&self, write: F) -> Result<T>
    where
        F: FnOnce(&Connection, i64) -> Result<(T, Option<Row>)> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, result) = oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob { write, reply });
        self.jobs
            .as_ref()
            .ok_or_else(stopped)?
            .send(job)
            .map_err(|_| stopped())?;
        result.await.map_err(|_| stopped())?
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the sqlite writer thread panicked");
            }
        }
    }
}

fn run(mut state: WriterState, queue: mpsc::Receiver<Box<dyn Job>>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        group.extend(queue.try_iter().take(MAX_GROUP - 1));
        commit_group(&mut state, group);
    }
    tracing::debug!("sqlite writer stopped");
}

fn commit_group(state: &mut WriterState, group: Vec<Box<dyn Job>>) {
    let mut tx = match state
        .conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
    {
        Ok(tx) => tx,
        Err(e) => {
            let source = Arc::new(e);
            for job in group {
                job.fail(StoreError::Sqlite {
                    op: "begin a write transaction",
                    source: source.clone(),
                });
            }
            return;
        }
    };
    let mut next = state.revision + 1;
    let mut rows = Vec::new();
    let mut finishes = Vec::with_capacity(group.len());
    for job in group {
        let (row, finish) = job.run(&mut tx, next);
        if let Some(row) = row {
            debug_assert_eq!(row.id, next, "a write appended a row out of sequence");
            next += 1;
            rows.push(row);
        }
        finishes.push(finish);
    }
    let committed = tx.commit().map_err(Arc::new);
    if committed.is_ok() {
        let bytes = rows
            .iter()
            .map(|r| r.name.len() + r.value.len() + r.old_value.as_ref().map_or(0, Vec::len))
            .sum();
        state.checkpointer.committed(bytes);
        if let Some(last) = rows.last() {
            state.revision = last.id;
            state.current.store(last.id, Ordering::SeqCst);
        }
        // Nobody watching: no event to build (a watch that starts later replays the log).
        if state.events.receiver_count() > 0 {
            for row in rows {
                let _ = state.events.send(Arc::new(row.into_event()));
            }
        }
    }
    for finish in finishes {
        finish(match &committed {
            Ok(()) => Ok(()),
            Err(source) => Err(StoreError::Sqlite {
                op: "commit",
                source: source.clone(),
            }),
        });
    }
}
