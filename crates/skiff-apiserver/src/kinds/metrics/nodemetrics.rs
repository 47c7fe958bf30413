//! metrics.k8s.io/v1beta1 NodeMetrics (`/apis/metrics.k8s.io/v1beta1/nodes`): read-only,
//! from the metrics provider.

use super::NodeMetrics;
use crate::protobuf::NoProtobuf;
use crate::registry::{Backend, Strategy};
use crate::resources::Entry;

pub struct NodeMetricses;

impl Strategy for NodeMetricses {
    type Object = NodeMetrics;
    type Protobuf = NoProtobuf;
    const RESOURCE: Entry = Entry::DEFAULT;
    const BACKEND: Backend = Backend::Metrics;
}
