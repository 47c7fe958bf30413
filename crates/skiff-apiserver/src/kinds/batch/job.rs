//! batch/v1 Jobs: completion defaults, the selector and pod labels the server generates
//! from the Job's uid (`batch.kubernetes.io/controller-uid`, `batch.kubernetes.io/job-name`
//! and their legacy names), the rules of a job spec (shared with CronJob templates), what may
//! change on update, `/status`, and the `kubectl get jobs` columns.

use k8s_openapi::api::batch::v1::Job;
use k8s_pb::api::batch::v1 as pb;
use serde_json::{json, Value};

use crate::defaults::{ensure, set, template};
use crate::object;
use crate::registry::{typed, Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    age, col, containers_and_images, human_duration, name, selector_cell, Column, AGE, CONTAINERS,
    IMAGES, NAME, SELECTOR,
};
use crate::validation::pod::{go_selector, pod_template, restart_policy_in, selector_matches};
use crate::validation::{go_map, quote, Errs};

pub const CONTROLLER_UID: &str = "batch.kubernetes.io/controller-uid";
pub const JOB_NAME: &str = "batch.kubernetes.io/job-name";
const LEGACY_CONTROLLER_UID: &str = "controller-uid";
const LEGACY_JOB_NAME: &str = "job-name";
const COMPLETION_MODES: &[&str] = &["Indexed", "NonIndexed"];
const POD_REPLACEMENT_POLICIES: &[&str] = &["Failed", "TerminatingOrFailed"];
/// Upstream's caps on Indexed Jobs (they bound `status.completedIndexes` and
/// `status.failedIndexes`): parallelism, maxFailedIndexes, and with backoffLimitPerIndex the
/// completions above which parallelism and maxFailedIndexes are capped lower.
const MAX_INDEXED_PARALLELISM: i64 = 100_000;
const MAX_FAILED_INDEXES: i64 = 100_000;
const COMPLETIONS_SOFT_LIMIT: i64 = 100_000;
const HIGH_COMPLETIONS_LIMIT: i64 = 10_000;

pub struct Jobs;

impl Strategy for Jobs {
    type Object = Job;
    type Protobuf = pb::Job;
    const RESOURCE: Entry = Entry {
        categories: ALL,
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const FIELD_SELECTORS: &'static [&'static str] = &["status.successful"];
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Status"),
        col("Completions"),
        col("Duration"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        if spec["completions"].is_null() && spec["parallelism"].is_null() {
            spec["completions"] = json!(1);
        }
        set(spec, "parallelism", json!(1));
        let backoff = if spec["backoffLimitPerIndex"].is_null() {
            json!(6)
        } else {
            json!(i32::MAX)
        };
        set(spec, "backoffLimit", backoff);
        set(spec, "completionMode", json!("NonIndexed"));
        set(spec, "suspend", json!(false));
        set(spec, "manualSelector", json!(false));
        let replacement = if spec["podFailurePolicy"].is_null() {
            "TerminatingOrFailed"
        } else {
            "Failed"
        };
        set(spec, "podReplacementPolicy", json!(replacement));
        // podFailurePolicy condition patterns match status True unless they say otherwise.
        if let Some(rules) = spec
            .pointer_mut("/podFailurePolicy/rules")
            .and_then(Value::as_array_mut)
        {
            let patterns = rules
                .iter_mut()
                .filter_map(|r| r.get_mut("onPodConditions").and_then(Value::as_array_mut))
                .flatten();
            for p in patterns {
                set(p, "status", json!("True"));
            }
        }
        template(spec);
        let labels = obj.pointer("/spec/template/metadata/labels").cloned();
        if let Some(labels) = labels.filter(|l| l.as_object().is_some_and(|m| !m.is_empty())) {
            if object::labels(obj).is_empty() {
                object::meta_mut(obj).insert("labels".into(), labels);
            }
        }
    }

    fn prepare_for_create(&self, obj: &mut Value) {
        if let Some(m) = obj.as_object_mut() {
            m.remove("status");
        }
        if obj.pointer("/spec/manualSelector") != Some(&json!(true)) {
            generate_selector(obj);
        }
    }

    fn validate(&self, new: Obj<'_, Job>, old: Option<Obj<'_, Job>>, errs: &mut Errs) {
        job_spec(&new.json["spec"], "spec", true, errs);
        if let Some(old) = old {
            let (now, was) = (&new.json["spec"], &old.json["spec"]);
            if now["selector"] != was["selector"] {
                errs.invalid(
                    "spec.selector",
                    go_selector(&now["selector"]),
                    "field is immutable",
                );
            }
            if now["backoffLimitPerIndex"] != was["backoffLimitPerIndex"] {
                errs.invalid(
                    "spec.backoffLimitPerIndex",
                    go_int(&now["backoffLimitPerIndex"]),
                    "field is immutable",
                );
            }
            if now["completions"] != was["completions"] && now["completionMode"] != "Indexed" {
                errs.invalid(
                    "spec.completions",
                    now["completions"].to_string(),
                    "field is immutable",
                );
            }
            let suspended = was["suspend"] == true;
            if now["template"] != was["template"] && !suspended {
                errs.invalid(
                    "spec.template",
                    "core.PodTemplateSpec{...}".into(),
                    "field is immutable",
                );
            }
        }
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let job: Job = typed(obj);
        let spec = job.spec.unwrap_or_default();
        let status = job.status.unwrap_or_default();
        let succeeded = status.succeeded.unwrap_or(0);
        let completions = match (spec.completions, spec.parallelism.unwrap_or(0)) {
            (Some(c), _) => format!("{succeeded}/{c}"),
            (None, p) if p > 1 => format!("{succeeded}/1 of {p}"),
            (None, _) => format!("{succeeded}/1"),
        };
        let duration = match (&status.start_time, &status.completion_time) {
            (None, _) => String::new(),
            (Some(start), None) => {
                human_duration(chrono::Utc::now().timestamp() - start.0.as_second())
            }
            (Some(start), Some(end)) => human_duration(end.0.as_second() - start.0.as_second()),
        };
        let has = |t: &str| {
            status
                .conditions
                .iter()
                .flatten()
                .find(|c| c.type_ == t)
                .is_some_and(|c| c.status == "True")
        };
        let state = if has("Complete") {
            "Complete"
        } else if has("Failed") {
            "Failed"
        } else if object::is_deleting(obj) {
            "Terminating"
        } else if has("Suspended") {
            "Suspended"
        } else if has("FailureTarget") {
            "FailureTarget"
        } else {
            "Running"
        };
        let (containers, images) = containers_and_images(obj.pointer("/spec/template/spec"));
        vec![
            name(obj),
            json!(state),
            json!(completions),
            json!(duration),
            age(obj),
            containers,
            images,
            selector_cell(obj.pointer("/spec/selector")),
        ]
    }
}

/// Labels the pod template with the Job's name and uid and selects on the uid, as
/// Kubernetes does for every Job without `manualSelector`.
fn generate_selector(obj: &mut Value) {
    let (name, uid) = (
        object::name(obj).to_string(),
        object::meta_str(obj, "uid").to_string(),
    );
    let spec = ensure(obj, "spec");
    let labels = ensure(ensure(ensure(spec, "template"), "metadata"), "labels");
    for (key, value) in [
        (LEGACY_JOB_NAME, &name),
        (JOB_NAME, &name),
        (LEGACY_CONTROLLER_UID, &uid),
        (CONTROLLER_UID, &uid),
    ] {
        set(labels, key, json!(value));
    }
    set(
        ensure(ensure(spec, "selector"), "matchLabels"),
        CONTROLLER_UID,
        json!(uid),
    );
}

/// The rules of a job spec at `path` (a Job's `spec`, a CronJob's `spec.jobTemplate.spec`);
/// a Job needs a selector, a CronJob's template gets one when its Jobs are created.
pub fn job_spec(spec: &Value, path: &str, require_selector: bool, errs: &mut Errs) {
    for f in [
        "parallelism",
        "completions",
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "backoffLimitPerIndex",
        "maxFailedIndexes",
    ] {
        errs.min(&format!("{path}.{f}"), &spec[f], 0);
    }
    if let Some(n) = spec["activeDeadlineSeconds"].as_i64().filter(|n| *n <= 0) {
        errs.invalid(
            &format!("{path}.activeDeadlineSeconds"),
            n.to_string(),
            "must be greater than zero",
        );
    }
    if let Some(mode) = spec["completionMode"]
        .as_str()
        .filter(|m| !COMPLETION_MODES.contains(m))
    {
        errs.not_supported(&format!("{path}.completionMode"), mode, COMPLETION_MODES);
    }
    if spec["completionMode"] == "Indexed" && spec["completions"].is_null() {
        errs.required(
            &format!("{path}.completions"),
            "when completion mode is Indexed",
        );
    }
    per_index(spec, path, errs);
    if let Some(p) = spec["podReplacementPolicy"]
        .as_str()
        .filter(|p| !POD_REPLACEMENT_POLICIES.contains(p))
    {
        errs.not_supported(
            &format!("{path}.podReplacementPolicy"),
            p,
            POD_REPLACEMENT_POLICIES,
        );
    }
    let selector = &spec["selector"];
    let labels = &spec["template"]["metadata"]["labels"];
    if selector.is_null() {
        if require_selector {
            errs.required(&format!("{path}.selector"), "");
        }
    } else if !selector_matches(selector, labels) {
        errs.invalid(
            &format!("{path}.template.metadata.labels"),
            go_map(labels),
            "`selector` does not match template `labels`",
        );
    }
    let template_path = format!("{path}.template");
    pod_template(&spec["template"], &template_path, errs);
    let pod = &spec["template"]["spec"];
    let allowed = &["OnFailure", "Never"];
    match pod["restartPolicy"].as_str() {
        None => errs.not_supported(&format!("{template_path}.spec.restartPolicy"), "", allowed),
        Some(_) => restart_policy_in(pod, &format!("{template_path}.spec"), allowed, errs),
    }
    pod_failure_policy(spec, path, errs);
}

/// `backoffLimitPerIndex` and `maxFailedIndexes`: Indexed Jobs only, the second only with
/// the first, within upstream's caps, worded as Kubernetes words it.
fn per_index(spec: &Value, path: &str, errs: &mut Errs) {
    let per_index = spec["backoffLimitPerIndex"].as_i64();
    let max_failed = spec["maxFailedIndexes"].as_i64();
    let completions = spec["completions"].as_i64();
    let parallelism = spec["parallelism"].as_i64();
    if max_failed.is_some() && per_index.is_none() {
        errs.required(
            &format!("{path}.backoffLimitPerIndex"),
            "when maxFailedIndexes is specified",
        );
    }
    if spec["completionMode"] != "Indexed" {
        for (f, v) in [
            ("backoffLimitPerIndex", per_index),
            ("maxFailedIndexes", max_failed),
        ] {
            if let Some(v) = v {
                errs.invalid(
                    &format!("{path}.{f}"),
                    v.to_string(),
                    "requires indexed completion mode",
                );
            }
        }
        return;
    }
    if let Some(p) = parallelism.filter(|p| *p > MAX_INDEXED_PARALLELISM) {
        errs.invalid(
            &format!("{path}.parallelism"),
            p.to_string(),
            &format!("must be less than or equal to {MAX_INDEXED_PARALLELISM} when completion mode is Indexed"),
        );
    }
    if let (Some(m), Some(c)) = (max_failed, completions) {
        if m > c {
            errs.invalid(
                &format!("{path}.maxFailedIndexes"),
                m.to_string(),
                "must be less than or equal to completions",
            );
        }
    }
    if let Some(m) = max_failed.filter(|m| *m > MAX_FAILED_INDEXES) {
        errs.invalid(
            &format!("{path}.maxFailedIndexes"),
            m.to_string(),
            &format!("must be less than or equal to {MAX_FAILED_INDEXES}"),
        );
    }
    if per_index.is_some() && completions.is_some_and(|c| c > COMPLETIONS_SOFT_LIMIT) {
        let high = format!(
            "must be less than or equal to {HIGH_COMPLETIONS_LIMIT} when completions are above {COMPLETIONS_SOFT_LIMIT} and used with backoff limit per index"
        );
        match max_failed {
            None => errs.required(
                &format!("{path}.maxFailedIndexes"),
                &format!("must be specified when completions is above {COMPLETIONS_SOFT_LIMIT}"),
            ),
            Some(m) if m > HIGH_COMPLETIONS_LIMIT => {
                errs.invalid(&format!("{path}.maxFailedIndexes"), m.to_string(), &high)
            }
            Some(_) => {}
        }
        if let Some(p) = parallelism.filter(|p| *p > HIGH_COMPLETIONS_LIMIT) {
            errs.invalid(&format!("{path}.parallelism"), p.to_string(), &high);
        }
    }
}

/// An optional integer as Go prints a nil or set `*int32` in an immutable-field error.
fn go_int(v: &Value) -> String {
    v.as_i64().map_or_else(|| "null".into(), |n| n.to_string())
}

/// `podFailurePolicy`: only with `restartPolicy: Never`, and each rule with a known action
/// and exactly one of `onExitCodes` / `onPodConditions`, worded as Kubernetes words it.
fn pod_failure_policy(spec: &Value, path: &str, errs: &mut Errs) {
    const ACTIONS: &[&str] = &["Count", "FailIndex", "FailJob", "Ignore"];
    let Some(rules) = spec["podFailurePolicy"]["rules"].as_array() else {
        return;
    };
    let restart = spec["template"]["spec"]["restartPolicy"]
        .as_str()
        .unwrap_or("");
    if restart != "Never" {
        errs.invalid(
            &format!("{path}.template.spec.restartPolicy"),
            quote(restart),
            "only \"Never\" is supported when podFailurePolicy is specified",
        );
    }
    for (i, rule) in rules.iter().enumerate() {
        let at = format!("{path}.podFailurePolicy.rules[{i}]");
        let action = rule["action"].as_str().unwrap_or("");
        if action == "FailIndex" && spec["backoffLimitPerIndex"].is_null() {
            errs.invalid(
                &format!("{at}.action"),
                quote(action),
                "requires the backoffLimitPerIndex to be set",
            );
        } else if !ACTIONS.contains(&action) {
            errs.not_supported(&format!("{at}.action"), action, ACTIONS);
        }
        let codes = !rule["onExitCodes"].is_null();
        let conditions = !rule["onPodConditions"].is_null();
        if codes == conditions {
            errs.invalid(
                &at,
                quote(""),
                "specifying one of OnExitCodes and OnPodConditions is required",
            );
        }
        if codes {
            let op = rule["onExitCodes"]["operator"].as_str().unwrap_or("");
            if !["In", "NotIn"].contains(&op) {
                errs.not_supported(&format!("{at}.onExitCodes.operator"), op, &["In", "NotIn"]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    fn job() -> Value {
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "pi", "uid": "u-1"},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "pi", "image": "perl"}]}}}})
    }

    fn created(mut obj: Value) -> Value {
        Kind::prepare_for_create(&Jobs, &mut obj);
        Kind::defaults(&Jobs, &mut obj);
        obj
    }

    #[test]
    fn create_generates_the_selector_and_defaults_like_kubectl_create_job() {
        let j = created(job());
        let spec = &j["spec"];
        assert_eq!(
            spec["selector"],
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
        );
        assert_eq!(
            spec["template"]["metadata"]["labels"],
            json!({"batch.kubernetes.io/controller-uid": "u-1", "batch.kubernetes.io/job-name": "pi",
                "controller-uid": "u-1", "job-name": "pi"})
        );
        assert_eq!(
            j["metadata"]["labels"],
            spec["template"]["metadata"]["labels"]
        );
        for (f, v) in [
            ("completions", json!(1)),
            ("parallelism", json!(1)),
            ("backoffLimit", json!(6)),
            ("completionMode", json!("NonIndexed")),
            ("suspend", json!(false)),
            ("manualSelector", json!(false)),
            ("podReplacementPolicy", json!("TerminatingOrFailed")),
        ] {
            assert_eq!(spec[f], v, "{f}");
        }
        assert!(Kind::validate(&Jobs, &j, None).is_ok());
    }

    #[test]
    fn jobs_may_not_restart_always() {
        let mut j = job();
        j["spec"]["template"]["spec"]
            .as_object_mut()
            .unwrap()
            .remove("restartPolicy");
        let err = Kind::validate(&Jobs, &created(j), None).unwrap_err();
        assert_eq!(
            err.message,
            "Job.batch \"pi\" is invalid: spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\""
        );
    }

    #[test]
    fn pod_failure_policy_needs_restart_never_and_valid_rules() {
        let mut j = job();
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("OnFailure");
        j["spec"]["podFailurePolicy"] = json!({"rules": [
            {"action": "Explode", "onExitCodes": {"operator": "In", "values": [1]}},
            {"action": "Ignore"},
        ]});
        let err = Kind::validate(&Jobs, &created(j.clone()), None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert!(causes.contains(&"spec.template.spec.restartPolicy: Invalid value: \"OnFailure\": only \"Never\" is supported when podFailurePolicy is specified".to_string()), "{causes:?}");
        assert!(
            causes.iter().any(|c| c.starts_with(
                "spec.podFailurePolicy.rules[0].action: Unsupported value: \"Explode\""
            )),
            "{causes:?}"
        );
        assert!(causes.contains(&"spec.podFailurePolicy.rules[1]: Invalid value: \"\": specifying one of OnExitCodes and OnPodConditions is required".to_string()), "{causes:?}");
        j["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        j["spec"]["podFailurePolicy"] = json!({"rules": [
            {"action": "FailJob", "onExitCodes": {"operator": "In", "values": [42]}},
            {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget"}]},
        ]});
        let j = created(j);
        assert_eq!(
            j["spec"]["podFailurePolicy"]["rules"][1]["onPodConditions"][0]["status"], "True",
            "defaulted"
        );
        assert!(Kind::validate(&Jobs, &j, None).is_ok());
    }

    #[test]
    fn indexed_jobs_need_completions() {
        let mut j = job();
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["parallelism"] = json!(2);
        j["spec"].as_object_mut().unwrap().remove("completions");
        let err = Kind::validate(&Jobs, &created(j.clone()), None).unwrap_err();
        assert_eq!(
            err.message,
            "Job.batch \"pi\" is invalid: spec.completions: Required value: when completion mode is Indexed"
        );
        j["spec"]["completions"] = json!(3);
        assert!(Kind::validate(&Jobs, &created(j), None).is_ok());
    }

    fn causes(j: Value, old: Option<&Value>) -> Vec<String> {
        match Kind::validate(&Jobs, &j, old) {
            Ok(()) => Vec::new(),
            Err(e) => e
                .causes
                .iter()
                .map(|c| format!("{}: {}", c.field, c.message))
                .collect(),
        }
    }

    #[test]
    fn backoff_limit_per_index_is_for_indexed_jobs_within_upstream_caps() {
        let mut j = job();
        j["spec"]["backoffLimitPerIndex"] = json!(1);
        j["spec"]["maxFailedIndexes"] = json!(2);
        assert_eq!(
            causes(created(j.clone()), None),
            [
                "spec.backoffLimitPerIndex: Invalid value: 1: requires indexed completion mode",
                "spec.maxFailedIndexes: Invalid value: 2: requires indexed completion mode",
            ]
        );
        j["spec"]["completionMode"] = json!("Indexed");
        j["spec"]["completions"] = json!(1);
        assert_eq!(
            causes(created(j.clone()), None),
            ["spec.maxFailedIndexes: Invalid value: 2: must be less than or equal to completions"]
        );
        j["spec"]["completions"] = json!(200_000);
        j["spec"]["parallelism"] = json!(20_000);
        j["spec"]["maxFailedIndexes"] = json!(-1);
        j["spec"]["podFailurePolicy"] = json!({"rules": [
            {"action": "FailIndex", "onExitCodes": {"operator": "In", "values": [3]}}]});
        assert_eq!(
            causes(created(j.clone()), None),
            [
                "spec.maxFailedIndexes: Invalid value: -1: must be greater than or equal to 0",
                "spec.parallelism: Invalid value: 20000: must be less than or equal to 10000 when completions are above 100000 and used with backoff limit per index",
            ]
        );
        j["spec"]["completions"] = json!(4);
        j["spec"]["parallelism"] = json!(2);
        j["spec"]["maxFailedIndexes"] = json!(1);
        let ok = created(j.clone());
        assert_eq!(ok["spec"]["backoffLimit"], json!(i32::MAX), "defaulted");
        assert!(causes(ok.clone(), None).is_empty());
        // maxFailedIndexes may change, backoffLimitPerIndex may not.
        let mut new = ok.clone();
        new["spec"]["maxFailedIndexes"] = json!(2);
        assert!(causes(new.clone(), Some(&ok)).is_empty());
        new["spec"]["backoffLimitPerIndex"] = json!(3);
        assert_eq!(
            causes(new, Some(&ok)),
            ["spec.backoffLimitPerIndex: Invalid value: 3: field is immutable"]
        );
        // Without backoffLimitPerIndex: FailIndex and maxFailedIndexes are refused.
        let spec = j["spec"].as_object_mut().unwrap();
        spec.remove("backoffLimitPerIndex");
        spec.remove("backoffLimit");
        assert_eq!(
            causes(created(j), None),
            [
                "spec.backoffLimitPerIndex: Required value: when maxFailedIndexes is specified",
                "spec.podFailurePolicy.rules[0].action: Invalid value: \"FailIndex\": requires the backoffLimitPerIndex to be set",
            ]
        );
    }

    #[test]
    fn template_and_selector_are_immutable() {
        let old = created(job());
        let mut new = old.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("perl:2");
        let err = Kind::validate(&Jobs, &new, Some(&old)).unwrap_err();
        assert_eq!(err.causes[0].field, "spec.template");
        assert!(err.causes[0].message.ends_with("field is immutable"));
    }

    #[test]
    fn row_shows_status_completions_and_duration() {
        let mut j = created(job());
        j["status"] = json!({"succeeded": 1, "startTime": "2026-01-01T00:00:00Z", "completionTime": "2026-01-01T00:00:12Z",
            "conditions": [{"type": "Complete", "status": "True"}]});
        let c = Kind::cells(&Jobs, &j);
        assert_eq!(&c[1..4], [json!("Complete"), json!("1/1"), json!("12s")]);
        assert_eq!(c[7], "batch.kubernetes.io/controller-uid=u-1");
        j["spec"]["parallelism"] = json!(3);
        j["spec"].as_object_mut().unwrap().remove("completions");
        j["status"] = json!({});
        let c = Kind::cells(&Jobs, &j);
        assert_eq!(&c[1..4], [json!("Running"), json!("0/1 of 3"), json!("")]);
    }
}
