//! The etcd 3.x engine: the [`Store`] trait mapped onto etcd's KV, Txn and Watch RPCs.
//!
//! Each write is one transaction guarded by a compare (`create_revision == 0` for create,
//! `mod_revision == expected` for update and conditional delete), whose else-branch reads the
//! key so a failed compare can report `Conflict` with the current value or `NotFound`. Keys
//! live under a namespace prefix so several stores (or tests) can share one etcd; the prefix
//! never shows in keys handed back. Revisions are etcd's own: they count from 1 and include
//! other writers of the cluster, so only their order means anything.
//!
//! This module must not know about Kubernetes objects and must not keep state of its own:
//! several skiff servers may share one etcd.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, Txn, TxnOp, TxnOpResponse, WatchClient, WatchOptions,
};
use futures::StreamExt;

use crate::{
    prefix_end, Event, EventType, KeyValue, ListResult, Result, Store, StoreError, WatchStream,
};

/// How long `connect` waits for the cluster to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the compaction-point probe waits for etcd's answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// The largest gRPC response the client accepts (tonic's default is 4 MiB). etcd itself
/// refuses requests over 1.5 MiB by default, so this fits a page of many maximal values and a
/// batch of watch events; lists are read in pages so that their total size does not matter.
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// Keys read per range request by `list`; halved while a page is still too large to decode.
const LIST_PAGE: usize = 500;

/// The etcd engine. Cheap to clone (one gRPC channel underneath).
#[derive(Clone)]
pub struct EtcdStore {
    client: Client,
    namespace: Vec<u8>,
}

/// Attaches the operation to an etcd error.
fn etcd(op: &'static str) -> impl FnOnce(etcd_client::Error) -> StoreError {
    move |source| StoreError::Etcd { op, source }
}

/// Whether etcd (or the gRPC client reading its answer) said OUT_OF_RANGE: a compacted or a
/// future revision, or a response larger than the client accepts. etcd tells the first two
/// apart only in words; skiff tells them apart by asking etcd for its revisions instead
/// (see [`EtcdStore::out_of_range`]).
fn out_of_range(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s) if s.code() == tonic::Code::OutOfRange)
}

/// Why a read at a revision was out of range.
enum OutOfRange {
    Future {
        current: i64,
    },
    Compacted,
    /// The revision is readable: the answer was too large to decode.
    TooLarge,
}

impl EtcdStore {
    /// Connects to the etcd cluster at `endpoints` (`host:port` or `http://host:port`) and
    /// checks that it answers; keys are stored under `prefix`.
    pub async fn connect(endpoints: &[String], prefix: &str) -> Result<Self> {
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_keep_alive(Duration::from_secs(10), Duration::from_secs(10));
        let unreachable =
            |source: Box<dyn std::error::Error + Send + Sync>| StoreError::Unreachable {
                endpoints: endpoints.join(","),
                source,
            };
        let client = Client::connect(endpoints, Some(options))
            .await
            .map_err(|e| unreachable(Box::new(e)))?;
        let store = EtcdStore {
            client,
            namespace: prefix.as_bytes().to_vec(),
        };
        tokio::time::timeout(CONNECT_TIMEOUT, store.current_revision())
            .await
            .map_err(|_| unreachable(format!("no answer within {CONNECT_TIMEOUT:?}").into()))?
            .map_err(|e| unreachable(Box::new(e)))?;
        Ok(store)
    }

    /// The KV client, accepting responses up to [`MAX_RESPONSE_BYTES`].
    fn kv_client(&self) -> KvClient {
        self.client
            .kv_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    /// The watch client, accepting responses up to [`MAX_RESPONSE_BYTES`].
    fn watch_client(&self) -> WatchClient {
        self.client
            .watch_client()
            .max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    fn key(&self, key: &str) -> Vec<u8> {
        [self.namespace.as_slice(), key.as_bytes()].concat()
    }

    /// The `[start, end)` range of all keys under `prefix`, as etcd wants it.
    fn range(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.key(prefix);
        let end = prefix_end(&start).unwrap_or_else(|| vec![0]);
        let start = if start.is_empty() { vec![0] } else { start };
        (start, end)
    }

    fn kv(&self, kv: &etcd_client::KeyValue) -> Result<KeyValue> {
        let key = kv
            .key()
            .strip_prefix(self.namespace.as_slice())
            .ok_or_else(|| {
                StoreError::Corrupt("etcd returned a key outside the namespace".to_owned())
            })?;
        Ok(KeyValue {
            key: String::from_utf8(key.to_vec())
                .map_err(|e| StoreError::Corrupt(format!("etcd key is not utf-8: {e}")))?,
            value: kv.value().to_vec(),
            create_revision: kv.create_revision(),
            mod_revision: kv.mod_revision(),
        })
    }

    fn event(&self, event: &etcd_client::Event) -> Result<Event> {
        let raw = event
            .kv()
            .ok_or_else(|| StoreError::Corrupt("etcd event without a key".to_owned()))?;
        let prev_kv = event.prev_kv().map(|kv| self.kv(kv)).transpose()?;
        let revision = raw.mod_revision();
        Ok(match event.event_type() {
            etcd_client::EventType::Put => Event {
                event_type: EventType::Put,
                revision,
                kv: self.kv(raw)?,
                prev_kv,
            },
            etcd_client::EventType::Delete => {
                // etcd's own kv of a deletion is empty; report the deleted value instead.
                let kv = match &prev_kv {
                    Some(prev) => prev.clone(),
                    None => KeyValue {
                        value: Vec::new(),
                        create_revision: 0,
                        ..self.kv(raw)?
                    },
                };
                Event {
                    event_type: EventType::Delete,
                    revision,
                    kv,
                    prev_kv,
                }
            }
        })
    }

    /// Why a read at `requested` (0: the current revision) was out of range, asked of etcd:
    /// beyond its current revision is the future; a count-only read (a tiny answer) that is
    /// out of range too means compacted; otherwise the answer was too large.
    async fn out_of_range(&self, requested: i64) -> Result<OutOfRange> {
        let current = self.current_revision().await?;
        if requested > current {
            return Ok(OutOfRange::Future { current });
        }
        if requested <= 0 {
            return Ok(OutOfRange::TooLarge);
        }
        let probe = GetOptions::new().with_revision(requested).with_count_only();
        match self.kv_client().get(self.range("").0, Some(probe)).await {
            Ok(_) => Ok(OutOfRange::TooLarge),
            Err(e) if out_of_range(&e) => Ok(OutOfRange::Compacted),
            Err(e) => Err(etcd("probe a revision")(e)),
        }
    }

    /// Turns an error about a read at `read_at` (for the caller's `requested`) into
    /// `Compacted` / `FutureRevision` where it is one.
    async fn revision_error(
        &self,
        op: &'static str,
        e: etcd_client::Error,
        read_at: i64,
        requested: i64,
    ) -> StoreError {
        if !out_of_range(&e) {
            return etcd(op)(e);
        }
        match self.out_of_range(read_at).await {
            Ok(OutOfRange::Compacted) => StoreError::Compacted {
                requested,
                compacted: self.compaction_point().await,
            },
            Ok(OutOfRange::Future { current }) => StoreError::FutureRevision { requested, current },
            Ok(OutOfRange::TooLarge) => etcd(op)(e),
            Err(e) => e,
        }
    }

    /// etcd's compaction point, learnt the only way the API tells it: a watch from revision 1
    /// is cancelled with the compact revision. 0 when etcd does not say in time.
    async fn compaction_point(&self) -> i64 {
        let probe = async {
            let options = WatchOptions::new().with_start_revision(1);
            let mut stream = self
                .watch_client()
                .watch(self.key("\0compaction-probe"), Some(options))
                .await
                .ok()?;
            while let Some(Ok(resp)) = stream.next().await {
                if resp.compact_revision() > 0 {
                    return Some(resp.compact_revision());
                }
                if resp.canceled() {
                    break;
                }
            }
            None
        };
        tokio::time::timeout(PROBE_TIMEOUT, probe)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// After a failed compare: `Conflict` with the current value, or `NotFound`.
    fn compare_failed(&self, key: &str, resp: &etcd_client::TxnResponse) -> Result<StoreError> {
        let current = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().cloned(),
            _ => None,
        });
        Ok(match current {
            Some(kv) => StoreError::Conflict {
                key: key.to_owned(),
                current: Some(Box::new(self.kv(&kv)?)),
            },
            None => StoreError::NotFound(key.to_owned()),
        })
    }
}

fn header_revision(header: Option<&etcd_client::ResponseHeader>) -> Result<i64> {
    header
        .map(|h| h.revision())
        .ok_or_else(|| StoreError::Corrupt("etcd response without a header".to_owned()))
}

#[async_trait::async_trait]
impl Store for EtcdStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let resp = self
            .kv_client()
            .get(self.key(key), None)
            .await
            .map_err(etcd("get a key"))?;
        resp.kvs().first().map(|kv| self.kv(kv)).transpose()
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult> {
        let (mut start, end) = self.range(prefix);
        if let Some(after) = start_after {
            let mut after = self.key(after);
            after.push(0);
            start = start.max(after);
        }
        // Read in pages, all at the revision of the first, so that any number of keys fits
        // in gRPC's message limit and the result is still one consistent snapshot.
        let mut revision = revision.filter(|r| *r > 0);
        let mut page = LIST_PAGE;
        let mut items = Vec::new();
        loop {
            let want = match limit {
                0 => page,
                _ => page.min(limit - items.len()),
            };
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(i64::try_from(want).unwrap_or(i64::MAX));
            if let Some(r) = revision {
                options = options.with_revision(r);
            }
            let resp = match self.kv_client().get(start.clone(), Some(options)).await {
                Ok(resp) => resp,
                Err(e) if out_of_range(&e) => {
                    match self.out_of_range(revision.unwrap_or(0)).await? {
                        // A page too large for gRPC's message limit: smaller pages.
                        OutOfRange::TooLarge if page > 1 => {
                            page /= 2;
                            continue;
                        }
                        _ => {
                            let at = revision.unwrap_or(0);
                            return Err(self.revision_error("list keys", e, at, at).await);
                        }
                    }
                }
                Err(e) => return Err(etcd("list keys")(e)),
            };
            let at = match revision {
                Some(r) => r,
                None => *revision.insert(header_revision(resp.header())?),
            };
            for kv in resp.kvs() {
                items.push(self.kv(kv)?);
            }
            let done = |items, more| ListResult {
                items,
                revision: at,
                more,
            };
            let last = match resp.kvs().last() {
                Some(last) if resp.more() => last,
                _ => return Ok(done(items, false)),
            };
            if limit > 0 && items.len() >= limit {
                return Ok(done(items, true));
            }
            start = [last.key(), &[0]].concat();
        }
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        let k = self.key(key);
        let txn = Txn::new()
            .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(k, value, None)]);
        let resp = self
            .kv_client()
            .txn(txn)
            .await
            .map_err(etcd("create a key"))?;
        if !resp.succeeded() {
            return Err(StoreError::AlreadyExists(key.to_owned()));
        }
        header_revision(resp.header())
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_revision: i64) -> Result<i64> {
        let k = self.key(key);
        let txn = Txn::new()
            .when([
                Compare::version(k.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(k.clone(), CompareOp::Equal, expected_revision),
            ])
            .and_then([TxnOp::put(k.clone(), value, None)])
            .or_else([TxnOp::get(k, None)]);
        let resp = self
            .kv_client()
            .txn(txn)
            .await
            .map_err(etcd("update a key"))?;
        if !resp.succeeded() {
            return Err(self.compare_failed(key, &resp)?);
        }
        header_revision(resp.header())
    }

    async fn delete(&self, key: &str, expected_revision: Option<i64>) -> Result<(KeyValue, i64)> {
        let k = self.key(key);
        let mut compares = vec![Compare::version(k.clone(), CompareOp::Greater, 0)];
        if let Some(expected) = expected_revision {
            compares.push(Compare::mod_revision(k.clone(), CompareOp::Equal, expected));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                k.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(k, None)]);
        let resp = self
            .kv_client()
            .txn(txn)
            .await
            .map_err(etcd("delete a key"))?;
        if !resp.succeeded() {
            return Err(self.compare_failed(key, &resp)?);
        }
        let deleted = resp.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(del) => del.prev_kvs().first().cloned(),
            _ => None,
        });
        let deleted = deleted.ok_or_else(|| {
            StoreError::Corrupt("etcd delete returned no previous value".to_owned())
        })?;
        Ok((self.kv(&deleted)?, header_revision(resp.header())?))
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let after = after_revision.max(0);
        // etcd would wait for a future revision and report compaction only in-stream; a read
        // at `after` gives both errors up front. etcd reads revision 0 as "now", so a watch
        // from the beginning is checked at revision 1, the first etcd ever has.
        let check = GetOptions::new()
            .with_revision(after.max(1))
            .with_count_only();
        if let Err(e) = self
            .kv_client()
            .get(self.range(prefix).0, Some(check))
            .await
        {
            let op = "check a watch's revision";
            return Err(self.revision_error(op, e, after.max(1), after).await);
        }
        let (start, end) = self.range(prefix);
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(after + 1)
            .with_prev_key();
        let stream = self
            .watch_client()
            .watch(start, Some(options))
            .await
            .map_err(etcd("start a watch"))?;
        let state = (self.clone(), stream, VecDeque::new(), false);
        Ok(Box::pin(futures::stream::unfold(
            state,
            move |(store, mut stream, mut pending, mut done)| async move {
                loop {
                    if let Some(item) = pending.pop_front() {
                        return Some((item, (store, stream, pending, done)));
                    }
                    if done {
                        return None;
                    }
                    match stream.next().await {
                        None => return None,
                        Some(Err(e)) => {
                            done = true;
                            pending.push_back(Err(etcd("watch")(e)));
                        }
                        Some(Ok(resp)) if resp.compact_revision() > 0 => {
                            done = true;
                            pending.push_back(Err(StoreError::Compacted {
                                requested: after,
                                compacted: resp.compact_revision(),
                            }));
                        }
                        Some(Ok(resp)) if resp.canceled() => {
                            done = true;
                            pending.push_back(Err(StoreError::Unavailable(format!(
                                "etcd cancelled the watch: {}",
                                resp.cancel_reason()
                            ))));
                        }
                        Some(Ok(resp)) => {
                            pending.extend(resp.events().iter().map(|e| store.event(e)));
                        }
                    }
                }
            },
        )))
    }

    async fn current_revision(&self) -> Result<i64> {
        let options = GetOptions::new().with_count_only();
        let resp = self
            .kv_client()
            .get(self.range("").0, Some(options))
            .await
            .map_err(etcd("read the current revision"))?;
        header_revision(resp.header())
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        let options = CompactionOptions::new().with_physical();
        match self.kv_client().compact(revision, Some(options)).await {
            Ok(_) => Ok(()),
            Err(e) if out_of_range(&e) => {
                let current = self.current_revision().await?;
                if revision > current {
                    Err(StoreError::FutureRevision {
                        requested: revision,
                        current,
                    })
                } else {
                    // Already compacted at or past `revision`: nothing to do.
                    Ok(())
                }
            }
            Err(e) => Err(etcd("compact")(e)),
        }
    }
}
