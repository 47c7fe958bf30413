//! Docker image references: parsing, normalisation (`busybox` ≡ `busybox:latest` ≡
//! `docker.io/library/busybox:latest`) and the familiar form Docker displays.
//!
//! Grammar from distribution's `reference` package: `[domain/]path[:tag][@digest]`, where the
//! first component is a domain when it contains `.` or `:` or is `localhost`.

use std::fmt;

use crate::error::{ImageError, Result};

const DEFAULT_DOMAIN: &str = "docker.io";
const OFFICIAL_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";

/// A normalised, tagged image name (digest references are not stored by this crate).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: String,
}

/// The parts of a reference string, normalised: `[domain/]path[:tag][@digest]`.
struct Parts {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

/// The one parser behind [`Reference`] and [`ImageRef`].
fn split(s: &str) -> Result<Parts> {
    let bad = |why: &str| ImageError::invalid(format!("invalid reference format: {s:?} {why}"));
    if s.is_empty() || s.len() > 255 {
        return Err(bad("has an invalid length"));
    }
    let (s_name, digest) = match s.split_once('@') {
        Some((name, digest)) => {
            if crate::store::digest_hex(digest).is_none() {
                return Err(bad(
                    "has an invalid digest (want sha256: and 64 hex digits)",
                ));
            }
            (name, Some(digest.to_string()))
        }
        None => (s, None),
    };
    // The tag is after the last ':' that follows the last '/'.
    let last_slash = s_name.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match s_name[last_slash..].rfind(':') {
        Some(i) => (
            &s_name[..last_slash + i],
            Some(&s_name[last_slash + i + 1..]),
        ),
        None => (s_name, None),
    };
    if tag.is_some_and(|t| !valid_tag(t)) {
        return Err(bad("has an invalid tag"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, rest))
            if first.contains('.') || first.contains(':') || first == "localhost" =>
        {
            (first.to_string(), rest.to_string())
        }
        _ => (DEFAULT_DOMAIN.to_string(), name.to_string()),
    };
    if !valid_domain(&domain) {
        return Err(bad("has an invalid registry"));
    }
    if !path.split('/').all(valid_path_component) {
        return Err(bad("must be lowercase letters, digits and separators"));
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("{OFFICIAL_PREFIX}{path}")
    } else {
        path
    };
    Ok(Parts {
        domain,
        path,
        tag: tag.map(str::to_string),
        digest,
    })
}

fn familiar(domain: &str, path: &str) -> String {
    if domain == DEFAULT_DOMAIN {
        path.strip_prefix(OFFICIAL_PREFIX)
            .unwrap_or(path)
            .to_string()
    } else {
        format!("{domain}/{path}")
    }
}

impl Reference {
    /// Parses and normalises `s`; a missing tag becomes `latest`.
    pub fn parse(s: &str) -> Result<Reference> {
        let parts = split(s)?;
        if parts.digest.is_some() {
            return Err(ImageError::invalid(format!(
                "invalid reference format: {s:?} is a digest reference, which this store does not keep"
            )));
        }
        Ok(Reference {
            domain: parts.domain,
            path: parts.path,
            tag: parts.tag.unwrap_or_else(|| DEFAULT_TAG.to_string()),
        })
    }

    /// A tagged reference from its normalised parts (as [`ImageRef`] holds them).
    fn from_parts(domain: &str, path: &str, tag: &str) -> Reference {
        Reference {
            domain: domain.to_string(),
            path: path.to_string(),
            tag: tag.to_string(),
        }
    }

    /// The registry host (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The fully qualified form: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// The repository in familiar form: `busybox`, `localhost:5000/x/y`.
    pub fn familiar_repository(&self) -> String {
        familiar(&self.domain, &self.path)
    }

    /// The tag (`latest` when none was given).
    pub fn tag(&self) -> &str {
        &self.tag
    }
}

/// The familiar form Docker shows in RepoTags: `busybox:latest`.
impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.familiar_repository(), self.tag)
    }
}

/// A reference to pull or push: a repository plus a tag or a digest
/// (`busybox` → `docker.io/library/busybox:latest`, `localhost:5000/x@sha256:…`). When both
/// are given (`name:tag@digest`) the digest decides, as in Docker.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl ImageRef {
    /// Parses and normalises `s`; with neither tag nor digest the tag is `latest`.
    pub fn parse(s: &str) -> Result<ImageRef> {
        let parts = split(s)?;
        let tag = match (&parts.tag, &parts.digest) {
            (None, None) => Some(DEFAULT_TAG.to_string()),
            (tag, _) => tag.clone(),
        };
        Ok(ImageRef {
            domain: parts.domain,
            path: parts.path,
            tag,
            digest: parts.digest,
        })
    }

    /// Docker's `fromImage` + `tag` query pair: `tag` may be a tag or a digest.
    pub fn with_tag_param(name: &str, tag: Option<&str>) -> Result<ImageRef> {
        match tag.filter(|t| !t.is_empty()) {
            Some(t) if t.contains(':') => ImageRef::parse(&format!("{name}@{t}")),
            Some(t) => ImageRef::parse(&format!("{name}:{t}")),
            None => ImageRef::parse(name),
        }
    }

    /// The registry host (`docker.io`, `localhost:5000`).
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The tag, unless the reference is by digest only.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The manifest digest, for references by digest.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The repository in familiar form: `busybox`, `localhost:5000/x/y`.
    pub fn familiar_repository(&self) -> String {
        familiar(&self.domain, &self.path)
    }

    /// The store name this reference gives an image: its tag, unless pulled by digest.
    pub fn tagged(&self) -> Option<Reference> {
        match (&self.tag, &self.digest) {
            (Some(tag), None) => Some(Reference::from_parts(&self.domain, &self.path, tag)),
            _ => None,
        }
    }

    /// The same repository with a digest instead of a tag (`busybox@sha256:…`).
    pub fn with_digest(&self, digest: &str) -> ImageRef {
        ImageRef {
            domain: self.domain.clone(),
            path: self.path.clone(),
            tag: None,
            digest: Some(digest.to_string()),
        }
    }

    /// The tag or digest as the distribution API addresses a manifest.
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or(DEFAULT_TAG)
    }
}

impl From<&Reference> for ImageRef {
    fn from(r: &Reference) -> ImageRef {
        ImageRef {
            domain: r.domain.clone(),
            path: r.path.clone(),
            tag: Some(r.tag.clone()),
            digest: None,
        }
    }
}

/// The familiar form: `busybox:latest`, `localhost:5000/x@sha256:…`.
impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repo = self.familiar_repository();
        match (&self.digest, &self.tag) {
            (Some(d), _) => write!(f, "{repo}@{d}"),
            (None, Some(t)) => write!(f, "{repo}:{t}"),
            (None, None) => write!(f, "{repo}"),
        }
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric() || c == '_')
        && tag.len() <= 128
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let host_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    host_ok && port.is_none_or(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_path_component(c: &str) -> bool {
    let bytes = c.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if bytes.is_empty() || !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_normalise_to_docker_hub_library() {
        for s in [
            "busybox",
            "busybox:latest",
            "docker.io/library/busybox:latest",
            "library/busybox",
        ] {
            let r = Reference::parse(s).unwrap();
            assert_eq!(r.full(), "docker.io/library/busybox:latest", "{s}");
            assert_eq!(r.to_string(), "busybox:latest", "{s}");
        }
    }

    #[test]
    fn registry_references_stay_as_written() {
        let r = Reference::parse("localhost:5000/x/y:1").unwrap();
        assert_eq!(r.to_string(), "localhost:5000/x/y:1");
        assert_eq!(r.full(), "localhost:5000/x/y:1");
        assert_eq!(
            Reference::parse("quay.io/a/b").unwrap().to_string(),
            "quay.io/a/b:latest"
        );
        assert_eq!(
            Reference::parse("user/app:v2").unwrap().to_string(),
            "user/app:v2"
        );
        assert_eq!(
            Reference::parse("localhost/app").unwrap().to_string(),
            "localhost/app:latest"
        );
    }

    #[test]
    fn rejects_malformed_references() {
        for s in [
            "",
            "Busybox",
            "a//b",
            "a:",
            "a:-x",
            "-a",
            "a b",
            "a@sha256:00",
            "x/",
            "a..b",
            "host:port/x",
        ] {
            let err = Reference::parse(s).unwrap_err();
            assert!(matches!(err, ImageError::InvalidArgument(_)), "{s}: {err}");
        }
    }

    #[test]
    fn image_refs_take_tags_and_digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "busybox:latest");
        assert_eq!(
            r.tagged().unwrap().full(),
            "docker.io/library/busybox:latest"
        );
        let r = ImageRef::parse(&format!("localhost:5000/x/y@{d}")).unwrap();
        assert_eq!(r.domain(), "localhost:5000");
        assert_eq!(r.path(), "x/y");
        assert_eq!(r.digest(), Some(d.as_str()));
        assert_eq!(r.tagged(), None);
        assert_eq!(r.tag_or_digest(), d);
        // name:tag@digest pulls the digest.
        let r = ImageRef::parse(&format!("busybox:1@{d}")).unwrap();
        assert_eq!(r.tag_or_digest(), d);
        assert_eq!(r.to_string(), format!("busybox@{d}"));
        let r = ImageRef::with_tag_param("busybox", Some(&d)).unwrap();
        assert_eq!(r.digest(), Some(d.as_str()));
        let r = ImageRef::with_tag_param("localhost:5000/busybox", Some("1.36")).unwrap();
        assert_eq!(r.to_string(), "localhost:5000/busybox:1.36");
        for bad in ["busybox@sha256:00", "busybox@md5:abc", "Busybox@", "a@"] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }
}
