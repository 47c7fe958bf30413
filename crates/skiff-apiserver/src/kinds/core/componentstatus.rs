//! core/v1 ComponentStatus (`kubectl get componentstatuses`, deprecated since Kubernetes
//! 1.19 and still served): read-only, answered by [`crate::components`].

use k8s_openapi::api::core::v1::ComponentStatus;
use serde_json::{json, Value};

use crate::protobuf::NoProtobuf;
use crate::registry::{Backend, Strategy};
use crate::resources::Entry;
use crate::table::{col, Column, NAME};

pub struct ComponentStatuses;

impl Strategy for ComponentStatuses {
    type Object = ComponentStatus;
    type Protobuf = NoProtobuf;
    const RESOURCE: Entry = Entry {
        short_names: &["cs"],
        ..Entry::DEFAULT
    };
    const BACKEND: Backend = Backend::Components;
    const COLUMNS: &'static [Column] = &[NAME, col("Status"), col("Message"), col("Error")];

    /// As kubectl's printer: the `Healthy` condition's status, message and error.
    fn cells(&self, obj: &Value) -> Vec<Value> {
        let healthy = obj["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Healthy");
        let status = match healthy.map(|c| &c["status"]) {
            Some(s) if s == "True" => "Healthy",
            Some(_) => "Unhealthy",
            None => "Unknown",
        };
        let field = |f: &str| json!(healthy.and_then(|c| c[f].as_str()).unwrap_or(""));
        vec![
            crate::table::name(obj),
            json!(status),
            field("message"),
            field("error"),
        ]
    }
}
