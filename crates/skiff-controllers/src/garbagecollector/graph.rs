//! The owner graph (kube-controller-manager's `GraphBuilder`/`uidToNode`): one node per uid
//! with its owner references and the uids that name it as an owner, fed by the watches'
//! events one at a time. Each change returns the work it gives the collector; the graph
//! itself never talks to the API. Owners only named by references (not seen through a
//! watch yet, or already gone) are placeholder nodes that hold their dependents' uids.
//!
//! It holds every object the API serves (10,000 pods: 10,000 nodes), so a node is kept small
//! (docs/adr/0043, addendum): boxed behind a map of shared uids, its api version, kind and
//! namespace shared `Arc<str>`s (the monitors hand out one per resource, the graph interns
//! namespaces), its dependents a `BTreeSet` (no allocation while empty, as most are).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The finalizer of a foreground deletion: the owner waits for its blocking dependents.
pub const FOREGROUND: &str = "foregroundDeletion";
/// The finalizer of an orphaning deletion: dependents are released before the owner goes.
pub const ORPHAN: &str = "orphan";

/// Which object a node is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    pub api_version: Arc<str>,
    pub kind: Arc<str>,
    /// None for cluster-scoped objects (and for placeholders of unknown scope).
    pub namespace: Option<Arc<str>>,
    pub name: Box<str>,
    pub uid: Arc<str>,
}

/// One object of the graph.
#[derive(Debug, Clone)]
pub struct Node {
    pub identity: Identity,
    pub owners: Vec<OwnerReference>,
    /// Uids of the objects whose ownerReferences name this one.
    pub dependents: BTreeSet<Arc<str>>,
    /// Seen through a watch; false for a placeholder named only by references.
    pub observed: bool,
    /// Has a deletionTimestamp.
    pub deleting: bool,
    pub finalizers: Vec<String>,
    /// The watch that reported it (its re-lists replace what it reported before).
    pub source: Option<usize>,
    /// The collector's DELETE of it was accepted: it is gone or being deleted, and its
    /// watch will say which, so nothing need look at it again until then.
    pub delete_sent: bool,
}

impl Node {
    fn has_finalizer(&self, f: &str) -> bool {
        self.finalizers.iter().any(|x| x == f)
    }

    /// Being deleted in the foreground: waiting for its blocking dependents to go.
    pub fn deleting_dependents(&self) -> bool {
        self.deleting && self.has_finalizer(FOREGROUND)
    }

    /// Being deleted with its dependents released first.
    pub fn orphaning(&self) -> bool {
        self.deleting && self.has_finalizer(ORPHAN)
    }
}

/// What a change gives the collector to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Work {
    /// Look at this object: delete it if its owners are gone, or (when it is being deleted in
    /// the foreground) its dependents and then its finalizer.
    Delete(String),
    /// Release this owner's dependents, then remove its `orphan` finalizer.
    Orphan(String),
}

/// The owner graph.
#[derive(Debug, Default)]
pub struct Graph {
    /// Keyed by the node's own `identity.uid`.
    nodes: HashMap<Arc<str>, Box<Node>>,
    /// One copy of each namespace name the nodes hold. Never pruned: namespaces are few.
    namespaces: HashSet<Arc<str>>,
    /// Whether every watch has listed once: before that an owner missing from the graph
    /// may simply not be listed yet, so nothing is queued for it (see [`Graph::synced`]).
    synced: bool,
}

fn blocks(r: &OwnerReference) -> bool {
    r.block_owner_deletion == Some(true)
}

/// Whether `owner` is a namespaced object outside `dependent`'s namespace (an owner must be
/// in its dependent's namespace, or cluster-scoped).
fn elsewhere(owner: &Node, dependent: &Identity) -> bool {
    owner.observed
        && owner.identity.namespace.is_some()
        && owner.identity.namespace != dependent.namespace
}

impl Graph {
    pub fn get(&self, uid: &str) -> Option<&Node> {
        self.nodes.get(uid).map(|n| &**n)
    }

    /// How many objects the graph holds (placeholders included).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The dependents of `uid` that block its deletion (`blockOwnerDeletion`) and exist.
    pub fn blocking_dependents(&self, uid: &str) -> Vec<&Node> {
        let Some(node) = self.nodes.get(uid) else {
            return Vec::new();
        };
        node.dependents
            .iter()
            .filter_map(|d| self.nodes.get(d).map(|d| &**d))
            .filter(|d| d.observed && d.owners.iter().any(|r| r.uid == uid && blocks(r)))
            .collect()
    }

    /// The collector's DELETE of `uid` was accepted.
    pub fn delete_sent(&mut self, uid: &str) {
        if let Some(n) = self.nodes.get_mut(uid) {
            n.delete_sent = true;
        }
    }

    /// The graph's copy of namespace `ns`.
    fn namespace(&mut self, ns: &Arc<str>) -> Arc<str> {
        if let Some(kept) = self.namespaces.get(ns) {
            return kept.clone();
        }
        self.namespaces.insert(ns.clone());
        ns.clone()
    }

    /// An object was added or changed.
    pub fn apply(&mut self, mut identity: Identity, meta: &ObjectMeta, source: usize) -> Vec<Work> {
        identity.namespace = identity.namespace.as_ref().map(|ns| self.namespace(ns));
        let uid = identity.uid.clone();
        let owners = meta.owner_references.clone().unwrap_or_default();
        let mut work = Vec::new();
        let old_owners = match self.nodes.get_mut(&uid) {
            Some(n) => {
                n.identity = identity.clone();
                n.observed = true;
                n.source = Some(source);
                n.deleting = meta.deletion_timestamp.is_some();
                n.finalizers = meta.finalizers.clone().unwrap_or_default();
                std::mem::replace(&mut n.owners, owners.clone())
            }
            None => {
                self.nodes.insert(
                    uid.clone(),
                    Box::new(Node {
                        identity: identity.clone(),
                        owners: owners.clone(),
                        dependents: BTreeSet::new(),
                        observed: true,
                        deleting: meta.deletion_timestamp.is_some(),
                        finalizers: meta.finalizers.clone().unwrap_or_default(),
                        source: Some(source),
                        delete_sent: false,
                    }),
                );
                Vec::new()
            }
        };
        for r in old_owners
            .iter()
            .filter(|r| !owners.iter().any(|o| o.uid == r.uid))
        {
            self.forget_dependent(&r.uid, &uid, &mut work);
        }
        for r in &owners {
            let before = old_owners.iter().find(|o| o.uid == r.uid);
            let owner_uid: Arc<str> = Arc::from(r.uid.as_str());
            let owner = self.nodes.entry(owner_uid.clone()).or_insert_with(|| {
                Box::new(Node {
                    identity: Identity {
                        api_version: Arc::from(r.api_version.as_str()),
                        kind: Arc::from(r.kind.as_str()),
                        namespace: identity.namespace.clone(),
                        name: r.name.as_str().into(),
                        uid: owner_uid,
                    },
                    owners: Vec::new(),
                    dependents: BTreeSet::new(),
                    observed: false,
                    deleting: false,
                    finalizers: Vec::new(),
                    source: None,
                    delete_sent: false,
                })
            });
            owner.dependents.insert(uid.clone());
            if (!owner.observed || elsewhere(owner, &identity)) && self.synced {
                // An owner the watches have not shown (it may be gone), or one in another
                // namespace (the reference cannot be valid): verify it.
                work.push(Work::Delete(uid.to_string()));
            } else if owner.deleting_dependents() {
                if before.is_none() {
                    work.push(Work::Delete(uid.to_string()));
                }
                if before.is_some_and(|b| blocks(b) != blocks(r)) {
                    work.push(Work::Delete(r.uid.clone()));
                }
            }
        }
        let node = &self.nodes[&uid];
        if node.orphaning() {
            work.push(Work::Orphan(uid.to_string()));
        } else if node.deleting_dependents() {
            work.push(Work::Delete(uid.to_string()));
            work.extend(node.dependents.iter().map(|d| Work::Delete(d.to_string())));
        }
        work
    }

    /// `dependent` no longer names `owner`.
    fn forget_dependent(&mut self, owner: &str, dependent: &str, work: &mut Vec<Work>) {
        let Some(o) = self.nodes.get_mut(owner) else {
            return;
        };
        o.dependents.remove(dependent);
        if o.deleting_dependents() {
            work.push(Work::Delete(owner.to_string()));
        }
        if !o.observed && o.dependents.is_empty() {
            self.nodes.remove(owner);
        }
    }

    /// An object was deleted: its dependents may have lost their last owner, and an owner
    /// waiting for it in the foreground may now go.
    pub fn delete(&mut self, uid: &str) -> Vec<Work> {
        let Some(node) = self.nodes.remove(uid) else {
            return Vec::new();
        };
        let mut work: Vec<Work> = node
            .dependents
            .iter()
            .map(|d| Work::Delete(d.to_string()))
            .collect();
        if !node.dependents.is_empty() {
            // Its dependents still name it: keep a placeholder holding them.
            self.nodes.insert(
                node.identity.uid.clone(),
                Box::new(Node {
                    observed: false,
                    deleting: false,
                    finalizers: Vec::new(),
                    source: None,
                    delete_sent: false,
                    owners: Vec::new(),
                    ..(*node).clone()
                }),
            );
        }
        for r in &node.owners {
            self.forget_dependent(&r.uid, uid, &mut work);
        }
        work
    }

    /// Watch `source` listed again and saw exactly `seen`: what it reported before and did
    /// not list now was deleted meanwhile.
    pub fn relisted(&mut self, source: usize, seen: &HashSet<String>) -> Vec<Work> {
        let gone: Vec<String> = self
            .nodes
            .values()
            .filter(|n| n.observed && n.source == Some(source) && !seen.contains(&*n.identity.uid))
            .map(|n| n.identity.uid.to_string())
            .collect();
        gone.iter().flat_map(|uid| self.delete(uid)).collect()
    }

    /// Every watch has listed once: from now on an owner missing from the graph is worth a
    /// look. Returns the work the first lists left: objects whose owners were not listed,
    /// owners being deleted in the foreground or with orphaning.
    pub fn synced(&mut self) -> Vec<Work> {
        self.synced = true;
        let mut work = Vec::new();
        for n in self.nodes.values().filter(|n| n.observed) {
            let unseen = |r: &OwnerReference| {
                self.nodes
                    .get(r.uid.as_str())
                    .is_none_or(|o| !o.observed || elsewhere(o, &n.identity))
            };
            if n.owners.iter().any(unseen) {
                work.push(Work::Delete(n.identity.uid.to_string()));
            }
            if n.orphaning() {
                work.push(Work::Orphan(n.identity.uid.to_string()));
            } else if n.deleting_dependents() {
                work.push(Work::Delete(n.identity.uid.to_string()));
            }
        }
        work
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ident(kind: &str, name: &str, uid: &str) -> Identity {
        Identity {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            namespace: Some("default".into()),
            name: name.into(),
            uid: uid.into(),
        }
    }

    fn owner(kind: &str, name: &str, uid: &str, block: bool) -> OwnerReference {
        OwnerReference {
            api_version: "apps/v1".into(),
            kind: kind.into(),
            name: name.into(),
            uid: uid.into(),
            controller: Some(true),
            block_owner_deletion: Some(block),
        }
    }

    fn meta(owners: Vec<OwnerReference>) -> ObjectMeta {
        ObjectMeta {
            owner_references: Some(owners),
            ..Default::default()
        }
    }

    fn deleting(finalizer: &str) -> ObjectMeta {
        ObjectMeta {
            deletion_timestamp: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            )),
            finalizers: Some(vec![finalizer.into()]),
            ..Default::default()
        }
    }

    #[test]
    fn deleting_an_owner_queues_its_dependents_once_synced() {
        let mut g = Graph::default();
        assert!(g
            .apply(ident("ReplicaSet", "rs", "r"), &meta(vec![]), 0)
            .is_empty());
        let pod = meta(vec![owner("ReplicaSet", "rs", "r", true)]);
        assert!(g.apply(ident("Pod", "p", "p"), &pod, 1).is_empty());
        assert!(g.synced().is_empty(), "every owner was listed");
        assert_eq!(g.get("r").unwrap().dependents.len(), 1);
        assert_eq!(g.delete("r"), [Work::Delete("p".into())]);
        assert!(
            !g.get("r").unwrap().observed,
            "a placeholder keeps the dependents"
        );
        assert!(g.delete("p").is_empty());
        assert!(
            g.get("r").is_none(),
            "placeholders go with their last dependent"
        );
        assert!(g.is_empty());
    }

    #[test]
    fn unlisted_owners_are_checked_only_after_sync() {
        let mut g = Graph::default();
        let pod = meta(vec![owner("ReplicaSet", "rs", "gone", true)]);
        assert!(g.apply(ident("Pod", "p", "p"), &pod, 1).is_empty());
        assert_eq!(g.synced(), [Work::Delete("p".into())]);
        let late = meta(vec![owner("ReplicaSet", "rs2", "gone2", true)]);
        assert_eq!(
            g.apply(ident("Pod", "q", "q"), &late, 1),
            [Work::Delete("q".into())]
        );
    }

    #[test]
    fn foreground_owner_waits_for_blocking_dependents() {
        let mut g = Graph::default();
        g.apply(ident("ReplicaSet", "rs", "r"), &meta(vec![]), 0);
        g.apply(
            ident("Pod", "a", "a"),
            &meta(vec![owner("ReplicaSet", "rs", "r", true)]),
            1,
        );
        g.apply(
            ident("Pod", "b", "b"),
            &meta(vec![owner("ReplicaSet", "rs", "r", false)]),
            1,
        );
        g.synced();
        let work = g.apply(ident("ReplicaSet", "rs", "r"), &deleting(FOREGROUND), 0);
        assert!(work.contains(&Work::Delete("r".into())));
        assert!(work.contains(&Work::Delete("a".into())));
        assert!(work.contains(&Work::Delete("b".into())));
        let blocking: Vec<_> = g
            .blocking_dependents("r")
            .iter()
            .map(|n| n.identity.name.to_string())
            .collect();
        assert_eq!(blocking, ["a"]);
        assert_eq!(g.delete("a"), [Work::Delete("r".into())]);
        assert!(g.blocking_dependents("r").is_empty());
    }

    #[test]
    fn orphaning_owner_and_dropped_references() {
        let mut g = Graph::default();
        g.apply(ident("ReplicaSet", "rs", "r"), &meta(vec![]), 0);
        g.apply(
            ident("Pod", "a", "a"),
            &meta(vec![owner("ReplicaSet", "rs", "r", true)]),
            1,
        );
        g.synced();
        assert_eq!(
            g.apply(ident("ReplicaSet", "rs", "r"), &deleting(ORPHAN), 0),
            [Work::Orphan("r".into())]
        );
        // The dependent is released: the owner no longer lists it.
        g.apply(ident("Pod", "a", "a"), &meta(vec![]), 1);
        assert!(g.get("r").unwrap().dependents.is_empty());
    }

    #[test]
    fn a_relist_deletes_what_it_no_longer_shows() {
        let mut g = Graph::default();
        g.apply(ident("ReplicaSet", "rs", "r"), &meta(vec![]), 0);
        g.apply(
            ident("Pod", "a", "a"),
            &meta(vec![owner("ReplicaSet", "rs", "r", true)]),
            1,
        );
        g.synced();
        let work = g.relisted(0, &HashSet::new());
        assert_eq!(work, [Work::Delete("a".into())]);
        assert!(g.relisted(1, &HashSet::from(["a".to_string()])).is_empty());
    }
}
