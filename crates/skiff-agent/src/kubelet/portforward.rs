//! `/portForward/NS/POD`. kubectl 1.32 speaks SPDY/3.1 here (tunnelled in WebSocket, or
//! plain), which this kubelet does not serve yet: the request is answered with a clear error
//! instead of an upgrade, after checking that the pod runs on this node.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{text, Body, Kubelet};

pub(super) async fn serve(
    kubelet: &Kubelet,
    _req: Request<Incoming>,
    ns: &str,
    pod: &str,
) -> Response<Body> {
    let running = kubelet
        .engine
        .container_list(&skiff_engine::ListOptions {
            all: false,
            filters: skiff_engine::Filters::from_pairs([
                (
                    "label",
                    format!("{}={ns}", crate::labels::POD_NAMESPACE).as_str(),
                ),
                (
                    "label",
                    format!("{}={pod}", crate::labels::POD_NAME).as_str(),
                ),
            ]),
            ..Default::default()
        })
        .await
        .map(|l| !l.is_empty())
        .unwrap_or(false);
    if !running {
        return text(
            StatusCode::NOT_FOUND,
            format!("pod {ns}/{pod} has no running container on this node"),
        );
    }
    let _ = &kubelet.sandboxes_dir;
    text(
        StatusCode::BAD_REQUEST,
        "unable to upgrade: port forwarding (SPDY/3.1) is not served by this kubelet yet",
    )
}
