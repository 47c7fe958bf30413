//! `-v`/`Binds`, `--mount`, `--tmpfs` and image `VOLUME`s of a create request, parsed and
//! checked the way dockerd does (its messages), before any volume is created.

use std::collections::HashMap;
use std::path::PathBuf;

use bollard_stubs::models::{HostConfig, MountType};

use crate::error::{EngineError, Result};

/// Where a mount's data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Source {
    Host(PathBuf),
    /// A named volume; None = a new anonymous volume.
    Volume(Option<String>),
    Tmpfs(Vec<String>),
}

/// One requested mount, before volumes are created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountRequest {
    pub source: Source,
    pub destination: String,
    pub read_only: bool,
    /// Options as given (`ro`, `z`, `nocopy`, tmpfs options …).
    pub options: Vec<String>,
    /// Labels and driver options of a volume this mount creates (`--mount
    /// …,volume-label=,volume-opt=`); an existing volume keeps its own.
    pub new_volume: NewVolume,
}

/// What a `--mount` of type volume gives the volume it creates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct NewVolume {
    pub labels: HashMap<String, String>,
    pub options: HashMap<String, String>,
}

fn valid_volume_name(name: &str) -> bool {
    skiff_core::ids::valid_container_name(name)
}

fn check_destination(spec: &str, dst: &str) -> Result<()> {
    if !dst.starts_with('/') {
        return Err(EngineError::invalid(format!(
            "invalid volume specification: '{spec}': invalid mount config for type \"bind\": invalid mount path: '{dst}' mount path must be absolute"
        )));
    }
    if dst.trim_end_matches('/').is_empty() {
        return Err(EngineError::invalid(format!("invalid volume specification: '{spec}': invalid mount config: destination can't be '/'")));
    }
    Ok(())
}

/// Parses one `-v`/`Binds` entry: `/host:/ctr[:opts]`, `name:/ctr[:opts]` or `/ctr`.
pub(crate) fn parse_bind(spec: &str) -> Result<MountRequest> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => (None, *dst, ""),
        [src, dst] => (Some(*src), *dst, ""),
        [src, dst, mode] => (Some(*src), *dst, *mode),
        _ => {
            return Err(EngineError::invalid(format!(
                "invalid volume specification: '{spec}'"
            )))
        }
    };
    check_destination(spec, dst)?;
    let options: Vec<String> = mode
        .split(',')
        .filter(|m| !m.is_empty())
        .map(str::to_string)
        .collect();
    for o in &options {
        if !matches!(
            o.as_str(),
            "ro" | "rw"
                | "z"
                | "Z"
                | "nocopy"
                | "shared"
                | "rshared"
                | "slave"
                | "rslave"
                | "private"
                | "rprivate"
                | "consistent"
                | "cached"
                | "delegated"
        ) {
            return Err(EngineError::invalid(format!("invalid mode: {o}")));
        }
    }
    let read_only = options.iter().any(|o| o == "ro");
    let source = match src {
        None => Source::Volume(None),
        Some(s) if s.starts_with('/') => Source::Host(PathBuf::from(s)),
        Some(s) if valid_volume_name(s) => Source::Volume(Some(s.to_string())),
        Some(s) => {
            return Err(EngineError::invalid(format!(
                "create {s}: \"{s}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )))
        }
    };
    Ok(MountRequest {
        source,
        destination: dst.to_string(),
        read_only,
        options,
        new_volume: NewVolume::default(),
    })
}

/// Every mount the request asks for: Binds, Mounts, Tmpfs, then the image's and the config's
/// `Volumes` not already covered (as anonymous volumes).
/// The mounts of a create request: `-v`, `--mount` and `--tmpfs`, then those `--volumes-from`
/// gives (`inherited`, see [`volumes_from_mode`]) where the request mounts nothing, then
/// the image's `VOLUME`s still uncovered, as new anonymous volumes (moby's order).
pub(crate) fn mounts(
    hc: &HostConfig,
    volumes: &[String],
    inherited: Vec<MountRequest>,
) -> Result<Vec<MountRequest>> {
    let mut out = Vec::new();
    for spec in hc.binds.iter().flatten() {
        out.push(parse_bind(spec)?);
    }
    for m in hc.mounts.iter().flatten() {
        let dst = m.target.clone().unwrap_or_default();
        check_destination(&dst, &dst)?;
        let read_only = m.read_only.unwrap_or(false);
        let mut options = Vec::new();
        let mut new_volume = NewVolume::default();
        let source = match m.typ {
            Some(MountType::BIND) => {
                let src = m.source.clone().unwrap_or_default();
                if !std::path::Path::new(&src).exists() {
                    return Err(EngineError::invalid(format!(
                        "invalid mount config for type \"bind\": bind source path does not exist: {src}"
                    )));
                }
                Source::Host(PathBuf::from(src))
            }
            Some(MountType::VOLUME) | None => {
                if let Some(v) = &m.volume_options {
                    if v.no_copy == Some(true) {
                        options.push("nocopy".to_string());
                    }
                    new_volume.labels = v.labels.clone().unwrap_or_default();
                    if let Some(driver) = &v.driver_config {
                        crate::volumes::check_driver(driver.name.as_deref())?;
                        new_volume.options = driver.options.clone().unwrap_or_default();
                        crate::volumes::validate_options(&new_volume.options)?;
                    }
                }
                match m.source.clone().filter(|s| !s.is_empty()) {
                    Some(name) if valid_volume_name(&name) => Source::Volume(Some(name)),
                    Some(name) => {
                        return Err(EngineError::invalid(format!("invalid volume name: {name}")))
                    }
                    None => Source::Volume(None),
                }
            }
            Some(MountType::TMPFS) => {
                let mut opts = Vec::new();
                if let Some(t) = &m.tmpfs_options {
                    if let Some(size) = t.size_bytes {
                        opts.push(format!("size={size}"));
                    }
                    if let Some(mode) = t.mode {
                        opts.push(format!("mode={mode:o}"));
                    }
                }
                Source::Tmpfs(opts)
            }
            Some(other) => {
                return Err(EngineError::invalid(format!(
                    "mount type {other:?} is not supported"
                )));
            }
        };
        out.push(MountRequest {
            source,
            destination: dst,
            read_only,
            options,
            new_volume,
        });
    }
    let mut tmpfs: Vec<_> = hc.tmpfs.iter().flatten().collect();
    tmpfs.sort();
    for (dst, opts) in tmpfs {
        check_destination(dst, dst)?;
        let options: Vec<String> = opts
            .split(',')
            .filter(|o| !o.is_empty())
            .map(str::to_string)
            .collect();
        let read_only = options.iter().any(|o| o == "ro");
        out.push(MountRequest {
            source: Source::Tmpfs(options.clone()),
            destination: dst.clone(),
            read_only,
            options,
            new_volume: NewVolume::default(),
        });
    }
    for m in inherited {
        let covered = out.iter().any(|o: &MountRequest| {
            o.destination.trim_end_matches('/') == m.destination.trim_end_matches('/')
        });
        if !covered {
            out.push(m);
        }
    }
    for dst in volumes {
        let covered = out
            .iter()
            .any(|m| m.destination.trim_end_matches('/') == dst.trim_end_matches('/'));
        if !covered {
            check_destination(dst, dst)?;
            out.push(MountRequest {
                source: Source::Volume(None),
                destination: dst.clone(),
                read_only: false,
                options: Vec::new(),
                new_volume: NewVolume::default(),
            });
        }
    }
    let mut seen = std::collections::HashSet::new();
    for m in &out {
        if !seen.insert(m.destination.trim_end_matches('/').to_string()) {
            return Err(EngineError::invalid(format!(
                "Duplicate mount point: {}",
                m.destination
            )));
        }
    }
    Ok(out)
}

/// Splits a `--volumes-from` entry, `container[:mode]`: the container and whether its mounts
/// become read-only (`ro`), writable (`rw`) or stay as they are (no mode). Other mode
/// options (`z`, `Z`) are accepted and ignored, as with `-v`.
pub(crate) fn volumes_from_mode(spec: &str) -> Result<(&str, Option<bool>)> {
    let (name, mode) = match spec.split_once(':') {
        Some((name, mode)) => (name, mode),
        None => (spec, ""),
    };
    if name.is_empty() {
        return Err(EngineError::invalid(
            "volume-from specification cannot be an empty string",
        ));
    }
    let mut read_only = None;
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => read_only = Some(true),
            "rw" => read_only = Some(false),
            "z" | "Z" => {}
            _ => return Err(EngineError::invalid(format!("invalid mode: {mode}"))),
        }
    }
    Ok((name, read_only))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_parse_host_named_and_anonymous() {
        let m = parse_bind("/srv/data:/data:ro").unwrap();
        assert_eq!(m.source, Source::Host("/srv/data".into()));
        assert!(m.read_only);
        assert_eq!(
            parse_bind("cache:/cache").unwrap().source,
            Source::Volume(Some("cache".into()))
        );
        assert_eq!(parse_bind("/anon").unwrap().source, Source::Volume(None));
        assert!(parse_bind("/a:rel").is_err());
        assert!(parse_bind("/a:/b:bogus").is_err());
        assert!(parse_bind("bad name:/x").is_err());
        let hc = HostConfig {
            binds: Some(vec!["/a:/x".into(), "/b:/x".into()]),
            ..Default::default()
        };
        assert!(mounts(&hc, &[], Vec::new())
            .unwrap_err()
            .to_string()
            .contains("Duplicate mount point"));
        let hc = HostConfig {
            binds: Some(vec!["vol:/data".into()]),
            ..Default::default()
        };
        assert_eq!(
            mounts(&hc, &["/data".into(), "/other".into()], Vec::new())
                .unwrap()
                .len(),
            2
        );
    }

    #[test]
    fn volumes_from_fill_what_the_request_leaves_and_cover_image_volumes() {
        let inherited = |dst: &str| MountRequest {
            source: Source::Volume(Some(format!("from{}", dst.replace('/', "-")))),
            destination: dst.into(),
            read_only: true,
            options: Vec::new(),
            new_volume: NewVolume::default(),
        };
        let hc = HostConfig {
            binds: Some(vec!["mine:/data".into()]),
            ..Default::default()
        };
        let out = mounts(
            &hc,
            &["/cache".into(), "/fresh".into()],
            vec![inherited("/data"), inherited("/cache")],
        )
        .unwrap();
        let by_dst = |d: &str| out.iter().find(|m| m.destination == d).unwrap().clone();
        assert_eq!(by_dst("/data").source, Source::Volume(Some("mine".into())));
        assert_eq!(
            by_dst("/cache").source,
            Source::Volume(Some("from-cache".into()))
        );
        assert_eq!(by_dst("/fresh").source, Source::Volume(None));
        assert_eq!(out.len(), 3);
        assert_eq!(volumes_from_mode("db").unwrap(), ("db", None));
        assert_eq!(volumes_from_mode("db:ro").unwrap(), ("db", Some(true)));
        assert_eq!(volumes_from_mode("db:rw,z").unwrap(), ("db", Some(false)));
        assert!(volumes_from_mode("db:bogus").is_err());
        assert!(volumes_from_mode(":ro").is_err());
    }
}
