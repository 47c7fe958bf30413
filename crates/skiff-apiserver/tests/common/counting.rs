//! A store that records the reads that reach it (the keys of gets, the prefixes of lists), to
//! check which reads the API server answers without the store.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use skiff_store::{KeyValue, ListResult, Result, Store, WatchStream};

/// `inner`, recording the gets and lists it served.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    reads: Mutex<Vec<String>>,
    /// Set: asking for the current revision fails, as a datastore that cannot be reached.
    down: AtomicBool,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            reads: Mutex::default(),
            down: AtomicBool::new(false),
        })
    }

    /// The keys (gets) and prefixes (lists) read so far, in order.
    pub fn reads(&self) -> Vec<String> {
        self.reads.lock().unwrap().clone()
    }

    /// Makes the current revision unreachable (`true`) or reachable again.
    #[allow(dead_code)] // the benches share this module and never fail the store
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    fn record(&self, key: &str) {
        self.reads.lock().unwrap().push(key.to_string());
    }
}

#[async_trait::async_trait]
impl Store for CountingStore {
    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.record(key);
        self.inner.get(key).await
    }

    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListResult> {
        self.record(prefix);
        self.inner.list(prefix, start_after, limit, revision).await
    }

    async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64> {
        self.inner.create(key, value).await
    }

    async fn update(&self, key: &str, value: Vec<u8>, expected_revision: i64) -> Result<i64> {
        self.inner.update(key, value, expected_revision).await
    }

    async fn delete(&self, key: &str, expected_revision: Option<i64>) -> Result<(KeyValue, i64)> {
        self.inner.delete(key, expected_revision).await
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        self.inner.watch(prefix, after_revision).await
    }

    async fn current_revision(&self) -> Result<i64> {
        if self.down.load(Ordering::SeqCst) {
            return Err(skiff_store::StoreError::Unavailable(
                "connection refused".into(),
            ));
        }
        self.inner.current_revision().await
    }

    async fn compact(&self, revision: i64) -> Result<()> {
        self.inner.compact(revision).await
    }
}
