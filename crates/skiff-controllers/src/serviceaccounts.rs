//! Two small controllers of service accounts, as kube-controller-manager runs them:
//! the root-CA publisher (`root-ca-cert-publisher`) keeps a `kube-root-ca.crt` ConfigMap
//! with the cluster CA (key `ca.crt`) in every namespace, for the `kube-api-access-*`
//! volumes pods get; and the token controller (`tokens_controller`) fills each Secret of
//! type `kubernetes.io/service-account-token` that names a service account (annotation
//! `kubernetes.io/service-account.name`) with `token`, `ca.crt` and `namespace`, and
//! deletes such Secrets whose account is gone (or was recreated with another uid).
//!
//! They sign nothing themselves: the legacy token comes from the [`TokenGenerator`] the
//! server hands in (the API server's signing key).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

use crate::error::{Error, Result};

/// The ConfigMap the publisher keeps in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// The Secret type the token controller fills.
pub const TOKEN_SECRET_TYPE: &str = "kubernetes.io/service-account-token";
const SA_NAME: &str = "kubernetes.io/service-account.name";
const SA_UID: &str = "kubernetes.io/service-account.uid";
const FIELD_MANAGER: &str = "skiff-controllers";

/// Makes legacy tokens (kube-controller-manager's `--service-account-private-key-file`).
pub trait TokenGenerator: Send + Sync {
    /// A token for service account `name` (uid `uid`) of `ns`, held by Secret `secret`.
    fn generate(&self, ns: &str, name: &str, uid: &str, secret: &str) -> Result<String, String>;
}

/// What the two controllers need; either may be missing (then that controller is off).
#[derive(Clone, Default)]
pub struct Config {
    /// The cluster CA, PEM.
    pub root_ca: Option<String>,
    pub tokens: Option<Arc<dyn TokenGenerator>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("root_ca", &self.root_ca.is_some())
            .field("tokens", &self.tokens.is_some())
            .finish()
    }
}

struct Publisher {
    client: Client,
    ca: String,
}

/// Runs the root-CA publisher until dropped: namespaces are reconciled when they change and
/// when their `kube-root-ca.crt` does.
pub async fn root_ca_publisher(client: Client, ca: String) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let maps: Api<ConfigMap> = Api::all(client.clone());
    let only_ours =
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}"));
    Controller::new(namespaces, watcher::Config::default())
        .watches(maps, only_ours, |cm| {
            cm.namespace().map(|ns| ObjectRef::<Namespace>::new(&ns))
        })
        .run(
            publish,
            |_, e: &Error, _| {
                tracing::debug!(error = %e, "root CA not published; retrying");
                Action::requeue(Duration::from_secs(2))
            },
            Arc::new(Publisher { client, ca }),
        )
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn publish(ns: Arc<Namespace>, ctx: Arc<Publisher>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let want = BTreeMap::from([("ca.crt".to_string(), ctx.ca.clone())]);
    match api.get_opt(ROOT_CA_CONFIG_MAP).await? {
        None => {
            let cm = ConfigMap {
                metadata: kube::api::ObjectMeta {
                    name: Some(ROOT_CA_CONFIG_MAP.into()),
                    annotations: Some(BTreeMap::from([(
                        "kubernetes.io/description".to_string(),
                        "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.".to_string(),
                    )])),
                    ..Default::default()
                },
                data: Some(want),
                ..Default::default()
            };
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => {}
                // A namespace being deleted refuses new objects; the watch says when it goes.
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Some(cm) if cm.data.as_ref() != Some(&want) => {
            let patch = json!({"data": want});
            api.patch(
                ROOT_CA_CONFIG_MAP,
                &PatchParams::apply(FIELD_MANAGER),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}

struct Filler {
    client: Client,
    ca: Option<String>,
    tokens: Arc<dyn TokenGenerator>,
}

/// Runs the token controller until dropped.
pub async fn token_controller(client: Client, config: Config) {
    let Some(tokens) = config.tokens.clone() else {
        return;
    };
    let secrets: Api<Secret> = Api::all(client.clone());
    let accounts: Api<ServiceAccount> = Api::all(client.clone());
    let ctl = Controller::new(secrets, watcher::Config::default());
    let store = ctl.store();
    ctl.watches(accounts, watcher::Config::default(), move |sa| {
        // An account's change (or deletion) concerns the token Secrets naming it.
        let ns = sa.namespace().unwrap_or_default();
        let name = sa.name_any();
        store
            .state()
            .iter()
            .filter(|s| s.namespace().as_deref() == Some(ns.as_str()))
            .filter(|s| s.annotations().get(SA_NAME) == Some(&name))
            .map(|s| ObjectRef::from_obj(s.as_ref()))
            .collect::<Vec<_>>()
    })
    .run(
        fill,
        |_, e: &Error, _| {
            tracing::debug!(error = %e, "service-account token not filled; retrying");
            Action::requeue(Duration::from_secs(2))
        },
        Arc::new(Filler {
            client,
            ca: config.root_ca.clone(),
            tokens,
        }),
    )
    .for_each(|_| futures::future::ready(()))
    .await;
}

async fn fill(secret: Arc<Secret>, ctx: Arc<Filler>) -> Result<Action> {
    if secret.type_.as_deref() != Some(TOKEN_SECRET_TYPE)
        || secret.metadata.deletion_timestamp.is_some()
    {
        return Ok(Action::await_change());
    }
    let ns = secret.namespace().unwrap_or_default();
    let name = secret.name_any();
    let Some(account) = secret.annotations().get(SA_NAME).cloned() else {
        return Ok(Action::await_change());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &ns);
    let accounts: Api<ServiceAccount> = Api::namespaced(ctx.client.clone(), &ns);
    let sa = accounts.get_opt(&account).await?;
    let sa_uid = sa.as_ref().and_then(|s| s.metadata.uid.clone());
    let named_uid = secret.annotations().get(SA_UID).cloned();
    let gone = match (&sa_uid, &named_uid) {
        (None, _) => true,
        (Some(have), Some(want)) => have != want,
        (Some(_), None) => false,
    };
    if gone {
        // As upstream: a token Secret outlives no account.
        match secrets.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e.into()),
        }
        return Ok(Action::await_change());
    }
    let uid = sa_uid.unwrap_or_default();
    let data = secret.data.clone().unwrap_or_default();
    let has = |k: &str| data.get(k).is_some_and(|v| !v.0.is_empty());
    let ca_ok = ctx
        .ca
        .as_ref()
        .is_none_or(|ca| data.get("ca.crt").map(|v| v.0.as_slice()) == Some(ca.as_bytes()));
    if has("token") && ca_ok && has("namespace") && named_uid.is_some() {
        return Ok(Action::await_change());
    }
    let token = match data.get("token").filter(|t| !t.0.is_empty()) {
        Some(t) => String::from_utf8_lossy(&t.0).into_owned(),
        None => ctx
            .tokens
            .generate(&ns, &account, &uid, &name)
            .map_err(|reason| Error::Invalid {
                kind: "Secret",
                name: format!("{ns}/{name}"),
                reason,
            })?,
    };
    let mut fill: BTreeMap<String, ByteString> = BTreeMap::new();
    fill.insert("token".into(), ByteString(token.into_bytes()));
    fill.insert("namespace".into(), ByteString(ns.clone().into_bytes()));
    if let Some(ca) = &ctx.ca {
        fill.insert("ca.crt".into(), ByteString(ca.clone().into_bytes()));
    }
    let patch = json!({"metadata": {"annotations": {SA_UID: uid},
        "resourceVersion": secret.resource_version()}, "data": fill});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Action::await_change())
}
