//! `/_ping`, `/version`, `/info`, `/system/df`, `/events`.

use std::sync::Arc;

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt;
use http::header;
use skiff_engine::{Engine, EventsOptions, Filters};

use crate::error::{ApiError, ApiResult};
use crate::params::Params;
use crate::version::{API_VERSION, MIN_API_VERSION};

/// `GET|HEAD /_ping`: `OK`; the version headers are added by the negotiation middleware.
/// `Builder-Version: 1` tells the docker CLI to build with the classic `POST /build`.
pub async fn ping(State(engine): State<Arc<Engine>>) -> Response {
    engine.ping();
    (
        [
            (header::HeaderName::from_static("builder-version"), "1"),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache, no-store, must-revalidate"),
            (header::PRAGMA, "no-cache"),
        ],
        "OK",
    )
        .into_response()
}

/// `GET /version`, with the API range of this server.
pub async fn version(
    State(engine): State<Arc<Engine>>,
) -> Json<skiff_engine::models::SystemVersion> {
    let mut v = engine.version();
    v.api_version = Some(API_VERSION.to_owned());
    v.min_api_version = Some(MIN_API_VERSION.to_owned());
    Json(v)
}

/// `GET /info`.
pub async fn info(State(engine): State<Arc<Engine>>) -> Json<skiff_engine::models::SystemInfo> {
    Json(engine.info().await)
}

/// `GET /system/df`.
pub async fn df(State(engine): State<Arc<Engine>>) -> ApiResult<Json<skiff_engine::DiskUsage>> {
    Ok(Json(engine.system_df().await?))
}

/// A Docker timestamp parameter: unix seconds, optionally fractional (`1700000000.123456789`),
/// or RFC 3339.
pub fn parse_timestamp(key: &str, raw: &str) -> ApiResult<f64> {
    if let Ok(secs) = raw.parse::<f64>() {
        return Ok(secs);
    }
    chrono::DateTime::parse_from_rfc3339(raw)
        .map(|t| t.timestamp() as f64 + f64::from(t.timestamp_subsec_nanos()) / 1e9)
        .map_err(|_| ApiError::bad_request(format!("invalid value for {key}: {raw:?}")))
}

/// `GET /events?since=&until=&filters=`: newline-delimited JSON messages.
pub async fn events(State(engine): State<Arc<Engine>>, params: Params) -> ApiResult<Response> {
    let ts = |key: &str| -> ApiResult<Option<i64>> {
        params
            .str(key)
            .map(|raw| parse_timestamp(key, raw).map(|s| s.floor() as i64))
            .transpose()
    };
    let opts = EventsOptions {
        since: ts("since")?,
        until: ts("until")?,
        filters: Filters::parse(params.str("filters"))?,
    };
    let stream = engine
        .events(opts)
        .map(|e| Ok::<_, ApiError>(with_legacy_fields(e)));
    Ok(crate::stream::json_lines(stream))
}

/// An event with the fields API versions before 1.52 still carry (moby's `backFillLegacy`):
/// `status` (the action) and `id` for container and image events, `from` (the image) for
/// container events. Every version served here is older than 1.52; docker-py reads
/// `event["status"]`.
fn with_legacy_fields(event: skiff_engine::models::EventMessage) -> serde_json::Value {
    use skiff_engine::models::EventMessageTypeEnum as Type;
    let mut value = serde_json::to_value(&event).unwrap_or_default();
    let typ = event.typ;
    let (Some(map), Some(actor)) = (value.as_object_mut(), event.actor) else {
        return value;
    };
    if !matches!(typ, Some(Type::CONTAINER | Type::IMAGE)) {
        return value;
    }
    let mut extra = vec![
        ("status", event.action.unwrap_or_default()),
        ("id", actor.id.unwrap_or_default()),
    ];
    if typ == Some(Type::CONTAINER) {
        let image = actor.attributes.and_then(|mut a| a.remove("image"));
        extra.push(("from", image.unwrap_or_default()));
    }
    for (key, v) in extra {
        map.insert(key.to_string(), serde_json::Value::String(v));
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_carry_the_legacy_fields() {
        use skiff_engine::models::{EventActor, EventMessage, EventMessageTypeEnum};
        let actor = EventActor {
            id: Some("abc".into()),
            attributes: Some([("image".to_string(), "busybox".to_string())].into()),
        };
        let container = with_legacy_fields(EventMessage {
            typ: Some(EventMessageTypeEnum::CONTAINER),
            action: Some("die".into()),
            actor: Some(actor.clone()),
            ..Default::default()
        });
        assert_eq!(container["status"], "die");
        assert_eq!(container["id"], "abc");
        assert_eq!(container["from"], "busybox");
        assert_eq!(container["Action"], "die");
        let image = with_legacy_fields(EventMessage {
            typ: Some(EventMessageTypeEnum::IMAGE),
            action: Some("tag".into()),
            actor: Some(actor.clone()),
            ..Default::default()
        });
        assert_eq!(
            (image["status"].as_str(), image.get("from")),
            (Some("tag"), None)
        );
        let volume = with_legacy_fields(EventMessage {
            typ: Some(EventMessageTypeEnum::VOLUME),
            action: Some("create".into()),
            actor: Some(actor),
            ..Default::default()
        });
        assert!(volume.get("status").is_none());
    }

    #[test]
    fn timestamps_accept_unix_and_rfc3339() {
        assert_eq!(
            parse_timestamp("since", "1700000000.5").unwrap(),
            1_700_000_000.5
        );
        assert_eq!(
            parse_timestamp("since", "2023-11-14T22:13:20Z").unwrap(),
            1_700_000_000.0
        );
        assert!(parse_timestamp("since", "yesterday").is_err());
    }
}
