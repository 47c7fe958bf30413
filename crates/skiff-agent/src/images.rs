//! A pod container's image on the node, following its `imagePullPolicy`: present, pulled
//! through the engine, or held back after a failed pull (`ErrImagePull`, then
//! `ImagePullBackOff` with kubelet's back-off), with kubelet's events.

use k8s_openapi::api::core::v1::{Container, Pod, Secret};
use kube::Api;
use skiff_engine::registry::{registry_host, Credentials};

use crate::events::Type;
use crate::pods::Ctx;
use crate::spec::Kind;
use crate::sync::{field_path, Outcome, RESYNC};

impl Ctx {
    /// The user the container's image runs as ("" for root) once the image is on the node,
    /// following `imagePullPolicy`; None (with the waiting reason and events recorded) when
    /// it is not.
    pub(crate) async fn image_ready(
        &self,
        pod: &Pod,
        c: &Container,
        kind: Kind,
        slot: &crate::starts::Slot<'_>,
        out: &mut Outcome,
    ) -> Option<String> {
        let image = c.image.clone().unwrap_or_default();
        let fp = field_path(kind, &c.name);
        let inspected = self.engine.image_inspect(&image).await.ok();
        let present = inspected.is_some();
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        if present && policy != "Always" {
            self.events.pod(
                pod,
                Some(&fp),
                Type::Normal,
                "Pulled",
                format!("Container image {image:?} already present on machine"),
            );
            return Some(image_user(inspected));
        }
        if policy == "Never" {
            let msg = format!("Container image {image:?} is not present with pull policy of Never");
            self.events.pod(
                pod,
                Some(&fp),
                Type::Warning,
                "ErrImageNeverPull",
                msg.clone(),
            );
            out.wait(&c.name, "ErrImageNeverPull", msg);
            out.again_in(RESYNC);
            return None;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let key = format!("{uid}/image/{image}");
        let since = self.pull_failed_at(&key);
        if let Some(left) = since.and_then(|t| self.backoff.remaining(&key, t, chrono::Utc::now()))
        {
            let msg = format!("Back-off pulling image {image:?}");
            self.events
                .pod(pod, Some(&fp), Type::Normal, "BackOff", msg.clone());
            self.events.pod(
                pod,
                Some(&fp),
                Type::Warning,
                "Failed",
                "Error: ImagePullBackOff".into(),
            );
            out.wait(&c.name, "ImagePullBackOff", msg);
            out.again_in(left);
            return None;
        }
        self.events.pod(
            pod,
            Some(&fp),
            Type::Normal,
            "Pulling",
            format!("Pulling image {image:?}"),
        );
        // A pull waits on the registry: other pods start meanwhile.
        slot.release();
        let started = std::time::Instant::now();
        let err = match self.pull(pod, &image).await {
            Ok(()) => {
                self.backoff.reset(&key);
                self.events.pod(
                    pod,
                    Some(&fp),
                    Type::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image {image:?} in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                let inspected = self.engine.image_inspect(&image).await.ok();
                return Some(image_user(inspected));
            }
            Err(e) => e,
        };
        let msg = format!("Failed to pull image {image:?}: {err}");
        self.events
            .pod(pod, Some(&fp), Type::Warning, "Failed", msg.clone());
        self.events.pod(
            pod,
            Some(&fp),
            Type::Warning,
            "Failed",
            "Error: ErrImagePull".into(),
        );
        out.wait(&c.name, "ErrImagePull", msg);
        self.backoff.next(&key);
        self.pull_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.clone(), chrono::Utc::now());
        out.again_in(self.backoff.delay(&key).unwrap_or(RESYNC));
        None
    }

    pub(crate) fn pull_failed_at(&self, key: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        self.pull_failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .copied()
    }

    /// Pulls `image` through the engine with the credentials the pod's `imagePullSecrets`
    /// hold for its registry; the error's whole chain on failure.
    async fn pull(&self, pod: &Pod, image: &str) -> std::result::Result<(), String> {
        let reference =
            skiff_engine::ImageRef::parse(image).map_err(|e| crate::error::chain(&e))?;
        let opts = skiff_engine::registry::PullOptions {
            credentials: self.pull_credentials(pod, reference.domain()).await,
            ..Default::default()
        };
        self.engine
            .image_pull(&reference, &opts, &|_| {})
            .await
            .map(|_| ())
            .map_err(|e| crate::error::chain(&e))
    }

    /// kubelet's keyring for one pull: the first entry for `registry` in the pod's
    /// `imagePullSecrets` (`kubernetes.io/dockerconfigjson` or `kubernetes.io/dockercfg`);
    /// anonymous without one. A secret that cannot be read is a warning event, as in kubelet.
    async fn pull_credentials(&self, pod: &Pod, registry: &str) -> Credentials {
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let names = pod
            .spec
            .iter()
            .flat_map(|s| s.image_pull_secrets.iter().flatten())
            .map(|r| r.name.clone());
        let api: Api<Secret> = Api::namespaced(self.client.clone(), ns);
        for name in names {
            let data = match api.get_opt(&name).await {
                Ok(Some(s)) => s.data.unwrap_or_default(),
                Ok(None) | Err(_) => {
                    self.events.pod(
                        pod,
                        None,
                        Type::Warning,
                        "FailedToRetrieveImagePullSecret",
                        format!("Unable to retrieve some image pull secrets ({name}); attempting to pull the image may not succeed."),
                    );
                    continue;
                }
            };
            let bytes = |k: &str| data.get(k).map(|b| b.0.clone());
            if let Some(c) = bytes(".dockerconfigjson")
                .and_then(|b| registry_credentials(&b, true, registry))
                .or_else(|| {
                    bytes(".dockercfg").and_then(|b| registry_credentials(&b, false, registry))
                })
            {
                return c;
            }
        }
        Credentials::anonymous()
    }
}

/// The `User` of an inspected image's config ("" when it sets none).
fn image_user(inspected: Option<skiff_engine::models::ImageInspect>) -> String {
    inspected
        .and_then(|i| i.config)
        .and_then(|c| c.user)
        .unwrap_or_default()
}

/// The credentials for `registry` in a Docker config (`{"auths": {server: entry}}` when
/// `wrapped`, the old `.dockercfg` `{server: entry}` otherwise).
fn registry_credentials(config: &[u8], wrapped: bool, registry: &str) -> Option<Credentials> {
    let v: serde_json::Value = serde_json::from_slice(config).ok()?;
    let auths = if wrapped { v.get("auths")? } else { &v };
    let want = registry_host(registry).ok()?;
    auths.as_object()?.iter().find_map(|(server, entry)| {
        if registry_host(server).ok()? != want {
            return None;
        }
        let mut c = Credentials::from_json(entry.to_string().as_bytes()).ok()?;
        c.serveraddress = server.clone();
        Some(c)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pull_secrets_match_the_registry_host() {
        let config = br#"{"auths": {
            "https://index.docker.io/v1/": {"auth": "aHViOnB3"},
            "127.0.0.1:5000": {"username": "me", "password": "secret"}}}"#;
        let c = registry_credentials(config, true, "127.0.0.1:5000").unwrap();
        assert_eq!((c.username.as_str(), c.password.as_str()), ("me", "secret"));
        let hub = registry_credentials(config, true, "docker.io").unwrap();
        assert_eq!(hub.auth, "aHViOnB3");
        assert!(registry_credentials(config, true, "quay.io").is_none());
        let old = br#"{"127.0.0.1:5000": {"auth": "bWU6cHc="}}"#;
        assert!(registry_credentials(old, false, "127.0.0.1:5000").is_some());
        assert!(registry_credentials(b"not json", true, "x").is_none());
    }
}
