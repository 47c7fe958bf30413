//! Registry credentials where the docker CLI keeps them: `auths.<registry>.auth` (base64 of
//! `user:password`) in `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. Other
//! members of the file are kept as they are; credential helpers (`credsStore`,
//! `credHelpers`) are not run.

use std::path::PathBuf;

use anyhow::Context;
use base64::Engine as _;
use serde_json::{json, Map, Value};

/// The key Docker Hub's credentials are stored under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

/// The registry host of a login server address and the key its credentials live under
/// (`localhost:5000` → `localhost:5000`; Docker Hub → `https://index.docker.io/v1/`).
pub fn server_key(address: &str) -> anyhow::Result<String> {
    let host = skiff_image::registry::registry_host(address)?;
    Ok(if host == "docker.io" {
        DOCKER_HUB_KEY.to_owned()
    } else {
        host
    })
}

/// Credentials the CLI sends with a request (Docker's `AuthConfig`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub username: String,
    pub password: String,
    pub serveraddress: String,
}

impl Auth {
    /// The `X-Registry-Auth` header value: base64url of the JSON `AuthConfig`.
    pub fn header(&self) -> String {
        let body = json!({
            "username": self.username,
            "password": self.password,
            "serveraddress": self.serveraddress,
        });
        base64::engine::general_purpose::URL_SAFE.encode(body.to_string())
    }
}

/// The docker CLI's configuration file.
pub struct DockerConfig {
    path: PathBuf,
    doc: Map<String, Value>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn path() -> anyhow::Result<PathBuf> {
        if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
            return Ok(PathBuf::from(dir).join("config.json"));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .context("neither DOCKER_CONFIG nor HOME is set")?;
        Ok(PathBuf::from(home).join(".docker/config.json"))
    }

    /// Reads the file; a missing one is empty.
    pub fn load() -> anyhow::Result<DockerConfig> {
        let path = Self::path()?;
        let doc = match std::fs::read(&path) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a JSON object", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        Ok(DockerConfig { path, doc })
    }

    pub fn file(&self) -> &std::path::Path {
        &self.path
    }

    fn auths(&self) -> Option<&Map<String, Value>> {
        self.doc.get("auths").and_then(Value::as_object)
    }

    /// The stored credentials for `key` (see [`server_key`]); `None` when there are none.
    pub fn get(&self, key: &str) -> anyhow::Result<Option<Auth>> {
        let Some(entry) = self.auths().and_then(|a| a.get(key)) else {
            return Ok(None);
        };
        let field = |name: &str| {
            entry
                .get(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let (mut username, mut password) = (field("username"), field("password"));
        let encoded = field("auth");
        if !encoded.is_empty() {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .with_context(|| format!("invalid auth for {key} in {}", self.path.display()))?;
            let (user, pass) = decoded.split_once(':').with_context(|| {
                format!(
                    "invalid auth for {key} in {}: want user:password",
                    self.path.display()
                )
            })?;
            (username, password) = (user.to_owned(), pass.to_owned());
        }
        if username.is_empty() && password.is_empty() {
            return Ok(None);
        }
        Ok(Some(Auth {
            username,
            password,
            serveraddress: key.to_owned(),
        }))
    }

    /// Every stored credential, keyed as stored (what the docker CLI sends a build in
    /// `X-Registry-Config`). An entry that cannot be decoded is an error, as for [`Self::get`].
    pub fn all(&self) -> anyhow::Result<Vec<Auth>> {
        let keys: Vec<String> = self
            .auths()
            .map(|a| a.keys().cloned().collect())
            .unwrap_or_default();
        let mut out = Vec::new();
        for key in keys {
            out.extend(self.get(&key)?);
        }
        Ok(out)
    }

    /// Stores `auth` under `key`, as `docker login` does.
    pub fn set(&mut self, key: &str, auth: &Auth) {
        let encoded = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", auth.username, auth.password));
        let auths = self
            .doc
            .entry("auths")
            .or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(auths) = auths.as_object_mut() {
            auths.insert(key.to_owned(), json!({ "auth": encoded }));
        }
    }

    /// Forgets the credentials for `key`; whether there were any.
    pub fn remove(&mut self, key: &str) -> bool {
        self.doc
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .is_some_and(|a| a.remove(key).is_some())
    }

    /// Writes the file (mode 0600, replaced atomically), creating its directory.
    pub fn save(&self) -> anyhow::Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self
            .path
            .parent()
            .context("the docker config path has no directory")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let mut text = serde_json::to_string_pretty(&self.doc)?;
        text.push('\n');
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            anyhow::Error::new(e).context(format!("writing {}", self.path.display()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(doc: Value) -> DockerConfig {
        DockerConfig {
            path: PathBuf::from("/nonexistent/config.json"),
            doc: doc.as_object().unwrap().clone(),
        }
    }

    #[test]
    fn credentials_round_trip_in_dockers_format() {
        let mut c = config(json!({ "psFormat": "{{.ID}}" }));
        let auth = Auth {
            username: "alice".into(),
            password: "p:w".into(),
            serveraddress: "localhost:5000".into(),
        };
        c.set("localhost:5000", &auth);
        assert_eq!(c.doc["auths"]["localhost:5000"]["auth"], "YWxpY2U6cDp3");
        assert_eq!(c.doc["psFormat"], "{{.ID}}", "other settings are kept");
        assert_eq!(c.get("localhost:5000").unwrap(), Some(auth));
        assert!(c.remove("localhost:5000"));
        assert!(!c.remove("localhost:5000"));
        assert_eq!(c.get("localhost:5000").unwrap(), None);
    }

    #[test]
    fn server_addresses_key_like_the_docker_cli() {
        assert_eq!(server_key("").unwrap(), DOCKER_HUB_KEY);
        assert_eq!(server_key("docker.io").unwrap(), DOCKER_HUB_KEY);
        assert_eq!(
            server_key("http://localhost:5000/v2/").unwrap(),
            "localhost:5000"
        );
        assert!(server_key("bad host").is_err());
    }

    #[test]
    fn the_header_is_base64url_json() {
        let auth = Auth {
            username: "u".into(),
            password: "?>?".into(),
            serveraddress: "r:1".into(),
        };
        let parsed =
            skiff_image::registry::Credentials::from_header(&auth.header()).expect("decodes");
        assert_eq!(parsed.username, "u");
        assert_eq!(parsed.password, "?>?");
        assert_eq!(parsed.serveraddress, "r:1");
    }

    #[test]
    fn all_credentials_are_listed_for_a_build() {
        let c = config(json!({ "auths": {
            "r:1": { "auth": base64::engine::general_purpose::STANDARD.encode("a:b") },
            "empty:2": {},
        } }));
        assert_eq!(
            c.all().unwrap(),
            [Auth {
                username: "a".into(),
                password: "b".into(),
                serveraddress: "r:1".into(),
            }]
        );
    }

    #[test]
    fn a_broken_auth_entry_is_an_error() {
        let c = config(json!({ "auths": { "r:1": { "auth": "@@" } } }));
        assert!(c.get("r:1").is_err());
    }
}
