//! Authentication (client certificates signed by the cluster CA, bearer tokens from a token
//! file in Kubernetes' format) and the authorization seam.
//!
//! It decides who is calling and whether they may; it must not look at request bodies.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::ApiError;

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub name: String,
    pub uid: String,
    pub groups: Vec<String>,
}

/// The subject of a verified client certificate, attached to every request on that connection.
#[derive(Debug, Clone)]
pub struct PeerIdentity(pub Option<UserInfo>);

/// Errors loading the token file.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read token file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {path} line {line}: expected token,user,uid[,\"group1,group2\"]")]
    Syntax { path: PathBuf, line: usize },
}

impl skiff_core::HasKind for AuthError {
    fn kind(&self) -> skiff_core::ErrorKind {
        skiff_core::ErrorKind::InvalidArgument
    }
}

/// Bearer tokens known to the server.
#[derive(Debug, Default, Clone)]
pub struct TokenAuthenticator {
    tokens: HashMap<String, UserInfo>,
}

impl TokenAuthenticator {
    /// Adds one token.
    pub fn insert(&mut self, token: &str, user: UserInfo) {
        self.tokens.insert(token.to_string(), user);
    }

    /// Loads a static token file: one `token,user,uid,"group1,group2"` per line (a CSV line, as
    /// Kubernetes' `--token-auth-file`). Blank lines and `#` comments are skipped.
    pub fn load_file(&mut self, path: &Path) -> Result<(), AuthError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields = split_csv(line);
            if fields.len() < 3 || fields[..3].iter().any(|f| f.is_empty()) {
                return Err(AuthError::Syntax {
                    path: path.to_path_buf(),
                    line: i + 1,
                });
            }
            let groups = fields
                .get(3)
                .map(|g| {
                    g.split(',')
                        .map(str::trim)
                        .filter(|g| !g.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            self.insert(
                &fields[0],
                UserInfo {
                    name: fields[1].clone(),
                    uid: fields[2].clone(),
                    groups,
                },
            );
        }
        Ok(())
    }

    pub fn authenticate(&self, token: &str) -> Option<UserInfo> {
        self.tokens.get(token).cloned()
    }
}

/// Splits one CSV line, honouring double quotes (`""` inside quotes is a quote).
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            '"' => quoted = !quoted,
            ',' if !quoted => out.push(std::mem::take(&mut cur).trim().to_string()),
            c => cur.push(c),
        }
    }
    out.push(cur.trim().to_string());
    out
}

/// The user named by a client certificate: CN is the user, each O a group.
pub fn user_from_certificate(der: &[u8]) -> Option<UserInfo> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    let groups = subject
        .iter_organization()
        .filter_map(|o| o.as_str().ok().map(String::from))
        .collect();
    Some(UserInfo {
        uid: String::new(),
        name,
        groups,
    })
}

/// Who the request comes from: the connection's client certificate, else a bearer token.
pub fn authenticate(
    peer: Option<&PeerIdentity>,
    authorization: Option<&str>,
    tokens: &TokenAuthenticator,
) -> Result<UserInfo, ApiError> {
    if let Some(PeerIdentity(Some(user))) = peer {
        return Ok(user.clone());
    }
    if let Some(token) = authorization.and_then(|h| h.strip_prefix("Bearer ")) {
        if let Some(user) = tokens.authenticate(token.trim()) {
            return Ok(user);
        }
    }
    Err(ApiError::new(401, "Unauthorized", "Unauthorized"))
}

/// What a request wants to do, for [`authorize`].
#[derive(Debug, Clone, Copy)]
pub struct Attributes<'a> {
    pub verb: &'a str,
    pub group: &'a str,
    pub resource: &'a str,
    pub namespace: Option<&'a str>,
}

/// The authorization seam: every authenticated user may do everything until RBAC lands.
pub fn authorize(_user: &UserInfo, _attrs: &Attributes<'_>) -> Result<(), ApiError> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_file_lines_parse_like_kubernetes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(
            &path,
            "# comment\nabc,alice,1001,\"dev,ops\"\n\nxyz,bob,1002\n",
        )
        .unwrap();
        let mut t = TokenAuthenticator::default();
        t.load_file(&path).unwrap();
        let alice = t.authenticate("abc").unwrap();
        assert_eq!(alice.name, "alice");
        assert_eq!(alice.groups, vec!["dev", "ops"]);
        assert!(t.authenticate("xyz").unwrap().groups.is_empty());
        assert!(t.authenticate("nope").is_none());
    }

    #[test]
    fn rejects_token_file_line_without_uid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.csv");
        std::fs::write(&path, "abc,alice\n").unwrap();
        assert!(matches!(
            TokenAuthenticator::default().load_file(&path),
            Err(AuthError::Syntax { line: 1, .. })
        ));
    }

    #[test]
    fn missing_credentials_are_unauthorized() {
        let t = TokenAuthenticator::default();
        assert_eq!(authenticate(None, None, &t).unwrap_err().code, 401);
        assert_eq!(
            authenticate(None, Some("Bearer wrong"), &t)
                .unwrap_err()
                .code,
            401
        );
    }
}
