//! Credentials as Docker passes them (`X-Registry-Auth`, the `/auth` body, `config.json`
//! entries) and the login check: `GET /v2/` answered directly (basic auth) or after a
//! token from the registry's token server (bearer auth).

use base64::Engine as _;
use oci_client::secrets::RegistryAuth;
use serde::Deserialize;

use super::config::{Endpoint, Resolved, DOCKER_HUB};
use super::error::{RegistryError, Result};

/// Docker's `AuthConfig`: what `docker login` stores and what clients send per request.
/// Absent and `null` members are empty (docker-py sends `"email": null`).
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub struct Credentials {
    #[serde(default, deserialize_with = "nullable")]
    pub username: String,
    #[serde(default, deserialize_with = "nullable")]
    pub password: String,
    /// `base64(username:password)`, as stored in `~/.docker/config.json`.
    #[serde(default, deserialize_with = "nullable")]
    pub auth: String,
    #[serde(default, deserialize_with = "nullable")]
    pub email: String,
    #[serde(default, deserialize_with = "nullable")]
    pub serveraddress: String,
    /// An OAuth refresh token from an earlier login (not supported yet: see `to_auth`).
    #[serde(default, deserialize_with = "nullable")]
    pub identitytoken: String,
    /// A bearer token to send as is.
    #[serde(default, deserialize_with = "nullable")]
    pub registrytoken: String,
}

fn nullable<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("serveraddress", &self.serveraddress)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// No credentials: anonymous access.
    pub fn anonymous() -> Credentials {
        Credentials::default()
    }

    /// A user name and password.
    pub fn basic(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_string(),
            password: password.to_string(),
            ..Default::default()
        }
    }

    /// Decodes Docker's `X-Registry-Auth` header: base64url (padded or not, standard
    /// alphabet tolerated) of an `AuthConfig` JSON object. An empty header or `{}` is
    /// anonymous.
    pub fn from_header(value: &str) -> Result<Credentials> {
        let value = value.trim();
        if value.is_empty() {
            return Ok(Credentials::anonymous());
        }
        let engines = [
            base64::engine::general_purpose::URL_SAFE,
            base64::engine::general_purpose::URL_SAFE_NO_PAD,
            base64::engine::general_purpose::STANDARD,
            base64::engine::general_purpose::STANDARD_NO_PAD,
        ];
        let bytes = engines
            .iter()
            .find_map(|e| e.decode(value).ok())
            .ok_or_else(|| {
                RegistryError::Invalid("invalid X-Registry-Auth header: not base64".into())
            })?;
        Credentials::from_json(&bytes)
    }

    /// Parses an `AuthConfig` JSON object (the body of `POST /auth`).
    pub fn from_json(bytes: &[u8]) -> Result<Credentials> {
        serde_json::from_slice(bytes)
            .map_err(|e| RegistryError::Invalid(format!("invalid registry credentials: {e}")))
    }

    /// The user name and password, from the fields or from `auth`.
    pub(crate) fn user_password(&self) -> Result<Option<(String, String)>> {
        if !self.username.is_empty() || !self.password.is_empty() {
            return Ok(Some((self.username.clone(), self.password.clone())));
        }
        if self.auth.is_empty() {
            return Ok(None);
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(self.auth.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| RegistryError::Invalid("invalid auth field: not base64".into()))?;
        let (user, password) = decoded.split_once(':').ok_or_else(|| {
            RegistryError::Invalid("invalid auth field: want base64 of user:password".into())
        })?;
        Ok(Some((user.to_string(), password.to_string())))
    }

    /// What `oci-client` sends.
    pub(crate) fn to_auth(&self) -> Result<RegistryAuth> {
        if !self.registrytoken.is_empty() {
            return Ok(RegistryAuth::Bearer(self.registrytoken.clone()));
        }
        if let Some((user, password)) = self.user_password()? {
            return Ok(RegistryAuth::Basic(user, password));
        }
        if !self.identitytoken.is_empty() {
            return Err(RegistryError::Invalid(
                "identity tokens are not supported; log in with a user name and password".into(),
            ));
        }
        Ok(RegistryAuth::Anonymous)
    }

    /// The registry host these credentials are for (`serveraddress`, Docker Hub when empty).
    pub fn registry_host(&self) -> Result<String> {
        registry_host(&self.serveraddress)
    }
}

/// Docker's normalisation of a login server address: `https://index.docker.io/v1/`, `docker.io`
/// and an empty one mean Docker Hub; a scheme and path are dropped.
pub fn registry_host(address: &str) -> Result<String> {
    let trimmed = address.trim();
    let no_scheme = trimmed
        .strip_prefix("https://")
        .or_else(|| trimmed.strip_prefix("http://"))
        .unwrap_or(trimmed);
    let host = no_scheme.split('/').next().unwrap_or_default();
    match host {
        "" | "docker.io" | "index.docker.io" | "registry-1.docker.io" => Ok(DOCKER_HUB.to_string()),
        h if h
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c)) =>
        {
            Ok(h.to_string())
        }
        _ => Err(RegistryError::Invalid(format!(
            "invalid registry address {address:?}"
        ))),
    }
}

/// What a successful login returns (Docker's `/auth` answer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginOutcome {
    /// `Login Succeeded`.
    pub status: String,
}

#[derive(Deserialize)]
struct TokenAnswer {
    #[serde(default)]
    token: String,
    #[serde(default)]
    access_token: String,
}

/// `docker login`: checks the credentials against `GET /v2/`.
pub(crate) async fn login(resolved: &Resolved, creds: &Credentials) -> Result<LoginOutcome> {
    let host = creds.registry_host()?;
    let endpoint = if host == DOCKER_HUB {
        Endpoint {
            host: "registry-1.docker.io".into(),
            plain_http: false,
            mirror: false,
        }
    } else {
        resolved.endpoint(&host)
    };
    let (user, password) = creds.user_password()?.unwrap_or_default();
    let client = super::http_client()?;
    let url = format!("{}/v2/", endpoint.base_url());
    let http = |context: String| move |source| RegistryError::Http { context, source };
    // dockerd's words: a token server's refusal, or the registry's own 401 to basic auth.
    let token_refused = || {
        RegistryError::Unauthorized(format!(
            "Get \"{url}\": unauthorized: incorrect username or password"
        ))
    };
    let unauthorized = |status: u16| {
        RegistryError::Unauthorized(format!(
            "login attempt to {url} failed with status: {status} {}",
            reqwest::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or_default()
        ))
    };

    let first = client
        .get(&url)
        .send()
        .await
        .map_err(http(format!("cannot reach {url}")))?;
    if first.status().is_success() {
        return Ok(succeeded());
    }
    if first.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Err(RegistryError::Invalid(format!(
            "login attempt to {url} failed with status: {}",
            first.status()
        )));
    }
    let challenge = first
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bearer = http_auth::parse_challenges(&challenge).ok().and_then(|cs| {
        cs.into_iter()
            .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))
            .map(|c| {
                let param = |name: &str| {
                    c.params
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case(name))
                        .map(|(_, v)| v.to_unescaped())
                };
                (param("realm"), param("service"))
            })
    });
    let second = match bearer {
        Some((Some(realm), service)) => {
            let mut query = vec![("account", user.clone())];
            if let Some(service) = service {
                query.push(("service", service));
            }
            let answer = client
                .get(&realm)
                .query(&query)
                .basic_auth(&user, Some(&password))
                .send()
                .await
                .map_err(http(format!("cannot reach the token server {realm}")))?;
            if matches!(answer.status().as_u16(), 401 | 403) {
                return Err(token_refused());
            }
            if !answer.status().is_success() {
                return Err(RegistryError::Invalid(format!(
                    "token server {realm} answered {}",
                    answer.status()
                )));
            }
            let token: TokenAnswer = answer.json().await.map_err(http(format!(
                "invalid answer from the token server {realm}"
            )))?;
            let token = if token.token.is_empty() {
                token.access_token
            } else {
                token.token
            };
            client.get(&url).bearer_auth(token).send().await
        }
        Some((None, _)) => {
            return Err(RegistryError::Invalid(format!(
                "{url} asks for a bearer token without a realm"
            )))
        }
        None => {
            client
                .get(&url)
                .basic_auth(&user, Some(&password))
                .send()
                .await
        }
    }
    .map_err(http(format!("cannot reach {url}")))?;
    match second.status().as_u16() {
        200..=299 => Ok(succeeded()),
        status @ (401 | 403) => Err(unauthorized(status)),
        status => Err(RegistryError::Invalid(format!(
            "login attempt to {url} failed with status: {status}"
        ))),
    }
}

fn succeeded() -> LoginOutcome {
    LoginOutcome {
        status: "Login Succeeded".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64url(s: &str) -> String {
        base64::engine::general_purpose::URL_SAFE.encode(s)
    }

    #[test]
    fn decodes_x_registry_auth_in_every_encoding_clients_use() {
        let json = r#"{"username":"alice","password":"s3cr3t?>","serveraddress":"localhost:5000"}"#;
        for header in [
            b64url(json),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json),
            base64::engine::general_purpose::STANDARD.encode(json),
        ] {
            let c = Credentials::from_header(&header).unwrap();
            assert_eq!(c.username, "alice");
            assert_eq!(c.registry_host().unwrap(), "localhost:5000");
            assert_eq!(
                c.to_auth().unwrap(),
                RegistryAuth::Basic("alice".into(), "s3cr3t?>".into())
            );
        }
    }

    #[test]
    fn auth_field_token_and_empty_headers() {
        let auth = base64::engine::general_purpose::STANDARD.encode("bob:pw:with:colons");
        let c = Credentials::from_header(&b64url(&format!(r#"{{"auth":"{auth}"}}"#))).unwrap();
        assert_eq!(
            c.to_auth().unwrap(),
            RegistryAuth::Basic("bob".into(), "pw:with:colons".into())
        );
        let c = Credentials::from_header(&b64url(r#"{"registrytoken":"tok"}"#)).unwrap();
        assert_eq!(c.to_auth().unwrap(), RegistryAuth::Bearer("tok".into()));
        let c = Credentials::from_header(&b64url(
            r#"{"username":"u","password":"p","email":null,"serveraddress":"r:1"}"#,
        ))
        .unwrap();
        assert_eq!(
            c.to_auth().unwrap(),
            RegistryAuth::Basic("u".into(), "p".into())
        );
        for empty in ["", &b64url("{}")] {
            let c = Credentials::from_header(empty).unwrap();
            assert_eq!(c.to_auth().unwrap(), RegistryAuth::Anonymous);
            assert_eq!(c.registry_host().unwrap(), "docker.io");
        }
    }

    #[test]
    fn rejects_malformed_headers() {
        for bad in [
            "%%%",
            &b64url("not json"),
            &b64url(r#"{"auth":"@@"}"#),
            &b64url(r#"{"auth":"Ym9i"}"#),
        ] {
            let err = Credentials::from_header(bad).and_then(|c| c.to_auth().map(|_| c));
            assert!(
                matches!(err, Err(RegistryError::Invalid(_))),
                "{bad}: {err:?}"
            );
        }
    }

    #[test]
    fn server_addresses_normalise_like_docker() {
        for hub in [
            "",
            "https://index.docker.io/v1/",
            "docker.io",
            "registry-1.docker.io",
        ] {
            assert_eq!(registry_host(hub).unwrap(), "docker.io", "{hub}");
        }
        assert_eq!(
            registry_host("http://localhost:5000/v2/").unwrap(),
            "localhost:5000"
        );
        assert!(registry_host("a b").is_err());
    }
}
