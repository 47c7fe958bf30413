//! `docker attach`, `docker start -a` and the attach endpoint: multiplexed framing, log
//! replay and stopped containers.

use crate::common::{self, stderr, stdout, Daemon, BUSYBOX};
use crate::LONG;

/// Splits a multiplexed stream into (stream, text) frames; a partial frame at the end is left
/// out.
fn frames(mut rest: &[u8]) -> Vec<(u8, String)> {
    let mut out = Vec::new();
    while rest.len() >= 8 {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        if rest.len() < 8 + len {
            break;
        }
        out.push((
            rest[0],
            String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
        ));
        rest = &rest[8 + len..];
    }
    out
}

#[test]
fn attach_without_upgrade_streams_multiplexed_output() {
    let d = Daemon::start();
    let script = "while true; do echo out; echo err >&2; sleep 0.2; done";
    let id = d.docker_ok(&["run", "-d", BUSYBOX, "sh", "-c", script]);
    let path = format!("/containers/{id}/attach?stream=1&stdout=1&stderr=1");
    let wanted =
        |f: &[(u8, String)]| f.contains(&(1, "out\n".into())) && f.contains(&(2, "err\n".into()));
    let reply = d
        .http_until("POST", &path, None, |body| wanted(&frames(body)))
        .unwrap();
    assert_eq!(reply.status, 200);
    assert!(wanted(&frames(&reply.body)), "{:?}", frames(&reply.body));
}

#[test]
fn attach_replays_the_log_and_start_a_of_an_exited_container_returns() {
    let d = Daemon::start();
    let out = d.docker(&["run", "--name", "once", BUSYBOX, "echo", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = d.inspect("once", "{{.Id}}");

    // logs=1 replays what the container printed; without stream it ends right after.
    let path = format!("/containers/{id}/attach?logs=1&stream=0&stdout=1&stderr=1");
    let reply = d.http("POST", &path, None).unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(frames(&reply.body), [(1, "hello\n".to_string())]);

    // The CLI refuses to attach to a stopped container, like Docker's.
    let out = common::run_with_timeout(d.docker_cmd(&["attach", "once"]), LONG);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("You cannot attach to a stopped container, start it first"),
        "{}",
        stderr(&out)
    );

    // `start -a` attaches before starting: prints the new run's output once and returns.
    let out = common::run_with_timeout(d.docker_cmd(&["start", "-a", "once"]), LONG);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "hello\n");
}
