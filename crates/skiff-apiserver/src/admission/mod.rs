//! The admission chain every namespaced kind's writes pass after the kind's own admission
//! ([`crate::registry::Strategy::admit`]), in kube-apiserver's order: the mutating plugin
//! (LimitRanger: defaults and bounds from the namespace's LimitRanges) before the object is
//! validated, the validating one (ResourceQuota: the namespace's quotas charged for the write)
//! after — so a write that fails validation is never charged.
//!
//! The create handler calls [`create`] then, once the object is valid, [`charge_create`]; the
//! update handler calls [`charge_update`] once the object is valid. Each plugin lives in its
//! own module.

pub mod limitrange;
pub mod quota;

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::router::ApiState;

/// Mutating admission of a create of `obj` (namespace set, defaults applied): may change it.
pub async fn create(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &mut Value,
) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    limitrange::admit(state, info, obj).await
}

/// Quota admission of a create of the validated `obj`.
pub async fn charge_create(
    state: &ApiState,
    info: &'static ResourceInfo,
    obj: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    quota::admit(state, info, obj, None, dry_run).await
}

/// Quota admission of an update of the main resource from `old` to the validated `new`.
pub async fn charge_update(
    state: &ApiState,
    info: &'static ResourceInfo,
    new: &Value,
    old: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    quota::admit(state, info, new, Some(old), dry_run).await
}

/// 403 about `obj` of `info`, as admission refusals read.
fn forbidden(info: &ResourceInfo, obj: &Value, reason: &str) -> ApiError {
    ApiError::forbidden(info.group, info.plural, crate::object::name(obj), reason)
}
