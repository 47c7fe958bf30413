//! The controller set of `skiff server`, in-process: a kube client wired straight to the API
//! router (no TCP), acting as kube-controller-manager's user, leader-elected on its Lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use skiff_apiserver::auth::UserInfo;
use skiff_apiserver::ApiState;

/// Starts the controllers unless `disabled`. Returns the server's shutdown signal: it
/// completes after `signal` and after the controllers have stopped and released their Lease.
pub fn start(
    state: &Arc<ApiState>,
    disabled: bool,
    config: skiff_controllers::Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if disabled {
        tracing::info!("controllers disabled");
        return Box::pin(signal);
    }
    let user = UserInfo {
        name: "system:kube-controller-manager".into(),
        uid: String::new(),
        groups: vec!["system:authenticated".into()],
    };
    let client = skiff_apiserver::in_process_client(state.clone(), user);
    Box::pin(skiff_controllers::start(client, config, signal))
}
