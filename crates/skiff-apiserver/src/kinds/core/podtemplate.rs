//! core/v1 PodTemplates: a named pod template, validated and defaulted as templates are,
//! printed with its containers, images and pod labels.

use k8s_openapi::api::core::v1::PodTemplate;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::template;
use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{col, containers_and_images, format_labels, name, Column, NAME};
use crate::validation::pod::pod_template;
use crate::validation::Errs;

pub struct PodTemplates;

impl Strategy for PodTemplates {
    type Object = PodTemplate;
    type Protobuf = pb::PodTemplate;
    const RESOURCE: Entry = Entry::DEFAULT;
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[NAME, col("Containers"), col("Images"), col("Pod Labels")];

    fn defaults(&self, obj: &mut Value) {
        if obj.get("template").is_some_and(Value::is_object) {
            template(obj);
        }
    }

    fn validate(
        &self,
        new: Obj<'_, PodTemplate>,
        _old: Option<Obj<'_, PodTemplate>>,
        errs: &mut Errs,
    ) {
        pod_template(&new.json["template"], "template", errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let (containers, images) = containers_and_images(o.pointer("/template/spec"));
        vec![
            name(o),
            containers,
            images,
            json!(format_labels(o.pointer("/template/metadata/labels"))),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn template_is_validated_and_printed() {
        let empty = json!({"metadata": {"name": "t"}});
        let err = Kind::validate(&PodTemplates, &empty, None).unwrap_err();
        assert_eq!(
            err.message,
            "PodTemplate \"t\" is invalid: template.spec.containers: Required value"
        );
        let mut t = json!({"metadata": {"name": "t"}, "template": {"metadata": {"labels": {"b": "2", "a": "1"}},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}});
        Kind::defaults(&PodTemplates, &mut t);
        assert_eq!(t["template"]["spec"]["restartPolicy"], "Always");
        assert!(Kind::validate(&PodTemplates, &t, None).is_ok());
        assert_eq!(
            Kind::cells(&PodTemplates, &t)[1..],
            [json!("c"), json!("busybox"), json!("a=1,b=2")]
        );
    }
}
