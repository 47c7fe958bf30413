//! What `docker run` reports when the container cannot start.

use crate::common::{stderr, Daemon, BUSYBOX};

#[test]
fn missing_command_exits_127_with_one_clear_error_on_every_runtime() {
    let d = Daemon::start();
    for runtime in ["embedded", "runc"] {
        let out = d.docker(&["run", "--rm", "--runtime", runtime, BUSYBOX, "/nonexistent"]);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(127), "{runtime}: {err}");
        assert!(err.contains("/nonexistent"), "{runtime}: {err}");
        assert!(
            !err.contains("failed: runc create failed"),
            "{runtime}: {err}"
        );
    }
    assert_eq!(
        d.docker_ok(&["ps", "-aq"]),
        "",
        "failed --rm containers are gone"
    );
}
