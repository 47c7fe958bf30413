//! The event stream of `docker events`: a bounded history (for `since`) plus live
//! subscribers. Filters: `type`, `event`/`action`, `container`, `image`, `label`.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bollard_stubs::models::{
    EventActor, EventMessage, EventMessageScopeEnum, EventMessageTypeEnum,
};
use futures::stream::{BoxStream, StreamExt};
use tokio::sync::broadcast;

use crate::filters::Filters;
use crate::EventsOptions;

/// How many past events `since` can replay.
const HISTORY: usize = 1024;

pub(crate) struct EventBus {
    history: Mutex<VecDeque<EventMessage>>,
    live: broadcast::Sender<EventMessage>,
}

impl EventBus {
    pub(crate) fn new() -> EventBus {
        EventBus {
            history: Mutex::new(VecDeque::with_capacity(HISTORY)),
            live: broadcast::channel(HISTORY).0,
        }
    }

    /// Records and broadcasts one event; `attributes` are the actor's (name, image, exitCode …).
    pub(crate) fn emit(
        &self,
        typ: EventMessageTypeEnum,
        action: &str,
        actor_id: &str,
        attributes: HashMap<String, String>,
    ) {
        let now = chrono::Utc::now();
        let nanos = now.timestamp_nanos_opt().unwrap_or_default();
        let message = EventMessage {
            typ: Some(typ),
            action: Some(action.to_string()),
            actor: Some(EventActor {
                id: Some(actor_id.to_string()),
                attributes: Some(attributes),
            }),
            scope: Some(EventMessageScopeEnum::LOCAL),
            time: Some(now.timestamp()),
            time_nano: Some(nanos),
        };
        tracing::debug!(action, id = actor_id, "event");
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() == HISTORY {
            history.pop_front();
        }
        history.push_back(message.clone());
        // Subscribing happens under the same lock, so no event is both replayed and received live.
        let _ = self.live.send(message);
    }

    pub(crate) fn subscribe(&self, opts: EventsOptions) -> BoxStream<'static, EventMessage> {
        let now = chrono::Utc::now().timestamp();
        let (past, rx) = {
            let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
            let past: Vec<EventMessage> = match opts.since {
                Some(since) => history
                    .iter()
                    .filter(|e| e.time.unwrap_or_default() >= since)
                    .cloned()
                    .collect(),
                None => Vec::new(),
            };
            (past, self.live.subscribe())
        };
        let until = opts.until;
        let filters = opts.filters;
        let keep = move |e: &EventMessage| {
            until.is_none_or(|u| e.time.unwrap_or_default() <= u) && matches(&filters, e)
        };
        let keep_live = keep.clone();
        let replay = futures::stream::iter(past.into_iter().filter(keep));
        if until.is_some_and(|u| u <= now) {
            return replay.boxed();
        }
        let live = futures::stream::unfold(rx, |mut rx| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => return Some((e, rx)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "events subscriber lagged");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        })
        .filter(move |e| std::future::ready(keep_live(e)));
        let live: BoxStream<'static, EventMessage> = match until {
            Some(u) => {
                let deadline = tokio::time::Instant::now()
                    + std::time::Duration::from_secs(u.saturating_sub(now).max(0) as u64);
                live.take_until(tokio::time::sleep_until(deadline)).boxed()
            }
            None => live.boxed(),
        };
        replay.chain(live).boxed()
    }
}

fn type_name(t: Option<EventMessageTypeEnum>) -> String {
    t.map(|t| {
        serde_json::to_value(t)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    })
    .unwrap_or_default()
}

fn matches(filters: &Filters, e: &EventMessage) -> bool {
    let typ = type_name(e.typ);
    let action = e.action.clone().unwrap_or_default();
    let empty = HashMap::new();
    let (id, attrs) = match &e.actor {
        Some(a) => (
            a.id.clone().unwrap_or_default(),
            a.attributes.as_ref().unwrap_or(&empty),
        ),
        None => (String::new(), &empty),
    };
    let name = attrs.get("name").cloned().unwrap_or_default();
    // exec_start carries the command after ": " (Docker's "exec_start: sh -c …").
    let base_action = action.split(':').next().unwrap_or_default().to_string();
    filters.any("type", |t| t == typ)
        && filters.any("event", |a| a == action || a == base_action)
        && filters.any("action", |a| a == action || a == base_action)
        && filters.any("container", |c| {
            typ == "container"
                && (id.starts_with(c) || name == c || name == c.trim_start_matches('/'))
        })
        && filters.any("image", |i| {
            attrs.get("image").is_some_and(|v| v == i) || (typ == "image" && (id == i || name == i))
        })
        && filters.any("volume", |v| typ == "volume" && id == v)
        && filters.labels_match("label", attrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(name: &str) -> HashMap<String, String> {
        HashMap::from([
            ("name".to_string(), name.to_string()),
            ("image".to_string(), "busybox".to_string()),
        ])
    }

    #[tokio::test]
    async fn replays_history_and_filters() {
        let bus = EventBus::new();
        bus.emit(
            EventMessageTypeEnum::CONTAINER,
            "create",
            "abc",
            attrs("web"),
        );
        bus.emit(
            EventMessageTypeEnum::CONTAINER,
            "start",
            "abc",
            attrs("web"),
        );
        bus.emit(EventMessageTypeEnum::CONTAINER, "start", "def", attrs("db"));
        let now = chrono::Utc::now().timestamp();
        let opts = EventsOptions {
            since: Some(now - 10),
            until: Some(now),
            filters: Filters::from_pairs([("event", "start"), ("container", "web")]),
        };
        let got: Vec<_> = bus.subscribe(opts).collect().await;
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].actor.as_ref().unwrap().id.as_deref(), Some("abc"));
        assert_eq!(got[0].action.as_deref(), Some("start"));
    }

    #[tokio::test]
    async fn live_events_reach_subscribers() {
        let bus = EventBus::new();
        let mut stream = bus.subscribe(EventsOptions::default());
        bus.emit(EventMessageTypeEnum::CONTAINER, "die", "abc", attrs("web"));
        let e = stream.next().await.unwrap();
        assert_eq!(e.action.as_deref(), Some("die"));
    }
}
