//! Watches on the SQLite engine: replay from the log, then live events from the broadcast.
//!
//! The seam is gap-free because a watcher subscribes to the broadcast *before* it reads the
//! log: every event committed after that read is also in its receiver, and events seen in both
//! are dropped by revision. A watcher that falls more than the broadcast's capacity behind
//! (a slow consumer) does not skip anything: it re-subscribes and catches up from the log
//! again, and fails with `Compacted` only if compaction has overtaken it meanwhile. The stream
//! ends when the store is dropped; watchers hold only a weak reference to it.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast::{self, error::RecvError};

use super::{log, run_blocking, Inner};
use crate::{Event, Result, WatchStream};

/// Events read from the log per query while replaying.
const REPLAY_PAGE: usize = 500;

struct Watcher {
    store: Weak<Inner>,
    prefix: String,
    /// Every matching event up to this revision has been delivered (or buffered).
    seen: i64,
    rx: broadcast::Receiver<Arc<Event>>,
    buffered: VecDeque<Event>,
    /// The log may hold matching events after `seen` that the receiver missed.
    replaying: bool,
    done: bool,
}

pub(super) async fn watch(inner: Arc<Inner>, prefix: String, after: i64) -> Result<WatchStream> {
    let rx = inner.events.subscribe();
    let mut watcher = Watcher {
        store: Arc::downgrade(&inner),
        prefix,
        seen: after,
        rx,
        buffered: VecDeque::new(),
        replaying: true,
        done: false,
    };
    // The first page is read here so that a compacted or future revision fails the call.
    watcher.replay_page(inner).await?;
    Ok(Box::pin(futures::stream::unfold(
        watcher,
        |mut w| async move {
            let item = w.next().await?;
            Some((item, w))
        },
    )))
}

impl Watcher {
    async fn replay_page(&mut self, inner: Arc<Inner>) -> Result<()> {
        let (prefix, after) = (self.prefix.clone(), self.seen);
        let page = run_blocking(inner, move |s| {
            s.read(|tx| {
                log::check_revision(tx, after)?;
                log::events_after(tx, &prefix, after, REPLAY_PAGE)
            })
        })
        .await?;
        self.replaying = page.len() == REPLAY_PAGE;
        if let Some(last) = page.last() {
            self.seen = last.revision;
        }
        self.buffered.extend(page);
        Ok(())
    }

    async fn next(&mut self) -> Option<Result<Event>> {
        loop {
            if let Some(event) = self.buffered.pop_front() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            if self.replaying {
                let inner = self.store.upgrade()?;
                if let Err(e) = self.replay_page(inner).await {
                    self.done = true;
                    return Some(Err(e));
                }
                continue;
            }
            match self.rx.recv().await {
                Ok(event) => {
                    if event.revision > self.seen {
                        self.seen = event.revision;
                        if event.kv.key.starts_with(&self.prefix) {
                            self.buffered.push_back(Event::clone(&event));
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!(missed, prefix = %self.prefix, "watcher fell behind, catching up from the log");
                    self.rx = self.rx.resubscribe();
                    self.replaying = true;
                }
                Err(RecvError::Closed) => return None,
            }
        }
    }
}
