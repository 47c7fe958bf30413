//! metrics.k8s.io/v1beta1 PodMetrics (`/apis/metrics.k8s.io/v1beta1/namespaces/NS/pods`):
//! read-only, from the metrics provider.

use super::PodMetrics;
use crate::protobuf::NoProtobuf;
use crate::registry::{Backend, Strategy};
use crate::resources::Entry;

pub struct PodMetricses;

impl Strategy for PodMetricses {
    type Object = PodMetrics;
    type Protobuf = NoProtobuf;
    const RESOURCE: Entry = Entry::DEFAULT;
    const BACKEND: Backend = Backend::Metrics;
}
