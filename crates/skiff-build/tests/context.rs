//! Build contexts: received safely (size limit, no links or paths outside), and the
//! content digests that make COPY cache keys change with their sources only.

use std::path::Path;

use skiff_build::context::{hash_sources, receive, receive_spilling, ContextLimits, Spill};
use skiff_build::ignore::IgnoreRules;
use skiff_build::BuildError;

struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn raw(mut self, kind: tar::EntryType, path: &str, link: &str, data: &[u8]) -> Tar {
        let mut h = tar::Header::new_gnu();
        let old = h.as_old_mut();
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        h.set_mode(if kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn file(self, path: &str, data: &str) -> Tar {
        self.raw(tar::EntryType::Regular, path, "", data.as_bytes())
    }

    fn dir(self, path: &str) -> Tar {
        self.raw(tar::EntryType::Directory, path, "", b"")
    }

    fn symlink(self, path: &str, target: &str) -> Tar {
        self.raw(tar::EntryType::Symlink, path, target, b"")
    }

    fn hardlink(self, path: &str, target: &str) -> Tar {
        self.raw(tar::EntryType::Link, path, target, b"")
    }

    fn device(mut self, path: &str) -> Tar {
        let mut h = tar::Header::new_gnu();
        h.set_path(path).unwrap();
        h.set_entry_type(tar::EntryType::Block);
        h.set_size(0);
        h.set_mode(0o600);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_device_major(8).unwrap();
        h.set_device_minor(0).unwrap();
        h.set_cksum();
        self.0.append(&h, &b""[..]).unwrap();
        self
    }

    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

fn received(tar: &[u8], limits: ContextLimits) -> (tempfile::TempDir, Result<(), BuildError>) {
    let tmp = tempfile::Builder::new()
        .prefix("skiff-build-ctx-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().join("ctx");
    std::fs::create_dir(&dir).unwrap();
    let r = receive(tar, &dir, limits);
    (tmp, r)
}

/// A reader that hands out at most 4 KiB per read, like a socket.
struct Trickle<'a>(&'a [u8]);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(4096).min(self.0.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

fn sample() -> Vec<u8> {
    Tar::new()
        .file("Dockerfile", "FROM busybox\n")
        .dir("src")
        .file("src/a.rs", "fn a() {}")
        .file("src/b.rs", "fn b() {}")
        .file("src/notes.txt", "notes")
        .symlink("src/link", "a.rs")
        .file("README", "readme")
        .bytes()
}

#[test]
fn receives_a_context_and_keeps_links_inside() {
    let (tmp, r) = received(&sample(), ContextLimits::default());
    r.unwrap();
    let root = tmp.path().join("ctx");
    assert_eq!(
        std::fs::read_to_string(root.join("src/a.rs")).unwrap(),
        "fn a() {}"
    );
    assert_eq!(
        std::fs::read_link(root.join("src/link")).unwrap(),
        Path::new("a.rs")
    );
    assert!(
        !tmp.path().join("ctx.tar").exists(),
        "the spooled tar is removed"
    );
    // A gzip-compressed context is accepted too.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &sample()).unwrap();
    let (_t, r) = received(&gz.finish().unwrap(), ContextLimits::default());
    r.unwrap();
}

#[test]
fn refuses_hostile_contexts() {
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("dotdot entry", Tar::new().file("../escape", "x").bytes()),
        (
            "nested dotdot",
            Tar::new().file("a/../../escape", "x").bytes(),
        ),
        (
            "absolute symlink",
            Tar::new().symlink("etc", "/etc").bytes(),
        ),
        (
            "climbing symlink",
            Tar::new().dir("a").symlink("a/up", "../../..").bytes(),
        ),
        (
            "hard link out",
            Tar::new().hardlink("pw", "../../etc/passwd").bytes(),
        ),
        (
            "write through a symlink",
            Tar::new()
                .dir("sub")
                .symlink("s", "sub")
                .file("s/x", "y")
                .bytes(),
        ),
        ("device node", Tar::new().device("disk").bytes()),
        ("not a tar", b"this is not a tar archive at all".repeat(40)),
    ];
    for (what, tar) in cases {
        let (tmp, r) = received(&tar, ContextLimits::default());
        let err = r.expect_err(what);
        assert_eq!(
            skiff_core::HasKind::kind(&err),
            skiff_core::ErrorKind::InvalidArgument,
            "{what}: {err}"
        );
        assert!(!tmp.path().join("escape").exists(), "{what} wrote outside");
    }
}

/// Contexts are plain files: names a layer would treat as whiteouts are ordinary here.
#[test]
fn whiteout_names_are_plain_files_in_a_context() {
    let tar = Tar::new()
        .file(".wh.secret", "x")
        .dir("d")
        .file("d/.wh..wh..opq", "y")
        .bytes();
    let (tmp, r) = received(&tar, ContextLimits::default());
    r.unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ctx/.wh.secret")).unwrap(),
        "x"
    );
    assert!(tmp.path().join("ctx/d/.wh..wh..opq").is_file());
}

#[test]
fn refuses_a_context_over_the_limit() {
    let big = "x".repeat(64 * 1024);
    let tar = Tar::new().file("big", &big).bytes();
    let limits = ContextLimits {
        max_bytes: 32 * 1024,
        max_entries: 100,
    };
    let (_t, r) = received(&tar, limits);
    assert_eq!(
        r.unwrap_err().to_string(),
        "build context is larger than the 32768 byte limit"
    );
    // Over the limit in the middle of a file, as a client's stream arrives in pieces: tar
    // reports the read error as its own failure to unpack, the limit still shows.
    let big = "x".repeat(256 * 1024);
    let tar = Tar::new()
        .file("Dockerfile", "FROM busybox\n")
        .file("big", &big)
        .bytes();
    let tmp = tempfile::Builder::new()
        .prefix("skiff-build-ctx-")
        .tempdir()
        .unwrap();
    let r = receive(Trickle(&tar), tmp.path(), limits);
    assert_eq!(
        r.unwrap_err().to_string(),
        "build context is larger than the 32768 byte limit"
    );
    let many = (0..20)
        .fold(Tar::new(), |t, i| t.file(&format!("f{i}"), "x"))
        .bytes();
    let limits = ContextLimits {
        max_bytes: 1 << 30,
        max_entries: 10,
    };
    let (_t, r) = received(&many, limits);
    assert!(r.unwrap_err().to_string().contains("more than 10 entries"));
}

#[test]
fn source_digests_change_with_the_sources_only() {
    let (tmp, r) = received(&sample(), ContextLimits::default());
    r.unwrap();
    let root = tmp.path().join("ctx");
    let none = IgnoreRules::default();
    let rs = hash_sources(&root, &["src/*.rs".into()], &none).unwrap();
    assert_eq!(rs.files, ["src/a.rs", "src/b.rs"]);
    let readme = hash_sources(&root, &["README".into()], &none).unwrap();
    let dir = hash_sources(&root, &["src".into()], &none).unwrap();
    assert_eq!(
        dir.files,
        ["src", "src/a.rs", "src/b.rs", "src/link", "src/notes.txt"]
    );

    std::fs::write(root.join("src/a.rs"), "fn a() { changed }").unwrap();
    assert_ne!(
        hash_sources(&root, &["src/*.rs".into()], &none)
            .unwrap()
            .digest,
        rs.digest
    );
    assert_eq!(
        hash_sources(&root, &["README".into()], &none)
            .unwrap()
            .digest,
        readme.digest
    );

    // .dockerignore'd files are not sources.
    let ignore = IgnoreRules::parse("src/notes.txt\n").unwrap();
    let d1 = hash_sources(&root, &[".".into()], &ignore).unwrap();
    assert!(!d1.files.contains(&"src/notes.txt".to_string()));
    std::fs::write(root.join("src/notes.txt"), "changed again").unwrap();
    assert_eq!(
        hash_sources(&root, &[".".into()], &ignore).unwrap().digest,
        d1.digest
    );
}

#[test]
fn copy_sources_outside_the_context_or_missing_are_refused() {
    let (tmp, r) = received(&sample(), ContextLimits::default());
    r.unwrap();
    let root = tmp.path().join("ctx");
    let none = IgnoreRules::default();
    let err = hash_sources(&root, &["../secret".into()], &none).unwrap_err();
    assert_eq!(
        err.to_string(),
        "forbidden path outside the build context: ../secret"
    );
    let err = hash_sources(&root, &["src/../../x".into()], &none).unwrap_err();
    assert!(err.to_string().contains("outside the build context"));
    let err = hash_sources(&root, &["missing".into()], &none).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("file not found in build context"),
        "{err}"
    );
    let ignore = IgnoreRules::parse("README").unwrap();
    assert!(hash_sources(&root, &["README".into()], &ignore).is_err());
}

/// Regression: the docker CLI's `-f -` context ends in an entry without its padding and
/// without the end-of-archive blocks; it was refused as "unexpected EOF".
#[test]
fn accepts_the_docker_clis_unpadded_last_entry() {
    let mut tar = sample();
    // Cut the end-of-archive blocks, then append one entry whose data is not padded.
    let end = tar.len() - 1024;
    tar.truncate(end);
    let mut h = tar::Header::new_ustar();
    h.set_path(".dockerignore").unwrap();
    h.set_size(5);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_600_000_000);
    h.set_cksum();
    tar.extend_from_slice(h.as_bytes());
    tar.extend_from_slice(b"x.df\n");
    let (tmp, r) = received(&tar, ContextLimits::default());
    r.unwrap();
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("ctx/.dockerignore")).unwrap(),
        "x.df\n"
    );
}

#[test]
fn a_context_outgrowing_its_first_dir_moves_to_the_spill_dir_whole() {
    let tmp = tempfile::Builder::new()
        .prefix("skiff-build-ctx-")
        .tempdir()
        .unwrap();
    let (first, disk) = (tmp.path().join("mem"), tmp.path().join("disk"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&disk).unwrap();
    let tar = Tar::new()
        .file("Dockerfile", "FROM busybox\n")
        .dir("src")
        .file("src/a", "aaaa")
        .symlink("src/link", "a")
        .hardlink("src/hard", "src/a")
        .file("big", &"x".repeat(4096))
        .file("src/after", "late")
        .bytes();
    let spill = Spill {
        dir: &disk,
        after_bytes: 1024,
    };
    let dir = receive_spilling(
        tar.as_slice(),
        &first,
        Some(spill),
        ContextLimits::default(),
    )
    .unwrap();
    assert_eq!(dir, disk);
    assert_eq!(
        std::fs::read_dir(&first).unwrap().count(),
        0,
        "nothing stays behind"
    );
    let read = |p: &str| std::fs::read_to_string(disk.join(p)).unwrap();
    assert_eq!(read("Dockerfile"), "FROM busybox\n");
    assert_eq!(read("src/a"), "aaaa");
    assert_eq!(read("src/hard"), "aaaa");
    assert_eq!(read("src/after"), "late");
    assert_eq!(read("big").len(), 4096);
    assert_eq!(
        std::fs::read_link(disk.join("src/link")).unwrap(),
        Path::new("a")
    );

    // A small context stays where it started.
    let small = tempfile::Builder::new()
        .prefix("skiff-build-ctx-")
        .tempdir()
        .unwrap();
    let (first, disk) = (small.path().join("mem"), small.path().join("disk"));
    std::fs::create_dir(&first).unwrap();
    std::fs::create_dir(&disk).unwrap();
    let spill = Spill {
        dir: &disk,
        after_bytes: 1 << 20,
    };
    let tar = Tar::new().file("Dockerfile", "FROM busybox\n").bytes();
    let dir = receive_spilling(
        tar.as_slice(),
        &first,
        Some(spill),
        ContextLimits::default(),
    )
    .unwrap();
    assert_eq!(dir, first);
    assert!(first.join("Dockerfile").is_file());
}
