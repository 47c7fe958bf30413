//! The pure half of the collector: from one snapshot of stored objects to the writes that
//! move it toward the state Kubernetes' garbage collector and namespace controller keep.

use std::collections::{HashMap, HashSet};

use serde_json::{json, Value};

use super::{FOREGROUND, NAMESPACE_FINALIZER, ORPHAN};
use crate::kinds::core::namespace;
use crate::registry::{Backend, Kind};
use crate::resources;

/// One stored object as a pass sees it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub kind: &'static dyn Kind,
    pub key: String,
    pub revision: i64,
    /// None when the bytes are not JSON (e.g. encrypted with a key this collector lacks):
    /// such objects can still be deleted with their namespace, never rewritten.
    pub object: Option<Value>,
    pub encrypted: bool,
}

/// A write a pass makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Delete {
        key: String,
        revision: i64,
    },
    Update {
        key: String,
        revision: i64,
        object: Value,
    },
}

impl Action {
    /// The key this action writes.
    pub fn key(&self) -> &str {
        match self {
            Action::Delete { key, .. } | Action::Update { key, .. } => key,
        }
    }
}

fn meta_str<'a>(o: &'a Value, field: &str) -> &'a str {
    o.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// The strings of the list at JSON `pointer` (empty when absent).
fn strings_at(o: &Value, pointer: &str) -> Vec<String> {
    o.pointer(pointer)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn finalizers(o: &Value) -> Vec<String> {
    strings_at(o, "/metadata/finalizers")
}

fn deleting(o: &Value) -> bool {
    o.pointer("/metadata/deletionTimestamp")
        .is_some_and(|v| !v.is_null())
}

fn owner_refs(o: &Value) -> &[Value] {
    o.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

fn spec_finalizers(o: &Value) -> Vec<String> {
    strings_at(o, "/spec/finalizers")
}

/// Whether an ownerReference names a kind this API serves (owners of other kinds are never
/// considered gone: this collector cannot see them).
fn served_owner(r: &Value) -> bool {
    let api_version = r["apiVersion"].as_str().unwrap_or("");
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    let kind = r["kind"].as_str().unwrap_or("");
    resources::all()
        .any(|k| k.backend() == Backend::Store && k.info().group == group && k.info().kind == kind)
}

/// Plans one pass over a consistent snapshot. At most one action per key.
pub fn plan(objects: &[Stored], now: &str) -> Vec<Action> {
    let mut by_uid: HashMap<&str, &Stored> = HashMap::new();
    let mut dependents: HashMap<&str, Vec<&Stored>> = HashMap::new();
    for s in objects {
        let Some(o) = &s.object else { continue };
        by_uid.insert(meta_str(o, "uid"), s);
        for r in owner_refs(o) {
            if let Some(uid) = r["uid"].as_str() {
                dependents.entry(uid).or_default().push(s);
            }
        }
    }
    let terminating: HashSet<&str> = objects
        .iter()
        .filter(|s| s.kind.info() == namespace::info())
        .filter_map(|s| {
            s.object
                .as_ref()
                .filter(|o| deleting(o))
                .map(|o| meta_str(o, "name"))
        })
        .collect();
    let namespace_of = |s: &Stored| -> Option<String> {
        s.kind.info().namespaced.then(|| {
            s.key
                .strip_prefix(&s.kind.info().prefix())
                .and_then(|rest| rest.split('/').next())
                .map(str::to_string)
        })?
    };

    let mut actions: Vec<Action> = Vec::new();
    let mut planned: HashSet<String> = HashSet::new();
    let mut push = |a: Action, actions: &mut Vec<Action>| {
        if planned.insert(a.key().to_string()) {
            actions.push(a);
        }
    };
    // Deleting an object: remove it, or mark it when finalizers must run first.
    let delete = |s: &Stored| -> Option<Action> {
        match &s.object {
            Some(o) if !finalizers(o).is_empty() => (!deleting(o)).then(|| {
                let mut marked = o.clone();
                marked["metadata"]["deletionTimestamp"] = json!(now);
                marked["metadata"]["deletionGracePeriodSeconds"] = json!(0);
                Action::Update {
                    key: s.key.clone(),
                    revision: s.revision,
                    object: marked,
                }
            }),
            _ => Some(Action::Delete {
                key: s.key.clone(),
                revision: s.revision,
            }),
        }
    };
    // The object without finalizer `f`, or its deletion when that was the last one.
    let release = |s: &Stored, o: &Value, f: &str| -> Action {
        let rest: Vec<String> = finalizers(o).into_iter().filter(|x| x != f).collect();
        if rest.is_empty() && deleting(o) && !is_pending_namespace(s, o) {
            return Action::Delete {
                key: s.key.clone(),
                revision: s.revision,
            };
        }
        let mut out = o.clone();
        out["metadata"]["finalizers"] = json!(rest);
        Action::Update {
            key: s.key.clone(),
            revision: s.revision,
            object: out,
        }
    };

    for s in objects {
        if namespace_of(s).is_some_and(|ns| terminating.contains(ns.as_str())) {
            if let Some(a) = delete(s) {
                push(a, &mut actions);
                continue;
            }
        }
        let Some(o) = &s.object else { continue };
        let uid = meta_str(o, "uid");
        let deps = dependents.get(uid).map(Vec::as_slice).unwrap_or_default();
        let fins = finalizers(o);
        if deleting(o) {
            if is_pending_namespace(s, o) {
                let name = meta_str(o, "name");
                let empty = !objects
                    .iter()
                    .any(|x| namespace_of(x).as_deref() == Some(name));
                if o.pointer("/status/phase").and_then(Value::as_str) != Some("Terminating") {
                    let mut out = o.clone();
                    out["status"]["phase"] = json!("Terminating");
                    push(
                        Action::Update {
                            key: s.key.clone(),
                            revision: s.revision,
                            object: out,
                        },
                        &mut actions,
                    );
                } else if empty {
                    let mut out = o.clone();
                    let rest: Vec<String> = spec_finalizers(o)
                        .into_iter()
                        .filter(|f| f != NAMESPACE_FINALIZER)
                        .collect();
                    out["spec"]["finalizers"] = json!(rest);
                    let done = rest.is_empty() && fins.is_empty();
                    push(
                        if done {
                            Action::Delete {
                                key: s.key.clone(),
                                revision: s.revision,
                            }
                        } else {
                            Action::Update {
                                key: s.key.clone(),
                                revision: s.revision,
                                object: out,
                            }
                        },
                        &mut actions,
                    );
                }
            } else if fins.is_empty() && !s.kind.graceful_delete() {
                // Left over by a writer that removed the last finalizer without deleting.
                // Kinds deleted gracefully (pods) are exempt: their termination belongs to
                // the node agent.
                push(
                    Action::Delete {
                        key: s.key.clone(),
                        revision: s.revision,
                    },
                    &mut actions,
                );
            } else if fins.iter().any(|f| f == ORPHAN) {
                if deps.is_empty() {
                    push(release(s, o, ORPHAN), &mut actions);
                }
                for d in deps {
                    let Some(dobj) = &d.object else { continue };
                    let mut out = dobj.clone();
                    let refs: Vec<Value> = owner_refs(dobj)
                        .iter()
                        .filter(|r| r["uid"] != uid)
                        .cloned()
                        .collect();
                    out["metadata"]["ownerReferences"] = json!(refs);
                    if refs.is_empty() {
                        out["metadata"]
                            .as_object_mut()
                            .map(|m| m.remove("ownerReferences"));
                    }
                    push(
                        Action::Update {
                            key: d.key.clone(),
                            revision: d.revision,
                            object: out,
                        },
                        &mut actions,
                    );
                }
            } else if fins.iter().any(|f| f == FOREGROUND) {
                let blocking = deps.iter().any(|d| {
                    d.object.as_ref().is_some_and(|dobj| {
                        owner_refs(dobj)
                            .iter()
                            .any(|r| r["uid"] == uid && r["blockOwnerDeletion"] == true)
                    })
                });
                for d in deps {
                    if let Some(a) = delete(d) {
                        push(a, &mut actions);
                    }
                }
                if !blocking {
                    push(release(s, o, FOREGROUND), &mut actions);
                }
            }
        }
        let refs = owner_refs(o);
        if refs.is_empty() || deleting(o) {
            continue;
        }
        let gone: Vec<&Value> = refs
            .iter()
            .filter(|r| {
                served_owner(r) && r["uid"].as_str().is_some_and(|u| !by_uid.contains_key(u))
            })
            .collect();
        if gone.len() == refs.len() {
            if let Some(a) = delete(s) {
                push(a, &mut actions);
            }
        } else if !gone.is_empty() {
            let mut out = o.clone();
            let kept: Vec<Value> = refs.iter().filter(|r| !gone.contains(r)).cloned().collect();
            out["metadata"]["ownerReferences"] = json!(kept);
            push(
                Action::Update {
                    key: s.key.clone(),
                    revision: s.revision,
                    object: out,
                },
                &mut actions,
            );
        }
    }
    actions
}

/// A namespace still waiting for its `kubernetes` finalizer.
fn is_pending_namespace(s: &Stored, o: &Value) -> bool {
    s.kind.info() == namespace::info()
        && spec_finalizers(o).iter().any(|f| f == NAMESPACE_FINALIZER)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::resources::find_kind;
    use serde_json::json;

    pub fn info(av: &str, kind: &str) -> &'static crate::resources::ResourceInfo {
        find_kind(av, kind).unwrap().info()
    }

    pub fn obj(
        kind_av: (&str, &str),
        ns: Option<&str>,
        name: &str,
        uid: &str,
        extra: Value,
    ) -> Value {
        let mut o = json!({"apiVersion": kind_av.0, "kind": kind_av.1, "metadata": {"name": name, "uid": uid}});
        if let Some(ns) = ns {
            o["metadata"]["namespace"] = json!(ns);
        }
        if let (Some(m), Some(e)) = (o["metadata"].as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        o
    }

    pub fn owner_ref(kind: (&str, &str), name: &str, uid: &str, block: bool) -> Value {
        json!({"apiVersion": kind.0, "kind": kind.1, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": block})
    }

    pub const DEPLOY: (&str, &str) = ("apps/v1", "Deployment");
    pub const RS: (&str, &str) = ("apps/v1", "ReplicaSet");
    pub const POD: (&str, &str) = ("v1", "Pod");

    pub fn stored(o: Value) -> Stored {
        let k = find_kind(
            o["apiVersion"].as_str().unwrap(),
            o["kind"].as_str().unwrap(),
        )
        .unwrap();
        let key = k.info().key(
            o["metadata"]["namespace"].as_str(),
            o["metadata"]["name"].as_str().unwrap(),
        );
        Stored {
            kind: k,
            key,
            revision: 7,
            object: Some(o),
            encrypted: false,
        }
    }

    /// An object in the `default` namespace, stored.
    fn in_default(kind: (&str, &str), name: &str, uid: &str, extra: Value) -> Stored {
        stored(obj(kind, Some("default"), name, uid, extra))
    }

    /// Metadata of a dependent whose controller (blocking deletion) is the given owner.
    fn owned_by(kind: (&str, &str), name: &str, uid: &str) -> Value {
        json!({"ownerReferences": [owner_ref(kind, name, uid, true)]})
    }

    /// The action deleting `s` at the snapshot's revision.
    fn deleted(s: &Stored) -> Action {
        Action::Delete {
            key: s.key.clone(),
            revision: 7,
        }
    }

    #[test]
    fn dependents_of_a_vanished_owner_are_deleted() {
        let rs = in_default(RS, "web-1", "rs-uid", owned_by(DEPLOY, "web", "gone"));
        let actions = plan(std::slice::from_ref(&rs), "now");
        assert_eq!(actions, [deleted(&rs)]);
        let dep = in_default(DEPLOY, "web", "gone", json!({}));
        assert!(
            plan(&[rs, dep], "now").is_empty(),
            "owner present: nothing to do"
        );
    }

    #[test]
    fn unserved_owner_kinds_and_partial_owners() {
        let workflow_owned = in_default(
            POD,
            "p",
            "p",
            json!({"ownerReferences": [owner_ref(("argoproj.io/v1alpha1", "Workflow"), "w", "wf-uid", true)]}),
        );
        assert!(plan(&[workflow_owned], "now").is_empty());
        let job_owned = in_default(
            POD,
            "j",
            "j",
            json!({"ownerReferences": [owner_ref(("batch/v1", "Job"), "j", "job-uid", true)]}),
        );
        assert_eq!(
            plan(std::slice::from_ref(&job_owned), "now"),
            [deleted(&job_owned)],
            "Jobs are served: a pod whose Job is gone is collected"
        );
        let both = in_default(
            POD,
            "q",
            "q",
            json!({"ownerReferences": [owner_ref(RS, "a", "a", true), owner_ref(RS, "b", "b", true)]}),
        );
        let a = in_default(RS, "a", "a", json!({}));
        let actions = plan(&[both.clone(), a], "now");
        let Action::Update { object, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(
            object["metadata"]["ownerReferences"],
            json!([owner_ref(RS, "a", "a", true)])
        );
    }

    #[test]
    fn foreground_waits_for_blocking_dependents() {
        let owner = in_default(
            DEPLOY,
            "web",
            "d",
            json!({"deletionTimestamp": "t", "finalizers": ["foregroundDeletion"]}),
        );
        let rs = in_default(RS, "web-1", "r", owned_by(DEPLOY, "web", "d"));
        let actions = plan(&[owner.clone(), rs.clone()], "now");
        assert_eq!(actions, [deleted(&rs)], "owner waits");
        let actions = plan(std::slice::from_ref(&owner), "now");
        assert_eq!(actions, [deleted(&owner)], "then goes");
        let mut two = owner.clone();
        two.object.as_mut().unwrap()["metadata"]["finalizers"] =
            json!(["foregroundDeletion", "example.com/x"]);
        let Action::Update { object, .. } = &plan(&[two], "now")[0] else {
            panic!()
        };
        assert_eq!(object["metadata"]["finalizers"], json!(["example.com/x"]));
    }

    #[test]
    fn terminating_pods_are_left_to_their_node() {
        let pod = in_default(
            POD,
            "p",
            "p",
            json!({"deletionTimestamp": "t", "deletionGracePeriodSeconds": 30}),
        );
        assert!(plan(std::slice::from_ref(&pod), "now").is_empty());
        let cm = in_default(
            ("v1", "ConfigMap"),
            "c",
            "c",
            json!({"deletionTimestamp": "t"}),
        );
        assert_eq!(plan(std::slice::from_ref(&cm), "now"), [deleted(&cm)]);
    }

    #[test]
    fn orphan_releases_dependents_then_the_owner() {
        let owner = in_default(
            RS,
            "web-1",
            "r",
            json!({"deletionTimestamp": "t", "finalizers": ["orphan"]}),
        );
        let pod = in_default(POD, "p", "p", owned_by(RS, "web-1", "r"));
        let actions = plan(&[owner.clone(), pod.clone()], "now");
        assert_eq!(actions.len(), 1);
        let Action::Update { key, object, .. } = &actions[0] else {
            panic!("{actions:?}")
        };
        assert_eq!(key, &pod.key);
        assert!(object["metadata"].get("ownerReferences").is_none());
        assert_eq!(plan(std::slice::from_ref(&owner), "now"), [deleted(&owner)]);
    }

    #[test]
    fn terminating_namespace_is_emptied_then_removed() {
        let ns = |phase: &str, fins: Value| {
            let mut o = obj(
                ("v1", "Namespace"),
                None,
                "team",
                "ns",
                json!({"deletionTimestamp": "t"}),
            );
            o["spec"] = json!({"finalizers": fins});
            o["status"] = json!({"phase": phase});
            stored(o)
        };
        let cm = stored(obj(("v1", "ConfigMap"), Some("team"), "c", "c", json!({})));
        let held = stored(obj(
            ("v1", "ConfigMap"),
            Some("team"),
            "h",
            "h",
            json!({"finalizers": ["example.com/hold"]}),
        ));
        let other = stored(obj(
            ("v1", "ConfigMap"),
            Some("team-b"),
            "c",
            "c2",
            json!({}),
        ));
        let actions = plan(
            &[
                ns("Active", json!(["kubernetes"])),
                cm.clone(),
                held.clone(),
                other,
            ],
            "now",
        );
        assert_eq!(actions.len(), 3, "{actions:?}");
        assert!(
            matches!(&actions[0], Action::Update { object, .. } if object["status"]["phase"] == "Terminating")
        );
        assert_eq!(actions[1], deleted(&cm));
        assert!(
            matches!(&actions[2], Action::Update { object, .. } if object["metadata"]["deletionTimestamp"] == "now")
        );

        let terminating = ns("Terminating", json!(["kubernetes"]));
        assert!(plan(&[terminating.clone(), cm], "now")
            .iter()
            .all(|a| a.key() != terminating.key));
        assert_eq!(
            plan(std::slice::from_ref(&terminating), "now"),
            [deleted(&terminating)]
        );
    }
}
