//! Service-account tokens of `serviceAccountToken` projections, as kubelet's token manager
//! gets them: from the TokenRequest API (`serviceaccounts/NAME/token`) bound to the pod, kept
//! per pod, account, audience and lifetime, and asked again once 80 % of a token's life has
//! passed or it is older than 24 hours. Tokens of pods that are gone are dropped when
//! expired.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use k8s_openapi::api::authentication::v1::{BoundObjectReference, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Pod, ServiceAccount};
use kube::api::{Api, PostParams};

/// A token is renewed after this long whatever its lifetime (kubelet's `maxTTL`).
const MAX_AGE: i64 = 24 * 3600;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Key {
    namespace: String,
    account: String,
    pod_uid: String,
    audience: String,
    seconds: i64,
}

#[derive(Debug, Clone)]
struct Cached {
    token: String,
    issued: DateTime<Utc>,
    expires: DateTime<Utc>,
}

/// Whether a token issued at `issued` and expiring at `expires` must be asked again at `now`.
fn needs_refresh(issued: DateTime<Utc>, expires: DateTime<Utc>, now: DateTime<Utc>) -> bool {
    let life = expires - issued;
    now >= expires - life / 5 || now - issued > Duration::seconds(MAX_AGE)
}

/// The node's tokens.
pub struct TokenManager {
    client: kube::Client,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl TokenManager {
    pub fn new(client: kube::Client) -> Self {
        TokenManager {
            client,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The token for `pod`'s service account with `audience` (None: the API's) lasting
    /// `seconds`: the one held while fresh, else a new one. Err is the FailedMount reason.
    pub async fn token(
        &self,
        pod: &Pod,
        audience: Option<&str>,
        seconds: i64,
    ) -> Result<String, String> {
        let ns = pod
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let account = pod
            .spec
            .as_ref()
            .and_then(|s| s.service_account_name.clone())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "default".into());
        let key = Key {
            namespace: ns.clone(),
            account: account.clone(),
            pod_uid: pod.metadata.uid.clone().unwrap_or_default(),
            audience: audience.unwrap_or_default().to_string(),
            seconds,
        };
        let now = Utc::now();
        {
            let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.retain(|_, c| c.expires > now);
            if let Some(c) = cache.get(&key) {
                if !needs_refresh(c.issued, c.expires, now) {
                    return Ok(c.token.clone());
                }
            }
        }
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: audience.map(|a| vec![a.to_string()]).unwrap_or_default(),
                expiration_seconds: Some(seconds),
                bound_object_ref: Some(BoundObjectReference {
                    api_version: Some("v1".into()),
                    kind: Some("Pod".into()),
                    name: pod.metadata.name.clone(),
                    uid: pod.metadata.uid.clone(),
                }),
            },
            ..Default::default()
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), &ns);
        let got = api
            .create_token_request(&account, &PostParams::default(), &request)
            .await
            .map_err(|e| {
                format!("failed to fetch token for service account {ns}/{account}: {e}")
            })?;
        let status = got
            .status
            .ok_or_else(|| format!("the token request for {ns}/{account} came back empty"))?;
        let expires = status.expiration_timestamp.0;
        let expires = DateTime::<Utc>::from_timestamp(expires.as_second(), 0).unwrap_or(now);
        let cached = Cached {
            token: status.token.clone(),
            issued: now,
            expires,
        };
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, cached);
        Ok(status.token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn satoken_refreshed_at_80_percent_or_after_a_day() {
        let t0 = Utc::now();
        let hour = Duration::seconds(3600);
        assert!(!needs_refresh(t0, t0 + hour, t0 + Duration::seconds(2879)));
        assert!(needs_refresh(t0, t0 + hour, t0 + Duration::seconds(2880)));
        let year = Duration::days(365);
        assert!(!needs_refresh(t0, t0 + year, t0 + Duration::hours(23)));
        assert!(needs_refresh(t0, t0 + year, t0 + Duration::hours(25)));
    }
}
