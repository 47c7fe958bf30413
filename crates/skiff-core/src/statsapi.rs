//! The kubelet's Summary API (`GET /stats/summary`, `stats/v1alpha1`), the part of it that
//! resource metrics need: the node's and each pod's and container's CPU and memory. Nodes
//! serve it from their samples; the API server reads it from every remote node to answer
//! `metrics.k8s.io`. Field names and meanings are kubelet's; fields skiff does not measure
//! are left out (kubelet omits what it does not know too).

use serde::{Deserialize, Serialize};

/// A node's summary.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub node: NodeSummary,
    #[serde(default)]
    pub pods: Vec<PodSummary>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeSummary {
    pub node_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodReference {
    pub name: String,
    pub namespace: String,
    pub uid: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSummary {
    pub pod_ref: PodReference,
    #[serde(default)]
    pub containers: Vec<ContainerSummary>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSummary {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<CpuStats>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<MemoryStats>,
}

/// CPU at `time` (RFC 3339): the rate over the sampling window and the cumulative time.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CpuStats {
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_nano_cores: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_core_nano_seconds: Option<u64>,
}

/// Memory at `time` (RFC 3339): the working set (usage minus inactive file pages).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_set_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kubelet_writes() {
        // Abridged from a kubelet 1.32 `/stats/summary?only_cpu_and_memory=true`.
        let text = r#"{"node": {"nodeName": "n1", "systemContainers": [],
            "startTime": "2024-01-01T00:00:00Z",
            "cpu": {"time": "2024-01-01T00:01:00Z", "usageNanoCores": 123000000,
                    "usageCoreNanoSeconds": 5000000000},
            "memory": {"time": "2024-01-01T00:01:00Z", "workingSetBytes": 1048576,
                       "rssBytes": 5}},
          "pods": [{"podRef": {"name": "p", "namespace": "default", "uid": "u"},
            "startTime": "2024-01-01T00:00:00Z",
            "containers": [{"name": "c", "cpu": {"time": "2024-01-01T00:01:00Z",
                "usageNanoCores": 7}, "memory": {"time": "2024-01-01T00:01:00Z",
                "workingSetBytes": 9}}]}]}"#;
        let s: Summary = serde_json::from_str(text).unwrap();
        assert_eq!(s.node.node_name, "n1");
        assert_eq!(s.node.cpu.unwrap().usage_nano_cores, Some(123_000_000));
        assert_eq!(s.pods[0].pod_ref.namespace, "default");
        assert_eq!(
            s.pods[0].containers[0]
                .memory
                .as_ref()
                .unwrap()
                .working_set_bytes,
            Some(9)
        );
        assert!(s.pods[0].cpu.is_none());
    }
}
