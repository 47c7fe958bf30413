//! Pod garbage collection against the real API server: terminated pods over the threshold
//! (oldest first), pods bound to a Node that does not exist, unscheduled terminating pods.

mod common;

use std::time::Duration;

use common::{start_with, until};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;
use skiff_controllers::Config;

fn pod(name: &str, node: Option<&str>) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": {"gc": "yes"}},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}}))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn deletes_the_oldest_terminated_pods_over_the_threshold_and_orphans() {
    let config = Config {
        terminated_pod_gc_threshold: 2,
        pod_gc_period: Duration::from_millis(200),
        orphan_quarantine: Duration::from_millis(500),
        ..Default::default()
    };
    let c = start_with(config, Default::default()).await;
    let pods: Api<Pod> = c.api();
    // Creation timestamps have whole seconds: one pod per second keeps them ordered.
    for (i, name) in ["done-0", "done-1", "done-2", "running"].iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(1050)).await;
        }
        pods.create(&PostParams::default(), &pod(name, None))
            .await
            .unwrap();
    }
    for name in ["done-0", "done-1", "done-2"] {
        let status = json!({"status": {"phase": "Succeeded"}});
        pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
    }
    pods.create(&PostParams::default(), &pod("orphan", Some("ghost")))
        .await
        .unwrap();
    let left = until(
        "pod GC removed the oldest finished pod and the orphan",
        || async {
            let mut names: Vec<String> = c
                .pods("gc=yes")
                .await
                .iter()
                .map(|p| p.name_any())
                .collect();
            names.sort();
            (names.len() == 3).then_some(names)
        },
    )
    .await;
    assert_eq!(left, ["done-1", "done-2", "running"]);
}
