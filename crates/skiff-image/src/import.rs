//! `docker import`: a rootfs tarball becomes a one-layer image, its config shaped by
//! Dockerfile-style `changes` (`--change 'CMD ["sh"]'`).

use std::fs::File;
use std::io::{self, Read};

use chrono::{SecondsFormat, Utc};
use oci_spec::image::{
    Config, Descriptor, HistoryBuilder, ImageConfigurationBuilder, ImageManifestBuilder, MediaType,
    RootFsBuilder,
};

use crate::error::{ImageError, IoContext, Result};
use crate::reference::Reference;
use crate::store::{oci_digest, HashingWriter, Store};
use crate::unpack::decompress;

pub(crate) fn import(
    store: &Store,
    rootfs: impl Read,
    reference: Option<&str>,
    changes: &[String],
    message: Option<&str>,
) -> Result<String> {
    // Everything the caller can get wrong is checked before anything is stored.
    let reference = reference.map(Reference::parse).transpose()?;
    let mut config = Config::default();
    for change in changes {
        apply_change(&mut config, change)?;
    }

    let _ingest = store.ingest_guard();
    let staging = store.temp_dir("import")?;
    let layer_path = staging.path().join("layer.tar");
    let mut file = File::create(&layer_path).ctx(|| format!("create {}", layer_path.display()))?;
    let mut hashing = HashingWriter::new(&mut file);
    let size = io::copy(&mut decompress(rootfs)?, &mut hashing)
        .map_err(|e| ImageError::invalid(format!("invalid rootfs archive: {e}")))?;
    let diff_id = hashing.digest();
    validate_tar(File::open(&layer_path).ctx(|| "reopen imported layer".into())?)?;

    let created = Utc::now().to_rfc3339_opts(SecondsFormat::Nanos, true);
    let history = HistoryBuilder::default()
        .created(created.clone())
        .created_by("")
        .comment(message.map_or_else(|| "Imported from -".to_string(), str::to_string))
        .build()
        .map_err(|e| ImageError::invalid(format!("build history: {e}")))?;
    let image_config = ImageConfigurationBuilder::default()
        .created(created)
        .config(config)
        .rootfs(
            RootFsBuilder::default()
                .typ("layers")
                .diff_ids(vec![diff_id.clone()])
                .build()
                .map_err(internal)?,
        )
        .history(vec![history])
        .build()
        .map_err(internal)?;
    let config_json = image_config.to_string().map_err(internal)?;
    let config_digest = store.write_blob(config_json.as_bytes())?;
    store.adopt_file(&layer_path, &diff_id)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config_json.len() as u64,
            oci_digest(&config_digest),
        ))
        .layers(vec![Descriptor::new(
            MediaType::ImageLayer,
            size,
            oci_digest(&diff_id),
        )])
        .build()
        .map_err(internal)?;
    let manifest_digest = store.write_blob(manifest.to_string().map_err(internal)?.as_bytes())?;
    store.commit(&manifest_digest, reference.as_slice())
}

fn internal(e: oci_spec::OciSpecError) -> ImageError {
    ImageError::invalid(format!("build image config: {e}"))
}

fn validate_tar(reader: impl Read) -> Result<()> {
    let bad = |e: io::Error| ImageError::invalid(format!("invalid rootfs archive: {e}"));
    for entry in tar::Archive::new(reader).entries().map_err(bad)? {
        entry.map_err(bad)?;
    }
    Ok(())
}

/// Applies one Dockerfile line to `config`.
pub(crate) fn apply_change(config: &mut Config, line: &str) -> Result<()> {
    let line = line.trim();
    let (instruction, rest) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
    let rest = rest.trim();
    let invalid = |why: String| ImageError::invalid(format!("invalid change {line:?}: {why}"));
    match instruction.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.set_cmd(Some(command(rest)));
        }
        "ENTRYPOINT" => {
            config.set_entrypoint(Some(command(rest)));
        }
        "ENV" => {
            let pairs = key_values(rest).map_err(invalid)?;
            let env = config.env().clone().unwrap_or_default();
            let mut env: Vec<String> = env
                .into_iter()
                .filter(|e| !pairs.iter().any(|(k, _)| e.split('=').next() == Some(k)))
                .collect();
            env.extend(pairs.into_iter().map(|(k, v)| format!("{k}={v}")));
            config.set_env(Some(env));
        }
        "LABEL" => {
            let pairs = key_values(rest).map_err(invalid)?;
            config
                .labels_mut()
                .get_or_insert_with(Default::default)
                .extend(pairs);
        }
        "WORKDIR" => {
            if rest.is_empty() {
                return Err(invalid("WORKDIR needs a path".into()));
            }
            let dir = if rest.starts_with('/') {
                rest.to_string()
            } else {
                let base = config.working_dir().clone().unwrap_or_else(|| "/".into());
                format!("{}/{rest}", base.trim_end_matches('/'))
            };
            config.set_working_dir(Some(dir));
        }
        "USER" => {
            config.set_user(Some(rest.to_string()));
        }
        "STOPSIGNAL" => {
            config.set_stop_signal(Some(rest.to_string()));
        }
        "EXPOSE" => {
            let mut ports = config.exposed_ports().clone().unwrap_or_default();
            for word in words(rest).map_err(invalid)? {
                let port = normalize_port(&word)
                    .ok_or_else(|| invalid(format!("invalid port {word:?}")))?;
                if !ports.contains(&port) {
                    ports.push(port);
                }
            }
            config.set_exposed_ports(Some(ports));
        }
        "VOLUME" => {
            let new = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(list) => list,
                Err(_) => words(rest).map_err(invalid)?,
            };
            let mut volumes = config.volumes().clone().unwrap_or_default();
            volumes.extend(new.into_iter().filter(|v| !v.is_empty()));
            volumes.dedup();
            config.set_volumes(Some(volumes));
        }
        other => {
            // Named as moby's Dockerfile parser names instructions: lowercased.
            return Err(ImageError::invalid(format!(
                "{} is not a valid change command",
                other.to_ascii_lowercase()
            )));
        }
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b` → `/bin/sh -c "a b"`).
fn command(rest: &str) -> Vec<String> {
    if rest.starts_with('[') {
        if let Ok(list) = serde_json::from_str::<Vec<String>>(rest) {
            return list;
        }
    }
    vec!["/bin/sh".into(), "-c".into(), rest.into()]
}

/// `k=v k2="v 2"` or the legacy single pair `k some value`.
fn key_values(rest: &str) -> Result<Vec<(String, String)>, String> {
    let first = rest.split_whitespace().next().ok_or("missing key")?;
    if !first.contains('=') {
        let (key, value) = rest
            .split_once(char::is_whitespace)
            .ok_or("missing value")?;
        return Ok(vec![(key.to_string(), value.trim().to_string())]);
    }
    words(rest)?
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(format!("{w:?} is not key=value")),
        })
        .collect()
}

/// Splits on whitespace honouring double and single quotes and backslash escapes.
fn words(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote = None;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"') | None, '\\') => {
                cur.push(chars.next().ok_or("trailing backslash")?);
                in_word = true;
            }
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_word = true;
            }
        }
    }
    if quote.is_some() {
        return Err("unterminated quote".into());
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `80` → `80/tcp`; `53/udp` stays; ranges `8000-8001` are kept as written.
fn normalize_port(word: &str) -> Option<String> {
    let (port, proto) = word.split_once('/').unwrap_or((word, "tcp"));
    let valid_num = |p: &str| p.parse::<u16>().is_ok_and(|n| n > 0);
    let valid = match port.split_once('-') {
        Some((a, b)) => valid_num(a) && valid_num(b),
        None => valid_num(port),
    };
    let proto = proto.to_ascii_lowercase();
    (valid && matches!(proto.as_str(), "tcp" | "udp" | "sctp")).then(|| format!("{port}/{proto}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(changes: &[&str]) -> Result<Config> {
        let mut c = Config::default();
        for ch in changes {
            apply_change(&mut c, ch)?;
        }
        Ok(c)
    }

    #[test]
    fn cmd_and_entrypoint_take_exec_and_shell_form() {
        let c = config(&[r#"CMD ["sleep", "1"]"#, "ENTRYPOINT echo hi"]).unwrap();
        assert_eq!(
            c.cmd().as_deref(),
            Some(&["sleep".to_string(), "1".to_string()][..])
        );
        assert_eq!(
            c.entrypoint().clone().unwrap(),
            ["/bin/sh", "-c", "echo hi"]
        );
    }

    #[test]
    fn env_accepts_both_forms_and_replaces_keys() {
        let c = config(&["ENV A=1 B=\"two words\"", "ENV C some value", "ENV A=3"]).unwrap();
        assert_eq!(
            c.env().clone().unwrap(),
            ["B=two words", "C=some value", "A=3"]
        );
    }

    #[test]
    fn workdir_user_expose_label_volume_stopsignal() {
        let c = config(&[
            "WORKDIR /srv",
            "WORKDIR app",
            "USER nobody",
            "EXPOSE 80 53/udp",
            "LABEL a=b",
            r#"VOLUME ["/data"]"#,
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c.working_dir().as_deref(), Some("/srv/app"));
        assert_eq!(c.user().as_deref(), Some("nobody"));
        assert_eq!(c.exposed_ports().clone().unwrap(), ["80/tcp", "53/udp"]);
        assert_eq!(c.labels().clone().unwrap()["a"], "b");
        assert_eq!(c.volumes().clone().unwrap(), ["/data"]);
        assert_eq!(c.stop_signal().as_deref(), Some("SIGINT"));
    }

    #[test]
    fn rejects_unknown_instructions_and_bad_values() {
        for bad in [
            "RUN echo",
            "FROM x",
            "EXPOSE http",
            "ENV A=\"open",
            "LABEL =x",
        ] {
            let err = config(&[bad]).unwrap_err();
            assert_eq!(
                skiff_core::HasKind::kind(&err),
                skiff_core::ErrorKind::InvalidArgument,
                "{bad}"
            );
        }
    }
}
