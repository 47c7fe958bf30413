//! rbac.authorization.k8s.io/v1 ClusterRoleBindings: subjects granted a role (see [`crate::rbac`]).

use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use k8s_pb::api::rbac::v1 as pb;
use serde_json::Value;

use crate::registry::{Admission, Obj, Strategy};
use crate::resources::Entry;
use crate::router::ApiState;
use crate::table::{col, Column, AGE, NAME};
use crate::validation::Errs;

pub struct ClusterRoleBindings;

impl Strategy for ClusterRoleBindings {
    type Object = ClusterRoleBinding;
    type Protobuf = pb::ClusterRoleBinding;
    const RESOURCE: Entry = Entry::DEFAULT;
    /// RBAC names are path segments (`system:discovery`), as upstream's `ValidateRBACName`.
    const NAME: crate::validation::NameRule = crate::validation::NameRule::PathSegment;
    const COLUMNS: &'static [Column] = &[NAME, col("Role"), AGE];

    fn validate(
        &self,
        new: Obj<'_, ClusterRoleBinding>,
        old: Option<Obj<'_, ClusterRoleBinding>>,
        errs: &mut Errs,
    ) {
        super::validate_binding(new.json, old.map(|o| o.json), &["ClusterRole"], None, errs);
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::error::ApiError>> {
        super::admit(super::Which::Binding { cluster: true }, state, op)
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        super::binding_cells(o)
    }
}
