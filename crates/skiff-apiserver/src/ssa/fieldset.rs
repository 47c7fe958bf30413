//! Field sets in the `FieldsV1` format of `metadata.managedFields`: a tree whose keys are
//! `f:<field>`, `k:<json of the list-map key>` and `v:<json value>`, where `{}` marks an owned
//! leaf and `".": {}` an owned node that also has owned children. Built from objects typed by
//! the served schemas, with list semantics from [`crate::patch::meta`].

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::patch::meta;
use crate::validation::schema::{Node, Shape};

/// A set of owned field paths.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// The path leading here is itself owned.
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

/// One path, as `FieldsV1` keys.
pub type Path = Vec<String>;

/// Metadata fields the server owns; they never appear in managedFields.
const SERVER_METADATA: &[&str] = &[
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

impl FieldSet {
    /// The fields an object sets. Lists merge as the schema says (`k:` items of list-maps,
    /// `v:` values of sets, atomic lists as leaves); server-owned metadata is left out.
    pub fn of_object(obj: &Value, root: Option<Node>) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = obj.as_object() else { return set };
        for (k, v) in m {
            if k == "apiVersion" || k == "kind" || v.is_null() {
                continue;
            }
            let child_node = root.and_then(|n| n.field(k));
            let child = if k == "metadata" {
                let mut meta = v.clone();
                if let Some(mm) = meta.as_object_mut() {
                    mm.retain(|key, _| !SERVER_METADATA.contains(&key.as_str()));
                }
                value_set(&meta, child_node, root, k)
            } else {
                value_set(v, child_node, root, k)
            };
            if child.member || !child.children.is_empty() {
                set.children.insert(format!("f:{k}"), child);
            }
        }
        set
    }

    fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    /// Parses `fieldsV1`.
    pub fn from_json(v: &Value) -> FieldSet {
        let mut set = FieldSet::default();
        let Some(m) = v.as_object() else { return set };
        if m.is_empty() {
            set.member = true;
        }
        for (k, child) in m {
            if k == "." {
                set.member = true;
            } else {
                set.children.insert(k.clone(), FieldSet::from_json(child));
            }
        }
        set
    }

    /// Renders `fieldsV1`.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, c) in &self.children {
            m.insert(k.clone(), c.to_json());
        }
        Value::Object(m)
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Every owned path.
    pub fn paths(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out, false);
        out
    }

    /// Every path in the tree, owned or only leading to owned ones.
    pub fn nodes(&self) -> Vec<Path> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out, true);
        out
    }

    fn collect(&self, prefix: &mut Path, out: &mut Vec<Path>, all: bool) {
        if (self.member || all) && !prefix.is_empty() {
            out.push(prefix.clone());
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.collect(prefix, out, all);
            prefix.pop();
        }
    }

    /// Owned paths with no owned descendants (the values compared for conflicts).
    pub fn leaves(&self) -> Vec<Path> {
        self.paths()
            .into_iter()
            .filter(|p| self.get(p).is_some_and(|s| s.children.is_empty()))
            .collect()
    }

    fn get(&self, path: &[String]) -> Option<&FieldSet> {
        match path.split_first() {
            None => Some(self),
            Some((h, rest)) => self.children.get(h)?.get(rest),
        }
    }

    pub fn contains(&self, path: &[String]) -> bool {
        self.get(path).is_some_and(|s| s.member)
    }

    pub fn insert(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = true,
            Some((h, rest)) => self.children.entry(h.clone()).or_default().insert(rest),
        }
    }

    /// Removes ownership of `path` (not of its descendants); prunes empty branches.
    pub fn remove(&mut self, path: &[String]) {
        match path.split_first() {
            None => self.member = false,
            Some((h, rest)) => {
                if let Some(c) = self.children.get_mut(h) {
                    c.remove(rest);
                    if c.is_empty() {
                        self.children.remove(h);
                    }
                }
            }
        }
    }
}

/// The field set of one value at a field typed by `node`, declared by `parent` as `field`.
fn value_set(v: &Value, node: Option<Node>, parent: Option<Node>, field: &str) -> FieldSet {
    match v {
        Value::Object(m) if !m.is_empty() && !meta::atomic_struct(node.and_then(|n| n.def())) => {
            let mut set = FieldSet::default();
            for (k, child) in m {
                if child.is_null() {
                    continue;
                }
                let child_node = node.and_then(|n| {
                    if n.shape() == Shape::Map {
                        n.values()
                    } else {
                        n.field(k)
                    }
                });
                let s = value_set(child, child_node, node, k);
                if !s.is_empty() {
                    set.children.insert(format!("f:{k}"), s);
                }
            }
            set
        }
        Value::Array(items) if !items.is_empty() => {
            let list = parent.and_then(|p| meta::list(p.def(), field));
            match list {
                Some(l) if l.set => {
                    let mut set = FieldSet::default();
                    for i in items {
                        set.children
                            .insert(format!("v:{}", compact(i)), FieldSet::leaf());
                    }
                    set
                }
                Some(l) if !l.map_keys.is_empty() => {
                    let item_node = node.and_then(|n| n.items());
                    let mut set = FieldSet::default();
                    for i in items {
                        let mut s = value_set(i, item_node, node, "");
                        s.member = true;
                        set.children.insert(item_key(i, l.map_keys), s);
                    }
                    set
                }
                _ => FieldSet::leaf(),
            }
        }
        _ => FieldSet::leaf(),
    }
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_default()
}

/// The key values of a list-map item, key fields in name order, defaults filled in.
fn key_values(item: &Value, keys: &[&str]) -> Vec<(String, Value)> {
    let mut sorted: Vec<&str> = keys.to_vec();
    sorted.sort_unstable();
    sorted
        .into_iter()
        .filter_map(|k| {
            let v = item
                .get(k)
                .filter(|v| !v.is_null())
                .cloned()
                .or_else(|| meta::key_default(k).map(Value::from))?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// `k:{"containerPort":80,"protocol":"TCP"}`.
pub fn item_key(item: &Value, keys: &[&str]) -> String {
    let body: Vec<String> = key_values(item, keys)
        .iter()
        .map(|(k, v)| format!("{}:{}", compact(&Value::from(k.as_str())), compact(v)))
        .collect();
    format!("k:{{{}}}", body.join(","))
}

/// Whether a list item has the key of a `k:` path element.
pub fn item_matches(item: &Value, key: &str, keys: &[&str]) -> bool {
    item_key(item, keys) == key
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="nginx"].image`.
pub fn display(path: &[String]) -> String {
    let mut out = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            out.push('.');
            out.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            let pairs: Vec<String> = serde_json::from_str::<Map<String, Value>>(k)
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| format!("{k}={}", compact(v)))
                        .collect()
                })
                .unwrap_or_default();
            out.push_str(&format!("[{}]", pairs.join(",")));
        } else if let Some(v) = el.strip_prefix("v:") {
            out.push_str(&format!("[={v}]"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment_node() -> Option<Node> {
        Node::for_kind("apps/v1", "Deployment")
    }

    #[test]
    fn applied_deployment_renders_like_kubernetes() {
        let applied = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}, "finalizers": ["x"]},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                    {"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]}}}});
        let set = FieldSet::of_object(&applied, deployment_node());
        assert_eq!(
            set.to_json(),
            json!({
                "f:metadata": {"f:labels": {"f:app": {}}, "f:finalizers": {"v:\"x\"": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {"f:metadata": {"f:labels": {"f:app": {}}}, "f:spec": {"f:containers": {
                        "k:{\"name\":\"nginx\"}": {".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {".": {}, "f:containerPort": {}}}}
                    }}}
                }
            })
        );
        assert_eq!(FieldSet::from_json(&set.to_json()), set);
    }

    #[test]
    fn paths_and_display() {
        let set = FieldSet::from_json(
            &json!({"f:spec": {"f:replicas": {}, "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"a\"}": {".": {}, "f:image": {}}}}}}}),
        );
        let leaves: Vec<String> = set.leaves().iter().map(|p| display(p)).collect();
        assert_eq!(
            leaves,
            [
                ".spec.replicas",
                ".spec.template.spec.containers[name=\"a\"].image"
            ]
        );
        assert_eq!(set.paths().len(), 3);
        let mut s = set.clone();
        s.remove(&["f:spec".into(), "f:replicas".into()]);
        assert!(!s.contains(&["f:spec".into(), "f:replicas".into()]));
        assert_eq!(s.paths().len(), 2);
        assert_eq!(
            display(&["f:metadata".into(), "f:finalizers".into(), "v:\"x\"".into()]),
            ".metadata.finalizers[=\"x\"]"
        );
    }
}
