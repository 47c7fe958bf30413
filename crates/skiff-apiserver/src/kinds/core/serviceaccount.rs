//! core/v1 ServiceAccounts (every namespace gets `default`, see [`super::namespace`]) and
//! their `token` subresource ([`crate::serviceaccount::tokenrequest`]).

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::registry::Strategy;
use crate::resources::{Entry, Sub};
use crate::table::{col, Column, AGE, NAME};

pub struct ServiceAccounts;

impl Strategy for ServiceAccounts {
    type Object = ServiceAccount;
    type Protobuf = pb::ServiceAccount;
    const RESOURCE: Entry = Entry {
        short_names: &["sa"],
        subresources: &[Sub::Token],
        ..Entry::DEFAULT
    };
    const COLUMNS: &'static [Column] = &[NAME, col("Secrets"), AGE];

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![
            crate::table::name(o),
            json!(o
                .get("secrets")
                .and_then(Value::as_array)
                .map_or(0, Vec::len)),
            crate::table::age(o),
        ]
    }
}
