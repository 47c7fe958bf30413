//! The controller set of `skiff server`, in-process: a kube client wired straight to the API
//! router (no TCP), acting as kube-controller-manager's user, leader-elected on its Lease.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use skiff_apiserver::ApiState;

/// The controllers' settings (kube-controller-manager's flags).
#[derive(clap::Args)]
pub struct ControllerArgs {
    /// How often the HorizontalPodAutoscaler controller syncs each HPA
    #[arg(long, default_value = "15s")]
    horizontal_pod_autoscaler_sync_period: humantime::Duration,
    /// How long an HPA without `behavior` keeps its highest recent recommendation before
    /// scaling down
    #[arg(long, default_value = "5m")]
    horizontal_pod_autoscaler_downscale_stabilization: humantime::Duration,
    /// How far usage may stray from an HPA's target before it rescales (a fraction)
    #[arg(long, default_value_t = 0.1)]
    horizontal_pod_autoscaler_tolerance: f64,
    /// How long a node may go without renewing its Lease before it is marked
    /// NotReady/Unknown and tainted unreachable (kube-controller-manager: 40s)
    #[arg(long, default_value = "40s", value_parser = skiff_controllers::parse_duration)]
    node_monitor_grace_period: std::time::Duration,
    /// Terminated pods kept before the oldest are deleted (0: none are collected by count)
    #[arg(long, default_value_t = 12500)]
    terminated_pod_gc_threshold: usize,
    /// How often every ResourceQuota's usage is recounted (pod and service changes recount
    /// their namespace's quotas at once)
    #[arg(long, default_value = "5m", value_parser = skiff_controllers::parse_duration)]
    resource_quota_sync_period: std::time::Duration,
}

/// Legacy service-account tokens signed with the API server's key.
struct Signer(Arc<skiff_apiserver::serviceaccount::TokenSigner>);

impl skiff_controllers::serviceaccounts::TokenGenerator for Signer {
    fn generate(&self, ns: &str, name: &str, uid: &str, secret: &str) -> Result<String, String> {
        self.0
            .sign_legacy(ns, name, uid, secret)
            .map_err(|e| e.to_string())
    }
}

impl ControllerArgs {
    fn config(&self) -> skiff_controllers::Config {
        skiff_controllers::Config {
            node_monitor_grace_period: self.node_monitor_grace_period,
            terminated_pod_gc_threshold: self.terminated_pod_gc_threshold,
            resource_quota_sync_period: self.resource_quota_sync_period,
            hpa: skiff_controllers::hpa::Config {
                sync_period: self.horizontal_pod_autoscaler_sync_period.into(),
                downscale_stabilization: self
                    .horizontal_pod_autoscaler_downscale_stabilization
                    .into(),
                tolerance: self.horizontal_pod_autoscaler_tolerance,
            },
            ..Default::default()
        }
    }
}

/// Starts the controllers unless `disabled`. Returns the server's shutdown signal: it
/// completes after `signal` and after the controllers have stopped and released their Lease.
pub fn start(
    state: &Arc<ApiState>,
    root_ca: Option<String>,
    disabled: bool,
    args: &ControllerArgs,
    signal: impl Future<Output = ()> + Send + 'static,
) -> Pin<Box<dyn Future<Output = ()> + Send>> {
    if disabled {
        tracing::info!("controllers disabled");
        return Box::pin(signal);
    }
    let user = skiff_apiserver::auth::component("system:kube-controller-manager");
    let client = skiff_apiserver::in_process_client(state.clone(), user);
    let mut config = args.config();
    config.service_accounts = skiff_controllers::serviceaccounts::Config {
        root_ca,
        tokens: Some(Arc::new(Signer(state.service_account_signer()))),
    };
    Box::pin(skiff_controllers::start(client, config, signal))
}
