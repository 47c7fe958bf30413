//! Which resources the API serves, from discovery (client-go's RESTMapper): an owner
//! reference's `apiVersion`/`kind` to the resource to GET it from, and the resources the
//! collector watches.

use std::collections::HashMap;
use std::sync::Arc;

use kube::discovery::{verbs, ApiCapabilities, ApiResource, Discovery, Scope};
use kube::Client;

/// One served resource.
#[derive(Debug)]
pub struct Served {
    pub resource: ApiResource,
    pub namespaced: bool,
}

/// Kinds the collector does not watch (kube-controller-manager ignores events too: they
/// are many, short-lived and never own anything).
fn ignored(r: &ApiResource) -> bool {
    r.kind == "Event" && (r.group.is_empty() || r.group == "events.k8s.io")
}

/// apiVersion/kind → resource, over every served version.
#[derive(Debug, Default)]
pub struct Mapper {
    by_version: HashMap<(String, String), Arc<Served>>,
    /// group/kind → the preferred version's resource (a reference may name a version no
    /// longer served; the object is the same).
    by_group: HashMap<(String, String), Arc<Served>>,
    /// The resources to watch: the preferred version of each listable, watchable and
    /// deletable kind.
    pub watched: Vec<Arc<Served>>,
}

fn served(r: ApiResource, caps: &ApiCapabilities) -> Arc<Served> {
    Arc::new(Served {
        resource: r,
        namespaced: caps.scope == Scope::Namespaced,
    })
}

impl Mapper {
    /// Runs discovery against the API.
    pub async fn discover(client: &Client) -> Result<Mapper, kube::Error> {
        let discovery = Discovery::new(client.clone()).run().await?;
        let mut m = Mapper::default();
        for group in discovery.groups() {
            for version in group.versions() {
                for (r, caps) in group.versioned_resources(version) {
                    let key = (r.api_version.clone(), r.kind.clone());
                    m.by_version.insert(key, served(r, &caps));
                }
            }
            for (r, caps) in group.recommended_resources() {
                let s = served(r.clone(), &caps);
                m.by_group
                    .insert((r.group.clone(), r.kind.clone()), s.clone());
                let ops = [verbs::LIST, verbs::WATCH, verbs::DELETE];
                if ops.iter().all(|v| caps.supports_operation(v)) && !ignored(&r) {
                    m.watched.push(s);
                }
            }
        }
        Ok(m)
    }

    /// The preferred version of every served resource.
    pub fn all(&self) -> impl Iterator<Item = &Arc<Served>> {
        self.by_group.values()
    }

    /// The resource of `kind` in `api_version`, or of the same group and kind in another
    /// version; None when the API does not serve the kind.
    pub fn resolve(&self, api_version: &str, kind: &str) -> Option<Arc<Served>> {
        if let Some(s) = self
            .by_version
            .get(&(api_version.to_string(), kind.to_string()))
        {
            return Some(s.clone());
        }
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        self.by_group
            .get(&(group.to_string(), kind.to_string()))
            .cloned()
    }
}
