//! The control plane's health as core/v1 ComponentStatus objects. kube-apiserver probes the
//! scheduler's and the controller manager's `/healthz` and each etcd server; skiff runs both
//! components in the server's own process, so each is healthy when this server runs it
//! (`--disable-scheduler` / `--disable-controllers` make it unhealthy, as a component that
//! does not answer is upstream). The datastore, SQLite included, answers as the `etcd`
//! check of `/readyz` does, under kube-apiserver's name `etcd-0` (k3s' kine does the same).

use axum::response::Response;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::handlers::Ctx;
use crate::router::ApiState;

/// Which components run in this server.
#[derive(Debug, Default, Clone, Copy)]
pub struct Running {
    pub scheduler: bool,
    pub controller_manager: bool,
}

fn status(name: &str, health: Result<(), String>) -> Value {
    let condition = match health {
        Ok(()) => json!({"type": "Healthy", "status": "True", "message": "ok"}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name},
        "conditions": [condition]})
}

fn running(yes: bool, flag: &str) -> Result<(), String> {
    match yes {
        true => Ok(()),
        false => Err(format!("not running: this server was started with {flag}")),
    }
}

pub(crate) async fn objects(state: &ApiState) -> Vec<Value> {
    let r = state.components();
    vec![
        status("scheduler", running(r.scheduler, "--disable-scheduler")),
        status(
            "controller-manager",
            running(r.controller_manager, "--disable-controllers"),
        ),
        status("etcd-0", crate::health::run(state, "etcd").await),
    ]
}

/// GET of one component or of all; every other verb is refused.
pub(crate) async fn serve(ctx: Ctx<'_>, verb: &str) -> Result<Response, ApiError> {
    crate::metrics::read_only(ctx, verb, async { Ok(objects(ctx.state).await) }).await
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn healthy(objects: &[Value], name: &str) -> Value {
        let o = objects
            .iter()
            .find(|o| o["metadata"]["name"] == name)
            .unwrap();
        o["conditions"][0].clone()
    }

    #[tokio::test]
    async fn components_are_healthy_when_this_server_runs_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = skiff_store::open("sqlite", dir.path()).await.unwrap();
        let encryptor = Arc::new(crate::encryption::Encryptor::load_or_create(dir.path()).unwrap());
        let state = ApiState::new(store, Default::default(), encryptor);
        state.set_components_running(false, true);
        let objects = objects(&state).await;
        assert_eq!(objects.len(), 3);
        let scheduler = healthy(&objects, "scheduler");
        assert_eq!(scheduler["status"], "False");
        assert!(scheduler["error"]
            .as_str()
            .unwrap()
            .contains("--disable-scheduler"));
        for name in ["controller-manager", "etcd-0"] {
            let c = healthy(&objects, name);
            assert_eq!(
                (c["type"].as_str(), c["status"].as_str()),
                (Some("Healthy"), Some("True"))
            );
            assert_eq!(c["message"], "ok");
        }
    }
}
