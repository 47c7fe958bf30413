//! core/v1 Endpoints: written by the endpoints controller (a PUT creates a missing one),
//! printed as `ip:port` lists.

use k8s_openapi::api::core::v1::Endpoints;
use k8s_pb::api::core::v1 as pb;
use serde_json::{json, Value};

use crate::registry::{Obj, Strategy};
use crate::resources::Entry;
use crate::table::{arr, col, Column, AGE, NAME};
use crate::validation::{quote, Errs};

/// Kubernetes' `IsValidIP` message.
pub const IP_MSG: &str = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)";

pub struct EndpointsKind;

impl Strategy for EndpointsKind {
    type Object = Endpoints;
    type Protobuf = pb::Endpoints;
    const RESOURCE: Entry = Entry {
        short_names: &["ep"],
        ..Entry::DEFAULT
    };
    const CREATE_ON_UPDATE: bool = true;
    const COLUMNS: &'static [Column] = &[NAME, col("Endpoints"), AGE];

    fn validate(&self, new: Obj<'_, Endpoints>, _old: Option<Obj<'_, Endpoints>>, errs: &mut Errs) {
        validate_subsets(new.json, errs);
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        vec![
            crate::table::name(obj),
            json!(endpoints_summary(obj)),
            crate::table::age(obj),
        ]
    }
}

/// Every address has a valid IP and every port a valid number.
fn validate_subsets(obj: &Value, errs: &mut Errs) {
    for (i, s) in arr(obj, "/subsets").into_iter().enumerate() {
        for list in ["addresses", "notReadyAddresses"] {
            for (j, a) in arr(s, &format!("/{list}")).into_iter().enumerate() {
                let ip = a["ip"].as_str().unwrap_or("");
                if ip.parse::<std::net::IpAddr>().is_err() {
                    errs.invalid(&format!("subsets[{i}].{list}[{j}].ip"), quote(ip), IP_MSG);
                }
            }
        }
        for (j, p) in arr(s, "/ports").into_iter().enumerate() {
            if let Some(n) = p["port"].as_i64() {
                for m in crate::validation::names::port_number(n) {
                    errs.invalid(&format!("subsets[{i}].ports[{j}].port"), n.to_string(), &m);
                }
            }
        }
    }
}

/// `ip:port,…` of Endpoints, port by port, at most three then `+ N more...` (Kubernetes'
/// `formatEndpoints`).
fn endpoints_summary(o: &Value) -> String {
    let mut all = Vec::new();
    for s in arr(o, "/subsets") {
        let ips: Vec<&str> = arr(s, "/addresses")
            .iter()
            .map(|a| a.get("ip").and_then(Value::as_str).unwrap_or_default())
            .collect();
        let ports = arr(s, "/ports");
        if ports.is_empty() {
            all.extend(ips.iter().map(|ip| ip.to_string()));
        }
        for p in ports {
            let port = p.get("port").and_then(Value::as_i64).unwrap_or(0);
            all.extend(ips.iter().map(|ip| join_host_port(ip, port)));
        }
    }
    match all.len() {
        0 => "<none>".into(),
        n if n > 3 => format!("{} + {} more...", all[..3].join(","), n - 3),
        _ => all.join(","),
    }
}

/// `ip:port`, with an IPv6 address in brackets (Go's `net.JoinHostPort`).
fn join_host_port(ip: &str, port: i64) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    #[test]
    fn addresses_need_an_ip() {
        let ep = json!({"metadata": {"name": "web"}, "subsets": [{"addresses": [{"ip": "10.42.0.5"}, {"hostname": "x"}], "ports": [{"port": 80}]}]});
        let err = Kind::validate(&EndpointsKind, &ep, None).unwrap_err();
        assert_eq!(err.causes[0].field, "subsets[0].addresses[1].ip");
        assert_eq!(
            err.causes[0].message,
            "Invalid value: \"\": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
        );
        let many = json!({"subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}]});
        assert_eq!(
            endpoints_summary(&many),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
        );
    }
}
