//! The served kinds, one file each (grouped by API group), and [`ALL`], the explicit list
//! the server is built from: adding a kind is writing its file and naming it here.

pub mod apps;
pub mod autoscaling;
pub mod batch;
pub mod certificates;
pub mod coordination;
pub mod core;
pub mod discovery;
pub mod events;
pub mod metrics;
pub mod policy;
pub mod rbac;
#[cfg(test)]
mod required;
pub mod scheduling;
pub mod storage;

use crate::registry::Kind;

/// Every served kind, in discovery order: groups in the order they first appear, the
/// preferred version first within a group, and the storage version of a resource before
/// its other versions.
pub static ALL: &[&dyn Kind] = &[
    &core::namespace::Namespaces,
    &core::pod::Pods,
    &core::service::Services,
    &core::endpoints::EndpointsKind,
    &core::secret::Secrets,
    &core::configmap::ConfigMaps,
    &core::node::Nodes,
    &core::event::Events,
    &core::serviceaccount::ServiceAccounts,
    &core::replicationcontroller::ReplicationControllers,
    &core::podtemplate::PodTemplates,
    &core::persistentvolume::PersistentVolumes,
    &core::persistentvolumeclaim::PersistentVolumeClaims,
    &core::resourcequota::ResourceQuotas,
    &core::limitrange::LimitRanges,
    &core::componentstatus::ComponentStatuses,
    &apps::deployment::Deployments,
    &apps::replicaset::ReplicaSets,
    &apps::daemonset::DaemonSets,
    &apps::statefulset::StatefulSets,
    &apps::controllerrevision::ControllerRevisions,
    &events::event::EventsV1,
    &autoscaling::horizontalpodautoscaler::HorizontalPodAutoscalersV2,
    &autoscaling::horizontalpodautoscaler::HorizontalPodAutoscalersV1,
    &batch::job::Jobs,
    &batch::cronjob::CronJobs,
    &certificates::certificatesigningrequest::CertificateSigningRequests,
    &rbac::clusterrole::ClusterRoles,
    &rbac::clusterrolebinding::ClusterRoleBindings,
    &rbac::role::Roles,
    &rbac::rolebinding::RoleBindings,
    &policy::poddisruptionbudget::PodDisruptionBudgets,
    &storage::storageclass::StorageClasses,
    &scheduling::priorityclass::PriorityClasses,
    &coordination::lease::Leases,
    &discovery::endpointslice::EndpointSlices,
    &metrics::nodemetrics::NodeMetricses,
    &metrics::podmetrics::PodMetricses,
];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A minimal object every printer must cope with.
    fn sparse() -> serde_json::Value {
        let template = json!({"spec": {"containers": [{"name": "c", "image": "i"}]}});
        json!({"metadata": {"name": "x"}, "template": template,
            "spec": {"template": template, "jobTemplate": {"spec": {"template": template}}}})
    }

    #[test]
    fn every_row_has_one_cell_per_column() {
        for kind in ALL {
            let cols = kind.columns();
            let cells = kind.cells(&sparse());
            assert_eq!(cells.len(), cols.len(), "{kind:?}");
            for (col, cell) in cols.iter().zip(&cells) {
                match col.0 {
                    "Containers" => assert_eq!(cell, "c", "{kind:?}"),
                    "Images" => assert_eq!(cell, "i", "{kind:?}"),
                    "Name" if col.2 == "name" => assert_eq!(cell, "x", "{kind:?}"),
                    _ => {}
                }
            }
        }
    }

    #[test]
    fn every_kind_has_a_schema_and_a_name_rule() {
        for kind in ALL {
            let info = kind.info();
            assert!(
                crate::validation::schema::Node::root(info).is_some(),
                "{kind:?}"
            );
            let nameless =
                json!({"apiVersion": info.api_version(), "kind": info.kind, "metadata": {}});
            let err = kind.validate(&nameless, None).unwrap_err();
            assert!(
                err.causes.iter().any(|c| c.field == "metadata.name"),
                "{kind:?}: {err:?}"
            );
        }
    }
}
