//! Mount hubs (ADR 0036): a shim given a node's pod directory leaves the other pods' mounts
//! under it out of its mount namespace.

use super::*;

/// Detaches the mounts of a test's mount hub (deepest first), also when the test fails.
struct HubMounts(PathBuf);

impl Drop for HubMounts {
    fn drop(&mut self) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut points: Vec<PathBuf> = mountinfo
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .map(PathBuf::from)
            .filter(|p| p.starts_with(&self.0))
            .collect();
        points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for p in points {
            let _ = nix::mount::umount2(&p, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn mount_tmpfs(name: &str, at: &Path) -> Result<()> {
    std::fs::create_dir_all(at)?;
    nix::mount::mount(
        Some(name),
        at,
        Some("tmpfs"),
        nix::mount::MsFlags::empty(),
        Some("size=1m"),
    )
    .with_context(|| format!("mount a tmpfs on {}", at.display()))
}

/// A shim given a mount hub (a node's pod directory) leaves the other pods' mounts under it
/// out of its mount namespace, while its container still gets its own volume (and what is
/// mounted inside that) from under the hub.
pub(super) async fn run_a_mount_hub_keeps_only_the_containers_own_mounts(
    runtime: &str,
) -> Result<()> {
    let hubs = tempfile::Builder::new()
        .prefix("skiff-e2e-shim-hub-")
        .tempdir()?;
    let hub = hubs.path().join("pods");
    let _mounts = HubMounts(hubs.path().to_path_buf());
    // The run dir a file system of its own (a tmpfs /run): the hub is a bind on top of it.
    mount_tmpfs(&format!("skiff-hub-run-{runtime}"), &hub)?;
    shim::make_mount_hub(&hub)?;
    // Made again (a restarted node), the hub stays one mount.
    let mounts_at_hub = || -> Result<usize> {
        let want = hub.to_string_lossy().into_owned();
        Ok(std::fs::read_to_string("/proc/self/mountinfo")?
            .lines()
            .filter(|l| l.split(' ').nth(4) == Some(want.as_str()))
            .count())
    };
    let made = mounts_at_hub()?;
    shim::make_mount_hub(&hub)?;
    ensure!(mounts_at_hub()? == made, "the hub was stacked again");
    // Named after the runtime: the other runtime's case may run at the same time.
    let [own, nested, other] =
        ["own", "nested", "other"].map(|m| format!("skiff-hub-{m}-{runtime}"));
    mount_tmpfs(&own, &hub.join("own/volume"))?;
    mount_tmpfs(&nested, &hub.join("own/volume/inner"))?;
    mount_tmpfs(&other, &hub.join("other/volume"))?;
    std::fs::write(hub.join("own/volume/hello"), "from the volume\n")?;
    std::fs::write(hub.join("own/volume/inner/hello"), "from inside it\n")?;
    std::fs::write(hub.join("own/plain"), "a plain file\n")?;
    let mounts = vec![
        spec::MountSpec::Bind {
            source: hub.join("own/volume"),
            destination: "/vol".into(),
            read_only: false,
        },
        spec::MountSpec::Bind {
            source: hub.join("own/plain"),
            destination: "/plain".into(),
            read_only: true,
        },
    ];
    let script = "cat /vol/hello /vol/inner/hello /plain; echo written > /vol/out; sleep 1000";
    let mut fx = Fixture::build(runtime, &["sh", "-c", script], false, None, mounts)?;
    fx.mount_hubs = vec![hub.clone()];
    let client = fx.launch().await?;
    client.start().await?;
    let shim_pid = fx.shim_pid().context("no shim.pid")?;
    let shim_mounts = std::fs::read_to_string(format!("/proc/{shim_pid}/mountinfo"))?;
    ensure!(
        shim_mounts.contains(&own) && shim_mounts.contains(&nested),
        "the container's own volume is missing from its shim's mounts:\n{shim_mounts}"
    );
    ensure!(
        !shim_mounts.contains(&other),
        "another pod's mount is in the shim's mount table:\n{shim_mounts}"
    );
    let out = hub.join("own/volume/out");
    let deadline = std::time::Instant::now() + DEADLINE;
    while !out.exists() {
        ensure!(
            std::time::Instant::now() < deadline,
            "the container never wrote to /vol"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ensure!(std::fs::read_to_string(&out)? == "written\n");
    let want = "from the volume\nfrom inside it\na plain file\n";
    loop {
        let logged: String = fx
            .log_entries()?
            .iter()
            .filter_map(|e| e["log"].as_str().map(str::to_string))
            .collect();
        if logged == want {
            break;
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "container output {logged:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The host's table still has every mount.
    let host = std::fs::read_to_string("/proc/self/mountinfo")?;
    ensure!(host.contains(&other));
    client.kill(9, true).await?;
    within("wait", client.wait()).await??;
    Ok(())
}
