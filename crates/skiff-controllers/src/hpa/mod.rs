//! The HorizontalPodAutoscaler controller (kube-controller-manager's `podautoscaler`),
//! autoscaling/v2 semantics (v1 objects arrive converted by the API): every sync period it
//! reads the target's `/scale` subresource, the pods its selector picks and their usage from
//! `metrics.k8s.io`, computes the replica count each Resource metric asks for
//! ([`replicas`]: cpu and memory, Utilization against requests or AverageValue), takes the
//! largest, normalises it ([`behavior`]: stabilisation windows, scaling policies, min and
//! max), writes it through `/scale`, and records status, conditions (AbleToScale,
//! ScalingActive, ScalingLimited) and events (SuccessfulRescale) as Kubernetes does.

pub mod behavior;
pub mod replicas;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::{
    HorizontalPodAutoscaler, HorizontalPodAutoscalerCondition, HorizontalPodAutoscalerStatus,
    MetricSpec, MetricStatus, MetricValueStatus, ResourceMetricStatus,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::core::{GroupVersionKind, Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Api, Resource, ResourceExt};
use kube_quantity::ParsedQuantity;
use serde_json::{json, Value};

use crate::context::Context;
use crate::error::Result;
use crate::informer::Change;
use crate::runner::{self, Triggers};

use crate::cachedpod::CachedPod;
use behavior::{Args, Memory, Why};
use replicas::{CalcError, PodInfo, Proposal, Sample, Target};

/// The HPA controller's settings (kube-controller-manager's flags).
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// `--horizontal-pod-autoscaler-sync-period`.
    pub sync_period: Duration,
    /// `--horizontal-pod-autoscaler-downscale-stabilization`: the scale-down window of HPAs
    /// without a behavior.
    pub downscale_stabilization: Duration,
    /// `--horizontal-pod-autoscaler-tolerance`.
    pub tolerance: f64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sync_period: Duration::from_secs(15),
            downscale_stabilization: Duration::from_secs(300),
            tolerance: 0.1,
        }
    }
}

/// The HPA controller, running until dropped.
pub fn controller(
    ctx: Arc<Context>,
    config: Config,
) -> impl std::future::Future<Output = ()> + Send {
    let store = ctx.informers.hpas.store();
    let memory = Arc::new(Memory::new(config.downscale_stabilization));
    let own = spec_changes(&ctx, store.clone(), memory.clone());
    runner::run(
        "HorizontalPodAutoscaler",
        ctx,
        store,
        vec![own],
        move |hpa, ctx| Box::pin(reconcile(hpa, ctx, config, memory.clone())),
    )
}

fn key(hpa: &HorizontalPodAutoscaler) -> String {
    format!("{}/{}", hpa.namespace().unwrap_or_default(), hpa.name_any())
}

/// New HPAs and changed specs trigger a sync at once; the controller's own status writes do
/// not (each HPA is synced once per period, as upstream's rate-limited queue does).
fn spec_changes(
    ctx: &Context,
    store: kube::runtime::reflector::Store<HorizontalPodAutoscaler>,
    memory: Arc<Memory>,
) -> Triggers<HorizontalPodAutoscaler> {
    runner::map_changes(ctx.informers.hpas.changes(), move |c| match c {
        Change::Applied { old, new } => {
            let changed = old.is_none_or(|o| o.metadata.generation != new.metadata.generation);
            if changed {
                vec![ObjectRef::from_obj(new.as_ref())]
            } else {
                vec![]
            }
        }
        Change::Deleted(old) => {
            memory.forget(&key(&old));
            vec![]
        }
        Change::Relisted => runner::all(&store),
    })
}

/// The API resource of a scale target (`apps/v1` Deployment, ReplicaSet, StatefulSet; `v1`
/// ReplicationController; any other kind by its lower-case plural).
fn target_resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = match api_version.split_once('/') {
        Some((g, v)) => (g, v),
        None => ("", api_version),
    };
    let gvk = GroupVersionKind::gvk(group, version, kind);
    let plural = match kind {
        "Deployment" => "deployments".to_string(),
        "ReplicaSet" => "replicasets".to_string(),
        "StatefulSet" => "statefulsets".to_string(),
        "ReplicationController" => "replicationcontrollers".to_string(),
        other => format!("{}s", other.to_lowercase()),
    };
    ApiResource::from_gvk_with_plural(&gvk, &plural)
}

/// The pod selector of a scale target: a LabelSelector, or an RC's plain map.
fn target_selector(obj: &DynamicObject) -> Option<Selector> {
    let sel = obj.data.pointer("/spec/selector")?;
    let label_selector: LabelSelector =
        if sel.get("matchLabels").is_some() || sel.get("matchExpressions").is_some() {
            serde_json::from_value(sel.clone()).ok()?
        } else {
            LabelSelector {
                match_labels: serde_json::from_value(sel.clone()).ok()?,
                ..Default::default()
            }
        };
    Selector::try_from(label_selector).ok()
}

fn milli(q: &Quantity) -> Option<i64> {
    let v = ParsedQuantity::try_from(q).ok()?.to_bytes_f64()?;
    Some((v * 1000.0).round() as i64)
}

/// A Kubernetes quantity of `milli` thousandths (`250m`, `12Mi`-like values stay plain).
fn quantity(resource: &str, milli: i64) -> Quantity {
    if resource == "cpu" || milli % 1000 != 0 {
        Quantity(format!("{milli}m"))
    } else {
        Quantity((milli / 1000).to_string())
    }
}

/// What the calculator needs of each pod, with the pod's request for `resource` (optionally
/// of one container).
fn pod_infos(pods: &[Arc<CachedPod>], resource: &str, container: Option<&str>) -> Vec<PodInfo> {
    pods.iter()
        .map(|p| {
            let status = p.status.clone().unwrap_or_default();
            let ready = status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == "Ready")
                .map(|c| {
                    (
                        c.status == "True",
                        c.last_transition_time.as_ref().map(|t| t.0),
                    )
                });
            let mut request = Some(0i64);
            for c in p.spec.iter().flat_map(|s| s.containers.iter()) {
                if container.is_some_and(|n| n != c.name) {
                    continue;
                }
                let r = c
                    .resources
                    .as_ref()
                    .and_then(|r| r.requests.as_ref())
                    .and_then(|r| r.get(resource))
                    .and_then(milli);
                request = match (request, r) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ => None,
                };
            }
            PodInfo {
                name: p.name_any(),
                phase: status.phase.unwrap_or_else(|| "Pending".into()),
                deleting: p.metadata.deletion_timestamp.is_some(),
                ready,
                start_time: status.start_time.map(|t| t.0),
                request_milli: request,
            }
        })
        .collect()
}

/// The usage of `resource` by each pod of `namespace` (optionally one container's), from
/// `metrics.k8s.io`.
async fn pod_usage(
    ctx: &Context,
    namespace: &str,
    resource: &str,
    container: Option<&str>,
) -> Result<HashMap<String, Sample>> {
    let gvk = GroupVersionKind::gvk("metrics.k8s.io", "v1beta1", "PodMetrics");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "pods");
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), namespace, &ar);
    let list = api.list(&ListParams::default()).await?;
    let mut out = HashMap::new();
    for m in list.items {
        let timestamp = m
            .data
            .get("timestamp")
            .and_then(Value::as_str)
            .and_then(|t| t.parse::<Timestamp>().ok())
            .unwrap_or_else(Timestamp::now);
        let window = m
            .data
            .get("window")
            .and_then(Value::as_str)
            .and_then(|w| w.strip_suffix('s')?.parse::<f64>().ok())
            .map_or(Duration::ZERO, Duration::from_secs_f64);
        let mut total = Some(0i64);
        let mut any = false;
        for c in m
            .data
            .get("containers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if container.is_some_and(|n| c["name"] != n) {
                continue;
            }
            any = true;
            let used = c["usage"][resource]
                .as_str()
                .and_then(|q| milli(&Quantity(q.to_string())));
            total = match (total, used) {
                (Some(a), Some(b)) => Some(a + b),
                _ => None,
            };
        }
        // A pod missing a container's figure reports nothing (as upstream's metrics client).
        if let (true, Some(milli)) = (any, total) {
            out.insert(
                m.name_any(),
                Sample {
                    milli,
                    timestamp,
                    window,
                },
            );
        }
    }
    Ok(out)
}

/// One metric's proposal and its status entry, or the condition saying why not.
struct Computed {
    proposal: Proposal,
    /// "cpu resource utilization (percentage of request)", as upstream names it.
    name: String,
    status: MetricStatus,
}

async fn compute_metric(
    ctx: &Context,
    hpa: &HorizontalPodAutoscaler,
    spec: &MetricSpec,
    current: i32,
    pods: &[Arc<CachedPod>],
    config: &Config,
) -> std::result::Result<Computed, (&'static str, String)> {
    let ns = hpa.namespace().unwrap_or_default();
    let (resource, target, container) = match (&spec.resource, &spec.container_resource) {
        (Some(r), _) if spec.type_ == "Resource" => (&r.name, &r.target, None),
        (_, Some(r)) if spec.type_ == "ContainerResource" => {
            (&r.name, &r.target, Some(r.container.as_str()))
        }
        _ => {
            return Err((
                "InvalidMetricSourceType",
                format!("the HPA was unable to compute the replica count: metrics of type {} are not supported", spec.type_),
            ))
        }
    };
    let failed = |e: String| {
        (
            "FailedGetResourceMetric",
            format!("the HPA was unable to compute the replica count: {e}"),
        )
    };
    let target = match (
        target.type_.as_str(),
        target.average_utilization,
        &target.average_value,
    ) {
        ("Utilization", Some(u), _) => Target::Utilization(u),
        ("AverageValue", _, Some(v)) => Target::AverageValue(milli(v).unwrap_or(0)),
        _ => return Err(failed(format!("invalid {resource} target"))),
    };
    let usage = pod_usage(ctx, &ns, resource, container)
        .await
        .map_err(|e| {
            failed(format!(
                "unable to get metrics for resource {resource}: {}",
                crate::error::chain(&e)
            ))
        })?;
    let infos = pod_infos(pods, resource, container);
    let proposal = replicas::calculate(
        current,
        target,
        resource,
        &infos,
        usage,
        config.tolerance,
        Timestamp::now(),
    )
    .map_err(|e: CalcError| failed(format!("failed to get {resource} utilization: {e}")))?;
    let name = match target {
        Target::Utilization(_) => {
            format!("{resource} resource utilization (percentage of request)")
        }
        Target::AverageValue(_) => format!("{resource} resource"),
    };
    let current_value = MetricValueStatus {
        average_utilization: proposal.utilization,
        average_value: Some(quantity(resource, proposal.average_milli)),
        value: None,
    };
    let status = if let Some(c) = container {
        MetricStatus {
            type_: "ContainerResource".into(),
            container_resource: Some(
                k8s_openapi::api::autoscaling::v2::ContainerResourceMetricStatus {
                    name: resource.clone(),
                    container: c.to_string(),
                    current: current_value,
                },
            ),
            ..Default::default()
        }
    } else {
        MetricStatus {
            type_: "Resource".into(),
            resource: Some(ResourceMetricStatus {
                name: resource.clone(),
                current: current_value,
            }),
            ..Default::default()
        }
    };
    Ok(Computed {
        proposal,
        name,
        status,
    })
}

/// Sets condition `type_` (keeping its transition time when its status is unchanged).
fn set_condition(
    status: &mut HorizontalPodAutoscalerStatus,
    type_: &str,
    ok: bool,
    reason: &str,
    message: &str,
) {
    let now = Time(Timestamp::now());
    let conds = status.conditions.get_or_insert_with(Vec::new);
    let value = if ok { "True" } else { "False" };
    match conds.iter_mut().find(|c| c.type_ == type_) {
        Some(c) => {
            if c.status != value {
                c.last_transition_time = Some(now);
            }
            c.status = value.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
        }
        None => conds.push(HorizontalPodAutoscalerCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_transition_time: Some(now),
        }),
    }
}

fn set_why(status: &mut HorizontalPodAutoscalerStatus, type_: &str, ok: bool, why: Why) {
    set_condition(status, type_, ok, why.0, why.1);
}

async fn write_status(
    ctx: &Context,
    hpa: &HorizontalPodAutoscaler,
    status: HorizontalPodAutoscalerStatus,
) -> Result<()> {
    if hpa.status.as_ref() == Some(&status) {
        return Ok(());
    }
    let api: Api<HorizontalPodAutoscaler> =
        Api::namespaced(ctx.client.clone(), &hpa.namespace().unwrap_or_default());
    api.patch_status(
        &hpa.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"status": status})),
    )
    .await?;
    Ok(())
}

/// One sync of an HPA (upstream's `reconcileAutoscaler`).
pub async fn reconcile(
    obj: Arc<HorizontalPodAutoscaler>,
    ctx: Arc<Context>,
    config: Config,
    memory: Arc<Memory>,
) -> Result<Action> {
    let hpa = obj.as_ref();
    let requeue = Ok(Action::requeue(config.sync_period));
    if hpa.meta().deletion_timestamp.is_some() {
        return Ok(Action::await_change());
    }
    let ns = hpa.namespace().unwrap_or_default();
    let spec = hpa.spec.clone().unwrap_or_default();
    let mut status = hpa.status.clone().unwrap_or_default();
    status.observed_generation = hpa.metadata.generation;
    let regarding = hpa.object_ref(&());
    let target = &spec.scale_target_ref;
    let reference = format!("{}/{}", target.kind, target.name);
    let ar = target_resource(target.api_version.as_deref().unwrap_or(""), &target.kind);
    let targets: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &ar);

    let scale = match targets.get_scale(&target.name).await {
        Ok(s) => s,
        Err(e) => {
            let msg = format!(
                "the HPA controller was unable to get the target's current scale: {}",
                crate::error::chain(&e)
            );
            set_condition(&mut status, "AbleToScale", false, "FailedGetScale", &msg);
            ctx.events
                .warning(&regarding, "FailedGetScale", crate::error::chain(&e))
                .await;
            write_status(&ctx, hpa, status).await?;
            return requeue;
        }
    };
    set_condition(
        &mut status,
        "AbleToScale",
        true,
        "SucceededGetScale",
        "the HPA controller was able to get the target's current scale",
    );
    let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    let now = Timestamp::now();
    let hpa_key = key(hpa);
    memory.start(&hpa_key, current, now);
    let min = spec.min_replicas.unwrap_or(1);
    let max = spec.max_replicas;
    status.current_replicas = Some(current);

    let mut desired;
    let mut reason = String::new();
    let mut rescale = true;
    if current == 0 && min != 0 {
        desired = 0;
        rescale = false;
        set_condition(
            &mut status,
            "ScalingActive",
            false,
            "ScalingDisabled",
            "scaling is disabled since the replica count of the target is zero",
        );
    } else if current > max {
        reason = "Current number of replicas above Spec.MaxReplicas".into();
        desired = max;
    } else if current < min {
        reason = "Current number of replicas below Spec.MinReplicas".into();
        desired = min;
    } else {
        let target_obj = targets.get(&target.name).await?;
        let Some(selector) = target_selector(&target_obj) else {
            let msg = "the HPA target's scale is missing a selector";
            set_condition(&mut status, "ScalingActive", false, "InvalidSelector", msg);
            ctx.events
                .warning(&regarding, "SelectorRequired", msg.into())
                .await;
            write_status(&ctx, hpa, status).await?;
            return requeue;
        };
        let pods: Vec<Arc<CachedPod>> = ctx
            .informers
            .pods
            .store()
            .state()
            .into_iter()
            .filter(|p| {
                p.namespace().as_deref() == Some(ns.as_str())
                    && selector.matches(&p.metadata.labels.clone().unwrap_or_default())
            })
            .collect();
        let mut best: Option<Computed> = None;
        let mut statuses = Vec::new();
        let mut invalid: Option<(&'static str, String)> = None;
        let metrics = spec.metrics.clone().unwrap_or_default();
        for m in &metrics {
            match compute_metric(&ctx, hpa, m, current, &pods, &config).await {
                Ok(c) => {
                    statuses.push(c.status.clone());
                    if best
                        .as_ref()
                        .is_none_or(|b| c.proposal.replicas > b.proposal.replicas)
                    {
                        best = Some(c);
                    }
                }
                Err(why) => {
                    if invalid.is_none() {
                        ctx.events.warning(&regarding, why.0, why.1.clone()).await;
                        invalid = Some(why);
                    }
                }
            }
        }
        status.current_metrics = (!statuses.is_empty()).then_some(statuses);
        let best = match (best, invalid) {
            (Some(b), None) => b,
            // Some metrics failed: scale up on the others only.
            (Some(b), Some(_)) if b.proposal.replicas > current => b,
            (_, Some((r, msg))) => {
                set_condition(&mut status, "ScalingActive", false, r, &msg);
                status.desired_replicas = current;
                write_status(&ctx, hpa, status).await?;
                return requeue;
            }
            (None, None) => {
                let msg = "the HPA has no metrics to compute a replica count from";
                set_condition(
                    &mut status,
                    "ScalingActive",
                    false,
                    "InvalidMetricSourceType",
                    msg,
                );
                status.desired_replicas = current;
                write_status(&ctx, hpa, status).await?;
                return requeue;
            }
        };
        set_condition(
            &mut status,
            "ScalingActive",
            true,
            "ValidMetricFound",
            &format!(
                "the HPA was able to successfully calculate a replica count from {}",
                best.name
            ),
        );
        desired = best.proposal.replicas;
        if desired > current {
            reason = format!("{} above target", best.name);
        } else if desired < current {
            reason = "All metrics below target".into();
        }
        let n = memory.normalize(
            &hpa_key,
            Args {
                current,
                desired,
                min,
                max,
                behavior: spec.behavior.as_ref(),
            },
            now,
        );
        desired = n.replicas;
        set_why(&mut status, "AbleToScale", true, n.able);
        set_why(&mut status, "ScalingLimited", n.limited.0, n.limited.1);
        rescale = desired != current;
    }

    if rescale {
        let patch = Patch::Merge(json!({"spec": {"replicas": desired}}));
        if let Err(e) = targets
            .patch_scale(&target.name, &PatchParams::default(), &patch)
            .await
        {
            let e = crate::error::chain(&e);
            ctx.events
                .warning(
                    &regarding,
                    "FailedRescale",
                    format!("New size: {desired}; reason: {reason}; error: {e}"),
                )
                .await;
            let msg = format!("the HPA controller was unable to update the target scale: {e}");
            set_condition(&mut status, "AbleToScale", false, "FailedUpdateScale", &msg);
            write_status(&ctx, hpa, status).await?;
            return requeue;
        }
        set_condition(
            &mut status,
            "AbleToScale",
            true,
            "SucceededRescale",
            &format!("the HPA controller was able to update the target scale to {desired}"),
        );
        ctx.events
            .normal(
                &regarding,
                "SuccessfulRescale",
                format!("New size: {desired}; reason: {reason}"),
            )
            .await;
        memory.scaled(&hpa_key, current, desired, now);
        status.last_scale_time = Some(Time(now));
        tracing::info!(hpa = %hpa_key, %reference, from = current, to = desired, %reason, "rescaled");
    } else {
        desired = current;
    }
    status.desired_replicas = desired;
    write_status(&ctx, hpa, status).await?;
    requeue
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_map_to_their_resources() {
        let ar = target_resource("apps/v1", "Deployment");
        assert_eq!(
            (ar.group.as_str(), ar.version.as_str(), ar.plural.as_str()),
            ("apps", "v1", "deployments")
        );
        let ar = target_resource("v1", "ReplicationController");
        assert_eq!(
            (ar.group.as_str(), ar.plural.as_str()),
            ("", "replicationcontrollers")
        );
    }

    #[test]
    fn quantities_in_thousandths() {
        assert_eq!(milli(&Quantity("250m".into())), Some(250));
        assert_eq!(milli(&Quantity("1500000n".into())), Some(2));
        assert_eq!(milli(&Quantity("10Ki".into())), Some(10_240_000));
        assert_eq!(quantity("cpu", 250).0, "250m");
        assert_eq!(quantity("memory", 10_240_000).0, "10240");
    }
}
