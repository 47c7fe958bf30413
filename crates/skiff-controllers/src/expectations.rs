//! kube-controller-manager's ControllerExpectations: what a controller has asked the API for
//! and not yet seen in its cache. While a controller still expects creations or deletions
//! it does not act again on that object, so a cache that lags behind never makes it
//! create (or delete) twice. Expectations only gate *when* to act, never *what*: they hold
//! names and UIDs of objects the API already has, and expire after five minutes in case a
//! watch event was lost for good.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// kube-controller-manager's `ExpectationsTimeout`.
pub const EXPECTATIONS_TIMEOUT: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Pending {
    /// Names created but not yet seen.
    adds: HashSet<String>,
    /// UIDs deleted but still seen alive.
    dels: HashSet<String>,
    since: Instant,
}

/// The expectations key of the controller's object `kind` `namespace/name`.
pub fn key(kind: &str, namespace: &str, name: &str) -> String {
    format!("{kind}/{namespace}/{name}")
}

/// Outstanding creations and deletions, keyed by the controller's object ([`key`]).
#[derive(Debug, Default)]
pub struct Expectations {
    pending: Mutex<HashMap<String, Pending>>,
}

impl Expectations {
    fn with<R>(&self, key: &str, f: impl FnOnce(&mut Pending) -> R) -> R {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let p = map.entry(key.to_string()).or_insert_with(|| Pending {
            adds: HashSet::new(),
            dels: HashSet::new(),
            since: Instant::now(),
        });
        f(p)
    }

    /// `key` created an object named `name` and waits to see it.
    pub fn expect_creation(&self, key: &str, name: &str) {
        self.with(key, |p| {
            p.adds.insert(name.to_string());
            p.since = Instant::now();
        });
    }

    /// `key` deletes the object with `uid` and waits to see it go.
    pub fn expect_deletion(&self, key: &str, uid: &str) {
        self.with(key, |p| {
            p.dels.insert(uid.to_string());
            p.since = Instant::now();
        });
    }

    /// A deletion that did not happen (the API refused it): stop waiting for it.
    pub fn deletion_failed(&self, key: &str, uid: &str) {
        self.with(key, |p| {
            p.dels.remove(uid);
        });
    }

    /// The cache saw the object `meta` controlled by `key` change (`deleted`: go): lowers
    /// what `key` waits for, as the pod handlers of kube-controller-manager's controllers do.
    pub fn observe(&self, key: &str, meta: &ObjectMeta, deleted: bool) {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(key) else {
            return;
        };
        if let Some(name) = &meta.name {
            p.adds.remove(name);
        }
        if deleted || meta.deletion_timestamp.is_some() {
            if let Some(uid) = &meta.uid {
                p.dels.remove(uid);
            }
        }
    }

    /// Whether `key` may act: nothing outstanding (after re-checking against the cache with
    /// `seen(name)` and `alive(uid)`), or the outstanding set expired.
    pub fn satisfied(
        &self,
        key: &str,
        seen: impl Fn(&str) -> bool,
        alive: impl Fn(&str) -> bool,
    ) -> bool {
        let mut map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let Some(p) = map.get_mut(key) else {
            return true;
        };
        p.adds.retain(|n| !seen(n));
        p.dels.retain(|u| alive(u));
        if (p.adds.is_empty() && p.dels.is_empty()) || p.since.elapsed() > EXPECTATIONS_TIMEOUT {
            map.remove(key);
            return true;
        }
        false
    }

    /// How many creations and deletions `key` still waits for.
    pub fn outstanding(&self, key: &str) -> (usize, usize) {
        let map = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .map_or((0, 0), |p| (p.adds.len(), p.dels.len()))
    }

    /// The controller's object is gone: forget it.
    pub fn forget(&self, key: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, uid: &str, terminating: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            uid: Some(uid.into()),
            deletion_timestamp: terminating.then(|| {
                k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::now(),
                )
            }),
            ..Default::default()
        }
    }

    #[test]
    fn waits_until_every_creation_and_deletion_is_seen() {
        let e = Expectations::default();
        assert!(e.satisfied("rs/a", |_| false, |_| true));
        e.expect_creation("rs/a", "p1");
        e.expect_creation("rs/a", "p2");
        e.expect_deletion("rs/a", "u3");
        assert!(!e.satisfied("rs/a", |_| false, |_| true));
        e.observe("rs/a", &meta("p1", "u1", false), false);
        // p2 is found in the cache even though no event was seen for it.
        assert!(!e.satisfied("rs/a", |n| n == "p2", |_| true));
        assert_eq!(e.outstanding("rs/a"), (0, 1));
        // A change that is not a deletion does not count as one.
        e.observe("rs/a", &meta("p3", "u3", false), false);
        assert_eq!(e.outstanding("rs/a"), (0, 1));
        e.observe("rs/a", &meta("p3", "u3", true), false);
        assert!(e.satisfied("rs/a", |_| false, |_| true));
        assert_eq!(e.outstanding("rs/a"), (0, 0));
    }

    #[test]
    fn a_refused_deletion_is_not_waited_for() {
        let e = Expectations::default();
        e.expect_deletion("rs/a", "u1");
        e.deletion_failed("rs/a", "u1");
        assert!(e.satisfied("rs/a", |_| false, |_| true));
    }
}
