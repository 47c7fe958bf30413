//! What the API server's benches share: knobs from the environment, users, and a bootstrapped
//! API state on a temporary SQLite store.

use std::path::Path;
use std::sync::Arc;

use skiff_apiserver::auth::{TokenAuthenticator, UserInfo};
use skiff_apiserver::ApiState;

/// The number in the environment variable `name`, or `default`.
pub fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A user without a uid in `groups`.
pub fn user(name: &str, groups: &[&str]) -> UserInfo {
    UserInfo {
        name: name.into(),
        uid: String::new(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

/// An API state on a SQLite store in `dir`, bootstrapped (default namespaces, RBAC roles).
pub async fn sqlite_state(dir: &Path) -> Arc<ApiState> {
    let store = skiff_store::open("sqlite", dir).await.unwrap();
    let encryptor = Arc::new(skiff_apiserver::encryption::Encryptor::load_or_create(dir).unwrap());
    let state = Arc::new(ApiState::new(
        store,
        TokenAuthenticator::default(),
        encryptor,
    ));
    state.bootstrap().await.unwrap();
    state
}
