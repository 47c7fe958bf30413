//! An informer cache's index by namespace and controller (client-go's indexers, which kube's
//! `Store` lacks): the objects of one namespace, those a given owner controls
//! (upstream's `controllerUIDIndex`), the orphans of a namespace (its
//! `OrphanPodIndexKey`) and, for an index told how to find an object's node, the objects on
//! one node (the `spec.nodeName` index of upstream's node lifecycle controller), each found
//! without walking the whole cache. A controller that read every cached pod on each sync
//! made a cascade of n pods cost O(n²), and a node event that read them all made 1,000 nodes
//! going NotReady cost 1,000 walks of every pod.
//!
//! The informer keeps the index from the watch events it applies to its cache, before it
//! hands the change to any subscriber; the index holds the cache's own `Arc`s, so an object
//! costs a name and a few pointers more, not a second copy. A reader gets one consistent
//! view from the index alone (it need not agree with the cache at every instant).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use kube::Resource;

use crate::pods::controller_of;

/// One namespace's objects: by name, and the names each controller uid controls (`None`:
/// the objects without a controller).
struct Namespace<K> {
    objects: HashMap<Arc<str>, Arc<K>>,
    by_controller: HashMap<Option<String>, HashSet<Arc<str>>>,
}

impl<K> Default for Namespace<K> {
    fn default() -> Self {
        Namespace {
            objects: HashMap::new(),
            by_controller: HashMap::new(),
        }
    }
}

/// Where an object runs (a pod's `spec.nodeName`), for the index by node.
pub type NodeOf<K> = for<'a> fn(&'a K) -> Option<&'a str>;

/// The namespaces, and the (namespace, name) of the objects on each node.
struct Maps<K> {
    namespaces: HashMap<String, Namespace<K>>,
    nodes: HashMap<String, HashSet<(String, Arc<str>)>>,
}

impl<K> Default for Maps<K> {
    fn default() -> Self {
        Maps {
            namespaces: HashMap::new(),
            nodes: HashMap::new(),
        }
    }
}

/// The index; cheap to share behind the informer.
pub struct ControllerIndex<K> {
    maps: RwLock<Maps<K>>,
    /// Set: objects are indexed by node too.
    node_of: Option<NodeOf<K>>,
}

impl<K> Default for ControllerIndex<K> {
    fn default() -> Self {
        ControllerIndex {
            maps: RwLock::default(),
            node_of: None,
        }
    }
}

/// Where an object sits in the index: namespace, controller uid, name.
fn place<K: Resource>(obj: &K) -> Option<(String, Option<String>, &str)> {
    let meta = obj.meta();
    let name = meta.name.as_deref()?;
    let ns = meta.namespace.clone().unwrap_or_default();
    Some((ns, controller_of(meta).map(|r| r.uid.clone()), name))
}

impl<K: Resource> ControllerIndex<K> {
    /// An index that also finds objects by the node `node_of` names.
    pub fn by_node(node_of: NodeOf<K>) -> Self {
        ControllerIndex {
            maps: RwLock::default(),
            node_of: Some(node_of),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Maps<K>> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Maps<K>> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    /// `new` replaced `old` (None: it is new to the cache).
    pub fn applied(&self, old: Option<&K>, new: Arc<K>) {
        let mut maps = self.write();
        if let Some(old) = old {
            remove(&mut maps, self.node_of, old);
        }
        insert(&mut maps, self.node_of, new);
    }

    /// `old` (the cache's last copy) was deleted.
    pub fn deleted(&self, old: &K) {
        remove(&mut self.write(), self.node_of, old);
    }

    /// The cache was listed afresh and now holds exactly `all`.
    pub fn rebuild(&self, all: Vec<Arc<K>>) {
        let mut maps = Maps::default();
        for obj in all {
            insert(&mut maps, self.node_of, obj);
        }
        *self.write() = maps;
    }

    /// Every object of namespace `ns`.
    pub fn in_namespace(&self, ns: &str) -> Vec<Arc<K>> {
        self.read()
            .namespaces
            .get(ns)
            .map(|n| n.objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Every object on node `node` (none if this index does not know nodes).
    pub fn on_node(&self, node: &str) -> Vec<Arc<K>> {
        let maps = self.read();
        maps.nodes
            .get(node)
            .into_iter()
            .flatten()
            .filter_map(|(ns, name)| maps.namespaces.get(ns)?.objects.get(name).cloned())
            .collect()
    }

    /// The object `name` of namespace `ns`.
    pub fn get(&self, ns: &str, name: &str) -> Option<Arc<K>> {
        self.read().namespaces.get(ns)?.objects.get(name).cloned()
    }

    /// The objects of `ns` whose controller is the object with `uid` (`None`: the objects
    /// without a controller).
    pub fn controlled_by(&self, ns: &str, uid: Option<&str>) -> Vec<Arc<K>> {
        let maps = self.read();
        let Some(n) = maps.namespaces.get(ns) else {
            return Vec::new();
        };
        n.by_controller
            .get(&uid.map(str::to_string))
            .into_iter()
            .flatten()
            .filter_map(|name| n.objects.get(name).cloned())
            .collect()
    }

    /// What a controller with `uid` may claim in `ns`: the objects it controls and the
    /// orphans (client-go's `ControllerRefManager` candidates, without the objects other
    /// controllers own).
    pub fn claimable(&self, ns: &str, uid: &str) -> Vec<Arc<K>> {
        let mut out = self.controlled_by(ns, Some(uid));
        out.extend(self.controlled_by(ns, None));
        out
    }

    /// How many objects the index holds.
    pub fn len(&self) -> usize {
        self.read()
            .namespaces
            .values()
            .map(|n| n.objects.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn insert<K: Resource>(maps: &mut Maps<K>, node_of: Option<NodeOf<K>>, obj: Arc<K>) {
    let Some((ns, controller, name)) = place(obj.as_ref()) else {
        return;
    };
    let name: Arc<str> = Arc::from(name);
    let node = node_of.and_then(|f| f(obj.as_ref())).map(str::to_string);
    let n = maps.namespaces.entry(ns.clone()).or_default();
    if let Some(before) = n.objects.insert(name.clone(), obj) {
        // Never left in another controller's or node's set (the caller passes the old
        // copy; this covers a caller that could not).
        if let Some((_, c, _)) = place(before.as_ref()) {
            forget_name(n, &c, &name);
        }
        let was = node_of.and_then(|f| f(before.as_ref()));
        forget_node(&mut maps.nodes, was, &ns, &name);
    }
    n.by_controller
        .entry(controller)
        .or_default()
        .insert(name.clone());
    if let Some(node) = node {
        maps.nodes.entry(node).or_default().insert((ns, name));
    }
}

fn forget_name<K>(n: &mut Namespace<K>, controller: &Option<String>, name: &str) {
    if let Some(set) = n.by_controller.get_mut(controller) {
        set.remove(name);
        if set.is_empty() {
            n.by_controller.remove(controller);
        }
    }
}

fn forget_node(
    nodes: &mut HashMap<String, HashSet<(String, Arc<str>)>>,
    node: Option<&str>,
    ns: &str,
    name: &Arc<str>,
) {
    let Some(node) = node else {
        return;
    };
    if let Some(set) = nodes.get_mut(node) {
        set.remove(&(ns.to_string(), name.clone()));
        if set.is_empty() {
            nodes.remove(node);
        }
    }
}

fn remove<K: Resource>(maps: &mut Maps<K>, node_of: Option<NodeOf<K>>, obj: &K) {
    let Some((ns, controller, name)) = place(obj) else {
        return;
    };
    let Some(n) = maps.namespaces.get_mut(&ns) else {
        return;
    };
    // The copy the index holds decides which sets the name is in.
    let held = n.objects.remove(name);
    let held_controller = held.as_deref().and_then(|h| place(h).map(|(_, c, _)| c));
    forget_name(n, &held_controller.unwrap_or(controller), name);
    if n.objects.is_empty() {
        maps.namespaces.remove(&ns);
    }
    let node = node_of.and_then(|f| f(held.as_deref().unwrap_or(obj)));
    forget_node(&mut maps.nodes, node, &ns, &Arc::from(name));
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

    fn pod(ns: &str, name: &str, controller: Option<&str>) -> Arc<Pod> {
        Arc::new(Pod {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                owner_references: controller.map(|uid| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind: "ReplicaSet".into(),
                        name: format!("rs-{uid}"),
                        uid: uid.into(),
                        controller: Some(true),
                        ..Default::default()
                    }]
                }),
                ..Default::default()
            },
            ..Default::default()
        })
    }

    fn names(v: Vec<Arc<Pod>>) -> Vec<String> {
        let mut n: Vec<String> = v.iter().filter_map(|p| p.metadata.name.clone()).collect();
        n.sort();
        n
    }

    #[test]
    fn finds_by_namespace_controller_and_orphans() {
        let ix = ControllerIndex::default();
        ix.applied(None, pod("a", "p1", Some("u1")));
        ix.applied(None, pod("a", "p2", Some("u2")));
        ix.applied(None, pod("a", "p3", None));
        ix.applied(None, pod("b", "p1", Some("u1")));
        assert_eq!(names(ix.in_namespace("a")), ["p1", "p2", "p3"]);
        assert_eq!(names(ix.controlled_by("a", Some("u1"))), ["p1"]);
        assert_eq!(names(ix.controlled_by("a", None)), ["p3"]);
        assert_eq!(names(ix.claimable("a", "u2")), ["p2", "p3"]);
        assert_eq!(names(ix.claimable("b", "u2")), Vec::<String>::new());
        assert!(ix.get("b", "p1").is_some() && ix.get("b", "p2").is_none());
        assert_eq!(ix.len(), 4);
    }

    #[test]
    fn adoption_release_and_deletion_move_the_object() {
        let ix = ControllerIndex::default();
        let orphan = pod("a", "p", None);
        ix.applied(None, orphan.clone());
        let adopted = pod("a", "p", Some("u1"));
        ix.applied(Some(&orphan), adopted.clone());
        assert!(ix.controlled_by("a", None).is_empty());
        assert_eq!(names(ix.controlled_by("a", Some("u1"))), ["p"]);
        // A change whose old copy the caller lacks still leaves no stale entry.
        ix.applied(None, pod("a", "p", Some("u2")));
        assert!(ix.controlled_by("a", Some("u1")).is_empty());
        assert_eq!(names(ix.controlled_by("a", Some("u2"))), ["p"]);
        // A delete event's copy may name an older controller: the held copy decides.
        ix.deleted(&adopted);
        assert!(ix.is_empty());
        assert!(ix.controlled_by("a", Some("u2")).is_empty());
        assert!(ix.in_namespace("a").is_empty());
    }

    #[test]
    fn rebuild_replaces_everything() {
        let ix = ControllerIndex::default();
        ix.applied(None, pod("a", "gone", Some("u1")));
        ix.rebuild(vec![pod("b", "kept", None)]);
        assert!(ix.in_namespace("a").is_empty());
        assert!(ix.controlled_by("a", Some("u1")).is_empty());
        assert_eq!(names(ix.in_namespace("b")), ["kept"]);
    }

    fn node_of(p: &Pod) -> Option<&str> {
        p.spec.as_ref()?.node_name.as_deref()
    }

    fn on(p: Arc<Pod>, node: &str) -> Arc<Pod> {
        let mut p = p.as_ref().clone();
        p.spec.get_or_insert_with(Default::default).node_name = Some(node.into());
        Arc::new(p)
    }

    #[test]
    fn finds_by_node_through_binding_moves_and_deletion() {
        let ix = ControllerIndex::by_node(node_of);
        let pending = pod("a", "p", Some("u1"));
        ix.applied(None, pending.clone());
        ix.applied(None, on(pod("b", "p", None), "n1"));
        assert_eq!(names(ix.on_node("n1")), ["p"]);
        assert_eq!(ix.on_node("n1")[0].metadata.namespace.as_deref(), Some("b"));
        // Bound: found on its node, still under its controller.
        let bound = on(pending.clone(), "n1");
        ix.applied(Some(&pending), bound.clone());
        assert_eq!(ix.on_node("n1").len(), 2);
        assert_eq!(names(ix.controlled_by("a", Some("u1"))), ["p"]);
        // A change whose old copy the caller lacks still leaves no stale entry.
        ix.applied(None, on(pending.clone(), "n2"));
        assert_eq!(names(ix.on_node("n2")), ["p"]);
        assert_eq!(ix.on_node("n1").len(), 1);
        // A delete event's copy may name an older node: the held copy decides.
        ix.deleted(&bound);
        assert!(ix.on_node("n2").is_empty());
        ix.rebuild(vec![on(pod("c", "q", None), "n3")]);
        assert!(ix.on_node("n1").is_empty());
        assert_eq!(names(ix.on_node("n3")), ["q"]);
        // An index without nodes finds none.
        let plain = ControllerIndex::default();
        plain.applied(None, on(pod("a", "p", None), "n1"));
        assert!(plain.on_node("n1").is_empty());
    }
}
