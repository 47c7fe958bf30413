//! The admission chain every namespaced kind's writes pass after the kind's own admission
//! ([`crate::registry::Strategy::admit`]): LimitRanger (defaults and bounds from the
//! namespace's LimitRanges) then ResourceQuota (the namespace's quotas charged for the
//! write) — kube-apiserver's order: mutating plugins first, quota last so it charges the
//! final object.
//!
//! The create and update handlers call [`create`] and [`update`] once each; each plugin lives
//! in its own module.

pub mod limitrange;
pub mod quota;

use serde_json::Value;

use crate::error::ApiError;
use crate::resources::ResourceInfo;
use crate::router::ApiState;

/// Admission of a create of `obj` (namespace set, defaults applied); may change it.
pub async fn create(
    state: &ApiState,
    info: &ResourceInfo,
    obj: &mut Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if !info.namespaced {
        return Ok(());
    }
    limitrange::admit(state, info, obj).await?;
    quota::admit(state, info, obj, None, dry_run).await
}

/// Admission of an update of the main resource from `old` to `new`.
pub async fn update(
    state: &ApiState,
    info: &ResourceInfo,
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
