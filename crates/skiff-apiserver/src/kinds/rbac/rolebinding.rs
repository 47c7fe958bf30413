//! rbac.authorization.k8s.io/v1 RoleBindings: subjects granted a role (see [`crate::rbac`]).

use k8s_openapi::api::rbac::v1::RoleBinding;
use k8s_pb::api::rbac::v1 as pb;
use serde_json::Value;

use crate::registry::{Admission, Obj, Strategy};
use crate::resources::Entry;
use crate::router::ApiState;
use crate::table::{col, Column, AGE, NAME};
use crate::validation::Errs;

pub struct RoleBindings;

impl Strategy for RoleBindings {
    type Object = RoleBinding;
    type Protobuf = pb::RoleBinding;
    const RESOURCE: Entry = Entry::DEFAULT;
    /// RBAC names are path segments (`system:discovery`), as upstream's `ValidateRBACName`.
    const NAME: crate::validation::NameRule = crate::validation::NameRule::PathSegment;
    const COLUMNS: &'static [Column] = &[NAME, col("Role"), AGE];

    fn validate(
        &self,
        new: Obj<'_, RoleBinding>,
        old: Option<Obj<'_, RoleBinding>>,
        errs: &mut Errs,
    ) {
        super::validate_binding(
            new.json,
            old.map(|o| o.json),
            &["Role", "ClusterRole"],
            Some(crate::object::namespace(new.json)),
            errs,
        );
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::error::ApiError>> {
        super::admit(super::Which::Binding { cluster: false }, state, op)
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        super::binding_cells(o)
    }
}
