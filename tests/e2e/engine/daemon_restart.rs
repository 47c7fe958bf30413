//! Public-API tests of exec, `docker cp`, export, top and stats, and of what survives a
//! daemon restart (running containers are re-adopted; `--restart always` brings back one that
//! died meanwhile).

use std::path::PathBuf;
use std::time::Duration;

use crate::common::*;
use futures::StreamExt;
use skiff_engine::models::{ExecConfig, HostConfig, RestartPolicy, RestartPolicyNameEnum};
use skiff_engine::{Engine, EngineError, WaitCondition};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_archive_and_daemon_restart() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let c = engine
        .container_create(Some("box"), sh("echo started; sleep 1000"), None)
        .await
        .unwrap();
    engine.container_start("box").await.unwrap();

    let exec = engine
        .exec_create(
            "box",
            ExecConfig {
                cmd: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    "echo from-exec; exit 5".into(),
                ]),
                attach_stdout: Some(true),
                attach_stderr: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let mut attached = engine
        .exec_start(&exec, &Default::default())
        .await
        .unwrap()
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), attached.io.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    assert!(out.windows(9).any(|w| w == b"from-exec"), "{out:?}");
    assert_eq!(engine.exec_inspect(&exec).await.unwrap().exit_code, Some(5));

    // A resize sent before the exec has started (the CLI sends it right after the start
    // request) waits for the process and reaches its terminal.
    let probe = "for i in $(seq 100); do s=$(stty size); [ \"$s\" = \"7 33\" ] && break; \
                 usleep 20000; done; echo \"size=$s\"";
    let exec = engine
        .exec_create(
            "box",
            ExecConfig {
                cmd: Some(vec!["sh".into(), "-c".into(), probe.into()]),
                attach_stdout: Some(true),
                tty: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let start = Default::default();
    let (resized, started) = tokio::join!(
        engine.exec_resize(&exec, 7, 33),
        engine.exec_start(&exec, &start)
    );
    resized.unwrap();
    let mut attached = started.unwrap().unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), attached.io.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let out = String::from_utf8_lossy(&out);
    assert!(out.contains("size=7 33"), "{out}");

    // cp into and out of the running container.
    let mut tar = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    tar.append_data(&mut h, "note.txt", &b"hi\n"[..]).unwrap();
    engine
        .container_archive_put("box", "/tmp", body_stream(tar.into_inner().unwrap()), false)
        .await
        .unwrap();
    let (stat, stream) = engine
        .container_archive_get("box", "/tmp/note.txt")
        .await
        .unwrap();
    assert_eq!((stat.name.as_str(), stat.size), ("note.txt", 3));
    let bytes: Vec<u8> = stream.map(|b| b.unwrap().to_vec()).concat().await;
    let mut archive = tar::Archive::new(&bytes[..]);
    let names: Vec<String> = archive
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["note.txt"]);
    assert!(matches!(
        engine
            .container_archive_stat("box", "/../../etc/shadow")
            .await,
        Err(EngineError::NoSuchPath { .. })
    ));

    // export: the whole filesystem, including what cp put there.
    let exported: Vec<u8> = engine
        .container_export("box")
        .await
        .unwrap()
        .map(|b| b.unwrap().to_vec())
        .concat()
        .await;
    let names: Vec<String> = tar::Archive::new(&exported[..])
        .entries()
        .unwrap()
        .map(|e| {
            e.unwrap()
                .path()
                .unwrap()
                .to_string_lossy()
                .trim_start_matches("./")
                .to_string()
        })
        .collect();
    for want in ["bin/busybox", "tmp/note.txt"] {
        assert!(names.iter().any(|n| n == want), "{want} not exported");
    }

    // top and stats read the container's cgroup.
    let top = engine.container_top("box", None).await.unwrap();
    assert!(top.titles.unwrap().contains(&"PID".to_string()));
    let rows = top.processes.unwrap();
    assert!(
        rows.iter()
            .any(|r| r.last().is_some_and(|cmd| cmd.contains("sleep 1000"))),
        "{rows:?}"
    );
    let stats: Vec<_> = engine
        .container_stats("box", false, true)
        .await
        .unwrap()
        .collect()
        .await;
    let stats = &stats[0];
    assert!(stats.memory_stats.as_ref().unwrap().usage.unwrap() > 0);
    assert!(stats.pids_stats.as_ref().unwrap().current.unwrap() >= 1);
    assert_eq!(stats.name.as_deref(), Some("/box"));

    // The daemon goes away and comes back: the container keeps running and is re-adopted.
    let pid = engine
        .container_inspect("box", false)
        .await
        .unwrap()
        .state
        .unwrap()
        .pid
        .unwrap();
    // A removal cut short by the daemon's end: the record is gone, its directories are not.
    let cut = engine
        .container_create(Some("cut"), sh("true"), None)
        .await
        .unwrap();
    let exited = engine
        .container_wait("cut", WaitCondition::NextExit)
        .await
        .unwrap();
    engine.container_start("cut").await.unwrap();
    assert_eq!(exited.await.status_code, 0);
    let cut_dir = dirs.root.path().join("containers").join(&cut.id);
    let cut_state = dirs.state.path().join("c").join(&cut.id[..16]);
    assert!(cut_state.exists());
    std::fs::remove_file(cut_dir.join("config.json")).unwrap();

    engine.shutdown().await;
    drop(engine);
    let engine = Engine::open(dirs.config()).await.unwrap();
    assert!(
        !cut_dir.exists() && !cut_state.exists(),
        "the next start sweeps what the cut-short removal left"
    );
    let state = engine
        .container_inspect("box", false)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!((state.running, state.pid), (Some(true), Some(pid)));
    assert!(logs(&engine, "box", true, true).await.contains("started"));
    let wait = engine
        .container_wait("box", WaitCondition::NotRunning)
        .await
        .unwrap();
    engine.container_kill("box", Some("KILL")).await.unwrap();
    assert_eq!(wait.await.status_code, 137);
    engine.container_remove(&c.id, false, true).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_policy_restarts_a_container_that_died_while_the_daemon_was_down() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let mut body = sh("sleep 1000");
    body.host_config = Some(HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ALWAYS),
            maximum_retry_count: None,
        }),
        ..Default::default()
    });
    let c = engine
        .container_create(Some("phoenix"), body, None)
        .await
        .unwrap();
    engine.container_start("phoenix").await.unwrap();
    let pid = engine
        .container_inspect("phoenix", false)
        .await
        .unwrap()
        .state
        .unwrap()
        .pid
        .unwrap();
    engine.shutdown().await;
    drop(engine);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    poll("the container to die", async || {
        (!proc_dir.exists()).then_some(())
    })
    .await;

    let engine = Engine::open(dirs.config()).await.unwrap();
    let state = poll("the restart", async || {
        let i = engine.container_inspect("phoenix", false).await.unwrap();
        let s = i.state.unwrap();
        (i.restart_count == Some(1) && s.running == Some(true)).then_some(s)
    })
    .await;
    assert_ne!(state.pid, Some(pid));
    engine.container_remove(&c.id, true, true).await.unwrap();
}
