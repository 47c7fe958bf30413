//! rbac.authorization.k8s.io/v1 Roles: rules of what may be done (see [`crate::rbac`]).

use k8s_openapi::api::rbac::v1::Role;
use k8s_pb::api::rbac::v1 as pb;
use serde_json::Value;

use crate::registry::{Admission, Obj, Strategy};
use crate::resources::Entry;
use crate::router::ApiState;
use crate::table::{name, Column, NAME};
use crate::validation::Errs;

pub struct Roles;

impl Strategy for Roles {
    type Object = Role;
    type Protobuf = pb::Role;
    const RESOURCE: Entry = Entry::DEFAULT;
    /// RBAC names are path segments (`system:discovery`), as upstream's `ValidateRBACName`.
    const NAME: crate::validation::NameRule = crate::validation::NameRule::PathSegment;
    const COLUMNS: &'static [Column] = &[NAME, crate::table::col("Created At")];

    fn validate(&self, new: Obj<'_, Role>, _old: Option<Obj<'_, Role>>, errs: &mut Errs) {
        super::validate_rules(new.json, errs);
    }

    fn admit<'a>(
        &'a self,
        state: &'a ApiState,
        op: Admission<'a>,
    ) -> futures::future::BoxFuture<'a, Result<(), crate::error::ApiError>> {
        super::admit(super::Which::Role { cluster: false }, state, op)
    }

    fn cells(&self, o: &Value) -> Vec<Value> {
        vec![name(o), o["metadata"]["creationTimestamp"].clone()]
    }
}
