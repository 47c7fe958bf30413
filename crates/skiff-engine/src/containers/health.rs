//! Health checks (`HEALTHCHECK` / `--health-cmd`): while a container runs, its test command
//! is exec'd through the shim every interval; the results make `State.Health` (starting,
//! healthy, unhealthy), the `(healthy)` suffix of `docker ps` and `health_status` events.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bollard_stubs::models::{Health, HealthConfig, HealthStatusEnum, HealthcheckResult};
use skiff_runtime::shim::ExecRequest;
use skiff_runtime::spec::ExecSpec;
use tokio::io::AsyncReadExt;

use super::Container;
use crate::Engine;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
/// Docker keeps this many results and this much output of each.
const KEEP_RESULTS: usize = 5;
const MAX_OUTPUT: usize = 4096;

/// The probe command of a `Healthcheck.Test`, if the container has one; `CMD-SHELL` runs
/// in the container config's `Shell` when it has one, as in Docker.
pub(crate) fn probe_command(test: &[String], shell: Option<&[String]>) -> Option<Vec<String>> {
    match test.split_first() {
        Some((kind, rest)) if kind == "CMD" && !rest.is_empty() => Some(rest.to_vec()),
        Some((kind, rest)) if kind == "CMD-SHELL" && !rest.is_empty() => {
            let shell = shell
                .filter(|s| !s.is_empty())
                .map_or_else(|| vec!["/bin/sh".into(), "-c".into()], <[String]>::to_vec);
            Some(shell.into_iter().chain([rest.join(" ")]).collect())
        }
        _ => None,
    }
}

/// A container's `Healthcheck` as an image config holds it.
pub(crate) fn to_image(h: &HealthConfig) -> skiff_image::HealthConfig {
    skiff_image::HealthConfig {
        test: h.test.clone().unwrap_or_default(),
        interval: h.interval.unwrap_or(0),
        timeout: h.timeout.unwrap_or(0),
        start_period: h.start_period.unwrap_or(0),
        start_interval: h.start_interval.unwrap_or(0),
        retries: h.retries.unwrap_or(0),
    }
}

/// An image's `Healthcheck` as the API shows it.
pub(crate) fn from_image(h: &skiff_image::HealthConfig) -> HealthConfig {
    let set = |n: i64| Some(n).filter(|n| *n != 0);
    HealthConfig {
        test: Some(h.test.clone()).filter(|t| !t.is_empty()),
        interval: set(h.interval),
        timeout: set(h.timeout),
        start_period: set(h.start_period),
        start_interval: set(h.start_interval),
        retries: set(h.retries),
    }
}

/// The container's health check: the request's, with what it leaves unset (an empty test,
/// zero durations) taken from the image's, as Docker merges them at create.
pub(crate) fn merge(
    own: Option<&HealthConfig>,
    image: Option<&skiff_image::HealthConfig>,
) -> Option<HealthConfig> {
    let Some(image) = image else {
        return own.cloned();
    };
    let own = own.cloned().unwrap_or_default();
    let pick =
        |v: Option<i64>, i: i64| Some(v.filter(|n| *n != 0).unwrap_or(i)).filter(|n| *n != 0);
    Some(HealthConfig {
        test: Some(
            own.test
                .clone()
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| image.test.clone()),
        ),
        interval: pick(own.interval, image.interval),
        timeout: pick(own.timeout, image.timeout),
        start_period: pick(own.start_period, image.start_period),
        start_interval: pick(own.start_interval, image.start_interval),
        retries: pick(own.retries, image.retries),
    })
}

fn nanos(v: Option<i64>, default: Duration) -> Duration {
    v.filter(|n| *n > 0)
        .map(|n| Duration::from_nanos(n as u64))
        .unwrap_or(default)
}

/// Applies one probe result; returns the new status when it changed.
pub(crate) fn record(
    health: &mut Health,
    result: HealthcheckResult,
    retries: i64,
    in_start_period: bool,
) -> Option<HealthStatusEnum> {
    let before = health.status;
    let ok = result.exit_code == Some(0);
    let log = health.log.get_or_insert_with(Vec::new);
    log.push(result);
    if log.len() > KEEP_RESULTS {
        log.remove(0);
    }
    if ok {
        health.failing_streak = Some(0);
        health.status = Some(HealthStatusEnum::HEALTHY);
    } else if !(in_start_period && before == Some(HealthStatusEnum::STARTING)) {
        let streak = health.failing_streak.unwrap_or(0) + 1;
        health.failing_streak = Some(streak);
        if streak >= retries {
            health.status = Some(HealthStatusEnum::UNHEALTHY);
        }
    }
    (health.status != before).then_some(health.status).flatten()
}

/// Runs the probe once inside the container.
async fn probe(c: &Container, cmd: &[String], timeout: Duration) -> HealthcheckResult {
    let start = chrono::Utc::now();
    let outcome = tokio::time::timeout(timeout, async {
        let process = super::exec::exec_process(
            c,
            &ExecSpec {
                args: cmd.to_vec(),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
        let exec_id = skiff_core::ids::random_id();
        let request = ExecRequest {
            exec_id: exec_id.clone(),
            process,
            tty: false,
            attach_stdin: false,
            attach_stdout: true,
            attach_stderr: true,
        };
        let client = c.shim();
        let mut stream = client.exec(&request).await.map_err(|e| e.to_string())?;
        let mut raw = Vec::new();
        let _ = (&mut stream)
            .take((MAX_OUTPUT * 2) as u64)
            .read_to_end(&mut raw)
            .await;
        let code = client
            .exec_wait(&exec_id)
            .await
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((code as i64, demux(&raw)))
    })
    .await;
    let (exit_code, output) = match outcome {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => (-1, e),
        Err(_) => (-1, format!("Health check exceeded timeout ({timeout:?})")),
    };
    HealthcheckResult {
        start: Some(start.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        end: Some(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)),
        exit_code: Some(exit_code),
        output: Some(output.chars().take(MAX_OUTPUT).collect()),
    }
}

/// The payload of Docker's multiplexed frames, as text.
fn demux(mut data: &[u8]) -> String {
    let mut out = Vec::new();
    while data.len() >= 8 {
        let len = u32::from_be_bytes([data[4], data[5], data[6], data[7]]) as usize;
        let end = (8 + len).min(data.len());
        out.extend_from_slice(&data[8..end]);
        data = &data[end..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Engine {
    /// Starts probing `c` if it has a health check; the task ends at the container's exit.
    pub(crate) fn spawn_health(&self, c: Arc<Container>) {
        let config = c.rec().config;
        let Some(hc) = config.healthcheck else {
            return;
        };
        let test = hc.test.as_deref().unwrap_or_default();
        let Some(cmd) = probe_command(test, config.shell.as_deref()) else {
            return;
        };
        let Some(engine) = self.arc() else { return };
        let interval = nanos(hc.interval, DEFAULT_INTERVAL);
        let timeout = nanos(hc.timeout, DEFAULT_TIMEOUT);
        let start_period = nanos(hc.start_period, Duration::ZERO);
        let retries = hc.retries.filter(|r| *r > 0).unwrap_or(DEFAULT_RETRIES);
        *c.health.lock().unwrap_or_else(|e| e.into_inner()) = Some(Health {
            status: Some(HealthStatusEnum::STARTING),
            failing_streak: Some(0),
            log: Some(Vec::new()),
        });
        let mut life = c.life.subscribe();
        let exits = life.borrow().exits;
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            let started = Instant::now();
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(interval) => {}
                    _ = life.wait_for(|l| l.exits > exits || l.removed) => return,
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                let result = probe(&c, &cmd, timeout).await;
                if life.borrow().exits > exits {
                    return;
                }
                let changed = {
                    let mut guard = c.health.lock().unwrap_or_else(|e| e.into_inner());
                    let health = guard.get_or_insert_with(Health::default);
                    record(health, result, retries, started.elapsed() < start_period)
                };
                if let Some(status) = changed {
                    let text = serde_json::to_value(status)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string));
                    let action = format!("health_status: {}", text.unwrap_or_default());
                    engine.emit_container(&action, &c, HashMap::new());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(code: i64) -> HealthcheckResult {
        HealthcheckResult {
            exit_code: Some(code),
            ..Default::default()
        }
    }

    #[test]
    fn test_forms() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            probe_command(&v(&["CMD", "true"]), None),
            Some(v(&["true"]))
        );
        assert_eq!(
            probe_command(&v(&["CMD-SHELL", "exit 1"]), None),
            Some(v(&["/bin/sh", "-c", "exit 1"]))
        );
        assert_eq!(
            probe_command(&v(&["CMD-SHELL", "exit 1"]), Some(&v(&["/bin/ash", "-ec"]))),
            Some(v(&["/bin/ash", "-ec", "exit 1"]))
        );
        assert_eq!(probe_command(&v(&["NONE"]), None), None);
        assert_eq!(probe_command(&[], None), None);
    }

    #[test]
    fn the_image_check_fills_what_the_request_leaves_unset() {
        let image = skiff_image::HealthConfig {
            test: vec!["CMD-SHELL".into(), "true".into()],
            interval: 5,
            retries: 2,
            ..Default::default()
        };
        let merged = merge(None, Some(&image)).unwrap();
        assert_eq!(merged.test.as_deref(), Some(&image.test[..]));
        assert_eq!((merged.interval, merged.retries), (Some(5), Some(2)));
        // --health-cmd keeps the image's timings; --no-healthcheck is test NONE.
        let own = HealthConfig {
            test: Some(vec!["CMD".into(), "false".into()]),
            ..Default::default()
        };
        let merged = merge(Some(&own), Some(&image)).unwrap();
        assert_eq!(merged.test, own.test);
        assert_eq!(merged.interval, Some(5));
        let none = HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        };
        assert_eq!(merge(Some(&none), Some(&image)).unwrap().test, none.test);
        assert_eq!(merge(None, None), None);
    }

    #[test]
    fn retries_decide_unhealthy_and_success_resets() {
        let mut h = Health {
            status: Some(HealthStatusEnum::STARTING),
            failing_streak: Some(0),
            log: None,
        };
        // Failures during the start period do not count.
        assert_eq!(record(&mut h, result(1), 2, true), None);
        assert_eq!(record(&mut h, result(1), 2, false), None);
        assert_eq!(
            record(&mut h, result(1), 2, false),
            Some(HealthStatusEnum::UNHEALTHY)
        );
        assert_eq!(
            record(&mut h, result(0), 2, false),
            Some(HealthStatusEnum::HEALTHY)
        );
        assert_eq!(h.failing_streak, Some(0));
        for _ in 0..10 {
            record(&mut h, result(0), 2, false);
        }
        assert_eq!(h.log.as_ref().unwrap().len(), KEEP_RESULTS);
    }

    #[test]
    fn demux_joins_frames() {
        assert_eq!(
            demux(&[1, 0, 0, 0, 0, 0, 0, 2, b'o', b'k', 2, 0, 0, 0, 0, 0, 0, 1, b'!']),
            "ok!"
        );
    }
}
