//! batch/v1 CronJobs: concurrency and history defaults, the schedule, time zone and job
//! template rules, `/status`, and the `kubectl get cronjobs` columns.

use k8s_openapi::api::batch::v1::CronJob;
use k8s_pb::api::batch::v1 as pb;
use serde_json::{json, Value};

use super::job::job_spec;
use crate::defaults::{ensure, set, template};
use crate::registry::{typed, Obj, Strategy};
use crate::resources::{Entry, Sub, ALL};
use crate::table::{
    age, bool_col, col, containers_and_images, int_col, name, selector_cell, since, Column, AGE,
    CONTAINERS, IMAGES, NAME, SELECTOR,
};
use crate::validation::{quote, Errs};

const CONCURRENCY_POLICIES: &[&str] = &["Allow", "Forbid", "Replace"];
/// Where time zone names are looked up, as Go's `time.LoadLocation` does on Linux.
const ZONEINFO: &str = "/usr/share/zoneinfo";

pub struct CronJobs;

impl Strategy for CronJobs {
    type Object = CronJob;
    type Protobuf = pb::CronJob;
    const RESOURCE: Entry = Entry {
        short_names: &["cj"],
        categories: ALL,
        subresources: &[Sub::Status],
        ..Entry::DEFAULT
    };
    const GENERATION: bool = true;
    const COLUMNS: &'static [Column] = &[
        NAME,
        col("Schedule"),
        col("Timezone"),
        bool_col("Suspend"),
        int_col("Active"),
        col("Last Schedule"),
        AGE,
        CONTAINERS,
        IMAGES,
        SELECTOR,
    ];

    fn defaults(&self, obj: &mut Value) {
        let spec = ensure(obj, "spec");
        set(spec, "concurrencyPolicy", json!("Allow"));
        set(spec, "suspend", json!(false));
        set(spec, "successfulJobsHistoryLimit", json!(3));
        set(spec, "failedJobsHistoryLimit", json!(1));
        if let Some(job_spec) = spec
            .get_mut("jobTemplate")
            .and_then(|t| t.get_mut("spec"))
            .filter(|s| s.is_object())
        {
            template(job_spec);
        }
    }

    fn validate(&self, new: Obj<'_, CronJob>, _old: Option<Obj<'_, CronJob>>, errs: &mut Errs) {
        let spec = &new.json["spec"];
        match spec["schedule"].as_str().filter(|s| !s.is_empty()) {
            None => errs.required("spec.schedule", ""),
            Some(s) => schedule(s, errs),
        }
        errs.min(
            "spec.startingDeadlineSeconds",
            &spec["startingDeadlineSeconds"],
            0,
        );
        let policy = spec["concurrencyPolicy"].as_str().unwrap_or("");
        if policy.is_empty() {
            errs.required("spec.concurrencyPolicy", "");
        } else if !CONCURRENCY_POLICIES.contains(&policy) {
            errs.not_supported("spec.concurrencyPolicy", policy, CONCURRENCY_POLICIES);
        }
        job_spec(
            &spec["jobTemplate"]["spec"],
            "spec.jobTemplate.spec",
            false,
            errs,
        );
        for f in ["successfulJobsHistoryLimit", "failedJobsHistoryLimit"] {
            errs.min(&format!("spec.{f}"), &spec[f], 0);
        }
        if let Some(tz) = spec["timeZone"].as_str() {
            if !known_time_zone(tz) {
                errs.invalid(
                    "spec.timeZone",
                    quote(tz),
                    &format!("unknown time zone {tz}"),
                );
            }
        }
    }

    fn cells(&self, obj: &Value) -> Vec<Value> {
        let cj: CronJob = typed(obj);
        let spec = cj.spec.unwrap_or_default();
        let status = cj.status.unwrap_or_default();
        let suspend = match spec.suspend {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let last = match obj
            .pointer("/status/lastScheduleTime")
            .and_then(Value::as_str)
        {
            Some(t) => since(Some(t)),
            None => "<none>".into(),
        };
        let job_spec = obj.pointer("/spec/jobTemplate/spec");
        let (containers, images) =
            containers_and_images(job_spec.and_then(|s| s.pointer("/template/spec")));
        vec![
            name(obj),
            json!(spec.schedule),
            json!(spec.time_zone.as_deref().unwrap_or("<none>")),
            json!(suspend),
            json!(status.active.map_or(0, |a| a.len())),
            json!(last),
            age(obj),
            containers,
            images,
            selector_cell(job_spec.and_then(|s| s.get("selector"))),
        ]
    }
}

/// The schedule, parsed as the CronJob controller parses it ([`skiff_core::cron`]: five
/// fields, a descriptor or `@every <duration>`), refused in robfig/cron's words.
fn schedule(s: &str, errs: &mut Errs) {
    if s.contains("TZ") {
        errs.invalid(
            "spec.schedule",
            quote(s),
            "cannot use TZ or CRON_TZ in schedule, use timeZone field instead",
        );
        return;
    }
    if let Err(e) = skiff_core::cron::parse(s) {
        errs.invalid("spec.schedule", quote(s), &e.to_string());
    }
}

/// Whether `tz` names a zone of the system's time zone database.
fn known_time_zone(tz: &str) -> bool {
    tz == "UTC"
        || tz == "Local"
        || (!tz.is_empty()
            && !tz.starts_with('/')
            && !tz.split('/').any(|p| p == ".." || p == ".")
            && std::path::Path::new(ZONEINFO).join(tz).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::Kind;

    /// What `kubectl create cronjob hello --image=busybox --schedule="*/1 * * * *"` sends.
    fn cronjob(schedule: &str) -> Value {
        json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "hello"},
            "spec": {"schedule": schedule, "jobTemplate": {"metadata": {"name": "hello"}, "spec": {"template": {"spec": {
                "restartPolicy": "OnFailure", "containers": [{"name": "hello", "image": "busybox"}]}}}}}})
    }

    fn defaulted(mut obj: Value) -> Value {
        Kind::defaults(&CronJobs, &mut obj);
        obj
    }

    #[test]
    fn kubectl_create_cronjob_is_valid_and_defaulted() {
        let cj = defaulted(cronjob("*/1 * * * *"));
        assert!(Kind::validate(&CronJobs, &cj, None).is_ok());
        assert_eq!(cj["spec"]["concurrencyPolicy"], "Allow");
        assert_eq!(cj["spec"]["successfulJobsHistoryLimit"], 3);
        assert_eq!(cj["spec"]["failedJobsHistoryLimit"], 1);
        assert_eq!(
            cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
            "ClusterFirst"
        );
        let c = Kind::cells(&CronJobs, &cj);
        assert_eq!(
            &c[1..6],
            [
                json!("*/1 * * * *"),
                json!("<none>"),
                json!("False"),
                json!(0),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn schedule_is_required_and_has_five_fields() {
        let mut cj = defaulted(cronjob(""));
        cj["spec"].as_object_mut().unwrap().remove("schedule");
        let err = Kind::validate(&CronJobs, &cj, None).unwrap_err();
        assert_eq!(
            err.message,
            "CronJob.batch \"hello\" is invalid: spec.schedule: Required value"
        );
        let err = Kind::validate(&CronJobs, &defaulted(cronjob("* * *")), None).unwrap_err();
        assert_eq!(
            err.causes[0].message,
            "Invalid value: \"* * *\": expected exactly 5 fields, found 3: [* * *]"
        );
        assert!(Kind::validate(&CronJobs, &defaulted(cronjob("@hourly")), None).is_ok());
        assert!(Kind::validate(&CronJobs, &defaulted(cronjob("@every 90s")), None).is_ok());
    }

    #[test]
    fn schedule_fields_are_parsed_as_the_controller_parses_them() {
        let cause = |schedule: &str| {
            Kind::validate(&CronJobs, &defaulted(cronjob(schedule)), None)
                .unwrap_err()
                .causes[0]
                .message
                .clone()
        };
        // Five fields that no cron parser takes: the API refuses them (it used to store them
        // and the controller then never ran the job).
        assert!(cause("61 * * * *").starts_with("Invalid value: \"61 * * * *\": "));
        assert!(cause("* * * * funday").starts_with("Invalid value: \"* * * * funday\": "));
        assert_eq!(
            cause("@fortnightly"),
            "Invalid value: \"@fortnightly\": unrecognized descriptor: @fortnightly"
        );
        assert_eq!(
            cause("@every soon"),
            "Invalid value: \"@every soon\": failed to parse duration @every soon: time: invalid duration \"soon\""
        );
    }

    #[test]
    fn job_template_rules_apply_under_job_template() {
        let mut cj = defaulted(cronjob("@daily"));
        cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]["restartPolicy"] = json!("Always");
        cj["spec"]["timeZone"] = json!("Mars/Olympus");
        let err = Kind::validate(&CronJobs, &cj, None).unwrap_err();
        let causes: Vec<String> = err
            .causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(causes, [
            "spec.jobTemplate.spec.template.spec.restartPolicy: Unsupported value: \"Always\": supported values: \"OnFailure\", \"Never\"",
            "spec.timeZone: Invalid value: \"Mars/Olympus\": unknown time zone Mars/Olympus",
        ]);
    }
}
