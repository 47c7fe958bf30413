//! apps/v1 StatefulSets: ordered-pod defaults, selector rules, `/status` and `/scale`, and
//! the `kubectl get statefulsets` columns.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_pb::api::apps::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{col, ready_of_desired, workload_row, Column, AGE, CONTAINERS, IMAGES, NAME};
use crate::validation::Errs;

pub struct StatefulSets;

impl Strategy for StatefulSets {
    type Object = StatefulSet;
    type Protobuf = pb::StatefulSet;
    const RESOURCE: Entry = Entry {
        short_names: &["sts"],
        categories: ALL,
        subresources: &[Sub::Status, Sub::Scale],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[NAME, col("Ready"), AGE, CONTAINERS, IMAGES];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "replicas", json!(1));
        set(spec, "podManagementPolicy", json!("OrderedReady"));
        set(spec, "revisionHistoryLimit", json!(10));
        set(
            spec,
            "persistentVolumeClaimRetentionPolicy",
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"}),
        );
        let strategy = ensure(spec, "updateStrategy");
        set(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            set(ensure(strategy, "rollingUpdate"), "partition", json!(0));
        }
        template(spec);
    }

    fn validate(
        &self,
        new: Obj<'_, StatefulSet>,
        old: Option<Obj<'_, StatefulSet>>,
        errs: &mut Errs,
    ) {
        errs.min("spec.replicas", &new.json["spec"]["replicas"], 0);
        crate::validation::pod::workload("statefulset", new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        workload_row(o, vec![ready_of_desired(o)], false)
    }
}
