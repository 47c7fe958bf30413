//! Two small controllers of service accounts, as kube-controller-manager runs them:
//! the root-CA publisher (`root-ca-cert-publisher`) keeps a `kube-root-ca.crt` ConfigMap
//! with the cluster CA (key `ca.crt`) in every namespace, for the `kube-api-access-*`
//! volumes pods get; and the token controller (`tokens_controller`) fills each Secret of
//! type `kubernetes.io/service-account-token` that names a service account (annotation
//! `kubernetes.io/service-account.name`) with `token`, `ca.crt` and `namespace`, and
//! deletes such Secrets whose account is gone (or was recreated with another uid).
//!
//! They sign nothing themselves: the legacy token comes from the [`TokenGenerator`] the
//! server hands in (the API server's signing key). They read what they watch from informers
//! (the shared Namespace one, their own of ServiceAccounts, token Secrets and the
//! `kube-root-ca.crt` ConfigMaps), not from the API.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::ResourceExt;
use serde_json::json;

use crate::context::Context;
use crate::error::{Error, Result};
use crate::informer::{Change, Informer};
use crate::runner;

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

/// Runs the root-CA publisher until dropped: namespaces (the shared informer) are
/// reconciled when they change and when their `kube-root-ca.crt` does, which an informer of
/// only those ConfigMaps keeps in memory.
pub async fn root_ca_publisher(ctx: Arc<Context>, ca: String) {
    let only_ours =
        watcher::Config::default().fields(&format!("metadata.name={ROOT_CA_CONFIG_MAP}"));
    let maps = Arc::new(Informer::<ConfigMap>::with_config(
        ctx.client.clone(),
        only_ours,
    ));
    let namespaces = ctx.informers.namespaces.store();
    let own = runner::own(ctx.informers.namespaces.changes(), namespaces.clone());
    let by_map = runner::map_changes(maps.changes(), |c| match c {
        Change::Applied { new, .. } => namespace_of(&new),
        Change::Deleted(old) => namespace_of(&old),
        // The first list (and any re-list) is covered by the first sync of every namespace.
        Change::Relisted => Vec::new(),
    });
    let publisher = Arc::new(Publisher {
        ca,
        maps: maps.store(),
    });
    let run = async {
        maps.synced().await;
        runner::run(
            "root-ca-cert-publisher",
            ctx.clone(),
            namespaces,
            vec![own, by_map],
            move |ns, ctx| Box::pin(publish(ns, ctx, publisher.clone())),
        )
        .await
    };
    tokio::join!(maps.run(), run);
}

fn namespace_of(cm: &ConfigMap) -> Vec<ObjectRef<Namespace>> {
    cm.namespace()
        .map(|ns| ObjectRef::<Namespace>::new(&ns))
        .into_iter()
        .collect()
}

struct Publisher {
    ca: String,
    /// The `kube-root-ca.crt` ConfigMaps of every namespace.
    maps: Store<ConfigMap>,
}

async fn publish(ns: Arc<Namespace>, ctx: Arc<Context>, p: Arc<Publisher>) -> Result<Action> {
    if ns.metadata.deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let name = ns.name_any();
    let api: Api<ConfigMap> = Api::namespaced(ctx.client.clone(), &name);
    let want = BTreeMap::from([("ca.crt".to_string(), p.ca.clone())]);
    // A stale cache only costs a 409 on create or a patch that changes nothing.
    let cached = p
        .maps
        .get(&ObjectRef::new(ROOT_CA_CONFIG_MAP).within(&name));
    match cached {
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
    ca: Option<String>,
    tokens: Arc<dyn TokenGenerator>,
    /// Every ServiceAccount (the informer the triggers come from).
    accounts: Store<ServiceAccount>,
}

/// Runs the token controller until dropped: token Secrets are reconciled when they change
/// and when the account they name does; both kinds are read from informers.
pub async fn token_controller(ctx: Arc<Context>) {
    let config = ctx.config.service_accounts.clone();
    let Some(tokens) = config.tokens.clone() else {
        return;
    };
    let secrets = Informer::<Secret>::new(ctx.client.clone());
    let accounts = Informer::<ServiceAccount>::new(ctx.client.clone());
    let store = secrets.store();
    let own = runner::own(secrets.changes(), store.clone());
    let by_account = {
        let store = store.clone();
        // An account's change (or deletion) concerns the token Secrets naming it.
        runner::map_changes(accounts.changes(), move |c| match c {
            Change::Applied { new, .. } => secrets_naming(&store, &new),
            Change::Deleted(old) => secrets_naming(&store, &old),
            Change::Relisted => runner::all(&store),
        })
    };
    let filler = Arc::new(Filler {
        ca: config.root_ca.clone(),
        tokens,
        accounts: accounts.store(),
    });
    let run = async {
        tokio::join!(secrets.synced(), accounts.synced());
        runner::run(
            "serviceaccount-token",
            ctx.clone(),
            store,
            vec![own, by_account],
            move |secret, ctx| Box::pin(fill(secret, ctx, filler.clone())),
        )
        .await
    };
    tokio::join!(secrets.run(), accounts.run(), run);
}

fn secrets_naming(secrets: &Store<Secret>, sa: &ServiceAccount) -> Vec<ObjectRef<Secret>> {
    let (ns, name) = (sa.namespace(), sa.name_any());
    secrets
        .state()
        .iter()
        .filter(|s| s.namespace() == ns && s.annotations().get(SA_NAME) == Some(&name))
        .map(|s| ObjectRef::from_obj(s.as_ref()))
        .collect()
}

async fn fill(secret: Arc<Secret>, ctx: Arc<Context>, f: Arc<Filler>) -> Result<Action> {
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
    // From the informer; an account it does not hold (it may lag behind one just made) is
    // looked up live before its Secret goes, as upstream's controller does.
    let sa = match f.accounts.get(&ObjectRef::new(&account).within(&ns)) {
        Some(sa) => Some(sa),
        None => Api::<ServiceAccount>::namespaced(ctx.client.clone(), &ns)
            .get_opt(&account)
            .await?
            .map(Arc::new),
    };
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
    let ca_ok =
        f.ca.as_ref()
            .is_none_or(|ca| data.get("ca.crt").map(|v| v.0.as_slice()) == Some(ca.as_bytes()));
    if has("token") && ca_ok && has("namespace") && named_uid.is_some() {
        return Ok(Action::await_change());
    }
    let token = match data.get("token").filter(|t| !t.0.is_empty()) {
        Some(t) => String::from_utf8_lossy(&t.0).into_owned(),
        None => f
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
    if let Some(ca) = &f.ca {
        fill.insert("ca.crt".into(), ByteString(ca.clone().into_bytes()));
    }
    let patch = json!({"metadata": {"annotations": {SA_UID: uid},
        "resourceVersion": secret.resource_version()}, "data": fill});
    secrets
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    Ok(Action::await_change())
}
