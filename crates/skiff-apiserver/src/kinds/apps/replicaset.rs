//! apps/v1 ReplicaSets: selector rules, `/status` and `/scale`, and the `kubectl get
//! replicasets` columns.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_pb::api::apps::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    desired, int, int_col, workload_row, Column, AGE, CONTAINERS, IMAGES, NAME, SELECTOR,
};
use crate::validation::Errs;

pub struct ReplicaSets;

impl Strategy for ReplicaSets {
    type Object = ReplicaSet;
    type Protobuf = pb::ReplicaSet;
    const RESOURCE: Entry = Entry {
        short_names: &["rs"],
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

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "replicas", json!(1));
        template(spec);
    }

    fn validate(
        &self,
        new: Obj<'_, ReplicaSet>,
        old: Option<Obj<'_, ReplicaSet>>,
        errs: &mut Errs,
    ) {
        errs.min("spec.replicas", &new.json["spec"]["replicas"], 0);
        crate::validation::pod::workload("replicaset", new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let own = vec![
            json!(desired(o)),
            int(o, "/status/replicas"),
            int(o, "/status/readyReplicas"),
        ];
        workload_row(o, own, true)
    }
}
