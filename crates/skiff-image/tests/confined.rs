//! The confined extractor and writer on trees someone else controls (a running container):
//! symlinks resolve inside the root and never out of it, also while the tree changes under
//! the copy (the race behind CVE-2018-15664).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use common::{Layer, Sandbox};
use skiff_image::confined::{self, Policy};

const COPY: Policy = Policy::Copy {
    no_overwrite_dir_non_dir: false,
};

fn copy_into(
    sb: &Sandbox,
    dest: &str,
    archive: Vec<u8>,
    policy: Policy,
) -> skiff_image::Result<u64> {
    let root = confined::open_root(&sb.dest).unwrap();
    confined::extract(archive.as_slice(), &root, Path::new(dest), policy)
}

#[test]
fn copy_through_a_symlink_to_slash_lands_in_the_root() {
    let sb = Sandbox::new();
    symlink("/", sb.dest.join("to-root")).unwrap();
    symlink("../../..", sb.dest.join("up")).unwrap();
    let outside = sb.outside.to_str().unwrap();
    symlink(outside, sb.dest.join("to-host-dir")).unwrap();
    let archive = Layer::new()
        .file("to-root/etc/a", "a")
        .file("up/b", "b")
        .build();
    copy_into(&sb, "/", archive, COPY).unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("etc/a")).unwrap(), "a");
    assert_eq!(fs::read_to_string(sb.dest.join("b")).unwrap(), "b");
    // A link naming a host directory names that path in the root: dangling there, so the
    // entry is refused (as in Docker); once the root has it, the file lands there.
    let through_host_link = || Layer::new().file("to-host-dir/c", "c").build();
    assert!(copy_into(&sb, "/", through_host_link(), COPY).is_err());
    let mirror = sb.dest.join(outside.trim_start_matches('/'));
    fs::create_dir_all(&mirror).unwrap();
    copy_into(&sb, "/", through_host_link(), COPY).unwrap();
    assert_eq!(fs::read_to_string(mirror.join("c")).unwrap(), "c");
    assert!(
        sb.outside_entries().is_empty(),
        "{:?}",
        sb.outside_entries()
    );
}

#[test]
fn copy_to_a_destination_reached_through_symlinks_stays_in_the_root() {
    let sb = Sandbox::new();
    fs::create_dir(sb.dest.join("tmp")).unwrap();
    symlink("/", sb.dest.join("tmp/root")).unwrap();
    symlink("../../../../../tmp", sb.dest.join("climb")).unwrap();
    copy_into(&sb, "/tmp/root", Layer::new().file("x", "1").build(), COPY).unwrap();
    copy_into(&sb, "/climb", Layer::new().file("y", "2").build(), COPY).unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("x")).unwrap(), "1");
    assert_eq!(fs::read_to_string(sb.dest.join("tmp/y")).unwrap(), "2");
    assert!(sb.outside_entries().is_empty());
}

#[test]
fn copy_replaces_a_symlink_at_an_entry_instead_of_writing_through_it() {
    let sb = Sandbox::new();
    let victim = sb.outside.join("victim");
    fs::write(&victim, "original").unwrap();
    symlink(&victim, sb.dest.join("f")).unwrap();
    copy_into(&sb, "/", Layer::new().file("f", "new").build(), COPY).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "original");
    assert!(fs::symlink_metadata(sb.dest.join("f")).unwrap().is_file());
}

#[test]
fn copy_refuses_dotdot_and_hard_links_out_of_the_destination() {
    let sb = Sandbox::new();
    let err = copy_into(&sb, "/", Layer::new().file("../x", "x").build(), COPY).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"archive entry "../x" escapes the destination"#
    );
    let err = copy_into(
        &sb,
        "/",
        Layer::new().hardlink("h", "../../etc/passwd").build(),
        COPY,
    )
    .unwrap_err();
    assert!(err.to_string().contains("escapes the destination"), "{err}");
    assert!(sb.outside_entries().is_empty());
}

#[test]
fn copy_keeps_whiteout_names_as_plain_files() {
    let sb = Sandbox::new();
    copy_into(&sb, "/", Layer::new().file("d/.wh.x", "w").build(), COPY).unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("d/.wh.x")).unwrap(), "w");
}

#[test]
fn copy_can_refuse_replacing_directories_by_files_and_the_reverse() {
    let sb = Sandbox::new();
    fs::create_dir_all(sb.dest.join("tmp/d")).unwrap();
    fs::write(sb.dest.join("tmp/f"), "f").unwrap();
    let strict = Policy::Copy {
        no_overwrite_dir_non_dir: true,
    };
    let err = copy_into(&sb, "/tmp", Layer::new().file("d", "x").build(), strict).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot overwrite directory "/tmp/d" with non-directory "/tmp""#
    );
    let err = copy_into(&sb, "/tmp", Layer::new().dir("f").build(), strict).unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"cannot overwrite non-directory "/tmp/f" with directory "/tmp""#
    );
    copy_into(&sb, "/tmp", Layer::new().file("d", "x").build(), COPY).unwrap();
    assert_eq!(fs::read_to_string(sb.dest.join("tmp/d")).unwrap(), "x");
}

/// Swaps `dir` between a real directory and a symlink to `target` until `stop`, with
/// `rename(2)` (atomic), as a process in a container could.
fn swap_until(dir: &Path, target: &Path, stop: &AtomicBool) {
    let real = dir.with_extension("real");
    let link = dir.with_extension("link");
    fs::create_dir_all(&real).unwrap();
    symlink(target, &link).unwrap();
    while !stop.load(Ordering::Relaxed) {
        let _ = fs::rename(&real, dir);
        let _ = fs::rename(dir, &real);
        let _ = fs::rename(&link, dir);
        let _ = fs::rename(dir, &link);
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_during_a_copy_never_leads_out() {
    let sb = Sandbox::new();
    let outside = sb.outside.clone();
    // The host directory's path exists in the root too: following the link resolves.
    fs::create_dir_all(sb.dest.join(outside.strip_prefix("/").unwrap())).unwrap();
    let stop = AtomicBool::new(false);
    let mut archive = Layer::new();
    for i in 0..1000 {
        archive = archive.file(&format!("d/f{i}"), "x");
    }
    let archive = archive.build();
    std::thread::scope(|s| {
        s.spawn(|| swap_until(&sb.dest.join("d"), &outside, &stop));
        for _ in 0..3 {
            // Entries fail when they meet the symlink in a form they cannot use; none may
            // land outside.
            let _ = copy_into(&sb, "/", archive.clone(), COPY);
        }
        stop.store(true, Ordering::Relaxed);
    });
    assert!(
        sb.outside_entries().is_empty(),
        "{:?}",
        sb.outside_entries()
    );
}

fn packed(root: &Path, path: &str) -> Vec<(String, Vec<u8>, Option<String>)> {
    let root = confined::open_root(root).unwrap();
    let mut out = Vec::new();
    confined::pack(&root, Path::new(path), Path::new("top"), &mut out).unwrap();
    let mut archive = tar::Archive::new(out.as_slice());
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let name = e.path().unwrap().to_string_lossy().into_owned();
            let link = e
                .link_name()
                .unwrap()
                .map(|l| l.to_string_lossy().into_owned());
            let mut data = Vec::new();
            std::io::Read::read_to_end(&mut e, &mut data).unwrap();
            (name, data, link)
        })
        .collect()
}

#[test]
fn pack_archives_symlinks_as_links_and_never_follows_them() {
    let sb = Sandbox::new();
    fs::write(sb.outside.join("secret"), "host secret").unwrap();
    fs::create_dir(sb.dest.join("d")).unwrap();
    fs::write(sb.dest.join("d/f"), "inside").unwrap();
    symlink(&sb.outside, sb.dest.join("d/out")).unwrap();
    symlink(&sb.outside, sb.dest.join("top-link")).unwrap();
    let entries = packed(&sb.dest, "/d");
    let names: Vec<&str> = entries
        .iter()
        .map(|(n, _, _)| n.trim_end_matches('/'))
        .collect();
    assert_eq!(names, ["top", "top/f", "top/out"]);
    assert_eq!(entries[1].1, b"inside");
    assert_eq!(entries[2].2.as_deref(), sb.outside.to_str());
    // The path itself a symlink: the link, not what it names.
    let entries = packed(&sb.dest, "/top-link");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].2.as_deref(), sb.outside.to_str());
}

#[test]
fn a_directory_swapped_for_a_symlink_during_pack_never_shows_the_host() {
    let sb = Sandbox::new();
    fs::write(sb.outside.join("secret"), "host secret").unwrap();
    let outside = sb.outside.clone();
    let stop = AtomicBool::new(false);
    let root = confined::open_root(&sb.dest).unwrap();
    std::thread::scope(|s| {
        s.spawn(|| swap_until(&sb.dest.join("d"), &outside, &stop));
        for _ in 0..500 {
            let mut out = Vec::new();
            if confined::pack(&root, Path::new("/"), Path::new("."), &mut out).is_err() {
                continue;
            }
            let text = String::from_utf8_lossy(&out);
            assert!(
                !text.contains("host secret"),
                "the host's file was archived"
            );
        }
        stop.store(true, Ordering::Relaxed);
    });
}
