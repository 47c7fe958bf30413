//! The Docker Engine API (versions 1.41–1.50) over a unix socket, served with axum.
//!
//! Owns HTTP only: version negotiation, routing, decoding of requests, Docker's error format,
//! streaming shapes and the attach/exec connection hijack. Every handler translates the wire
//! request into one [`skiff_engine::Engine`] call and its answer back; no engine logic lives
//! here.

mod error;
mod hijack;
mod params;
mod routes;
mod stream;
mod version;

use std::future::Future;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use skiff_core::serve::Gate;
pub use skiff_core::serve::Limits;
use skiff_engine::Engine;
use tower::{Layer as _, ServiceExt};
use tracing::Instrument;

pub use error::ApiError;
pub use version::{API_VERSION, MIN_API_VERSION};

/// Errors of setting up the server.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding the API socket {path}")]
    Bind {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl skiff_core::HasKind for ServeError {
    fn kind(&self) -> skiff_core::ErrorKind {
        skiff_core::ErrorKind::Internal
    }
}

/// One span per request, closed with the status code.
async fn trace_request(req: Request, next: Next) -> Response {
    let span = tracing::info_span!("request", method = %req.method(), path = %req.uri().path());
    async move {
        let response = next.run(req).await;
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }
    .instrument(span)
    .await
}

/// The whole API as one service: version negotiation and tracing around the route table.
pub fn app(engine: Arc<Engine>) -> axum::Router {
    let routes = routes::table(engine)
        .fallback(|| async { ApiError::new(skiff_core::ErrorKind::NotFound, "page not found") });
    // The version prefix must be stripped before routing, so the middleware wraps the router
    // rather than being one of its layers; the result is nested back into a plain Router.
    let negotiated = middleware::from_fn(version::negotiate).layer(routes);
    axum::Router::new()
        .fallback_service(negotiated)
        .layer(middleware::from_fn(trace_request))
}

/// How long a shutdown waits for open requests to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// Binds the socket (replacing a stale one, mode 0660) and serves until `shutdown` resolves.
/// Requests still open after a grace period, and hijacked attach/exec connections, are not
/// waited for.
pub async fn serve(
    engine: Arc<Engine>,
    socket: &Path,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    serve_with(engine, socket, Limits::default(), shutdown).await
}

/// [`serve`] with the given connection limits: a client must send each request header
/// within `limits.header` (an idle kept-alive connection is closed after it), and at most
/// `limits.max_connections` connections are served at once. Streaming replies (`logs -f`,
/// `events`, `wait`) and hijacked attach/exec connections are not timed.
pub async fn serve_with(
    engine: Arc<Engine>,
    socket: &Path,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let bind_err = |source| ServeError::Bind {
        path: socket.display().to_string(),
        source,
    };
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).map_err(bind_err)?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => tracing::info!(socket = %socket.display(), "removed stale socket"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(bind_err(e)),
    }
    let listener = tokio::net::UnixListener::bind(socket).map_err(bind_err)?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660)).map_err(bind_err)?;
    tracing::info!(socket = %socket.display(), "serving the Docker Engine API");
    let app = app(engine);
    let gate = Gate::new(limits);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let (slot, accepted) = tokio::select! {
            () = &mut shutdown => break,
            a = async {
                let slot = gate.admit().await;
                (slot, listener.accept().await)
            } => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                continue;
            }
        };
        let app = app.clone();
        let gate = gate.clone();
        let mut stop = stop_rx.clone();
        // Hijacked attach/exec look at the connection's socket (see `hijack::ClientSocket`).
        let client = axum::extract::ConnectInfo(hijack::ClientSocket::of(&stream));
        tokio::spawn(async move {
            let _slot = slot;
            let svc =
                hyper::service::service_fn(move |mut req: http::Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(client);
                    app.clone().oneshot(req.map(axum::body::Body::new))
                });
            let builder = gate.http();
            let conn = builder.serve_connection_with_upgrades(gate.io(stream), svc);
            tokio::pin!(conn);
            let result = tokio::select! {
                r = conn.as_mut() => r,
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            };
            if let Err(e) = result {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    let _ = stop_tx.send(true);
    // Streaming responses (`logs -f`, `events`) never end on their own.
    if tokio::time::timeout(SHUTDOWN_GRACE, gate.drained())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; closing them");
    }
    Ok(())
}
