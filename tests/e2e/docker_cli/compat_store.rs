//! Images, volumes, `docker cp` errors and events as the docker CLI shows them against skiff,
//! where they once differed from dockerd: `docker images REPO` lists that repository's tags
//! only, `image prune -a` honours its filters, `volume rm -f` ignores a missing volume but
//! never removes one in use, `volume ls` name filters are regular expressions, event JSON
//! carries the fields API versions before 1.52 have (`status`, `id`, `from`).

use crate::common::{stderr, stdout, Daemon, BUSYBOX};

fn lines(out: &str) -> Vec<String> {
    let mut v: Vec<String> = out.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn images_reference_filter_lists_only_the_matching_tags() {
    let d = Daemon::start();
    d.docker_ok(&["tag", BUSYBOX, "other:1"]);
    d.docker_ok(&["tag", BUSYBOX, "localhost:5000/team/app:2"]);
    let tags = |args: &[&str]| {
        let mut all = vec!["images", "--format", "{{.Repository}}:{{.Tag}}"];
        all.extend_from_slice(args);
        lines(&d.docker_ok(&all))
    };
    assert_eq!(tags(&["busybox"]), ["busybox:latest"]);
    assert_eq!(tags(&["other"]), ["other:1"]);
    assert_eq!(tags(&["--filter", "reference=oth*:1"]), ["other:1"]);
    assert_eq!(
        tags(&["--filter", "reference=docker.io/library/busybox"]),
        ["busybox:latest"]
    );
    assert_eq!(
        tags(&["--filter", "reference=localhost:5000/team/*"]),
        ["localhost:5000/team/app:2"]
    );
    assert_eq!(tags(&["nosuch"]), Vec::<String>::new());
    assert_eq!(tags(&[]).len(), 3);
    let out = d.docker(&["images", "--filter", "dangling=bogus"]);
    assert!(
        !out.status.success() && stderr(&out).contains("invalid filter 'dangling=[bogus]'"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn image_prune_all_keeps_what_its_filters_exclude() {
    let d = Daemon::start();
    d.docker_ok(&["tag", BUSYBOX, "spare:1"]);
    let out = d.docker_ok(&["image", "prune", "-a", "-f", "--filter", "label=nosuch"]);
    assert!(!out.contains("untagged"), "{out}");
    // The test image was made in 2024: not before 2020, but more than an hour ago.
    let out = d.docker_ok(&[
        "image",
        "prune",
        "-a",
        "-f",
        "--filter",
        "until=2020-01-01T00:00:00Z",
    ]);
    assert!(!out.contains("untagged"), "{out}");
    let tags = lines(&d.docker_ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"]));
    assert_eq!(tags, ["busybox:latest", "spare:1"]);
    let out = d.docker_ok(&["image", "prune", "-a", "-f", "--filter", "until=1h"]);
    assert!(out.contains("untagged: spare:1"), "{out}");
    assert_eq!(d.docker_ok(&["images", "-q"]), "");
}

#[test]
fn volume_rm_force_and_name_filters() {
    let d = Daemon::start();
    let out = d.docker(&["volume", "rm", "-f", "nosuch"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "nosuch\n");
    d.docker_ok(&["volume", "create", "data"]);
    d.docker_ok(&["volume", "create", "data2"]);
    d.docker_ok(&[
        "run", "-d", "--name", "user", "-v", "data:/d", BUSYBOX, "sleep", "300",
    ]);
    let out = d.docker(&["volume", "rm", "-f", "data"]);
    assert!(!out.status.success(), "an in-use volume stays");
    assert!(
        stderr(&out).contains("volume is in use"),
        "{}",
        stderr(&out)
    );
    let names = |filter: &str| lines(&d.docker_ok(&["volume", "ls", "-q", "--filter", filter]));
    assert_eq!(names("name=data"), ["data", "data2"]);
    assert_eq!(names("name=^data$"), ["data"]);
    assert_eq!(names("dangling=true"), ["data2"]);
}

#[test]
fn cp_errors_name_the_container_as_given_and_commit_changes_are_lowercase() {
    let d = Daemon::start();
    d.docker_ok(&["create", "--name", "box", BUSYBOX, "true"]);
    let out = d.docker(&["cp", "box:/nonexist", d.dir().to_str().expect("utf-8")]);
    assert!(
        stderr(&out).contains("Could not find the file /nonexist in container box"),
        "{}",
        stderr(&out)
    );
    let out = d.docker(&["commit", "-c", "BOGUS x", "box", "img:1"]);
    assert!(
        stderr(&out).contains("bogus is not a valid change command"),
        "{}",
        stderr(&out)
    );
    // The image's Comment is the commit message, as dockerd shows it; none for busybox.
    d.docker_ok(&["commit", "-m", "fixed it", "box", "img:2"]);
    let comment = |image: &str| d.docker_ok(&["image", "inspect", "-f", "[{{.Comment}}]", image]);
    assert_eq!(comment("img:2"), "[fixed it]");
    assert_eq!(comment(BUSYBOX), "[]");
}

#[test]
fn events_carry_the_legacy_status_id_and_from_fields() {
    let d = Daemon::start();
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_secs()
    };
    let since = now().to_string();
    d.docker_ok(&["run", "--name", "ev", BUSYBOX, "true"]);
    d.docker_ok(&["tag", BUSYBOX, "evtag:1"]);
    let until = (now() + 1).to_string();
    let events = d.docker_ok(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--format",
        "{{json .}}",
    ]);
    let events: Vec<serde_json::Value> = events
        .lines()
        .map(|l| serde_json::from_str(l).expect("event JSON"))
        .collect();
    let die = events
        .iter()
        .find(|e| e["Type"] == "container" && e["Action"] == "die")
        .unwrap_or_else(|| panic!("a die event in {events:?}"));
    assert_eq!(die["status"], "die");
    assert_eq!(
        die["from"], BUSYBOX,
        "the image as the container was created from it"
    );
    assert_eq!(die["id"], die["Actor"]["ID"]);
    let tag = events
        .iter()
        .find(|e| e["Type"] == "image" && e["Action"] == "tag")
        .unwrap_or_else(|| panic!("a tag event in {events:?}"));
    assert_eq!(tag["status"], "tag");
    assert_eq!(tag["Actor"]["Attributes"]["name"], "evtag:1");
}

#[test]
fn rmi_conflicts_name_the_container_and_a_running_ones_image_stays() {
    let d = Daemon::start();
    let image = d.docker_ok(&["image", "inspect", "-f", "{{.Id}}", BUSYBOX]);
    let image = image.trim();
    let image12 = &image["sha256:".len()..][..12];
    let stopped = d.docker_ok(&["create", BUSYBOX, "true"]);
    let stopped12 = &stopped.trim()[..12];
    let out = d.docker(&["rmi", "busybox"]);
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: conflict: unable to remove repository reference \"busybox\" (must force) - container {stopped12} is using its referenced image {image12}")
    );
    let out = d.docker(&["rmi", image12]);
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: conflict: unable to delete {image12} (must be forced) - image is being used by stopped container {stopped12}")
    );
    let running = d.docker_ok(&["run", "-d", BUSYBOX, "sleep", "300"]);
    let running12 = &running.trim()[..12];
    let out = d.docker(&["rmi", "-f", image12]);
    assert_eq!(
        stderr(&out).trim(),
        format!("Error response from daemon: conflict: unable to delete {image12} (cannot be forced) - image is being used by running container {running12}")
    );
    // Forcing the last name away only untags the image a running container uses.
    let out = d.docker_ok(&["rmi", "-f", "busybox"]);
    assert_eq!(out.trim(), "Untagged: busybox:latest");
    let left = d.docker_ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(left.trim(), image);
}

/// Bytes of regular files and symlink targets in the test image's one layer: what dockerd
/// reports as its size (`du -b` of the unpacked layer).
fn busybox_unpacked_bytes() -> u64 {
    let layer = skiff_image::testutil::busybox_rootfs_tar();
    let mut archive = tar::Archive::new(layer.as_slice());
    let mut total = 0;
    for entry in archive.entries().expect("a tar") {
        let entry = entry.expect("a tar entry");
        match entry.header().entry_type() {
            tar::EntryType::Regular => total += entry.header().size().expect("entry size"),
            tar::EntryType::Symlink => {
                total += entry.link_name_bytes().expect("a link target").len() as u64
            }
            _ => {}
        }
    }
    total
}

#[test]
fn image_size_is_what_its_layers_hold_unpacked_before_and_after_a_run() {
    let d = Daemon::start();
    let want = busybox_unpacked_bytes().to_string();
    let size = || d.docker_ok(&["image", "inspect", "-f", "{{.Size}}", BUSYBOX]);
    // Loaded, never unpacked: counted from the layer.
    assert_eq!(size(), want);
    d.docker_ok(&["run", "--rm", BUSYBOX, "true"]);
    // Unpacked by the run: the same figure.
    assert_eq!(size(), want);
    let listed = d.docker_ok(&[
        "images",
        "--format",
        "{{.Repository}} {{.Size}}",
        "--filter",
        "reference=busybox",
    ]);
    // The CLI shows three significant digits in decimal units (`1.98MB`).
    let mb = busybox_unpacked_bytes() as f64 / 1e6;
    let shown: f64 = listed
        .strip_prefix("busybox ")
        .and_then(|s| s.strip_suffix("MB"))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{listed}"));
    assert!((shown - mb).abs() < 0.01, "{listed} for {mb} MB");
}
