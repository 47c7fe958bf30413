//! How a Deployment moves replicas: the new ReplicaSet found or created with its revision,
//! RollingUpdate and Recreate, proportional scaling, and revision-history cleanup
//! (kube-controller-manager's `sync.go`, `rolling.go`, `recreate.go`).

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::ResourceExt;
use serde_json::json;

use super::util::{self, rs_replicas};
use super::{sort_by_creation, Sync};
use crate::cachedpod::CachedPod;
use crate::error::Result;
use crate::pods::controller_ref;

fn sum(rss: &[&ReplicaSet], f: impl Fn(&ReplicaSet) -> i32) -> i32 {
    rss.iter().map(|rs| f(rs)).sum()
}

/// Available replicas a ReplicaSet can be counted on for: what its status reports, but no
/// more than it is asked to keep. A ReplicaSet just scaled down still reports the pods it is
/// about to delete; counting them would let the next sync scale down again below
/// `replicas - maxUnavailable`.
fn available_at_most(rs: &ReplicaSet) -> i32 {
    util::rs_available(rs).min(rs_replicas(rs))
}

/// Replicas a ReplicaSet counts for surge: what it was asked for, or the pods it still
/// reports if more (a scaled-down ReplicaSet's pods exist until it has deleted them).
fn counted(rs: &ReplicaSet) -> i32 {
    rs_replicas(rs).max(util::rs_status_replicas(rs))
}

impl Sync<'_> {
    /// Kubernetes' `getAllReplicaSetsAndSyncRevision`: the new ReplicaSet (created when
    /// `create` and missing) with its revision moved past every old one, and the old ones.
    pub(super) async fn new_and_old(
        &mut self,
        rs_list: Vec<ReplicaSet>,
        create: bool,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let (existing, old) = self.split(&rs_list);
        let new_revision = util::max_revision(&old) + 1;
        if let Some(rs) = existing {
            let mut copy = rs.clone();
            let changed = util::set_new_rs_annotations(&self.d, &mut copy, new_revision, true);
            let min_ready = util::min_ready_seconds(&self.d);
            let rs_min_ready = rs
                .spec
                .as_ref()
                .and_then(|s| s.min_ready_seconds)
                .unwrap_or(0);
            if changed || min_ready != rs_min_ready {
                let patch = json!({
                    "metadata": {"annotations": copy.metadata.annotations,
                        "resourceVersion": rs.metadata.resource_version},
                    "spec": {"minReadySeconds": min_ready},
                });
                let written = self
                    .replica_sets
                    .patch(
                        &rs.name_any(),
                        &PatchParams::default(),
                        &Patch::Merge(&patch),
                    )
                    .await?;
                return Ok((Some(written), old));
            }
            let revision = util::revision(&copy).to_string();
            self.set_revision(&revision).await?;
            let mut status = self.d.status.clone().unwrap_or_default();
            if util::progress_deadline(&self.d).is_some()
                && util::get_condition(&status, "Progressing").is_none()
            {
                util::set_condition(
                    &mut status,
                    util::condition(
                        "Progressing",
                        "True",
                        util::FOUND_NEW_RS,
                        format!("Found new replica set {:?}", rs.name_any()),
                    ),
                );
                self.write_status(status).await?;
            }
            return Ok((Some(copy), old));
        }
        if !create {
            return Ok((None, old));
        }
        let created = self.create_new_rs(&old, new_revision).await?;
        Ok((Some(created), old))
    }

    async fn create_new_rs(&mut self, old: &[ReplicaSet], new_revision: i64) -> Result<ReplicaSet> {
        let d = self.d.clone();
        let spec = d.spec.clone().unwrap_or_default();
        let collision = d.status.as_ref().and_then(|s| s.collision_count);
        let hash = util::template_hash(&spec.template, collision);
        let mut template = spec.template.clone();
        template
            .metadata
            .get_or_insert_with(Default::default)
            .labels
            .get_or_insert_with(Default::default)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let mut selector = spec.selector.clone();
        selector
            .match_labels
            .get_or_insert_with(Default::default)
            .insert(util::HASH_LABEL.into(), hash.clone());
        let name = format!("{}-{hash}", d.name_any());
        let mut rs = ReplicaSet {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                namespace: d.namespace(),
                labels: template.metadata.as_ref().and_then(|m| m.labels.clone()),
                owner_references: Some(vec![controller_ref("apps/v1", "Deployment", &d.metadata)]),
                ..Default::default()
            },
            spec: Some(ReplicaSetSpec {
                replicas: Some(0),
                min_ready_seconds: spec.min_ready_seconds,
                selector,
                template: Some(template),
            }),
            status: None,
        };
        // Its size as if it existed among the old ones (Kubernetes' `NewRSNewReplicas`).
        let want = self.new_rs_replicas(&old.iter().collect::<Vec<_>>(), &rs);
        rs.spec.as_mut().expect("set above").replicas = Some(want);
        util::set_new_rs_annotations(&d, &mut rs, new_revision, false);
        let created = match self.replica_sets.create(&PostParams::default(), &rs).await {
            Ok(c) => c,
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Ours already (a cache that lags)? Otherwise a hash collision.
                let existing = self.replica_sets.get(&name).await?;
                let ours = crate::pods::controller_of(&existing.metadata)
                    .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
                let same = existing
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.as_ref())
                    .is_some_and(|t| util::equal_ignore_hash(t, &spec.template));
                if ours && same {
                    return Ok(existing);
                }
                let mut status = d.status.clone().unwrap_or_default();
                status.collision_count = Some(collision.unwrap_or(0) + 1);
                self.write_status(status).await?;
                return Err(kube::Error::Api(s).into());
            }
            Err(e) => {
                let msg = format!(
                    "Failed to create new replica set {name:?}: {}",
                    crate::replicaset::api_message(&e)
                );
                if util::progress_deadline(&d).is_some() {
                    let mut status = d.status.clone().unwrap_or_default();
                    util::set_condition(
                        &mut status,
                        util::condition(
                            "Progressing",
                            "False",
                            util::FAILED_RS_CREATE,
                            msg.clone(),
                        ),
                    );
                    let _ = self.write_status(status).await;
                }
                self.ctx
                    .events
                    .warning(&self.regarding, util::FAILED_RS_CREATE, msg)
                    .await;
                return Err(e.into());
            }
        };
        if want > 0 {
            self.ctx
                .events
                .normal(
                    &self.regarding,
                    "ScalingReplicaSet",
                    format!("Scaled up replica set {name} from 0 to {want}"),
                )
                .await;
        }
        self.set_revision(&new_revision.to_string()).await?;
        if util::progress_deadline(&self.d).is_some() {
            let mut status = self.d.status.clone().unwrap_or_default();
            util::set_condition(
                &mut status,
                util::condition(
                    "Progressing",
                    "True",
                    util::NEW_RS_CREATED,
                    format!("Created new replica set {name:?}"),
                ),
            );
            self.write_status(status).await?;
        }
        Ok(created)
    }

    /// Kubernetes' `NewRSNewReplicas`.
    fn new_rs_replicas(&self, old: &[&ReplicaSet], new: &ReplicaSet) -> i32 {
        let want = util::replicas(&self.d);
        if util::is_recreate(&self.d) {
            return want;
        }
        let current: i32 = sum(old, counted) + counted(new);
        let max_total = want + util::max_surge(&self.d);
        if current >= max_total {
            return rs_replicas(new);
        }
        let up = (max_total - current).min(want - rs_replicas(new));
        rs_replicas(new) + up.max(0)
    }

    /// Kubernetes' `rolloutRolling`.
    pub(super) async fn rollout_rolling(&mut self, rs_list: Vec<ReplicaSet>) -> Result<Action> {
        let (new, old) = self.new_and_old(rs_list, true).await?;
        let mut new = new.expect("created when missing");
        // Scale up the new ReplicaSet as far as surge allows.
        let want = util::replicas(&self.d);
        let target = if rs_replicas(&new) > want {
            want
        } else {
            self.new_rs_replicas(&old.iter().collect::<Vec<_>>(), &new)
        };
        if target != rs_replicas(&new) {
            let (written, scaled) = self.scale_rs(&new, target).await?;
            new = written;
            if scaled {
                return self.sync_rollout_status(&old, Some(&new)).await;
            }
        }
        // Scale down old ReplicaSets as far as availability allows.
        let old = self.reconcile_old(old, &new).await?;
        if let Some(old) = old.scaled {
            return self.sync_rollout_status(&old, Some(&new)).await;
        }
        let old = old.unchanged;
        if status_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&old, Some(&new)).await
    }

    /// Kubernetes' `reconcileOldReplicaSets`: unhealthy old replicas first, then healthy
    /// ones while at least `replicas - maxUnavailable` stay available.
    async fn reconcile_old(
        &mut self,
        mut old: Vec<ReplicaSet>,
        new: &ReplicaSet,
    ) -> Result<OldResult> {
        let old_count: i32 = old.iter().map(rs_replicas).sum();
        if old_count == 0 {
            return Ok(OldResult {
                scaled: None,
                unchanged: old,
            });
        }
        let all_count: i32 = old_count + rs_replicas(new);
        let min_available = util::replicas(&self.d) - util::max_unavailable(&self.d);
        let new_unavailable = rs_replicas(new) - util::rs_available(new);
        let max_scaled_down = all_count - min_available - new_unavailable;
        if max_scaled_down <= 0 {
            return Ok(OldResult {
                scaled: None,
                unchanged: old,
            });
        }
        sort_by_creation(&mut old);
        let mut total = 0;
        // Unhealthy replicas first: they cost no availability.
        for rs in old.iter_mut() {
            if total >= max_scaled_down {
                break;
            }
            let (r, a) = (rs_replicas(rs), available_at_most(rs));
            if r == 0 || r <= a {
                continue;
            }
            let down = (max_scaled_down - total).min(r - a);
            let (written, _) = self.scale_rs(rs, r - down).await?;
            *rs = written;
            total += down;
        }
        // Then healthy ones, keeping minAvailable.
        let available: i32 =
            old.iter().map(available_at_most).sum::<i32>() + available_at_most(new);
        if available > min_available {
            let mut budget = available - min_available;
            for rs in old.iter_mut() {
                if budget <= 0 {
                    break;
                }
                let r = rs_replicas(rs);
                if r == 0 {
                    continue;
                }
                let down = r.min(budget);
                let (written, _) = self.scale_rs(rs, r - down).await?;
                *rs = written;
                budget -= down;
                total += down;
            }
        }
        Ok(if total > 0 {
            OldResult {
                scaled: Some(old),
                unchanged: vec![],
            }
        } else {
            OldResult {
                scaled: None,
                unchanged: old,
            }
        })
    }

    /// Kubernetes' `rolloutRecreate`: every old pod gone before the new ReplicaSet scales up.
    pub(super) async fn rollout_recreate(
        &mut self,
        rs_list: Vec<ReplicaSet>,
        pods: &[Arc<CachedPod>],
    ) -> Result<Action> {
        let (new, mut old) = self.new_and_old(rs_list.clone(), false).await?;
        let mut scaled = false;
        for rs in old.iter_mut().filter(|rs| rs_replicas(rs) > 0) {
            let (written, s) = self.scale_rs(rs, 0).await?;
            *rs = written;
            scaled |= s;
        }
        if scaled {
            return self.sync_rollout_status(&old, new.as_ref()).await;
        }
        let old_uids: Vec<&str> = old
            .iter()
            .filter_map(|rs| rs.metadata.uid.as_deref())
            .collect();
        let old_running = old.iter().any(|rs| util::rs_status_replicas(rs) > 0)
            || pods.iter().any(|p| {
                crate::pods::controller_of(&p.metadata)
                    .is_some_and(|r| old_uids.contains(&r.uid.as_str()))
                    && !matches!(
                        p.status.as_ref().and_then(|s| s.phase.as_deref()),
                        Some("Succeeded" | "Failed")
                    )
            });
        if old_running {
            return self.sync_rollout_status(&old, new.as_ref()).await;
        }
        let (new, old) = match new {
            Some(n) => (n, old),
            None => {
                let (n, o) = self.new_and_old(rs_list, true).await?;
                (n.expect("created when missing"), o)
            }
        };
        let want = util::replicas(&self.d);
        let (new, _) = self.scale_rs(&new, want).await?;
        if status_complete(&self.d, &self.d.status.clone().unwrap_or_default()) {
            self.cleanup(&old).await?;
        }
        self.sync_rollout_status(&old, Some(&new)).await
    }

    /// Kubernetes' `sync`: scaling (and cleanup while paused), no rollout.
    pub(super) async fn sync(&mut self, rs_list: Vec<ReplicaSet>) -> Result<()> {
        let (new, old) = self.new_and_old(rs_list, false).await?;
        let (new, old) = self.scale(new, old).await?;
        if util::paused(&self.d) {
            self.cleanup(&old).await?;
        }
        self.sync_status(&old, new.as_ref()).await
    }

    /// Kubernetes' `scale`: one active ReplicaSet takes every replica; a saturated new one
    /// takes them from the old; otherwise added or removed replicas are spread in proportion
    /// to each ReplicaSet's size.
    async fn scale(
        &mut self,
        new: Option<ReplicaSet>,
        mut old: Vec<ReplicaSet>,
    ) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>)> {
        let want = util::replicas(&self.d);
        // Newest first, then the active ones.
        old.sort_by(|a, b| {
            let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(b).cmp(&t(a))
        });
        let mut all: Vec<ReplicaSet> = old.iter().cloned().chain(new.iter().cloned()).collect();
        let active: Vec<usize> = (0..all.len())
            .filter(|i| rs_replicas(&all[*i]) > 0)
            .collect();
        let single = match active.len() {
            0 => match &new {
                Some(n) => all.iter().position(|rs| rs.metadata.uid == n.metadata.uid),
                None => (!old.is_empty()).then_some(0),
            },
            1 => Some(active[0]),
            _ => None,
        };
        if let Some(i) = single {
            if rs_replicas(&all[i]) != want {
                let (w, _) = self.scale_rs(&all[i], want).await?;
                all[i] = w;
            }
            return Ok(split_back(all, new.as_ref()));
        }
        let saturated = new.as_ref().is_some_and(|n| {
            util::desired_annotation(n) == Some(want)
                && rs_replicas(n) == want
                && util::rs_available(n) == want
        });
        if saturated {
            let new_uid = new.as_ref().and_then(|n| n.metadata.uid.clone());
            for rs in all.iter_mut() {
                if rs.metadata.uid != new_uid && rs_replicas(rs) > 0 {
                    let (w, _) = self.scale_rs(rs, 0).await?;
                    *rs = w;
                }
            }
            return Ok(split_back(all, new.as_ref()));
        }
        if util::is_recreate(&self.d) {
            return Ok(split_back(all, new.as_ref()));
        }
        let mut active: Vec<ReplicaSet> = all
            .iter()
            .filter(|rs| rs_replicas(rs) > 0)
            .cloned()
            .collect();
        let current: i32 = active.iter().map(rs_replicas).sum();
        let allowed = if want > 0 {
            want + util::max_surge(&self.d)
        } else {
            0
        };
        let to_add = allowed - current;
        let newer_first = to_add > 0;
        active.sort_by(|a, b| {
            let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
            rs_replicas(b).cmp(&rs_replicas(a)).then_with(|| {
                if newer_first {
                    t(b).cmp(&t(a))
                } else {
                    t(a).cmp(&t(b))
                }
            })
        });
        let mut added = 0;
        let mut sizes: Vec<i32> = Vec::with_capacity(active.len());
        for rs in &active {
            if to_add != 0 {
                let p = self.proportion(rs, to_add, added);
                sizes.push(rs_replicas(rs) + p);
                added += p;
            } else {
                sizes.push(rs_replicas(rs));
            }
        }
        if to_add != 0 {
            if let Some(first) = sizes.first_mut() {
                *first = (*first + to_add - added).max(0);
            }
        }
        for (rs, size) in active.iter().zip(sizes) {
            let (w, _) = self.scale_rs(rs, size).await?;
            if let Some(slot) = all.iter_mut().find(|x| x.metadata.uid == w.metadata.uid) {
                *slot = w;
            }
        }
        Ok(split_back(all, new.as_ref()))
    }

    /// Kubernetes' `GetProportion`.
    fn proportion(&self, rs: &ReplicaSet, to_add: i32, added: i32) -> i32 {
        if rs_replicas(rs) == 0 || to_add == 0 || to_add == added {
            return 0;
        }
        let fraction = {
            let want = util::replicas(&self.d);
            if want == 0 {
                -rs_replicas(rs)
            } else {
                let total = want + util::max_surge(&self.d);
                let annotated = util::max_replicas_annotation(rs).unwrap_or_else(|| {
                    self.d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0)
                });
                if annotated == 0 {
                    0
                } else {
                    let size = f64::from(rs_replicas(rs)) * f64::from(total) / f64::from(annotated);
                    size.round() as i32 - rs_replicas(rs)
                }
            }
        };
        let allowed = to_add - added;
        if to_add > 0 {
            fraction.min(allowed)
        } else {
            fraction.max(allowed)
        }
    }

    /// Kubernetes' `cleanupDeployment`: old, empty ReplicaSets beyond
    /// `revisionHistoryLimit` are deleted, lowest revision first.
    pub(super) async fn cleanup(&self, old: &[ReplicaSet]) -> Result<()> {
        let Some(limit) = util::revision_history_limit(&self.d) else {
            return Ok(());
        };
        let mut alive: Vec<&ReplicaSet> = old
            .iter()
            .filter(|rs| rs.metadata.deletion_timestamp.is_none())
            .collect();
        let diff = alive.len() as i64 - i64::from(limit);
        if diff <= 0 {
            return Ok(());
        }
        alive.sort_by(|a, b| {
            util::revision(a).cmp(&util::revision(b)).then_with(|| {
                let t = |rs: &ReplicaSet| rs.metadata.creation_timestamp.as_ref().map(|t| t.0);
                t(a).cmp(&t(b))
            })
        });
        for rs in alive.into_iter().take(diff as usize) {
            let observed = rs
                .status
                .as_ref()
                .and_then(|s| s.observed_generation)
                .unwrap_or(0);
            if util::rs_status_replicas(rs) != 0
                || rs_replicas(rs) != 0
                || rs.metadata.generation.unwrap_or(0) > observed
            {
                continue;
            }
            tracing::debug!(rs = %rs.name_any(), "deleting old replica set beyond revisionHistoryLimit");
            let params = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: rs.metadata.uid.clone(),
                    resource_version: None,
                }),
                ..Default::default()
            };
            match self.replica_sets.delete(&rs.name_any(), &params).await {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

struct OldResult {
    /// Set when something was scaled down (the ReplicaSets as written).
    scaled: Option<Vec<ReplicaSet>>,
    unchanged: Vec<ReplicaSet>,
}

fn split_back(
    all: Vec<ReplicaSet>,
    new: Option<&ReplicaSet>,
) -> (Option<ReplicaSet>, Vec<ReplicaSet>) {
    let new_uid = new.and_then(|n| n.metadata.uid.clone());
    let (n, o): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|rs| new_uid.is_some() && rs.metadata.uid == new_uid);
    (n.into_iter().next(), o)
}

/// Kubernetes' `DeploymentComplete`.
pub(super) fn status_complete(
    d: &k8s_openapi::api::apps::v1::Deployment,
    s: &k8s_openapi::api::apps::v1::DeploymentStatus,
) -> bool {
    let want = util::replicas(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}
