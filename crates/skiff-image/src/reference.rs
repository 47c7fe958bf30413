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

impl Reference {
    /// Parses and normalises `s`; a missing tag becomes `latest`.
    pub fn parse(s: &str) -> Result<Reference> {
        let bad = |why: &str| ImageError::invalid(format!("invalid reference format: {s:?} {why}"));
        if s.is_empty() || s.len() > 255 {
            return Err(bad("has an invalid length"));
        }
        if s.contains('@') {
            return Err(bad("is a digest reference, which this store does not keep"));
        }
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = s.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match s[last_slash..].rfind(':') {
            Some(i) => (&s[..last_slash + i], &s[last_slash + i + 1..]),
            None => (s, DEFAULT_TAG),
        };
        if !valid_tag(tag) {
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
        Ok(Reference {
            domain,
            path,
            tag: tag.to_string(),
        })
    }

    /// The fully qualified form: `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        format!("{}/{}:{}", self.domain, self.path, self.tag)
    }

    /// The repository in familiar form: `busybox`, `localhost:5000/x/y`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix(OFFICIAL_PREFIX)
                .unwrap_or(&self.path)
                .to_string()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
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
}
