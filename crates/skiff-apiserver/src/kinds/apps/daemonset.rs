//! apps/v1 DaemonSets: update strategy defaults, selector rules, `/status`, and the
//! `kubectl get daemonsets` columns.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_pb::api::apps::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::registry::{Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    col, format_labels, int, int_col, workload_row, Column, AGE, CONTAINERS, IMAGES, NAME, SELECTOR,
};
use crate::validation::Errs;

pub struct DaemonSets;

impl Strategy for DaemonSets {
    type Object = DaemonSet;
    type Protobuf = pb::DaemonSet;
    const RESOURCE: Entry = Entry {
        short_names: &["ds"],
        categories: ALL,
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[
        NAME,
        int_col("Desired"),
        int_col("Current"),
        int_col("Ready"),
        int_col("Up-to-date"),
        int_col("Available"),
        col("Node Selector"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "revisionHistoryLimit", json!(10));
        let strategy = ensure(spec, "updateStrategy");
        set(strategy, "type", json!("RollingUpdate"));
        if strategy["type"] == "RollingUpdate" {
            let ru = ensure(strategy, "rollingUpdate");
            set(ru, "maxUnavailable", json!(1));
            set(ru, "maxSurge", json!(0));
        }
        template(spec);
    }

    fn validate(&self, new: Obj<'_, DaemonSet>, old: Option<Obj<'_, DaemonSet>>, errs: &mut Errs) {
        crate::validation::pod::workload("daemonset", new.json, old.map(|o| o.json), errs);
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        let own = vec![
            int(o, "/status/desiredNumberScheduled"),
            int(o, "/status/currentNumberScheduled"),
            int(o, "/status/numberReady"),
            int(o, "/status/updatedNumberScheduled"),
            int(o, "/status/numberAvailable"),
            json!(format_labels(o.pointer("/spec/template/spec/nodeSelector"))),
        ];
        workload_row(o, own, true)
    }
}
