//! Authentication of service-account JWTs: the signature, issuer, audience and time
//! ([`super::signer`]), then that what the token names still exists — the ServiceAccount
//! with the same uid, a bound Pod (not being deleted), Secret or Node with the same uid, or
//! for a legacy token the Secret that still holds exactly this token. Kubernetes'
//! `serviceaccount.JWTTokenAuthenticator` with its legacy and bound validators.

use base64::Engine;
use serde_json::Value;

use super::signer::{self, Verified};
use crate::auth::UserInfo;
use crate::error::ApiError;
use crate::router::ApiState;

/// The groups every service account is in, besides `system:serviceaccounts:<ns>`.
pub const ALL_SERVICE_ACCOUNTS: &str = "system:serviceaccounts";

/// The user of a service account.
pub fn user(ns: &str, name: &str, uid: &str) -> UserInfo {
    UserInfo {
        name: signer::username(ns, name),
        uid: uid.to_string(),
        groups: vec![
            ALL_SERVICE_ACCOUNTS.into(),
            format!("{ALL_SERVICE_ACCOUNTS}:{ns}"),
            "system:authenticated".into(),
        ],
    }
}

/// The service account `token` stands for: Ok(None) when it is not one of ours (another
/// authenticator may know it), Err(reason) when it is a service-account token that no
/// longer holds. Store errors are Err too: a token is never accepted unchecked.
pub async fn authenticate(state: &ApiState, token: &str) -> Result<Option<UserInfo>, String> {
    if !signer::looks_like_jwt(token) {
        return Ok(None);
    }
    // Not ours (or broken): let the caller answer 401.
    let verified = state.sa_signer.verify(token)?;
    holder(state, token, verified).await.map(Some)
}

/// What a TokenReview asking for `audiences` learns of `token`: Ok(None) when it is not a
/// service-account token, else the service account and the audiences it is valid for (the
/// token's `aud` among `audiences`; a legacy token is for the API's own), or why it does
/// not hold. Kubernetes' `jwtTokenAuthenticator` with requested audiences.
pub async fn review(
    state: &ApiState,
    token: &str,
    audiences: &[String],
) -> Result<Option<(UserInfo, Vec<String>)>, String> {
    if !signer::looks_like_jwt(token) {
        return Ok(None);
    }
    let verified = state.sa_signer.verify_any_audience(token)?;
    let of_token = match &verified {
        Verified::Bound(c) => c.aud.clone(),
        Verified::Legacy(_) => state.sa_signer.audiences().to_vec(),
    };
    let valid: Vec<String> = of_token
        .iter()
        .filter(|a| audiences.contains(a))
        .cloned()
        .collect();
    if valid.is_empty() {
        return Err(format!(
            "token audiences {of_token:?} is invalid for the target audiences {audiences:?}"
        ));
    }
    let user = holder(state, token, verified).await?;
    Ok(Some((user, valid)))
}

/// The service account a verified token stands for, when the objects it names still hold.
async fn holder(state: &ApiState, token: &str, verified: Verified) -> Result<UserInfo, String> {
    match verified {
        Verified::Bound(c) => {
            let k = &c.kubernetes;
            let ns = k.namespace.as_str();
            let sa = get(state, "serviceaccounts", Some(ns), &k.serviceaccount.name).await?;
            same_uid(sa.as_ref(), &k.serviceaccount.uid, "service account")?;
            if let Some(pod) = &k.pod {
                let p = get(state, "pods", Some(ns), &pod.name).await?;
                same_uid(p.as_ref(), &pod.uid, "pod")?;
                if p.as_ref().is_some_and(crate::object::is_deleting) {
                    return Err(format!("pod {ns}/{} is being deleted", pod.name));
                }
            } else if let Some(secret) = &k.secret {
                let s = get(state, "secrets", Some(ns), &secret.name).await?;
                same_uid(s.as_ref(), &secret.uid, "secret")?;
            } else if let Some(node) = &k.node {
                let n = get(state, "nodes", None, &node.name).await?;
                same_uid(n.as_ref(), &node.uid, "node")?;
            }
            Ok(user(ns, &k.serviceaccount.name, &k.serviceaccount.uid))
        }
        Verified::Legacy(c) => {
            let ns = c.namespace.as_str();
            let sa = get(state, "serviceaccounts", Some(ns), &c.service_account_name).await?;
            same_uid(sa.as_ref(), &c.service_account_uid, "service account")?;
            let secret = get(state, "secrets", Some(ns), &c.secret_name)
                .await?
                .ok_or_else(|| format!("secret {ns}/{} not found", c.secret_name))?;
            let stored = secret
                .pointer("/data/token")
                .and_then(Value::as_str)
                .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok());
            if stored.as_deref() != Some(token.as_bytes()) {
                return Err(format!(
                    "token does not match the one in secret {ns}/{}",
                    c.secret_name
                ));
            }
            let for_sa = secret
                .pointer("/metadata/annotations/kubernetes.io~1service-account.name")
                .and_then(Value::as_str);
            if for_sa != Some(c.service_account_name.as_str()) {
                return Err(format!(
                    "secret {ns}/{} is not for service account {}",
                    c.secret_name, c.service_account_name
                ));
            }
            Ok(user(ns, &c.service_account_name, &c.service_account_uid))
        }
    }
}

async fn get(
    state: &ApiState,
    plural: &str,
    ns: Option<&str>,
    name: &str,
) -> Result<Option<Value>, String> {
    crate::lookup::get(state, crate::lookup::core(plural), ns, name)
        .await
        .map_err(|e: ApiError| e.message)
}

fn same_uid(obj: Option<&Value>, uid: &str, what: &str) -> Result<(), String> {
    let obj = obj.ok_or_else(|| format!("the {what} the token names no longer exists"))?;
    let stored = crate::object::meta_str(obj, "uid");
    if stored != uid {
        return Err(format!(
            "the {what} uid ({stored}) does not match the token's ({uid})"
        ));
    }
    Ok(())
}
