//! core/v1 ReplicationControllers: selector and labels defaulted from the pod template, the
//! map selector that must match the template, `/status` and `/scale`, and the `kubectl get
//! replicationcontrollers` columns.

use k8s_openapi::api::core::v1::ReplicationController;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::object;
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    containers_and_images, desired, format_labels, int, int_col, Column, AGE, CONTAINERS, IMAGES,
    NAME, SELECTOR,
};
use crate::validation::pod::{pod_template, restart_policy_in};
use crate::validation::{go_map, labels, Errs};

pub struct ReplicationControllers;

impl Strategy for ReplicationControllers {
    type Object = ReplicationController;
    type Protobuf = pb::ReplicationController;
    const RESOURCE: Entry = Entry {
        short_names: &["rc"],
        categories: ALL,
        subresources: &[Sub::Status, Sub::Scale],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const FIELD_SELECTORS: &'static [&'static str] = &["status.replicas"];
    const COLUMNS: &'static [Column] = &[
        NAME,
        int_col("Desired"),
        int_col("Current"),
        int_col("Ready"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    /// The template's labels become the selector and the object's labels when unset.
    fn defaults(&self, obj: &mut Value) {
        let template_labels = obj
            .pointer("/spec/template/metadata/labels")
            .filter(|l| l.as_object().is_some_and(|m| !m.is_empty()))
            .cloned();
        if let Some(l) = &template_labels {
            if obj
                .pointer("/spec/selector")
                .is_none_or(|s| s.as_object().is_none_or(serde_json::Map::is_empty))
            {
                ensure(obj, "spec")["selector"] = l.clone();
            }
            if object::labels(obj).is_empty() {
                object::meta_mut(obj).insert("labels".into(), l.clone());
            }
        }
        let spec = ensure(obj, "spec");
        set(spec, "replicas", json!(1));
        template(spec);
    }

    fn validate(
        &self,
        new: Obj<'_, ReplicationController>,
        _old: Option<Obj<'_, ReplicationController>>,
        errs: &mut Errs,
    ) {
        let spec = &new.json["spec"];
        errs.min("spec.minReadySeconds", &spec["minReadySeconds"], 0);
        let selector = &spec["selector"];
        let empty = selector.as_object().is_none_or(serde_json::Map::is_empty);
        if empty {
            errs.required("spec.selector", "");
        }
        labels(selector, "spec.selector", errs);
        errs.min("spec.replicas", &spec["replicas"], 0);
        let template = &spec["template"];
        if template.is_null() {
            errs.required("spec.template", "");
            return;
        }
        let template_labels = &template["metadata"]["labels"];
        let matches = selector
            .as_object()
            .into_iter()
            .flatten()
            .all(|(k, v)| template_labels.get(k).and_then(Value::as_str) == v.as_str());
        if !empty && !matches {
            errs.invalid(
                "spec.template.metadata.labels",
                go_map(template_labels),
                "`selector` does not match template `labels`",
            );
        }
        pod_template(template, "spec.template", errs);
        restart_policy_in(&template["spec"], "spec.template.spec", &["Always"], errs);
        if let Some(n) = template["spec"]["activeDeadlineSeconds"].as_i64() {
            errs.invalid(
                "spec.template.spec.activeDeadlineSeconds",
                n.to_string(),
                "activeDeadlineSeconds in ReplicationController is not Supported",
            );
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (containers, images) = containers_and_images(o.pointer("/spec/template/spec"));
        vec![
            crate::table::name(o),
            json!(desired(o)),
            int(o, "/status/replicas"),
            int(o, "/status/readyReplicas"),
            crate::table::age(o),
            containers,
            images,
            json!(format_labels(o.pointer("/spec/selector"))),
        ]
    }

    /// A ReplicationController selects with a plain label map.
    fn scale_selector(&self, obj: &Value) -> String {
        let s = format_labels(obj.pointer("/spec/selector"));
        if s == "<none>" {
            String::new()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn rc() -> Value {
        json!({"apiVersion": "v1", "kind": "ReplicationController", "metadata": {"name": "web"},
            "spec": {"template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}})
    }

    #[test]
    fn selector_and_labels_default_from_the_template() {
        let mut obj = rc();
        Kind::defaults(&ReplicationControllers, &mut obj);
        assert_eq!(obj["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(obj["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(obj["spec"]["replicas"], 1);
        assert!(Kind::validate(&ReplicationControllers, &obj, None).is_ok());
        assert_eq!(
            Kind::scale_selector(&ReplicationControllers, &obj),
            "app=web"
        );
        let c = Kind::cells(&ReplicationControllers, &obj);
        assert_eq!(c[1], 1);
        assert_eq!(c[7], "app=web");
    }

    #[test]
    fn selector_must_match_and_template_is_required() {
        let mut obj = rc();
        obj["spec"]["selector"] = json!({"app": "other"});
        Kind::defaults(&ReplicationControllers, &mut obj);
        let err = Kind::validate(&ReplicationControllers, &obj, None).unwrap_err();
        assert_eq!(
            err.message,
            "ReplicationController \"web\" is invalid: spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        );
        let bare = json!({"metadata": {"name": "web"}, "spec": {}});
        let err = Kind::validate(&ReplicationControllers, &bare, None).unwrap_err();
        let fields: Vec<&str> = err.causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["spec.selector", "spec.template"]);
    }
}
