//! Impersonation (`kubectl --as USER --as-group GROUP`): the `Impersonate-User`,
//! `Impersonate-Group`, `Impersonate-Uid` and `Impersonate-Extra-*` headers make the request
//! run as another user, when the caller may `impersonate` each of them (users, groups and
//! service accounts in the core group; uids and `userextras/KEY` in
//! `authentication.k8s.io`), as kube-apiserver's impersonation filter decides. The
//! impersonated user is in `system:authenticated` (a service account also in its
//! `system:serviceaccounts` groups).

use http::HeaderMap;

use super::SA_PREFIX;
use crate::auth::{Attributes, UserInfo};
use crate::error::ApiError;
use crate::router::ApiState;

const USER: &str = "impersonate-user";
const GROUP: &str = "impersonate-group";
const UID: &str = "impersonate-uid";
const EXTRA: &str = "impersonate-extra-";

fn values<'a>(headers: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect()
}

/// The user the request runs as: `user` itself without impersonation headers, else the
/// impersonated one once `user` may impersonate every part of it.
pub async fn resolve(
    state: &ApiState,
    user: UserInfo,
    headers: &HeaderMap,
) -> Result<UserInfo, ApiError> {
    let name = values(headers, USER).first().map(|s| s.to_string());
    let groups: Vec<String> = values(headers, GROUP)
        .into_iter()
        .map(String::from)
        .collect();
    let uid = values(headers, UID).first().map(|s| s.to_string());
    let extras: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            let key = k.as_str().strip_prefix(EXTRA)?;
            Some((key.to_string(), v.to_str().ok()?.to_string()))
        })
        .collect();
    let Some(name) = name else {
        if groups.is_empty() && uid.is_none() && extras.is_empty() {
            return Ok(user);
        }
        return Err(ApiError::internal(
            "requested impersonation of groups, uid or extras without impersonating a user",
        ));
    };
    let sa = name
        .strip_prefix(SA_PREFIX)
        .and_then(|rest| rest.split_once(':'));
    match sa {
        Some((ns, sa_name)) => {
            check(state, &user, "", "serviceaccounts", Some(ns), sa_name).await?
        }
        None => check(state, &user, "", "users", None, &name).await?,
    }
    for g in &groups {
        check(state, &user, "", "groups", None, g).await?;
    }
    if let Some(uid) = &uid {
        check(state, &user, "authentication.k8s.io", "uids", None, uid).await?;
    }
    for (key, value) in &extras {
        let resource = format!("userextras/{key}");
        check(
            state,
            &user,
            "authentication.k8s.io",
            &resource,
            None,
            value,
        )
        .await?;
    }
    let mut all = groups;
    if let Some((ns, _)) = sa {
        for g in [
            "system:serviceaccounts".to_string(),
            format!("system:serviceaccounts:{ns}"),
        ] {
            if !all.contains(&g) {
                all.push(g);
            }
        }
    }
    let implied = if name == "system:anonymous" {
        "system:unauthenticated"
    } else {
        "system:authenticated"
    };
    if !all.iter().any(|g| g == implied) {
        all.push(implied.to_string());
    }
    tracing::debug!(by = %user.name, as_user = %name, "impersonating");
    Ok(UserInfo {
        name,
        uid: uid.unwrap_or_default(),
        groups: all,
    })
}

/// Ok when `user` may impersonate `name` of `resource`; else upstream's 403.
async fn check(
    state: &ApiState,
    user: &UserInfo,
    group: &str,
    resource: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<(), ApiError> {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s)),
        None => (resource, None),
    };
    let a = Attributes {
        verb: "impersonate",
        group,
        resource,
        subresource,
        namespace: ns,
        name: Some(name),
    };
    crate::nodeauth::authorize(state, user, &a, &[]).await
}
