//! Platforms (`linux/amd64`, `linux/arm64/v8`) and choosing an index entry for one.

use oci_spec::image::{Arch, Descriptor, Os};

use super::error::{RegistryError, Result};

/// An OS, architecture and optional variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// This machine's platform.
    pub fn host() -> Platform {
        Platform {
            os: Os::default().to_string(),
            architecture: Arch::default().to_string(),
            variant: None,
        }
    }

    /// Parses `--platform`: `os[/arch[/variant]]`, lowercase; `x86_64` and `aarch64` are
    /// accepted as Docker accepts them.
    pub fn parse(s: &str) -> Result<Platform> {
        let bad =
            || RegistryError::Invalid(format!("invalid platform {s:?}: want os/arch[/variant]"));
        let parts: Vec<&str> = s.trim().split('/').collect();
        if parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return Err(bad());
        }
        let host = Platform::host();
        let os = parts[0].to_lowercase();
        let architecture = match parts.get(1).map(|a| a.to_lowercase()).as_deref() {
            None => host.architecture,
            Some("x86_64" | "x86-64") => "amd64".into(),
            Some("aarch64") => "arm64".into(),
            Some(a) => a.to_string(),
        };
        let mut variant = parts.get(2).map(|v| v.to_lowercase());
        // arm64 without a variant means v8.
        if architecture == "arm64" && variant.as_deref() == Some("v8") {
            variant = None;
        }
        if !os
            .chars()
            .chain(architecture.chars())
            .all(|c| c.is_ascii_alphanumeric())
        {
            return Err(bad());
        }
        Ok(Platform {
            os,
            architecture,
            variant,
        })
    }

    fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let variant = match (arch, variant) {
            ("arm64", Some("v8")) => None,
            (_, v) => v,
        };
        self.os == os
            && self.architecture == arch
            && (self.variant.is_none() || self.variant.as_deref() == variant)
    }

    /// Whether an image config's `os`/`architecture`/`variant` is this platform.
    pub(crate) fn matches_config(&self, config: &oci_spec::image::ImageConfiguration) -> bool {
        self.matches(
            &config.os().to_string(),
            &config.architecture().to_string(),
            config.variant().as_deref(),
        )
    }

    /// The index entry for this platform: the first exact match (including the variant
    /// when one was asked for).
    pub(crate) fn choose<'a>(&self, manifests: &'a [Descriptor]) -> Option<&'a Descriptor> {
        manifests.iter().find(|d| {
            d.platform().as_ref().is_some_and(|p| {
                self.matches(
                    &p.os().to_string(),
                    &p.architecture().to_string(),
                    p.variant().as_deref(),
                )
            })
        })
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::{MediaType, PlatformBuilder};

    fn entry(os: &str, arch: &str, variant: Option<&str>, hexchar: char) -> Descriptor {
        let mut d = Descriptor::new(
            MediaType::ImageManifest,
            1,
            format!("sha256:{}", hexchar.to_string().repeat(64))
                .parse::<oci_spec::image::Digest>()
                .unwrap(),
        );
        let mut p = PlatformBuilder::default().os(os).architecture(arch);
        if let Some(v) = variant {
            p = p.variant(v);
        }
        d.set_platform(Some(p.build().unwrap()));
        d
    }

    #[test]
    fn parses_platforms_like_docker() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64");
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/arm/v7").unwrap().variant.as_deref(),
            Some("v7")
        );
        for bad in ["", "linux//v7", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chooses_the_matching_index_entry() {
        let entries = [
            entry("linux", "arm", Some("v6"), 'a'),
            entry("linux", "arm", Some("v7"), 'b'),
            entry("linux", "arm64", Some("v8"), 'c'),
            entry("linux", "amd64", None, 'd'),
            entry("windows", "amd64", None, 'e'),
        ];
        let pick = |p: &str| {
            Platform::parse(p)
                .unwrap()
                .choose(&entries)
                .map(|d| d.digest().to_string().chars().last().unwrap())
        };
        assert_eq!(pick("linux/arm/v7"), Some('b'));
        assert_eq!(pick("linux/arm64"), Some('c'));
        assert_eq!(pick("linux/amd64"), Some('d'));
        assert_eq!(pick("windows/amd64"), Some('e'));
        assert_eq!(pick("linux/s390x"), None);
    }
}
