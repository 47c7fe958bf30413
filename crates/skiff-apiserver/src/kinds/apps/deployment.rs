//! apps/v1 Deployments: rolling-update defaults, selector and strategy rules, `/status` and
//! `/scale`, and the `kubectl get deployments` columns.

use k8s_openapi::api::apps::v1::Deployment;
use k8s_pb::api::apps::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    col, int, int_col, ready_of_desired, workload_row, Column, AGE, CONTAINERS, IMAGES, NAME,
    SELECTOR,
};
use crate::validation::Errs;

pub struct Deployments;

impl Strategy for Deployments {
    type Object = Deployment;
    type Protobuf = pb::Deployment;
    const RESOURCE: Entry = Entry {
        short_names: &["deploy"],
        categories: ALL,
        subresources: &[Sub::Status, Sub::Scale],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Ready"),
        int_col("Up-to-date"),
        int_col("Available"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "replicas", json!(1));
        set(spec, "revisionHistoryLimit", json!(10));
        set(spec, "progressDeadlineSeconds", json!(600));
        let strategy = ensure(spec, "strategy");
        set(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let ru = ensure(strategy, "rollingUpdate");
            set(ru, "maxUnavailable", json!("25%"));
            set(ru, "maxSurge", json!("25%"));
        }
        template(spec);
    }

    fn validate(
        &self,
        new: Obj<'_, Deployment>,
        old: Option<Obj<'_, Deployment>>,
        errs: &mut Errs,
    ) {
        let spec = &new.json["spec"];
        errs.min("spec.replicas", &spec["replicas"], 0);
        crate::validation::pod::workload("deployment", new.json, old.map(|o| o.json), errs);
        let strategy = &spec["strategy"];
        match strategy["type"].as_str() {
            None | Some("RollingUpdate") => {}
            Some("Recreate") if strategy["rollingUpdate"].is_null() => {}
            Some("Recreate") => errs.forbidden(
                "spec.strategy.rollingUpdate",
                "may not be specified when strategy `type` is 'Recreate'",
            ),
            Some(other) => {
                errs.not_supported("spec.strategy.type", other, &["Recreate", "RollingUpdate"])
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let own = vec![
            ready_of_desired(o),
            int(o, "/status/updatedReplicas"),
            int(o, "/status/availableReplicas"),
        ];
        workload_row(o, own, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn deployment_row_shows_ready_of_desired() {
        let d = json!({"metadata": {"name": "web"}, "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let c = Kind::cells(&Deployments, &d);
        assert_eq!(c[1], "2/3");
        assert_eq!(c[2], 3);
        assert_eq!(c[5], "c");
        assert_eq!(c[6], "busybox");
        assert_eq!(c[7], "app=web");
    }
}
