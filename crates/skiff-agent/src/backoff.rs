//! Kubernetes' restart back-off: a container that keeps failing waits 10 s before its second
//! restart, then twice as long each time up to 5 minutes; one that ran 10 minutes starts over.
//! The same schedule spaces image pulls. Kept in memory, as kubelet keeps it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub const INITIAL: Duration = Duration::from_secs(10);
pub const MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before exiting restarts without delay.
pub const RESET_AFTER: Duration = Duration::from_secs(600);

/// Delays by key (`<pod uid>/<container>` or `<pod uid>/image/<image>`).
#[derive(Default)]
pub struct Backoff {
    delays: Mutex<HashMap<String, Duration>>,
}

impl Backoff {
    /// How long is left to wait after `since` (the last exit or failed pull) before trying
    /// again; None when no wait is due.
    pub fn remaining(
        &self,
        key: &str,
        since: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Option<Duration> {
        let delay = *self.lock().get(key)?;
        let elapsed = (now - since).to_std().unwrap_or_default();
        delay.checked_sub(elapsed).filter(|d| !d.is_zero())
    }

    /// The current delay of `key`, if any.
    pub fn delay(&self, key: &str) -> Option<Duration> {
        self.lock().get(key).copied()
    }

    /// Records a (re)try now: the next one waits [`INITIAL`], then twice the last delay, at
    /// most [`MAX`].
    pub fn next(&self, key: &str) {
        let mut map = self.lock();
        let d = map.get(key).map_or(INITIAL, |d| (*d * 2).min(MAX));
        map.insert(key.to_string(), d);
    }

    pub fn reset(&self, key: &str) {
        self.lock().remove(key);
    }

    /// Forgets every key starting with `prefix` (a pod that is gone).
    pub fn forget(&self, prefix: &str) {
        self.lock().retain(|k, _| !k.starts_with(prefix));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Duration>> {
        self.delays.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let b = Backoff::default();
        let t0 = Utc::now();
        assert_eq!(
            b.remaining("p/c", t0, t0),
            None,
            "the first restart is immediate"
        );
        b.next("p/c");
        assert_eq!(b.remaining("p/c", t0, t0), Some(INITIAL));
        assert_eq!(
            b.remaining("p/c", t0, t0 + chrono::TimeDelta::seconds(4)),
            Some(Duration::from_secs(6))
        );
        assert_eq!(
            b.remaining("p/c", t0, t0 + chrono::TimeDelta::seconds(10)),
            None
        );
        let delays: Vec<u64> = (0..7)
            .map(|_| {
                b.next("p/c");
                b.delay("p/c").unwrap().as_secs()
            })
            .collect();
        assert_eq!(delays, vec![20, 40, 80, 160, 300, 300, 300]);
        b.forget("p/");
        assert_eq!(b.delay("p/c"), None);
    }
}
