//! kube-controller-manager's ControllerRefManager: a controller claims the objects its
//! selector matches. It keeps those it controls that still match, releases those it
//! controls that stopped matching, and adopts orphans that match — but only after an
//! uncached read shows it is still the same object (same UID) and not being deleted.
//! Adoption and release are merge patches pinned to the child's resourceVersion, so two
//! controllers racing for one orphan cannot both win.

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams};
use kube::core::{NamespaceResourceScope, Selector, SelectorExt};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use serde_json::json;
use tokio::sync::OnceCell;

use crate::error::Result;
use crate::pods::{controller_of, controller_ref};

/// One owner claiming children of one kind.
pub struct Claimer<'a, O> {
    client: &'a Client,
    owner: &'a O,
    api_version: &'a str,
    kind: &'a str,
    selector: &'a Selector,
    /// The uncached check, made at most once per claim.
    can_adopt: OnceCell<bool>,
}

impl<'a, O> Claimer<'a, O>
where
    O: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + Debug
        + DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    pub fn new(
        client: &'a Client,
        owner: &'a O,
        api_version: &'a str,
        kind: &'a str,
        selector: &'a Selector,
    ) -> Self {
        Claimer {
            client,
            owner,
            api_version,
            kind,
            selector,
            can_adopt: OnceCell::new(),
        }
    }

    fn uid(&self) -> &str {
        self.owner.meta().uid.as_deref().unwrap_or("")
    }

    fn deleting(&self) -> bool {
        self.owner.meta().deletion_timestamp.is_some()
    }

    /// The owner as the API has it now is the one in the cache and is not being deleted.
    async fn may_adopt(&self) -> bool {
        *self
            .can_adopt
            .get_or_init(|| async {
                let ns = self.owner.namespace().unwrap_or_default();
                let api: Api<O> = Api::namespaced(self.client.clone(), &ns);
                match api.get(&self.owner.name_any()).await {
                    Ok(fresh) => {
                        fresh.meta().uid.as_deref() == Some(self.uid())
                            && fresh.meta().deletion_timestamp.is_none()
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "owner re-read failed, not adopting");
                        false
                    }
                }
            })
            .await
    }

    /// The children among `candidates` this owner controls after claiming.
    pub async fn claim<C>(&self, candidates: Vec<Arc<C>>) -> Result<Vec<Arc<C>>>
    where
        C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + Debug
            + DeserializeOwned
            + Send
            + Sync
            + 'static,
    {
        let mut claimed = Vec::new();
        for child in candidates {
            let meta = child.meta();
            let labels = meta.labels.clone().unwrap_or_default();
            let matches = self.selector.matches(&labels);
            match controller_of(meta) {
                Some(r) if r.uid != self.uid() => {}
                Some(_) if matches => claimed.push(child),
                Some(_) => {
                    if !self.deleting() {
                        self.release::<C>(meta).await?;
                    }
                }
                None => {
                    if !matches || self.deleting() || meta.deletion_timestamp.is_some() {
                        continue;
                    }
                    if !self.may_adopt().await {
                        continue;
                    }
                    match self.adopt::<C>(meta).await {
                        Ok(adopted) => claimed.push(Arc::new(adopted)),
                        // Someone else changed it first (maybe adopted it): the next sync sees.
                        Err(e) if e.is_conflict() || e.is_not_found() => {}
                        Err(e) => return Err(e),
                    }
                }
            }
        }
        Ok(claimed)
    }

    fn api<C>(&self, meta: &ObjectMeta) -> Api<C>
    where
        C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        Api::namespaced(self.client.clone(), meta.namespace.as_deref().unwrap_or(""))
    }

    async fn adopt<C>(&self, meta: &ObjectMeta) -> Result<C>
    where
        C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let mut refs = meta.owner_references.clone().unwrap_or_default();
        refs.push(controller_ref(
            self.api_version,
            self.kind,
            self.owner.meta(),
        ));
        let patch = json!({"metadata": {"ownerReferences": refs,
            "resourceVersion": meta.resource_version}});
        tracing::debug!(child = ?meta.name, owner = %self.owner.name_any(), "adopting");
        Ok(self
            .api::<C>(meta)
            .patch(
                meta.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?)
    }

    async fn release<C>(&self, meta: &ObjectMeta) -> Result<()>
    where
        C: Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug,
    {
        let refs: Vec<_> = meta
            .owner_references
            .iter()
            .flatten()
            .filter(|r| r.uid != self.uid())
            .cloned()
            .collect();
        let refs = if refs.is_empty() {
            json!(null)
        } else {
            json!(refs)
        };
        let patch = json!({"metadata": {"ownerReferences": refs,
            "resourceVersion": meta.resource_version}});
        tracing::debug!(child = ?meta.name, owner = %self.owner.name_any(), "releasing");
        match self
            .api::<C>(meta)
            .patch(
                meta.name.as_deref().unwrap_or(""),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => Ok(()),
            // Gone, or changed meanwhile (the next sync sees the change).
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
