//! discovery.k8s.io/v1 EndpointSlices: a known address type and at least one address per
//! endpoint are required, and `kubectl get endpointslices` prints ports and up to three
//! endpoints.

use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_pb::api::discovery::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{age, col, join_or, name, Column, AGE, NAME};
use crate::validation::Errs;

const ADDRESS_TYPES: &[&str] = &["FQDN", "IPv4", "IPv6"];

pub struct EndpointSlices;

impl Strategy for EndpointSlices {
    type Object = EndpointSlice;
    type Protobuf = pb::EndpointSlice;
    const RESOURCE: Entry = Entry::DEFAULT;
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("AddressType"),
        col("Ports"),
        col("Endpoints"),
        AGE,
    ];

    fn validate(
        &self,
        new: Obj<'_, EndpointSlice>,
        _old: Option<Obj<'_, EndpointSlice>>,
        errs: &mut Errs,
    ) {
        let address_type = new.json["addressType"].as_str().unwrap_or("");
        if !ADDRESS_TYPES.contains(&address_type) {
            errs.not_supported("addressType", address_type, ADDRESS_TYPES);
        }
        for (i, e) in crate::table::arr(new.json, "/endpoints")
            .into_iter()
            .enumerate()
        {
            if e["addresses"].as_array().is_none_or(Vec::is_empty) {
                errs.required(
                    &format!("endpoints[{i}].addresses"),
                    "must contain at least 1 address",
                );
            }
        }
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        endpointslice_cells(obj)
    }
}

fn endpointslice_cells(o: &Value) -> Vec<Value> {
    let ports: Vec<String> = o
        .get("ports")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("port").and_then(Value::as_i64).map(|p| p.to_string()))
        .collect();
    let addrs: Vec<String> = o
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|e| {
            e.get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter_map(|a| a.as_str().map(String::from))
        .collect();
    let endpoints = match addrs.len() {
        0 => "<unset>".to_string(),
        n if n > 3 => format!("{} + {} more...", addrs[..3].join(","), n - 3),
        _ => addrs.join(","),
    };
    vec![
        name(o),
        json!(o
            .get("addressType")
            .and_then(Value::as_str)
            .unwrap_or_default()),
        json!(join_or(&ports, "<unset>")),
        json!(endpoints),
        age(o),
    ]
}
