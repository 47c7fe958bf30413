//! The HTTP surface: authenticates each request, parses its path into a target (health,
//! version, discovery, OpenAPI or a resource), and dispatches to the handler for its verb.
//!
//! It must not hold object semantics; those live in `handlers`.

use std::sync::Arc;

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use http::Method;
use serde_json::json;
use tracing::Instrument;

use crate::auth::{self, Attributes, PeerIdentity, TokenAuthenticator, UserInfo};
use crate::encryption::Encryptor;
use crate::error::ApiError;
use crate::handlers;
use crate::http::{self as wire, Params, MAX_BODY};
use crate::registry::Kind;
use crate::resources::{self, Sub};
use crate::secrets::SecretCodec;
use crate::storage::Storage;

/// The Kubernetes version `/version` reports (kubectl's dispatcher picks its binary from it).
pub const KUBE_VERSION: &str = "v1.33.0";

/// Everything a request handler needs.
pub struct ApiState {
    pub(crate) storage: Storage,
    /// Lists, gets and watches served from memory (see `cache`).
    pub(crate) cache: crate::cache::WatchCache,
    pub(crate) tokens: TokenAuthenticator,
    /// Kept in sync by the server while it serves (see `namespaces`).
    pub(crate) namespaces: Arc<crate::namespaces::NamespaceCache>,
    /// Where Services get ClusterIPs and NodePorts from.
    pub(crate) services: crate::services::ServiceNetwork,
    /// Where Nodes get their pod CIDRs from.
    pub(crate) cluster_network: crate::nodeipam::ClusterNetwork,
    /// The cluster DNS and domain nodes write into pods (published with the CIDRs).
    pub(crate) node_defaults: crate::clusterconfig::NodeDefaults,
    /// How this server reaches kubelets (pod logs, exec, attach, port-forward, node proxy).
    kubelet: std::sync::OnceLock<Arc<crate::kubelet_client::KubeletClient>>,
    /// Host paths pods may mount (`hostPath` volumes under one of them); empty: any.
    pub(crate) allowed_host_paths: Vec<std::path::PathBuf>,
    /// The tolerations DefaultTolerationSeconds admission gives pods.
    pub(crate) default_tolerations: crate::kinds::core::pod::DefaultTolerations,
    /// Where `metrics.k8s.io` reads come from: by default the connected nodes' sources.
    metrics: std::sync::RwLock<Arc<dyn crate::metrics::MetricsProvider>>,
    /// The nodes' metrics sources (the default provider).
    node_metrics: Arc<crate::metrics::PerNodeMetrics>,
    /// Signs and verifies service-account tokens.
    pub(crate) sa_signer: Arc<crate::serviceaccount::TokenSigner>,
    /// The longest token TokenRequest gives (`--service-account-max-token-expiration`).
    pub(crate) sa_max_expiration: Option<i64>,
    /// Quota admissions waiting for their namespace's quotas.
    pub(crate) quota_queue: crate::admission::quota::Queue,
    /// The decoded RBAC bindings of the watch cache's current revision.
    pub(crate) rbac_bindings: crate::rbac::BindingsMemo,
    /// The control-plane components this server runs (`componentstatuses`).
    components: std::sync::RwLock<crate::components::Running>,
}

impl ApiState {
    /// State over `store` accepting `tokens` (and any client certificate the TLS layer
    /// verified), encrypting Secrets with `encryptor`.
    pub fn new(
        store: Arc<dyn skiff_store::Store>,
        tokens: TokenAuthenticator,
        encryptor: Arc<Encryptor>,
    ) -> Self {
        let node_metrics = Arc::new(crate::metrics::PerNodeMetrics::default());
        let storage = Storage::new(store, SecretCodec::new(encryptor));
        ApiState {
            cache: crate::cache::WatchCache::with_default_capacity(storage.clone()),
            storage,
            tokens,
            namespaces: Default::default(),
            services: Default::default(),
            cluster_network: Default::default(),
            node_defaults: Default::default(),
            kubelet: Default::default(),
            allowed_host_paths: Vec::new(),
            default_tolerations: Default::default(),
            metrics: std::sync::RwLock::new(node_metrics.clone()),
            node_metrics,
            sa_signer: Arc::new(crate::serviceaccount::TokenSigner::ephemeral(
                crate::serviceaccount::DEFAULT_ISSUER,
            )),
            sa_max_expiration: None,
            quota_queue: Default::default(),
            rbac_bindings: Default::default(),
            components: Default::default(),
        }
    }

    /// Tells `kubectl get componentstatuses` which control-plane components this server runs
    /// (default: none).
    pub fn set_components_running(&self, scheduler: bool, controller_manager: bool) {
        *self
            .components
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = crate::components::Running {
            scheduler,
            controller_manager,
        };
    }

    pub(crate) fn components(&self) -> crate::components::Running {
        *self
            .components
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The same state signing service-account tokens with `signer` (default: a key in
    /// memory), giving tokens of at most `max_expiration` seconds when set.
    pub fn with_service_account_tokens(
        mut self,
        signer: Arc<crate::serviceaccount::TokenSigner>,
        max_expiration: Option<i64>,
    ) -> Self {
        self.sa_signer = signer;
        self.sa_max_expiration = max_expiration;
        self
    }

    /// The service-account token signer (the token controller signs legacy tokens with it).
    pub fn service_account_signer(&self) -> Arc<crate::serviceaccount::TokenSigner> {
        self.sa_signer.clone()
    }

    /// The same state allocating Services from `network` (default: 10.43.0.0/16 and
    /// NodePorts 30000-32767, no API server endpoint published).
    pub fn with_service_network(mut self, network: crate::services::ServiceNetwork) -> Self {
        self.services = network;
        self
    }

    /// The same state giving Nodes pod CIDRs from `network` (default: /24s of 10.42.0.0/16).
    pub fn with_cluster_network(mut self, network: crate::nodeipam::ClusterNetwork) -> Self {
        self.cluster_network = network;
        self
    }

    /// The same state publishing `defaults` to nodes (default: k3s' 10.43.0.10 and
    /// `cluster.local`).
    pub fn with_node_defaults(mut self, defaults: crate::clusterconfig::NodeDefaults) -> Self {
        self.node_defaults = defaults;
        self
    }

    /// The same state serving every read from the store when `enabled` is false (kube-apiserver's
    /// `--watch-cache=false`; default: lists, gets and watches from the watch cache).
    pub fn with_watch_cache(mut self, enabled: bool) -> Self {
        if !enabled {
            self.cache = crate::cache::WatchCache::disabled();
        }
        self
    }

    /// Pods may mount only host paths under one of `prefixes` (none: any).
    pub fn with_allowed_host_paths(mut self, prefixes: Vec<std::path::PathBuf>) -> Self {
        self.allowed_host_paths = prefixes;
        self
    }

    /// The same state giving pods these default not-ready/unreachable tolerations
    /// (default: 300 s each).
    pub fn with_default_tolerations(
        mut self,
        tolerations: crate::kinds::core::pod::DefaultTolerations,
    ) -> Self {
        self.default_tolerations = tolerations;
        self
    }

    /// Reach kubelets with `client` from now on (set once; the server sets it at bind).
    pub fn set_kubelet_client(&self, client: crate::kubelet_client::KubeletClient) {
        let _ = self.kubelet.set(Arc::new(client));
    }

    /// The kubelet client, or the error a request needing one gets without it.
    pub(crate) fn kubelet(&self) -> Result<Arc<crate::kubelet_client::KubeletClient>, ApiError> {
        self.kubelet.get().cloned().ok_or_else(|| {
            ApiError::new(
                503,
                "ServiceUnavailable",
                "this API server has no client credentials for kubelets",
            )
        })
    }

    /// Node `name` reports resource usage through `source` from now on (served by the
    /// default provider).
    pub fn connect_node_metrics(
        &self,
        name: &str,
        source: Arc<dyn crate::metrics::NodeMetricsSource>,
    ) {
        self.node_metrics.connect(name, source);
    }

    /// Reads the resource usage of nodes not connected in-process from their kubelet APIs
    /// every `period` until `stop` completes.
    pub fn scrape_node_metrics(
        self: &Arc<Self>,
        period: std::time::Duration,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(crate::kubelet_metrics::run(
            self.clone(),
            self.node_metrics.clone(),
            period,
            stop,
        ))
    }

    /// Node `name` reports no more resource usage.
    pub fn disconnect_node_metrics(&self, name: &str) {
        self.node_metrics.disconnect(name);
    }

    /// Serves `metrics.k8s.io` from `provider` from now on (instead of the nodes' sources).
    pub fn set_metrics_provider(&self, provider: Arc<dyn crate::metrics::MetricsProvider>) {
        *self.metrics.write().unwrap_or_else(|e| e.into_inner()) = provider;
    }

    /// The current metrics provider.
    pub fn metrics(&self) -> Arc<dyn crate::metrics::MetricsProvider> {
        self.metrics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Creates the namespaces every cluster has, the `default/kubernetes` Service and the
    /// cluster settings published to nodes; idempotent.
    pub async fn bootstrap(&self) -> Result<(), ApiError> {
        handlers::bootstrap(self).await
    }
}

/// The router of the whole API; in-process clients can call it without TCP.
pub fn router(state: Arc<ApiState>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(state)
}

/// The router for in-process clients (controllers and scheduler in single-binary mode):
/// every request is made as `user`, without TCP, TLS or a token.
pub fn in_process_router(state: Arc<ApiState>, user: UserInfo) -> axum::Router {
    let identity = PeerIdentity(Some(user));
    router(state).layer(axum::middleware::map_request(move |mut req: Request| {
        let identity = identity.clone();
        async move {
            req.extensions_mut().insert(identity);
            req
        }
    }))
}

/// A kube-rs client of this API server that never leaves the process: requests go straight
/// to [`in_process_router`] as `user` (no TCP, no TLS), through the same handlers a remote
/// client reaches. In-process controllers and the local node use it.
///
/// Each request runs in a task of its own, as it would on a connection of a real server: a
/// caller that stops polling its request future (a controller busy elsewhere, a dropped
/// `select!` branch) must not hold the store slots, locks or quota charges the handler is
/// in the middle of using, and a write it started completes.
pub fn in_process_client(state: Arc<ApiState>, user: UserInfo) -> kube::Client {
    use tower::ServiceExt;
    let router = in_process_router(state, user);
    let service = tower::service_fn(move |req: Request<kube::client::Body>| {
        let router = router.clone();
        async move {
            match tokio::spawn(router.oneshot(req)).await {
                Ok(Ok(response)) => Ok::<_, std::convert::Infallible>(response),
                Ok(Err(never)) => match never {},
                Err(join) => Ok(
                    ApiError::internal(format!("request handler failed: {join}")).into_response(),
                ),
            }
        }
    });
    kube::Client::new(service, "default")
}

/// A resource request, parsed from its path.
#[derive(Debug, Clone)]
pub struct Target {
    pub kind: &'static dyn Kind,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub subresource: Option<Sub>,
    /// Reached through the `/watch/` path prefix (a GET there is a watch).
    pub watch_path: bool,
}

enum Route {
    Health,
    Version,
    Discovery(Vec<String>),
    OpenApi(Vec<String>),
    Resource(Target),
    /// `/api/v1/namespaces/NS/pods/NAME/log`: served through the pod's node.
    PodLog {
        namespace: String,
        name: String,
    },
    /// `/api/v1/namespaces/NS/pods/NAME/exec|attach|portforward`: proxied to the pod's node.
    PodStream {
        namespace: String,
        name: String,
        which: crate::nodes::PodStream,
    },
    /// `/api/v1/nodes/NAME/proxy[/PATH]`: proxied to the node's kubelet.
    NodeProxy {
        name: String,
        path: String,
    },
    /// `/apis/authentication.k8s.io|authorization.k8s.io/v1/[namespaces/NS/]…reviews`: who
    /// someone is, may they do something ([`crate::reviews`]).
    Review {
        review: crate::reviews::Review,
        namespace: Option<String>,
    },
    /// `GET /apis/apiextensions.k8s.io/v1/customresourcedefinitions`: skiff serves no
    /// CustomResourceDefinitions, and says so with an empty list. kubectl's validation asks
    /// it for every kind without a PATCH operation (the reviews) and fails on a 404.
    NoCustomResourceDefinitions,
}

fn not_found() -> ApiError {
    ApiError::new(
        404,
        "NotFound",
        "the server could not find the requested resource",
    )
}

fn parse(path: &str) -> Result<Route, ApiError> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    match s.as_slice() {
        ["healthz" | "livez" | "readyz", ..] => return Ok(Route::Health),
        ["version"] => return Ok(Route::Version),
        ["apis", "apiextensions.k8s.io", "v1", "customresourcedefinitions"] => {
            return Ok(Route::NoCustomResourceDefinitions)
        }
        ["openapi", rest @ ..] => {
            return Ok(Route::OpenApi(rest.iter().map(|x| x.to_string()).collect()))
        }
        ["api"] | ["api", _] | ["apis"] | ["apis", _] | ["apis", _, _] => {
            return Ok(Route::Discovery(segs))
        }
        ["api", "v1", "namespaces", ns, "pods", name, "log"] => {
            return Ok(Route::PodLog {
                namespace: ns.to_string(),
                name: name.to_string(),
            })
        }
        ["api", "v1", "namespaces", ns, "pods", name, sub] => {
            if let Some(which) = crate::nodes::PodStream::parse(sub) {
                return Ok(Route::PodStream {
                    namespace: ns.to_string(),
                    name: name.to_string(),
                    which,
                });
            }
        }
        ["apis", g, v, plural] => {
            if let Some(review) = crate::reviews::Review::find(g, v, plural, false) {
                return Ok(Route::Review {
                    review,
                    namespace: None,
                });
            }
        }
        ["apis", g, v, "namespaces", ns, plural] => {
            if let Some(review) = crate::reviews::Review::find(g, v, plural, true) {
                return Ok(Route::Review {
                    review,
                    namespace: Some(ns.to_string()),
                });
            }
        }
        ["api", "v1", "nodes", name, "proxy", rest @ ..] => {
            return Ok(Route::NodeProxy {
                name: name.to_string(),
                path: rest.join("/"),
            })
        }
        _ => {}
    }
    let (group, version, rest) = match s.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(not_found()),
    };
    // `/watch/…` paths (deprecated, still served by Kubernetes) watch what follows.
    let (watch_path, rest) = match rest {
        ["watch", more @ ..] if !more.is_empty() => (true, more),
        other => (false, other),
    };
    let (namespace, rest): (Option<String>, Vec<&str>) = match rest {
        // A namespace's own subresources: /api/v1/namespaces/NAME/status|finalize.
        ["namespaces", name, sub] if group.is_empty() && Sub::parse(sub).is_some() => {
            let kind = resources::find("", version, "namespaces").ok_or_else(not_found)?;
            let sub = Sub::parse(sub).filter(|s| kind.info().has_subresource(*s));
            return Ok(Route::Resource(Target {
                kind,
                namespace: None,
                name: Some(name.to_string()),
                subresource: Some(sub.ok_or_else(not_found)?),
                watch_path,
            }));
        }
        ["namespaces", ns, more @ ..] if !more.is_empty() => (Some(ns.to_string()), more.to_vec()),
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(name.to_string()), None),
        [plural, name, sub] => (*plural, Some(name.to_string()), Some(sub.to_string())),
        _ => return Err(not_found()),
    };
    let kind = resources::find(group, version, plural).ok_or_else(not_found)?;
    if namespace.is_some() && !kind.info().namespaced {
        return Err(not_found());
    }
    if watch_path && sub.is_some() {
        return Err(not_found());
    }
    let subresource = match sub {
        None => None,
        Some(s) => Some(
            Sub::parse(&s)
                .filter(|s| kind.info().has_subresource(*s))
                .ok_or_else(not_found)?,
        ),
    };
    Ok(Route::Resource(Target {
        kind,
        namespace,
        name,
        subresource,
        watch_path,
    }))
}

async fn handle(State(state): State<Arc<ApiState>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::debug_span!("request", %method, %path);
    async move {
        match serve(state, req).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(code = e.code, message = %e.message, "request failed");
                e.into_response()
            }
        }
    }
    .instrument(span)
    .await
}

async fn serve(state: Arc<ApiState>, req: Request) -> Result<Response, ApiError> {
    let route = parse(req.uri().path())?;
    match route {
        Route::Health => {
            let path = req.uri().path();
            let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
            return Ok(crate::health::answer(&state, &segments, req.uri().query()).await);
        }
        Route::Version => return Ok(wire::json(200, &version())),
        _ => {}
    }
    let authorization = req
        .headers()
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let user = match auth::authenticate(
        req.extensions().get::<PeerIdentity>(),
        authorization,
        &state.tokens,
    ) {
        Ok(user) => user,
        Err(unauthorized) => service_account(&state, authorization)
            .await
            .ok_or(unauthorized)?,
    };
    let user = crate::rbac::impersonate::resolve(&state, user, req.headers()).await?;
    match route {
        Route::Discovery(segs) => crate::discovery::serve(&segs, req.headers()),
        Route::OpenApi(segs) => crate::openapi::serve(&segs, req.headers()),
        Route::Resource(target) => {
            let params = Params::parse(req.uri())?;
            let verb = verb(req.method(), &target, &params);
            let (parts, body) = req.into_parts();
            let body = read_body(body).await?;
            let info = target.kind.info();
            let selected = selected_name(verb, &params);
            let name = target.name.as_deref().or(selected.as_deref());
            // A namespace is authorized in itself, as kube-apiserver's request info has it:
            // a RoleBinding in `foo` may grant `get namespaces` on `foo`.
            let namespace = match (info.group, info.plural) {
                ("", "namespaces") => target.name.as_deref(),
                _ => target.namespace.as_deref(),
            };
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb,
                    group: info.group,
                    resource: info.plural,
                    subresource: target.subresource.map(|s| s.name()),
                    namespace,
                    name,
                },
                &body,
            )
            .await?;
            let ctx = handlers::Ctx {
                state: &state,
                target: &target,
                params: &params,
                headers: &parts.headers,
                user: &user,
            };
            let answer = handlers::dispatch(ctx, verb, body).await;
            match deprecation_warning(info.group, info.plural) {
                // Every request on a deprecated resource is told so, errors included, as
                // kube-apiserver's handlers do once a request is authorized.
                Some(warning) => Ok(wire::with_warnings(
                    answer.unwrap_or_else(IntoResponse::into_response),
                    &[warning.to_string()],
                )),
                None => answer,
            }
        }
        Route::NoCustomResourceDefinitions => {
            let params = Params::parse(req.uri())?;
            if req.method() != Method::GET || params.watch.as_deref() == Some("true") {
                return Err(not_found());
            }
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb: "list",
                    group: "apiextensions.k8s.io",
                    resource: "customresourcedefinitions",
                    subresource: None,
                    namespace: None,
                    name: None,
                },
                &[],
            )
            .await?;
            let revision = state.storage.store.current_revision().await?;
            Ok(wire::json(
                200,
                &json!({
                    "kind": "CustomResourceDefinitionList",
                    "apiVersion": "apiextensions.k8s.io/v1",
                    "metadata": {"resourceVersion": revision.to_string()},
                    "items": [],
                }),
            ))
        }
        Route::PodLog { namespace, name } => {
            if req.method() != Method::GET {
                return Err(method_not_allowed());
            }
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb: "get",
                    group: "",
                    resource: "pods",
                    subresource: Some("log"),
                    namespace: Some(&namespace),
                    name: Some(&name),
                },
                &[],
            )
            .await?;
            crate::nodes::pod_log(&state, &namespace, &name, req).await
        }
        Route::PodStream {
            namespace,
            name,
            which,
        } => {
            // Streams are authorized as `create` whatever the method (WebSocket clients GET).
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb: "create",
                    group: "",
                    resource: "pods",
                    subresource: Some(which.subresource()),
                    namespace: Some(&namespace),
                    name: Some(&name),
                },
                &[],
            )
            .await?;
            crate::nodes::pod_stream(&state, &namespace, &name, which, req).await
        }
        Route::NodeProxy { name, path } => {
            let verb = match *req.method() {
                Method::GET | Method::HEAD => "get",
                Method::POST => "create",
                Method::PUT => "update",
                Method::PATCH => "patch",
                Method::DELETE => "delete",
                _ => "unsupported",
            };
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb,
                    group: "",
                    resource: "nodes",
                    subresource: Some("proxy"),
                    namespace: None,
                    name: Some(&name),
                },
                &[],
            )
            .await?;
            crate::nodes::node_proxy(&state, &name, &path, req).await
        }
        Route::Review { review, namespace } => {
            if req.method() != Method::POST {
                return Err(method_not_allowed());
            }
            let info = review.info();
            crate::nodeauth::authorize(
                &state,
                &user,
                &Attributes {
                    verb: "create",
                    group: info.group,
                    resource: info.plural,
                    subresource: None,
                    namespace: namespace.as_deref(),
                    name: None,
                },
                &[],
            )
            .await?;
            let (parts, body) = req.into_parts();
            let body = read_body(body).await?;
            let body = wire::decode_object(&parts.headers, &body)?;
            use crate::reviews::Review;
            match review {
                Review::SelfSubject => crate::serviceaccount::review::whoami(&user, body),
                Review::Token => crate::serviceaccount::review::token(&state, body).await,
                _ => {
                    crate::rbac::review::answer(&state, &user, review, namespace.as_deref(), body)
                        .await
                }
            }
        }
        Route::Health | Route::Version => unreachable!("answered before authentication"),
    }
}

/// The warning kube-apiserver 1.33 adds to every request on a deprecated resource.
fn deprecation_warning(group: &str, plural: &str) -> Option<&'static str> {
    match (group, plural) {
        ("", "componentstatuses") => Some("v1 ComponentStatus is deprecated in v1.19+"),
        ("", "endpoints") => {
            Some("v1 Endpoints is deprecated in v1.33+; use discovery.k8s.io/v1 EndpointSlice")
        }
        _ => None,
    }
}

/// The service account a bearer JWT stands for, when it still holds (why not is logged,
/// never told: the client gets 401 as for any bad token).
async fn service_account(state: &ApiState, authorization: Option<&str>) -> Option<UserInfo> {
    let token = authorization?.strip_prefix("Bearer ")?.trim();
    match crate::serviceaccount::authn::authenticate(state, token).await {
        Ok(user) => user,
        Err(why) => {
            tracing::debug!(%why, "service-account token refused");
            None
        }
    }
}

/// The object a list or watch selects by `fieldSelector=metadata.name=NAME` (alone), which
/// kube-apiserver authorizes as a request for that name (so `resourceNames` rules allow
/// `kubectl get cm NAME -w`).
fn selected_name(verb: &str, params: &Params) -> Option<String> {
    if !matches!(verb, "list" | "watch") {
        return None;
    }
    let selector = params.field_selector.as_deref()?;
    let value = selector
        .strip_prefix("metadata.name==")
        .or_else(|| selector.strip_prefix("metadata.name="))?;
    (!value.is_empty() && !value.contains(',')).then(|| value.to_string())
}

fn verb(method: &Method, t: &Target, params: &Params) -> &'static str {
    match (method.as_str(), t.name.is_some()) {
        ("GET", _) if wire::flag(&params.watch) || t.watch_path => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        _ if t.watch_path => "unsupported",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unsupported",
    }
}

async fn read_body(body: Body) -> Result<bytes::Bytes, ApiError> {
    to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!("the request body exceeds the limit of {MAX_BODY} bytes"),
        )
    })
}

fn version() -> serde_json::Value {
    json!({
        "major": "1",
        "minor": "33",
        "gitVersion": KUBE_VERSION,
        "gitCommit": "skiff",
        "gitTreeState": "clean",
        "buildDate": "2025-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Kubernetes' 405 for a method a route does not serve.
fn method_not_allowed() -> ApiError {
    ApiError::new(
        405,
        "MethodNotAllowed",
        "the server does not allow this method on the requested resource",
    )
}
