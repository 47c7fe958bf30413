//! `/healthz`, `/livez` and `/readyz` as kube-apiserver answers them: named checks (`ping`,
//! `log`, `etcd` — the datastore, whichever it is), `ok` when all pass, the list of checks
//! with `?verbose` or when one fails (500, the failing check's reason withheld from the
//! client and logged), one check at `/readyz/<name>`, and `?exclude=<name>` to skip one.
//! Answered before authentication, like upstream's (system:public-info-viewer).

use std::time::Duration;

use axum::body::Body;
use axum::response::Response;
use http::StatusCode;

use crate::router::ApiState;

/// The checks, in upstream's order.
const CHECKS: [&str; 3] = ["ping", "log", "etcd"];

/// How long the datastore may take to answer before the `etcd` check fails.
const DATASTORE_TIMEOUT: Duration = Duration::from_secs(2);

pub(crate) async fn run(state: &ApiState, check: &str) -> Result<(), String> {
    match check {
        "etcd" => {
            match tokio::time::timeout(DATASTORE_TIMEOUT, state.storage.store.current_revision())
                .await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err(format!(
                    "the datastore did not answer within {DATASTORE_TIMEOUT:?}"
                )),
            }
        }
        _ => Ok(()),
    }
}

fn text(status: StatusCode, body: String) -> Response {
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        "x-content-type-options",
        http::HeaderValue::from_static("nosniff"),
    );
    r
}

/// The answer to `GET /{endpoint}[/{check}]?{query}`; `segments` are the path's segments.
pub(crate) async fn answer(state: &ApiState, segments: &[&str], query: Option<&str>) -> Response {
    let endpoint = segments.first().copied().unwrap_or("healthz");
    let params: Vec<(String, String)> = query
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    match segments {
        [_] => {}
        [_, check] if CHECKS.contains(check) => {
            return match run(state, check).await {
                Ok(()) => text(StatusCode::OK, "ok".into()),
                Err(e) => {
                    tracing::warn!(check, error = %e, "{endpoint} check failed");
                    text(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("internal server error: {check} check failed\n"),
                    )
                }
            };
        }
        _ => return text(StatusCode::NOT_FOUND, "404 page not found\n".into()),
    }
    let verbose = params.iter().any(|(k, _)| k == "verbose");
    let excluded: Vec<&str> = params
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    let mut lines = String::new();
    let mut failed = false;
    for check in CHECKS {
        if excluded.contains(&check) {
            lines.push_str(&format!("[+]{check} excluded: ok\n"));
            continue;
        }
        match run(state, check).await {
            Ok(()) => lines.push_str(&format!("[+]{check} ok\n")),
            Err(e) => {
                tracing::warn!(check, error = %e, "{endpoint} check failed");
                lines.push_str(&format!("[-]{check} failed: reason withheld\n"));
                failed = true;
            }
        }
    }
    for name in excluded.iter().filter(|e| !CHECKS.contains(e)) {
        lines.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for \"{name}\"\n"
        ));
    }
    if failed {
        lines.push_str(&format!("{endpoint} check failed\n"));
        return text(StatusCode::INTERNAL_SERVER_ERROR, lines);
    }
    if !verbose {
        return text(StatusCode::OK, "ok".into());
    }
    lines.push_str(&format!("{endpoint} check passed\n"));
    text(StatusCode::OK, lines)
}
