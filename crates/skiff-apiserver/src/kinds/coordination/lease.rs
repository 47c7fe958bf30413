//! coordination.k8s.io/v1 Leases: leader election and node heartbeats (a PUT creates a
//! missing one).

use k8s_openapi::api::coordination::v1::Lease;
use k8s_pb::api::coordination::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{age, col, name, str_at, Column, AGE, NAME};
use crate::validation::Errs;

pub struct Leases;

impl Strategy for Leases {
    type Object = Lease;
    type Protobuf = pb::Lease;
    const RESOURCE: Entry = Entry::DEFAULT;
    const CREATE_ON_UPDATE: bool = true;
    const COLUMNS: &'static [Column] = &[NAME, col("Holder"), AGE];

    fn validate(&self, new: Obj<'_, Lease>, _old: Option<Obj<'_, Lease>>, errs: &mut Errs) {
        let spec = &new.json["spec"];
        for f in ["leaseDurationSeconds", "leaseTransitions"] {
            let min = if f == "leaseDurationSeconds" { 1 } else { 0 };
            if let Some(n) = spec[f].as_i64().filter(|n| *n < min) {
                let detail = if min == 1 {
                    "must be greater than 0"
                } else {
                    "must be greater than or equal to 0"
                };
                errs.invalid(&format!("spec.{f}"), n.to_string(), detail);
            }
        }
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![name(o), json!(str_at(o, "/spec/holderIdentity")), age(o)]
    }
}
