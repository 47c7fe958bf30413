//! The client-side → server-side apply upgrade, as kube-apiserver does it for manager
//! `kubectl` (apimachinery's `lastAppliedManager` and `lastAppliedUpdater`): a conflicting
//! field that the `kubectl.kubernetes.io/last-applied-configuration` annotation lists, with
//! the value it still has in the live object, was set by `kubectl apply` and may be taken
//! over without `--force-conflicts`; and while that annotation exists, server-side applies by
//! `kubectl` keep it up to date, so a later client-side apply still computes the right patch.

use serde_json::{json, Value};

use super::fieldset::Path;
use super::{get_at, FieldSet};
use crate::validation::schema::Node;

/// The annotation `kubectl apply` (client-side) records its applied configuration in.
pub const ANNOTATION: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// The only manager the upgrade applies to (other managers opt out by their name).
pub const MANAGER: &str = "kubectl";
/// Kubernetes' limit on all annotations of an object; a larger annotation is dropped.
const ANNOTATIONS_LIMIT: usize = 256 * 1024;

/// The last applied configuration recorded on `live`, if any and in `api_version`.
fn last_applied(live: &Value, api_version: &str) -> Option<Value> {
    let text = live
        .pointer("/metadata/annotations")?
        .get(ANNOTATION)?
        .as_str()
        .filter(|s| !s.is_empty())?;
    let obj: Value = serde_json::from_str(text).ok()?;
    (obj.get("apiVersion").and_then(Value::as_str) == Some(api_version)).then_some(obj)
}

/// The fields client-side apply still owns in `live`: those in the last applied
/// configuration whose value is unchanged in the live object.
pub fn allowed_conflicts(live: &Value, api_version: &str, root: Option<Node>) -> Option<FieldSet> {
    let last = last_applied(live, api_version)?;
    let set = FieldSet::of_object(&last, root);
    let mut allowed = FieldSet::default();
    for leaf in set.leaves() {
        let was = get_at(&last, &leaf, root);
        if was.is_some() && was == get_at(live, &leaf, root) {
            allowed.insert(&leaf);
        }
    }
    Some(allowed)
}

/// Whether `path` is one of the `allowed` conflicts.
pub fn allows(allowed: &FieldSet, path: &Path) -> bool {
    allowed.contains(path)
}

/// After an apply by [`MANAGER`] onto an object that has the annotation, sets it to the
/// applied configuration (without the annotation itself), as Kubernetes does.
pub fn update(live: Option<&Value>, applied: &Value, result: &mut Value) {
    let has = live
        .and_then(|l| l.pointer("/metadata/annotations"))
        .and_then(|a| a.get(ANNOTATION))
        .and_then(Value::as_str)
        .is_some_and(|s| !s.is_empty());
    if !has {
        return;
    }
    let mut config = applied.clone();
    if let Some(a) = config
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.remove(ANNOTATION);
    }
    let text = serde_json::to_string(&config).unwrap_or_default();
    if result.get("metadata").is_none() {
        result["metadata"] = json!({});
    }
    let meta = &mut result["metadata"];
    if !meta.get("annotations").is_some_and(Value::is_object) {
        meta["annotations"] = json!({});
    }
    let annotations = meta["annotations"].as_object_mut().expect("set above");
    if text.len() > ANNOTATIONS_LIMIT {
        annotations.remove(ANNOTATION);
    } else {
        annotations.insert(ANNOTATION.into(), Value::String(text));
    }
}
