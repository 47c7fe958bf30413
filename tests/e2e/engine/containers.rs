//! Creating, running, attaching to, waiting for and removing containers, and refused creates.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use futures::StreamExt;
use skiff_engine::models::{
    ContainerCreateBody, ExecConfig, ExecStartConfig, HostConfig, RestartPolicy,
    RestartPolicyNameEnum,
};
use skiff_engine::{Engine, EngineError, LogOptions, WaitCondition};
use tokio::io::AsyncReadExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_creates_leave_nothing_behind() {
    let dirs = Dirs::new();
    let engine = Engine::open(dirs.config()).await.unwrap();
    let err = engine
        .container_create(Some("web"), sh("true"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NoSuchImage(ref i) if i == "skiff-test/busybox:latest"),
        "{err}"
    );
    let archive = skiff_image::testutil::busybox_docker_archive(IMAGE);
    engine.image_load(body_stream(archive)).await.unwrap();
    let cases: Vec<(Option<&str>, ContainerCreateBody, &str)> = vec![
        (
            Some("bad name"),
            sh("true"),
            "Invalid container name (bad name), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        ),
        (
            None,
            ContainerCreateBody {
                host_config: Some(HostConfig {
                    memory: Some(1024),
                    ..Default::default()
                }),
                ..sh("true")
            },
            "Minimum memory limit allowed is 6MB",
        ),
        (
            None,
            ContainerCreateBody {
                host_config: Some(HostConfig {
                    runtime: Some("kata".into()),
                    ..Default::default()
                }),
                ..sh("true")
            },
            "Unknown runtime specified kata",
        ),
        (
            None,
            ContainerCreateBody {
                cmd: None,
                entrypoint: Some(vec!["".into()]),
                ..sh("")
            },
            "No command specified",
        ),
        (
            None,
            ContainerCreateBody {
                host_config: Some(HostConfig {
                    binds: Some(vec!["vol:relative".into()]),
                    ..Default::default()
                }),
                ..sh("true")
            },
            "mount path must be absolute",
        ),
    ];
    for (name, body, message) in cases {
        let err = engine.container_create(name, body, None).await.unwrap_err();
        assert!(
            err.to_string().contains(message),
            "{err} does not contain {message}"
        );
    }
    let left: Vec<_> = std::fs::read_dir(dirs.root.path().join("containers"))
        .unwrap()
        .collect();
    assert!(left.is_empty(), "refused creates left {left:?}");
    assert!(!dirs.root.path().join("volumes/vol").exists());
    assert!(engine
        .container_list(&Default::default())
        .await
        .unwrap()
        .is_empty());
    // A name is reserved once taken.
    let first = engine
        .container_create(Some("web"), sh("true"), None)
        .await
        .unwrap();
    let err = engine
        .container_create(Some("web"), sh("true"), None)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("Conflict. The container name \"/web\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.", first.id)
    );
    engine.container_remove("web", false, true).await.unwrap();
    let dir = dirs.root.path().join("containers").join(&first.id);
    poll("the removed container's directory to go", async || {
        (!dir.exists()).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_attach_wait_logs_and_remove() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let mut events = engine.events(Default::default());
    let created = engine
        .container_create(Some("echo"), sh("echo hello; echo oops >&2; exit 3"), None)
        .await
        .unwrap();
    let id = created.id.clone();
    // docker run: attach, wait, then start.
    let mut attached = engine
        .container_attach(
            "echo",
            skiff_engine::AttachOptions {
                stdout: true,
                stderr: true,
                stream: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(!attached.tty);
    let wait = engine
        .container_wait("echo", WaitCondition::NextExit)
        .await
        .unwrap();
    assert!(engine.container_start("echo").await.unwrap());
    assert_eq!(wait.await.status_code, 3);
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), attached.io.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    // Multiplexed frames: [stream, 0, 0, 0, len BE] + payload.
    let frames = frames(&out);
    assert!(frames.contains(&(1, "hello\n".to_string())), "{frames:?}");
    assert!(frames.contains(&(2, "oops\n".to_string())), "{frames:?}");

    assert_eq!(logs(&engine, &id, true, false).await, "hello\n");
    assert_eq!(logs(&engine, &id, false, true).await, "oops\n");
    let inspect = engine.container_inspect(&id[..12], false).await.unwrap();
    let state = inspect.state.unwrap();
    assert_eq!(state.exit_code, Some(3));
    assert_eq!(state.running, Some(false));
    assert_eq!(inspect.name.as_deref(), Some("/echo"));
    assert!(
        !engine.container_stop(&id, None, None).await.unwrap(),
        "stop of an exited container is a no-op"
    );

    engine.container_remove(&id, false, false).await.unwrap();
    assert!(matches!(
        engine.container_inspect(&id, false).await,
        Err(EngineError::NoSuchContainer(_))
    ));
    // Directories and cgroups go right after the removal answered.
    let dir = dirs.root.path().join("containers").join(&id);
    let cgroups = skiff_runtime::cgroups::dirs(&format!("/{}/{id}", dirs.cgroup_parent)).unwrap();
    poll(
        "the removed container's directory and cgroups to go",
        async || {
            let left: Vec<&PathBuf> = cgroups.iter().filter(|d| d.exists()).collect();
            (!dir.exists() && left.is_empty()).then_some(())
        },
    )
    .await;
    let mut actions = Vec::new();
    while let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(200), events.next()).await {
        actions.push(e.action.unwrap_or_default());
    }
    for want in ["create", "start", "die", "destroy"] {
        assert!(
            actions.iter().any(|a| a == want),
            "no {want} event in {actions:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_escalates_and_restart_policy_counts() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let stubborn = engine
        .container_create(None, sh("trap '' TERM; while true; do sleep 1; done"), None)
        .await
        .unwrap();
    engine.container_start(&stubborn.id).await.unwrap();
    assert!(engine
        .container_stop(&stubborn.id, None, Some(1))
        .await
        .unwrap());
    let state = engine
        .container_inspect(&stubborn.id, false)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!(state.exit_code, Some(137));

    let mut flaky = sh("exit 1");
    flaky.host_config = Some(HostConfig {
        restart_policy: Some(RestartPolicy {
            name: Some(RestartPolicyNameEnum::ON_FAILURE),
            maximum_retry_count: Some(2),
        }),
        ..Default::default()
    });
    let flaky = engine.container_create(None, flaky, None).await.unwrap();
    engine.container_start(&flaky.id).await.unwrap();
    let inspect = poll("two restarts", async || {
        let i = engine.container_inspect(&flaky.id, false).await.unwrap();
        let s = i.state.clone().unwrap();
        (i.restart_count == Some(2) && s.running == Some(false) && s.restarting == Some(false))
            .then_some(i)
    })
    .await;
    assert_eq!(inspect.state.unwrap().exit_code, Some(1));
    engine
        .container_remove(&flaky.id, true, true)
        .await
        .unwrap();

    // Following the log sees lines written later and ends when the container stops.
    let chatty = engine
        .container_create(None, sh("echo a; sleep 1; echo b"), None)
        .await
        .unwrap();
    engine.container_start(&chatty.id).await.unwrap();
    let opts = LogOptions {
        stdout: true,
        stderr: true,
        follow: true,
        ..Default::default()
    };
    let followed = engine
        .container_logs(&chatty.id, opts)
        .await
        .unwrap()
        .stream;
    let lines: Vec<_> = tokio::time::timeout(Duration::from_secs(30), followed.collect::<Vec<_>>())
        .await
        .unwrap();
    let text: String = lines
        .iter()
        .map(|c| String::from_utf8_lossy(&c.data).into_owned())
        .collect();
    assert_eq!(text, "a\nb\n");
    engine
        .container_remove(&chatty.id, false, true)
        .await
        .unwrap();
    engine
        .container_remove(&stubborn.id, true, true)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_options_reach_the_container() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let host_dir = tempfile::Builder::new()
        .prefix("skiff-eng-bind")
        .tempdir()
        .unwrap();
    std::fs::write(host_dir.path().join("f"), "from-host\n").unwrap();
    let script = "id -u; pwd; echo $FOO; hostname; cat /data/f; \
                  grep -c ' /scratch tmpfs' /proc/mounts; \
                  touch /x 2>/dev/null && echo rootfs-rw || echo rootfs-ro; \
                  touch /data/y 2>/dev/null && echo bind-rw || echo bind-ro; \
                  cat /proc/1/cmdline | tr '\\0' ' '; echo; sleep 1000";
    let mut body = sh(script);
    body.user = Some("nobody".into());
    body.working_dir = Some("/tmp".into());
    body.env = Some(vec!["FOO=bar".into()]);
    body.hostname = Some("boxy".into());
    body.host_config = Some(HostConfig {
        binds: Some(vec![
            format!("{}:/data:ro", host_dir.path().display()),
            "skiffvol:/vol".into(),
        ]),
        tmpfs: Some([("/scratch".to_string(), "size=1m".to_string())].into()),
        readonly_rootfs: Some(true),
        memory: Some(64 << 20),
        pids_limit: Some(50),
        init: Some(true),
        ..Default::default()
    });
    let c = engine
        .container_create(Some("opts"), body, None)
        .await
        .unwrap();
    engine.container_start("opts").await.unwrap();
    let out = poll("the script's output", async || {
        let out = logs(&engine, &c.id, true, true).await;
        (out.lines().count() >= 9).then_some(out)
    })
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        &lines[..8],
        [
            "65534",
            "/tmp",
            "bar",
            "boxy",
            "from-host",
            "1",
            "rootfs-ro",
            "bind-ro"
        ],
        "{out}"
    );
    assert!(
        lines[8].contains("docker-init"),
        "pid 1 is not the init: {out}"
    );
    let stats =
        skiff_runtime::cgroups::stats(&format!("/{}/{}", dirs.cgroup_parent, c.id)).unwrap();
    assert_eq!(stats.memory.limit, Some(64 << 20));
    assert_eq!(stats.pids.limit, Some(50));
    let inspect = engine.container_inspect("opts", false).await.unwrap();
    let mounts = inspect.mounts.unwrap();
    assert!(mounts
        .iter()
        .any(|m| m.name.as_deref() == Some("skiffvol") && m.rw == Some(true)));
    engine.container_remove("opts", true, true).await.unwrap();
    // Named volumes outlive their containers.
    let vol = engine.volume_inspect("skiffvol").await.unwrap();
    assert!(Path::new(&vol.mountpoint).is_dir());
    engine.volume_remove("skiffvol", false).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_command_fails_start_like_docker() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let body = |auto_remove: bool| ContainerCreateBody {
        image: Some(IMAGE.into()),
        cmd: Some(vec!["/no/such/binary".into()]),
        host_config: Some(HostConfig {
            auto_remove: Some(auto_remove),
            ..Default::default()
        }),
        ..Default::default()
    };
    let kept = engine
        .container_create(None, body(false), None)
        .await
        .unwrap();
    let err = engine.container_start(&kept.id).await.unwrap_err();
    assert!(matches!(err, EngineError::StartFailed(_)), "{err:?}");
    assert_eq!(
        skiff_core::HasKind::kind(&err),
        skiff_core::ErrorKind::InvalidArgument,
        "{err}"
    );
    let state = engine
        .container_inspect(&kept.id, false)
        .await
        .unwrap()
        .state
        .unwrap();
    assert_eq!((state.exit_code, state.running), (Some(127), Some(false)));
    assert!(!state.error.unwrap().is_empty());
    engine
        .container_remove(&kept.id, false, true)
        .await
        .unwrap();

    // With --rm the failed container is removed, and a waiter for its removal wakes up.
    let gone = engine
        .container_create(None, body(true), None)
        .await
        .unwrap();
    let removed = engine
        .container_wait(&gone.id, WaitCondition::Removed)
        .await
        .unwrap();
    assert!(engine.container_start(&gone.id).await.is_err());
    tokio::time::timeout(Duration::from_secs(10), removed)
        .await
        .unwrap();
    assert!(matches!(
        engine.container_inspect(&gone.id, false).await,
        Err(EngineError::NoSuchContainer(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_follow_the_probe() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    let mut body = sh("sleep 1000");
    body.healthcheck = Some(skiff_engine::models::HealthConfig {
        test: Some(vec!["CMD-SHELL".into(), "cat /tmp/ok".into()]),
        interval: Some(100_000_000),
        retries: Some(1),
        ..Default::default()
    });
    let c = engine
        .container_create(Some("doc"), body, None)
        .await
        .unwrap();
    engine.container_start("doc").await.unwrap();
    let status = async || {
        let i = engine.container_inspect("doc", false).await.unwrap();
        i.state.unwrap().health.unwrap().status.unwrap()
    };
    use skiff_engine::models::HealthStatusEnum;
    poll("unhealthy", async || {
        (status().await == HealthStatusEnum::UNHEALTHY).then_some(())
    })
    .await;
    let exec = engine
        .exec_create(
            "doc",
            ExecConfig {
                cmd: Some(vec!["touch".into(), "/tmp/ok".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    engine
        .exec_start(
            &exec,
            &ExecStartConfig {
                detach: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    poll("healthy", async || {
        (status().await == HealthStatusEnum::HEALTHY).then_some(())
    })
    .await;
    let listed = engine.container_list(&Default::default()).await.unwrap();
    assert!(
        listed[0].status.as_deref().unwrap().ends_with(" (healthy)"),
        "{:?}",
        listed[0].status
    );
    engine.container_remove(&c.id, true, true).await.unwrap();
}

/// The shim deletes the container from the runtime only after reporting its exit, so a start
/// right after an exit must wait for that delete instead of failing with "already exists".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_right_after_exit_does_not_collide_in_the_runtime() {
    let dirs = Dirs::new();
    let engine = engine_with_image(&dirs).await;
    for runtime in ["runc", "embedded"] {
        // Restarted by its policy, with Docker's short first backoffs.
        let mut always = sh("echo ran");
        always.host_config = Some(HostConfig {
            runtime: Some(runtime.into()),
            restart_policy: Some(RestartPolicy {
                name: Some(RestartPolicyNameEnum::ALWAYS),
                maximum_retry_count: None,
            }),
            ..Default::default()
        });
        let always = engine.container_create(None, always, None).await.unwrap();
        engine.container_start(&always.id).await.unwrap();
        let inspect = poll("three restarts", async || {
            let i = engine.container_inspect(&always.id, false).await.unwrap();
            (i.restart_count >= Some(3)).then_some(i)
        })
        .await;
        let error = inspect.state.unwrap().error.unwrap_or_default();
        assert!(error.is_empty(), "{runtime}: {error}");
        let ran = logs(&engine, &always.id, true, false).await;
        assert!(ran.matches("ran\n").count() >= 3, "{runtime}: {ran:?}");
        engine
            .container_remove(&always.id, true, true)
            .await
            .unwrap();

        // Started again by hand the moment each run is reported.
        let mut quick = sh("exit 3");
        quick.host_config = Some(HostConfig {
            runtime: Some(runtime.into()),
            ..Default::default()
        });
        let quick = engine.container_create(None, quick, None).await.unwrap();
        for _ in 0..15 {
            let wait = engine
                .container_wait(&quick.id, WaitCondition::NextExit)
                .await
                .unwrap();
            engine.container_start(&quick.id).await.unwrap();
            assert_eq!(wait.await.status_code, 3, "{runtime}");
        }
        engine
            .container_remove(&quick.id, true, true)
            .await
            .unwrap();
    }
}
