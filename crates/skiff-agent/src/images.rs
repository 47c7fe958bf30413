//! A pod container's image on the node, following its `imagePullPolicy`: present, pulled
//! through the engine, or held back after a failed pull (`ErrImagePull`, then
//! `ImagePullBackOff` with kubelet's back-off), with kubelet's events.

use k8s_openapi::api::core::v1::{Container, Pod};

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
        let started = std::time::Instant::now();
        let err = match self.pull(&image).await {
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

    /// Pulls `image` through the engine (its registry configuration, no credentials yet:
    /// image pull secrets come with a later slice); the error's whole chain on failure.
    async fn pull(&self, image: &str) -> std::result::Result<(), String> {
        let reference =
            skiff_engine::ImageRef::parse(image).map_err(|e| crate::error::chain(&e))?;
        let opts = skiff_engine::registry::PullOptions::default();
        self.engine
            .image_pull(&reference, &opts, &|_| {})
            .await
            .map(|_| ())
            .map_err(|e| crate::error::chain(&e))
    }
}

/// The `User` of an inspected image's config ("" when it sets none).
fn image_user(inspected: Option<skiff_engine::models::ImageInspect>) -> String {
    inspected
        .and_then(|i| i.config)
        .and_then(|c| c.user)
        .unwrap_or_default()
}
