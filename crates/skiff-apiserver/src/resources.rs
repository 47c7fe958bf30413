//! Resource entries (group, version, kind, plural, scope, short names, categories,
//! subresources, where objects are stored) and lookups over the served kinds of
//! [`crate::kinds::ALL`].

use std::fmt;

use crate::registry::Kind;

/// A subresource an object may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sub {
    /// `/status`: writes change `status` only; the main resource leaves it alone.
    Status,
    /// `/scale`: an `autoscaling/v1 Scale` view of `spec.replicas`.
    Scale,
    /// A namespace's `/finalize`: writes change `spec.finalizers` only.
    Finalize,
    /// A CertificateSigningRequest's `/approval`: writes change the approval conditions only.
    Approval,
    /// A Pod's `/binding`: a POSTed `v1 Binding` assigns the pod to a node, once.
    Binding,
    /// A ServiceAccount's `/token`: a POSTed `authentication.k8s.io/v1 TokenRequest` is
    /// answered with a signed token.
    Token,
    /// A Pod's `/eviction`: a POSTed `policy/v1 Eviction` deletes the pod if its
    /// PodDisruptionBudget allows.
    Eviction,
}

impl Sub {
    pub fn name(self) -> &'static str {
        match self {
            Sub::Status => "status",
            Sub::Scale => "scale",
            Sub::Finalize => "finalize",
            Sub::Approval => "approval",
            Sub::Binding => "binding",
            Sub::Token => "token",
            Sub::Eviction => "eviction",
        }
    }

    pub fn parse(name: &str) -> Option<Sub> {
        [
            Sub::Status,
            Sub::Scale,
            Sub::Finalize,
            Sub::Approval,
            Sub::Binding,
            Sub::Token,
            Sub::Eviction,
        ]
        .into_iter()
        .find(|s| s.name() == name)
    }

    /// The verbs served on the subresource.
    pub fn verbs(self) -> &'static [&'static str] {
        match self {
            Sub::Finalize => &["update"],
            Sub::Binding | Sub::Token | Sub::Eviction => &["create"],
            _ => &["get", "patch", "update"],
        }
    }
}

/// What k8s-openapi does not say about a resource: the rest of its discovery entry and
/// where it is stored.
#[derive(Debug, Clone, Copy)]
pub struct Entry {
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Sub],
    /// Stored with the resource of the same plural in this group instead of its own
    /// (events.k8s.io Events live with core Events, as in Kubernetes).
    pub stored_with_group: Option<&'static str>,
}

impl Entry {
    pub const DEFAULT: Entry = Entry {
        short_names: &[],
        categories: &[],
        subresources: &[],
        stored_with_group: None,
    };
}

/// The `all` category (`kubectl get all`).
pub const ALL: &[&str] = &["all"];

/// Whether a k8s-openapi resource scope is namespaced.
pub trait Scoped {
    const NAMESPACED: bool;
}

impl Scoped for k8s_openapi::NamespaceResourceScope {
    const NAMESPACED: bool = true;
}

impl Scoped for k8s_openapi::ClusterResourceScope {
    const NAMESPACED: bool = false;
}

/// One served resource (a group/version/plural).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ResourceInfo {
    /// "" for the core group.
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub plural: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [Sub],
    /// The group whose storage holds these objects (usually `group`).
    pub storage_group: &'static str,
}

impl fmt::Debug for ResourceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.api_version(), self.plural)
    }
}

impl ResourceInfo {
    /// The entry of the k8s-openapi type `O`, completed by `entry`.
    pub const fn of<O>(entry: Entry) -> ResourceInfo
    where
        O: k8s_openapi::Resource,
        O::Scope: Scoped,
    {
        ResourceInfo {
            group: O::GROUP,
            version: O::VERSION,
            kind: O::KIND,
            plural: O::URL_PATH_SEGMENT,
            namespaced: <O::Scope as Scoped>::NAMESPACED,
            short_names: entry.short_names,
            categories: entry.categories,
            subresources: entry.subresources,
            storage_group: match entry.stored_with_group {
                Some(g) => g,
                None => O::GROUP,
            },
        }
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// The singular name discovery reports: the kind in lower case, as for every built-in.
    pub fn singular(&self) -> String {
        self.kind.to_ascii_lowercase()
    }

    /// Storage key prefix shared by every version of this resource: `/registry/<group|core>/<plural>/`.
    pub fn prefix(&self) -> String {
        let group = if self.storage_group.is_empty() {
            "core"
        } else {
            self.storage_group
        };
        format!("/registry/{group}/{}/", self.plural)
    }

    /// Prefix of one namespace's objects (or of all of them when `namespace` is None).
    pub fn namespace_prefix(&self, namespace: Option<&str>) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/", self.prefix()),
            _ => self.prefix(),
        }
    }

    /// Key of one object.
    pub fn key(&self, namespace: Option<&str>, name: &str) -> String {
        match (self.namespaced, namespace) {
            (true, Some(ns)) => format!("{}{ns}/{name}", self.prefix()),
            _ => format!("{}{name}", self.prefix()),
        }
    }

    pub fn has_subresource(&self, sub: Sub) -> bool {
        self.subresources.contains(&sub)
    }
}

/// Every served kind, in discovery order (preferred version first within a group).
pub fn all() -> impl Iterator<Item = &'static dyn Kind> {
    crate::kinds::ALL.iter().copied()
}

/// The kind served at `group/version/plural`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static dyn Kind> {
    all().find(|k| {
        let i = k.info();
        i.group == group && i.version == version && i.plural == plural
    })
}

/// The kind of `apiVersion` + `kind` (as found in an object body).
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static dyn Kind> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    all().find(|k| {
        let i = k.info();
        i.group == group && i.version == version && i.kind == kind
    })
}

/// The kind objects of `info`'s resource are stored as: the first served version of the
/// resource stored under the same prefix.
pub fn storage_kind(info: &ResourceInfo) -> &'static dyn Kind {
    let prefix = info.prefix();
    all()
        .find(|k| k.info().prefix() == prefix)
        .expect("every served kind is stored under its own prefix at least")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_namespaces_and_groups() {
        let pods = find("", "v1", "pods").unwrap().info();
        assert_eq!(
            pods.key(Some("default"), "web"),
            "/registry/core/pods/default/web"
        );
        assert_eq!(pods.namespace_prefix(None), "/registry/core/pods/");
        let deploy = find_kind("apps/v1", "Deployment").unwrap().info();
        assert_eq!(deploy.key(Some("a"), "b"), "/registry/apps/deployments/a/b");
        let ns = find("", "v1", "namespaces").unwrap().info();
        assert_eq!(
            ns.key(None, "kube-system"),
            "/registry/core/namespaces/kube-system"
        );
    }

    #[test]
    fn both_hpa_versions_share_storage() {
        let v1 = find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v2 = find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert_eq!(v1.info().prefix(), v2.info().prefix());
        assert_eq!(storage_kind(v1.info()).info().version, "v2");
    }

    #[test]
    fn entries_come_from_k8s_openapi() {
        let deploy = find_kind("apps/v1", "Deployment").unwrap().info();
        assert_eq!(
            (deploy.plural, deploy.namespaced, deploy.singular().as_str()),
            ("deployments", true, "deployment")
        );
        assert!(!find_kind("v1", "Node").unwrap().info().namespaced);
        assert_eq!(
            find_kind("v1", "Endpoints").unwrap().info().singular(),
            "endpoints"
        );
    }

    #[test]
    fn every_resource_is_served_once() {
        let mut seen = std::collections::HashSet::new();
        for k in all() {
            let i = k.info();
            assert!(seen.insert((i.group, i.version, i.plural)), "{i:?} twice");
        }
    }
}
