//! Server-side apply and field ownership (`metadata.managedFields`), as Kubernetes'
//! structured-merge-diff does it for the kinds served: an Apply merges the applied
//! configuration into the live object by list-map keys, takes ownership of what it sets,
//! removes what the same manager applied before and no longer does, and fails with a 409
//! `Conflict` when another manager owns a field it would change (unless forced). Non-apply
//! writes record an `Update` entry. Manager `kubectl` may take over the fields client-side
//! apply set (see [`last_applied`]). Pure functions: no store access, no validation.

mod fieldset;
mod last_applied;

use serde_json::{json, Map, Value};

use crate::error::{ApiError, Cause};
use crate::object::now;
use crate::patch::meta;
use crate::resources::ResourceInfo;
use crate::validation::schema::{Node, Shape};
pub use fieldset::FieldSet;
use fieldset::{display, item_matches, Path};

/// One `managedFields` entry.
#[derive(Debug, Clone)]
struct Entry {
    manager: String,
    operation: String,
    api_version: String,
    subresource: Option<String>,
    time: Option<String>,
    set: FieldSet,
}

impl Entry {
    fn parse(v: &Value) -> Entry {
        let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        Entry {
            manager: s("manager").unwrap_or_default(),
            operation: s("operation").unwrap_or_default(),
            api_version: s("apiVersion").unwrap_or_default(),
            subresource: s("subresource").filter(|s| !s.is_empty()),
            time: s("time"),
            set: FieldSet::from_json(v.get("fieldsV1").unwrap_or(&Value::Null)),
        }
    }

    fn to_json(&self) -> Value {
        let mut v = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "fieldsType": "FieldsV1",
            "fieldsV1": self.set.to_json(),
        });
        if let Some(t) = &self.time {
            v["time"] = json!(t);
        }
        if let Some(s) = &self.subresource {
            v["subresource"] = json!(s);
        }
        v
    }

    /// How Kubernetes names a manager in conflict messages.
    fn describe(&self) -> String {
        let mut s = format!("{:?}", self.manager);
        if let Some(sub) = &self.subresource {
            s.push_str(&format!(" with subresource {sub:?}"));
        }
        if self.operation == "Update" {
            s.push_str(&format!(" using {}", self.api_version));
        }
        s
    }
}

fn entries(obj: &Value) -> Vec<Entry> {
    obj.pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().map(Entry::parse).collect())
        .unwrap_or_default()
}

fn store_entries(obj: &mut Value, entries: Vec<Entry>) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.set.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

/// Applies `applied` (the body of an `application/apply-patch+yaml` PATCH, parsed) for
/// `manager` onto `current` (None: the object does not exist yet) and returns the object
/// to store, with `metadata.managedFields` updated.
pub fn server_side_apply(
    info: &ResourceInfo,
    current: Option<&Value>,
    applied: &Value,
    manager: &str,
    force: bool,
) -> Result<Value, ApiError> {
    if !applied.is_object() {
        return Err(ApiError::bad_request(
            "the applied configuration must be an object",
        ));
    }
    if manager.is_empty() {
        return Err(ApiError::bad_request(
            "PATCH with apply requires a fieldManager query parameter",
        ));
    }
    let root = Node::root(info);
    let mut applied = applied.clone();
    if let Some(m) = applied.as_object_mut() {
        m.remove("status");
    }
    if let Some(meta) = applied.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    let live = current.cloned().unwrap_or_else(|| json!({"metadata": {}}));
    let mut managers = entries(&live);
    let new_set = FieldSet::of_object(&applied, root);
    let me = |e: &Entry| e.manager == manager && e.operation == "Apply" && e.subresource.is_none();

    let mut conflicts: Vec<(String, Path)> = Vec::new();
    for leaf in new_set.leaves() {
        let wanted = get_at(&applied, &leaf, root);
        if wanted == get_at(&live, &leaf, root) {
            continue;
        }
        for e in managers.iter().filter(|e| !me(e) && e.set.contains(&leaf)) {
            conflicts.push((e.describe(), leaf.clone()));
        }
    }
    if !conflicts.is_empty() && !force {
        // `kubectl apply --server-side` after `kubectl apply`: what client-side apply set,
        // and nobody changed since, is taken over without a conflict.
        let allowed = (manager == last_applied::MANAGER)
            .then(|| last_applied::allowed_conflicts(&live, &info.api_version(), root))
            .flatten()
            .unwrap_or_default();
        let refused: Vec<(String, Path)> = conflicts
            .iter()
            .filter(|(_, p)| !last_applied::allows(&allowed, p))
            .cloned()
            .collect();
        if !refused.is_empty() {
            return Err(conflict_error(&refused));
        }
    }
    for (_, path) in &conflicts {
        for e in managers.iter_mut().filter(|e| !me(e)) {
            e.set.remove(path);
        }
    }

    let mut result = live.clone();
    merge(&mut result, &applied, root);
    let previous = managers
        .iter()
        .find(|e| me(e))
        .map(|e| e.set.clone())
        .unwrap_or_default();
    let mut dropped: Vec<Path> = previous
        .paths()
        .into_iter()
        .filter(|p| !new_set.contains(p))
        .collect();
    // Parents first: a dropped list item goes whole, before its fields would be emptied.
    dropped.sort_by_key(Vec::len);
    for path in dropped {
        if !managers.iter().any(|e| !me(e) && e.set.contains(&path)) {
            remove_at(&mut result, &path, root);
        }
    }

    if manager == last_applied::MANAGER {
        last_applied::update(current, &applied, &mut result);
    }
    managers.retain(|e| !me(e));
    managers.push(Entry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: info.api_version(),
        subresource: None,
        time: Some(now()),
        set: new_set,
    });
    store_entries(&mut result, managers);
    Ok(result)
}

/// The 409 Kubernetes answers an apply that conflicts, worded as kubectl prints it.
fn conflict_error(conflicts: &[(String, Path)]) -> ApiError {
    let message = if let [(who, path)] = conflicts {
        format!(
            "Apply failed with 1 conflict: conflict with {who}: {}",
            display(path)
        )
    } else {
        let mut by_manager: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
        for (who, path) in conflicts {
            by_manager.entry(who).or_default().push(display(path));
        }
        let lines: Vec<String> = by_manager
            .iter()
            .flat_map(|(who, paths)| {
                std::iter::once(format!("conflicts with {who}:"))
                    .chain(paths.iter().map(|p| format!("- {p}")))
            })
            .collect();
        format!(
            "Apply failed with {} conflicts: {}",
            conflicts.len(),
            lines.join("\n")
        )
    };
    let mut err = ApiError::new(409, "Conflict", message);
    err.causes = conflicts
        .iter()
        .map(|(who, path)| Cause {
            reason: "FieldManagerConflict".into(),
            message: format!("conflict with {who}"),
            field: display(path),
        })
        .collect();
    err
}

/// Records a non-apply write (create, update, patch) by `manager` in `new`'s managedFields:
/// the fields it changed become its own (taken from any other manager, without conflict),
/// and fields that no longer exist are owned by nobody.
pub fn record_update(info: &ResourceInfo, old: Option<&Value>, new: &mut Value, manager: &str) {
    let root = Node::root(info);
    // Managed fields a client sends explicitly replace the stored ones, as in Kubernetes.
    let sent = new.pointer("/metadata/managedFields");
    let mut managers = match old {
        Some(o) if sent.is_none() || sent == o.pointer("/metadata/managedFields") => entries(o),
        _ => entries(new),
    };
    let empty = json!({});
    let old_v = old.unwrap_or(&empty);
    let now_set = FieldSet::of_object(new, root);
    let leaves = now_set.leaves();
    let mut changed = FieldSet::default();
    for path in now_set.paths() {
        let before = get_at(old_v, &path, root);
        if before.is_none() || (leaves.contains(&path) && before != get_at(new, &path, root)) {
            changed.insert(&path);
        }
    }
    // A map an Update creates is owned as a whole too (`".": {}`), as Kubernetes records it.
    for path in now_set.nodes() {
        if shape_at(&path, root) == Some(Shape::Map) && get_at(old_v, &path, root).is_none() {
            changed.insert(&path);
        }
    }
    for e in managers.iter_mut() {
        for path in e.set.paths() {
            if changed.contains(&path) || !now_set.contains(&path) {
                e.set.remove(&path);
            }
        }
    }
    let api_version = info.api_version();
    let mine = |e: &Entry| {
        e.manager == manager
            && e.operation == "Update"
            && e.subresource.is_none()
            && e.api_version == api_version
    };
    if let Some(e) = managers.iter_mut().find(|e| mine(e)) {
        for path in changed.paths() {
            e.set.insert(&path);
        }
        e.time = Some(now());
    } else if !changed.is_empty() && !manager.is_empty() {
        managers.push(Entry {
            manager: manager.into(),
            operation: "Update".into(),
            api_version,
            subresource: None,
            time: Some(now()),
            set: changed,
        });
    }
    if new.get("metadata").is_none() {
        new["metadata"] = json!({});
    }
    store_entries(new, managers);
}

/// The list-map keys of list field `field` declared by `parent`.
fn map_keys(parent: Option<Node>, field: &str) -> &'static [&'static str] {
    parent
        .and_then(|p| meta::list(p.def(), field))
        .map(|m| m.map_keys)
        .unwrap_or(&[])
}

fn child_node(n: Option<Node>, field: &str) -> Option<Node> {
    n.and_then(|n| {
        if n.shape() == Shape::Map {
            n.values()
        } else {
            n.field(field)
        }
    })
}

/// The schema shape at a field-set path.
fn shape_at(path: &[String], root: Option<Node>) -> Option<Shape> {
    let mut node = root;
    for el in path {
        node = match el.strip_prefix("f:") {
            Some(f) => child_node(node, f),
            None => node.and_then(|n| n.items()),
        };
    }
    node.map(|n| n.shape())
}

/// The value at a field-set path, with its schema node and list semantics.
fn get_at<'a>(v: &'a Value, path: &[String], node: Option<Node>) -> Option<&'a Value> {
    let mut cur = v;
    let mut node = node;
    let mut keys: &[&str] = &[];
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            keys = map_keys(node, f);
            node = child_node(node, f);
            cur = cur.get(f)?;
        } else if el.starts_with("k:") {
            cur = cur.as_array()?.iter().find(|i| item_matches(i, el, keys))?;
            node = node.and_then(|n| n.items());
        } else {
            let want: Value = serde_json::from_str(el.strip_prefix("v:")?).ok()?;
            cur = cur.as_array()?.iter().find(|i| **i == want)?;
        }
    }
    Some(cur)
}

/// Removes the value at a field-set path, if present.
fn remove_at(v: &mut Value, path: &[String], node: Option<Node>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = node;
    let mut keys: &[&str] = &[];
    let mut cur = v;
    for el in parents {
        let next = if let Some(f) = el.strip_prefix("f:") {
            keys = map_keys(node, f);
            node = child_node(node, f);
            cur.get_mut(f)
        } else {
            node = node.and_then(|n| n.items());
            cur.as_array_mut()
                .and_then(|a| a.iter_mut().find(|i| item_matches(i, el, keys)))
        };
        match next {
            Some(n) => cur = n,
            None => return,
        }
    }
    if let Some(f) = last.strip_prefix("f:") {
        if let Some(m) = cur.as_object_mut() {
            m.remove(f);
        }
    } else if let Some(list) = cur.as_array_mut() {
        let want: Option<Value> = last
            .strip_prefix("v:")
            .and_then(|v| serde_json::from_str(v).ok());
        list.retain(|i| match &want {
            Some(w) => i != w,
            None => !item_matches(i, last, keys),
        });
    }
}

/// Merges the applied configuration into the live object (structs and maps recursively,
/// list-maps by key, sets as unions, everything else replaced).
fn merge(live: &mut Value, applied: &Value, node: Option<Node>) {
    let (Some(l), Some(a)) = (live.as_object_mut(), applied.as_object()) else {
        *live = applied.clone();
        return;
    };
    if meta::atomic_struct(node.and_then(|n| n.def())) {
        *live = applied.clone();
        return;
    }
    for (k, av) in a {
        if av.is_null() {
            continue;
        }
        let child = child_node(node, k);
        let list = node.and_then(|n| meta::list(n.def(), k));
        match (l.get_mut(k), av) {
            (Some(lv @ Value::Object(_)), Value::Object(_)) => merge(lv, av, child),
            (Some(Value::Array(items)), Value::Array(new_items)) if list.is_some_and(|m| m.set) => {
                for i in new_items {
                    if !items.contains(i) {
                        items.push(i.clone());
                    }
                }
            }
            (Some(Value::Array(items)), Value::Array(new_items))
                if list.is_some_and(|m| !m.map_keys.is_empty()) =>
            {
                let keys = list.map(|m| m.map_keys).unwrap_or(&[]);
                let item_node = child.and_then(|c| c.items());
                let mut merged: Vec<Value> = Vec::with_capacity(new_items.len());
                for ni in new_items {
                    let key = fieldset::item_key(ni, keys);
                    let mut base = match items.iter().position(|i| item_matches(i, &key, keys)) {
                        Some(pos) => items.remove(pos),
                        None => Value::Object(Map::new()),
                    };
                    merge(&mut base, ni, item_node);
                    merged.push(base);
                }
                merged.append(items);
                *items = merged;
            }
            _ => {
                l.insert(k.clone(), av.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests;
