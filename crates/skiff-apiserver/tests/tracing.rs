//! Request spans stay on the request's task: while a request waits (here for its body), an
//! event logged by another task on the same thread is not attributed to that request.

mod common;

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use common::*;
use http::Request;
use tower::ServiceExt;
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// An event's message and the name of the span current when it was logged.
type Seen = (String, Option<String>);

/// Records, for each event, the name of the span current when it was logged.
#[derive(Clone, Default)]
struct CurrentSpans(Arc<Mutex<Vec<Seen>>>);

impl<S> Layer<S> for CurrentSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_event(&self, event: &tracing::Event<'_>, ctx: Context<'_, S>) {
        let span = ctx.lookup_current().map(|s| s.name().to_string());
        let mut message = String::new();
        event.record(&mut |f: &tracing::field::Field, v: &dyn std::fmt::Debug| {
            if f.name() == "message" {
                message = format!("{v:?}");
            }
        });
        self.0.lock().unwrap().push((message, span));
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_waiting_request_does_not_own_other_tasks_events() {
    let api = api().await;
    let spans = CurrentSpans::default();
    let subscriber = tracing_subscriber::registry().with(spans.clone());
    let _default = tracing::subscriber::set_default(subscriber);

    // A create whose body never arrives: the request waits inside its span.
    let body = Body::from_stream(futures::stream::pending::<Result<bytes::Bytes, Infallible>>());
    let req = Request::builder()
        .method("POST")
        .uri(CONFIGMAPS)
        .header("Authorization", format!("Bearer {TOKEN}"))
        .header("Content-Type", "application/json")
        .body(body)
        .unwrap();
    let mut request = std::pin::pin!(api.app.clone().oneshot(req));
    assert!(futures::poll!(&mut request).is_pending());

    tracing::info!("unrelated work");
    let seen = spans.0.lock().unwrap().clone();
    let unrelated = seen.iter().find(|(m, _)| m == "unrelated work").unwrap();
    assert_eq!(
        unrelated.1, None,
        "an event outside the request was logged inside span {:?}",
        unrelated.1
    );
}
