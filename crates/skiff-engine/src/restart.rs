//! Restart policies (`--restart no|on-failure[:N]|always|unless-stopped`): validation and the
//! decisions taken at a container's exit and at daemon start.

use std::time::Duration;

use bollard_stubs::models::{RestartPolicy, RestartPolicyNameEnum};

use crate::error::{EngineError, Result};

/// The first delay before a restart; doubled for each consecutive quick failure.
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A container that ran this long resets the backoff (Docker: 10 s).
pub(crate) const RAN_LONG_ENOUGH: Duration = Duration::from_secs(10);

/// The policy in a form that is easy to decide on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Policy {
    No,
    OnFailure { max_retries: i64 },
    Always,
    UnlessStopped,
}

impl Policy {
    /// Validates a create request's policy with Docker's messages.
    pub(crate) fn from_wire(p: Option<&RestartPolicy>, auto_remove: bool) -> Result<Policy> {
        let (name, count) = match p {
            Some(p) => (
                p.name.unwrap_or(RestartPolicyNameEnum::EMPTY),
                p.maximum_retry_count.unwrap_or(0),
            ),
            None => (RestartPolicyNameEnum::EMPTY, 0),
        };
        let policy = match name {
            RestartPolicyNameEnum::EMPTY | RestartPolicyNameEnum::NO => Policy::No,
            RestartPolicyNameEnum::ALWAYS => Policy::Always,
            RestartPolicyNameEnum::UNLESS_STOPPED => Policy::UnlessStopped,
            RestartPolicyNameEnum::ON_FAILURE => {
                if count < 0 {
                    return Err(EngineError::invalid(
                        "invalid restart policy: maximum retry count cannot be negative",
                    ));
                }
                Policy::OnFailure { max_retries: count }
            }
        };
        if count != 0 && !matches!(policy, Policy::OnFailure { .. }) {
            return Err(EngineError::invalid(
                "invalid restart policy: maximum retry count can only be used with 'on-failure'",
            ));
        }
        if auto_remove && policy != Policy::No {
            return Err(EngineError::invalid(
                "conflicting options: cannot specify both --restart and --rm",
            ));
        }
        Ok(policy)
    }

    /// Whether a container that just exited with `exit_code` is restarted.
    pub(crate) fn restart_after_exit(
        self,
        exit_code: i64,
        restart_count: i64,
        manually_stopped: bool,
    ) -> bool {
        if manually_stopped {
            return false;
        }
        match self {
            Policy::No => false,
            Policy::Always | Policy::UnlessStopped => true,
            Policy::OnFailure { max_retries } => {
                exit_code != 0 && (max_retries == 0 || restart_count < max_retries)
            }
        }
    }

    /// Whether a container that is not running is started when the daemon starts.
    pub(crate) fn start_with_daemon(self, manually_stopped: bool) -> bool {
        match self {
            Policy::Always => true,
            Policy::UnlessStopped => !manually_stopped,
            Policy::No | Policy::OnFailure { .. } => false,
        }
    }
}

/// The delay before the `attempt`-th consecutive quick restart (0-based).
pub(crate) fn backoff(attempt: u32) -> Duration {
    BACKOFF_START
        .saturating_mul(1u32 << attempt.min(16))
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(name: RestartPolicyNameEnum, count: i64) -> RestartPolicy {
        RestartPolicy {
            name: Some(name),
            maximum_retry_count: Some(count),
        }
    }

    #[test]
    fn on_failure_counts_retries() {
        let p =
            Policy::from_wire(Some(&wire(RestartPolicyNameEnum::ON_FAILURE, 2)), false).unwrap();
        assert!(p.restart_after_exit(1, 0, false));
        assert!(p.restart_after_exit(1, 1, false));
        assert!(!p.restart_after_exit(1, 2, false));
        assert!(!p.restart_after_exit(0, 0, false));
        let unlimited =
            Policy::from_wire(Some(&wire(RestartPolicyNameEnum::ON_FAILURE, 0)), false).unwrap();
        assert!(unlimited.restart_after_exit(3, 100, false));
    }

    #[test]
    fn explicit_stop_wins_until_daemon_restart_for_always() {
        assert!(!Policy::Always.restart_after_exit(0, 0, true));
        assert!(Policy::Always.restart_after_exit(0, 5, false));
        assert!(Policy::Always.start_with_daemon(true));
        assert!(!Policy::UnlessStopped.start_with_daemon(true));
        assert!(Policy::UnlessStopped.start_with_daemon(false));
        assert!(!Policy::No.restart_after_exit(1, 0, false));
    }

    #[test]
    fn invalid_policies_use_dockers_words() {
        let e =
            Policy::from_wire(Some(&wire(RestartPolicyNameEnum::ALWAYS, 3)), false).unwrap_err();
        assert!(e
            .to_string()
            .contains("maximum retry count can only be used with 'on-failure'"));
        let e = Policy::from_wire(Some(&wire(RestartPolicyNameEnum::ON_FAILURE, -1)), false)
            .unwrap_err();
        assert!(e.to_string().contains("cannot be negative"));
        assert!(Policy::from_wire(Some(&wire(RestartPolicyNameEnum::ALWAYS, 0)), true).is_err());
        assert_eq!(Policy::from_wire(None, true).unwrap(), Policy::No);
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(1), Duration::from_millis(200));
        assert_eq!(backoff(30), BACKOFF_MAX);
    }
}
